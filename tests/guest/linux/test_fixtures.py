"""The real Linux system disks (tests/fixtures/linux) are what they claim, by oracles:
qemu-img info, the blkid/sfdisk/dumpe2fs/lsinitramfs/grub facts oracles.py recorded
when they were built, and debugfs and mtools reading the disks' files; imgscan's
readers (partitions, ext4, XFS, LVM) must find the partitions and volumes as recorded.

The files are read by the tools, not by imgscan: a test that a fixture holds what its
builder wrote must not lean on the reader the fixtures are there to test. That the
roots are Debian 12 is compared with libguestfs (tests/guest/linux/test_virt_inspector.py).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.linux_images import VARIANTS, oracle_facts
from oracles import run

import imgscan

#: The filesystem types blkid and imgscan both name alike.
FILESYSTEMS = ("ext4", "xfs", "btrfs", "vfat", "LVM2_member")
#: The variants that are ext4-bios with one thing changed.
DERIVED = ("fstab-by-device", "fstab-missing-disk", "no-cloud-init", "persistent-net",
           "static-ip", "dirty", "no-virtio-initramfs")
#: The files and directories of an ext4 root the tests compare, as debugfs reads them.
FILES = ("/etc/fstab", "/etc/network/interfaces", "/boot/grub/grub.cfg")
DIRECTORIES = ("/", "/etc/udev/rules.d", "/usr/bin")


@pytest.fixture(scope="module")
def partition_raw(linux_disks: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Callable[[str, str], Path]]:
    """``(variant, partition number)`` -> that partition's bytes as a raw file, as qemu
    reads them (the raw driver's window over the qcow2), for tools that take a file."""
    scratch = tmp_path_factory.mktemp("partitions")
    made: list[Path] = []

    def extract(variant: str, number: str) -> Path:
        volume = oracle_facts(variant)["volumes"][number]
        out = scratch / f"{variant}-{number}.raw"
        spec = {"driver": "raw", "offset": volume["offset"], "size": volume["size"],
                "file": {"driver": "qcow2", "file": {
                    "driver": "file", "filename": str(linux_disks[variant])}}}
        run("qemu-img", "convert", "-O", "raw", "json:" + json.dumps(spec), out)
        made.append(out)
        return out

    yield extract
    for path in made:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def ext4_root(partition_raw: Callable[[str, str], Path]) -> Callable[[str], dict[str, Any]]:
    """variant -> what debugfs reads on its ext4 root (partition 1): ``files`` (path ->
    text, "" for none) and ``names`` (directory -> its entries). Each partition is
    extracted once, read, and deleted (they are 2 GiB each, if sparse)."""
    seen: dict[str, dict[str, Any]] = {}

    def read(variant: str) -> dict[str, Any]:
        if variant not in seen:
            raw = partition_raw(variant, "1")
            seen[variant] = {"files": {f: debugfs(raw, f"cat {f}") for f in FILES},
                             "names": {d: debugfs_names(raw, d) for d in DIRECTORIES}}
            raw.unlink()
        return seen[variant]
    return read


def debugfs(raw: Path, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, str(raw)], capture_output=True,
                          text=True, check=True).stdout


def debugfs_names(raw: Path, directory: str) -> set[str]:
    """The names of ``ls -p`` (``/ino/mode/uid/gid/name/size/`` lines) but . and .."""
    fields = (line.split("/") for line in debugfs(raw, f"ls -p {directory}").splitlines())
    return {f[5] for f in fields if len(f) >= 7 and f[5] not in (".", "..")}


@pytest.mark.parametrize("variant", VARIANTS)
def test_qcow2_as_recorded(linux_disks: dict[str, Path], variant: str) -> None:
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json",
                                      str(linux_disks[variant])], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    assert info["virtual-size"] == oracle_facts(variant)["virtual_size"]
    assert info["actual-size"] < 400 << 20   # sparse and compressed


@pytest.mark.parametrize("variant", VARIANTS)
def test_partitions_and_filesystems_as_blkid_saw_them(linux_disks: dict[str, Path],
                                                       variant: str) -> None:
    facts = oracle_facts(variant)
    sector = facts["partition_table"].get("sectorsize", 512)
    with imgscan.open(str(linux_disks[variant])) as img:
        info: dict[str, Any] = img.info()
    assert info["partition_table"] == {"dos": "mbr"}.get(facts["partition_table"]["label"],
                                                        facts["partition_table"]["label"])
    got = [(p["start"], p["size"]) for p in info["partitions"]]
    assert got == [(p["start"] * sector, p["size"] * sector)
                   for p in facts["partition_table"]["partitions"]]
    for p in info["partitions"]:
        blkid = facts["volumes"][str(p["number"])]["blkid"]
        assert blkid["TYPE"] in FILESYSTEMS
        assert (p["filesystem"], p["uuid"]) == (blkid["TYPE"], blkid["UUID"])
        assert p["label"] == blkid.get("LABEL")


def test_lvm_root_as_recorded(linux_disks: dict[str, Path]) -> None:
    lv = oracle_facts("xfs-lvm-boot")["volumes"]["lv:vg0/root"]
    with imgscan.open(str(linux_disks["xfs-lvm-boot"])) as img:
        lvm = img.info()["partitions"][1]["lvm"]
    assert lvm["vg"] == "vg0"
    (root,) = lvm["lvs"]
    assert (root["name"], root["size"], root["filesystem"], root["uuid"]) == \
        ("root", lv["size"], "xfs", lv["blkid"]["UUID"])
    assert lv["xfs_log_clean"] is True


@pytest.mark.parametrize("variant", ["ext4-bios", "dirty"])
def test_ext4_state_as_dumpe2fs_says(linux_disks: dict[str, Path], variant: str) -> None:
    dumpe2fs = oracle_facts(variant)["volumes"]["1"]["dumpe2fs"]
    with imgscan.open(str(linux_disks[variant])) as img:
        details = img.info()["partitions"][0]["filesystem_details"]
    assert details["clean"] == (dumpe2fs["Filesystem state"] == "clean")
    assert details["needs_recovery"] == ("needs_recovery" in dumpe2fs["Filesystem features"])
    assert details["clean"] is (variant == "ext4-bios")


def test_ext4_bios_fstab_and_grub_name_the_root_by_uuid(
        ext4_root: Callable[[str], dict[str, Any]]) -> None:
    """The base disk's fstab mounts the root by the UUID blkid reads, and its grub.cfg
    holds the default entry oracles.py recorded, which boots that UUID."""
    uuid = oracle_facts("ext4-bios")["volumes"]["1"]["blkid"]["UUID"]
    entry = oracle_facts("ext4-bios")["grub_default"]
    files = ext4_root("ext4-bios")["files"]
    assert f"UUID={uuid} " in files["/etc/fstab"]
    assert f"root=UUID={uuid} ro" in entry["linux"]
    assert entry["search"].endswith(f"--fs-uuid --set=root {uuid}")
    assert entry["linux"] in files["/boot/grub/grub.cfg"]


def test_btrfs_uefi_boots_from_its_esp(partition_raw: Callable[[str, str], Path]) -> None:
    """The UEFI disk's default entry mounts the btrfs subvolume @, and its ESP holds the
    fallback loader (mtools reading the FAT)."""
    assert "rootflags=subvol=@" in oracle_facts("btrfs-uefi")["grub_default"]["linux"]
    esp = partition_raw("btrfs-uefi", "1")
    listed = run("mdir", "-b", "-i", esp, "::/EFI/BOOT").split()
    esp.unlink()
    assert [Path(name).name for name in listed] == ["BOOTX64.EFI"]


@pytest.mark.parametrize("variant", DERIVED)
def test_derived_variants_differ_from_ext4_bios_in_one_thing(
        ext4_root: Callable[[str], dict[str, Any]], variant: str) -> None:
    disk, base = ext4_root(variant), ext4_root("ext4-bios")
    changed = {f for f in FILES if disk["files"][f] != base["files"][f]}
    expect = {"fstab-by-device": {"/etc/fstab", "/boot/grub/grub.cfg"},
              "fstab-missing-disk": {"/etc/fstab"}, "static-ip": {"/etc/network/interfaces"}}
    assert changed == expect.get(variant, set())
    assert all(base["files"][f] for f in FILES)
    rules = disk["names"]["/etc/udev/rules.d"]
    assert ("70-persistent-net.rules" in rules) == (variant == "persistent-net")
    assert ("cloud-init" in disk["names"]["/usr/bin"]) == (variant != "no-cloud-init")
    virtio = [m for ms in oracle_facts(variant)["initramfs"].values() for m in ms
              if m.endswith("/virtio_blk.ko")]
    assert bool(virtio) == (variant != "no-virtio-initramfs")


def test_data_disk_has_no_os(ext4_root: Callable[[str], dict[str, Any]]) -> None:
    assert ext4_root("data-disk")["names"]["/"] == {"lost+found", "projects", "backups"}
    assert "kernels" not in oracle_facts("data-disk")

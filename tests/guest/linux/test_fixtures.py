"""The real Linux system disks (tests/fixtures/linux) are what they claim, by oracles:
qemu-img info, and the blkid/sfdisk/dumpe2fs/lsinitramfs/grub facts oracles.py recorded
when they were built; imgscan's existing readers (partitions, ext4, XFS, Btrfs, LVM)
must find the same."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.linux_images import VARIANTS, oracle_facts

import imgscan
from imgscan.files import open_volume

#: The filesystem types blkid and imgscan both name alike.
FILESYSTEMS = ("ext4", "xfs", "btrfs", "vfat", "LVM2_member")
#: The variants that are ext4-bios with one thing changed.
DERIVED = ("fstab-by-device", "fstab-missing-disk", "no-cloud-init", "persistent-net",
           "static-ip", "dirty", "no-virtio-initramfs")


def read(disk: Path, volume: str, path: str) -> str:
    with imgscan.open(str(disk)) as img:
        return open_volume(img, volume).read_file(path).decode()


def names(disk: Path, volume: str, path: str) -> set[str]:
    with imgscan.open(str(disk)) as img:
        return {e.name for e in open_volume(img, volume).listdir(path)}


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


@pytest.mark.parametrize(("variant", "volume", "prefix"), [
    ("ext4-bios", "1", ""), ("xfs-lvm-boot", "vg0/root", ""), ("btrfs-uefi", "2", "/@")])
def test_root_is_debian_12_with_fstab_by_uuid(linux_disks: dict[str, Path], variant: str,
                                              volume: str, prefix: str) -> None:
    disk = linux_disks[variant]
    assert "VERSION_ID=\"12\"" in read(disk, volume, f"{prefix}/etc/os-release")
    uuid = oracle_facts(variant)["volumes"]["1"]["blkid"]["UUID"]
    assert f"UUID={uuid} " in read(disk, volume, f"{prefix}/etc/fstab")


def test_grub_as_grub_mkconfig_wrote_it(linux_disks: dict[str, Path]) -> None:
    uuid = oracle_facts("ext4-bios")["volumes"]["1"]["blkid"]["UUID"]
    entry = oracle_facts("ext4-bios")["grub_default"]
    assert f"root=UUID={uuid} ro" in entry["linux"]
    assert entry["search"].endswith(f"--fs-uuid --set=root {uuid}")
    cfg = read(linux_disks["ext4-bios"], "1", "/boot/grub/grub.cfg")
    assert entry["linux"] in cfg
    assert "rootflags=subvol=@" in oracle_facts("btrfs-uefi")["grub_default"]["linux"]
    assert names(linux_disks["btrfs-uefi"], "1", "/EFI/BOOT") == {"BOOTX64.EFI"}


@pytest.mark.parametrize("variant", DERIVED)
def test_derived_variants_differ_from_ext4_bios_in_one_thing(linux_disks: dict[str, Path],
                                                             variant: str) -> None:
    disk, base = linux_disks[variant], linux_disks["ext4-bios"]
    files = ("/etc/fstab", "/etc/network/interfaces", "/boot/grub/grub.cfg")
    changed = {f for f in files if read(disk, "1", f) != read(base, "1", f)}
    expect = {"fstab-by-device": {"/etc/fstab", "/boot/grub/grub.cfg"},
              "fstab-missing-disk": {"/etc/fstab"}, "static-ip": {"/etc/network/interfaces"}}
    assert changed == expect.get(variant, set())
    rules = names(disk, "1", "/etc/udev/rules.d")
    assert ("70-persistent-net.rules" in rules) == (variant == "persistent-net")
    assert ("cloud-init" in names(disk, "1", "/usr/bin")) == (variant != "no-cloud-init")
    virtio = [m for ms in oracle_facts(variant)["initramfs"].values() for m in ms
              if m.endswith("/virtio_blk.ko")]
    assert bool(virtio) == (variant != "no-virtio-initramfs")


def test_data_disk_has_no_os(linux_disks: dict[str, Path]) -> None:
    assert names(linux_disks["data-disk"], "1", "/") == {"lost+found", "projects", "backups"}
    assert "kernels" not in oracle_facts("data-disk")

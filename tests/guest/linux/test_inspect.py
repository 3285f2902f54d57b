"""The ``linux`` object of whole system disks: the real Debian 12 fixture disks, judged
against what real tools recorded when they were built (blkid, dumpe2fs, xfs_logprint,
lsinitramfs run in the guest, grub-mkconfig's default entry), and small trees carrying
other distributions' release files as those distributions ship them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import linux_configs as real
from helpers.linux_images import oracle_facts
from helpers.linux_tree import Content, Link, ext4_volume, partitioned_disk

import imgscan

#: The variants with an OS, and the oracle volume key of the root of each.
ROOTS = {"ext4-bios": "1", "xfs-lvm-boot": "lv:vg0/root", "btrfs-uefi": "2",
         "fstab-by-device": "1", "fstab-missing-disk": "1", "no-cloud-init": "1",
         "persistent-net": "1", "static-ip": "1", "dirty": "1", "no-virtio-initramfs": "1"}
VIRTIO = ("virtio_blk", "virtio_scsi", "virtio_net", "virtio_pci")
HYPERV = ("hv_vmbus", "hv_storvsc", "hv_netvsc")


def linux_of(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with imgscan.open(path) as img:
        info = img.info()
    assert info["findings"] == [], info["findings"]
    return info, info["linux"]


@pytest.fixture(scope="module")
def facts(linux_disks: dict[str, Path]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    return {variant: linux_of(linux_disks[variant]) for variant in ROOTS}


@pytest.mark.parametrize("variant", sorted(ROOTS))
def test_release_root_and_arch(facts: dict[str, Any], variant: str) -> None:
    _, lx = facts[variant]
    oracle = oracle_facts(variant)["volumes"][ROOTS[variant]]["blkid"]
    assert (lx["distro"], lx["version_id"], lx["arch"]) == ("debian", "12", "x86_64")
    assert lx["pretty_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert lx["root"]["uuid"] == oracle["UUID"]
    assert lx["root"]["filesystem"] == oracle["TYPE"]
    assert lx["evidence"]["distro"].startswith("/etc/os-release")


def test_roots_on_lvm_and_a_btrfs_subvolume(facts: dict[str, Any]) -> None:
    _, lvm = facts["xfs-lvm-boot"]
    assert lvm["root"] == {**lvm["root"], "partition": 2, "lvm": "vg0/root", "subvolume": None}
    assert lvm["boot_partition"] == 1        # the separate ext4 /boot
    assert [m["mountpoint"] for m in lvm["mounts"]] == ["/", "/boot"]
    _, btrfs = facts["btrfs-uefi"]
    assert btrfs["root"]["subvolume"] == "@"
    # The ESP its fstab mounts at /boot/efi (vfat), where grub-mkimage's BOOTX64.EFI is.
    assert btrfs["mounts"][1] == {"mountpoint": "/boot/efi", "volume": "partition 1",
                                  "filesystem": "vfat"}
    assert btrfs["boot_partition"] == btrfs["root"]["partition"] == 2


@pytest.mark.parametrize("variant", sorted(ROOTS))
def test_kernel_and_default_entry_as_grub_mkconfig_wrote_it(facts: dict[str, Any],
                                                           variant: str) -> None:
    _, lx = facts[variant]
    oracle = oracle_facts(variant)
    assert [k["version"] for k in lx["kernels"]] == oracle["kernels"]
    assert lx["default_kernel"] == oracle["kernels"][0]
    assert lx["bootloader"] == "grub2"
    # grub-mkconfig's default entry: "linux<TAB>/boot/vmlinuz-V ARGS" (btrfs: /@/boot/...)
    args = re.split(r"\s+", oracle["grub_default"]["linux"].strip(), maxsplit=2)[2]
    assert lx["kernel_cmdline"] == args


@pytest.mark.parametrize("variant", sorted(ROOTS))
def test_virtio_states_as_lsinitramfs_lists_them(facts: dict[str, Any], variant: str) -> None:
    _, lx = facts[variant]
    (kernel,) = lx["kernels"]
    members = oracle_facts(variant)["initramfs"][kernel["version"]]
    names = {re.sub(r"\.ko(\.(xz|zst|gz))?$", "", m.rsplit("/", 1)[-1]).replace("-", "_")
             for m in members if ".ko" in m}
    for driver in VIRTIO:
        # The Debian cloud kernel builds them as modules: in the initramfs, or only
        # under /lib/modules.
        assert kernel["virtio"][driver] == ("initramfs" if driver in names else "module")
    for driver in HYPERV:  # the same for Azure's Hyper-V drivers (extension key hyperv)
        assert kernel["hyperv"][driver] == ("initramfs" if driver in names else "module")
    assert kernel["xen_pv"] is False
    if variant == "no-virtio-initramfs":
        assert set(kernel["virtio"].values()) == {"module"}


@pytest.mark.parametrize("variant", sorted(ROOTS))
def test_clean_as_the_filesystem_tools_say(facts: dict[str, Any], variant: str) -> None:
    _, lx = facts[variant]
    volume = oracle_facts(variant)["volumes"][ROOTS[variant]]
    if "dumpe2fs" in volume:
        header = volume["dumpe2fs"]
        clean = header["Filesystem state"] == "clean" and \
            "needs_recovery" not in header["Filesystem features"]
        assert lx["clean"] is clean
    elif "xfs_log_clean" in volume:
        assert lx["clean"] is volume["xfs_log_clean"]
    assert (variant == "dirty") is (lx["clean"] is False)


@pytest.mark.parametrize("variant", sorted(ROOTS))
def test_fstab_names_judged_by_the_blkid_uuids(facts: dict[str, Any], variant: str) -> None:
    _, lx = facts[variant]
    uuids = {v["blkid"].get("UUID") for v in oracle_facts(variant)["volumes"].values()}
    for entry in lx["fstab"]:
        if entry["spec"].startswith("UUID="):
            assert entry["by"] == "uuid"
            assert entry["on_this_disk"] is (entry["spec"][5:] in uuids), entry
    missing = [e for e in lx["fstab"] if e["on_this_disk"] is False]
    assert bool(missing) is (variant == "fstab-missing-disk")
    by = {e["mountpoint"]: e["by"] for e in lx["fstab"]}
    if variant == "fstab-by-device":
        assert by["/"] == "device" and lx["root_device_by"] == "device"
    elif variant == "xfs-lvm-boot":
        assert by == {"/": "lvm", "/boot": "uuid"}
    else:
        assert by["/"] == "uuid" and lx["root_device_by"] == "uuid"


@pytest.mark.parametrize("variant", sorted(ROOTS))
def test_cloud_init_network_and_rules(facts: dict[str, Any], variant: str) -> None:
    _, lx = facts[variant]
    installed = variant != "no-cloud-init"
    assert lx["cloud_init"]["installed"] is installed
    assert lx["cloud_init"]["enabled"] is (True if installed else None)
    method = "static" if variant == "static-ip" else "dhcp"
    assert [(n["interface"], n["method"]) for n in lx["network"]] == [("eth0", method)]
    rules = ["/etc/udev/rules.d/70-persistent-net.rules"] if variant == "persistent-net" \
        else []
    assert lx["persistent_net_rules"] == rules
    assert lx["root_password"] == "locked"       # mmdebstrap leaves root's field "*"
    assert lx["selinux"] is None
    assert lx["vmware_tools"] is False


def test_data_disk_has_no_linux(linux_disks: dict[str, Path]) -> None:
    with imgscan.open(linux_disks["data-disk"]) as img:
        info = img.info()
    assert info["linux"] is None and info["windows"] is None


#: Other distributions' root trees: their release files as shipped (helpers.linux_configs
#: names each source), /bin/sh, usr/; expected (distro, version_id).
OTHERS: dict[str, tuple[dict[str, Content], tuple[str, str]]] = {
    "ubuntu-22.04": ({"etc/os-release": real.UBUNTU2204_OS_RELEASE}, ("ubuntu", "22.04")),
    "rhel-7.5": ({"etc/os-release": real.RHEL75_OS_RELEASE}, ("rhel", "7.5")),
    "euleros-2.0-sp8": ({"etc/os-release": real.EULEROS_SP8_OS_RELEASE}, ("euleros", "2.0")),
    "openeuler-24.03": ({"etc/os-release": real.OPENEULER2403_OS_RELEASE},
                        ("openEuler", "24.03")),
    "centos-7": ({"etc/redhat-release": real.CENTOS7_RELEASE,
                  "etc/centos-release": real.CENTOS7_RELEASE}, ("centos", "7.9.2009")),
    "centos-6": ({"etc/redhat-release": real.CENTOS6_RELEASE}, ("centos", "6.10")),
    "sles-12-sp3": ({"etc/SuSE-release": real.SLES12SP3_SUSE_RELEASE}, ("sles", "12.3")),
    "ubuntu-14.04-lsb": ({"etc/lsb-release": real.UBUNTU1404_LSB_RELEASE},
                         ("ubuntu", "14.04")),
}


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_other_distributions_by_their_release_files(tmp_path: Path, name: str) -> None:
    files, expected = OTHERS[name]
    tree: dict[str, Content] = {**files, "bin/sh": Path("/bin/sh").read_bytes(), "usr/": "",
                                "etc/fstab": "/dev/vda / ext4 defaults 0 1\n"}
    disk = ext4_volume(tmp_path, tree)          # a filesystem on the whole disk
    info, lx = linux_of(disk)
    assert (lx["distro"], lx["version_id"]) == expected
    assert lx["root"]["partition"] == 0 and lx["arch"] == "x86_64"
    assert lx["fstab"][0]["on_this_disk"] is True       # /dev/vda: the first disk, whole
    assert info["windows"] is None


def test_a_broken_initramfs_is_a_finding_and_its_drivers_unknown(tmp_path: Path) -> None:
    """A Debian tree whose initramfs is a newc cpio made by cpio and gzip, cut in half:
    the other facts stand, the finding names the file, and the VirtIO rule cannot judge."""
    from helpers.initramfs_images import compress, cpio_archive, write_files

    from imgscan.policy import check, load_profile
    payload = compress(cpio_archive(write_files(tmp_path / "initramfs", {
        "init": b"#!/bin/sh\n", "usr/lib/modules/x/virtio_blk.ko": bytes(range(256)) * 4096})),
        "gzip")
    version = "6.1.0-9-amd64"
    tree: dict[str, Content] = {
        "etc/os-release": real.DEBIAN12_OS_RELEASE, "bin/sh": Path("/bin/sh").read_bytes(),
        "usr/": "", f"boot/vmlinuz-{version}": b"MZ",
        f"boot/initrd.img-{version}": payload[:len(payload) // 2],
        f"lib/modules/{version}/modules.dep": "kernel/drivers/block/virtio_blk.ko:\n"}
    info, lx = linux_of_with_findings(ext4_volume(tmp_path, tree))
    assert lx["distro"] == "debian" and lx["kernels"][0]["virtio"]["virtio_blk"] is None
    (finding,) = info["findings"]
    assert finding["id"] == "truncated" and f"initrd.img-{version}" in finding["message"]
    assert info["finding_stages"] == ["linux"]
    (rule,) = [r for r in check(info, load_profile())["rules"] if r["id"] == "virtio-drivers"]
    assert rule["status"] == "unknown"


def linux_of_with_findings(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with imgscan.open(path) as img:
        info = img.info()
    return info, info["linux"]


def test_a_separate_usr_is_mounted_from_fstab(tmp_path: Path) -> None:
    """A disk made by sfdisk with the root and /usr on two ext4 partitions (mkfs.ext4 -d,
    UUIDs given with -U): /etc/os-release and /bin link into /usr, which only the
    separate volume holds, so the release and the architecture come from it."""
    root_uuid, usr_uuid = "0b7a4c3e-1111-4a2b-9c3d-5e6f7a8b9c01", \
        "0b7a4c3e-2222-4a2b-9c3d-5e6f7a8b9c02"
    root: dict[str, Content] = {
        "etc/os-release": Link("../usr/lib/os-release"), "bin": Link("usr/bin"), "usr/": "",
        "etc/fstab": f"UUID={root_uuid} / ext4 defaults 0 1\n"
                     f"UUID={usr_uuid} /usr ext4 defaults 0 2\n"}
    usr: dict[str, Content] = {"lib/os-release": real.DEBIAN12_OS_RELEASE,
                               "bin/sh": Path("/bin/sh").read_bytes()}
    volumes = [ext4_volume(tmp_path, root, name="root", uuid=root_uuid),
               ext4_volume(tmp_path, usr, name="usr", uuid=usr_uuid)]
    disk = partitioned_disk(tmp_path / "disk.img", volumes)
    _, lx = linux_of(disk)
    assert (lx["distro"], lx["arch"], lx["root"]["partition"]) == ("debian", "x86_64", 1)
    assert lx["mounts"][1] == {"mountpoint": "/usr", "volume": "partition 2",
                               "filesystem": "ext4"}
    assert [e["on_this_disk"] for e in lx["fstab"]] == [True, True]

"""Installed kernels, their initramfs and driver states, on ext4 trees with initramfs
images made by cpio and the real compressors; versions ordered and compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.initramfs_images import (
    compress,
    cpio_archive,
    microcode_archive,
    needs_cpio,
    write_files,
)
from helpers.linux_tree import Content, Link, guest_tree
from test_limits import _cap_boundary

from imgscan.guest.linux.kernels import (
    installed,
    kernels,
    module_name,
)
from imgscan.guest.linux.tree import GuestTree

pytestmark = needs_cpio

DEBIAN = "6.1.0-57-cloud-amd64"
RHEL = "5.14.0-362.8.1.el9_3.x86_64"

#: The lines that matter of Debian 12's /boot/config-6.1.0-57-cloud-amd64 (every VirtIO
#: driver a module, CONFIG_VIRTIO_ANCHOR and the menu built in).
DEBIAN_CONFIG = """\
CONFIG_BLK_MQ_VIRTIO=y
CONFIG_XEN_BLKDEV_FRONTEND=m
CONFIG_VIRTIO_BLK=m
CONFIG_SCSI_VIRTIO=m
CONFIG_VIRTIO_NET=m
CONFIG_XEN_NETDEV_FRONTEND=m
CONFIG_VIRTIO_ANCHOR=y
CONFIG_VIRTIO=m
CONFIG_VIRTIO_PCI_LIB=m
CONFIG_VIRTIO_MENU=y
CONFIG_VIRTIO_PCI=m
CONFIG_VIRTIO_PCI_LEGACY=y
# CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set
"""
#: As RHEL 9 builds them: the VirtIO core and PCI transport and virtio_blk built in.
RHEL_CONFIG = """\
CONFIG_VIRTIO_BLK=y
CONFIG_SCSI_VIRTIO=m
CONFIG_VIRTIO_NET=m
CONFIG_VIRTIO=y
CONFIG_VIRTIO_PCI=y
"""
D = f"usr/lib/modules/{DEBIAN}/kernel/drivers"
#: Debian's initramfs: the VirtIO and Xen frontends, but (here) not virtio_pci.
DEBIAN_INITRAMFS = {
    "init": b"#!/bin/sh\n",
    f"{D}/block/virtio_blk.ko": b"\x7fELF",
    f"{D}/scsi/virtio_scsi.ko": b"\x7fELF",
    f"{D}/net/virtio_net.ko": b"\x7fELF",
    f"{D}/virtio/virtio.ko": b"\x7fELF",
    f"{D}/virtio/virtio_ring.ko": b"\x7fELF",
    f"{D}/block/xen-blkfront.ko": b"\x7fELF",
    f"{D}/net/xen-netfront.ko": b"\x7fELF",
}
DEBIAN_DEP = "".join(f"kernel/drivers/{p}: \n" for p in (
    "block/virtio_blk.ko", "scsi/virtio_scsi.ko", "net/virtio_net.ko", "virtio/virtio.ko",
    "virtio/virtio_ring.ko", "virtio/virtio_pci.ko", "block/xen-blkfront.ko",
    "net/xen-netfront.ko"))
R = f"usr/lib/modules/{RHEL}"
#: A RHEL initramfs (dracut) with Huawei UVP's PV block driver forced in, xz-compressed
#: modules as RHEL ships them, and no virtio_scsi.
RHEL_INITRAMFS = {
    f"{R}/kernel/drivers/net/virtio_net.ko.xz": b"\xfd7zXZ\x00",
    f"{R}/extra/xen-vbd.ko.xz": b"\xfd7zXZ\x00",
}


def _initramfs(tmp: Path, files: dict[str, bytes], fmt: str) -> bytes:
    early = microcode_archive(tmp)
    return early + compress(cpio_archive(write_files(tmp / "main", files)), fmt)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> GuestTree:
    """Debian's layout (/boot images, /lib -> usr/lib), a RHEL BLS kernel (image in its
    module tree), and a module tree left behind by a removed kernel; /boot separate."""
    tmp = tmp_path_factory.mktemp("kernels")
    root: dict[str, Content] = {
        "lib": Link("usr/lib"),
        f"usr/lib/modules/{DEBIAN}/modules.dep": DEBIAN_DEP,
        f"usr/lib/modules/{DEBIAN}/modules.builtin": "kernel/drivers/xen/xenbus/xenbus.ko\n",
        f"{R}/vmlinuz": b"MZ kernel image",
        f"{R}/config": RHEL_CONFIG,
        f"{R}/modules.dep": "kernel/drivers/net/virtio_net.ko.xz:\n",
        "usr/lib/modules/5.10.0-28-amd64/modules.dep": "kernel/drivers/block/virtio_blk.ko:\n",
        "boot/": "",
    }
    boot: dict[str, Content] = {
        f"vmlinuz-{DEBIAN}": b"MZ kernel image",
        f"config-{DEBIAN}": DEBIAN_CONFIG,
        f"initrd.img-{DEBIAN}": _initramfs(tmp / "d", DEBIAN_INITRAMFS, "gzip"),
        f"initramfs-{RHEL}.img": _initramfs(tmp / "r", RHEL_INITRAMFS, "zstd"),
    }
    return guest_tree(tmp, root, {"/boot": boot})


def test_installed_kernels(tree: GuestTree) -> None:
    """The leftover 5.10 module tree has no image: not a kernel."""
    assert installed(tree) == {DEBIAN: f"/boot/vmlinuz-{DEBIAN}", RHEL: f"/{R}/vmlinuz"}


def test_driver_states(tree: GuestTree) -> None:
    found, evidence = kernels(tree)
    expected: list[dict[str, Any]] = [
        {"version": DEBIAN, "image": f"/boot/vmlinuz-{DEBIAN}",
         "initramfs": f"/boot/initrd.img-{DEBIAN}",
         "virtio": {"virtio_blk": "initramfs", "virtio_scsi": "initramfs",
                    "virtio_net": "initramfs", "virtio_pci": "module",
                    "virtio_ring": "initramfs", "virtio": "initramfs"},
         "xen_pv": False,
         "xen": {"xen_blkfront": "initramfs", "xen_netfront": "initramfs"},
         "hyperv": {"hv_vmbus": None, "hv_storvsc": None, "hv_netvsc": None}},
        {"version": RHEL, "image": f"/{R}/vmlinuz", "initramfs": f"/boot/initramfs-{RHEL}.img",
         "virtio": {"virtio_blk": "builtin", "virtio_scsi": None, "virtio_net": "initramfs",
                    "virtio_pci": "builtin", "virtio_ring": "builtin", "virtio": "builtin"},
         "xen_pv": True,
         "xen": {"xen_blkfront": None, "xen_netfront": None},
         "hyperv": {"hv_vmbus": None, "hv_storvsc": None, "hv_netvsc": None}},
    ]
    assert found == expected
    assert evidence == (f"/boot/vmlinuz-{DEBIAN} (/boot volume), "
                        f"/{R}/vmlinuz (root volume)")


def test_a_corrupt_initramfs_costs_only_its_own_drivers(tmp_path: Path) -> None:
    """A gzip initramfs cut in half: what is built in stays known, the rest is None (not
    "module"), and the error is kept for the finding; the kernel stays listed."""
    whole = _initramfs(tmp_path / "i", DEBIAN_INITRAMFS, "gzip")
    tree = guest_tree(tmp_path, {
        f"lib/modules/{DEBIAN}/modules.dep": DEBIAN_DEP, "boot/vmlinuz-" + DEBIAN: b"MZ",
        f"boot/config-{DEBIAN}": "CONFIG_VIRTIO=y\n",
        f"boot/initrd.img-{DEBIAN}": whole[:len(whole) // 2]})
    (found,), _ = kernels(tree)
    assert found["virtio"]["virtio"] == "builtin"
    assert found["virtio"]["virtio_blk"] is None
    assert found["initramfs_error"]["id"] == "truncated"
    assert f"initrd.img-{DEBIAN}" in found["initramfs_error"]["message"]


def test_entries_cap(tree: GuestTree, monkeypatch: pytest.MonkeyPatch) -> None:
    """/boot holds the 4 files written and mkfs.ext4's lost+found: the largest listing."""
    _cap_boundary(monkeypatch, "LINUX_MAX_ENTRIES", 5, lambda: installed(tree), located=False)


def test_no_kernel(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"etc/os-release": "ID=debian\n", "boot/": ""})
    assert kernels(tree) == ([], "/boot (root volume)")


def test_module_names() -> None:
    assert module_name("kernel/drivers/block/xen-blkfront.ko") == "xen_blkfront"
    assert module_name("a/virtio_ring.ko.zst") == "virtio_ring"
    assert module_name("a/virtio_net.ko.xz") == "virtio_net"
    assert module_name("a/virtio_pci.ko.gz") == "virtio_pci"
    assert module_name("a/virtio_pci.ko.bak") is None
    assert module_name("usr/lib/modules/6.1.0/kernel/drivers/virtio") is None

"""How fstab and root= name devices, and whether a name is one of this disk's volumes."""

from __future__ import annotations

import pytest

from imgscan.guest.linux.devices import DiskIds, classify_spec, dm_lvm_name, on_this_disk

IDS = DiskIds(uuids=frozenset({"8f3c1a72-4d5e-4b91-9c2a-1e7d6b0c4f88", "ABCD-1234"}),
              labels=frozenset({"cloudimg-rootfs", "my disk"}),
              partuuids=frozenset({"0A1B2C3D-01"}), partlabels=frozenset({"EFI System"}),
              lvs=frozenset({"vg-root/lv-x", "centos/root"}))


@pytest.mark.parametrize(("spec", "by", "here"), [
    ("UUID=8f3c1a72-4d5e-4b91-9c2a-1e7d6b0c4f88", "uuid", True),
    ('UUID="8F3C1A72-4D5E-4B91-9C2A-1E7D6B0C4F88"', "uuid", True),    # quoted, upper case
    ("UUID=abcd-1234", "uuid", True),                                   # a FAT serial
    ("UUID=00000000-0000-0000-0000-000000000000", "uuid", False),
    ("LABEL=cloudimg-rootfs", "label", True),
    ("LABEL=data", "label", False),
    ("PARTUUID=0a1b2c3d-01", "partuuid", True),
    ("PARTLABEL=EFI System", "label", True),
    ("/dev/disk/by-uuid/8f3c1a72-4d5e-4b91-9c2a-1e7d6b0c4f88", "uuid", True),
    ("/dev/disk/by-label/my\\x20disk", "label", True),                  # udev's escape
    ("/dev/disk/by-partuuid/0a1b2c3d-01", "partuuid", True),
    ("/dev/disk/by-partlabel/EFI\\x20System", "label", True),
    ("/dev/disk/by-id/virtio-abc-part1", "device", None),
    ("/dev/disk/by-path/pci-0000:00:04.0-part1", "device", None),
    ("ID=virtio-abc", "device", None),
    ("/dev/mapper/vg--root-lv--x", "lvm", True),
    ("/dev/mapper/centos-root", "lvm", True),
    ("/dev/mapper/centos-swap", "lvm", False),
    ("/dev/centos/root", "lvm", True),
    ("/dev/mapper/luksroot", "other", None),                           # not VG-LV
    ("/dev/sda1", "device", None), ("/dev/vda1", "device", None),
    ("/dev/xvda1", "device", None), ("/dev/nvme0n1p1", "device", None),
    ("/dev/md/root", "device", None), ("/dev/dm-0", "device", None),
    ("tmpfs", "other", None), ("proc", "other", None), ("none", "other", None),
    ("/swapfile", "other", None), ("server:/export", "other", None),
    ("//server/share", "other", None), ("", "other", None),
])
def test_classify_and_judge(spec: str, by: str, here: bool | None) -> None:
    assert classify_spec(spec) == by
    assert on_this_disk(spec, IDS) is here


def test_device_mapper_names() -> None:
    assert dm_lvm_name("vg0-root") == "vg0/root"
    assert dm_lvm_name("my--vg-my--lv") == "my-vg/my-lv"
    assert dm_lvm_name("a---b") == "a-/b"
    assert dm_lvm_name("nodash") is None
    assert dm_lvm_name("-lv") is None
    assert dm_lvm_name("vg-") is None

"""How fstab and root= name devices, and whether a name is one of this disk's volumes."""

from __future__ import annotations

import pytest

from imgscan.guest.linux.devices import DiskIds, classify_spec, dm_lvm_name, on_this_disk

IDS = DiskIds(uuids=frozenset({"8f3c1a72-4d5e-4b91-9c2a-1e7d6b0c4f88", "ABCD-1234"}),
              labels=frozenset({"cloudimg-rootfs", "my disk"}),
              partuuids=frozenset({"0A1B2C3D-01"}), partlabels=frozenset({"EFI System"}),
              lvs=frozenset({"vg-root/lv-x", "centos/root"}), partitions=frozenset({1, 2}))


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
    ("/dev/mapper/luksroot", "device", None),                          # not VG-LV
    # Kernel names as the first disk's: the image is the imported machine's first disk.
    ("/dev/sda1", "device", True), ("/dev/vda2", "device", True),
    ("/dev/xvda3", "device", False), ("/dev/nvme0n1p1", "device", True),
    ("/dev/sdb1", "device", False), ("/dev/vda", "device", False),
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


@pytest.mark.parametrize(("spec", "kind"), [
    ("UUID=2b5c7a4e-6f0d-4c7b-9a53-0c1f7d2e8a11", "uuid"),
        ("LABEL=cloudimg-rootfs", "label"),
    ("PARTUUID=6e1f1c2a-01", "partuuid"),
    ("PARTLABEL=root", "label"),
    ("/dev/disk/by-uuid/2b5c7a4e", "uuid"),
    ("/dev/disk/by-label/root", "label"),
    ("/dev/disk/by-partuuid/6e1f1c2a-01", "partuuid"),
    ("/dev/disk/by-id/virtio-0123-part1", "device"),
    ("/dev/disk/by-path/pci-0000:00:04.0-part1", "device"),
    ("/dev/sda1", "device"), ("/dev/vda1", "device"), ("/dev/xvda1", "device"),
    ("/dev/nvme0n1p1", "device"), ("/dev/dm-0", "device"), ("/dev/md/root", "device"),
    ("/dev/mapper/centos-root", "lvm"), ("/dev/mapper/vg--data-lv--root", "lvm"),
    ("/dev/mapper/luks-2b5c", "lvm"),
    ("/dev/mapper/cryptroot", "device"), ("/dev/mapper/control", "device"),
    ("/dev/rhel/root", "lvm"), ("/dev/vg0/lv_root", "lvm"),
    ("tmpfs", "other"), ("proc", "other"), ("server:/export", "other"), ("", "other"),
    ("UUID=", "other"),
])
def test_classify_spec_of_boot_loader_roots(spec: str, kind: str) -> None:
    assert classify_spec(spec) == kind


@pytest.mark.parametrize(("spec", "label"), [
    ("/dev/disk/by-label/€", "€"),                    # udev keeps valid UTF-8 as is
    ("/dev/disk/by-label/my\\x20disk", "my disk"),     # and escapes the unsafe bytes
    ("/dev/disk/by-label/caf\\xc3\\xa9", "café"),       # byte by byte
])
def test_by_label_names_any_text(spec: str, label: str) -> None:
    from imgscan.guest.linux.devices import parse_spec
    assert parse_spec(spec) == ("label", label)
    assert on_this_disk(spec, DiskIds(labels=frozenset({label}))) is True

"""The device-name classifier the boot loader and fstab facts share."""

from __future__ import annotations

import pytest

from imgscan.guest.linux.devices import classify_spec


@pytest.mark.parametrize(("spec", "kind"), [
    ("UUID=2b5c7a4e-6f0d-4c7b-9a53-0c1f7d2e8a11", "uuid"),
    ("uuid=2b5c", "uuid"),
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
def test_classify_spec(spec: str, kind: str) -> None:
    assert classify_spec(spec) == kind

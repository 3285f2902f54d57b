"""The OpenSSH server: installed, enabled by a systemd wants link or an rc start link,
masked; and the root's ext4 feature flags against dumpe2fs on the real fixture disks.

The trees are real ext4 volumes made by mkfs.ext4 -d (helpers.linux_tree); the links are
the ones ``systemctl enable ssh`` / ``update-rc.d ssh defaults`` / ``systemctl mask``
write.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.linux_images import oracle_facts
from helpers.linux_tree import Link, guest_tree

import imgscan
from imgscan.guest.linux.daemons import sshd

SSHD = {"usr/sbin/sshd": "\x7fELF"}
UNIT = "/lib/systemd/system/ssh.service"


def test_enabled_by_a_systemd_wants_link(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {**SSHD, "etc/systemd/system/multi-user.target.wants/"
                                 "ssh.service": Link(UNIT)})
    state, where = sshd(tree)
    assert state == {"installed": True, "enabled": True}
    assert where is not None and "multi-user.target.wants/ssh.service" in where


def test_enabled_by_an_rc_link_and_socket(tmp_path: Path) -> None:
    rc = guest_tree(tmp_path / "rc", {**SSHD, "etc/rc3.d/S02sshd": Link("../init.d/sshd")})
    assert sshd(rc)[0] == {"installed": True, "enabled": True}
    sock = guest_tree(tmp_path / "sock", {
        **SSHD, "etc/systemd/system/sockets.target.wants/ssh.socket": Link(UNIT)})
    assert sshd(sock)[0]["enabled"] is True


def test_installed_but_not_enabled_or_masked(tmp_path: Path) -> None:
    off = guest_tree(tmp_path / "off", {**SSHD, "etc/systemd/system/": ""})
    assert sshd(off)[0] == {"installed": True, "enabled": False}
    masked = guest_tree(tmp_path / "masked", {
        **SSHD, "etc/systemd/system/multi-user.target.wants/ssh.service": Link(UNIT),
        "etc/systemd/system/ssh.service": Link("/dev/null")})
    state, where = sshd(masked)
    assert state == {"installed": True, "enabled": False}
    assert where is not None and "/dev/null" in where


def test_not_installed(tmp_path: Path) -> None:
    assert sshd(guest_tree(tmp_path, {"etc/": ""})) == (
        {"installed": False, "enabled": None}, None)


@pytest.mark.parametrize("variant", ["ext4-bios", "dirty", "xfs-lvm-boot"])
def test_root_features_equal_dumpe2fs(linux_disks: dict[str, Path], variant: str) -> None:
    with imgscan.open(linux_disks[variant]) as img:
        lx = img.info()["linux"]
    assert lx["sshd"] == {"installed": True, "enabled": True}  # openssh-server in base.sh
    key = "lv:vg0/root" if variant == "xfs-lvm-boot" else "1"
    dumpe2fs = oracle_facts(variant)["volumes"][key].get("dumpe2fs")
    if not dumpe2fs:  # XFS: no ext feature flags
        assert lx["root_features"] is None
        return
    assert sorted(lx["root_features"]) == sorted(dumpe2fs["Filesystem features"].split())

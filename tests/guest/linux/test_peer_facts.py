"""The Linux facts the peer clouds' rules read: the Azure Linux agent, the QEMU guest
agent, modprobe's blacklist, users with an authorized SSH key, the root filesystem's
free space and features.

Collectors alone run on real ext4 volumes made by mkfs.ext4 -d (helpers.linux_tree);
whole inspections on the real Debian 12 disk changed by debugfs and tune2fs
(helpers.linux_edits), with debugfs and dumpe2fs reading the same filesystem back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import linux_edits
from helpers.linux_tree import Content, Link, guest_tree

import imgscan
from imgscan.guest.linux.authkeys import key_users
from imgscan.guest.linux.daemons import waagent
from imgscan.guest.linux.modprobe import blacklisted
from imgscan.guest.linux.vmtools import qemu_guest_agent

PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
          "alice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
          "bob:x:1001:1001::/home/bob:/bin/bash\n"
          "svc:x:999:999::/var/lib/svc:/bin/false\n")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOa5 user@example\n"


def test_modprobe_blacklist_files_and_command_line(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {
        "etc/modprobe.d/a.conf": "# blacklist ext4\nblacklist udf  # the DVD\n"
                                 "install vfat /bin/true\ninstall cramfs /sbin/modprobe x\n",
        "etc/modprobe.d/same.conf": "blacklist floppy\n",
        # hidden by /etc/modprobe.d/same.conf (modprobe.d(5))
        "lib/modprobe.d/same.conf": "blacklist isofs\n",
        "lib/modprobe.d/b.conf": "blacklist hv-vmbus\n",
        "lib/modprobe.d/README": "blacklist nbd\n",
    })
    found, where = blacklisted(tree, "ro modprobe.blacklist=btrfs,nouveau quiet")
    assert found == ["btrfs", "floppy", "hv_vmbus", "nouveau", "udf", "vfat"]
    assert where is not None and "a.conf" in where and "command line" in where
    assert blacklisted(guest_tree(tmp_path / "none", {"etc/": ""}), None) == ([], None)


def test_waagent_installed_enabled_or_not(tmp_path: Path) -> None:
    unit = "/lib/systemd/system/walinuxagent.service"
    program: dict[str, Content] = {"usr/sbin/waagent": "#!/usr/bin/python3\n"}
    enabled = guest_tree(tmp_path / "on", {
        **program, "etc/systemd/system/multi-user.target.wants/walinuxagent.service":
        Link(unit)})
    assert waagent(enabled)[0] == {"installed": True, "enabled": True}
    assert waagent(guest_tree(tmp_path / "off", program))[0] == {"installed": True,
                                                                 "enabled": False}
    masked = guest_tree(tmp_path / "mask", {
        **program, "etc/systemd/system/waagent.service": Link("/dev/null"),
        "etc/systemd/system/multi-user.target.wants/waagent.service": Link(unit)})
    assert waagent(masked)[0]["enabled"] is False
    assert waagent(guest_tree(tmp_path / "no", {"etc/": ""})) == (
        {"installed": False, "enabled": None}, None)


def test_key_users_are_login_users_with_a_key(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {
        "etc/passwd": PASSWD,
        "root/.ssh/authorized_keys": KEY,             # root does not count
        "home/alice/.ssh/authorized_keys": "# none yet\n\n" + KEY,
        "home/bob/.ssh/authorized_keys": "# none yet\n",
        "var/lib/svc/.ssh/authorized_keys": KEY,      # no login shell
    })
    users, where = key_users(tree)
    assert users == ["alice"]
    assert where is not None and "/home/alice/.ssh/authorized_keys" in where
    assert key_users(guest_tree(tmp_path / "none", {"etc/": ""})) == (None, None)


def test_qemu_guest_agent_by_its_files(tmp_path: Path) -> None:
    found = guest_tree(tmp_path / "ga", {"usr/sbin/qemu-ga": "\x7fELF"})
    assert qemu_guest_agent(found)[0] is True
    assert qemu_guest_agent(guest_tree(tmp_path / "no", {"etc/": ""})) == (False, None)


# -- whole inspections of the edited Debian disk, against debugfs and dumpe2fs ------------

def linux_of(path: Path) -> dict[str, Any]:
    with imgscan.open(path) as img:
        lx = img.info()["linux"]
    assert lx is not None
    return lx  # type: ignore[no-any-return]


def assert_fs_facts_equal_dumpe2fs(lx: dict[str, Any], device: str) -> None:
    head = linux_edits.dumpe2fs_header(device)
    assert lx["root_free_bytes"] == int(head["Free blocks"]) * int(head["Block size"])
    assert set(lx["root_features"]) == set(head["Filesystem features"].split())


def test_unready_disk_facts_equal_debugfs(linux_disks: dict[str, Path], tmp_path: Path) -> None:
    raw, device = linux_edits.edited_disk(linux_disks["ext4-bios"], tmp_path / "unready",
                                          **linux_edits.UNREADY)
    lx = linux_of(raw)
    assert_fs_facts_equal_dumpe2fs(lx, device)
    assert lx["root_free_bytes"] < 101 << 20
    assert {"project", "quota"} <= set(lx["root_features"])
    conf = linux_edits.debugfs_cat(device, "/etc/modprobe.d/azure-unready.conf")
    assert b"blacklist udf" in conf and b"install vfat /bin/true" in conf
    assert {"udf", "vfat"} <= set(lx["modprobe_blacklist"])
    assert linux_edits.debugfs_cat(device, "/usr/bin/qemu-ga")
    assert lx["qemu_guest_agent"] is True


def test_ready_disk_facts_equal_debugfs(linux_disks: dict[str, Path], tmp_path: Path) -> None:
    raw, device = linux_edits.edited_disk(linux_disks["no-cloud-init"], tmp_path / "ready",
                                          **linux_edits.READY)
    lx = linux_of(raw)
    assert_fs_facts_equal_dumpe2fs(lx, device)
    passwd = linux_edits.debugfs_cat(device, "/etc/passwd").decode()
    assert "azureuser:x:1000:1000::/home/azureuser:/bin/bash" in passwd.splitlines()
    assert b"ssh-ed25519" in linux_edits.debugfs_cat(device, "/home/azureuser/.ssh/"
                                                             "authorized_keys")
    assert lx["ssh_key_users"] == ["azureuser"]
    assert lx["waagent"] == {"installed": True, "enabled": True}
    assert lx["cloud_init"]["installed"] is False
    cfg = linux_edits.debugfs_cat(device, "/boot/grub/grub.cfg").decode()
    assert "rootdelay=300" in cfg
    assert "rootdelay=300" in lx["kernel_cmdline"].split()


@pytest.mark.parametrize("variant", ["ext4-bios", "dirty"])
def test_root_free_space_equals_dumpe2fs(linux_disks: dict[str, Path], variant: str,
                                         tmp_path: Path) -> None:
    raw, device = linux_edits.edited_disk(linux_disks[variant], tmp_path)
    assert_fs_facts_equal_dumpe2fs(linux_of(raw), device)

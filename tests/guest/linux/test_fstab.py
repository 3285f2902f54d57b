"""/etc/fstab as libmount reads it: findmnt (util-linux) parses the same file as the oracle."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import linux_configs as real
from helpers.linux_tree import guest_tree

from imgscan.guest.linux.devices import DiskIds
from imgscan.guest.linux.fstab import fstab, parse

# A CentOS 7 installer's fstab (LVM root, /boot by UUID) with the lines an imported
# image gets wrong: a data disk without nofail, a kernel name, escapes in a path.
CENTOS7_LVM_FSTAB = """\

#
# /etc/fstab
# Created by anaconda on Tue Mar 17 10:04:38 2020
#
# Accessible filesystems, by reference, are maintained under '/dev/disk'
# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info
#
/dev/mapper/centos-root /                       xfs     defaults        0 0
UUID=5e3a8d4c-2f4b-4b4e-9a0f-6f2d2b8c9e11 /boot                   xfs     defaults        0 0
/dev/mapper/centos-swap swap                    swap    defaults        0 0
UUID=1111aaaa-2222-bbbb-3333-cccc4444dddd /data xfs defaults 0 0
LABEL=backup\\040disk /mnt/backup\\040disk ext4 defaults,nofail,x-systemd.device-timeout=5 0 2
/dev/sdb1\t/srv\text4\tnoatime\t0\t2
tmpfs /tmp tmpfs mode=1777,size=2G 0 0 # trailing words after passno are ignored
/swapfile none swap sw
proc /proc proc
 tabs-only-two-fields /x
bad-freq /y ext4 defaults x 0
# /dev/sdc1 /old ext4 defaults 0 0
"""
IDS = DiskIds(uuids=frozenset({"5e3a8d4c-2f4b-4b4e-9a0f-6f2d2b8c9e11"}),
              labels=frozenset({"backup disk"}), lvs=frozenset({"centos/root", "centos/swap"}))

needs_findmnt = pytest.mark.skipif(shutil.which("findmnt") is None, reason="util-linux findmnt")


def findmnt(tmp_path: Path, text: str) -> list[tuple[str, str, str, str]]:
    path = tmp_path / "fstab"
    path.write_text(text)
    done = subprocess.run(["findmnt", "--fstab", "-F", str(path), "--json",
                           "-o", "SOURCE,TARGET,FSTYPE,OPTIONS"], capture_output=True, text=True)
    out = done.stdout
    assert done.returncode == 0 or not out.strip()      # 1: no entry at all
    return [(f["source"], f["target"], f["fstype"], f["options"] or "defaults")
            for f in json.loads(out)["filesystems"]] if out.strip() else []


@needs_findmnt
@pytest.mark.parametrize("text", [CENTOS7_LVM_FSTAB, real.DEBIAN12_FSTAB,
                                  "a\\101b /c\\\\ ext4 \\134 0 0\n\\0 / x\n a\tb\tc\t\td\n"])
def test_parse_agrees_with_findmnt(tmp_path: Path, text: str) -> None:
    assert parse(text) == findmnt(tmp_path, text)


def test_entries(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"etc/fstab": CENTOS7_LVM_FSTAB})
    entries, evidence = fstab(tree, IDS)
    assert evidence == "/etc/fstab (root volume)"
    assert [(e["spec"], e["mountpoint"], e["by"], e["on_this_disk"], e["nofail"])
            for e in entries] == [
        ("/dev/mapper/centos-root", "/", "lvm", True, False),
        ("UUID=5e3a8d4c-2f4b-4b4e-9a0f-6f2d2b8c9e11", "/boot", "uuid", True, False),
        ("/dev/mapper/centos-swap", "swap", "lvm", True, False),
        ("UUID=1111aaaa-2222-bbbb-3333-cccc4444dddd", "/data", "uuid", False, False),
        ("LABEL=backup disk", "/mnt/backup disk", "label", True, True),
        ("/dev/sdb1", "/srv", "device", False, False),     # another disk than the first
        ("tmpfs", "/tmp", "other", None, False),
        ("/swapfile", "none", "other", None, False),
        ("proc", "/proc", "other", None, False),
    ]
    assert entries[4]["options"] == "defaults,nofail,x-systemd.device-timeout=5"
    assert entries[8]["type"] == "proc" and entries[8]["options"] == "defaults"


def test_no_fstab(tmp_path: Path) -> None:
    assert fstab(guest_tree(tmp_path, {"etc/": ""}), DiskIds()) == ([], None)


def test_binary_garbage_is_no_entry() -> None:
    assert parse("\x00\xff\xfe\n\x01 \x02\n") == []

"""GuestTree: one view over the root and its separate mounts, symlinks resolved in the guest."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.linux_tree import Content, Link, guest_tree

from imgscan import limits
from imgscan.errors import LimitExceeded
from imgscan.guest.linux.tree import GuestTree

ROOT: dict[str, Content] = {
    "etc/os-release": "ID=debian\n", "bin": Link("usr/bin"), "usr/": "", "boot/": "",
    "etc/loop": Link("/etc/loop"), "etc/abs": Link("/usr/lib/os-release")}
MOUNTS: dict[str, dict[str, Content]] = {"/usr": {"bin/sh": "#!", "lib/os-release": "ID=x\n"},
          "/boot": {"grub/grub.cfg": "set default=0\n"}}


@pytest.fixture
def tree(tmp_path: Path) -> GuestTree:
    return guest_tree(tmp_path, ROOT, MOUNTS)


def test_reads_across_mounts(tree: GuestTree) -> None:
    assert tree.text("/etc/os-release") == "ID=debian\n"
    assert tree.text("/boot/grub/grub.cfg") == "set default=0\n"
    assert sorted(tree.listdir("/usr")) == ["bin", "lib", "lost+found"]
    assert tree.where("/boot/grub/grub.cfg") == "/boot/grub/grub.cfg (/boot volume)"


def test_symlinks_cross_into_a_separate_mount(tree: GuestTree) -> None:
    assert tree.kind("/bin", follow=False) == "symlink"
    assert tree.readlink("/bin") == "usr/bin"
    assert tree.read("/bin/sh") == b"#!"
    assert tree.text("/etc/abs") == "ID=x\n"


def test_absent_is_none_not_an_error(tree: GuestTree) -> None:
    assert tree.read("/nope") is None
    assert tree.read("/usr") is None            # a directory is not a file
    assert tree.listdir("/etc/os-release") == []
    assert tree.size("/usr/bin/sh") == 2


def test_a_reader_reads_a_file_piece_by_piece(tree: GuestTree) -> None:
    opened = tree.reader("/etc/abs")                  # through a link into /usr
    assert opened is not None
    read, size = opened
    assert size == 5 and [read(i, 2) for i in (0, 2, 4, 6)] == [b"ID", b"=x", b"\n", b""]
    assert tree.reader("/usr") is None and tree.reader("/nope") is None


def test_config_cap_boundary(tree: GuestTree, monkeypatch: pytest.MonkeyPatch) -> None:
    size = len("ID=debian\n")
    monkeypatch.setattr(limits, "LINUX_MAX_CONFIG_BYTES", size)
    assert tree.read("/etc/os-release") is not None
    monkeypatch.setattr(limits, "LINUX_MAX_CONFIG_BYTES", size - 1)
    with pytest.raises(LimitExceeded, match="LINUX_MAX_CONFIG_BYTES"):
        tree.read("/etc/os-release")


def test_a_loop_of_links_is_refused_at_the_cap(tree: GuestTree) -> None:
    with pytest.raises(LimitExceeded, match="FS_MAX_SYMLINK_FOLLOWS"):
        tree.kind("/etc/loop")

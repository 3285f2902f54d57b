"""grubenv blocks written by grub-editenv, read back as ``grub-editenv list`` prints
them; broken blocks are reported, never raised."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.grub_mkconfig import grub_editenv, grub_editenv_list

from imgscan.guest.linux.boot import grubenv

needs_editenv = pytest.mark.skipif(shutil.which("grub-editenv") is None,
                                   reason="grub-editenv (grub-common) is not installed")


@needs_editenv
@pytest.mark.parametrize("assignments", [
    (),
    ("saved_entry=gnulinux-advanced-x>gnulinux-6.1.0-10-amd64-advanced-x",),
    ("kernelopts=root=/dev/mapper/rhel-root ro crashkernel=auto rd.lvm.lv=rhel/root",
     "saved_entry=3f2504e04f8941d39a0c0305e82c3301-5.14.0-427.13.1.el9_4.x86_64",
     "boot_success=0"),
    ("back=a\\b\\\\c", "newline=one\ntwo", "empty=", "equals=a=b"),
])
def test_matches_grub_editenv_list(tmp_path: Path, assignments: tuple[str, ...]) -> None:
    data = grub_editenv(tmp_path / "grubenv", *assignments)
    assert len(data) == grubenv.BLOCK_SIZE
    env = grubenv.parse(data, "grubenv")
    assert env.problems == []
    listed = "".join(f"{k}={v}\n" for k, v in env.variables.items())
    assert listed == grub_editenv_list(tmp_path / "grubenv")


@needs_editenv
def test_wrong_size_is_read_and_reported(tmp_path: Path) -> None:
    data = grub_editenv(tmp_path / "grubenv", "saved_entry=1")
    env = grubenv.parse(data[:200], "grubenv")
    assert env.variables == {"saved_entry": "1"}
    assert "200 bytes, not the 1024" in str(env.problems[0])


@pytest.mark.parametrize(("data", "problem", "variables"), [
    (b"# GRUB Environment Blocc\nsaved_entry=1\n", "signature", {}),
    (b"", "signature", {}),
    (b"# GRUB Environment Block\nsaved_entry=1\nbroken", "without '='", {"saved_entry": "1"}),
    (b"# GRUB Environment Block\nx=1\\", "not the 1024", {"x": "1"}),
])
def test_malformed(data: bytes, problem: str, variables: dict[str, str]) -> None:
    env = grubenv.parse(data, "grubenv")
    assert env.variables == variables
    assert any(problem in str(p) for p in env.problems)
    assert all(p.structure == "GRUB environment block" for p in env.problems)

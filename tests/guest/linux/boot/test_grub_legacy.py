"""GRUB Legacy menus that are malformed on purpose: huge blank runs, numbers no int()
reads, digits that are not ASCII."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.linux_tree import guest_tree

from imgscan.guest.linux.boot import grub_legacy

MENU = "title one\nkernel /vmlinuz-1 ro\ntitle two\nkernel /vmlinuz-2 ro\n"


def _entries(tmp_path: Path, text: str) -> tuple[list[str | None], int | None]:
    tree = guest_tree(tmp_path, {"boot/grub/menu.lst": text})
    found, index = grub_legacy.entries(tree, "/boot/grub/menu.lst", text)
    return [e.kernel for e in found], index


@pytest.mark.parametrize("default", ["\u00b2", "9" * 5000, "1" * 10, "-1", "1x"],
                         ids=["superscript", "digits-5000", "digits-10", "negative", "1x"])
def test_unreadable_default_is_entry_zero(tmp_path: Path, default: str) -> None:
    assert _entries(tmp_path, f"default {default}\n" + MENU) == (["/vmlinuz-1", "/vmlinuz-2"], 0)


def test_default_forms_still_read(tmp_path: Path) -> None:
    assert _entries(tmp_path / "a", "default=1\n" + MENU)[1] == 1
    assert _entries(tmp_path / "b", "  default \t = 1  \r\n" + MENU)[1] == 1


def test_long_blank_runs_are_linear(tmp_path: Path) -> None:
    """Blanks between or after words (200k of them) are read in linear time."""
    blanks = " " * 200_000
    text = f"title x{blanks}y{blanks}\nkernel{blanks}/vmlinuz-1{blanks}ro{blanks}\n"
    tree = guest_tree(tmp_path, {"boot/grub/menu.lst": text})
    found, index = grub_legacy.entries(tree, "/boot/grub/menu.lst", text)
    assert index == 0 and found[0].title == f"x{blanks}y"
    assert found[0].kernel == "/vmlinuz-1" and found[0].cmdline == "ro"
    # A name glued to a path is no command.
    assert _entries(tmp_path / "b", "title a\nkernel/vmlinuz-1\n") == ([None], 0)

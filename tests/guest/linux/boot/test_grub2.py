"""GRUB 2's default entry: every form ``default`` takes (grub-core/normal/menu.c), the
static reading of conditions, and the work caps."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.linux_tree import guest_tree

from imgscan import limits
from imgscan.errors import LimitExceeded
from imgscan.guest.linux.boot import grub2

MENU = """\
menuentry_id_option="--id"
menuentry 'First' --id first { linux /boot/vmlinuz-1.0 root=UUID=u1 }
submenu 'Sub > menu' $menuentry_id_option sub {
  menuentry 'Inner A' --id inner-a { linux /boot/vmlinuz-2.0 root=/dev/vda1 }
  menuentry "Inner B" --id=inner-b { linux16 (hd0,msdos1)/vmlinuz-3.0 root=LABEL=r }
}
menuentry 'Third' { linuxefi /boot/vmlinuz-4.0 root=PARTUUID=p-01 $extra }
"""


def _default(tmp_path: Path, header: str, menu: str = MENU) -> tuple[str | None, list[str]]:
    tree = guest_tree(tmp_path, {"boot/grub/grub.cfg": header + menu})
    result, found, index = grub2.entries(tree, "/boot/grub/grub.cfg")
    problems = [str(p) for p in result.problems]
    return (None if index is None else found[index].kernel), problems


@pytest.mark.parametrize(("header", "kernel"), [
    ("", "/boot/vmlinuz-1.0"),                                   # unset: entry 0
    ("set default=2\n", "/boot/vmlinuz-4.0"),
    ("set default=0x2\n", "/boot/vmlinuz-4.0"),                  # grub_strtoul base 0
    ("set default=9\n", "/boot/vmlinuz-1.0"),                    # beyond: entry 0
    ("set default='Third'\n", "/boot/vmlinuz-4.0"),              # title
    ("set default=sub\n", "/boot/vmlinuz-2.0"),                  # submenu: its entry 0
    ("set default='sub>inner-b'\n", "/vmlinuz-3.0"),             # id path
    ("set default='Sub >> menu>Inner B'\n", "/vmlinuz-3.0"),     # '>>' is a '>'
    ("set default='1>1'\n", "/vmlinuz-3.0"),                     # number path
    ("set default='1>7'\n", "/boot/vmlinuz-2.0"),
    ("default=Third\n", "/boot/vmlinuz-4.0"),                    # plain assignment
    ("set x=Third\nset default=\"$x\"\n", "/boot/vmlinuz-4.0"),
    ("if [ -s $prefix/grubenv ]; then set default=2; else set default=1; fi\n",
     "/boot/vmlinuz-2.0"),
    ("if [ \"${next_entry}\" ] ; then set default=2; elif [ x = x ]; then set default=1; fi\n",
     "/boot/vmlinuz-2.0"),
    ("if loadfont unicode; then set default=2; fi\n", "/boot/vmlinuz-1.0"),
    ("if [ ! -z x ]; then set default=2; fi\n", "/boot/vmlinuz-4.0"),
    ("if [ 3 -gt 2 ]; then set default=2; fi\n", "/boot/vmlinuz-4.0"),
    ("for i in 1 2; do set default=2; done\n", "/boot/vmlinuz-1.0"),   # loops not run
])
def test_default_forms(tmp_path: Path, header: str, kernel: str) -> None:
    assert _default(tmp_path, header) == (kernel, [])


def test_entry_body_sees_the_final_environment(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"boot/grub/grub.cfg": MENU + "set extra=quiet\n"})
    _, found, _ = grub2.entries(tree, "/boot/grub/grub.cfg")
    assert found[3].cmdline == "root=PARTUUID=p-01 quiet"
    assert found[1].path == ["Sub > menu"] and found[2].id == "inner-b"


def test_unset_id_option_is_no_argument(tmp_path: Path) -> None:
    """Without the header's ``menuentry_id_option="--id"``, ``$menuentry_id_option sub``
    leaves ``sub`` a plain argument: the submenu is not named ``sub``."""
    menu = MENU.replace('menuentry_id_option="--id"\n', "")
    assert _default(tmp_path, "set default=sub\n", menu) == ("/boot/vmlinuz-1.0", [])


def test_empty_and_broken(tmp_path: Path) -> None:
    assert _default(tmp_path / "a", "", "") == (None, [])
    kernel, problems = _default(tmp_path / "b", "menuentry 'x' {\n linux /boot/vmlinuz-9\n")
    assert kernel is None and "no '}' before the end of the file" in problems[0]
    # A broken command before the menu costs only that command.
    kernel, problems = _default(tmp_path / "c", "}\nset default=2\n")
    assert kernel == "/boot/vmlinuz-4.0" and len(problems) == 1


def test_configfile_loop_is_bounded(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"boot/grub/grub.cfg": "configfile /boot/grub/grub.cfg\n"})
    with pytest.raises(LimitExceeded, match="BOOT_MAX_CONFIG_FILES"):
        grub2.entries(tree, "/boot/grub/grub.cfg")


def test_doubling_variable_is_bounded(tmp_path: Path) -> None:
    cfg = "set a=0123456789abcdef\n" + "set a=$a$a\n" * 40
    tree = guest_tree(tmp_path, {"boot/grub/grub.cfg": cfg})
    with pytest.raises(LimitExceeded, match="BOOT_MAX_WORD_BYTES"):
        grub2.entries(tree, "/boot/grub/grub.cfg")
    assert limits.BOOT_MAX_WORD_BYTES < 16 << 40


# -- hostile input: each would otherwise recurse, raise or repeat without bound ----------
def test_many_negations_are_counted_not_recursed(tmp_path: Path) -> None:
    """``[ ! ! ... x ]``: an even count of ``!`` is the plain test, an odd one its negation."""
    assert _default(tmp_path / "a", "if [ " + "! " * 5000 + "x ]; then set default=2; fi\n") \
        == ("/boot/vmlinuz-4.0", [])
    assert _default(tmp_path / "b", "if [ " + "! " * 5001 + "x ]; then set default=2; fi\n") \
        == ("/boot/vmlinuz-1.0", [])


@pytest.mark.parametrize("header", [
    "set default=" + "9" * 5000 + "\n",           # decimal past int()'s digit limit
    "set default=" + "1" * 21 + "\n",             # past 64 bits
    "set default=0x" + "f" * 5000 + "\n",
], ids=["decimal-5000", "decimal-21", "hex-5000"])
def test_huge_numbers_are_out_of_range(tmp_path: Path, header: str) -> None:
    assert _default(tmp_path, header) == ("/boot/vmlinuz-1.0", [])


def test_huge_numbers_compare_as_out_of_range(tmp_path: Path) -> None:
    big = "9" * 5000
    assert _default(tmp_path / "a", f"if [ {big} -gt 1 ]; then set default=2; fi\n") \
        == ("/boot/vmlinuz-4.0", [])
    assert _default(tmp_path / "b", f"if [ -{big} -lt 1 ]; then set default=2; fi\n") \
        == ("/boot/vmlinuz-4.0", [])
    # A superscript digit is no digit: the test reads it as 0.
    assert _default(tmp_path / "c", "if [ \u00b2 -eq 0 ]; then set default=2; fi\n") \
        == ("/boot/vmlinuz-4.0", [])


def test_source_inside_nested_ifs_is_bounded(tmp_path: Path) -> None:
    """The nesting of ``if`` blocks and of ``source``d files counts as one depth."""
    depth = limits.BOOT_MAX_NESTING - 1
    cfg = "if true; then\n" * depth + "source /boot/grub/grub.cfg\n" + "fi\n" * depth
    tree = guest_tree(tmp_path, {"boot/grub/grub.cfg": cfg})
    with pytest.raises(LimitExceeded, match="BOOT_MAX_NESTING"):
        grub2.entries(tree, "/boot/grub/grub.cfg")


def test_source_nesting_in_entry_body_is_bounded(tmp_path: Path) -> None:
    depth = limits.BOOT_MAX_NESTING - 1
    body = "if true; then\n" * depth + "source /boot/grub/b.cfg\n" + "fi\n" * depth
    tree = guest_tree(tmp_path, {"boot/grub/grub.cfg": "menuentry a {\n" + body + "}\n",
                                 "boot/grub/b.cfg": body})
    with pytest.raises(LimitExceeded, match="BOOT_MAX_NESTING"):
        grub2.entries(tree, "/boot/grub/grub.cfg")


def test_configfile_in_an_entry_body_leaves_later_entries_alone(tmp_path: Path) -> None:
    cfg = ("set default=1\n"
           "menuentry a { configfile /boot/grub/o.cfg }\n"
           "menuentry b { if false; then linux /vmlinuz-9; else linux /vmlinuz-2; fi }\n")
    tree = guest_tree(tmp_path, {"boot/grub/grub.cfg": cfg,
                                 "boot/grub/o.cfg": "menuentry o { linux /vmlinuz-o }\n"})
    result, found, index = grub2.entries(tree, "/boot/grub/grub.cfg")
    assert index == 1 and found[1].kernel == "/vmlinuz-2"
    assert found[0].kernel is None
    assert [f.split(" ")[0] for f in result.files] == ["/boot/grub/grub.cfg"]
    assert [i.title for i in result.items] == ["a", "b"]


def test_grubenv_and_bls_are_read_once(tmp_path: Path) -> None:
    """Loading a broken grubenv or listing BLS entries many times reports their
    problems once."""
    cfg = "load_env\n" * 200 + "blscfg\n" * 3
    tree = guest_tree(tmp_path, {
        "boot/grub/grub.cfg": cfg,
        "boot/grub/grubenv": "# GRUB Environment Block\nsaved_entry=x\n",   # not 1024 bytes
        "boot/loader/entries/a.conf": "title A\nlinux /vmlinuz-a\noptions 'root=/dev/x\n"})
    result, found, _ = grub2.entries(tree, "/boot/grub/grub.cfg")
    assert [e.title for e in found] == ["A"] * 3
    problems = [str(p) for p in result.problems]
    assert len(problems) == len(set(problems)) >= 2, problems

"""root's password state from /etc/shadow; the hash never appears in a result."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import linux_configs as real
from helpers.linux_tree import guest_tree

from imgscan.guest.linux.shadow import root_password

HASH = "$6$saltsalt$" + "x" * 86


@pytest.mark.parametrize(("shadow", "state"), [
    (real.DEBIAN12_SHADOW, "locked"),
    (f"root:{HASH}:19000:0:99999:7:::\n", "set"),
    (f"root:!{HASH}:19000:0:99999:7:::\n", "locked"),         # passwd -l
    ("root:!!:19000:0:99999:7:::\n", "locked"),               # RHEL: never set
    ("root:*LK*:19000::::::\n", "locked"),
    ("root::19000:0:99999:7:::\n", "empty"),
])
def test_states(tmp_path: Path, shadow: str, state: str) -> None:
    got, evidence = root_password(guest_tree(tmp_path, {"etc/shadow": shadow}))
    assert got == state
    assert evidence == "/etc/shadow (root volume)"
    assert HASH not in (evidence or "")


def test_no_root_line_or_no_file(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"etc/shadow": "daemon:*:1::::::\n\x00\xff\n"})
    assert root_password(tree) == (None, "/etc/shadow (root volume)")
    assert root_password(guest_tree(tmp_path / "b", {"etc/": ""})) == (None, None)

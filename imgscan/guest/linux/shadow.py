"""Whether root has a password, from ``/etc/shadow``; the hash itself never leaves here.

Source: shadow(5): the second field is the encrypted password; empty means no
password is needed; a value starting with ``!`` (``passwd -l``, ``!!`` for "never
set" on RHEL) or ``*`` (``*LK*`` on older systems) cannot match any password.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    from imgscan.guest.linux.tree import GuestTree

    State = Literal["set", "locked", "empty"]

SHADOW = "/etc/shadow"


def password_state(field: str) -> State:
    if not field:
        return "empty"
    return "locked" if field[0] in "!*" else "set"


def root_password(tree: GuestTree) -> tuple[State | None, str | None]:
    """``set``, ``locked`` or ``empty`` for root, and the file (never the hash);
    None when there is no shadow file or no root line in it."""
    text = tree.text(SHADOW)
    if text is None:
        return None, None
    for line in text.split("\n"):
        fields = line.split(":")
        if fields[0] == "root" and len(fields) >= 2:
            return password_state(fields[1]), tree.where(SHADOW)
    return None, tree.where(SHADOW)

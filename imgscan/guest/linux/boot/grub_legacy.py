"""GRUB Legacy (0.97) menus: ``/boot/grub/menu.lst`` (Debian, SUSE) and
``/boot/grub/grub.conf`` (RHEL/CentOS 5 and 6).

Source: the GRUB Legacy manual, "Menu-specific commands" and "General commands":
one command per line, its name and arguments separated by blanks or ``=``; ``title``
starts an entry that runs to the next ``title``; ``default N`` numbers entries from
0 (``default saved`` reads the number ``savedefault`` wrote to ``/boot/grub/default``,
whose first line is that number); a default past the last entry boots entry 0.
``kernel FILE ARGS...`` names the image and its command line (``--type=``/
``--no-mem-option`` options before the file).
"""

from __future__ import annotations

import posixpath
import re

from imgscan import limits
from imgscan.guest.linux.boot.entry import BootEntry, strip_device

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

#: A command line once stripped: its name, then blanks or ``=``, then its argument.
_COMMAND = re.compile(r"([A-Za-z_]+)(?:[\s=]+(.*))?")


def entries(tree: GuestTree, config: str, text: str) -> tuple[list[BootEntry], int | None]:
    """The entries of the menu ``text`` (read from ``config``) and the default's index."""
    found: list[BootEntry] = []
    default: str | None = None
    current: BootEntry | None = None
    for line in text.split("\n"):
        m = _COMMAND.fullmatch(line.strip())
        if m is None or line.lstrip().startswith("#"):
            continue
        name, arg = m[1].lower(), m[2] or ""
        if name == "title":
            current = BootEntry(arg, str(len(found)))
            found.append(current)
            limits.enforce(len(found), "BOOT_MAX_MENU_ENTRIES", tree.where(config),
                           "GRUB Legacy menu", None, "menu entries")
        elif current is None:
            if name == "default":
                default = arg.split()[0] if arg.split() else None
        elif name == "kernel":
            words = [w for w in arg.split() if not w.startswith("--")]
            if words:
                current.kernel = strip_device(words[0])
                current.cmdline = " ".join(words[1:])
    if not found:
        return found, None
    if default == "saved":
        default = _saved(tree, posixpath.dirname(config))
    # A number of 10 digits or more is past any menu (and int() refuses 4300 digits).
    number = int(default) if default is not None and re.fullmatch(r"[0-9]{1,9}", default) else 0
    return found, number if number < len(found) else 0


def _saved(tree: GuestTree, directory: str) -> str | None:
    """The entry number ``savedefault`` stored in ``default`` beside the menu."""
    text = tree.text(posixpath.join(directory, "default"))
    if not text:
        return None
    first = text.split("\n", 1)[0].strip()
    return first or None

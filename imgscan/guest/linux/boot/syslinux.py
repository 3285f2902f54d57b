"""SYSLINUX/EXTLINUX menus: ``extlinux.conf`` (Alpine, Debian's extlinux package,
some cloud images) and ``syslinux.cfg``.

Source: the SYSLINUX wiki, "Config" and "Menu": keywords are case-insensitive and
take the rest of the line; ``LABEL`` starts an entry; ``KERNEL``/``LINUX`` name its
image and ``APPEND`` its command line (``APPEND -`` an empty one); a global
``APPEND`` applies to labels without their own; ``DEFAULT`` names the label to boot
(with ``UI menu.c32`` or ``vesamenu.c32``, ``MENU DEFAULT`` inside a label wins); with
no default the first label boots. ``INCLUDE`` reads another file in place.
"""

from __future__ import annotations

import posixpath

from imgscan import limits
from imgscan.guest.linux.boot.entry import BootEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree


class _Menu:
    def __init__(self, tree: GuestTree, config: str) -> None:
        self.tree = tree
        self.config = config
        self.files = 0
        self.entries: list[BootEntry] = []
        self.default: str | None = None
        self.menu_default: str | None = None
        self.global_append: str | None = None
        self._own_append: set[int] = set()

    def read(self, path: str) -> None:
        text = self.tree.text(path)
        if text is None:
            return
        self.files += 1
        limits.enforce(self.files, "BOOT_MAX_CONFIG_FILES", self.tree.where(path),
                       "SYSLINUX INCLUDE chain", None, "configuration files")
        for line in text.split("\n"):
            self.line(line.strip(), path)

    def line(self, line: str, path: str) -> None:
        if not line or line.startswith("#"):
            return
        word, _, rest = line.partition(" ")
        key, rest = word.lower(), rest.strip()
        current = self.entries[-1] if self.entries else None
        if key == "label":
            self.entries.append(BootEntry(rest, rest))
            limits.enforce(len(self.entries), "BOOT_MAX_MENU_ENTRIES", self.tree.where(path),
                           "SYSLINUX menu", None, "labels")
        elif key == "default":
            self.default = rest
        elif key == "include" and rest:
            self.read(posixpath.join(posixpath.dirname(path), rest.split()[0]))
        elif key in ("kernel", "linux") and current is not None:
            current.kernel = rest.split()[0] if rest else None
        elif key == "append":
            value = "" if rest == "-" else rest
            if current is None:
                self.global_append = value
            else:
                current.cmdline = value
                self._own_append.add(len(self.entries) - 1)
        elif key == "menu" and rest.lower().split()[:1] == ["default"] and current:
            self.menu_default = current.title

    def result(self) -> tuple[list[BootEntry], int | None]:
        for i, entry in enumerate(self.entries):
            if i not in self._own_append and self.global_append is not None:
                entry.cmdline = self.global_append
        if not self.entries:
            return self.entries, None
        wanted = self.menu_default or self.default
        for i, entry in enumerate(self.entries):
            if entry.title == wanted:
                return self.entries, i
        return self.entries, 0


def entries(tree: GuestTree, config: str) -> tuple[list[BootEntry], int | None]:
    """The labels of ``config`` (INCLUDEs followed) and the default's index."""
    menu = _Menu(tree, config)
    menu.read(config)
    return menu.result()

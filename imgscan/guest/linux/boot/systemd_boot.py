"""systemd-boot: ``loader/loader.conf`` and the BLS entries of ``loader/entries`` on the
EFI system partition or the extended boot partition (mounted at ``/boot``, ``/efi`` or
``/boot/efi``).

Source: loader.conf(5) (``default`` is a glob over entry ids, the entry file names
with ``.conf``; without it the first entry of the sorted list boots) and the Boot
Loader Specification (see :mod:`.bls`; several ``options`` lines are joined with
spaces). The list is ordered as :func:`.bls.blscfg_order` orders it, newest
version first, which is how systemd-boot orders entries without ``sort-key``.
"""

from __future__ import annotations

import fnmatch
import posixpath

from imgscan.guest.linux.boot import bls
from imgscan.guest.linux.boot.entry import BootEntry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

#: Where the loader's directory is found, in the order a Linux system mounts them.
ROOTS = ("/boot/efi", "/efi", "/boot")


def default_pattern(text: str) -> str | None:
    """The ``default`` glob of a loader.conf."""
    found = None
    for line in text.split("\n"):
        key, _, value = line.strip().partition(" ")
        if key == "default" and value.strip():
            found = value.strip()
    return found


def entries(tree: GuestTree, loader_conf: str) -> tuple[list[BootEntry], int | None]:
    """The entries beside ``loader_conf`` and the default's index."""
    directory = posixpath.join(posixpath.dirname(loader_conf), "entries")
    found = []
    for entry in bls.read_entries(tree, directory):
        options = entry.keys.get("options")
        found.append(BootEntry(entry.first("title") or entry.id, entry.id, entry.first("linux"),
                               " ".join(options) if options else None,
                               entry.first("version")))
    if not found:
        return found, None
    pattern = default_pattern(tree.text(loader_conf) or "")
    if pattern is not None:
        for i, e in enumerate(found):
            name = e.id or ""
            if fnmatch.fnmatchcase(f"{name}.conf", pattern) or fnmatch.fnmatchcase(name, pattern):
                return found, i
    return found, 0

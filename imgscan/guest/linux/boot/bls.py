"""Boot Loader Specification type #1 entries, ``/boot/loader/entries/*.conf``: read by
GRUB's ``blscfg`` command (Fedora, RHEL 8+, CentOS Stream, openEuler) and by
systemd-boot.

Sources: the Boot Loader Specification (uapi-group.org/specifications/specs/
boot_loader_specification: one ``key value`` per line, ``#`` comments, ``title``,
``version``, ``linux``, ``initrd``, ``options``, ``machine-id``, ``sort-key``), and
rhboot GRUB's grub-core/commands/blscfg.c: a line is split at its first blank, a
line with no value ends the file, the key ``options`` may hold ``$variables``
expanded from the GRUB environment (``$kernelopts`` in grubenv), and entries are
ordered newest first by ``version`` then by file name, both compared as RPM's
``rpmvercmp`` compares versions. The entry's id, which ``saved_entry`` names, is
its file name without ``.conf``.
"""

from __future__ import annotations

import functools
import posixpath
from dataclasses import dataclass, field

from imgscan import limits
from imgscan.guest.linux.versions import vercmp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree


@dataclass
class BlsEntry:
    """One entry file: its id (the file name without ``.conf``), where it was read,
    and every value of each key in file order."""

    id: str
    path: str
    keys: dict[str, list[str]] = field(default_factory=dict)

    def first(self, key: str) -> str | None:
        values = self.keys.get(key)
        return values[0] if values else None


def parse_entry(text: str, entry_id: str, path: str) -> BlsEntry:
    """The keys of one entry file, read as blscfg reads it."""
    entry = BlsEntry(entry_id, path)
    for line in text.split("\n"):
        line = line.lstrip(" \t")
        if line.startswith("#"):
            continue
        cut = min((i for i in (line.find(" "), line.find("\t")) if i >= 0), default=-1)
        if cut < 0 or cut == len(line) - 1:
            break
        value = line[cut + 1:].lstrip(" \t")
        entry.keys.setdefault(line[:cut], []).append(value)
    return entry


def read_entries(tree: GuestTree, directory: str) -> list[BlsEntry]:
    """The ``*.conf`` entries of ``directory``, newest first (see :func:`blscfg_order`)."""
    names = sorted(n for n in tree.listdir(directory)
                   if n.endswith(".conf") and len(n) > 5 and not n.startswith("."))
    limits.enforce(len(names), "LINUX_MAX_ENTRIES", tree.where(directory),
                   "boot loader entries", None, "entry files")
    entries = []
    for name in names:
        path = posixpath.join(directory, name)
        text = tree.text(path)
        if text is not None:
            entries.append(parse_entry(text, name[:-5], path))
    return blscfg_order(entries)


def blscfg_order(entries: list[BlsEntry]) -> list[BlsEntry]:
    """``entries`` in the order GRUB's blscfg lists them: newest ``version`` first,
    then the file names newest first; entries without a version before the others."""

    def newer(a: BlsEntry, b: BlsEntry) -> int:
        va, vb = a.first("version"), b.first("version")
        if va is not None and vb is None:
            return -1
        if va is None and vb is not None:
            return 1
        r = vercmp(va or "", vb or "")
        return r if r else vercmp(a.id, b.id)

    return sorted(entries, key=functools.cmp_to_key(newer), reverse=True)

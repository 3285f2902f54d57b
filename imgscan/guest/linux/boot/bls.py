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


def vercmp(a: str, b: str) -> int:
    """RPM's version comparison (``rpmvercmp``, as blscfg carries it): 1 when ``a`` is
    newer, -1 when older, 0 when equal. Runs of digits compare as numbers, runs of
    letters as strings, a digit run is newer than a letter run, ``~`` sorts first."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not (a[i].isascii() and a[i].isalnum()) and a[i] != "~":
            i += 1
        while j < len(b) and not (b[j].isascii() and b[j].isalnum()) and b[j] != "~":
            j += 1
        if (i < len(a) and a[i] == "~") or (j < len(b) and b[j] == "~"):
            if i >= len(a) or a[i] != "~":
                return 1
            if j >= len(b) or b[j] != "~":
                return -1
            i += 1
            j += 1
            continue
        if i >= len(a) or j >= len(b):
            break
        numeric = a[i].isdigit()
        ra, i = _run(a, i, numeric)
        rb, j = _run(b, j, numeric)
        if not rb:
            return 1 if numeric else -1
        if numeric:
            ra, rb = ra.lstrip("0"), rb.lstrip("0")
            if len(ra) != len(rb):
                return 1 if len(ra) > len(rb) else -1
        if ra != rb:
            return 1 if ra > rb else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def _run(s: str, i: int, numeric: bool) -> tuple[str, int]:
    """The run of ASCII digits (or letters) of ``s`` from ``i``, and where it ends."""
    j = i
    while j < len(s) and s[j].isascii() and (s[j].isdigit() if numeric else s[j].isalpha()):
        j += 1
    return s[i:j], j

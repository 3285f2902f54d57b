"""FAT12/16/32 through the filesystem interface: :class:`FatFileSystem` over :class:`FatVolume`.

FAT has no inodes; an entry's inode number is the volume offset of its 8.3
directory entry (unique, and stable while the volume is unchanged), the root
directory's is 1 (Linux's ``MSDOS_ROOT_INO``). Names are the long (VFAT) name
where there is one, else the 8.3 name; lookup is case-insensitive, as Windows
does it, and also finds an entry by its 8.3 alias; paths take ``\\`` as well as
``/``. Modes are those of a Linux ``vfat`` mount with the default umask 022
(read-only entries lose their write bits); ``mtime`` is the stored local
time read as UTC.
"""

from __future__ import annotations

from imgscan import limits
from imgscan.errors import CorruptImage

from .c_fat import ATTR_READ_ONLY, DIR_ENTRY, FIRST_CLUSTER
from .fat import FatEntry, FatVolume
from .fsapi import DirEntry, FileNotFound, FileSystem, Stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

#: The root directory's inode number (no directory entry describes it).
ROOT_INO = 1
#: The modes of a Linux vfat mount with umask 022.
DIR_MODE = 0o040755
FILE_MODE = 0o100755
#: What ATTR_READ_ONLY takes away.
WRITE_BITS = 0o222
#: The entries every subdirectory opens with, left out of listings.
DOT_NAMES = (".", "..")


class FatFileSystem(FileSystem):
    """A FAT volume at ``offset`` (``size`` bytes) of the disk ``read`` reads."""

    filesystem = "vfat"
    separators = "/\\"

    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int,
                 name: str) -> None:
        super().__init__(name, ROOT_INO)
        self.volume = FatVolume(read, offset, size, name)
        #: The entries met in listings, by inode number: a stat needs no re-read.
        self._known: dict[int, FatEntry] = {}
        #: Decoded directories by inode number, oldest first: their entries and each
        #: entry's inode under its case-folded long and 8.3 names (the first entry of a
        #: name wins, as a scan in on-disk order finds it). A path walk looks names up
        #: here: without it, every file read under a large directory decoded it again.
        self._listings: dict[int, tuple[list[FatEntry], dict[str, int]]] = {}
        #: Entries held in ``_listings``; with ``_known``, each at most
        #: ``limits.FAT_ENTRY_CACHE``.
        self._listed = 0

    def _entry(self, ino: int) -> FatEntry:
        e = self._known.get(ino)
        if e is not None:
            return e
        v = self.volume
        if ino % DIR_ENTRY.size or not 0 < ino <= v.size - DIR_ENTRY.size:
            raise FileNotFound(self.name, f"inode {ino}", None, "no FAT directory entry there")
        e = v.entry_at(ino)
        self._known[ino] = e
        return e

    def _stat(self, ino: int) -> Stat:
        if ino == ROOT_INO:
            return Stat(ino, "dir", 0, DIR_MODE)
        e = self._entry(ino)
        if e.is_dir:
            return Stat(ino, "dir", 0, DIR_MODE, mtime=e.mtime)
        mode = FILE_MODE & ~WRITE_BITS if e.attr & ATTR_READ_ONLY else FILE_MODE
        return Stat(ino, "file", e.size, mode, mtime=e.mtime)

    def _directory(self, dir_ino: int) -> list[FatEntry]:
        """The entries of directory ``dir_ino``, ``.`` and ``..`` left out."""
        return self._listing(dir_ino)[0]

    def _listing(self, dir_ino: int) -> tuple[list[FatEntry], dict[str, int]]:
        """Directory ``dir_ino``'s entries and its name index, decoded once while
        ``limits.FAT_ENTRY_CACHE`` entries hold them (the oldest listings go first)."""
        cached = self._listings.get(dir_ino)
        if cached is not None:
            return cached
        if dir_ino == ROOT_INO:
            cluster = None
        else:
            d = self._entry(dir_ino)
            if d.first_cluster < FIRST_CLUSTER:
                raise CorruptImage(self.name, "FAT directory entry", self.volume.offset + d.offset,
                                   f"directory {d.name or d.short!r} starts at cluster "
                                   f"{d.first_cluster}")
            cluster = d.first_cluster
        out = [e for e in self.volume.directory(cluster) if e.short not in DOT_NAMES]
        names: dict[str, int] = {}
        for e in out:
            names.setdefault(e.name.casefold(), e.offset)
            names.setdefault(e.short.casefold(), e.offset)
        cap = limits.FAT_ENTRY_CACHE
        if len(self._known) + len(out) > cap:
            self._known.clear()
        if len(out) <= cap:
            for e in out:
                self._known[e.offset] = e
            while self._listed + len(out) > cap:
                gone, _ = self._listings.pop(next(iter(self._listings)))
                self._listed -= len(gone)
            self._listings[dir_ino] = (out, names)
            self._listed += len(out)
        return out, names

    def _lookup(self, dir_ino: int, name: str) -> int | None:
        return self._listing(dir_ino)[1].get(name.casefold())

    def _entries(self, dir_ino: int) -> Iterator[DirEntry]:
        for e in self._directory(dir_ino):
            yield DirEntry(e.name, e.offset, "dir" if e.is_dir else "file")

    def _readlink(self, ino: int) -> str:
        # Never reached: FAT has no symbolic links.
        raise CorruptImage(self.name, f"inode {ino}", None, "FAT has no symbolic links")

    def _read(self, ino: int, offset: int, length: int) -> bytes:
        e = self._entry(ino)
        return self.volume.read_range(e.first_cluster, e.size, offset, length)

    def facts(self) -> dict[str, Any]:
        v = self.volume
        return {"filesystem": self.filesystem, "label": v.label, "uuid": v.serial,
                "version": v.fat_type, "cluster_size": v.cluster_size}

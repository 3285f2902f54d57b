"""NTFS through the filesystem interface: :class:`NtfsFileSystem` over :class:`NtfsVolume`.

Inodes are MFT record numbers (the root directory is record 5). Lookup is
case-insensitive through the volume's ``$UpCase`` table (NtfsVolume does it),
paths take ``\\`` as well as ``/``. A listing leaves out DOS 8.3 aliases and
the root's ``.`` entry, as ``fls`` and ``ntfsls`` do. Junctions and symbolic
links are of kind ``symlink``: their target, read by
:mod:`imgscan._core.ntfs_reparse`, is given as a path on this volume (absolute
targets' drive letter dropped), which the interface follows confined to the
volume; CompactOS (WOF) files are plain files read through their decoder; other
reparse points (deduplicated files, cloud placeholders) are of kind ``other``.
``mtime`` is ``$STANDARD_INFORMATION``'s modification time, what Windows
Explorer shows.
"""

from __future__ import annotations

from imgscan.errors import CorruptImage, ImageError

from .c_ntfs import (
    AT_REPARSE_POINT,
    AT_STANDARD_INFORMATION,
    FILE_ATTRIBUTE_REPARSE_POINT,
    FILETIME_PER_SECOND,
    FILETIME_UNIX_EPOCH,
    IO_REPARSE_TAG_MOUNT_POINT,
    IO_REPARSE_TAG_SYMLINK,
    IO_REPARSE_TAG_WOF,
    MFT_RECORD_ROOT,
    NAMESPACE_DOS,
    STANDARD_INFORMATION,
)
from .fsapi import DirEntry, FileSystem, Stat
from .ntfs import NtfsVolume

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from .fsapi import Kind
    from .ntfs import NtfsFile

#: The POSIX modes an NTFS volume is listed with (ntfs-3g's defaults without a mapping).
DIR_MODE = 0o040755
FILE_MODE = 0o100644
OTHER_MODE = 0o000644
LINK_MODE = 0o120777
#: Reparse points read as symbolic links: junctions (mount points) and symbolic links.
LINK_TAGS = (IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK)


class NtfsFileSystem(FileSystem):
    """An NTFS volume at ``offset`` (``size`` bytes) of the disk ``read`` reads."""

    filesystem = "ntfs"
    separators = "/\\"

    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int,
                 name: str) -> None:
        super().__init__(name, MFT_RECORD_ROOT)
        self.volume = NtfsVolume(read, offset, size, name)

    def _file(self, ino: int) -> NtfsFile:
        return self.volume.open_record(ino)

    def _stat(self, ino: int) -> Stat:
        f = self._file(ino)
        si = f.resident_value(AT_STANDARD_INFORMATION)
        mtime: int | None = None
        attributes = 0
        if si is not None and len(si) >= STANDARD_INFORMATION.size:
            fields = STANDARD_INFORMATION.unpack(si)
            attributes = fields["file_attributes"]
            if fields["modification_time"]:     # 0: never set (mkntfs leaves $MFT's so)
                mtime = (fields["modification_time"] - FILETIME_UNIX_EPOCH) \
                    // FILETIME_PER_SECOND
        kind: Kind
        reparse = attributes & FILE_ATTRIBUTE_REPARSE_POINT or f.has_attribute(AT_REPARSE_POINT)
        tag = self._reparse_tag(f) if reparse else None
        if tag in LINK_TAGS:
            kind, mode = "symlink", LINK_MODE
        elif reparse and tag != IO_REPARSE_TAG_WOF:
            kind, mode = "other", OTHER_MODE
        elif f.is_dir:
            kind, mode = "dir", DIR_MODE
        else:
            kind, mode = "file", FILE_MODE
        size = 0 if kind == "dir" else f.size
        return Stat(ino, kind, size, mode, nlink=max(1, len(f.names)), mtime=mtime)

    @staticmethod
    def _reparse_tag(f: NtfsFile) -> int | None:
        """The reparse tag, or None (the entry is then ``other``) when the reparse point
        cannot be read: one damaged or oversized reparse point must not hide its whole
        directory; reading through it still fails with its own error."""
        try:
            return f.reparse_tag()
        except ImageError:
            return None

    def _lookup(self, dir_ino: int, name: str) -> int | None:
        return self.volume.child(dir_ino, name)

    def _entries(self, dir_ino: int) -> Iterator[DirEntry]:
        for number, namespace, name in self.volume.record_entries(dir_ino):
            if namespace == NAMESPACE_DOS or name == ".":
                continue
            yield DirEntry(name, number, self._stat(number).kind)

    def _readlink(self, ino: int) -> str:
        target = self.volume.link_target(ino)
        if target is None:
            raise CorruptImage(self.name, f"MFT record {ino}", None,
                               "not a junction or symbolic link")
        parts, relative = target
        return "/".join(parts) if relative else "/" + "/".join(parts)

    def _read(self, ino: int, offset: int, length: int) -> bytes:
        return self._file(ino).read(offset, length)

    def facts(self) -> dict[str, Any]:
        v = self.volume
        return {"filesystem": self.filesystem, "label": v.label, "uuid": v.serial,
                "state": "dirty" if v.dirty else "clean", "version": v.version,
                "cluster_size": v.cluster_size}

"""Open the right filesystem reader for a volume, by the name the probes give it.

The probes of :mod:`imgscan._core.filesystems` name a volume's filesystem as
blkid does (``ext4``, ``xfs``, ``ntfs``, ``vfat``...); :func:`open_filesystem`
maps that name to the reader implementing :class:`~imgscan._core.fsapi.FileSystem`
and opens it. Each reader module is imported only when a volume of its kind
is opened, so ``imgscan info`` never loads them. Every reader takes the same
arguments: ``Cls(read, offset, size, name)``.
"""

from __future__ import annotations

import importlib

from imgscan.errors import EncryptedImage, UnsupportedFeature

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from .fsapi import FileSystem

    Read = Callable[[int, int], bytes]
    #: A reader class: ``Cls(read, offset, size, name)``.
    Opener = Callable[[Read, int, int, str], FileSystem]

#: blkid filesystem name -> (module under imgscan._core, class) of its reader.
READERS: dict[str, tuple[str, str]] = {
    "ntfs": ("ntfs_fs", "NtfsFileSystem"),
    "vfat": ("fat_fs", "FatFileSystem"),
    "ext2": ("ext4", "Ext4FileSystem"),
    "ext3": ("ext4", "Ext4FileSystem"),
    "ext4": ("ext4", "Ext4FileSystem"),
    "xfs": ("xfs", "XfsFileSystem"),
    "btrfs": ("btrfs", "BtrfsFileSystem"),
}
#: Filesystem names of encrypted volumes: facts only, never contents.
ENCRYPTED = ("crypto_LUKS", "BitLocker")


def reader_class(filesystem: str | None, name: str) -> Opener:
    """The reader class for ``filesystem``; UnsupportedFeature when there is none (yet)."""
    if filesystem in ENCRYPTED:
        raise EncryptedImage(name, "volume", None,
                             f"a {filesystem} volume: its contents are encrypted")
    if filesystem is None:
        raise UnsupportedFeature(name, "volume", None, "no filesystem recognised")
    where = READERS.get(filesystem)
    if where is None:
        raise UnsupportedFeature(name, "volume", None,
                                 f"no reader for {filesystem} (readers: "
                                 f"{', '.join(sorted(READERS))})")
    module_name, class_name = where
    try:
        module = importlib.import_module(f"{__package__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.{module_name}":
            raise
        raise UnsupportedFeature(name, "volume", None,
                                 f"no reader for {filesystem} yet") from None
    cls: Opener = getattr(module, class_name)
    return cls


def open_filesystem(read: Read, offset: int, size: int, name: str,
                    filesystem: str | None) -> FileSystem:
    """The :class:`FileSystem` of the ``filesystem`` volume at ``offset`` (``size`` bytes)
    of the disk ``read`` reads; ``name`` names it in errors."""
    return reader_class(filesystem, name)(read, offset, size, name)

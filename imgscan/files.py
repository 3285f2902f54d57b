"""The files inside an image: ``IMAGE[:VOLUME]`` addressing for ``imgscan ls`` / ``cat``.

``VOLUME`` is a partition number as ``imgscan info`` prints it, ``VG/LV`` for
an LVM2 logical volume, or nothing for the filesystem on an unpartitioned disk.
:func:`split_target` parses the argument (a file name may itself hold ``:``:
the whole argument is tried as a file first) and :func:`open_volume` opens the
volume's filesystem through the reader :mod:`imgscan._core.fsopen` picks.
"""

from __future__ import annotations

import os

from . import layout
from ._core.filesystems import probe_volume
from ._core.fsopen import open_filesystem
from .errors import EncryptedImage, ImageError
from .findings import ENCRYPTED
from .remote import is_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._core.fsapi import FileSystem
    from .disk_image import DiskImage


class NoSuchVolume(ImageError):
    """The ``VOLUME`` of ``IMAGE:VOLUME`` names no volume of the image, or none was given
    for a partitioned disk."""


def split_target(arg: str) -> tuple[str, str | None]:
    """``IMAGE[:VOLUME]`` -> ``(IMAGE, VOLUME or None)``.

    The whole argument is the image when such a file exists (``a:b.img``);
    otherwise the text after the last ``:`` is the volume.
    """
    if os.path.lexists(arg) or ":" not in arg:
        return arg, None
    image, _, volume = arg.rpartition(":")
    if not image or (is_url(arg) and ("/" in volume or not is_url(image))):
        # a URL's own colons (``s3://``, ``host:port``) are not a volume's
        return arg, None
    return image, volume or None


def _describe(p: dict[str, Any]) -> str:
    fs = p.get("filesystem") or "no filesystem"
    return f"{p['number']} ({fs})"


def open_volume(img: DiskImage, volume: str | None) -> FileSystem:
    """The filesystem of ``volume`` of ``img`` (see the module's docstring)."""
    guest = img.guest()
    if guest.read is None:
        why = guest.why_not
        assert why is not None
        if why.id == ENCRYPTED:
            raise EncryptedImage(img.path, "container", None, why.message)
        raise ImageError(img.path, "guest disk", None, why.message)
    lay = layout.describe(guest.read, guest.size, img.path, sector_size=guest.sector_size,
                          el_torito=guest.el_torito)
    if volume is None:
        if lay.partition_table != "none":
            listed = ", ".join(_describe(p) for p in lay.partitions) or "none"
            raise NoSuchVolume(img.path, f"{lay.partition_table} partition table", None,
                               f"the disk is partitioned: give IMAGE:VOLUME, one of "
                               f"{listed}")
        whole = lay.volume or {}
        return _opened(guest.read, 0, guest.size, f"{img.path} whole disk", whole)
    if "/" in volume:
        return _logical(lay, img.path, volume)
    for p in lay.partitions:
        if str(p["number"]) == volume:
            return _opened(guest.read, p["start"], min(p["size"], guest.size - p["start"]),
                           f"{img.path} partition {volume}", p)
    listed = ", ".join(_describe(p) for p in lay.partitions) or "none"
    raise NoSuchVolume(img.path, f"{lay.partition_table} partition table", None,
                       f"no partition {volume}; partitions: {listed}")


def _opened(read: Any, offset: int, size: int, name: str,
            facts: dict[str, Any]) -> FileSystem:
    if facts.get("encrypted"):
        raise EncryptedImage(name, "volume", offset,
                             f"a {facts.get('filesystem')} volume: its contents are encrypted")
    return open_filesystem(read, offset, size, name, facts.get("filesystem"))


def _logical(lay: layout.Layout, path: str, volume: str) -> FileSystem:
    """The filesystem of the logical volume ``VG/LV``."""
    find = getattr(lay, "logical_volume", None)
    name = f"{path} logical volume {volume}"
    if find is None:
        raise NoSuchVolume(path, "LVM2", None,
                           f"{volume}: logical volumes cannot be read yet")
    found = find(volume)
    if found is None:
        raise NoSuchVolume(path, "LVM2", None, f"no logical volume {volume}")
    read, size = found
    probed = probe_volume(read, 0, size) if size > 0 else None
    facts: dict[str, Any] = {} if probed is None else {
        "filesystem": probed.filesystem, "encrypted": bool(probed.encrypted)}
    return _opened(read, 0, size, name, facts)

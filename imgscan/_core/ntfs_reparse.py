"""NTFS reparse points: what kind each is, and where a junction or symbolic link leads.

Spec: [MS-FSCC] 2.1.2 (reparse data buffers: 2.1.2.2 symbolic links, 2.1.2.5 mount
points, i.e. junctions), with the WOF provider record of CompactOS files as
wimlib and the ntfs-3g-system-compression plugin document it. Structures are
declared in :mod:`imgscan._core.c_ntfs`.

A link's *substitute name* is what Windows follows: ``\\??\\C:\\Windows\\x`` for an
absolute target, a path relative to the link's directory for a relative symbolic
link. imgscan reads one volume at a time and cannot know which drive letter it had,
so an absolute target with a drive letter is taken to be on the same volume (the
system volume's links point into it: ``C:\\Documents and Settings`` to
``C:\\Users``); a target on another volume by GUID or on the network is reported,
never guessed at.
"""

from __future__ import annotations

import re

from ..records import Record
from .c_ntfs import (
    IO_REPARSE_TAG_MOUNT_POINT,
    IO_REPARSE_TAG_SYMLINK,
    MOUNT_POINT_REPARSE,
    REPARSE_HEADER,
    SYMLINK_FLAG_RELATIVE,
    SYMLINK_REPARSE,
)

#: An NT path to a drive letter: ``\??\C:\...`` (``\DosDevices\`` is the same namespace).
_DRIVE = re.compile(r"^(?:\\\?\?\\|\\DosDevices\\)[A-Za-z]:(?:\\|$)", re.IGNORECASE)


class Link(Record):
    """Where a junction or symbolic link leads on this volume.

    ``parts`` are the target's path components; ``relative`` says they start at the
    link's directory rather than the root. ``problem`` is set (and ``parts`` empty)
    when the target lies outside the volume. A :class:`~imgscan.records.Record`, not
    a dataclass: ``imgscan info`` of a Windows image would import dataclasses for it.
    """

    __slots__ = ("parts", "problem", "relative", "tag")

    def __init__(self, tag: int, parts: tuple[str, ...], relative: bool,
                 problem: str | None = None) -> None:
        self.tag = tag
        self.parts = parts
        self.relative = relative
        self.problem = problem


def reparse_tag(value: bytes) -> int | None:
    """The tag of a reparse point's value, or None when it is too short to hold one."""
    if len(value) < REPARSE_HEADER.size:
        return None
    tag: int = REPARSE_HEADER.unpack(value)["reparse_tag"]
    return tag


def parse_link(value: bytes) -> Link | None:
    """The target of a junction or symbolic link reparse point (None for other tags).

    Raises ValueError naming the field when the buffer contradicts itself.
    """
    tag = reparse_tag(value)
    if tag not in (IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK):
        return None
    header = REPARSE_HEADER.unpack(value)
    end = REPARSE_HEADER.size + header["reparse_data_length"]
    if end > len(value):
        raise ValueError(f"reparse data length {header['reparse_data_length']} runs past "
                         f"the {len(value)}-byte attribute")
    layout = MOUNT_POINT_REPARSE if tag == IO_REPARSE_TAG_MOUNT_POINT else SYMLINK_REPARSE
    if end < REPARSE_HEADER.size + layout.size:
        raise ValueError(f"reparse data of {header['reparse_data_length']} bytes is too "
                         "short for a link")
    fields = layout.unpack(value, REPARSE_HEADER.size)
    buffer = REPARSE_HEADER.size + layout.size
    start = buffer + fields["substitute_name_offset"]
    stop = start + fields["substitute_name_length"]
    if stop > end or fields["substitute_name_length"] % 2:
        raise ValueError("substitute name lies outside the reparse data")
    name = value[start:stop].decode("utf-16-le", "surrogatepass")
    relative = tag == IO_REPARSE_TAG_SYMLINK and bool(fields["flags"] & SYMLINK_FLAG_RELATIVE)
    if relative:
        return Link(tag, _parts(name), True)
    drive = _DRIVE.match(name)
    if drive is None:
        return Link(tag, (), False, f"its target {name!r} is not on a drive letter of this "
                                    "volume (another volume or the network)")
    return Link(tag, _parts(name[drive.end():]), False)


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("\\") if p)

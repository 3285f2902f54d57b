"""One validator for every on-disk table a container header points at.

As qemu's ``qcow2_validate_table`` does for qcow2, every table (L1, refcount,
BAT, block map, grain directory, region and metadata tables, ...) is checked
the same way before a byte of it is read: its size against the cap named in
:mod:`imgscan.limits`, its offset against the alignment the format requires,
and its extent against the end of the file. A table that passes can be read
or mapped whole; its size is bounded by the cap, never by the file's claim.
"""

from __future__ import annotations

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .source import Source


def validate_table(source: Source, offset: int, entries: int, entry_size: int, cap: str,
                   structure: str, field_offset: int | None, *, align: int = 1) -> int:
    """Check the table of ``entries`` entries of ``entry_size`` bytes at ``offset``.

    ``cap`` names the limit on the table's bytes, ``structure`` the table and
    ``field_offset`` the header field that claimed its size (where a size
    error points). Returns the table's size in bytes.
    """
    size = entries * entry_size
    limits.enforce(size, cap, source.path, structure, field_offset,
                   f"{entries}-entry {structure}, in bytes,")
    if align > 1 and offset % align:
        raise CorruptImage(source.path, structure, offset,
                           f"table offset {offset} is not aligned to {align} bytes")
    if not source.contains(offset, size):
        raise TruncatedImage(source.path, structure, offset,
                             f"{size} bytes of table run past the end of the file "
                             f"({source.size} bytes)")
    return size


def read_table(source: Source, offset: int, entries: int, entry_size: int, cap: str,
               structure: str, field_offset: int | None, *, align: int = 1) -> bytes:
    """The table's bytes, once :func:`validate_table` has passed it."""
    size = validate_table(source, offset, entries, entry_size, cap, structure, field_offset,
                          align=align)
    return source.read(offset, size, structure)

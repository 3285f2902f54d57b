"""On-disk structures declared once, as field tables, and read by one helper.

Every format module declares each header or record it reads as a
:class:`CStruct`: the structure's name (as its specification calls it), the
byte order and the fields in on-disk order with their ``struct`` codes. The
offsets follow from the declaration, so no module keeps raw offsets next to
the fields they belong to, and an error can name a field's exact byte offset
(``HEADER.offset("l1_size")``). This plays the part of dissect's ``c_<format>``
definitions and qemu's packed ``QCowHeader``: the nogil table walks read
their fixed-width entries with :mod:`imgscan._core.binary` instead.

Field codes are :mod:`struct`'s without alignment: ``B H I Q`` (unsigned),
``b h i q`` (signed), ``Ns`` (N raw bytes) and ``Nx`` (N bytes of padding,
declared with the name ``None``).
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


#: ``(size, unpack_from)`` of every one-field format declared so far, shared by all
#: declarations: the hundreds of fields the modules declare at import have a few dozen
#: formats (``<I``, ``<16s``, ...), so each Struct is built once (start-up time).
_FIELD_STRUCTS: dict[str, tuple[int, Any]] = {}


def _field_struct(fmt: str) -> tuple[int, Any]:
    """The size and the bound ``unpack_from`` of the one-field format ``fmt``."""
    found = _FIELD_STRUCTS.get(fmt)
    if found is None:
        compiled = struct.Struct(fmt)
        found = _FIELD_STRUCTS[fmt] = (compiled.size, compiled.unpack_from)
    return found


class CStruct:
    """A packed structure: ``name``, byte order ``"<"`` or ``">"``, named fields."""

    __slots__ = ("_fields", "_names", "_offsets", "_record", "_sizes", "_struct", "_unpack",
                 "name", "size")

    def __init__(self, name: str, byteorder: str,
                 fields: list[tuple[str | None, str]]) -> None:
        if byteorder not in ("<", ">"):
            raise ValueError(f"{name}: byte order {byteorder!r} is not '<' or '>'")
        self.name = name
        self._names: list[str] = []
        self._offsets: dict[str, int] = {}
        self._sizes: dict[str, int] = {}
        # Per field, its offset and the bound unpack_from of its own Struct: one dict
        # lookup per field read (headers are read field by field on every open).
        self._fields: dict[str, tuple[int, Any]] = {}
        offset = 0
        for field, code in fields:
            size, unpack_from = _field_struct(byteorder + code)
            if field is not None:
                if field in self._offsets:
                    raise ValueError(f"{name}: field {field!r} declared twice")
                self._names.append(field)
                self._offsets[field] = offset
                self._sizes[field] = size
                self._fields[field] = (offset, unpack_from)
            elif not code.endswith("x"):
                raise ValueError(f"{name}: an unnamed field must be padding ('Nx')")
            offset += size
        self._struct = struct.Struct(byteorder + "".join(code for _, code in fields))
        self._unpack = self._struct.unpack_from
        self.size = offset
        #: Builds a named tuple of the fields from an unpacked tuple, at C level (what
        #: namedtuple's ``_make`` does, without its Python-level call); made on first use.
        self._record: Any = None

    @property
    def names(self) -> list[str]:
        """The named fields, in on-disk order."""
        return list(self._names)

    def offset(self, field: str) -> int:
        """The byte offset of ``field`` from the start of the structure."""
        return self._offsets[field]

    def field_size(self, field: str) -> int:
        """The size of ``field`` in bytes."""
        return self._sizes[field]

    def end(self, field: str) -> int:
        """The offset just past ``field``: how much of the structure a reader needs for it."""
        return self._offsets[field] + self._sizes[field]

    def unpack(self, data: bytes | bytearray | memoryview, base: int = 0) -> dict[str, Any]:
        """Every named field of the structure at ``data[base:]``, by name.

        ``data`` must hold the whole structure (callers read it bounded first,
        naming the structure, so a short buffer is a bug, not a hostile file).
        The unpacked tuple has exactly one value per name (padding yields none), so
        the zip skips the ``strict`` check, which would cost a third of the call.
        """
        return dict(zip(self._names, self._unpack(data, base), strict=False))

    def rows(self, data: bytes | bytearray | memoryview, count: int) -> Iterator[tuple[Any, ...]]:
        """``count`` consecutive structures at the start of ``data``, each as a tuple of
        its named fields in declared order: for tables of many small entries, where a
        dict per entry would cost more than the entry's decoding."""
        return self._struct.iter_unpack(memoryview(data)[:count * self.size])

    def records(self, data: bytes | bytearray | memoryview, count: int) -> Iterator[Any]:
        """The same ``count`` structures as :meth:`rows`, each a named tuple whose
        attributes are the fields (``entry.attr``): for tables walked entry by entry
        that read several fields of each by name."""
        if self._record is None:
            # collections and functools: for the few tables read this way (start-up)
            from collections import namedtuple
            from functools import partial
            self._record = partial(tuple.__new__, namedtuple("Record", self._names))
        return map(self._record, self.rows(data, count))

    def field(self, data: bytes | bytearray | memoryview, field: str, base: int = 0) -> Any:
        """One field of the structure at ``data[base:]``."""
        offset, unpack_from = self._fields[field]
        return unpack_from(data, base + offset)[0]

    def __repr__(self) -> str:
        return f"CStruct({self.name!r}, {self.size} bytes)"

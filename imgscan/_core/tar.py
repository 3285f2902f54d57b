"""The members of a ustar archive, located in place: names, data offsets and sizes.

Source: POSIX.1-2001 pax(1), "ustar Interchange Format" and "pax Extended
Header" (structures in :mod:`imgscan._core.c_tar`), as DMTF DSP0243 (OVF 2.1)
§5.3 requires of an OVA. Only headers are read: a member's data is located
(its offset and size in the archive), never copied, so a disk inside an OVA
is decoded through a window of the archive (:func:`imgscan._core.source.window`).

An archive is hostile input like any image. A member's data lies where the
walk finds it, right after its header, so two members can never share bytes;
what can go wrong is named by the rules below, each a finding on the walk
(which then stops or skips the member) rather than an exception: a header
whose checksum fails, a size past the end of the file, a name that is
absolute or climbs out with ``..``, a name given twice (``tar x`` keeps the
last copy, a reader that stops at the first sees another file), a pax size
that disagrees with the ustar one (a reader that ignores pax headers sees
other member boundaries), and more members than :data:`limits.OVA_MAX_MEMBERS`.
"""

from __future__ import annotations

from imgscan import limits
from imgscan.errors import CorruptImage, LimitExceeded
from imgscan.findings import CORRUPT, PACKAGE_MEMBER, RESOURCE_EXHAUSTION, TRUNCATED, Finding

from .c_tar import (
    BLOCK,
    DIRECTORY,
    GNU_LONGNAME,
    MAGIC_GNU,
    MAGIC_OFFSET,
    MAGIC_USTAR,
    PAX_GLOBAL,
    PAX_NEXT,
    REGULAR,
    TAR_HEADER,
)
from .paths import unsafe_reason

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .source import Source

ZERO_BLOCK = bytes(BLOCK)
_CHKSUM = slice(TAR_HEADER.offset("chksum"), TAR_HEADER.end("chksum"))
#: The byte values a signed-char sum counts as negative.
_HIGH_BYTES = bytes(range(128, 256))


class Member:
    """One regular file of the archive: its name, and where its data lies in the archive."""

    __slots__ = ("header", "name", "offset", "size")

    def __init__(self, name: str, header: int, offset: int, size: int) -> None:
        self.name = name
        #: Offset of the member's (first) header block.
        self.header = header
        #: Offset of the member's data, and its length in bytes.
        self.offset = offset
        self.size = size

    def __repr__(self) -> str:
        return f"Member({self.name!r}, offset={self.offset}, size={self.size})"


def is_ustar(head: bytes) -> bool:
    """Whether ``head`` (the archive's first block) is a ustar or GNU tar header."""
    magic = head[MAGIC_OFFSET:MAGIC_OFFSET + len(MAGIC_USTAR)]
    return len(head) >= BLOCK and magic in (MAGIC_USTAR, MAGIC_GNU)


def header_checksum_ok(block: bytes) -> bool:
    """The stored ``chksum`` equals the sum of the block's bytes with the field as spaces
    (POSIX; historical writers summed signed bytes, which tar also accepts)."""
    try:
        stored = int(block[_CHKSUM].rstrip(b" \x00").lstrip(b" ") or b"-", 8)
    except ValueError:
        return False
    blanked = block[:_CHKSUM.start] + b" " * 8 + block[_CHKSUM.stop:]
    unsigned = sum(blanked)
    if stored == unsigned:
        return True
    high = len(blanked) - len(blanked.translate(None, _HIGH_BYTES))
    return stored == unsigned - 256 * high


def number(field: bytes) -> int | None:
    """A numeric field: octal text (ended by a space or NUL), or GNU base-256
    (first byte 0x80, big-endian); None when it is neither."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    if not all(48 <= c <= 55 for c in text):
        return None
    return int(text, 8)


def pax_records(data: bytes) -> dict[str, str] | None:
    """The ``"%d %s=%s\\n"`` records of a pax extended header; None when malformed."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos, pos + 20)
        if space < 0 or not data[pos:space].isdigit():
            return None
        length = int(data[pos:space])
        record = data[space + 1:pos + length]
        if length <= space - pos or pos + length > len(data) or not record.endswith(b"\n"):
            return None
        key, eq, value = record[:-1].partition(b"=")
        if not eq:
            return None
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _name(block: dict[str, bytes]) -> str:
    name = block["name"].split(b"\x00", 1)[0]
    prefix = block["prefix"].split(b"\x00", 1)[0]
    if prefix:
        name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape")


class Archive:
    """The regular members of a ustar archive, by name, and what was wrong with it.

    ``members`` keeps archive order; :meth:`member` finds one by name and
    refuses a name the archive gives twice or one that may not be used.
    """

    __slots__ = ("findings", "members", "refused", "source")

    def __init__(self, source: Source) -> None:
        self.source = source
        self.members: list[Member] = []
        self.findings: list[Finding] = []
        #: Name -> why no member of that name is read (unsafe, repeated).
        self.refused: dict[str, str] = {}
        try:
            self._walk()
        except LimitExceeded as exc:
            self.findings.append(Finding(RESOURCE_EXHAUSTION, "error", str(exc)))

    def member(self, name: str) -> Member | None:
        """The member called ``name`` (None when absent or refused)."""
        if name in self.refused:
            return None
        for m in self.members:
            if m.name == name:
                return m
        return None

    def _finding(self, id: str, message: str, severity: str = "error") -> None:
        self.findings.append(Finding(id, "error" if severity == "error" else "warning",
                                     f"{self.source.path}: {message}"))

    def _walk(self) -> None:
        source = self.source
        size = source.size
        pos = 0
        pax: dict[str, str] = {}
        seen: set[str] = set()
        headers = 0
        while True:
            if pos + BLOCK > size:
                self._finding(TRUNCATED, f"the archive ends at {size} without its two zero "
                              "end-of-archive blocks", "warning")
                return
            block = source.read(pos, BLOCK, "ustar header")
            if block == ZERO_BLOCK:
                return
            if not (is_ustar(block) and header_checksum_ok(block)):
                self._finding(CORRUPT, f"ustar header at offset {pos}: bad magic or checksum; "
                              "the members after it are not read")
                return
            headers += 1    # every header, read or refused: the walk's cost
            limits.enforce(headers, "OVA_MAX_MEMBERS", source.path, "ustar header", pos,
                           "archive headers")
            fields = TAR_HEADER.unpack(block)
            stated = number(fields["size"])
            if stated is None:
                self._finding(CORRUPT, f"ustar header at offset {pos}: size field "
                              f"{fields['size']!r} is not a number; the members after it are "
                              "not read")
                return
            data_size: int | None = stated
            if "size" in pax:
                data_size = self._pax_size(pax["size"], stated, pos)
            if data_size is None:
                return
            data = pos + BLOCK
            if data_size > size - data:
                self._finding(TRUNCATED, f"member at offset {pos} claims {data_size} bytes "
                              f"but the archive ends at {size}; it is not read")
                return
            typeflag = fields["typeflag"]
            if typeflag == PAX_NEXT:
                records = self._pax(data, data_size, pos)
                if records is None:
                    return
                pax = records
            elif typeflag == GNU_LONGNAME:
                limits.enforce(data_size, "OVA_MAX_PAX_BYTES", source.path, "GNU long name",
                               pos, "long name bytes")
                long_name = source.read(data, data_size, "GNU long name").split(b"\x00", 1)[0]
                pax = {**pax, "path": long_name.decode("utf-8", "surrogateescape")}
            else:
                name = pax.get("path") or _name(fields)
                if typeflag in REGULAR:
                    self._add(name, pos, data, data_size, seen)
                elif typeflag not in (DIRECTORY, PAX_GLOBAL):
                    self._finding(PACKAGE_MEMBER, f"member {name!r} at offset {pos} is of "
                                  f"type {typeflag!r}, not a regular file; it is not read",
                                  "warning")
                pax = {}
            pos = data + -(-data_size // BLOCK) * BLOCK

    def _pax(self, data: int, length: int, header: int) -> dict[str, str] | None:
        limits.enforce(length, "OVA_MAX_PAX_BYTES", self.source.path, "pax extended header",
                       header, "pax header bytes")
        records = pax_records(self.source.read(data, length, "pax extended header"))
        if records is None:
            self._finding(CORRUPT, f"pax extended header at offset {header} is malformed; "
                          "the members after it are not read")
        return records

    def _pax_size(self, text: str, stated: int, header: int) -> int | None:
        # ASCII digits only (str.isdigit also takes digits int() refuses, such as '²'),
        # and no more than 20 of them (2^64 has 20; int() refuses past 4300)
        if not (text.isascii() and text.isdigit()) or len(text) > 20:
            self._finding(CORRUPT, f"pax size {text[:40]!r} for the member at offset {header} "
                          "is not a size; the members after it are not read")
            return None
        size = int(text)
        if stated not in (0, size) and stated < 0o77777777777:
            self._finding(PACKAGE_MEMBER, f"member at offset {header}: the pax size {size} "
                          f"and the ustar size {stated} disagree, so readers that ignore pax "
                          "headers see other member boundaries")
        return size

    def _add(self, name: str, header: int, data: int, size: int, seen: set[str]) -> None:
        unsafe = unsafe_reason(name)
        if unsafe is not None:
            self.refused[name] = unsafe
            self._finding(PACKAGE_MEMBER, f"member name {name!r} at offset {header}: {unsafe}; "
                          "it is not read")
            return
        if name in seen:
            if name not in self.refused:
                self.refused[name] = "the archive holds several members of this name"
                self._finding(PACKAGE_MEMBER, f"member name {name!r} is repeated (again at "
                              f"offset {header}): tar keeps the last copy, other readers the "
                              "first; no member of that name is read")
            return
        seen.add(name)
        self.members.append(Member(name, header, data, size))


def check_first(source: Source) -> None:
    """Raise :class:`CorruptImage` unless ``source`` starts with a valid ustar header."""
    head = source.read(0, min(BLOCK, source.size), "ustar header")
    if not (is_ustar(head) and header_checksum_ok(head)):
        raise CorruptImage(source.path, "ustar header", 0, "bad magic or checksum")

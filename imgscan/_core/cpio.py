"""The member names of cpio "newc" / "crc" archives, read from a stream without holding it.

Source: the kernel's Documentation/driver-api/early-userspace/buffer-format.rst,
and init/initramfs.c for what the kernel accepts between archives: zero bytes
pad one archive from the next, and every header starts on a 4-byte boundary.
Structures are declared in :mod:`imgscan._core.c_cpio`.

An initramfs is tens of MiB of module and firmware data around a few hundred
headers: the walk reads each header and name and skips the data, so memory is
one input chunk plus one header and name, whatever the archive claims. Member
data (and so the ``crc`` format's checksum) is never looked at.
"""

from __future__ import annotations

import re

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage

from .c_cpio import (
    ALIGN,
    CPIO_NEWC_HEADER,
    HEADER_PATTERN,
    HEADER_SIZE,
    MAGIC_CRC,
    MAGIC_NEWC,
    TRAILER,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_NONZERO = re.compile(rb"[^\0]")
_HEX_FIELD = re.compile(rb"[0-9A-Fa-f]{8}")
_ARCHIVE_START = ord("0")


class ByteStream:
    """Bytes handed over in chunks (a file's windows, a decompressor's output), read
    forward: exact reads, skips that copy nothing, and the count of bytes consumed."""

    __slots__ = ("_buf", "_chunks", "_pos", "offset")

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""
        self._pos = 0
        #: Bytes consumed so far.
        self.offset = 0

    def _next_chunk(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buf, self._pos = chunk, 0
                return True
        self._buf, self._pos = b"", 0
        return False

    def read(self, n: int) -> bytes:
        """The next ``n`` bytes; fewer only at the end of the stream."""
        end = self._pos + n
        if end <= len(self._buf):
            out = self._buf[self._pos:end]
            self._pos = end
            self.offset += n
            return out
        parts = [self._buf[self._pos:]]
        got = len(parts[0])
        while got < n and self._next_chunk():
            take = min(n - got, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            got += take
        self.offset += got
        return b"".join(parts)

    def skip(self, n: int) -> int:
        """Pass over the next ``n`` bytes; the count passed (fewer only at the end)."""
        left = n
        while True:
            avail = len(self._buf) - self._pos
            if left <= avail:
                self._pos += left
                self.offset += n
                return n
            left -= avail
            if not self._next_chunk():
                self.offset += n - left
                return n - left

    def next_nonzero(self) -> int | None:
        """Pass over zero bytes; the next byte's value (not consumed), None at the end."""
        while True:
            found = _NONZERO.search(self._buf, self._pos)
            if found is not None:
                self.offset += found.start() - self._pos
                self._pos = found.start()
                return self._buf[self._pos]
            self.offset += len(self._buf) - self._pos
            if not self._next_chunk():
                return None


class Listing:
    """The member names of the archives walked so far (``TRAILER!!!`` left out, as
    ``cpio -t`` does), over every stream of one file; caps count over them all."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.names: list[str] = []
        #: Headers read, trailers included (LINUX_INITRAMFS_MAX_MEMBERS).
        self.headers = 0

    def walk(self, stream: ByteStream, *, embedded: bool, base: int = 0,
             where: str = "") -> None:
        """Every archive from the stream's position on, with the zero padding between.

        ``embedded``: the stream is one decompressed segment, which must hold only
        archives and padding to its end (the kernel's "junk within compressed
        archive"). Otherwise the stream is the file itself and the walk stops, with
        ``stream`` at it, at the first byte that starts no archive: a compressed
        segment. ``base`` is the file offset of the stream's start (0 for a
        decompressed one, whose offsets are its own); ``where`` says, in error
        messages, which decompressed segment the offsets are in.
        """
        while True:
            byte = stream.next_nonzero()
            if byte is None:
                return
            at = base + stream.offset
            if byte != _ARCHIVE_START:
                if embedded:
                    raise CorruptImage(self.path, f"cpio archive{where}", at,
                                       f"junk byte 0x{byte:02x} where an archive or zero "
                                       f"padding must be")
                return
            if at % ALIGN:
                raise CorruptImage(self.path, f"cpio header{where}", at,
                                   f"not on a {ALIGN}-byte boundary (broken padding)")
            self._archive(stream, base, where)

    def _archive(self, stream: ByteStream, base: int, where: str) -> None:
        """The members of one archive, up to and including its trailer."""
        while True:
            at = base + stream.offset
            header = stream.read(HEADER_SIZE)
            self.headers += 1
            structure = f"cpio header{where}"
            limits.enforce(self.headers, "LINUX_INITRAMFS_MAX_MEMBERS", self.path, structure,
                           at, "cpio headers")
            if len(header) < HEADER_SIZE:
                raise TruncatedImage(self.path, structure, at,
                                     f"{len(header)} of its {HEADER_SIZE} bytes before the end")
            if not HEADER_PATTERN.fullmatch(header):
                raise self._bad_header(header, structure, at)
            namesize = int(CPIO_NEWC_HEADER.field(header, "c_namesize"), 16)
            filesize = int(CPIO_NEWC_HEADER.field(header, "c_filesize"), 16)
            name_at = at + CPIO_NEWC_HEADER.offset("c_namesize")
            if namesize == 0:
                raise CorruptImage(self.path, structure, name_at, "c_namesize is 0: no name")
            limits.enforce(namesize, "LINUX_INITRAMFS_MAX_NAME", self.path, structure, name_at,
                           "c_namesize")
            padded = namesize + (-(HEADER_SIZE + namesize) % ALIGN)
            name = stream.read(padded)
            if len(name) < padded:
                raise TruncatedImage(self.path, f"cpio name{where}", at + HEADER_SIZE,
                                     f"{len(name)} of its {padded} bytes before the end")
            if name[namesize - 1] != 0:
                raise CorruptImage(self.path, f"cpio name{where}", at + HEADER_SIZE,
                                   "not terminated by a NUL at c_namesize")
            member = name[:namesize - 1]
            data = filesize + (-filesize % ALIGN)
            if stream.skip(data) < data:
                raise TruncatedImage(self.path, f"cpio data{where}", at,
                                     f"{member!r}: c_filesize {filesize} runs past the end")
            if member == TRAILER:
                return
            self.names.append(member.decode("utf-8", "surrogateescape"))

    def _bad_header(self, header: bytes, structure: str, at: int) -> CorruptImage:
        """The error for a header that is not the magic and 13 hexadecimal fields."""
        magic = CPIO_NEWC_HEADER.field(header, "c_magic")
        if magic not in (MAGIC_NEWC, MAGIC_CRC):
            return CorruptImage(self.path, structure, at,
                                f"magic {magic!r} is not {MAGIC_NEWC!r} (newc) or "
                                f"{MAGIC_CRC!r} (crc)")
        for field in CPIO_NEWC_HEADER.names[1:]:
            value = CPIO_NEWC_HEADER.field(header, field)
            if not _HEX_FIELD.fullmatch(value):
                return CorruptImage(self.path, structure, at + CPIO_NEWC_HEADER.offset(field),
                                    f"{field} {value!r} is not 8 hexadecimal digits")
        raise AssertionError("HEADER_PATTERN refused a header whose fields are all valid")

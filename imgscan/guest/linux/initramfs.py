"""The member names of an initramfs: its cpio archives, plain and compressed, in file order.

Source: the kernel's Documentation/driver-api/early-userspace/buffer-format.rst
and init/initramfs.c (``unpack_to_rootfs``), with lib/decompress.c for the
compression magics. An initramfs is a sequence of segments: runs of uncompressed
cpio archives (early microcode comes first, uncompressed, so the kernel finds it
before any decompressor runs), then compressed streams, each holding archives
in turn; zero bytes may pad between any two. Formats: gzip, bzip2, lzma, xz,
zstd and lz4's legacy frame (magic 0x184C2102, the one the kernel decodes).

Decompression is streamed and bounded per call: output comes out in chunks of
at most :data:`CHUNK` bytes (zstd blocks and lz4 chunks, at most 128 KiB and
8 MiB by their formats), is handed to the cpio walk and dropped, so memory does
not follow any size a stream claims. ``zstandard`` and ``lz4`` (PyPI) decode
what the standard library cannot; a zstd frame is fed to its decoder block by
block (RFC 8878 section 3.1.1.2), which both bounds each call's output and finds
the frame's exact end, which ``zstandard``'s streaming reader does not report.
Every byte of a stream must be decoded to find the headers between its members,
so the decoder's speed is the listing's: gzip goes to ISA-L (``isal``) where it
is installed, see :func:`gzip_decoder`.
"""

from __future__ import annotations

import re
from typing import Any, cast

from imgscan import limits
from imgscan._core.cpio import ByteStream, Listing
from imgscan.errors import CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from .tree import GuestTree

    Read = Callable[[int, int], bytes]
    Decoded = Generator[bytes, None, int]

#: Bytes of compressed input read at a time, and most output taken per decoder call.
#: Larger is slower, not faster (measured on Debian's gzip initramfs: 1 MiB costs 5-10 %
#: more time, 4 MiB 15 %), and the 200 calls per 50 MiB at this size cost little.
CHUNK = 256 << 10

#: Leading bytes of each compressed format (lib/decompress.c's table, lzop aside).
MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x89LZO", "lzo"),
)
#: gzip's FLG byte (RFC 1952 section 2.3.1): its top three bits are reserved, and a
#: decoder must refuse a member that sets them. zlib does, ISA-L does not: checked here,
#: so that both refuse it.
GZIP_FLG = 3
GZIP_FLG_RESERVED = 0xE0
#: lz4's legacy frame (lib/decompress_unlz4.c): the magic, then chunks, each a LE u32
#: compressed size and an LZ4 block of at most 8 MiB; a size of 0 or the end of the
#: file ends it, a repeated magic (concatenated frames) is skipped.
LZ4_LEGACY_MAGIC = 0x184C2102
LZ4_LEGACY_BLOCK = 8 << 20
LZ4_LEGACY_MAX_CHUNK = LZ4_LEGACY_BLOCK + LZ4_LEGACY_BLOCK // 255 + 16  # LZ4_compressBound
#: zstd (RFC 8878): a block header is 3 bytes (Last_Block, Block_Type, Block_Size); no
#: block regenerates more than Block_Maximum_Size, 128 KiB. Blocks fed per decoder call.
ZSTD_BLOCK_HEADER = 3
ZSTD_BLOCK_RLE = 1
ZSTD_BLOCK_RESERVED = 3
ZSTD_MAX_FRAME_HEADER = 18          # magic, descriptor, window, dictionary id, content size
ZSTD_CHECKSUM = 4
ZSTD_BLOCKS_PER_CALL = CHUNK // (128 << 10)

_NONZERO = re.compile(rb"[^\0]")


class _Segment:
    """A decoder's output chunks; once they are all taken, ``end`` is the file offset
    just past the compressed stream (the decoder's return value)."""

    def __init__(self, decoded: Decoded) -> None:
        self._decoded = decoded
        self.end = -1

    def __iter__(self) -> Iterator[bytes]:
        self.end = yield from self._decoded


class InitramfsReader:
    """One initramfs file, read through ``read(offset, length)``; see :func:`members`."""

    def __init__(self, read: Read, size: int, path: str) -> None:
        self.read = read
        self.size = size
        self.path = path
        self.listing = Listing(path)
        #: Decompressed bytes produced so far (LINUX_INITRAMFS_MAX_BYTES).
        self.produced = 0
        #: zstd blocks and lz4 chunks walked so far (LINUX_INITRAMFS_MAX_BLOCKS).
        self.blocks = 0

    def members(self) -> list[str]:
        """Every member name, in file order."""
        offset = 0
        segments = 0
        while True:
            offset = self._next_nonzero(offset)
            if offset >= self.size:
                return self.listing.names
            segments += 1
            limits.enforce(segments, "LINUX_INITRAMFS_MAX_SEGMENTS", self.path,
                           "initramfs segment", offset, "segments")
            head = self.read(offset, 8)
            if head[:1] == b"0":
                stream = ByteStream(self._file_chunks(offset))
                self.listing.walk(stream, embedded=False, base=offset)
                offset += stream.offset
                continue
            fmt = next((name for magic, name in MAGICS if head.startswith(magic)), None)
            if fmt is None:
                raise CorruptImage(self.path, "initramfs segment", offset,
                                   f"neither a cpio archive nor a compressed stream: "
                                   f"starts with {head.hex()}")
            segment = _Segment(self._decoder(fmt, offset))
            where = (f" (in the {fmt} stream at file offset {offset}; the offset is within "
                     f"its decompressed bytes)")
            self.listing.walk(ByteStream(segment), embedded=True, where=where)
            offset = segment.end

    # -- the file ----------------------------------------------------------------------
    def _file_chunks(self, offset: int) -> Iterator[bytes]:
        while offset < self.size:
            chunk = self.read(offset, min(CHUNK, self.size - offset))
            if not chunk:
                return
            yield chunk
            offset += len(chunk)

    def _next_nonzero(self, offset: int) -> int:
        """The offset of the first non-zero byte from ``offset`` on (``size`` if none)."""
        for chunk in self._file_chunks(offset):
            found = _NONZERO.search(chunk)
            if found is not None:
                return offset + found.start()
            offset += len(chunk)
        return self.size

    def _produced(self, out: bytes, fmt: str, start: int) -> bytes:
        self.produced += len(out)
        limits.enforce(self.produced, "LINUX_INITRAMFS_MAX_BYTES", self.path,
                       f"{fmt} stream", start, "decompressed bytes")
        return out

    def _block(self, fmt: str, start: int) -> None:
        self.blocks += 1
        limits.enforce(self.blocks, "LINUX_INITRAMFS_MAX_BLOCKS", self.path, f"{fmt} stream",
                       start, "compressed blocks")

    def _truncated(self, fmt: str, start: int) -> TruncatedImage:
        return TruncatedImage(self.path, f"{fmt} stream", start,
                              "the file ends before the stream does")

    # -- the decoders ------------------------------------------------------------------
    def _decoder(self, fmt: str, start: int) -> Decoded:
        if fmt == "zstd":
            return self._zstd(start)
        if fmt == "lz4":
            return self._lz4(start)
        if fmt == "lzo":
            raise UnsupportedFeature(self.path, "initramfs segment", start,
                                     "lzo-compressed initramfs is not supported")
        return self._stdlib(fmt, start)

    def _stdlib(self, fmt: str, start: int) -> Decoded:
        """gzip (:func:`gzip_decoder`), xz and lzma (lzma), bzip2 (bz2): decompressor
        objects that take an output limit and report the input left over after their
        stream's end."""
        import bz2
        import lzma
        import zlib

        errors: tuple[type[Exception], ...] = (zlib.error, lzma.LZMAError, OSError, EOFError)
        d: Any
        if fmt == "gzip":
            flg = self.read(start + GZIP_FLG, 1)
            if flg and flg[0] & GZIP_FLG_RESERVED:
                raise CorruptImage(self.path, "gzip header", start + GZIP_FLG,
                                   f"reserved FLG bits set (FLG 0x{flg[0]:02x})")
            d, gzip_error = gzip_decoder()
            errors += (gzip_error,)
        elif fmt == "bzip2":
            d = bz2.BZ2Decompressor()
        else:
            d = lzma.LZMADecompressor(lzma.FORMAT_XZ if fmt == "xz" else lzma.FORMAT_ALONE,
                                      memlimit=limits.LINUX_INITRAMFS_MAX_WINDOW)
        pos = start
        try:
            while not d.eof:
                data = self.read(pos, CHUNK) if pos < self.size else b""
                pos += len(data)
                if not data:
                    # The end of the file: only output still held inside the decoder.
                    out = d.decompress(b"", CHUNK)
                    if not out:
                        raise self._truncated(fmt, start)
                    yield self._produced(out, fmt, start)
                    continue
                while True:
                    out = d.decompress(data, CHUNK)
                    # zlib hands back the input it had no room to decode; the others
                    # keep it and say whether they need more.
                    data = getattr(d, "unconsumed_tail", b"")
                    if out:
                        yield self._produced(out, fmt, start)
                    if d.eof or (not data and getattr(d, "needs_input", True)):
                        break
                    if not out:
                        raise CorruptImage(self.path, f"{fmt} stream", start,
                                           "the decoder makes no progress")
        except lzma.LZMAError as exc:
            if "Memory usage limit" in str(exc):
                raise LimitExceeded(self.path, f"{fmt} stream", start,
                                    f"its decoder needs more memory than limits."
                                    f"LINUX_INITRAMFS_MAX_WINDOW="
                                    f"{limits.LINUX_INITRAMFS_MAX_WINDOW}") from None
            raise CorruptImage(self.path, f"{fmt} stream", start, str(exc)) from None
        except errors as exc:
            raise CorruptImage(self.path, f"{fmt} stream", start, str(exc)) from None
        return pos - len(d.unused_data)

    def _zstd(self, start: int) -> Decoded:
        """One zstd frame, fed to the decoder a few whole blocks at a time."""
        import zstandard

        header = self.read(start, ZSTD_MAX_FRAME_HEADER)
        try:
            params = zstandard.get_frame_parameters(header)
            pos = start + zstandard.frame_header_size(header)
        except zstandard.ZstdError as exc:
            raise CorruptImage(self.path, "zstd frame header", start, str(exc)) from None
        limits.enforce(params.window_size, "LINUX_INITRAMFS_MAX_WINDOW", self.path,
                       "zstd frame header", start, "window size")
        decoder = zstandard.ZstdDecompressor(
            max_window_size=limits.LINUX_INITRAMFS_MAX_WINDOW).decompressobj()
        fed = start
        blocks = 0
        last = False
        while not last:
            block = self.read(pos, ZSTD_BLOCK_HEADER)
            if len(block) < ZSTD_BLOCK_HEADER:
                raise self._truncated("zstd", start)
            self._block("zstd", start)
            value = int.from_bytes(block, "little")
            last, kind, size = bool(value & 1), (value >> 1) & 3, value >> 3
            if kind == ZSTD_BLOCK_RESERVED:
                raise CorruptImage(self.path, "zstd block header", pos, "reserved Block_Type 3")
            pos += ZSTD_BLOCK_HEADER + (1 if kind == ZSTD_BLOCK_RLE else size)
            if last and params.has_checksum:
                pos += ZSTD_CHECKSUM
            blocks += 1
            if blocks == ZSTD_BLOCKS_PER_CALL or last:
                data = self.read(fed, pos - fed)
                if len(data) < pos - fed:
                    raise self._truncated("zstd", start)
                try:
                    out = decoder.decompress(data)
                except zstandard.ZstdError as exc:
                    raise CorruptImage(self.path, "zstd frame", start, str(exc)) from None
                yield self._produced(out, "zstd", start)
                fed, blocks = pos, 0
        return pos

    def _lz4(self, start: int) -> Decoded:
        """lz4's legacy frame, chunk by chunk, to a zero size or the end of the file."""
        import lz4.block

        pos = start + 4
        while pos < self.size:
            word = self.read(pos, 4)
            if len(word) < 4:
                raise self._truncated("lz4", start)
            size = int.from_bytes(word, "little")
            if size == 0:
                break
            pos += 4
            if size == LZ4_LEGACY_MAGIC:
                continue
            self._block("lz4", start)
            if size > LZ4_LEGACY_MAX_CHUNK:
                raise CorruptImage(self.path, "lz4 chunk", pos - 4,
                                   f"size {size} exceeds LZ4_compressBound(8 MiB)")
            data = self.read(pos, size)
            if len(data) < size:
                raise self._truncated("lz4", start)
            try:
                out = lz4.block.decompress(data, uncompressed_size=LZ4_LEGACY_BLOCK)
            except lz4.block.LZ4BlockError as exc:
                raise CorruptImage(self.path, "lz4 chunk", pos - 4, str(exc)) from None
            yield self._produced(out, "lz4", start)
            pos += size
        return pos


def gzip_decoder() -> tuple[Any, type[Exception]]:
    """A decoder of one gzip member (RFC 1952; its CRC-32 and ISIZE checked) and the
    error it raises on a corrupt one.

    ISA-L's inflate (PyPI ``isal``) lists Debian's initramfs in 40 % of zlib's time
    (benchmarks/README.md); its ``IgzipDecompressor`` keeps the input it has not
    decoded yet, where zlib's ``unconsumed_tail`` copies it out on every call. Where
    ``isal`` has no wheel (pyproject.toml installs it on x86-64 and ARM64 only),
    the standard library's zlib decodes the same streams. libdeflate (PyPI ``deflate``)
    inflates faster still, but only into one buffer for the whole output, sized by the
    trailer's ISIZE: memory would follow a value the file claims (zlib-ng is slower
    than ISA-L; benchmarks/README.md, issue 14's second pass).
    """
    try:
        from isal.igzip_lib import DECOMP_GZIP, IgzipDecompressor, IsalError
    except ImportError:
        import zlib
        return zlib.decompressobj(16 + zlib.MAX_WBITS), zlib.error
    # isal's stub types IsalError as an instance of Exception; it is the class.
    return IgzipDecompressor(DECOMP_GZIP), cast("type[Exception]", IsalError)


def members(read: Read, size: int, path: str) -> list[str]:
    """The member names of the initramfs of ``size`` bytes read by ``read(offset, length)``.

    ``path`` names it in errors. Every segment is walked (names in file order, as
    ``lsinitramfs`` lists them); a malformed one raises :class:`ImageError`.
    """
    return InitramfsReader(read, size, path).members()


def tree_members(tree: GuestTree, path: str) -> list[str] | None:
    """:func:`members` of the guest file ``path``; None when it is not a regular file."""
    opened = tree.reader(path)
    if opened is None:
        return None
    read, size = opened
    return members(read, size, tree.where(path))

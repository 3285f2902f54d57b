"""Bounded decompression of compressed clusters, grains and blocks.

Every compressed unit of a container (qcow2 and qcow clusters, VMDK grains,
ZVHD blocks) inflates to a known size. A stream that would give more is a
compression bomb, whatever it would go on to give: these functions stop at
the limit plus one byte and say so, so memory and time are bounded by the
unit size, never by the stream. Callers turn :class:`StreamError` and an
overflow into their own error naming the structure and its offset.
"""

from __future__ import annotations

from imgscan import limits
from imgscan.errors import CorruptImage

TYPE_CHECKING = False
if TYPE_CHECKING:
    import zlib

    from .container import Container

#: qemu's deflate for qcow and qcow2 clusters: a 4 KiB window and no zlib header.
QEMU_DEFLATE_WBITS = -12


class StreamError(ValueError):
    """The compressed bytes are not a valid stream of their kind."""


def zlib_bounded(inflater: zlib._Decompress, data: bytes | memoryview,
                 limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes out of ``inflater`` fed ``data``.

    Returns the output and whether the stream had more to give (a bomb).
    ``inflater`` is a ``zlib.decompressobj`` (its window bits choose raw
    deflate or zlib framing); a continued stream may be fed piece by piece.
    """
    import zlib

    try:
        out = inflater.decompress(data, limit)
        more = bool(inflater.unconsumed_tail) and bool(
            inflater.decompress(inflater.unconsumed_tail, 1))
    except zlib.error as exc:
        raise StreamError(f"zlib stream is invalid: {exc}") from None
    return out, more


def zstd_bounded(data: bytes | memoryview, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the zstd frame in ``data``, and whether it had more."""
    import zstandard

    try:
        with zstandard.ZstdDecompressor().stream_reader(bytes(data),
                                                        read_across_frames=False) as reader:
            out = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise StreamError(f"zstd stream is invalid: {exc}") from None
    return (out[:limit], True) if len(out) > limit else (out, False)


def inflate_unit(owner: Container, host: int, stored_length: int, unit: int, structure: str,
                 *, zstd: bool = False, cap: str | None = None) -> bytes:
    """Exactly ``unit`` bytes out of the compressed unit of ``stored_length`` bytes at ``host``.

    The one bounded inflate-and-check of a compressed cluster: a stream that
    would give more than ``unit`` bytes is a compression bomb (recorded on
    ``owner``; qemu silently cuts it off), one that gives fewer is corrupt
    (qemu fails the read), an invalid stream is corrupt; every error names
    ``structure`` and ``host``. ``cap`` names a limit on ``unit`` checked
    before a byte is read. The stream is qemu's raw deflate, or zstd.
    """
    if cap is not None:
        limits.enforce(unit, cap, owner.path, structure, host, "cluster size")
    data = owner.source.view(host, stored_length, structure)
    try:
        if zstd:
            out, more = zstd_bounded(data, unit)
        else:
            import zlib

            out, more = zlib_bounded(zlib.decompressobj(QEMU_DEFLATE_WBITS), data, unit)
    except StreamError as exc:
        raise CorruptImage(owner.path, structure, host, str(exc)) from None
    if more:
        raise owner.compression_bomb(structure, host, unit)
    if len(out) != unit:
        raise CorruptImage(owner.path, structure, host,
                           f"inflates to {len(out)} bytes, not the {unit} bytes of one cluster")
    return out

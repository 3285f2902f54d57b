"""Bounded decompression of compressed clusters, grains and blocks.

Every compressed unit of a container (qcow2 and qcow clusters, VMDK grains,
ZVHD blocks) inflates to a known size. A stream that would give more is a
compression bomb, whatever it would go on to give: these functions stop at
the limit plus one byte and say so, so memory and time are bounded by the
unit size, never by the stream. Callers turn :class:`StreamError` and an
overflow into their own error naming the structure and its offset.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import zlib

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

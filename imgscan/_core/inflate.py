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


def whole_unit(owner: Container, out: bytes, more: bool, unit: int, structure: str,
               host: int, unit_name: str = "cluster") -> bytes:
    """``out`` when it is exactly one ``unit``-byte unit; else the error, naming ``structure``.

    ``more`` says the stream had more to give: a compression bomb, recorded on
    ``owner`` (qemu silently cuts such a stream off). A shorter output is
    corrupt (qemu fails the read).
    """
    if more:
        raise owner.compression_bomb(structure, host, unit)
    if len(out) != unit:
        raise CorruptImage(owner.path, structure, host,
                           f"inflates to {len(out)} bytes, not the {unit} bytes of one "
                           f"{unit_name}")
    return out


def inflate_exact(owner: Container, data: bytes | memoryview, unit: int, structure: str,
                  host: int, *, zstd: bool = False, wbits: int = QEMU_DEFLATE_WBITS,
                  unit_name: str = "cluster") -> bytes:
    """Exactly ``unit`` bytes out of one compressed stream, zstd or deflate (``wbits``).

    An invalid stream is corrupt; for the rest see :func:`whole_unit`.
    """
    try:
        if zstd:
            out, more = zstd_bounded(data, unit)
        else:
            import zlib

            out, more = zlib_bounded(zlib.decompressobj(wbits), data, unit)
    except StreamError as exc:
        raise CorruptImage(owner.path, structure, host, str(exc)) from None
    return whole_unit(owner, out, more, unit, structure, host, unit_name)


def inflate_unit(owner: Container, host: int, stored_length: int, unit: int, structure: str,
                 *, zstd: bool = False, cap: str | None = None) -> bytes:
    """The qcow / qcow2 compressed cluster of ``stored_length`` bytes at ``host``, inflated.

    ``cap`` names a limit on ``unit`` checked before a byte is read; the
    stream is qemu's raw deflate, or zstd.
    """
    if cap is not None:
        limits.enforce(unit, cap, owner.path, structure, host, "cluster size")
    data = owner.source.view(host, stored_length, structure)
    return inflate_exact(owner, data, unit, structure, host, zstd=zstd)

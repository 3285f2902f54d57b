"""A window of a remote object: a file stored inside another one (an OVA's disk), read
in place through the reader of the object that holds it.

The remote counterpart of :func:`imgscan._core.source.window`: a
:class:`WindowReader` serves ``[base, base + size)`` of its object's reader, so
the disk shares the package's block cache, fetch cap and counters (the
package's ``source`` object counts every byte fetched for it). As for a local
window, its offsets are the member's, its errors name ``URL [member]`` with the
member's offsets, and closing it leaves the package's object open.
"""

from __future__ import annotations

from ..errors import ImageError, TruncatedImage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .._core.remote import Reader


class WindowReader:
    """``[base, base + size)`` of ``reader``'s object, under the name ``url``
    (``URL [member]``)."""

    def __init__(self, reader: Reader, base: int, size: int, url: str) -> None:
        if base < 0 or size < 0 or base > reader.size or size > reader.size - base:
            raise TruncatedImage(url, "archive member", base,
                                 f"needs {size} bytes but the object ends at {reader.size}")
        self._reader = reader
        self._base = base
        self.url = url
        self.size = size

    # what the store said and what was fetched: the object's, shared by its windows
    @property
    def object(self) -> Any:
        return self._reader.object

    @property
    def requests(self) -> int:
        return self._reader.requests

    @property
    def bytes_read(self) -> int:
        return self._reader.bytes_read

    @property
    def round_trips(self) -> int:
        return self._reader.round_trips

    @property
    def failure(self) -> ImageError | None:
        failure = self._reader.failure
        return None if failure is None else self._renamed(failure)

    def _renamed(self, exc: ImageError, at: int | None = None) -> ImageError:
        """``exc`` as this window says it: its name, and the member's offset (``at``,
        the offset of the read that failed, when the failed request began before the
        window: a block of the archive's own bytes)."""
        offset = exc.offset
        if offset is not None and self._base <= offset <= self._base + self.size:
            offset -= self._base
        else:
            offset = at
        return type(exc)(self.url, exc.structure, offset, exc.problem)

    def _shifted(self, ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """``ranges`` clipped to the window, as offsets of the object."""
        out = []
        for offset, length in ranges:
            end = min(offset + length, self.size)
            if 0 <= offset < end:
                out.append((self._base + offset, end - offset))
        return out

    def read(self, offset: int, length: int, structure: str) -> bytes:
        """The window's bytes at ``offset`` (checked by the source against its size)."""
        try:
            return self._reader.read(self._base + offset, length, structure)
        except ImageError as exc:
            raise self._renamed(exc, offset) from None

    def prefetch(self, ranges: Iterable[tuple[int, int]], structure: str,
                 near: Iterable[tuple[int, int]] = ()) -> None:
        """The announcement passed on to the object's reader, shifted to the window."""
        shifted = self._shifted(ranges)
        try:
            self._reader.prefetch(shifted, structure, self._shifted(near))
        except ImageError as exc:
            raise self._renamed(exc, shifted[0][0] - self._base if shifted else None) \
                from None

    def close(self) -> None:
        """Nothing: the object's reader is the package's, closed with it."""

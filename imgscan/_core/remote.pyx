"""The source stage for an image that lives in object storage or behind an HTTP URL.

:class:`RemoteSource` is a :class:`~imgscan._core.source.Source` whose bytes
come from a range reader (:class:`imgscan.remote.blocks.BlockReader`: block
cache, read-ahead, coalescing, concurrent requests, the fetch cap) instead of
a local file. It overrides exactly the methods that touch the file (``read``,
``view``, ``copy_into``, ``map``, ``data_runs``, ``close``), so every decoder
reads it unchanged; there is nothing to map, so decoders take their ``pread``
path. Bounds are checked by the base class against the object's size, as for
a file. ``prefetch`` passes a stage's announcement of what it reads next to the
reader, which fetches it as one concurrent batch.
"""

from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset

from .source cimport Source


cdef class RemoteSource(Source):
    """One remote object, read through ``reader``.

    ``reader`` has ``url``, ``size``, ``read(offset, length, structure) -> bytes``
    and ``close()``; it raises :class:`~imgscan.errors.ImageError` naming the URL.
    """

    cdef readonly object reader

    def __init__(self, reader):
        self.reader = reader
        self.path = reader.url
        self.size = reader.size
        self._fd = -1
        self._use_mmap = False
        self.mapped = False
        self.wants_prefetch = True

    cpdef bint map(self):
        """Never mapped: a remote object has no file to map."""
        return False

    def close(self):
        self.reader.close()

    cpdef bytes read(self, uint64_t offset, uint64_t length, str structure):
        self._check(offset, length, structure)
        if length == 0:
            return b""
        return self.reader.read(offset, length, structure)

    cpdef object view(self, uint64_t offset, uint64_t length, str structure):
        return self.read(offset, length, structure)

    cdef int copy_into(self, uint64_t offset, uint8_t* dst, uint64_t length,
                       bint may_map=True) except -1:
        cdef uint64_t avail = 0
        cdef const uint8_t[::1] got
        if offset < self.size:
            avail = min(self.size - offset, length)
        if avail:
            got = self.reader.read(offset, avail, "data")
            if <uint64_t>got.shape[0] != avail:
                raise AssertionError(f"{self.path}: the reader returned {got.shape[0]} "
                                     f"bytes for {avail}")
            memcpy(dst, &got[0], avail)
        if avail < length:
            memset(dst + avail, 0, length - avail)
        return 0

    def prefetch(self, ranges, str structure, near=()):
        """Fetch ``ranges`` and ``near`` (``(offset, length)``) now, together: they will be
        read next (``near`` with its neighbourhood)."""
        self.reader.prefetch(list(ranges), structure, list(near))

    def drop(self, uint64_t offset, uint64_t length):
        """Nothing to drop: the block cache bounds its own memory."""

    def data_runs(self, uint64_t start, uint64_t end):
        """``[start, end)`` as one run of data: a store does not report holes."""
        if end > self.size:
            end = self.size
        if start >= end:
            return []
        return [(start, end - start, True)]

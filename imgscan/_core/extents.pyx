"""The extent map: which guest byte ranges are stored where, and how.

Container decoders walk their tables (qcow2 L1/L2, VHD BAT, ...) in nogil
loops and append runs in guest order through :meth:`ExtentMap.add`, which
merges a run into the previous one when they continue each other. The map
covers ``[0, virtual_size)`` exactly once, in order, without overlap; the
virtual disk reader looks ranges up by binary search.

The map lives in C memory; numpy arrays are built only on request
(:meth:`ExtentMap.to_numpy`), so the single-image ``info`` path never imports
numpy.
"""

from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc, realloc
from libc.stdint cimport uint32_t, uint64_t, UINT64_MAX

from imgscan import limits

cdef uint64_t NO_HOST = UINT64_MAX

# write_qemu_json: flush its buffer past JSON_CHUNK bytes; one line is far shorter
# than JSON_LINE_MAX (six 20-digit numbers and fixed keys).
cdef size_t JSON_CHUNK = 1 << 20
cdef size_t JSON_LINE_MAX = 512

KIND_NAMES = ("unallocated", "data", "zero", "compressed")

#: The :class:`Extent` named tuple once made (:func:`_extent_type`).
cdef object _EXTENT = None


cdef object _extent_type():
    """The Extent named tuple, made on the first extent read: namedtuple builds its
    class by compiling source (0.6 M instructions), which ``info`` never needs
    (start-up, issue 18)."""
    global _EXTENT
    if _EXTENT is None:
        from collections import namedtuple
        _EXTENT = namedtuple("Extent", "start length kind host file stored_length",
                             module=__name__)
    return _EXTENT


def __getattr__(name):
    """``Extent``, made on first use (PEP 562)."""
    if name == "Extent":
        return _extent_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


cdef class ExtentMap:
    """Runs of guest bytes with their kind and host location.

    Iterating yields :class:`Extent` tuples ``(start, length, kind, host,
    file, stored_length)``; ``kind`` is one of ``KIND_NAMES``, ``host`` is
    ``None`` where nothing is stored, ``file`` indexes the container's files
    (0 is the image itself, 1 an external data file, ...).
    """

    def __cinit__(self, uint64_t virtual_size, uint64_t cluster_size=0):
        self.ext = NULL
        self.n = 0
        self.cap = 0
        self.max_extents = limits.MAX_EXTENTS
        self.virtual_size = virtual_size
        self.cluster_size = cluster_size

    def __dealloc__(self):
        free(self.ext)

    cdef int add(self, uint64_t start, uint64_t length, uint32_t kind,
                 uint64_t host, uint32_t file, uint64_t aux) noexcept nogil:
        """Append a run; merge it into the last one when it continues it.

        Returns -1 when the map would exceed ``limits.MAX_EXTENTS`` or memory
        runs out; the caller raises.
        """
        cdef ExtentRec* last
        cdef ExtentRec* grown
        cdef size_t newcap
        if length == 0:
            return 0
        if self.n:
            last = &self.ext[self.n - 1]
            if continues(last, start, kind, host, file):
                last.length += length
                return 0
        if self.n == self.cap:
            if self.cap >= self.max_extents:
                return -1
            newcap = self.cap * 2 if self.cap else 64
            if newcap > self.max_extents:
                newcap = self.max_extents
            grown = <ExtentRec*>realloc(self.ext, newcap * sizeof(ExtentRec))
            if grown == NULL:
                return -1
            self.ext = grown
            self.cap = newcap
        self.ext[self.n].start = start
        self.ext[self.n].length = length
        self.ext[self.n].kind = kind
        self.ext[self.n].host = host
        self.ext[self.n].file = file
        self.ext[self.n].aux = aux
        self.n += 1
        return 0

    cdef Py_ssize_t find(self, uint64_t offset) noexcept nogil:
        """Index of the extent holding ``offset``, or -1 past the end."""
        cdef Py_ssize_t lo = 0, hi = <Py_ssize_t>self.n - 1, mid
        while lo <= hi:
            mid = (lo + hi) >> 1
            if self.ext[mid].start + self.ext[mid].length <= offset:
                lo = mid + 1
            elif self.ext[mid].start > offset:
                hi = mid - 1
            else:
                return mid
        return -1

    def _append(self, uint64_t start, uint64_t length, str kind, host=None,
                uint32_t file=0, uint64_t stored_length=0):
        """Python-level :meth:`add` for decoders whose tables are tiny."""
        cdef uint32_t k = KIND_NAMES.index(kind)
        if self.add(start, length, k, NO_HOST if host is None else host,
                    file, stored_length) < 0:
            raise MemoryError("extent map limit reached")

    def refuse_full(self, str path, str structure, offset=None):
        """Raise for a map whose ``add`` failed: over ``limits.MAX_EXTENTS``, else memory.

        Every container's walk ends this way when its map is full; ``offset`` is
        where the walk was, when that names the structure's place.
        """
        limits.enforce(self.n + 1, "MAX_EXTENTS", path, structure, offset, "extents")
        raise MemoryError("extent map")

    def check_complete(self):
        """Whether the runs cover ``[0, virtual_size)`` exactly, in order."""
        cdef uint64_t pos = 0
        cdef size_t i
        for i in range(self.n):
            if self.ext[i].start != pos:
                return False
            pos += self.ext[i].length
        return pos == self.virtual_size

    def __len__(self):
        return self.n

    def __getitem__(self, Py_ssize_t i):
        if i < 0:
            i += self.n
        if i < 0 or i >= <Py_ssize_t>self.n:
            raise IndexError(i)
        cdef ExtentRec e = self.ext[i]
        return _extent_type()(e.start, e.length, KIND_NAMES[e.kind],
                              None if e.host == NO_HOST else e.host, e.file, e.aux)

    def __iter__(self):
        cdef size_t i
        for i in range(self.n):
            yield self[i]

    @property
    def allocated_size(self):
        """Guest bytes stored in the image's own file (data and compressed runs)."""
        cdef uint64_t total = 0
        cdef size_t i
        with nogil:
            for i in range(self.n):
                if (self.ext[i].kind == KIND_DATA or self.ext[i].kind == KIND_COMPRESSED) \
                        and self.ext[i].file == 0:
                    total += self.ext[i].length
        return total

    def to_qemu(self, bint has_backing=False):
        """The map as ``qemu-img map --output=json`` gives it, as Python objects.

        ``present`` is true for everything this image itself describes, ``data``
        for stored bytes, ``zero`` for bytes known to read as zero: zero runs,
        and unallocated runs when there is no backing file (as qemu reports
        them); with ``has_backing`` unallocated runs are ``depth`` 1.
        """
        import json

        return json.loads(self.to_qemu_json(has_backing))

    def to_qemu_json(self, bint has_backing=False):
        """:meth:`to_qemu` as JSON text, one extent a line, as qemu-img prints it."""
        import io

        out = io.BytesIO()
        self.write_qemu_json(out, has_backing)
        return out.getvalue().decode("ascii")

    def write_qemu_json(self, out, bint has_backing=False):
        """Write :meth:`to_qemu_json`'s text, ASCII-encoded, to the binary file ``out``.

        Formatted in C into a fixed buffer flushed as it fills: maps of tens
        of thousands of extents cost neither a Python object per extent nor
        memory in proportion to the map.
        """
        cdef size_t i
        cdef ExtentRec* e
        cdef char* buf = <char*>malloc(JSON_CHUNK + JSON_LINE_MAX)
        cdef size_t used = 0
        cdef bint unallocated
        cdef const char* t = "true"
        cdef const char* f = "false"
        if buf == NULL:
            raise MemoryError()
        try:
            used = <size_t>snprintf(buf, JSON_LINE_MAX, "[")
            for i in range(self.n):
                e = &self.ext[i]
                unallocated = e.kind == KIND_UNALLOCATED
                used += <size_t>snprintf(
                    buf + used, JSON_LINE_MAX,
                    '%s{ "start": %llu, "length": %llu, "depth": %d, "present": %s, '
                    '"zero": %s, "data": %s, "compressed": %s',
                    "" if i == 0 else ",\n", <unsigned long long>e.start,
                    <unsigned long long>e.length,
                    <int>(1 if (unallocated and has_backing) else 0),
                    f if unallocated else t,
                    t if (e.kind == KIND_ZERO or (unallocated and not has_backing)) else f,
                    t if (e.kind == KIND_DATA or e.kind == KIND_COMPRESSED) else f,
                    t if e.kind == KIND_COMPRESSED else f)
                if e.host != NO_HOST and e.kind != KIND_COMPRESSED:
                    used += <size_t>snprintf(buf + used, JSON_LINE_MAX, ', "offset": %llu}',
                                             <unsigned long long>e.host)
                else:
                    used += <size_t>snprintf(buf + used, JSON_LINE_MAX, "}")
                if used >= JSON_CHUNK:
                    out.write(buf[:used])
                    used = 0
            used += <size_t>snprintf(buf + used, JSON_LINE_MAX, "]")
            out.write(buf[:used])
        finally:
            free(buf)

    def to_numpy(self):
        """The map as a numpy structured array.

        Fields: ``start``, ``length``, ``host`` (uint64; ``2**64 - 1`` where
        nothing is stored), ``stored_length`` (uint64), ``kind`` (uint8, an
        index into ``KIND_NAMES``), ``file`` (uint32).
        """
        import numpy as np

        dtype = np.dtype([("start", "<u8"), ("length", "<u8"), ("host", "<u8"),
                          ("stored_length", "<u8"), ("kind", "u1"), ("file", "<u4")])
        arr = np.empty(self.n, dtype=dtype)
        cdef size_t i
        if self.n:
            raw = np.frombuffer(
                (<char*>self.ext)[:self.n * sizeof(ExtentRec)],
                dtype=np.dtype([("start", "<u8"), ("length", "<u8"), ("host", "<u8"),
                                ("aux", "<u8"), ("kind", "<u4"), ("file", "<u4")]),
            )
            arr["start"] = raw["start"]
            arr["length"] = raw["length"]
            arr["host"] = raw["host"]
            arr["stored_length"] = raw["aux"]
            arr["kind"] = raw["kind"]
            arr["file"] = raw["file"]
        return arr

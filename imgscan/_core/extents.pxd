from libc.stdint cimport uint32_t, uint64_t

cdef enum ExtentKind:
    KIND_UNALLOCATED = 0   # not stored in this image: backing file, else zeros
    KIND_DATA = 1          # stored uncompressed at `host` in file `file`
    KIND_ZERO = 2          # reads as zeros (zero cluster, or a hole in a raw host file)
    KIND_COMPRESSED = 3    # one compressed cluster: `aux` stored bytes at `host`

cdef uint64_t NO_HOST

cdef struct ExtentRec:
    uint64_t start
    uint64_t length
    uint64_t host
    uint64_t aux
    uint32_t kind
    uint32_t file


cdef class ExtentMap:
    cdef ExtentRec* ext
    cdef size_t n
    cdef size_t cap
    cdef size_t max_extents
    cdef readonly uint64_t virtual_size
    cdef readonly uint64_t cluster_size

    cdef int add(self, uint64_t start, uint64_t length, uint32_t kind,
                 uint64_t host, uint32_t file, uint64_t aux) noexcept nogil
    cdef Py_ssize_t find(self, uint64_t offset) noexcept nogil


cdef inline bint continues(const ExtentRec* last, uint64_t start, uint32_t kind, uint64_t host,
                           uint32_t file) noexcept nogil:
    """Whether a run ``(start, kind, host, file)`` continues ``last``, so that
    :meth:`ExtentMap.add` merges it into ``last`` (a compressed cluster never does)."""
    return (last.kind == kind and last.file == file and kind != KIND_COMPRESSED
            and last.start + last.length == start
            and ((last.host == NO_HOST and host == NO_HOST)
                 or (last.host != NO_HOST and host != NO_HOST
                     and last.host + last.length == host)))


cdef inline int add_run(ExtentMap emap, uint64_t start, uint64_t length, uint32_t kind,
                        uint64_t host, uint32_t file, uint64_t aux) noexcept nogil:
    """:meth:`ExtentMap.add`, its common case inline: for a table walk's one call per
    cluster, most of which continue the run before them."""
    cdef ExtentRec* last
    if length and emap.n:
        last = &emap.ext[emap.n - 1]
        if continues(last, start, kind, host, file):
            last.length += length
            return 0
    return emap.add(start, length, kind, host, file, aux)

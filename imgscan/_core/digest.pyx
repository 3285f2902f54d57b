"""Which fixed-size chunks of a guest disk a content fingerprint has to read.

A chunk lying wholly in ranges that read as zeros (zero runs, and unallocated
runs where no backing disk supplies bytes) has a digest known in advance, so
it is never read: a 100 GiB qcow2 holding 2 GiB of data costs the chunks its
data touches, not 100 GiB. The walk over the extent map is a nogil loop: maps
of a big image have tens of thousands of runs.
"""

from cpython.array cimport array, clone
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

from .extents cimport ExtentMap, ExtentRec, KIND_UNALLOCATED, KIND_ZERO


cdef uint64_t _chunk_runs(ExtentMap emap, uint64_t chunk, uint64_t backed_to,
                          uint64_t* runs) noexcept nogil:
    """Write ``(first, end)`` chunk-index runs to ``runs`` (when not NULL); return
    how many chunks they hold.

    A run of guest bytes is read unless it is a zero run or an unallocated run
    at or past ``backed_to``. Gaps in the map count as read, so the reader
    reports them rather than the fingerprint taking them for zeros.
    """
    cdef uint64_t total = 0, pos = 0, start, end, first, last
    cdef uint64_t next_free = 0     # first chunk not yet in a run
    cdef size_t i, nrun = 0
    cdef ExtentRec* e
    cdef bint gap
    i = 0
    while pos < emap.virtual_size:
        gap = i >= emap.n or emap.ext[i].start > pos
        if gap:
            start = pos
            end = emap.virtual_size if i >= emap.n else min(emap.ext[i].start,
                                                             emap.virtual_size)
        else:
            e = &emap.ext[i]
            i += 1
            start = e.start
            end = e.start + e.length
            if end > emap.virtual_size:
                end = emap.virtual_size
        if end > pos:
            pos = end
        if not gap:
            if e.kind == KIND_ZERO or (e.kind == KIND_UNALLOCATED and start >= backed_to):
                continue
            if e.kind == KIND_UNALLOCATED and end > backed_to:
                end = backed_to
        if end <= start:
            continue
        first = start // chunk
        last = (end - 1) // chunk + 1
        if first < next_free:
            first = next_free
        if first >= last:
            continue
        if runs != NULL:
            if nrun and runs[2 * nrun - 1] == first:
                runs[2 * nrun - 1] = last
            else:
                runs[2 * nrun] = first
                runs[2 * nrun + 1] = last
                nrun += 1
        total += last - first
        next_free = last
    return total


def chunks_to_read(ExtentMap emap, uint64_t chunk, uint64_t backed_to=0):
    """Indices (an ``array('Q')``, ascending) of the ``chunk``-byte chunks of the
    guest disk holding any byte not known to read as zeros.

    ``backed_to``: unallocated guest bytes below it come from a backing disk
    and must be read (0 when there is none).
    """
    if chunk == 0:
        raise ValueError("chunk size must be positive")
    cdef uint64_t total, j, c, k = 0
    # At most one run per extent and one per gap before, between or after them.
    cdef uint64_t* runs = <uint64_t*>malloc(4 * (emap.n + 1) * sizeof(uint64_t))
    if runs == NULL:
        raise MemoryError()
    cdef array out
    cdef uint64_t[::1] dst
    try:
        with nogil:
            total = _chunk_runs(emap, chunk, backed_to, NULL)
        out = clone(array("Q"), total, False)
        if total:
            dst = out
            with nogil:
                _chunk_runs(emap, chunk, backed_to, runs)
                j = 0
                while k < total:
                    c = runs[2 * j]
                    while c < runs[2 * j + 1]:
                        dst[k] = c
                        k += 1
                        c += 1
                    j += 1
    finally:
        free(runs)
    return out

"""The L1 -> L2 table walk shared by QCOW version 1 and QED.

Both formats map the guest disk through one L1 table of u64 offsets of L2
tables, each a run of u64 entries for consecutive clusters. They differ only
in byte order and in what an L2 entry may be, which :c:type:`TwoLevel`
declares as data (not callbacks, so the inner loop stays a tight ``nogil``
loop): QCOW is big-endian with compressed clusters (bit 63) and counts data
clusters past the end of the file; QED is little-endian with a zero entry
(1) and refuses misplaced or out-of-file clusters. qcow2's walk is its own:
its entries add copied/zero flags, subcluster bitmaps and external data
files, and it reads one L2 table at a time.

The walk runs in two passes: every L2 table the L1 table names is checked
first (inside the file, where the format allows it, and together no larger
than the file, so aliasing entries cannot make the walk cost more than the
file size), then the guest disk is appended to the extent map in order.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from imgscan import limits
from imgscan.errors import CorruptImage

from .binary cimport be64, le64
from .extents cimport ExtentMap, KIND_COMPRESSED, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST
from .source cimport Source

#: Size of one L1 / L2 entry.
cdef uint64_t ENTRY_SIZE = 8


cdef inline uint64_t _entry(const uint8_t* p, const TwoLevel* w) noexcept nogil:
    return be64(p) if w.big_endian else le64(p)


cdef bint misplaced(uint64_t offset, uint64_t align_mask, const TwoLevel* w) noexcept nogil:
    """Whether ``offset`` breaks the format's alignment or lies inside the header."""
    return (offset & align_mask) != 0 or offset < w.header_end


cdef bint outside(uint64_t offset, uint64_t length, const TwoLevel* w) noexcept nogil:
    """Whether ``length`` bytes at ``offset`` do not end at or before ``w.file_end``."""
    return offset >= w.file_end or length > w.file_end - offset


cdef WalkStatus _locate_l2(const uint8_t* l1, uint64_t* l2_at, TwoLevel* w) noexcept nogil:
    """Check every L2 table the L1 table names; record its host offset in ``l2_at``."""
    cdef uint64_t i, off
    for i in range(w.l1_size):
        off = _entry(l1 + i * ENTRY_SIZE, w)
        if off == 0:
            l2_at[i] = NO_HOST
            continue
        w.bad_index = i
        w.bad_offset = off
        if misplaced(off, w.l2_align_mask, w):
            return WALK_L2_MISPLACED
        if outside(off, w.l2_bytes, w):
            return WALK_L2_OUTSIDE
        w.l2_bytes_total += w.l2_bytes
        if w.l2_bytes_total > w.file_end:
            return WALK_L2_OVERLAP
        l2_at[i] = off
    return WALK_OK


cdef inline void _count_past_eof(uint64_t guest, TwoLevel* w) noexcept nogil:
    if w.past_eof == 0:
        w.first_past_eof = guest
    w.past_eof += 1


cdef WalkStatus _walk_l2(ExtentMap emap, const uint8_t* tables, const uint64_t* l2_at,
                         TwoLevel* w) noexcept nogil:
    """Append the guest disk to ``emap`` in order, one L1 span or one cluster at a time.

    ``tables + l2_at[i]`` is the L2 table of L1 entry ``i`` (``NO_HOST``: none).
    The geometry is copied to locals: ``emap.add`` could, for all the compiler
    knows, change ``*w``, which would make it reload every field per entry.
    """
    cdef bint big_endian = w.big_endian
    cdef uint64_t virtual_size = w.virtual_size, span = w.span
    cdef uint64_t cluster_size = w.cluster_size
    cdef uint64_t file_size = w.file_size, file_end = w.file_end, header_end = w.header_end
    cdef uint64_t data_align_mask = w.data_align_mask, zero_entry = w.zero_entry
    cdef uint64_t compressed_flag = w.compressed_flag, compressed_shift = w.compressed_shift
    cdef uint64_t offset_mask = (1ULL << compressed_shift) - 1
    cdef uint64_t csize_mask = cluster_size - 1
    cdef bint past_eof_fatal = w.data_past_eof_fatal
    cdef uint64_t guest = 0, end, pos, length, entry, host, aux
    cdef uint64_t i = 0, j
    cdef uint32_t kind
    cdef const uint8_t* l2
    while guest < virtual_size:
        end = virtual_size if virtual_size - guest < span else guest + span
        if l2_at[i] == NO_HOST:
            if emap.add(guest, end - guest, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return WALK_MAP_FULL
        else:
            l2 = tables + l2_at[i]
            pos = guest
            j = 0
            while pos < end:
                length = cluster_size if end - pos > cluster_size else end - pos
                entry = be64(l2 + j * ENTRY_SIZE) if big_endian else le64(l2 + j * ENTRY_SIZE)
                host = NO_HOST
                aux = 0
                if entry == 0:
                    kind = KIND_UNALLOCATED
                elif entry == zero_entry:
                    kind = KIND_ZERO
                elif entry & compressed_flag:
                    kind = KIND_COMPRESSED
                    host = entry & offset_mask
                    aux = (entry >> compressed_shift) & csize_mask
                    if host > file_size or aux > file_size - host:
                        _count_past_eof(pos, w)
                else:
                    kind = KIND_DATA
                    host = entry
                    if (host & data_align_mask) != 0 or host < header_end:
                        w.bad_index = pos
                        w.bad_offset = host
                        return WALK_DATA_MISPLACED
                    if host >= file_end:
                        if past_eof_fatal:
                            w.bad_index = pos
                            w.bad_offset = host
                            return WALK_DATA_OUTSIDE
                        # Past the end of the file qemu reads zeros, and so does
                        # the reader (Source.copy_into); only count it.
                        _count_past_eof(pos, w)
                if emap.add(pos, length, kind, host, 0, aux) < 0:
                    return WALK_MAP_FULL
                pos += length
                j += 1
        guest = end
        i += 1
    return WALK_OK


cdef object _l2_tables(Source source, uint64_t* l2_at, const TwoLevel* w, str image,
                       str l2_table):
    """The buffer the offsets in ``l2_at`` point into.

    That is the mapped file itself (no copy). A source that could not be
    mapped has its L2 tables read into one buffer, ``w.l2_bytes_total``
    bytes (checked against the file size), and ``l2_at`` is rewritten to
    positions in it. A remote source is told all of them first (one round trip).
    """
    if source.map():
        return source.view(0, source.size, image)
    cdef uint64_t i, pos = 0
    if source.wants_prefetch:
        # all of them, read next: together no larger than the file (_locate_l2)
        source.prefetch([(l2_at[i], w.l2_bytes) for i in range(w.l1_size)
                         if l2_at[i] != NO_HOST], l2_table + "s")
    gathered = bytearray(w.l2_bytes_total + 1)   # never empty: the walk takes its address
    for i in range(w.l1_size):
        if l2_at[i] != NO_HOST:
            gathered[pos:pos + w.l2_bytes] = source.read(l2_at[i], w.l2_bytes, l2_table)
            l2_at[i] = pos
            pos += w.l2_bytes
    return gathered


cdef WalkStatus walk_two_level(Source source, ExtentMap emap, const uint8_t[::1] l1,
                               TwoLevel* w, str image, str l2_table) except *:
    """Check the L2 tables ``l1`` (``w.l1_size`` entries) names, then map the guest disk.

    Both passes run without the GIL over the mapped file; only the L2 table
    positions (one u64 per L1 entry, capped with the L1 table) are
    allocated. Returns the first problem; the format words the error.
    """
    cdef WalkStatus status
    cdef const uint8_t[::1] tables
    w.l2_bytes_total = w.past_eof = w.first_past_eof = 0
    if w.l1_size == 0:
        return WALK_OK
    cdef uint64_t* l2_at = <uint64_t*>malloc(w.l1_size * sizeof(uint64_t))
    if l2_at == NULL:
        raise MemoryError()
    try:
        with nogil:
            status = _locate_l2(&l1[0], l2_at, w)
        if status != WALK_OK:
            return status
        tables = _l2_tables(source, l2_at, w, image, l2_table)
        with nogil:
            status = _walk_l2(emap, &tables[0], l2_at, w)
    finally:
        free(l2_at)
    return status


cdef int refuse_shared(WalkStatus status, const TwoLevel* w, ExtentMap emap, str path,
                       str l2_table) except -1:
    """Raise for the walk results every format words alike: L2 tables adding up to more
    than the file (entries share them), and a full extent map. ``l2_table`` names the
    table as the format's errors do."""
    if status == WALK_L2_OVERLAP:
        raise CorruptImage(path, f"{l2_table} (L1 entry {w.bad_index})", w.bad_offset,
                           f"the L2 tables add up to more than the file "
                           f"({w.file_size} bytes): entries share tables")
    if status == WALK_MAP_FULL:
        emap.refuse_full(path, f"{l2_table}s")
    return 0

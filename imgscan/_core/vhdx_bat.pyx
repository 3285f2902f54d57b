"""The VHDX BAT walk: one extent map run per payload block, without the GIL.

MS-VHDX 2.5: a BAT entry holds a payload block's state (bits 0-2) and file
offset in MiB (bits 20-63); after every *chunk ratio* payload entries comes
the entry of a sector bitmap block, which decides sector by sector where a
PARTIALLY_PRESENT block of a differencing disk is stored. The walk reads the
file through the log replay's overlay (:mod:`imgscan._core.vhdx_log`): a
replayed sector maps to its bytes inside the log. The container that checks
the BAT and reports what the walk counted is :mod:`imgscan._core.vhdx`.
"""

cimport cython
from libc.stdint cimport uint8_t, uint64_t

from .binary cimport le64
from .c_vhdx import DATA_DESCRIPTOR, DATA_SECTOR, HEADER_SECTION_SIZE, LOG_SECTOR_SIZE
from .extents cimport ExtentMap, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST
from .vhdx_layout cimport (
    BAT_ENTRY_SIZE, BAT_FILE_OFFSET_SHIFT, BAT_STATE_MASK, PAYLOAD_BLOCK_FULLY_PRESENT,
    PAYLOAD_BLOCK_NOT_PRESENT, PAYLOAD_BLOCK_PARTIALLY_PRESENT, PAYLOAD_BLOCK_RESERVED_4,
    SB_BLOCK_PRESENT,
)
from .vhdx_log cimport OV_ZERO

# The BAT entry's fields and states are compile-time constants (vhdx_layout.pxd);
# where a replayed sector's bytes lie in its data descriptor and data sector are
# C values taken from c_vhdx's declarations.
cdef uint64_t C_DESC_TRAILING_BYTES = DATA_DESCRIPTOR.offset("trailing_bytes")
cdef uint64_t C_DESC_LEADING_BYTES = DATA_DESCRIPTOR.offset("leading_bytes")
cdef uint64_t C_LEADING_SIZE = DATA_DESCRIPTOR.field_size("leading_bytes")
cdef uint64_t C_DS_DATA = DATA_SECTOR.offset("data")
cdef uint64_t C_DS_DATA_SIZE = DATA_SECTOR.field_size("data")
cdef uint64_t C_LOG_SECTOR_SIZE = LOG_SECTOR_SIZE
cdef uint64_t C_HEADER_SECTION_SIZE = HEADER_SECTION_SIZE


cdef Py_ssize_t _first_ending_after(const uint64_t* ends, Py_ssize_t n,
                                    uint64_t pos) noexcept nogil:
    """Index of the first run whose end is past ``pos`` (``n`` if none)."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid] <= pos:
            lo = mid + 1
        else:
            hi = mid
    return lo


@cython.boundscheck(False)
cdef uint8_t _file_byte(const FileCtx* c, uint64_t pos) noexcept nogil:
    """One byte of the file as replay leaves it (zeros past the end of the file)."""
    cdef Py_ssize_t i
    cdef uint64_t k, src
    if c.n_ov:
        i = _first_ending_after(c.ov_end, c.n_ov, pos)
        if i < c.n_ov and c.ov_start[i] <= pos:
            if c.ov_kind[i] == OV_ZERO:
                return 0
            k = pos - c.ov_start[i]
            if k < C_LEADING_SIZE:
                src = c.ov_desc[i] + C_DESC_LEADING_BYTES + k
            elif k < C_LEADING_SIZE + C_DS_DATA_SIZE:
                src = c.ov_data[i] + C_DS_DATA + (k - C_LEADING_SIZE)
            else:
                src = c.ov_desc[i] + C_DESC_TRAILING_BYTES + (k - C_LEADING_SIZE - C_DS_DATA_SIZE)
            return c.f[src] if src < c.fsize else 0
    return c.f[pos] if pos < c.fsize else 0


cdef int _add_data(ExtentMap emap, const FileCtx* c, uint64_t guest, uint64_t length,
                   uint64_t host) noexcept nogil:
    """Append stored bytes, split where log replay replaced file sectors.

    A replayed data sector maps to its three pieces inside the log; a zeroed
    one reads as zeros. Returns -1 when the extent map is full.
    """
    cdef Py_ssize_t i
    cdef uint64_t end = host + length, s, e, k, piece, src
    if c.n_ov == 0:
        return emap.add(guest, length, KIND_DATA, host, 0, 0)
    i = _first_ending_after(c.ov_end, c.n_ov, host)
    while host < end:
        if i >= c.n_ov or c.ov_start[i] >= end:
            return emap.add(guest, end - host, KIND_DATA, host, 0, 0)
        if c.ov_start[i] > host:
            s = c.ov_start[i] - host
            if emap.add(guest, s, KIND_DATA, host, 0, 0) < 0:
                return -1
            guest += s
            host += s
        e = c.ov_end[i] if c.ov_end[i] < end else end
        if c.ov_kind[i] == OV_ZERO:
            if emap.add(guest, e - host, KIND_ZERO, NO_HOST, 0, 0) < 0:
                return -1
            guest += e - host
            host = e
        else:
            while host < e:
                k = host - c.ov_start[i]
                if k < C_LEADING_SIZE:
                    src = c.ov_desc[i] + C_DESC_LEADING_BYTES + k
                    piece = C_LEADING_SIZE - k
                elif k < C_LEADING_SIZE + C_DS_DATA_SIZE:
                    src = c.ov_data[i] + C_DS_DATA + (k - C_LEADING_SIZE)
                    piece = C_LEADING_SIZE + C_DS_DATA_SIZE - k
                else:
                    src = (c.ov_desc[i] + C_DESC_TRAILING_BYTES
                           + (k - C_LEADING_SIZE - C_DS_DATA_SIZE))
                    piece = C_LOG_SECTOR_SIZE - k
                if piece > e - host:
                    piece = e - host
                if emap.add(guest, piece, KIND_DATA, src, 0, 0) < 0:
                    return -1
                guest += piece
                host += piece
        i += 1
    return 0


cdef bint _overlaps_region(const FileCtx* c, uint64_t start, uint64_t length) noexcept nogil:
    cdef Py_ssize_t i = _first_ending_after(c.reg_end, c.n_reg, start)
    return i < c.n_reg and c.reg_start[i] < start + length


cdef int _bitmap_runs(ExtentMap emap, const FileCtx* c, uint64_t guest, uint64_t length,
                      uint64_t host, uint64_t bitmap_off, uint64_t first_bit,
                      uint64_t lss) noexcept nogil:
    """Append a PARTIALLY_PRESENT block, one run per stretch of equal bitmap bits.

    Bit 0 of byte 0 is the chunk's first logical sector (least significant
    bit first, unlike VHD); 1 means the sector is stored here.
    """
    cdef uint64_t nsect = (length + lss - 1) // lss
    cdef uint64_t s = 0, e, bit, pos, b, run_end
    cdef uint8_t byte
    while s < nsect:
        b = first_bit + s
        bit = (_file_byte(c, bitmap_off + b // 8) >> (b % 8)) & 1
        e = s + 1
        while e < nsect:
            b = first_bit + e
            if b % 8 == 0 and e + 8 <= nsect:
                byte = _file_byte(c, bitmap_off + b // 8)
                if byte == (0xFF if bit else 0x00):
                    e += 8
                    continue
            if ((_file_byte(c, bitmap_off + b // 8) >> (b % 8)) & 1) != bit:
                break
            e += 1
        run_end = e * lss if e * lss < length else length
        if bit:
            if _add_data(emap, c, guest + s * lss, run_end - s * lss, host + s * lss) < 0:
                return -1
        elif emap.add(guest + s * lss, run_end - s * lss, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
            return -1
        s = e
    return 0


cdef int walk_bat(ExtentMap emap, const uint8_t* bat, uint64_t nblocks, uint64_t chunk_ratio,
                  uint64_t block_size, uint64_t lss, uint64_t virtual_size, bint has_parent,
                  uint64_t eff_size, const FileCtx* c, WalkStats* st) noexcept nogil:
    """Append one run per payload block (per bitmap run for partially present ones).

    Returns -1 when the extent map is full.
    """
    cdef uint64_t i, idx, entry, state, off, start, length, sb_entry, sb_off
    cdef uint64_t sectors_per_block = block_size // lss
    # A local: emap.add writes memory, so a module global would be loaded again after
    # every call; the BAT's own values are compile-time constants.
    cdef uint64_t header_size = C_HEADER_SECTION_SIZE
    for i in range(nblocks):
        start = i * block_size
        length = virtual_size - start
        if length > block_size:
            length = block_size
        idx = i + i // chunk_ratio
        entry = le64(bat + idx * BAT_ENTRY_SIZE)
        state = entry & BAT_STATE_MASK
        off = (entry >> BAT_FILE_OFFSET_SHIFT) << BAT_FILE_OFFSET_SHIFT
        if state == PAYLOAD_BLOCK_NOT_PRESENT:
            if emap.add(start, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return -1
            continue
        if state != PAYLOAD_BLOCK_FULLY_PRESENT and state != PAYLOAD_BLOCK_PARTIALLY_PRESENT:
            if state == PAYLOAD_BLOCK_RESERVED_4:
                if st.bad_state == 0:
                    st.first_bad_state = i
                st.bad_state += 1
            if emap.add(start, length, KIND_ZERO, NO_HOST, 0, 0) < 0:
                return -1
            continue
        # stored here, wholly or in part: check where
        if off + length > eff_size:
            if st.past_eof == 0:
                st.first_past_eof = i
            st.past_eof += 1
        if off < header_size or _overlaps_region(c, off, block_size):
            if st.overlap == 0:
                st.first_overlap = i
            st.overlap += 1
        if state == PAYLOAD_BLOCK_FULLY_PRESENT or not has_parent:
            if state == PAYLOAD_BLOCK_PARTIALLY_PRESENT:
                if st.partial_no_parent == 0:
                    st.first_partial_no_parent = i
                st.partial_no_parent += 1
            if _add_data(emap, c, start, length, off) < 0:
                return -1
            continue
        # PARTIALLY_PRESENT in a differencing disk: the chunk's sector bitmap decides
        sb_entry = le64(bat + ((i // chunk_ratio) * (chunk_ratio + 1) + chunk_ratio)
                         * BAT_ENTRY_SIZE)
        if (sb_entry & BAT_STATE_MASK) != SB_BLOCK_PRESENT:
            if st.no_bitmap == 0:
                st.first_no_bitmap = i
            st.no_bitmap += 1
            if emap.add(start, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return -1
            continue
        sb_off = (sb_entry >> BAT_FILE_OFFSET_SHIFT) << BAT_FILE_OFFSET_SHIFT
        if _bitmap_runs(emap, c, start, length, off, sb_off,
                        (i % chunk_ratio) * sectors_per_block, lss) < 0:
            return -1
    return 0

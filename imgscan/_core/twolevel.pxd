# The L1 -> L2 table walk shared by QCOW (version 1) and QED: see twolevel.pyx.
from libc.stdint cimport uint8_t, uint64_t

from .extents cimport ExtentMap
from .source cimport Source


cdef enum WalkStatus:
    WALK_OK = 0
    WALK_L2_MISPLACED = 1     # an L2 offset the format refuses: unaligned or inside the header
    WALK_L2_OUTSIDE = 2       # an L2 table not wholly inside the file
    WALK_L2_OVERLAP = 3       # L2 tables add up to more than the file: entries share them
    WALK_DATA_MISPLACED = 4   # a data cluster offset the format refuses
    WALK_DATA_OUTSIDE = 5     # a data cluster past the end, where the format refuses it
    WALK_MAP_FULL = 6         # limits.MAX_EXTENTS reached


cdef struct TwoLevel:
    # geometry, from the header
    bint big_endian
    uint64_t virtual_size
    uint64_t cluster_size
    uint64_t span               # guest bytes one L1 entry maps
    uint64_t l1_size            # L1 entries covering the image
    uint64_t l2_bytes           # bytes of one L2 table
    uint64_t file_size
    uint64_t file_end           # tables and data clusters start below this offset
    uint64_t header_end         # ... and at or above this one
    uint64_t l2_align_mask      # an L2 offset with these bits set is misplaced
    # L2 entry kinds
    uint64_t data_align_mask    # a data cluster offset with these bits set is misplaced
    bint data_past_eof_fatal    # past file_end: an error (qed), else counted (qcow)
    uint64_t zero_entry         # the entry that reads as zeros (qed: 1), or 0: none
    uint64_t compressed_flag    # entry bit of a compressed cluster (qcow), or 0
    uint64_t compressed_shift   # ... whose offset is the bits below it, its size those above
    # results
    uint64_t bad_index          # L1 index (tables) or guest offset (data) of the offender
    uint64_t bad_offset         # ... and the host offset it names
    uint64_t l2_bytes_total     # bytes of L2 tables the L1 table references
    uint64_t past_eof           # clusters counted past the end of the file
    uint64_t first_past_eof     # guest offset of the first of them


cdef bint misplaced(uint64_t offset, uint64_t align_mask, const TwoLevel* w) noexcept nogil
cdef bint outside(uint64_t offset, uint64_t length, const TwoLevel* w) noexcept nogil
cdef WalkStatus walk_two_level(Source source, ExtentMap emap, const uint8_t[::1] l1,
                               TwoLevel* w, str image, str l2_table) except *
cdef int refuse_shared(WalkStatus status, const TwoLevel* w, ExtentMap emap, str path,
                       str l2_table) except -1

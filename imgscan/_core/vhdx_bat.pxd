# The VHDX BAT walk (vhdx_bat.pyx), called by the container (vhdx.pyx).
from libc.stdint cimport uint8_t, uint64_t

from .extents cimport ExtentMap


cdef struct FileCtx:
    # the image file (may be NULL when no byte of it is needed)
    const uint8_t* f
    uint64_t fsize
    # log replay overlay, sorted disjoint runs
    const uint64_t* ov_start
    const uint64_t* ov_end
    const uint8_t* ov_kind
    const uint64_t* ov_desc
    const uint64_t* ov_data
    Py_ssize_t n_ov
    # other regions (header section, log, BAT, metadata, ...), sorted and disjoint
    const uint64_t* reg_start
    const uint64_t* reg_end
    Py_ssize_t n_reg


cdef struct WalkStats:
    uint64_t past_eof
    uint64_t first_past_eof
    uint64_t overlap
    uint64_t first_overlap
    uint64_t bad_state
    uint64_t first_bad_state
    uint64_t partial_no_parent
    uint64_t first_partial_no_parent
    uint64_t no_bitmap
    uint64_t first_no_bitmap


cdef inline bint walk_counted(const WalkStats* st) noexcept nogil:
    """Whether any counter of ``st`` counted (the container makes findings only then):
    beside the struct, so that a counter added there is added here."""
    return (st.past_eof or st.overlap or st.bad_state or st.partial_no_parent
            or st.no_bitmap) != 0


cdef int walk_bat(ExtentMap emap, const uint8_t* bat, uint64_t nblocks, uint64_t chunk_ratio,
                  uint64_t block_size, uint64_t lss, uint64_t virtual_size, bint has_parent,
                  uint64_t eff_size, const FileCtx* c, WalkStats* st) noexcept nogil

# One sparse extent's header, declared for the container (vmdk.pyx), which reads its
# fields and its details on every open of a sparse VMDK: as C members and C calls, not
# Python attribute look-ups (issue 18).
from libc.stdint cimport uint16_t, uint32_t, uint64_t

from .extents cimport ExtentMap
from .source cimport Source


cdef struct KdmvFields:
    # a KDMV header's (or a stream footer's) fields as stored (sizes in sectors); a COWD
    # header's under the same names, the fields it lacks 0
    uint32_t version
    uint32_t flags
    uint64_t capacity
    uint64_t grain
    uint64_t desc_offset
    uint64_t desc_size
    uint32_t gtes
    uint64_t rgd_offset
    uint64_t gd_offset
    uint64_t overhead
    bint unclean
    uint16_t compress


cdef class SparseHeader:
    cdef public object kind, capacity, grain, desc_offset, desc_size, gtes
    cdef public object rgd_offset, gd_offset, overhead, gd_entries, zeroed_gte
    cdef public object compressed, markers
    cdef KdmvFields stored

    cpdef dict as_dict(self)


cpdef SparseHeader read_sparse_header(container, Source src, str label)
cpdef walk_sparse(container, ExtentMap emap, Source src, SparseHeader h, uint64_t guest_base,
                  uint64_t length, uint32_t file, str label)

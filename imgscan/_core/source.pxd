from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint64_t

cdef enum:
    # Ranges a source is asked to keep reads for (Source.keep_reads), and reads it keeps.
    KEEP_MAX = 8


cdef class Source:
    cdef readonly str path
    cdef readonly uint64_t size
    cdef readonly uint64_t base
    cdef readonly bint mapped
    cdef readonly bint wants_prefetch
    cdef int _fd
    cdef bint _use_mmap
    cdef object _mmap
    cdef const uint8_t[::1] _view
    cdef bytes _head
    cdef bytes _tail
    cdef uint64_t _tail_start
    cdef const uint64_t* _want_at
    cdef const uint64_t* _want_len
    cdef int _n_want
    cdef PyObject* _reads[KEEP_MAX]
    cdef const char* _reads_data[KEEP_MAX]
    cdef uint64_t _reads_at[KEEP_MAX]
    cdef uint64_t _reads_len[KEEP_MAX]
    cdef int _n_reads

    cdef void _close_fd(self) noexcept

    cdef int _check(self, uint64_t offset, uint64_t length, str structure) except -1
    cpdef bint map(self)
    cpdef bint contains(self, offset, length) except -1
    cpdef bytes read(self, uint64_t offset, uint64_t length, str structure)
    cpdef object view(self, uint64_t offset, uint64_t length, str structure)
    cdef int keep_ends(self, bytes head, bytes tail, uint64_t tail_start) except -1
    cdef void keep_reads(self, const uint64_t* at, const uint64_t* length, int n) noexcept
    cdef const char* _kept_at(self, uint64_t offset, uint64_t length)
    cdef object _kept(self, uint64_t offset, uint64_t length)
    cdef void _keep_if_wanted(self, bytes out, uint64_t offset, uint64_t length) noexcept
    cdef bytes _pread(self, uint64_t offset, uint64_t length, str structure)
    cdef int copy_into(self, uint64_t offset, uint8_t* dst, uint64_t length,
                       bint may_map=*) except -1

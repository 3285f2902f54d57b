from libc.stdint cimport uint8_t, uint64_t


cdef class Source:
    cdef readonly str path
    cdef readonly uint64_t size
    cdef readonly uint64_t base
    cdef readonly bint mapped
    cdef readonly bint wants_prefetch
    cdef int _fd
    cdef bint _use_mmap
    cdef bint _nowait
    cdef object _mmap
    cdef const uint8_t[::1] _view
    cdef bytes _head
    cdef bytes _tail
    cdef uint64_t _tail_start

    cdef void _close_fd(self) noexcept

    cdef int _check(self, uint64_t offset, uint64_t length, str structure) except -1
    cpdef bint map(self)
    cpdef bytes read(self, uint64_t offset, uint64_t length, str structure)
    cpdef object view(self, uint64_t offset, uint64_t length, str structure)
    cdef int keep_ends(self, bytes head, bytes tail, uint64_t tail_start) except -1
    cdef object _kept(self, uint64_t offset, uint64_t length)
    cdef bytes _pread(self, uint64_t offset, uint64_t length, str structure)
    cdef int copy_into(self, uint64_t offset, uint8_t* dst, uint64_t length,
                       bint may_map=*) except -1

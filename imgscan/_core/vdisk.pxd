# The virtual disk reader (vdisk.pyx), declared for the modules that read guest bytes
# from C: the volume probes fill their buffers through read_into, with no Python call
# and no bytes object per read.
from libc.stdint cimport uint8_t, uint64_t

from .extents cimport ExtentMap


cdef class VirtualDisk:
    cdef ExtentMap emap
    cdef list files
    cdef object container
    #: The parent disk that unallocated runs read from, or ``None`` (they read as zeros).
    cdef readonly VirtualDisk backing
    cdef readonly uint64_t size
    #: Whether one of its files does anything with an announcement (``prefetch``).
    cdef readonly bint wants_prefetch
    cdef object _cached
    cdef uint64_t _cached_host

    cdef bytes read_bytes(self, uint64_t offset, Py_ssize_t length)
    cdef uint64_t read_into(self, uint64_t offset, uint8_t* dst, uint64_t length) except? 0
    cdef _to_hosts(self, ranges, dict hosts, int which)
    cdef uint64_t _clamp(self, uint64_t offset, uint64_t length)
    cdef int _fill(self, uint64_t offset, uint8_t* dst, uint64_t n,
                   bint mapped=*) except -1

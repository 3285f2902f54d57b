# The layer under NTFS's MFT (ntfs_runs.pyx): geometry, bounded reads, run lists.
from libc.stdint cimport int64_t, uint8_t, uint64_t


cdef class NtfsRuns:
    cdef object _read
    cdef readonly int64_t offset, size
    cdef readonly str name
    cdef readonly int64_t sector_size, cluster_size, record_size, index_record_size
    cdef readonly int64_t total_clusters, mft_lcn, mftmirr_lcn
    cdef readonly uint64_t serial_number

    cdef _error(self, cls, str structure, int64_t vol_offset, str problem)
    cdef _enforce(self, value, str cap, str structure, int64_t vol_offset, str what)
    cdef bytes _read_volume(self, int64_t pos, int64_t length, str structure)
    cdef _parse_boot_sector(self)
    cdef int64_t _record_size(self, int n, int field, str what) except -1
    cdef list _decode_runs(self, const uint8_t* p, Py_ssize_t n, int64_t vcn, str where,
                           int64_t vol)
    cdef list _run_extents(self, list runs, int64_t start, int64_t length)
    cdef bytes _read_runs(self, list runs, int64_t start, int64_t length, str where,
                          int64_t* disk_offset)

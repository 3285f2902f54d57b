# NTFS's MFT layer (ntfs_records.pyx): attributes, files and the record reader.
cimport cython
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t

from .ntfs_runs cimport NtfsRuns


@cython.final
cdef class _Attr:
    cdef public uint32_t type
    cdef public str name
    cdef public bint resident
    cdef public uint32_t flags
    cdef public uint16_t ident        # attribute id, unique within its record
    cdef public object value          # resident value (bytes)
    cdef public list runs             # [(vcn, lcn or -1, clusters)] in VCN order
    cdef public int64_t start_vcn, end_vcn
    cdef public int64_t allocated_size, data_size, initialized_size
    cdef public int compression_unit
    cdef public int64_t record        # MFT record holding it (its first extent)
    cdef public int64_t disk_offset   # of the attribute header


@cython.final
cdef class _Inode:
    cdef public int64_t number
    cdef public uint16_t flags, sequence
    cdef public list attrs
    cdef public int64_t disk_offset

    cdef _Attr find(self, uint32_t type, str name)


cdef str _utf16(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t units)


cdef class NtfsRecords(NtfsRuns):
    cdef list _mft_runs
    cdef int64_t _mft_size
    cdef dict _cache
    cdef int64_t _budget

    cdef _load_mft(self)
    cdef bytes _read_record(self, int64_t number, int64_t* disk_offset)
    cdef tuple _parse_record(self, int64_t number, bint allow_unused)
    cdef _Inode _inode(self, int64_t number)
    cdef _spend(self, int64_t n, str where)
    cdef _Inode _inode_from(self, int64_t number, tuple rec)
    cdef list _extension_attrs(self, int64_t number, _Attr al, list base_attrs)
    cdef list _merge(self, int64_t number, list attrs)
    cdef bytes _attr_bytes(self, _Inode ino, _Attr a, int64_t start, int64_t length)
    cdef bytes _read_compressed(self, _Inode ino, _Attr a, int64_t start, int64_t end)
    cdef bytes _reparse_value(self, _Inode ino)
    cdef tuple _wof(self, _Inode ino)
    cdef bytearray _wof_chunks(self, _Inode ino, tuple wof, int64_t size, int64_t first,
                               int64_t last)

# NTFS's nogil helpers (ntfs_codec.pyx), cimported by the reader (ntfs.pyx).
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef enum:
    # search_node's answers
    SEARCH_FOUND = 1
    SEARCH_DESCEND = 2
    SEARCH_ABSENT = 3
    SEARCH_CORRUPT = 4


    # $UpCase is read in pages of 1 << UPCASE_PAGE_SHIFT code units (4 KiB), 32 in all
    UPCASE_PAGE_SHIFT = 11


cdef Py_ssize_t apply_fixup(uint8_t* rec, Py_ssize_t size) noexcept nogil
cdef uint32_t name_pages(const uint8_t* name, Py_ssize_t units) noexcept nogil
cdef uint32_t node_pages(const uint8_t* node, Py_ssize_t pos, Py_ssize_t end) noexcept nogil
cdef int search_node(const uint8_t* node, Py_ssize_t pos, Py_ssize_t end,
                     const uint16_t* upcase, const uint16_t* target, Py_ssize_t tlen,
                     uint64_t* ref, int64_t* vcn, Py_ssize_t* bad) noexcept nogil
cdef Py_ssize_t lznt1(const uint8_t* src, Py_ssize_t slen, uint8_t* dst,
                      Py_ssize_t dcap) noexcept nogil

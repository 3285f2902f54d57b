# The chunk codecs of CompactOS / WOF files (wof.pyx), cimported by the NTFS reader.
from libc.stdint cimport uint8_t


cdef Py_ssize_t xpress_huffman(const uint8_t* src, Py_ssize_t slen, uint8_t* dst,
                               Py_ssize_t dlen) noexcept nogil
cdef Py_ssize_t lzx(const uint8_t* src, Py_ssize_t slen, uint8_t* dst,
                    Py_ssize_t dlen) noexcept nogil

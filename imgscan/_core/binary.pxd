# Fixed-width integer decoding from raw bytes, big- and little-endian.
# Inline and nogil so the table walks of every container can use them in
# their inner loops without touching Python objects.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return ((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16)
            | (<uint32_t>p[2] << 8) | p[3])


cdef inline uint64_t be64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>be32(p) << 32) | be32(p + 4)


cdef inline uint16_t le16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[1] << 8) | p[0]


cdef inline uint32_t le32(const uint8_t* p) noexcept nogil:
    return ((<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16)
            | (<uint32_t>p[1] << 8) | p[0])


cdef inline uint64_t le64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>le32(p + 4) << 32) | le32(p)

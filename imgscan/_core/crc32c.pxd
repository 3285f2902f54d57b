# CRC-32C (Castagnoli), shared by the formats that checksum with it (VHDX, ...).
from libc.stdint cimport uint8_t, uint32_t

cdef uint32_t crc32c_update(uint32_t crc, const uint8_t* p, size_t n) noexcept nogil
cdef uint32_t crc32c_zeroed(const uint8_t* p, size_t n, size_t field) noexcept nogil

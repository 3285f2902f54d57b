"""Marvin32, the keyed hash that protects registry transaction log entries (HvLE).

Spec: Maxim Suhanov, "Windows registry file format specification" (msuhanov/regf),
"Log entries", notes 1-3: Hash-1 and Hash-2 of each log entry are Marvin32 with
the seed 0x82EF4D887A4E55C5; the algorithm is Microsoft's Marvin (Niels Ferguson),
as .NET publishes it (System.Marvin: two 32-bit lanes, a 4-byte block step of
rotations and additions, the tail padded with 0x80, two final block steps). The
64-bit result is the high lane shifted over the low one, which is how the log
stores it (little-endian).

A log entry is hashed whole (up to megabytes per entry, a log file per hive),
so the loop is C without the GIL.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

from .binary cimport le32

#: The seed of the registry's log entry hashes (Suhanov, "Log entries", note 3).
REGF_LOG_SEED = 0x82EF4D887A4E55C5


cdef inline uint32_t _rotl(uint32_t x, int n) noexcept nogil:
    return (x << n) | (x >> (32 - n))


cdef inline void _block(uint32_t* lo, uint32_t* hi) noexcept nogil:
    hi[0] ^= lo[0]
    lo[0] = _rotl(lo[0], 20)
    lo[0] += hi[0]
    hi[0] = _rotl(hi[0], 9)
    hi[0] ^= lo[0]
    lo[0] = _rotl(lo[0], 27)
    lo[0] += hi[0]
    hi[0] = _rotl(hi[0], 19)


cdef uint64_t _marvin32(const uint8_t* p, size_t n, uint64_t seed) noexcept nogil:
    cdef uint32_t lo = <uint32_t>seed, hi = <uint32_t>(seed >> 32), tail
    cdef uint32_t PAD3 = 0x80000000
    cdef size_t rem = n & 3
    cdef const uint8_t* end = p + (n - rem)
    while p < end:
        lo += le32(p)
        _block(&lo, &hi)
        p += 4
    # the last 0-3 bytes, then a 0x80 byte, as one little-endian word
    if rem == 0:
        tail = 0x80
    elif rem == 1:
        tail = 0x8000 | p[0]
    elif rem == 2:
        tail = 0x800000 | (<uint32_t>p[1] << 8) | p[0]
    else:
        tail = PAD3 | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]
    lo += tail
    _block(&lo, &hi)
    _block(&lo, &hi)
    return (<uint64_t>hi << 32) | lo


def marvin32(const uint8_t[::1] data, uint64_t seed=REGF_LOG_SEED):
    """The 64-bit Marvin32 of ``data`` (high lane << 32 | low lane)."""
    cdef size_t n = data.shape[0]
    cdef const uint8_t* p = &data[0] if n else NULL
    cdef uint64_t h
    with nogil:
        h = _marvin32(p, n, seed)
    return h

"""CRC-32C (Castagnoli), the checksum of VHDX headers, region tables and log entries.

Polynomial 0x1EDC6F41, bit-reflected (0x82F63B78), initial value and final
XOR 0xFFFFFFFF, as in RFC 3720 section B.4 (iSCSI) and the MS-VHDX
specification. GPT and zlib use plain CRC-32, which this is not.

Where the processor has it (x86-64 with SSE4.2, asked at import), the
``crc32`` instruction does the work, eight bytes at a time: every VHDX open
checks two 64 KiB region tables and two 4 KiB headers, about four instructions
per byte through the tables. Elsewhere the table walk is slicing-by-8 (eight
256-entry tables, eight bytes per step), so a 64 KiB region table or a
multi-megabyte log is still checked in microseconds; the tables are built once
at import from the polynomial. Both compute the same register (the
instruction implements this very polynomial, bit-reflected).

A structure that ends in a long run of zeros (a region table: 80 bytes of entries
in 64 KiB; a header: 80 bytes in 4 KiB) is checked up to its last non-zero byte,
and the register is then carried over the zeros in one step: a zero byte
multiplies the register by x^8 modulo the polynomial, so ``n`` of them multiply
it by x^(8n), a product of the powers x^(2^k) kept in a table (as zlib's
``crc32_combine`` does). The instruction's chain is latency-bound (three cycles
per eight bytes): the 64 KiB table's checksum took about 8 us of a small VHDX's
open; the zero run's scan and the multiplication take well under one (issue 18).
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef extern from *:
    """
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    #include <nmmintrin.h>
    #include <string.h>
    __attribute__((target("sse4.2")))
    static uint32_t imgscan_crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
        uint64_t reg = crc, word, w1, w2, w3;
        /* four words a step: a quarter of the loop's own instructions */
        while (n >= 32) {
            memcpy(&word, p, 8);
            memcpy(&w1, p + 8, 8);
            memcpy(&w2, p + 16, 8);
            memcpy(&w3, p + 24, 8);
            reg = _mm_crc32_u64(reg, word);
            reg = _mm_crc32_u64(reg, w1);
            reg = _mm_crc32_u64(reg, w2);
            reg = _mm_crc32_u64(reg, w3);
            p += 32;
            n -= 32;
        }
        while (n >= 8) {
            memcpy(&word, p, 8);
            reg = _mm_crc32_u64(reg, word);
            p += 8;
            n -= 8;
        }
        crc = (uint32_t)reg;
        while (n) {
            crc = _mm_crc32_u8(crc, *p);
            p++;
            n--;
        }
        return crc;
    }
    static int imgscan_crc32c_hw_available(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("sse4.2");
    }
    #else
    static uint32_t imgscan_crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
        (void)p; (void)n;
        return crc;
    }
    static int imgscan_crc32c_hw_available(void) { return 0; }
    #endif
    """
    uint32_t crc32c_hw "imgscan_crc32c_hw"(uint32_t crc, const uint8_t* p, size_t n) noexcept nogil
    int crc32c_hw_available "imgscan_crc32c_hw_available"() noexcept nogil


cdef extern from *:
    """
    #include <string.h>
    /* How many bytes at the end of p[0..n) are zero: compared with a zero page by
       memcmp (the C library's vector code) in steps of 4096, then 256 and 16 bytes, then
       byte by byte. A compare that fails stops at its first non-zero byte. */
    static const uint8_t imgscan_zero_page[4096];
    static size_t imgscan_trailing_zeros(const uint8_t *p, size_t n) {
        size_t end = n, step;
        for (step = sizeof imgscan_zero_page; step >= 16; step /= 16)
            while (end >= step && memcmp(p + end - step, imgscan_zero_page, step) == 0)
                end -= step;
        while (end && p[end - 1] == 0)
            end--;
        return n - end;
    }
    """
    size_t trailing_zeros "imgscan_trailing_zeros"(const uint8_t* p, size_t n) noexcept nogil

#: The reflected Castagnoli polynomial.
POLYNOMIAL = 0x82F63B78

cdef uint32_t C_POLYNOMIAL = 0x82F63B78
cdef uint32_t _table[8][256]


cdef void _build_tables() noexcept nogil:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = <uint32_t>i
        for k in range(8):
            if c & 1:
                c = (c >> 1) ^ C_POLYNOMIAL
            else:
                c = c >> 1
        _table[0][i] = c
    for i in range(256):
        for k in range(1, 8):
            _table[k][i] = (_table[k - 1][i] >> 8) ^ _table[0][_table[k - 1][i] & 0xFF]


#: A run of trailing zeros at least this long is carried over by multiplication, a shorter
#: one checksummed as it is: a 4 KiB VHDX header's 4016 zeros cost the instruction about
#: as long as the scan and a dozen multiplications (0.5 us), a region table's 65456 far
#: longer.
cdef size_t ZERO_RUN_MIN = 8192
#: x^(2^k) modulo the polynomial for k < X2N_POWERS: a zero run of up to 2^(X2N_POWERS - 3)
#: bytes (far more than any buffer in memory) is carried over by their products.
cdef enum:
    X2N_POWERS = 48
cdef uint32_t _x2n[X2N_POWERS]


cdef uint32_t _multmodp(uint32_t a, uint32_t b) noexcept nogil:
    """``a`` times ``b`` modulo the polynomial, bit-reflected (bit 31 is x^0, as in the
    register). ``a`` is not zero (a power of x never is)."""
    cdef uint32_t m = <uint32_t>1 << 31, p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ C_POLYNOMIAL if b & 1 else b >> 1
    return p


cdef extern from *:
    """
    #include <stdint.h>
    /* The last zero run carried over: its length (high 32 bits, never 0) and x^(8n)
       (low 32 bits), one word loaded and stored atomically, so that threads checking
       at once see a length with its own power. */
    static uint64_t imgscan_zero_power_memo = 0;
    static inline uint64_t imgscan_memo_load(void) {
        return __atomic_load_n(&imgscan_zero_power_memo, __ATOMIC_RELAXED);
    }
    static inline void imgscan_memo_store(uint64_t v) {
        __atomic_store_n(&imgscan_zero_power_memo, v, __ATOMIC_RELAXED);
    }
    """
    uint64_t memo_load "imgscan_memo_load"() noexcept nogil
    void memo_store "imgscan_memo_store"(uint64_t v) noexcept nogil


cdef uint32_t _after_zeros(uint32_t crc, size_t n) noexcept nogil:
    """The raw register after ``n`` zero bytes (``n`` > 0): ``crc`` times x^(8n).

    x^(8n) is a product per set bit of ``n`` (a region table's 65456 zeros: eleven, about
    2,800 instructions); the last one made is kept, and VHDX opens check tables of the
    same shape over and over (two entries: 65456 zeros), so it is most often one
    product (issue 18)."""
    cdef uint64_t memo = memo_load()
    cdef bint memoizable = (<uint64_t>n) >> 32 == 0     # a length the word's high half holds
    if memoizable and memo >> 32 == n:
        return _multmodp(<uint32_t>memo, crc)
    cdef uint32_t power = <uint32_t>1 << 31     # x^0
    cdef size_t rest = n
    cdef int k = 3                              # 8n = n << 3
    while rest:
        if rest & 1:
            power = _multmodp(_x2n[k], power)
        rest >>= 1
        k += 1
    if memoizable:
        memo_store(<uint64_t>n << 32 | power)
    return _multmodp(power, crc)


cdef void _build_powers() noexcept nogil:
    cdef uint32_t p = <uint32_t>1 << 30        # x^1
    cdef int k
    _x2n[0] = p
    for k in range(1, X2N_POWERS):
        p = _multmodp(p, p)
        _x2n[k] = p


_build_tables()
_build_powers()

#: Whether the processor's ``crc32`` instruction computes the checksum.
cdef bint _hardware = crc32c_hw_available() != 0
HARDWARE = _hardware


def table_crc32c(const uint8_t[::1] data not None, uint32_t crc=0):
    """:func:`crc32c` through the tables whatever the processor has: for the tests that
    hold the two paths to the same results."""
    cdef uint32_t reg = crc ^ 0xFFFFFFFF
    if data.shape[0]:
        reg = _table_update(reg, &data[0], data.shape[0])
    return reg ^ 0xFFFFFFFF


cdef uint32_t crc32c_update(uint32_t crc, const uint8_t* p, size_t n) noexcept nogil:
    """Continue a raw CRC register over ``n`` bytes (no initial or final XOR here); a
    long run of zeros at their end is carried over by :func:`_after_zeros`."""
    cdef size_t zeros = trailing_zeros(p, n) if n >= ZERO_RUN_MIN else 0
    if zeros < ZERO_RUN_MIN or (n >> (X2N_POWERS - 3)):
        zeros = 0
    if _hardware:
        crc = crc32c_hw(crc, p, n - zeros)
    else:
        crc = _table_update(crc, p, n - zeros)
    return _after_zeros(crc, zeros) if zeros else crc


cdef uint32_t _table_update(uint32_t crc, const uint8_t* p, size_t n) noexcept nogil:
    """:func:`crc32c_update` by slicing-by-8."""
    cdef uint32_t lo, hi
    while n >= 8:
        lo = crc ^ ((<uint32_t>p[0]) | (<uint32_t>p[1] << 8)
                    | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24))
        hi = ((<uint32_t>p[4]) | (<uint32_t>p[5] << 8)
              | (<uint32_t>p[6] << 16) | (<uint32_t>p[7] << 24))
        crc = (_table[7][lo & 0xFF] ^ _table[6][(lo >> 8) & 0xFF]
               ^ _table[5][(lo >> 16) & 0xFF] ^ _table[4][lo >> 24]
               ^ _table[3][hi & 0xFF] ^ _table[2][(hi >> 8) & 0xFF]
               ^ _table[1][(hi >> 16) & 0xFF] ^ _table[0][hi >> 24])
        p += 8
        n -= 8
    while n:
        crc = (crc >> 8) ^ _table[0][(crc ^ p[0]) & 0xFF]
        p += 1
        n -= 1
    return crc


cdef uint32_t crc32c_zeroed(const uint8_t* p, size_t n, size_t field) noexcept nogil:
    """CRC-32C of ``n`` bytes with the 4-byte checksum field at ``field`` read as zeros.

    This is how VHDX stores a structure's own checksum. ``field + 4`` must
    not exceed ``n``.
    """
    cdef uint8_t zeros[4]
    zeros[0] = zeros[1] = zeros[2] = zeros[3] = 0
    cdef uint32_t crc = crc32c_update(<uint32_t>0xFFFFFFFF, p, field)
    crc = crc32c_update(crc, zeros, 4)
    crc = crc32c_update(crc, p + field + 4, n - field - 4)
    return crc ^ <uint32_t>0xFFFFFFFF


def crc32c(const uint8_t[::1] data not None, uint32_t crc=0):
    """The CRC-32C of ``data``; pass a previous result as ``crc`` to continue it."""
    cdef uint32_t reg = crc ^ 0xFFFFFFFF
    if data.shape[0]:
        with nogil:
            reg = crc32c_update(reg, &data[0], data.shape[0])
    return reg ^ 0xFFFFFFFF


def crc32c_with_zeroed_field(const uint8_t[::1] data not None, Py_ssize_t field):
    """CRC-32C of ``data`` with its 4-byte checksum field at ``field`` taken as zeros."""
    if field < 0 or field + 4 > data.shape[0]:
        raise ValueError(f"checksum field at {field} lies outside {data.shape[0]} bytes")
    return crc32c_zeroed(&data[0], data.shape[0], field)

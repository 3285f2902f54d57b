# cython: language_level=3
"""A bounded LZO1X decompressor (the format of Linux's ``lib/lzo/lzo1x_decompress_safe.c``).

Btrfs stores LZO-compressed extents as LZO1X segments. No well-kept PyPI
package fits: python-lzo wraps the C library but is not in the environment
and links a system library for a few dozen lines of decoding. This is the
"safe" decoder: every input read and every output write is checked first,
a match may not reach before the output, and the output is never larger
than the caller's limit, so a hostile stream costs at most ``limit`` bytes
and time linear in input plus output. The bitstream-version-1 run-length
extension (kernel 5.9+ lzo-rle, used by zram, never by btrfs) is not read.
"""

from libc.stdint cimport uint8_t
from libc.string cimport memcpy

# Error codes of the decoder (the kernel's LZO_E_* meanings).
cdef enum:
    LZO_E_ERROR = -1
    LZO_E_INPUT_OVERRUN = -4
    LZO_E_OUTPUT_OVERRUN = -5
    LZO_E_LOOKBEHIND_OVERRUN = -6
    LZO_E_INPUT_NOT_CONSUMED = -8

#: The largest run of zero bytes in a length field (the kernel's MAX_255_COUNT, for a
#: 64-bit size_t it is far larger; this bounds the arithmetic, not the work).
cdef size_t MAX_255_COUNT = (<size_t>0xFFFFFFFF) // 255 - 2
cdef size_t M2_MAX_OFFSET = 0x0800

MESSAGES = {
    LZO_E_ERROR: "invalid LZO1X stream",
    LZO_E_INPUT_OVERRUN: "LZO1X stream ends early",
    LZO_E_OUTPUT_OVERRUN: "LZO1X stream decompresses past the limit",
    LZO_E_LOOKBEHIND_OVERRUN: "LZO1X match reaches before the output",
    LZO_E_INPUT_NOT_CONSUMED: "LZO1X stream has bytes after its end marker",
}


cdef inline Py_ssize_t _long_length(const uint8_t** ipp, const uint8_t* ip_end,
                                    size_t base) noexcept nogil:
    """A length beyond its instruction's bits: zero bytes of 255 each, then a byte,
    plus ``base``; advances ``*ipp`` past them. The length, or an LZO_E_* code."""
    cdef const uint8_t* ip = ipp[0]
    cdef const uint8_t* first = ip
    cdef size_t zeros
    while True:
        if ip >= ip_end:
            return LZO_E_INPUT_OVERRUN
        if ip[0] != 0:
            break
        ip += 1
    zeros = <size_t>(ip - first)
    if zeros > MAX_255_COUNT:
        return LZO_E_ERROR
    ipp[0] = ip + 1
    return <Py_ssize_t>((zeros << 8) - zeros + base + ip[0])


cdef inline int _literals(const uint8_t** ipp, const uint8_t* ip_end, uint8_t** opp,
                          uint8_t* op_end, size_t t) noexcept nogil:
    """Copy ``t`` literal bytes; the next instruction's 3 bytes must follow. 0 or an LZO_E_*."""
    if <size_t>(op_end - opp[0]) < t:
        return LZO_E_OUTPUT_OVERRUN
    if <size_t>(ip_end - ipp[0]) < t + 3:
        return LZO_E_INPUT_OVERRUN
    memcpy(opp[0], ipp[0], t)
    opp[0] += t
    ipp[0] += t
    return 0


cdef Py_ssize_t lzo1x_decompress_safe(const uint8_t* src, size_t src_len, uint8_t* dst,
                                      size_t dst_cap) noexcept nogil:
    """Decode ``src`` into at most ``dst_cap`` bytes of ``dst``; the length, or an LZO_E_*."""
    cdef const uint8_t* ip = src
    cdef const uint8_t* ip_end = src + src_len
    cdef uint8_t* op = dst
    cdef uint8_t* op_end = dst + dst_cap
    cdef const uint8_t* m_pos
    cdef Py_ssize_t extra
    cdef int err
    cdef bint m4 = False
    cdef size_t base
    cdef size_t t = 0, next_ = 0, state = 0, offset
    if src_len < 3:
        return LZO_E_INPUT_OVERRUN
    if ip[0] > 17:
        # A first byte over 17 starts with its literals: up to 3 as after a match
        # (state t), or a run (state 4).
        t = ip[0] - 17
        ip += 1
        err = _literals(&ip, ip_end, &op, op_end, t)
        if err:
            return err
        state = t if t < 4 else 4
    while True:
        if ip >= ip_end:
            return LZO_E_INPUT_OVERRUN
        t = ip[0]
        ip += 1
        m4 = False
        if t < 16:
            if state == 0:
                if t == 0:
                    extra = _long_length(&ip, ip_end, 15)
                    if extra < 0:
                        return extra
                    t += <size_t>extra
                err = _literals(&ip, ip_end, &op, op_end, t + 3)
                if err:
                    return err
                state = 4
                continue
            elif state != 4:
                if ip >= ip_end:
                    return LZO_E_INPUT_OVERRUN
                next_ = t & 3
                offset = 1 + (t >> 2) + (<size_t>ip[0] << 2)
                ip += 1
                if offset > <size_t>(op - dst):
                    return LZO_E_LOOKBEHIND_OVERRUN
                if <size_t>(op_end - op) < 2:
                    return LZO_E_OUTPUT_OVERRUN
                m_pos = op - offset
                op[0] = m_pos[0]
                op[1] = m_pos[1]
                op += 2
                t = 0           # the match is copied; go to match_next
            else:
                if ip >= ip_end:
                    return LZO_E_INPUT_OVERRUN
                next_ = t & 3
                offset = 1 + M2_MAX_OFFSET + (t >> 2) + (<size_t>ip[0] << 2)
                ip += 1
                t = 3
        elif t >= 64:
            if ip >= ip_end:
                return LZO_E_INPUT_OVERRUN
            next_ = t & 3
            offset = 1 + ((t >> 2) & 7) + (<size_t>ip[0] << 3)
            ip += 1
            t = (t >> 5) - 1 + 2
        else:
            # M3 (32..63) and M4 (16..31) matches: a length, extended past its bits by
            # zero bytes, then a 16-bit distance whose low 2 bits count trailing literals.
            m4 = t < 32
            if m4:
                offset, base, t = (t & 8) << 11, 7, (t & 7) + 2
            else:
                offset, base, t = 1, 31, (t & 31) + 2
            if t == 2:
                extra = _long_length(&ip, ip_end, base)
                if extra < 0:
                    return extra
                t += <size_t>extra
            if <size_t>(ip_end - ip) < 2:
                return LZO_E_INPUT_OVERRUN
            next_ = ip[0] | (<size_t>ip[1] << 8)
            ip += 2
            offset += next_ >> 2
            next_ &= 3
        if m4:
            if offset == 0:
                # The end marker: a valid stream ends with a 3-byte match of distance 0.
                if t != 3:
                    return LZO_E_ERROR
                if ip < ip_end:
                    return LZO_E_INPUT_NOT_CONSUMED
                return <Py_ssize_t>(op - dst)
            offset += 0x4000
        if t:
            # Copy a match of t bytes from offset bytes back (it may overlap the output).
            if offset > <size_t>(op - dst):
                return LZO_E_LOOKBEHIND_OVERRUN
            if <size_t>(op_end - op) < t:
                return LZO_E_OUTPUT_OVERRUN
            m_pos = op - offset
            while t > 0:
                op[0] = m_pos[0]
                op += 1
                m_pos += 1
                t -= 1
        # match_next: up to 3 literals follow the match.
        state = next_
        err = _literals(&ip, ip_end, &op, op_end, next_)
        if err:
            return err


def lzo1x_decompress(const uint8_t[::1] data not None, Py_ssize_t limit):
    """At most ``limit`` bytes decoded from one LZO1X stream ``data``.

    Raises ``ValueError`` naming the problem for an invalid stream, one that
    ends early, or one that would give more than ``limit`` bytes.
    """
    if limit < 0:
        raise ValueError("negative LZO1X output limit")
    out = bytearray(limit)
    cdef uint8_t[::1] dst = out
    cdef Py_ssize_t n
    cdef uint8_t empty = 0
    cdef const uint8_t* src = &data[0] if data.shape[0] else &empty
    cdef uint8_t* dp = &dst[0] if limit else &empty
    with nogil:
        n = lzo1x_decompress_safe(src, data.shape[0], dp, limit)
    if n < 0:
        raise ValueError(MESSAGES.get(n, "invalid LZO1X stream"))
    return bytes(out[:n])

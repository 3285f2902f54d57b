# cython: language_level=3
"""The chunk codecs of Windows' CompactOS / WOF files: XPRESS Huffman and LZX.

Specs: Microsoft [MS-XCA] "Xpress Compression Algorithm" 2.1 and 2.2 (LZ77+Huffman:
a 256-byte table of 512 4-bit code lengths, then 16-bit little-endian words read
most significant bit first, interleaved with the extra length bytes), and the LZX
variant of WIM archives and WOF as wimlib documents it (``lzx_decompress.c``,
``lzx_constants.h``: a 32 KiB window, no header, E8 call translation with the fixed
file size 12000000, 30 offset slots, blocks of type verbatim / aligned /
uncompressed, code lengths delta-coded through a 20-symbol pretree). Each WOF
chunk (4, 8 or 16 KiB for XPRESS, 32 KiB for LZX) is decoded on its own, with
fresh state.

Both decoders run without the GIL on caller buffers: ``dst`` receives exactly
``dlen`` bytes or the call fails. Every input read is checked against ``slen``
(16-bit words past the end read as zero bits, as wimlib does: the output bound
still ends the loop), every write against ``dlen``, every match against the bytes
already produced, and every Huffman code against Kraft's inequality before its
table is filled, so a hostile chunk costs time linear in ``slen + dlen`` and no
memory beyond fixed-size stack tables. A failure returns ``-1 - position``: the
source byte where decoding stopped.
"""

from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from imgscan import limits

from .binary cimport le16, le32


# -- canonical Huffman codes, shared by both formats ------------------------------------
cdef enum:
    TABLE_BITS = 10             # first-level lookup; longer codes are found canonically
    MAX_CODE_LEN = 16
    MAX_SYMBOLS = 512


cdef struct Huffman:
    uint16_t table[1 << TABLE_BITS]     # symbol << 5 | length, 0 where no short code
    int32_t first[MAX_CODE_LEN + 1]     # first code of each length
    uint16_t count[MAX_CODE_LEN + 1]
    uint16_t offset[MAX_CODE_LEN + 1]   # index in ``sorted`` of each length's first symbol
    uint16_t sorted[MAX_SYMBOLS]        # symbols by (length, value)
    int max_len


cdef int huffman_build(Huffman* h, const uint8_t* lens, int n, int max_len) noexcept nogil:
    """Build the canonical code of ``n`` code lengths (0: unused); 0, or -1 when the
    lengths over-subscribe the code space (an incomplete code is accepted: its unused
    codes fail when met)."""
    cdef int i, l, code, left = 1
    cdef uint16_t pos[MAX_CODE_LEN + 1]
    memset(h.count, 0, sizeof(h.count))
    for i in range(n):
        if lens[i] > max_len:
            return -1
        h.count[lens[i]] += 1
    h.count[0] = 0
    for l in range(1, max_len + 1):
        left = (left << 1) - h.count[l]
        if left < 0:
            return -1
    h.max_len = max_len
    h.first[0] = 0
    h.offset[0] = 0
    code = 0
    for l in range(1, max_len + 1):
        code = (code + h.count[l - 1]) << 1
        h.first[l] = code
        h.offset[l] = h.offset[l - 1] + (h.count[l - 1] if l > 1 else 0)
        pos[l] = h.offset[l]
    for i in range(n):
        if lens[i]:
            h.sorted[pos[lens[i]]] = <uint16_t>i
            pos[lens[i]] += 1
    # Kraft's inequality holds, so each length's codes end at or below 2^l, and the
    # entries filled for a code of length l <= TABLE_BITS stay below 2^TABLE_BITS.
    memset(h.table, 0, sizeof(h.table))
    cdef int lo, hi, k, j
    for l in range(1, (max_len if max_len < TABLE_BITS else TABLE_BITS) + 1):
        for k in range(h.count[l]):
            lo = (h.first[l] + k) << (TABLE_BITS - l)
            hi = lo + (1 << (TABLE_BITS - l))
            for j in range(lo, hi):
                h.table[j] = <uint16_t>((h.sorted[h.offset[l] + k] << 5) | l)
    return 0


cdef inline int huffman_decode(const Huffman* h, uint32_t peek, int* length) noexcept nogil:
    """The symbol whose code starts the top bits of ``peek`` (its length in ``*length``),
    or -1 for a code the table does not hold."""
    cdef uint16_t e = h.table[peek >> (32 - TABLE_BITS)]
    cdef int l
    cdef int32_t code
    if e:
        length[0] = e & 31
        return e >> 5
    for l in range(TABLE_BITS + 1, h.max_len + 1):
        code = <int32_t>(peek >> (32 - l))
        if code - h.first[l] < h.count[l] and code >= h.first[l]:
            length[0] = l
            return h.sorted[h.offset[l] + code - h.first[l]]
    return -1


cdef inline void _copy_match(uint8_t* out, Py_ssize_t offset, Py_ssize_t length) noexcept nogil:
    """Copy ``length`` bytes from ``offset`` back (the caller proved both in bounds); an
    overlapping match repeats its bytes, so it is copied byte by byte."""
    cdef Py_ssize_t i
    if offset >= length:
        memcpy(out, out - offset, length)
        return
    for i in range(length):
        out[i] = out[i - offset]


# -- XPRESS Huffman ([MS-XCA] 2.2.4) ------------------------------------------------------
cdef enum:
    XPRESS_SYMBOLS = 512
    XPRESS_TABLE = 256          # 512 4-bit lengths
    XPRESS_MAX_LEN = 15
    XPRESS_BLOCK = 65536        # output covered by one table
    XPRESS_MIN_MATCH = 3


cdef inline uint32_t _word(const uint8_t* src, Py_ssize_t slen, Py_ssize_t pos) noexcept nogil:
    return le16(src + pos) if pos + 2 <= slen else 0


cdef inline Py_ssize_t _drop_bits(uint32_t* bits, int* extra, int n, const uint8_t* src,
                                  Py_ssize_t slen, Py_ssize_t pos) noexcept nogil:
    """Drop the ``n`` bits just used from the 32-bit buffer; when fewer than 16 are left
    beyond the next symbol's, take the next 16-bit word. Returns the new source position."""
    bits[0] <<= n
    extra[0] -= n
    if extra[0] < 0:
        bits[0] |= _word(src, slen, pos) << (-extra[0])
        extra[0] += 16
        pos += 2
    return pos


cdef Py_ssize_t xpress_huffman(const uint8_t* src, Py_ssize_t slen, uint8_t* dst,
                               Py_ssize_t dlen) noexcept nogil:
    """Decode one XPRESS Huffman block into exactly ``dlen`` (at most 64 KiB) bytes.

    Returns ``dlen``, or ``-1 - position`` of the source byte where it failed."""
    cdef Huffman h
    cdef uint8_t lens[XPRESS_SYMBOLS]
    cdef Py_ssize_t pos, dp = 0, i, length, offset
    cdef uint32_t bits
    cdef int extra, sym, l, obits
    if dlen <= 0:
        return 0
    if dlen > XPRESS_BLOCK or slen < XPRESS_TABLE + 4:
        return -1
    for i in range(XPRESS_TABLE):
        lens[2 * i] = src[i] & 15
        lens[2 * i + 1] = src[i] >> 4
    if huffman_build(&h, lens, XPRESS_SYMBOLS, XPRESS_MAX_LEN) < 0:
        return -1
    pos = XPRESS_TABLE
    bits = (_word(src, slen, pos) << 16) | _word(src, slen, pos + 2)
    pos += 4
    extra = 16                          # bits held beyond the 16 a symbol may need
    while dp < dlen:
        sym = huffman_decode(&h, bits, &l)
        if sym < 0:
            return -1 - pos
        pos = _drop_bits(&bits, &extra, l, src, slen, pos)
        if sym < 256:
            dst[dp] = <uint8_t>sym
            dp += 1
            continue
        sym -= 256
        length = sym & 15
        obits = sym >> 4
        if length == 15:
            if pos >= slen:
                return -1 - pos
            length = src[pos]
            pos += 1
            if length == 255:
                if pos + 2 > slen:
                    return -1 - pos
                length = le16(src + pos)
                pos += 2
                if length < 15:
                    return -1 - pos
                length -= 15
            length += 15
        length += XPRESS_MIN_MATCH
        offset = <Py_ssize_t>1 << obits
        if obits:
            offset += bits >> (32 - obits)
            pos = _drop_bits(&bits, &extra, obits, src, slen, pos)
        if offset > dp or length > dlen - dp:
            return -1 - pos
        _copy_match(dst + dp, offset, length)
        dp += length
    return dp


# -- LZX (WIM / WOF variant) -------------------------------------------------------------
cdef enum:
    LZX_CHUNK = 32768           # window and largest chunk
    LZX_NUM_CHARS = 256
    LZX_OFFSET_SLOTS = 30
    LZX_LEN_HEADERS = 8
    LZX_MAIN_SYMBOLS = LZX_NUM_CHARS + LZX_OFFSET_SLOTS * LZX_LEN_HEADERS
    LZX_PRIMARY_LENS = 7
    LZX_LEN_SYMBOLS = 249
    LZX_PRE_SYMBOLS = 20
    LZX_ALIGNED_SYMBOLS = 8
    LZX_MIN_MATCH = 2
    LZX_VERBATIM = 1
    LZX_ALIGNED = 2
    LZX_UNCOMPRESSED = 3
    LZX_E8_FILE_SIZE = 12000000

cdef uint32_t[LZX_OFFSET_SLOTS] SLOT_BASE = [
    0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768,
    1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576]
cdef uint8_t[LZX_OFFSET_SLOTS] SLOT_EXTRA = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8,
    9, 9, 10, 10, 11, 11, 12, 12, 13, 13]


cdef struct Bits:
    # 16-bit little-endian words, most significant bit first; ``buf`` holds ``left``
    # bits at its top. ``pos`` is the next word's byte position (it may pass ``slen``:
    # such words read as zeros).
    const uint8_t* src
    Py_ssize_t slen, pos
    uint64_t buf
    int left


cdef inline void _fill(Bits* b, int n) noexcept nogil:
    while b.left < n:
        b.buf |= <uint64_t>_word(b.src, b.slen, b.pos) << (48 - b.left)
        b.pos += 2
        b.left += 16


cdef inline uint32_t _read(Bits* b, int n) noexcept nogil:
    """The next ``n`` (0..16) bits."""
    cdef uint32_t v
    if n == 0:
        return 0
    _fill(b, n)
    v = <uint32_t>(b.buf >> (64 - n))
    b.buf <<= n
    b.left -= n
    return v


cdef inline int _symbol(Bits* b, const Huffman* h) noexcept nogil:
    cdef int l, sym
    _fill(b, MAX_CODE_LEN)
    sym = huffman_decode(h, <uint32_t>(b.buf >> 32), &l)
    if sym >= 0:
        b.buf <<= l
        b.left -= l
    return sym


cdef int _read_lens(Bits* b, Huffman* pre, uint8_t* lens, int n) noexcept nogil:
    """Code lengths ``lens[0:n]`` as deltas from their previous values, through the
    pretree read first (20 lengths of 4 bits); 0, or -1 on a malformed pretree."""
    cdef uint8_t pre_lens[LZX_PRE_SYMBOLS]
    cdef int i = 0, sym, run, value
    for i in range(LZX_PRE_SYMBOLS):
        pre_lens[i] = <uint8_t>_read(b, 4)
    if huffman_build(pre, pre_lens, LZX_PRE_SYMBOLS, 15) < 0:
        return -1
    i = 0
    while i < n:
        sym = _symbol(b, pre)
        if sym < 0:
            return -1
        if sym < 17:
            lens[i] = <uint8_t>((lens[i] + 17 - sym) % 17)
            i += 1
            continue
        if sym == 17:
            run = 4 + <int>_read(b, 4)
            value = 0
        elif sym == 18:
            run = 20 + <int>_read(b, 5)
            value = 0
        else:
            run = 4 + <int>_read(b, 1)
            sym = _symbol(b, pre)
            if sym < 0 or sym > 17:
                return -1
            value = (lens[i] + 17 - sym) % 17
        while run > 0 and i < n:        # a run past the end is cut, never written beyond
            lens[i] = <uint8_t>value
            i += 1
            run -= 1
    return 0


cdef struct Lzx:
    Huffman main, length, aligned, pre
    uint8_t main_lens[LZX_MAIN_SYMBOLS]
    uint8_t len_lens[LZX_LEN_SYMBOLS]
    uint8_t aligned_lens[LZX_ALIGNED_SYMBOLS]


cdef void _undo_e8(uint8_t* dst, Py_ssize_t dlen) noexcept nogil:
    """Undo the E8 (x86 CALL) translation: an absolute target after each E8 byte before
    the last 10 becomes relative again."""
    cdef Py_ssize_t i = 0
    cdef int32_t target, rel
    while i < dlen - 10:
        if dst[i] != 0xE8:
            i += 1
            continue
        target = <int32_t>le32(dst + i + 1)
        if target >= 0:
            if target < LZX_E8_FILE_SIZE:
                rel = target - <int32_t>i
                dst[i + 1] = rel & 0xFF
                dst[i + 2] = (rel >> 8) & 0xFF
                dst[i + 3] = (rel >> 16) & 0xFF
                dst[i + 4] = (rel >> 24) & 0xFF
        elif target >= -<int32_t>i:
            rel = target + LZX_E8_FILE_SIZE
            dst[i + 1] = rel & 0xFF
            dst[i + 2] = (rel >> 8) & 0xFF
            dst[i + 3] = (rel >> 16) & 0xFF
            dst[i + 4] = (rel >> 24) & 0xFF
        i += 5


cdef Py_ssize_t lzx(const uint8_t* src, Py_ssize_t slen, uint8_t* dst,
                    Py_ssize_t dlen) noexcept nogil:
    """Decode one LZX chunk into exactly ``dlen`` (at most 32 KiB) bytes.

    Returns ``dlen``, or ``-1 - position`` of the source byte where it failed."""
    cdef Lzx s
    cdef Bits b
    cdef uint32_t recent[3]
    cdef Py_ssize_t dp = 0, end, i, bsize, length
    cdef uint32_t offset
    cdef int btype, sym, slot, nextra, skip
    cdef bint e8 = False
    if dlen <= 0:
        return 0
    if dlen > LZX_CHUNK:
        return -1
    memset(s.main_lens, 0, sizeof(s.main_lens))
    memset(s.len_lens, 0, sizeof(s.len_lens))
    recent[0] = recent[1] = recent[2] = 1
    b.src = src
    b.slen = slen
    b.pos = 0
    b.buf = 0
    b.left = 0
    while dp < dlen:
        btype = <int>_read(&b, 3)
        if _read(&b, 1):
            bsize = LZX_CHUNK
        else:
            bsize = <Py_ssize_t>_read(&b, 8) << 8
            bsize |= _read(&b, 8)
        if btype == LZX_ALIGNED:
            for i in range(LZX_ALIGNED_SYMBOLS):
                s.aligned_lens[i] = <uint8_t>_read(&b, 3)
            if huffman_build(&s.aligned, s.aligned_lens, LZX_ALIGNED_SYMBOLS, 7) < 0:
                return -1 - b.pos
        if btype == LZX_VERBATIM or btype == LZX_ALIGNED:
            if (_read_lens(&b, &s.pre, s.main_lens, LZX_NUM_CHARS) < 0
                    or _read_lens(&b, &s.pre, s.main_lens + LZX_NUM_CHARS,
                                  LZX_MAIN_SYMBOLS - LZX_NUM_CHARS) < 0
                    or huffman_build(&s.main, s.main_lens, LZX_MAIN_SYMBOLS, 16) < 0
                    or _read_lens(&b, &s.pre, s.len_lens, LZX_LEN_SYMBOLS) < 0
                    or huffman_build(&s.length, s.len_lens, LZX_LEN_SYMBOLS, 16) < 0):
                return -1 - b.pos
        elif btype == LZX_UNCOMPRESSED:
            # Back to the 16-bit boundary (a whole word when already on one), then the
            # three recent offsets and the bytes; buffered whole words are given back.
            skip = b.left % 16
            if skip == 0:
                skip = 16
            _fill(&b, skip)
            b.buf <<= skip
            b.left -= skip
            b.pos -= b.left // 8
            b.buf = 0
            b.left = 0
            if b.pos < 0 or b.pos + 12 > slen:
                return -1 - (b.pos if b.pos > 0 else 0)
            for i in range(3):
                recent[i] = le32(src + b.pos + 4 * i)
                if recent[i] == 0:
                    return -1 - b.pos
            b.pos += 12
        else:
            return -1 - b.pos
        if bsize < 1 or bsize > dlen - dp:
            return -1 - b.pos
        end = dp + bsize
        if btype == LZX_UNCOMPRESSED:
            if b.pos + bsize > slen:
                return -1 - b.pos
            memcpy(dst + dp, src + b.pos, bsize)
            b.pos += bsize + (bsize & 1)
            dp = end
            e8 = True
            continue
        while dp < end:
            sym = _symbol(&b, &s.main)
            if sym < 0:
                return -1 - b.pos
            if sym < LZX_NUM_CHARS:
                dst[dp] = <uint8_t>sym
                dp += 1
                continue
            sym -= LZX_NUM_CHARS
            length = sym % LZX_LEN_HEADERS
            slot = sym // LZX_LEN_HEADERS
            if length == LZX_PRIMARY_LENS:
                sym = _symbol(&b, &s.length)
                if sym < 0:
                    return -1 - b.pos
                length += sym
            length += LZX_MIN_MATCH
            if slot < 3:
                offset = recent[slot]
                recent[slot] = recent[0]
                recent[0] = offset
            else:
                nextra = SLOT_EXTRA[slot]
                offset = SLOT_BASE[slot]
                if btype == LZX_ALIGNED and nextra >= 3:
                    offset += _read(&b, nextra - 3) << 3
                    sym = _symbol(&b, &s.aligned)
                    if sym < 0:
                        return -1 - b.pos
                    offset += <uint32_t>sym
                else:
                    offset += _read(&b, nextra)
                offset -= 2
                recent[2] = recent[1]
                recent[1] = recent[0]
                recent[0] = offset
            if offset > <uint32_t>dp or length > end - dp:
                return -1 - b.pos
            _copy_match(dst + dp, offset, length)
            dp += length
        e8 = e8 or s.main_lens[0xE8] != 0
    if e8:
        _undo_e8(dst, dlen)
    return dp


# -- Python entry points (tests, fuzzing, benchmarks) ------------------------------------
def _decode(data, Py_ssize_t size, bint is_lzx):
    cdef const uint8_t[::1] src = data
    cdef Py_ssize_t n
    limits.enforce(size, "WOF_MAX_CHUNK_BYTES", "chunk", "chunk", None,
                   "uncompressed chunk size in bytes")
    if size < 0:
        raise ValueError("negative size")
    out = bytearray(size)
    if size == 0:
        return b""
    cdef uint8_t[::1] dst = out
    cdef const uint8_t* sp = &src[0] if src.shape[0] else <const uint8_t*>b""
    with nogil:
        if is_lzx:
            n = lzx(sp, src.shape[0], &dst[0], size)
        else:
            n = xpress_huffman(sp, src.shape[0], &dst[0], size)
    if n != size:
        raise ValueError(f"malformed {'LZX' if is_lzx else 'XPRESS Huffman'} chunk "
                         f"at byte {-1 - n}")
    return bytes(out)


def xpress_huffman_decompress(data, Py_ssize_t size):
    """Decode one XPRESS Huffman chunk of ``size`` bytes; ValueError when malformed."""
    return _decode(data, size, False)


def lzx_decompress(data, Py_ssize_t size):
    """Decode one WIM/WOF LZX chunk of ``size`` bytes; ValueError when malformed."""
    return _decode(data, size, True)

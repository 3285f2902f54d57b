"""NTFS's nogil helpers: update sequence fixups, $UpCase name collation, index node search, LZNT1.

They work on raw record and node bytes with no Python objects, so the reader
(:mod:`imgscan._core.ntfs`) calls them inside its walks without the GIL's
cost; each returns a status or an offset for the reader to turn into an error
naming the volume, the structure and the disk offset.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from imgscan import limits

from .binary cimport le16, le32, le64
from .ntfs_layout cimport *

cdef Py_ssize_t apply_fixup(uint8_t* rec, Py_ssize_t size) noexcept nogil:
    """Apply the update sequence array in place.

    Returns -1 on success, else the byte offset (in the record) of the first
    problem: a header field out of range or a stride whose check value differs
    (a torn write).
    """
    cdef Py_ssize_t usa = le16(rec + REC_USA_OFFSET)
    cdef Py_ssize_t count = le16(rec + REC_USA_COUNT)
    cdef Py_ssize_t i, end
    if count != size // FIXUP_STRIDE + 1 or usa < 8 or usa % 2 or usa + 2 * count > size:
        return REC_USA_OFFSET
    for i in range(1, count):
        end = i * FIXUP_STRIDE - 2
        if rec[end] != rec[usa] or rec[end + 1] != rec[usa + 1]:
            return end
        rec[end] = rec[usa + 2 * i]
        rec[end + 1] = rec[usa + 2 * i + 1]
    return -1


cdef int _upcase_compare(const uint16_t* upcase, const uint8_t* a, Py_ssize_t alen,
                         const uint16_t* b, Py_ssize_t blen) noexcept nogil:
    """Compare UTF-16LE name ``a`` with the already upcased units ``b``
    (COLLATION_FILE_NAME: code units mapped through $UpCase, then length)."""
    cdef Py_ssize_t i, n = alen if alen < blen else blen
    cdef uint16_t ca
    for i in range(n):
        ca = upcase[le16(a + 2 * i)]
        if ca != b[i]:
            return -1 if ca < b[i] else 1
    if alen == blen:
        return 0
    return -1 if alen < blen else 1



cdef uint32_t name_pages(const uint8_t* name, Py_ssize_t units) noexcept nogil:
    """The $UpCase pages (bit ``u >> UPCASE_PAGE_SHIFT`` for code unit ``u``) that the
    UTF-16LE ``name`` of ``units`` code units is mapped through."""
    cdef uint32_t pages = 0
    cdef Py_ssize_t i
    for i in range(units):
        pages |= 1u << (le16(name + 2 * i) >> UPCASE_PAGE_SHIFT)
    return pages


cdef uint32_t node_pages(const uint8_t* node, Py_ssize_t pos, Py_ssize_t end) noexcept nogil:
    """The $UpCase pages the names of the index entries in [pos, end) need: every entry
    :func:`search_node` may compare, in its order, up to the last entry or the first
    malformed one (where the search stops too)."""
    cdef Py_ssize_t length, key_length, nlen
    cdef uint32_t flags, pages = 0
    while pos + IE_HEADER <= end:
        length = le16(node + pos + IE_LENGTH)
        key_length = le16(node + pos + IE_KEY_LENGTH)
        flags = le32(node + pos + IE_FLAGS)
        if length < IE_HEADER or length % 8 or pos + length > end or flags & IE_LAST:
            break
        if key_length < FN_NAME or IE_KEY + key_length > length:
            break
        nlen = node[pos + IE_KEY + FN_NAME_LENGTH]
        if FN_NAME + 2 * nlen > key_length:
            break
        pages |= name_pages(node + pos + IE_KEY + FN_NAME, nlen)
        pos += length
    return pages


cdef int search_node(const uint8_t* node, Py_ssize_t pos, Py_ssize_t end,
                     const uint16_t* upcase, const uint16_t* target, Py_ssize_t tlen,
                     uint64_t* ref, int64_t* vcn, Py_ssize_t* bad) noexcept nogil:
    """Find ``target`` among the index entries of one node in [pos, end).

    FOUND sets ``ref``; DESCEND sets ``vcn`` (the sub-node of the first key
    greater than the target, or of the last entry); CORRUPT sets ``bad`` to
    the offending entry's position.
    """
    cdef Py_ssize_t length, key_length, nlen
    cdef uint32_t flags
    cdef int c
    while True:
        if pos + IE_HEADER > end:
            bad[0] = pos
            return SEARCH_CORRUPT
        length = le16(node + pos + IE_LENGTH)
        key_length = le16(node + pos + IE_KEY_LENGTH)
        flags = le32(node + pos + IE_FLAGS)
        if length < IE_HEADER or length % 8 or pos + length > end:
            bad[0] = pos
            return SEARCH_CORRUPT
        if flags & IE_HAS_SUBNODE and length < IE_HEADER + 8:
            bad[0] = pos
            return SEARCH_CORRUPT
        if flags & IE_LAST:
            c = -1
        else:
            if key_length < FN_NAME or IE_KEY + key_length > length:
                bad[0] = pos
                return SEARCH_CORRUPT
            nlen = node[pos + IE_KEY + FN_NAME_LENGTH]
            if FN_NAME + 2 * nlen > key_length:
                bad[0] = pos
                return SEARCH_CORRUPT
            c = _upcase_compare(upcase, node + pos + IE_KEY + FN_NAME, nlen, target, tlen)
            if c == 0:
                ref[0] = le64(node + pos + IE_REFERENCE)
                return SEARCH_FOUND
            c = -c      # target versus key
        if c < 0:
            if flags & IE_HAS_SUBNODE:
                vcn[0] = <int64_t>le64(node + pos + length - 8)
                return SEARCH_DESCEND
            return SEARCH_ABSENT
        pos += length


cdef Py_ssize_t lznt1(const uint8_t* src, Py_ssize_t slen, uint8_t* dst,
                      Py_ssize_t dcap) noexcept nogil:
    """Decompress an LZNT1 stream into ``dst`` (pre-zeroed, ``dcap`` bytes).

    Returns the bytes produced, or -1 - (source position) on a malformed
    stream: a chunk past the input, a back-reference before the chunk or
    output past ``dcap`` (never more than one compression unit).
    """
    cdef Py_ssize_t sp = 0, dp = 0, csize, cend, chunk, pos, length, disp, i
    cdef uint16_t header, token
    cdef uint8_t flags
    cdef int bit, shift
    while sp + 2 <= slen and dp < dcap:
        header = le16(src + sp)
        if header == 0:
            break
        sp += 2
        csize = (header & 0xFFF) + 1
        if sp + csize > slen:
            return -1 - sp
        if not header & LZNT1_COMPRESSED:
            if dp + csize > dcap:
                return -1 - sp
            memcpy(dst + dp, src + sp, csize)
            dp += csize
            sp += csize
            continue
        chunk = dp
        cend = sp + csize
        while sp < cend:
            flags = src[sp]
            sp += 1
            for bit in range(8):
                if sp >= cend:
                    break
                pos = dp - chunk
                if not flags & 1:
                    if dp >= dcap or pos >= LZNT1_CHUNK:
                        return -1 - sp
                    dst[dp] = src[sp]
                    dp += 1
                    sp += 1
                else:
                    if sp + 2 > cend or pos == 0:
                        return -1 - sp
                    token = le16(src + sp)
                    sp += 2
                    shift = 12
                    i = pos - 1
                    while i >= 0x10:
                        i >>= 1
                        shift -= 1
                    length = (token & ((1 << shift) - 1)) + 3
                    disp = (token >> shift) + 1
                    if disp > pos or dp + length > dcap or pos + length > LZNT1_CHUNK:
                        return -1 - sp
                    for i in range(length):
                        dst[dp + i] = dst[dp + i - disp]
                    dp += length
                flags >>= 1
        # A chunk that decompresses short is zero-filled to 4 KiB (ntfs-3g).
        if sp + 2 <= slen and le16(src + sp) != 0:
            dp = chunk + LZNT1_CHUNK if chunk + LZNT1_CHUNK < dcap else dcap
    return dp


def lznt1_decompress(data, Py_ssize_t size):
    """Decompress one LZNT1 compression unit of at most ``size`` bytes.

    Returns the bytes (zero-padded to ``size``); raises ValueError on a
    malformed stream. Exposed for tests and for callers reading WOF/LZNT1.
    """
    cdef const uint8_t[::1] src = data
    cdef Py_ssize_t n
    if size <= 0:
        return b""
    if size > limits.NTFS_MAX_COMPRESSION_UNIT_BYTES:
        raise ValueError(f"{size} bytes exceed limits.NTFS_MAX_COMPRESSION_UNIT_BYTES")
    out = bytearray(size)
    cdef uint8_t[::1] dst = out
    if src.shape[0] == 0:
        return bytes(out)
    with nogil:
        n = lznt1(&src[0], src.shape[0], &dst[0], size)
    if n < 0:
        raise ValueError(f"malformed LZNT1 stream at byte {-1 - n}")
    return bytes(out)

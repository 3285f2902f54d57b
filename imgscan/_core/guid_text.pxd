# GUIDs and UUIDs as text in C, for the headers decoded on every open (VHDX: six per
# image, VHD: two): the same text as imgscan._core.guid.guid_text and uuid_text (lower
# case, 8-4-4-4-12) without slicing bytes objects and joining their hex in Python.
from libc.stdint cimport uint8_t


cdef inline str _dashed_text(const uint8_t* p, const int* order):
    """The 16 bytes at ``p`` printed in ``order`` (the on-disk byte of each printed
    byte; -1 marks a dash)."""
    cdef const char* digits = b"0123456789abcdef"
    cdef char out[36]
    cdef int i, k = 0
    cdef uint8_t b
    for i in range(20):
        if order[i] < 0:
            out[k] = b'-'
            k += 1
        else:
            b = p[order[i]]
            out[k] = digits[b >> 4]
            out[k + 1] = digits[b & 15]
            k += 2
    return out[:36].decode("ascii")


cdef inline str ms_guid_text(const uint8_t* p):
    """The 16 bytes at ``p`` (the caller has proven them there) as GUID text, in
    Microsoft's mixed-endian order (the first three fields little-endian)."""
    cdef int order[20]
    order[:] = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
    return _dashed_text(p, order)


cdef inline str rfc_uuid_text(const uint8_t* p):
    """The 16 bytes at ``p`` (the caller has proven them there) as UUID text, in RFC 4122
    (big-endian) order."""
    cdef int order[20]
    order[:] = [0, 1, 2, 3, -1, 4, 5, -1, 6, 7, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
    return _dashed_text(p, order)

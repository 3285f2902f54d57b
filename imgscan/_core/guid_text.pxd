# GUIDs as text in C, for the headers decoded on every open (VHDX: six per image): the
# same text as imgscan._core.guid.guid_text (lower case, 8-4-4-4-12, Microsoft's
# mixed-endian order, the first three fields little-endian) without slicing bytes
# objects and joining their hex in Python.
from libc.stdint cimport uint8_t


cdef inline str ms_guid_text(const uint8_t* p):
    """The 16 bytes at ``p`` (the caller has proven them there) as GUID text."""
    # on-disk byte of each of the 16 printed bytes; -1 marks a dash
    cdef const char* digits = b"0123456789abcdef"
    cdef int order[20]
    order[:] = [3, 2, 1, 0, -1, 5, 4, -1, 7, 6, -1, 8, 9, -1, 10, 11, 12, 13, 14, 15]
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

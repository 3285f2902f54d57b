# A UTF-16 name field up to its first NUL, in C: VHD's parent name (big-endian) and
# locator paths, VHDX's creator and parent locator entries (little-endian). One helper, so
# that every such field takes hostile lengths alike (an odd last byte, which no field of
# either spec has, is dropped rather than failing the decode).
from libc.stdint cimport uint8_t


cdef extern from "Python.h":
    object PyUnicode_DecodeUTF16(const char* s, Py_ssize_t size, const char* errors,
                                 int* byteorder)


cdef inline str utf16_text(bytes raw, bint big_endian):
    """``raw`` as UTF-16 up to its first NUL; lone surrogates kept, escaped.

    The NUL is found in C first, as the first zero code unit (no surrogate pair holds
    one), and only the text before it decoded: most of these fields are mostly zeros
    and are read on every open (issue 18). The decoder is called in place, with the byte
    order fixed (as the "utf-16-be"/"-le" codecs do: no BOM is taken), not through a
    slice and the codec registry's look-up of the encoding's name."""
    cdef const uint8_t* p = <const uint8_t*><char*>raw
    cdef Py_ssize_t end = 0, n = len(raw) & ~1
    cdef int byteorder = 1 if big_endian else -1
    while end < n and (p[end] | p[end + 1]):
        end += 2
    text = PyUnicode_DecodeUTF16(<const char*>p, end, "surrogatepass", &byteorder)
    return text if text.isascii() else text.encode(
        "utf-8", errors="backslashreplace").decode("utf-8")

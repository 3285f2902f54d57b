"""The JSON text of a contract object, byte for byte what :func:`json.dumps` writes with
its defaults (RFC 8259 text; ``ensure_ascii``, ``", "`` and ``": "`` between items, keys
in insertion order, ``NaN`` / ``Infinity`` for the floats JSON lacks).

Why native (issue 18): the standard library's C encoder makes a ``str`` for every key,
value and separator and joins them at the end, about 130 ns an item: 6 to 14 us of a
small image's ``imgscan info --json``, a fifth of the image's whole cost in a scan
worker. Here every item is appended to one growing byte buffer, and a string of
printable ASCII (nearly every key and value) is copied as it is.

Only the types an info, check or scan object holds are written here: exactly ``dict``
with ``str`` keys, ``list``, ``tuple``, ``str``, ``int``, ``bool``, ``float`` and
``None``. Anything else (a subclass, another key type, an object nested deeper than
:data:`MAX_DEPTH`) raises :class:`Unsupported`, and the caller hands the whole object to
the standard library's encoder, whose output and errors then stand
(:mod:`imgscan.report.json`). The output's size follows the object's, which is already
in memory (at most 12 bytes a character: a surrogate pair's two ``\\u`` escapes).
"""

from cpython.bytes cimport PyBytes_AS_STRING
from cpython.conversion cimport Py_DTSF_ADD_DOT_0, PyOS_double_to_string
from cpython.dict cimport PyDict_Next
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.sequence cimport PySequence_Fast_GET_ITEM, PySequence_Fast_GET_SIZE
from cpython.unicode cimport (
    PyUnicode_1BYTE_KIND, PyUnicode_DATA, PyUnicode_DecodeASCII, PyUnicode_GET_LENGTH,
    PyUnicode_KIND, PyUnicode_READ,
)
from libc.math cimport isfinite, isnan
from libc.stdint cimport uint32_t
from libc.string cimport memcpy, strlen

#: Containers nested deeper than this are left to the standard library's encoder (which
#: has the interpreter's recursion limit): contract objects nest five or six deep.
MAX_DEPTH = 64
#: The buffer's first size: an info object of a small image is about 1.5 KB.
cdef Py_ssize_t FIRST_SIZE = 4096
cdef const char *HEX = b"0123456789abcdef"


class Unsupported(Exception):
    """The object holds something only the standard library's encoder writes."""


cdef struct Buffer:
    char *data
    Py_ssize_t size
    Py_ssize_t used


cdef int _reserve(Buffer *buf, Py_ssize_t more) except -1:
    """Room for ``more`` bytes after the used ones (the buffer at least doubles)."""
    cdef Py_ssize_t need = buf.used + more
    cdef Py_ssize_t size = buf.size
    cdef char *grown
    if need <= size:
        return 0
    while size < need:
        size *= 2
    grown = <char *>PyMem_Realloc(buf.data, size)
    if grown == NULL:
        raise MemoryError()
    buf.data = grown
    buf.size = size
    return 0


cdef inline int _put(Buffer *buf, const char *text, Py_ssize_t n) except -1:
    _reserve(buf, n)
    memcpy(buf.data + buf.used, text, n)
    buf.used += n
    return 0


cdef inline bint _plain(uint32_t c) noexcept nogil:
    """Written as it is: printable ASCII but the quote and the backslash (``_json``'s
    ``S_CHAR``)."""
    return 0x20 <= c <= 0x7E and c != 0x22 and c != 0x5C


cdef inline void _u_escape(uint32_t unit, char *out) noexcept nogil:
    """``\\u`` and the four lower-case hex digits of a UTF-16 code unit, at ``out``."""
    out[0] = b'\\'
    out[1] = b'u'
    out[2] = HEX[(unit >> 12) & 0xF]
    out[3] = HEX[(unit >> 8) & 0xF]
    out[4] = HEX[(unit >> 4) & 0xF]
    out[5] = HEX[unit & 0xF]


cdef inline Py_ssize_t _escape(uint32_t c, char *out) noexcept nogil:
    """Write the escape of ``c`` at ``out`` (room for 12 bytes); its length. The
    standard library's forms: the short ones for the quote, the backslash and five
    controls, else ``\\u`` and four lower-case hex digits, a surrogate pair above the
    Basic Multilingual Plane."""
    cdef char short = 0
    if c == 0x5C or c == 0x22:
        short = <char>c
    elif c == 0x08:
        short = b'b'
    elif c == 0x0C:
        short = b'f'
    elif c == 0x0A:
        short = b'n'
    elif c == 0x0D:
        short = b'r'
    elif c == 0x09:
        short = b't'
    if short:
        out[0] = b'\\'
        out[1] = short
        return 2
    if c < 0x10000:
        _u_escape(c, out)
        return 6
    _u_escape(0xD800 | (((c - 0x10000) >> 10) & 0x3FF), out)
    _u_escape(0xDC00 | ((c - 0x10000) & 0x3FF), out + 6)
    return 12


cdef int _put_str(Buffer *buf, str s) except -1:
    """A JSON string: quoted, the plain run copied at once, the rest escaped."""
    cdef Py_ssize_t length = PyUnicode_GET_LENGTH(s)
    cdef int kind = PyUnicode_KIND(s)
    cdef void *data = PyUnicode_DATA(s)
    cdef const char *chars = <const char *>data
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t start
    cdef uint32_t c
    # the common case: every character plain, one copy (2 bytes for the quotes)
    if kind == PyUnicode_1BYTE_KIND:
        while i < length and _plain(<unsigned char>chars[i]):
            i += 1
    _reserve(buf, length + 2 if i == length else 2 + i + (length - i) * 12)
    buf.data[buf.used] = b'"'
    memcpy(buf.data + buf.used + 1, chars, i)
    buf.used += 1 + i
    while i < length:
        # bounds: the reserve above holds 12 bytes for each character from i on
        c = PyUnicode_READ(kind, data, i)
        if _plain(c):
            buf.data[buf.used] = <char>c
            buf.used += 1
        else:
            buf.used += _escape(c, buf.data + buf.used)
        i += 1
    buf.data[buf.used] = b'"'
    buf.used += 1
    return 0


cdef int _put_int(Buffer *buf, object value) except -1:
    """An ``int`` in decimal (``int.__repr__``, as ``_json``): a 64-bit one here, a
    longer one by Python."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    cdef char digits[24]
    cdef Py_ssize_t n = 24
    cdef unsigned long long u
    cdef bytes text
    if overflow:
        text = repr(value).encode("ascii")
        return _put(buf, PyBytes_AS_STRING(text), len(text))
    u = <unsigned long long>(-(v + 1)) + 1 if v < 0 else <unsigned long long>v
    while True:
        n -= 1
        digits[n] = <char>(48 + u % 10)   # '0' + the digit
        u //= 10
        if u == 0:
            break
    if v < 0:
        n -= 1
        digits[n] = b'-'
    return _put(buf, digits + n, 24 - n)


cdef int _put_float(Buffer *buf, double value) except -1:
    """A ``float`` as ``float.__repr__`` writes it, or ``NaN`` / ``Infinity`` /
    ``-Infinity`` (``_json`` with ``allow_nan``)."""
    cdef char *text
    if not isfinite(value):
        if isnan(value):
            return _put(buf, b"NaN", 3)
        if value > 0:
            return _put(buf, b"Infinity", 8)
        return _put(buf, b"-Infinity", 9)
    text = PyOS_double_to_string(value, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        _put(buf, text, strlen(text))
    finally:
        PyMem_Free(text)
    return 0


cdef int _put_value(Buffer *buf, object value, int depth) except -1:
    cdef type kind = type(value)
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t i, n
    cdef bint first = True
    cdef PyObject *key
    cdef PyObject *item
    if value is None:
        return _put(buf, b"null", 4)
    if kind is str:
        return _put_str(buf, value)
    if kind is int:
        return _put_int(buf, value)
    if kind is bool:
        return _put(buf, b"true", 4) if value else _put(buf, b"false", 5)
    if kind is float:
        return _put_float(buf, PyFloat_AS_DOUBLE(value))
    if depth >= MAX_DEPTH:
        raise Unsupported(f"nested deeper than {MAX_DEPTH}")
    if kind is dict:
        _put(buf, b"{", 1)
        while PyDict_Next(value, &pos, &key, &item):
            if type(<object>key) is not str:
                raise Unsupported("a key that is not a str")
            if not first:
                _put(buf, b", ", 2)
            first = False
            _put_str(buf, <str>key)
            _put(buf, b": ", 2)
            _put_value(buf, <object>item, depth + 1)
        return _put(buf, b"}", 1)
    if kind is list or kind is tuple:
        # no Python code runs and no container is allocated (so no collection) while
        # encoding: a list keeps the length read here
        n = PySequence_Fast_GET_SIZE(value)
        _put(buf, b"[", 1)
        for i in range(n):
            if i:
                _put(buf, b", ", 2)
            _put_value(buf, <object>PySequence_Fast_GET_ITEM(value, i), depth + 1)
        return _put(buf, b"]", 1)
    raise Unsupported(f"an object of type {kind.__name__}")


def dumps(obj: object) -> str:
    """``json.dumps(obj)`` for an object of the supported types; :class:`Unsupported`
    for any other (the caller then uses the standard library's encoder)."""
    cdef Buffer buf
    buf.data = <char *>PyMem_Malloc(FIRST_SIZE)
    if buf.data == NULL:
        raise MemoryError()
    buf.size = FIRST_SIZE
    buf.used = 0
    try:
        _put_value(&buf, obj, 0)
        return PyUnicode_DecodeASCII(buf.data, buf.used, NULL)
    finally:
        PyMem_Free(buf.data)

"""The VMDK text descriptor: header lines, extent lines and the disk database.

Spec: VMware "Virtual Disk Format 1.1", section "The Descriptor File". A
descriptor is a small text file (or text embedded in a sparse extent at
``descriptorOffset``) of ``key=value`` lines, ``#`` comments, one extent line
per extent (``RW 4192256 SPARSE "disk-s001.vmdk"``, ``RW 20480 FLAT
"disk-flat.vmdk" 0``) and the disk database, ``ddb.key = "value"``.

Two readings are kept side by side, because the same text is read
differently by different tools:

* the *structured* reading: line by line, comments skipped, the key before the
  first ``=`` (both sides trimmed, the value unquoted): what a careful parser
  (VMware's own, libvmdk) sees;
* *qemu's* reading (block/vmdk.c ``vmdk_parse_description``): the first place
  the key's name occurs anywhere in the text, comments included, then two
  characters skipped (assumed ``="``) and the value taken up to the next
  double quote, case-sensitively.

The facts follow qemu (so that ``imgscan`` and ``qemu-img`` agree); where the
readings differ, or a key is duplicated or spelt in another case, the
descriptor is *ambiguous*: a tool that checks one reading may be fooled by a
disk that another tool reads otherwise.

Compiled (typed locals, no interpreter loop): an embedded descriptor is parsed on
every open of a sparse VMDK, and as Python its lines cost a small VMDK's open more
than the rest of its header (issue 18).
"""

from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memchr, memcmp


cdef extern from "Python.h":
    # what str.isascii() returns, without the method call (the flag every str carries)
    bint is_ascii "PyUnicode_IS_ASCII"(str text)
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    # str.find of one character, its bounds C integers (str.find boxed each bound into an
    # int and went through the method call: a line's "\n" and "=" about 10 k instructions
    # of a small VMDK's open, issue 18); -1 when absent
    Py_ssize_t find_char "PyUnicode_FindChar"(str text, Py_UCS4 ch, Py_ssize_t start,
                                              Py_ssize_t end, int direction) except -2
    # a character of a str by index, unchecked (the parse's indices lie inside the text)
    int PyUnicode_KIND(str text)
    const void* PyUnicode_DATA(str text)
    Py_UCS4 PyUnicode_READ(int kind, const void* data, Py_ssize_t index) noexcept
    # an ASCII str's characters, one byte each
    const unsigned char* PyUnicode_1BYTE_DATA(str text)

from imgscan import limits
from imgscan.errors import CorruptImage

#: Extent access modes (spec: "Extent Descriptions").
ACCESS_MODES = ("RW", "RDONLY", "NOACCESS")
#: Extent types; FLAT and VMFS name raw extents, the *SPARSE types hosted or ESX sparse extents.
EXTENT_FLAT = "FLAT"
EXTENT_SPARSE = "SPARSE"
EXTENT_ZERO = "ZERO"
EXTENT_VMFS = "VMFS"
EXTENT_VMFSSPARSE = "VMFSSPARSE"
EXTENT_VMFSRDM = "VMFSRDM"
EXTENT_VMFSRAW = "VMFSRAW"
EXTENT_SESPARSE = "SESPARSE"
EXTENT_TYPES = (EXTENT_FLAT, EXTENT_SPARSE, EXTENT_ZERO, EXTENT_VMFS, EXTENT_VMFSSPARSE,
                EXTENT_VMFSRDM, EXTENT_VMFSRAW, EXTENT_SESPARSE)
#: Types whose file holds guest bytes verbatim (from the extent line's offset).
FLAT_TYPES = (EXTENT_FLAT, EXTENT_VMFS, EXTENT_VMFSRDM, EXTENT_VMFSRAW)
#: Types whose file is a sparse extent with its own header and grain directory.
SPARSE_TYPES = (EXTENT_SPARSE, EXTENT_VMFSSPARSE, EXTENT_SESPARSE)

#: createType values qemu 7.2 opens from a descriptor file; every other one it refuses.
QEMU_DESCRIPTOR_CREATE_TYPES = ("monolithicFlat", "vmfs", "vmfsSparse", "seSparse",
                                "twoGbMaxExtentSparse", "twoGbMaxExtentFlat")

#: An extent line, ``RW 20480 FLAT "name" 0``, is access, size in sectors, type, quoted
#: file name, offset (FLAT): what the regular expression
#: ``(RW|RDONLY|NOACCESS)\s+([0-9]{1,20})\s+([A-Za-z]+)(?:\s+"([^"]*)"(?:\s+([0-9]{1,20}))?)?\s*\Z``
#: matches, read by :func:`_match_extent` in place (the expression's match, its groups and
#: the line's split were about 7 k instructions an extent line, a small VMDK's open has one,
#: issue 18; tests/_core/test_vmdk.py holds the expression as the oracle). The
#: numbers are ASCII digits, at most 20 (a 64-bit value, as qemu's ``%SCNd64`` reads):
#: ``\d`` would take other scripts' digits, and ``int()`` refuses a number of more than
#: 4300 digits with a ValueError, where a line may be 64 KiB long.
cdef Py_ssize_t EXTENT_NUMBER_DIGITS = 20


cdef struct ExtentSpan:
    # where an extent line's fields lie in the text (start, end); name and offset -1 if absent
    Py_ssize_t sectors, sectors_end, type, type_end, name, name_end, offset, offset_end


cdef inline bint _space(int kind, const void* data, Py_ssize_t i) noexcept:
    """Whether the character at ``i`` is blank space as str.isspace and the regular
    expressions' ``\\s`` take it (both Py_UNICODE_ISSPACE)."""
    return (<Py_UCS4>PyUnicode_READ(kind, data, i)).isspace()


cdef inline Py_ssize_t _skip_space(int kind, const void* data, Py_ssize_t i,
                                   Py_ssize_t end) noexcept:
    while i < end and _space(kind, data, i):
        i += 1
    return i


cdef inline Py_ssize_t _number_end(int kind, const void* data, Py_ssize_t i,
                                   Py_ssize_t end) noexcept:
    """The end of the number at ``i`` (``[0-9]{1,20}``, all of its digits), or -1."""
    cdef Py_ssize_t start = i
    cdef Py_UCS4 c
    while i < end:
        c = PyUnicode_READ(kind, data, i)
        if not (u"0" <= c <= u"9"):
            break
        i += 1
    return i if 0 < i - start <= EXTENT_NUMBER_DIGITS else -1


cdef bint _match_extent(int kind, const void* data, Py_ssize_t i, Py_ssize_t end,
                        ExtentSpan* s) noexcept:
    """Whether the rest of an extent line matches, its access mode read up to ``i``: the
    line is ``[.., end)`` of the text, stripped (its last character is not blank), so no
    group of the expression can give back what it took, and each field ends where its
    characters do."""
    cdef Py_ssize_t j = _skip_space(kind, data, i, end)
    cdef Py_UCS4 c
    if j == i:
        return False
    s.sectors = j
    s.sectors_end = i = _number_end(kind, data, j, end)
    if i < 0:
        return False
    j = _skip_space(kind, data, i, end)
    if j == i:
        return False
    s.type = i = j
    while i < end:
        c = PyUnicode_READ(kind, data, i)
        if not (u"a" <= c <= u"z" or u"A" <= c <= u"Z"):
            break
        i += 1
    if i == j:
        return False
    s.type_end = i
    s.name = s.offset = -1
    j = _skip_space(kind, data, i, end)
    if j == end:
        return True
    if j == i or PyUnicode_READ(kind, data, j) != u'"':
        return False
    s.name = i = j + 1
    while i < end and PyUnicode_READ(kind, data, i) != u'"':
        i += 1
    if i == end:
        return False
    s.name_end = i
    i += 1
    j = _skip_space(kind, data, i, end)
    if j == end:
        return True
    if j == i:
        return False
    s.offset = j
    s.offset_end = i = _number_end(kind, data, j, end)
    return i >= 0 and _skip_space(kind, data, i, end) == end


cdef object _number(str text, int kind, const void* data, Py_ssize_t i, Py_ssize_t end):
    """The ASCII digits ``[i, end)`` as an int: in C up to 19 digits (under 2**64), the
    rare longer one by int()."""
    cdef uint64_t value = 0
    if end - i > 19:
        return int(text[i:end])
    while i < end:
        value = value * 10 + (<uint64_t>PyUnicode_READ(kind, data, i) - 0x30)     # "0"
        i += 1
    return value


cdef str _access_mode(int kind, const void* data, Py_ssize_t a, Py_ssize_t b):
    """The access mode (one of ACCESS_MODES) the line's first word ``[a, b)`` is, or None."""
    cdef str mode
    cdef Py_ssize_t i
    for mode in ACCESS_MODES:
        if len(mode) != b - a:
            continue
        for i in range(b - a):
            if PyUnicode_READ(kind, data, a + i) != <Py_UCS4>mode[i]:
                break
        else:
            return mode
    return None


cdef inline unsigned char _lower(unsigned char c) noexcept:
    return c | 0x20 if 0x41 <= c <= 0x5A else c     # "A" to "Z"


cdef bint _starts_ci(str text, const char* low, Py_ssize_t n) noexcept:
    """Whether ASCII ``text`` starts with ``low`` (``n`` lower-case ASCII characters), case
    aside: str.lower().startswith for a key that is ASCII, without the lowered copy."""
    cdef const unsigned char* t = PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t i
    if len(text) < n:
        return False
    for i in range(n):
        if _lower(t[i]) != <unsigned char>low[i]:
            return False
    return True


cdef bint _has_ci(str text, const char* low, Py_ssize_t n) noexcept:
    """Whether ASCII ``text`` holds ``low`` (``n`` lower-case ASCII characters), case aside."""
    cdef const unsigned char* t = PyUnicode_1BYTE_DATA(text)
    cdef Py_ssize_t i, j
    for i in range(len(text) - n + 1):
        for j in range(n):
            if _lower(t[i + j]) != <unsigned char>low[j]:
                break
        else:
            return True
    return False


cdef bint _same_ci(str a, str b) noexcept:
    """Whether ASCII ``a`` and ``b`` are one word but for case (a.lower() == b.lower())."""
    cdef const unsigned char* p = PyUnicode_1BYTE_DATA(a)
    cdef const unsigned char* q = PyUnicode_1BYTE_DATA(b)
    cdef Py_ssize_t i
    if len(a) != len(b):
        return False
    for i in range(len(a)):
        if _lower(p[i]) != _lower(q[i]):
            return False
    return True

#: Longest createType qemu accepts (``char ct[128]``).
QEMU_CREATE_TYPE_MAX = 127


cdef class ExtentLine:
    """One extent line of the descriptor.

    An extension type: one is made for each extent line on every open of a VMDK (as a
    Python class, its ``__init__`` a Python frame, about 2.5 k instructions each, issue 18)."""

    cdef public str access, type
    cdef public object sectors, filename, offset, line

    def __init__(self, str access, sectors, str type, filename, offset, Py_ssize_t line):
        self.access = access
        self.sectors = sectors
        self.type = type
        self.filename = filename
        self.offset = offset
        self.line = line

    def as_dict(self):
        out = {"access": self.access, "sectors": self.sectors,
                                  "type": self.type, "filename": self.filename}
        if self.type in FLAT_TYPES:
            out["offset"] = self.offset
        return out


cdef class Descriptor:
    """A parsed descriptor: entries in file order, extents, and qemu's readings.

    An extension type (its fields C members, its index a C method): ``first``,
    ``check_key`` and qemu's readings run on every open of a sparse VMDK, and as
    attribute and method look-ups on a Python object they cost a small VMDK's open more
    than the descriptor's parse (issue 18)."""

    # The fields are declared in vmdk_descriptor.pxd: ``entries`` holds the
    # ``(key, value, line number)`` of every ``key=value`` line, in order; ``ambiguities``
    # why another reader may see a different disk, one message per problem; ``_first``
    # each key's first value and ``_repeated`` the keys given more than once (kept by
    # :meth:`_add_entry` as the parse adds each line: a second pass over the entries was
    # about 5 k instructions of a small VMDK's open, issue 18).

    def __init__(self, str text):
        self.text = text
        self.entries = []
        self.extents = []
        self.ambiguities = []
        self._first = {}
        self._repeated = set()

    cdef int _add_entry(self, str key, str value, Py_ssize_t number) except -1:
        """Add a ``key=value`` line: to ``entries``, and to the index of first values."""
        cdef dict first = self._first
        cdef Py_ssize_t n = len(first)
        self.entries.append((key, value, number))
        first.setdefault(key, value)     # one look-up a key: a test and an insertion hash twice
        if len(first) == n:
            self._repeated.add(key)
        return 0

    cdef list _other_spellings(self, str key):
        """The keys spelt as ``key`` but for case, sorted: those whose str.lower() equals
        key's. Two ASCII keys are compared in place, case aside (their lower cases are
        ASCII of their length); a key that is not ASCII, whose lower case may be shorter,
        longer or ASCII (KELVIN SIGN), is lowered. Lowering keys to compare them was most
        of a small VMDK's check of its two keys (issue 18); a list of fewer than two is
        not sorted."""
        cdef str low = None, k
        cdef bint ascii = is_ascii(key)
        cdef list found = []
        for k in self._first:
            if ascii and is_ascii(k):
                if not _same_ci(k, key):
                    continue
            else:
                if low is None:
                    low = key.lower()
                if k.lower() != low:
                    continue
            if k != key:
                found.append(k)
        if len(found) > 1:
            found.sort()
        return found

    cdef dict disk_database(self, Py_ssize_t cap, list encryption):
        """The disk database: each ``ddb.`` key's first value (keys compared case aside, up
        to ``cap`` keys), in file order; the keys that name encryption (``ddb.encryption``,
        ``encryption.`` or ``keysafe`` anywhere, case aside) appended to ``encryption``.

        An ASCII key is compared in place, a key that is not ASCII by its str.lower() (whose
        lower case may be ASCII: KELVIN SIGN): a lowered copy and three string searches a
        line were about 5 k instructions of a small VMDK's open (issue 18)."""
        cdef dict ddb = {}
        cdef str key, low
        cdef bint is_ddb, named
        for key, value, _ in self.entries:
            if is_ascii(key):
                is_ddb = _starts_ci(key, b"ddb.", 4)
                named = (_starts_ci(key, b"ddb.encryption", 14) if is_ddb
                         else _starts_ci(key, b"encryption.", 11)) or _has_ci(key, b"keysafe", 7)
            else:
                low = key.lower()
                is_ddb = low.startswith("ddb.")
                named = (low.startswith("ddb.encryption") if is_ddb
                         else low.startswith("encryption.")) or "keysafe" in low
            if is_ddb and len(ddb) < cap:
                ddb.setdefault(key, value)
            if named:
                encryption.append(key)
        return ddb

    cpdef first(self, str key):
        """The structured reading of ``key``: its first line's value."""
        return self._first.get(key)

    cpdef qemu_value(self, str key):
        """qemu's reading of ``key`` (block/vmdk.c vmdk_parse_description)."""
        cdef str text = self.text
        cdef Py_ssize_t pos = text.find(key), start, end
        if pos < 0:
            return None
        start = pos + len(key) + 2
        if start >= len(text):
            return None
        end = find_char(text, u'"', start, len(text), 1)
        if end < 0:
            return None
        return text[start:end]

    cpdef qemu_hex(self, str key):
        """qemu's reading of ``CID`` / ``parentCID``: hex digits after blank space, in the
        39 characters after the first ``key`` and one more (its ``=``)."""
        cdef str text = self.text
        cdef Py_ssize_t pos = text.find(key), i, start, end
        cdef Py_UCS4 c
        cdef uint32_t value = 0     # the number's low 32 bits: int(digits, 16) & 0xFFFFFFFF
        if pos < 0:
            return None
        i = pos + len(key) + 1
        end = min(i + 39, len(text))
        while i < end and text[i].isspace():
            i += 1
        start = i
        while i < end:
            c = text[i]
            if u"0" <= c <= u"9":
                value = (value << 4) | (<uint32_t>c - 0x30)        # "0"
            elif u"a" <= c <= u"f":
                value = (value << 4) | (<uint32_t>c - 0x61 + 10)   # "a"
            elif u"A" <= c <= u"F":
                value = (value << 4) | (<uint32_t>c - 0x41 + 10)   # "A"
            else:
                break
            i += 1
        return value if i > start else None

    cpdef check_key(self, str key):
        """Record where readers may disagree on ``key``; return qemu's reading of it (which
        the container reports: read once, issue 18)."""
        structured = self._first.get(key)
        other_case = self._other_spellings(key)
        if key in self._repeated:       # rare: its lines are gathered only then
            _check_repeated(key, self.entries, self.ambiguities)
        if other_case:
            self.ambiguities.append(
                f"{key} is also spelt {', '.join(map(repr, other_case))}: a case-insensitive "
                "reader may take that value; qemu matches the exact case only")
        qemu = self.qemu_value(key)
        if qemu != structured and (qemu is not None or structured is not None):
            self.ambiguities.append(
                f"qemu reads {key} as {qemu!r} (first occurrence of the name anywhere in the "
                f"text, then the characters up to the next double quote) but its first "
                f"{key}= line says {structured!r}")
        return qemu


def _check_repeated(str key, list entries, list ambiguities):
    """Record a key given more than once with different values (a function of its own:
    :meth:`Descriptor.check_key` is a C method, which may hold no generator)."""
    exact = [(v, n) for k, v, n in entries if k == key]
    if len({v for v, _ in exact}) > 1:
        lines = ", ".join(f"line {n}: {v!r}" for v, n in exact)
        ambiguities.append(f"{key} is given {len(exact)} times with different values "
                           f"({lines}); qemu takes the first")


cpdef Descriptor parse_descriptor(bytes raw, str path, offset, str structure,
                                 Py_ssize_t begin=0, Py_ssize_t length=-1):
    """Parse descriptor text read at ``offset`` (bounded by the caller's read).

    The text ends at the first NUL byte (embedded descriptors are padded with
    zeros to whole sectors). Lines and extents are capped by :mod:`limits`.
    ``begin`` and ``length`` (all of ``raw`` by default): the descriptor is
    ``raw[begin:begin + length]``, read in place: an embedded descriptor is parsed
    from the file's head as detection kept it, not from a copy of its sectors (the
    copy of a 10 KiB descriptor area was about 1 us of a small VMDK's open, issue 18).
    A C function for the container (cpdef: its six arguments parsed as a Python call
    were about 1 k instructions an open).
    """
    if length < 0:
        length = len(raw) - begin
    if begin < 0 or length < 0 or begin > len(raw) - length:
        raise ValueError(f"descriptor bytes {begin} to {begin + length} lie outside "
                         f"{len(raw)} bytes")
    cdef const char* p = <const char*>raw + begin
    cdef const char* end_of_text = <const char*>memchr(p, 0, length)
    cdef Py_ssize_t nul = end_of_text - p if end_of_text != NULL else -1
    cdef Py_ssize_t size = length
    hidden = b""
    if nul >= 0:
        # qemu reads the text as a C string; embedded descriptors are zero-padded. From
        # the NUL on, each byte equal to the one before it means all are NULs: one
        # memcmp, no zeroed copy to compare with, no per-byte loop (strip() makes a C
        # call per byte of the padding)
        if memcmp(p + nul, p + nul + 1, length - nul - 1) != 0:
            hidden = raw[begin + nul:begin + length].strip(b"\x00 \t\r\n")
        size = nul
    # each cap compared inline, enforce called only to refuse
    if size > limits.VMDK_MAX_DESCRIPTOR_BYTES:
        limits.enforce(size, "VMDK_MAX_DESCRIPTOR_BYTES", path, structure, offset,
                       "descriptor size")
    # Descriptors are ASCII in practice, Windows-1252 or UTF-8 by their "encoding" line;
    # bytes that are not UTF-8 are kept visible rather than refused (what
    # bytes.decode("utf-8", errors="backslashreplace") calls, on the text in place).
    cdef str text = PyUnicode_DecodeUTF8(p, size, "backslashreplace")
    cdef Descriptor desc = Descriptor(text)
    if hidden:
        desc.ambiguities.append(
            f"{len(hidden)} bytes of text follow a NUL byte at offset {offset + nul}: qemu "
            "stops reading there, another reader may not")
    # the lines counted in the bytes (one memchr a line, where str.count was about 2 k
    # instructions of a small VMDK's open, issue 18): a newline is the byte 0x0A in UTF-8,
    # and the decoding's replacements hold none
    cdef Py_ssize_t nlines = 1
    cdef const char* nl = <const char*>memchr(p, 0x0A, size)
    while nl != NULL:
        nlines += 1
        nl = <const char*>memchr(nl + 1, 0x0A, size - (nl + 1 - p))
    if nlines > limits.VMDK_MAX_DESCRIPTOR_LINES:
        limits.enforce(nlines, "VMDK_MAX_DESCRIPTOR_LINES", path, structure, offset,
                       "line count")
    # offsets from ``offset`` (a Python int: any value a header may give)
    cdef Py_ssize_t pos = 0, start, number = 0, line_cap
    cdef bint all_ascii = is_ascii(text)  # then a line's characters are its bytes
    # the cap read once per descriptor (a test may move it), enforce called only to refuse:
    # its call and the structure's f-string per line were a third of an embedded
    # descriptor's parse (issue 18)
    line_cap = limits.VMDK_MAX_DESCRIPTOR_LINE
    cdef Py_ssize_t extent_cap = limits.VMDK_MAX_EXTENTS
    cdef str value, access
    cdef ExtentSpan x
    # Each line (text between "\n"s, as str.split makes them) is taken in place: its
    # blank space trimmed by index (Py_UCS4.isspace is str.strip's test), only the key
    # and the value of a key=value line made into strings; a line, its strip, partition
    # and three more strips were each a new string (issue 18).
    cdef Py_ssize_t n = len(text), ls = 0, le, a, b, eq, k, v, w
    # Characters read in place (a checked str index was about 25 instructions, 75 an open):
    # every index below lies in [ls, le), inside the text.
    cdef int kind = PyUnicode_KIND(text)
    cdef const void* data = PyUnicode_DATA(text)
    cdef Py_UCS4 c
    while ls <= n:
        le = find_char(text, u"\n", ls, n, 1)
        if le < 0:
            le = n
        number += 1
        if le - ls > line_cap:
            limits.enforce(le - ls, "VMDK_MAX_DESCRIPTOR_LINE", path,
                           f"{structure} line {number}", offset + pos,
                           "line length in characters,")
        start = pos
        pos += (le - ls if all_ascii
                else len(text[ls:le].encode("utf-8", errors="surrogateescape"))) + 1
        a, b = ls, le
        ls = le + 1
        while a < b:
            c = PyUnicode_READ(kind, data, a)
            if not c.isspace():
                break
            a += 1
        while b > a:
            c = PyUnicode_READ(kind, data, b - 1)
            if not c.isspace():
                break
            b -= 1
        if a == b:
            continue
        c = PyUnicode_READ(kind, data, a)
        if c == u"#":
            continue
        # every access mode starts with R or N: the first word (up to blank space, as
        # str.split takes it) looked at only for a line that may be one
        if c == u"R" or c == u"N":
            w = a
            while w < b and not _space(kind, data, w):
                w += 1
            access = _access_mode(kind, data, a, w)
            if access is not None:
                if not _match_extent(kind, data, w, b, &x):
                    raise CorruptImage(path, f"{structure} line {number}", None,
                                       f"invalid extent line {text[a:b][:200]!r}")
                etype = text[x.type:x.type_end]
                if etype != EXTENT_ZERO and x.name < 0:
                    raise CorruptImage(path, f"{structure} line {number}", None,
                                       f"extent line {text[a:b][:200]!r} names no file")
                if etype == EXTENT_FLAT and x.offset < 0:
                    raise CorruptImage(path, f"{structure} line {number}", None,
                                       f"FLAT extent line {text[a:b][:200]!r} has no offset")
                if len(desc.extents) + 1 > extent_cap:      # enforce called only to refuse
                    limits.enforce(len(desc.extents) + 1, "VMDK_MAX_EXTENTS", path,
                                   f"{structure} line {number}", offset + start,
                                   "extent line count")
                desc.extents.append(ExtentLine(
                    access, _number(text, kind, data, x.sectors, x.sectors_end), etype,
                    text[x.name:x.name_end] if x.name >= 0 else None,
                    _number(text, kind, data, x.offset, x.offset_end) if x.offset >= 0 else 0,
                    number))
                continue
        eq = find_char(text, u"=", a, b, 1)
        if eq < 0:
            continue
        k = eq
        while k > a:
            c = PyUnicode_READ(kind, data, k - 1)
            if not c.isspace():
                break
            k -= 1
        v = eq + 1
        while v < b:
            c = PyUnicode_READ(kind, data, v)
            if not c.isspace():
                break
            v += 1
        if (b - v >= 2 and PyUnicode_READ(kind, data, v) == u'"'
                and PyUnicode_READ(kind, data, b - 1) == u'"'):
            value = text[v + 1:b - 1]     # quoted
        else:
            value = text[v:b]
        desc._add_entry(text[a:k], value, number)
    return desc

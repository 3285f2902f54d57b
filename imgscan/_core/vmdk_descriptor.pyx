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

import re

from libc.stdint cimport uint32_t
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

#: ``RW 20480 FLAT "name" 0``: access, size in sectors, type, quoted file name, offset (FLAT).
#: The numbers are ASCII digits, at most 20 (a 64-bit value, as qemu's ``%SCNd64`` reads):
#: ``\d`` would take other scripts' digits, and ``int()`` refuses a number of more than
#: 4300 digits with a ValueError, where a line may be 64 KiB long.
_EXTENT_LINE = re.compile(
    r'(?P<access>RW|RDONLY|NOACCESS)\s+(?P<sectors>[0-9]{1,20})\s+(?P<type>[A-Za-z]+)'
    r'(?:\s+"(?P<name>[^"]*)"(?:\s+(?P<offset>[0-9]{1,20}))?)?\s*\Z'
)

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
    # each key's first value and ``_repeated`` the keys given more than once (made once
    # from ``entries`` by :meth:`_index` when first asked).

    def __init__(self, str text):
        self.text = text
        self.entries = []
        self.extents = []
        self.ambiguities = []
        self._first = None
        self._repeated = set()

    cdef dict _index(self):
        cdef dict first
        cdef str k
        cdef Py_ssize_t n
        if self._first is None:
            first = {}
            for k, v, _ in self.entries:
                # one look-up a key (a test and an insertion were two, each hashing it)
                n = len(first)
                first.setdefault(k, v)
                if len(first) == n:
                    self._repeated.add(k)
            self._first = first
        return self._first

    cdef list _other_spellings(self, str key):
        """The keys spelt as ``key`` but for case, sorted. An ASCII key's lower case has
        its length, so only keys of that length, or not ASCII (whose lower case may be
        shorter or longer), are lowered and compared: lowering every key of every
        descriptor for an index was most of the index's cost (issue 18). The length is
        looked at before the key is compared (a string comparison per key was most of
        what was left), and a list of fewer than two is not sorted."""
        cdef str low = key.lower(), k
        cdef Py_ssize_t n = len(key)
        cdef bint ascii = is_ascii(key)
        cdef list found = [k for k in self._index()
                           if (not ascii or len(k) == n or not is_ascii(k))
                           and k != key and k.lower() == low]
        if len(found) > 1:
            found.sort()
        return found

    cpdef first(self, str key):
        """The structured reading of ``key``: its first line's value."""
        return self._index().get(key)

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
        """Record where readers may disagree on ``key``."""
        structured = self._index().get(key)
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


def _check_repeated(str key, list entries, list ambiguities):
    """Record a key given more than once with different values (a function of its own:
    :meth:`Descriptor.check_key` is a C method, which may hold no generator)."""
    exact = [(v, n) for k, v, n in entries if k == key]
    if len({v for v, _ in exact}) > 1:
        lines = ", ".join(f"line {n}: {v!r}" for v, n in exact)
        ambiguities.append(f"{key} is given {len(exact)} times with different values "
                           f"({lines}); qemu takes the first")


def parse_descriptor(bytes raw, str path, offset, str structure, Py_ssize_t begin=0,
                     Py_ssize_t length=-1):
    """Parse descriptor text read at ``offset`` (bounded by the caller's read).

    The text ends at the first NUL byte (embedded descriptors are padded with
    zeros to whole sectors). Lines and extents are capped by :mod:`limits`.
    ``begin`` and ``length`` (all of ``raw`` by default): the descriptor is
    ``raw[begin:begin + length]``, read in place: an embedded descriptor is parsed
    from the file's head as detection kept it, not from a copy of its sectors (the
    copy of a 10 KiB descriptor area was about 1 us of a small VMDK's open, issue 18).
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
    cdef Py_ssize_t nlines = text.count("\n") + 1
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
    cdef list entries = desc.entries
    cdef str stripped, value
    # Each line (text between "\n"s, as str.split makes them) is taken in place: its
    # blank space trimmed by index (Py_UCS4.isspace is str.strip's test), only the key
    # and the value of a key=value line made into strings; a line, its strip, partition
    # and three more strips were each a new string (issue 18).
    cdef Py_ssize_t n = len(text), ls = 0, le, a, b, eq, k, v
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
        # every access mode starts with R or N: the split only for a line that may be one
        if c == u"R" or c == u"N":
            stripped = text[a:b]
            if stripped.split(None, 1)[0] in ACCESS_MODES:
                m = _EXTENT_LINE.match(stripped)
                if m is None:
                    raise CorruptImage(path, f"{structure} line {number}", None,
                                       f"invalid extent line {stripped[:200]!r}")
                # the groups in one call: access, sectors, type, name, offset
                access, sectors, etype, name, ext_offset = m.groups()
                if etype != EXTENT_ZERO and name is None:
                    raise CorruptImage(path, f"{structure} line {number}", None,
                                       f"extent line {stripped[:200]!r} names no file")
                if etype in (EXTENT_FLAT,) and ext_offset is None:
                    raise CorruptImage(path, f"{structure} line {number}", None,
                                       f"FLAT extent line {stripped[:200]!r} has no offset")
                if len(desc.extents) + 1 > extent_cap:      # enforce called only to refuse
                    limits.enforce(len(desc.extents) + 1, "VMDK_MAX_EXTENTS", path,
                                   f"{structure} line {number}", offset + start,
                                   "extent line count")
                desc.extents.append(ExtentLine(access, int(sectors), etype, name,
                                               int(ext_offset or 0), number))
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
        entries.append((text[a:k], value, number))
    return desc

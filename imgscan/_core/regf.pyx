"""Windows registry hive files (regf), read-only.

Spec: Joachim Metz, libyal/libregf "Windows NT Registry File (REGF) format"
(documentation/Windows NT Registry File (REGF) format.asciidoc), checked
against python-registry's documentation/WinReg.txt and against real hives
(SYSTEM, SAM, BCD, SOFTWARE) read by hivex. All fields are little-endian.

A hive is a 4096-byte *base block* (signature ``regf``) followed by *hive
bins* (``hbin``, multiples of 4096 bytes) that are carved into *cells*: a
signed 32-bit size (negative = allocated) and a record. Every reference
inside the hive is a *cell offset*, relative to the first hive bin at file
offset 4096. Records: ``nk`` (a key), ``vk`` (a value), subkey lists ``lf``
/ ``lh`` / ``li`` and ``ri`` (an index of lists), value lists (bare offset
arrays), ``sk`` (a security descriptor) and ``db`` (big data: a value longer
than 16344 bytes split into segments).

The reader is lazy because Windows inspection needs a few dozen values out of
a 10-20 MiB SYSTEM hive: opening a hive checks the base block and walks the
hbin headers; a key's subkey list is read only when asked, and a lookup by
name compares the ``lh`` name hashes (libregf "LH sub key hash algorithm") in
a C loop, so only the matching ``nk`` cell is decoded. Names compare
case-insensitively, one character to one character, as Windows does.

Hostile hives are bounded: every cell offset is checked against the hive
bins, every count against the cell that holds it and against
:mod:`imgscan.limits`; ``ri`` lists may not nest (Windows never nests them)
and :meth:`Hive.walk` / :attr:`Key.path` keep a visited set and a depth cap.
Errors are :class:`~imgscan.errors.CorruptImage` (or ``TruncatedImage`` /
``LimitExceeded``) naming the hive (``name``), the structure and the *file*
offset of the cell (cell offset + 4096), ready for a hex editor.

The hive, its keys and its values stay in one module (about 860 lines, over
the house's 800): keys and values read cells through the hive's cdef bounds
checks inline, and a split would put those checks behind a .pxd interface
without making any part easier to read. The layout is declared apart, in
``regf_layout.pxd`` and ``c_regf``.
"""

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp

from imgscan import limits
from imgscan.errors import CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature
from imgscan.findings import CORRUPT, DIRTY, TRUNCATED, UNKNOWN_FEATURE, Finding

from .binary cimport le16, le32, le64
from .c_regf import (
    FILE_TYPE_PRIMARY,
    KNOWN_MINOR_VERSIONS,
    MAJOR_VERSION,
    REG_DWORD,
    REG_DWORD_BIG_ENDIAN,
    REG_EXPAND_SZ,
    REG_LINK,
    REG_MULTI_SZ,
    REG_QWORD,
    REG_SZ,
    REGF_SIGNATURE,
    TYPE_NAMES,
)
from .regf_layout cimport *

cdef class Key
cdef class Value

# --------------------------------------------------------------------------
# On-disk layout: the record offsets in regf_layout.pxd, the constants in c_regf.
# --------------------------------------------------------------------------

#: Data size bit 31: the data (at most 4 bytes) is stored in the data offset field.
cdef uint32_t DATA_IS_RESIDENT = 0x80000000
#: Cell offsets are relative to the first hive bin, which follows the base block.
cdef uint32_t CELL_BASE = 4096
#: A cell offset meaning "none".
cdef uint32_t NO_CELL = 0xFFFFFFFF
#: Cells are 8-byte aligned, so are their offsets.
cdef uint32_t CELL_ALIGN_MASK = 7

# C copies of the record signatures, compared as 16-bit words.
cdef uint16_t SIG_NK = 0x6B6E      # "nk"
cdef uint16_t SIG_VK = 0x6B76      # "vk"
cdef uint16_t SIG_LF = 0x666C      # "lf"
cdef uint16_t SIG_LH = 0x686C      # "lh"
cdef uint16_t SIG_LI = 0x696C      # "li"
cdef uint16_t SIG_RI = 0x6972      # "ri"
cdef uint16_t SIG_DB = 0x6264      # "db"
cdef uint16_t SIG_SK = 0x6B73      # "sk"
cdef const char* HBIN_SIGNATURE_C = b"hbin"


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def regf_checksum(const uint8_t[::1] base_block):
    """XOR-32 of the first 508 bytes, as Windows stores it (0 -> 1, 0xFFFFFFFF -> 0xFFFFFFFE)."""
    if base_block.shape[0] < BB_CHECKSUM:
        raise ValueError("a base block is at least 508 bytes")
    cdef uint32_t total = 0
    cdef Py_ssize_t i
    cdef const uint8_t* p = &base_block[0]
    for i in range(0, BB_CHECKSUM, 4):
        total ^= le32(p + i)
    if total == 0xFFFFFFFF:
        total = 0xFFFFFFFE
    elif total == 0:
        total = 1
    return total


def lh_hash(str name):
    """The name hash ``lh`` lists store, over UTF-16 code units (libregf "Hash algorithms").

    Windows upcases each character with its own table; for ASCII that is
    plain A-Z, which is all a lookup relies on (see ``Key.subkey``).
    """
    cdef uint32_t h = 0
    cdef bytes units = _fold(name).encode("utf-16-le", "surrogatepass")
    cdef const uint8_t* p = units
    cdef Py_ssize_t i
    for i in range(0, len(units), 2):
        h = h * LH_HASH_MULTIPLIER + le16(p + i)
    return h


cpdef str _fold(str name):
    """Upper case, one character to one character, as Windows compares names.

    ``str.upper`` can grow a string ("ß" -> "SS"); Windows' table never does,
    so a character whose upper case is longer is kept as it is.
    """
    cdef str up = name.upper()
    if len(up) == len(name):
        return up
    return "".join([c.upper() if len(c.upper()) == 1 else c for c in name])


cdef inline uint8_t _ascii_upper(uint8_t c) noexcept nogil:
    return c - 32 if 97 <= c <= 122 else c


cdef str _decode_name(const uint8_t* p, Py_ssize_t size, bint compressed):
    """A key or value name: one byte per character, or UTF-16LE."""
    if compressed:
        return p[:size].decode("latin-1")
    text = p[:size & ~1].decode("utf-16-le", "surrogatepass")
    # lone surrogates cannot be printed or written as UTF-8: keep them escaped
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


cdef str _decode_sz(bytes raw):
    """A REG_SZ / REG_EXPAND_SZ / REG_LINK string: UTF-16LE up to its first NUL.

    Windows often stores the terminating NUL and sometimes junk after it
    (libregf "String value data too large"); an odd trailing byte is dropped.
    """
    text = raw[:len(raw) & ~1].decode("utf-16-le", "surrogatepass")
    end = text.find("\x00")
    if end >= 0:
        text = text[:end]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


cdef list _decode_multi_sz(bytes raw):
    """A REG_MULTI_SZ list: NUL-separated UTF-16LE strings, ended by an empty one."""
    text = raw[:len(raw) & ~1].decode("utf-16-le", "surrogatepass")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    out = []
    for part in text.split("\x00"):
        if not part:
            break
        out.append(part)
    return out


# --------------------------------------------------------------------------
# The hive
# --------------------------------------------------------------------------

cdef class Hive:
    """A registry hive in memory (``bytes``, ``mmap`` or any contiguous buffer).

    ``name`` names the hive in errors and findings, e.g. ``"SYSTEM hive"`` or
    ``"disk.qcow2:\\Windows\\System32\\config\\SYSTEM"``.
    """

    cdef const uint8_t[::1] _buf
    cdef const uint8_t* _p
    # end of the usable hive bins, as a cell offset (relative to 4096)
    cdef uint32_t _bins_end
    # per 4 KiB page of the hive bins: end (cell offset) of the hbin holding it, 0 if none
    cdef uint32_t* _hbin_end
    cdef Py_ssize_t _pages
    cdef uint32_t _minor
    cdef uint32_t _root_off
    cdef readonly str name
    cdef readonly bint dirty
    cdef readonly dict details
    cdef readonly list findings
    cdef readonly Key root

    def __init__(self, data, str name="hive"):
        self.name = name
        self._buf = data
        size = self._buf.shape[0]
        if size < BB_CHECKSUM + 4:
            raise TruncatedImage(name, "regf base block", 0,
                                 f"the hive is {size} bytes, shorter than its base block")
        self._p = &self._buf[0]
        if self._p[:4] != REGF_SIGNATURE:
            raise CorruptImage(name, "regf base block", 0,
                               f"signature {bytes(self._p[:4])!r} is not {REGF_SIGNATURE!r}")
        self.findings = []
        self._read_base_block(size)
        self._walk_hbins(size)
        self.root = self._key(self._root_off)

    # -- base block ------------------------------------------------------------
    cdef _read_base_block(self, Py_ssize_t size):
        cdef const uint8_t* p = self._p
        primary = le32(p + BB_PRIMARY_SEQUENCE)
        secondary = le32(p + BB_SECONDARY_SEQUENCE)
        major = le32(p + BB_MAJOR_VERSION)
        minor = le32(p + BB_MINOR_VERSION)
        file_type = le32(p + BB_FILE_TYPE)
        stored = le32(p + BB_CHECKSUM)
        computed = regf_checksum(self._buf[:BB_CHECKSUM + 4])
        self._root_off = le32(p + BB_ROOT_CELL)
        self._minor = minor
        self.dirty = primary != secondary
        self.details = {
            "primary_sequence": primary,
            "secondary_sequence": secondary,
            "last_written": le64(p + BB_LAST_WRITTEN),
            "major_version": major,
            "minor_version": minor,
            "file_type": file_type,
            "file_format": le32(p + BB_FILE_FORMAT),
            "root_cell_offset": self._root_off,
            "hive_bins_data_size": le32(p + BB_HIVE_BINS_SIZE),
            "clustering_factor": le32(p + BB_CLUSTERING_FACTOR),
            "file_name": _decode_sz(bytes(p[BB_FILE_NAME:BB_FILE_NAME + BB_FILE_NAME_SIZE])),
            "checksum": stored,
            "checksum_valid": stored == computed,
        }
        if major != MAJOR_VERSION:
            raise UnsupportedFeature(self.name, "regf base block", BB_MAJOR_VERSION,
                                     f"major version {major} is not 1")
        if file_type != FILE_TYPE_PRIMARY:
            raise UnsupportedFeature(self.name, "regf base block", BB_FILE_TYPE,
                                     f"file type {file_type} is a transaction log, not a hive")
        if minor not in KNOWN_MINOR_VERSIONS:
            self.findings.append(Finding(
                UNKNOWN_FEATURE, "warning",
                f"{self.name}: regf version 1.{minor} is not one of 1.2 to 1.6; read as 1.6"))
        if stored != computed:
            self.findings.append(Finding(
                CORRUPT, "warning",
                f"{self.name}: base block checksum 0x{stored:08x} does not match "
                f"0x{computed:08x} (XOR of its first 508 bytes)"))
        if self.dirty:
            self.findings.append(Finding(
                DIRTY, "warning",
                f"{self.name}: primary sequence number {primary} != secondary {secondary}: "
                f"the hive has transaction log entries (.LOG1/.LOG2) not applied; "
                f"recent changes may be missing"))

    cdef _walk_hbins(self, Py_ssize_t size):
        """Walk the chain of hbin headers; record, per 4 KiB page, the end of its hbin.

        A page that does not start a valid hbin where one is due (zeroed or
        overwritten blocks, seen in damaged hives) is skipped page by page
        until the chain resumes: the hive stays readable except for cells in
        or pointing into the gap, which are then errors naming the offset.
        """
        cdef const uint8_t* p = self._p
        cdef uint64_t claimed = le32(p + BB_HIVE_BINS_SIZE)
        cdef uint64_t limit = <uint64_t>size - BASE_BLOCK_SIZE if size > BASE_BLOCK_SIZE else 0
        cdef uint64_t off = 0, hsize, end, page, bad_pages = 0, last_end = 0
        cdef uint64_t count = 0
        cdef const uint8_t* q
        cdef uint32_t* ends
        if limit < HBIN_HEADER_SIZE:
            raise TruncatedImage(self.name, "hbin", BASE_BLOCK_SIZE,
                                 f"the hive is {size} bytes: it ends before its first hive bin")
        problems = []
        if claimed > limit:
            problems.append(f"the base block says the hive bins end at offset "
                            f"{BASE_BLOCK_SIZE + claimed}, the file ends at {size}")
        elif claimed:
            limit = claimed
        if limit > 0xFFFFF000:
            limit = 0xFFFFF000
        self._pages = (limit + HBIN_ALIGNMENT - 1) // HBIN_ALIGNMENT
        self._hbin_end = <uint32_t*>calloc(self._pages, sizeof(uint32_t))
        if self._hbin_end == NULL:
            raise MemoryError()
        ends = self._hbin_end
        first_bad = None
        while off + HBIN_HEADER_SIZE <= limit:
            q = p + BASE_BLOCK_SIZE + off
            hsize = le32(q + HBIN_SIZE)
            if memcmp(q, <const char*>HBIN_SIGNATURE_C, 4) != 0 or le32(q + HBIN_OFFSET) != off \
                    or hsize < HBIN_ALIGNMENT or hsize % HBIN_ALIGNMENT:
                if first_bad is None:
                    first_bad = BASE_BLOCK_SIZE + off
                bad_pages += 1
                off += HBIN_ALIGNMENT
                continue
            end = off + hsize
            if end > limit:
                problems.append(f"the hbin at offset {BASE_BLOCK_SIZE + off} ({hsize} bytes) "
                                f"runs past the end of the hive bins at {BASE_BLOCK_SIZE + limit}")
                end = limit
            # the pages the hbin covers, its last one partly when the hive ends inside it
            for page in range(off // HBIN_ALIGNMENT, (end + HBIN_ALIGNMENT - 1) // HBIN_ALIGNMENT):
                ends[page] = <uint32_t>end
            count += 1
            last_end = end
            off = end
        if count == 0 or self._hbin_end[0] == 0:
            raise CorruptImage(self.name, "hbin", BASE_BLOCK_SIZE,
                               "no valid hive bin follows the base block")
        if bad_pages:
            problems.append(f"{bad_pages} blocks of 4096 bytes from offset {first_bad} on "
                            f"are not hive bins (zeroed or overwritten)")
        self._bins_end = <uint32_t>last_end
        self.details["hbins"] = count
        self.details["hive_bins_end"] = BASE_BLOCK_SIZE + last_end
        if problems:
            self.findings.append(Finding(
                TRUNCATED if not bad_pages else CORRUPT, "warning",
                f"{self.name}: {'; '.join(problems)}; cells there are unreadable"))

    def __dealloc__(self):
        free(self._hbin_end)

    # -- cells -----------------------------------------------------------------
    cdef Py_ssize_t _cell(self, uint32_t off, uint32_t need, str structure,
                          uint32_t* length) except -1:
        """File position of the record in the cell at ``off``; its length in ``length``.

        The cell must be allocated, inside the hive bins, and hold ``need`` bytes.
        """
        cdef int32_t raw
        cdef uint32_t size
        cdef uint64_t end = 0
        if (off & CELL_ALIGN_MASK) == 0 and off // HBIN_ALIGNMENT < <uint64_t>self._pages:
            end = self._hbin_end[off // HBIN_ALIGNMENT]
        if off < HBIN_HEADER_SIZE or <uint64_t>off + 4 > end:
            raise CorruptImage(self.name, structure, CELL_BASE + <uint64_t>off,
                               f"cell offset 0x{off:x} is not inside a hive bin")
        raw = <int32_t>le32(self._p + CELL_BASE + off)
        if raw >= 0:
            raise CorruptImage(self.name, structure, CELL_BASE + <uint64_t>off,
                               f"the cell is free (size {raw}), not an allocated record")
        size = <uint32_t>(-<int64_t>raw)
        if size < 4 + need or <uint64_t>off + size > end:
            raise CorruptImage(self.name, structure, CELL_BASE + <uint64_t>off,
                               f"cell size {size} cannot hold {need} bytes inside its hive bin")
        length[0] = size - 4
        return CELL_BASE + off + 4

    cdef Py_ssize_t _record(self, uint32_t off, uint32_t need, uint16_t sig, str structure,
                            uint32_t* length) except -1:
        """Like ``_cell`` for a record that starts with a 2-byte signature."""
        cdef Py_ssize_t pos = self._cell(off, need if need >= 2 else 2, structure, length)
        if le16(self._p + pos) != sig:
            raise CorruptImage(self.name, structure, CELL_BASE + <uint64_t>off,
                               f"signature {bytes(self._p[pos:pos + 2])!r} is not "
                               f"{structure[:2]!r}")
        return pos

    cdef int _name_length(self, uint32_t off, Py_ssize_t pos, uint32_t size_field,
                          uint32_t name_field, str structure, uint32_t length) except -1:
        """The name length of the record at ``pos`` (cell ``off``), refused when the name
        runs past the record's ``length`` bytes."""
        cdef uint32_t name_len = le16(self._p + pos + size_field)
        if name_field + name_len > length:
            raise CorruptImage(self.name, structure, CELL_BASE + <uint64_t>off,
                               f"name of {name_len} bytes overruns the {length}-byte record")
        return name_len

    cdef Key _key(self, uint32_t off):
        cdef uint32_t length
        cdef Py_ssize_t pos = self._record(off, NK_NAME, SIG_NK, "nk cell", &length)
        cdef const uint8_t* r = self._p + pos
        cdef Key k = Key.__new__(Key)
        k._hive = self
        k.offset = off
        k._pos = pos
        k.flags = le16(r + NK_FLAGS)
        k.last_written = le64(r + NK_LAST_WRITTEN)
        k._parent = le32(r + NK_PARENT)
        k.subkey_count = le32(r + NK_SUBKEY_COUNT)
        k._subkey_list = le32(r + NK_SUBKEY_LIST)
        k.value_count = le32(r + NK_VALUE_COUNT)
        k._value_list = le32(r + NK_VALUE_LIST)
        k._security = le32(r + NK_SECURITY)
        k._class_off = le32(r + NK_CLASS_NAME)
        k._class_len = le16(r + NK_CLASS_NAME_SIZE)
        k._name_len = self._name_length(off, pos, NK_NAME_SIZE, NK_NAME, "nk cell", length)
        # Every key opened passes here: enforce() (a call apiece) only once a count is over.
        if k.subkey_count > limits.REGF_MAX_SUBKEYS or k.value_count > limits.REGF_MAX_VALUES:
            where = CELL_BASE + <uint64_t>off
            limits.enforce(k.subkey_count, "REGF_MAX_SUBKEYS", self.name, "nk cell", where,
                           "subkey count")
            limits.enforce(k.value_count, "REGF_MAX_VALUES", self.name, "nk cell", where,
                           "value count")
        return k

    cdef Value _value(self, uint32_t off):
        cdef uint32_t length
        cdef Py_ssize_t pos = self._record(off, VK_NAME, SIG_VK, "vk cell", &length)
        cdef const uint8_t* r = self._p + pos
        cdef Value v = Value.__new__(Value)
        v._hive = self
        v.offset = off
        v.type = le32(r + VK_DATA_TYPE)
        v._size = le32(r + VK_DATA_SIZE)
        v._data_off = le32(r + VK_DATA_OFFSET)
        v._pos = pos
        cdef uint32_t name_len = self._name_length(off, pos, VK_NAME_SIZE, VK_NAME, "vk cell",
                                                   length)
        v.name = _decode_name(r + VK_NAME, name_len, le16(r + VK_FLAGS) & VALUE_COMP_NAME)
        return v

    # -- subkey lists ----------------------------------------------------------
    cdef Py_ssize_t _leaf(self, uint32_t off, str structure, uint16_t* sig,
                          uint32_t* count) except -1:
        """A subkey list cell: its signature, element count (checked against the cell)."""
        cdef uint32_t length, width
        cdef Py_ssize_t pos = self._cell(off, LIST_ELEMENTS, structure, &length)
        sig[0] = le16(self._p + pos)
        count[0] = le16(self._p + pos + LIST_COUNT)
        if sig[0] == SIG_LF or sig[0] == SIG_LH:
            width = 8
        elif sig[0] == SIG_LI or sig[0] == SIG_RI:
            width = 4
        else:
            raise CorruptImage(self.name, structure, CELL_BASE + <uint64_t>off,
                               f"signature {bytes(self._p[pos:pos + 2])!r} is not "
                               f"lf, lh, li or ri")
        if LIST_ELEMENTS + <uint64_t>count[0] * width > length:
            raise CorruptImage(self.name, structure, CELL_BASE + <uint64_t>off,
                               f"{count[0]} elements overrun the {length}-byte list")
        return pos

    cdef int _collect(self, Key key, list out) except -1:
        """Append the nk offsets of ``key``'s subkeys, in list order, to ``out``."""
        cdef uint16_t sig, sub_sig
        cdef uint32_t count, sub_count, i, sub, total = 0
        cdef Py_ssize_t pos, sub_pos
        if key.subkey_count == 0:
            return 0
        pos = self._leaf(key._subkey_list, "subkey list", &sig, &count)
        if sig != SIG_RI:
            total = self._collect_leaf(pos, sig, count, out)
        else:
            for i in range(count):
                sub = le32(self._p + pos + LIST_ELEMENTS + 4 * i)
                sub_pos = self._leaf(sub, "subkey list", &sub_sig, &sub_count)
                if sub_sig == SIG_RI:
                    raise CorruptImage(self.name, "ri subkey list", CELL_BASE + <uint64_t>sub,
                                       "an ri list inside an ri list (Windows never nests them)")
                total += sub_count
                if total > key.subkey_count:
                    break
                self._collect_leaf(sub_pos, sub_sig, sub_count, out)
        if total != key.subkey_count:
            raise CorruptImage(self.name, "subkey list", CELL_BASE + <uint64_t>key._subkey_list,
                               f"the lists hold {total} subkeys (or more), the nk cell at "
                               f"{CELL_BASE + key.offset} says {key.subkey_count}")
        return 0

    cdef uint32_t _collect_leaf(self, Py_ssize_t pos, uint16_t sig, uint32_t count,
                                list out) except? 0xFFFFFFFF:
        cdef uint32_t i, width = 4 if sig == SIG_LI else 8
        cdef const uint8_t* e = self._p + pos + LIST_ELEMENTS
        for i in range(count):
            out.append(le32(e + width * i))
        return count

    cdef int64_t _find(self, Key key, const uint8_t* q, uint32_t qlen, uint32_t qhash) except -2:
        """Cell offset of the subkey named ``q`` (ASCII, upper case), or -1."""
        cdef uint16_t sig, sub_sig
        cdef uint32_t count, sub_count, i, sub
        cdef Py_ssize_t pos, sub_pos
        cdef int64_t found
        if key.subkey_count == 0:
            return -1
        pos = self._leaf(key._subkey_list, "subkey list", &sig, &count)
        if sig != SIG_RI:
            return self._find_leaf(pos, sig, count, q, qlen, qhash)
        for i in range(count):
            sub = le32(self._p + pos + LIST_ELEMENTS + 4 * i)
            sub_pos = self._leaf(sub, "subkey list", &sub_sig, &sub_count)
            if sub_sig == SIG_RI:
                raise CorruptImage(self.name, "ri subkey list", CELL_BASE + <uint64_t>sub,
                                   "an ri list inside an ri list (Windows never nests them)")
            found = self._find_leaf(sub_pos, sub_sig, sub_count, q, qlen, qhash)
            if found >= 0:
                return found
        return -1

    cdef int64_t _find_leaf(self, Py_ssize_t pos, uint16_t sig, uint32_t count,
                            const uint8_t* q, uint32_t qlen, uint32_t qhash) except -2:
        cdef uint32_t i, off, width = 4 if sig == SIG_LI else 8
        cdef const uint8_t* e = self._p + pos + LIST_ELEMENTS
        for i in range(count):
            # lh lists carry the hash of the upper-cased name: most entries end here
            if sig == SIG_LH and le32(e + 8 * i + 4) != qhash:
                continue
            off = le32(e + width * i)
            if self._nk_name_is(off, q, qlen):
                return off
        return -1

    cdef bint _nk_name_is(self, uint32_t off, const uint8_t* q, uint32_t qlen) except -1:
        """Whether the nk at ``off`` is named ``q`` (ASCII, upper case), ignoring case."""
        cdef uint32_t length, i
        cdef Py_ssize_t pos = self._record(off, NK_NAME, SIG_NK, "nk cell", &length)
        cdef const uint8_t* r = self._p + pos
        cdef uint32_t name_len = self._name_length(off, pos, NK_NAME_SIZE, NK_NAME, "nk cell",
                                                   length)
        r += NK_NAME
        if le16(self._p + pos + NK_FLAGS) & KEY_COMP_NAME:
            if name_len != qlen:
                return False
            for i in range(qlen):
                if _ascii_upper(r[i]) != q[i]:
                    return False
            return True
        if name_len != 2 * qlen:
            return False
        for i in range(qlen):
            if r[2 * i + 1] != 0 or _ascii_upper(r[2 * i]) != q[i]:
                return False
        return True

    # -- lookups -----------------------------------------------------------------
    def open_key(self, str path):
        """The key at ``path`` (``\\``-separated, relative to the root), or None.

        Case-insensitive. Only the keys along the path are decoded.
        """
        cdef Key key = self.root
        for part in path.split("\\"):
            if part:
                key = key.subkey(part)
                if key is None:
                    return None
        return key

    def walk(self, Key top=None):
        """Every key under ``top`` (default: the root), depth first, as (path, key).

        Paths are relative to ``top``, ``\\``-separated ("" for ``top``). A key
        reached twice (a cycle or a shared subtree) or a tree deeper than
        ``limits.REGF_MAX_DEPTH`` is an error, never a hang.
        """
        cdef set seen = set()
        cdef Key start = self.root if top is None else top
        stack = [("", start, 0)]
        while stack:
            path, key, depth = stack.pop()
            if key.offset in seen:
                raise CorruptImage(self.name, "nk cell", CELL_BASE + <uint64_t>key.offset,
                                   f"key {path!r} was reached twice: the key tree has a cycle")
            seen.add(key.offset)
            yield path, key
            if key.subkey_count and depth >= limits.REGF_MAX_DEPTH:
                limits.enforce(depth + 1, "REGF_MAX_DEPTH", self.name, "nk cell",
                               CELL_BASE + <uint64_t>key.offset, "key nesting depth")
            children = list(key.subkeys())
            for child in reversed(children):
                stack.append((f"{path}\\{child.name}" if path else child.name, child, depth + 1))

    def __repr__(self):
        return (f"<Hive {self.name!r} v1.{self._minor} {self.details['hbins']} hbins"
                f"{' dirty' if self.dirty else ''}>")


# --------------------------------------------------------------------------
# Keys and values
# --------------------------------------------------------------------------

cdef class Key:
    """A key (``nk`` record). Subkeys and values are read when asked for."""

    cdef Hive _hive
    cdef Py_ssize_t _pos
    cdef readonly uint32_t offset           # cell offset of the nk record
    cdef readonly uint16_t flags
    cdef readonly uint64_t last_written     # FILETIME, 100 ns since 1601 UTC
    cdef uint32_t _parent
    cdef readonly uint32_t subkey_count
    cdef uint32_t _subkey_list
    cdef readonly uint32_t value_count
    cdef uint32_t _value_list
    cdef uint32_t _security
    cdef uint32_t _class_off
    cdef uint16_t _class_len
    cdef uint16_t _name_len
    cdef str _name

    @property
    def name(self):
        if self._name is None:
            self._name = _decode_name(self._hive._p + self._pos + NK_NAME, self._name_len,
                                      self.flags & KEY_COMP_NAME)
        return self._name

    @property
    def hive(self):
        return self._hive

    @property
    def is_root(self):
        return bool(self.flags & KEY_HIVE_ENTRY)

    def parent(self):
        """The parent key, or None for the root."""
        if self.flags & KEY_HIVE_ENTRY:
            return None
        return self._hive._key(self._parent)

    @property
    def path(self):
        """Path from the root by the parent links (root: ""), loops detected."""
        cdef Key k = self
        cdef set seen = set()
        parts = []
        while not (k.flags & KEY_HIVE_ENTRY):
            if k.offset in seen:
                raise CorruptImage(self._hive.name, "nk cell", CELL_BASE + <uint64_t>k.offset,
                                   "the parent links of the key loop")
            limits.enforce(len(parts) + 1, "REGF_MAX_DEPTH", self._hive.name, "nk cell",
                           CELL_BASE + <uint64_t>k.offset, "key nesting depth by parent links")
            seen.add(k.offset)
            parts.append(k.name)
            k = self._hive._key(k._parent)
        return "\\".join(reversed(parts))

    @property
    def class_name(self):
        """The key's class name (UTF-16 text; SYSKEY pieces live here), or None."""
        cdef uint32_t length
        cdef Py_ssize_t pos
        if self._class_off == NO_CELL or self._class_len == 0:
            return None
        pos = self._hive._cell(self._class_off, self._class_len, "class name cell", &length)
        return _decode_name(self._hive._p + pos, self._class_len, False)

    def security_descriptor(self):
        """The raw NT security descriptor of the key's ``sk`` record, or None."""
        cdef uint32_t length, size
        cdef Py_ssize_t pos
        cdef Hive h = self._hive
        if self._security == NO_CELL:
            return None
        pos = h._record(self._security, SK_DESCRIPTOR, SIG_SK, "sk cell", &length)
        size = le32(h._p + pos + SK_DESCRIPTOR_SIZE)
        if SK_DESCRIPTOR + <uint64_t>size > length:
            raise CorruptImage(h.name, "sk cell", CELL_BASE + <uint64_t>self._security,
                               f"a {size}-byte descriptor overruns the {length}-byte record")
        return bytes(h._p[pos + SK_DESCRIPTOR:pos + SK_DESCRIPTOR + size])

    def subkeys(self):
        """The subkeys, in the order of the subkey lists (sorted by Windows)."""
        cdef list offsets = []
        self._hive._collect(self, offsets)
        for off in offsets:
            yield self._hive._key(off)

    def subkey(self, str name):
        """The subkey called ``name`` (ignoring case), or None."""
        cdef Hive h = self._hive
        cdef bytes q
        cdef uint32_t qhash = 0
        cdef int64_t found
        cdef Py_ssize_t i
        if self.subkey_count == 0:
            return None
        cdef const uint8_t* qp
        if name.isascii():
            q = name.upper().encode("ascii")
            qp = q
            for i in range(len(q)):
                qhash = qhash * LH_HASH_MULTIPLIER + qp[i]
            found = h._find(self, qp, len(q), qhash)
            return None if found < 0 else h._key(<uint32_t>found)
        # A non-ASCII name: Windows' upcase table and Python's differ at the
        # margins, so the hash cannot be trusted to skip entries; compare names.
        folded = _fold(name)
        for key in self.subkeys():
            if _fold(key.name) == folded:
                return key
        return None

    def __getitem__(self, str name):
        key = self.subkey(name)
        if key is None:
            raise KeyError(name)
        return key

    cdef list _value_offsets(self):
        cdef Hive h = self._hive
        cdef uint32_t length, i
        cdef Py_ssize_t pos
        if self.value_count == 0:
            return []
        pos = h._cell(self._value_list, 4 * self.value_count, "value list", &length)
        return [le32(h._p + pos + 4 * i) for i in range(self.value_count)]

    def values(self):
        """The values, in the order of the value list."""
        for off in self._value_offsets():
            yield self._hive._value(off)

    def value(self, str name):
        """The value called ``name`` (ignoring case; "" is the default value), or None."""
        cdef Hive h = self._hive
        cdef uint32_t length, i, off, name_len
        cdef Py_ssize_t pos
        cdef const uint8_t* r
        cdef const uint8_t* q
        cdef bytes qb
        if self.value_count == 0:
            return None
        if not name.isascii():
            folded = _fold(name)
            for v in self.values():
                if _fold(v.name) == folded:
                    return v
            return None
        qb = name.upper().encode("ascii")
        q = qb
        cdef uint32_t qlen = len(qb)
        for off in self._value_offsets():
            pos = h._record(off, VK_NAME, SIG_VK, "vk cell", &length)
            r = h._p + pos
            name_len = h._name_length(off, pos, VK_NAME_SIZE, VK_NAME, "vk cell", length)
            if le16(r + VK_FLAGS) & VALUE_COMP_NAME:
                if name_len != qlen:
                    continue
                for i in range(qlen):
                    if _ascii_upper(r[VK_NAME + i]) != q[i]:
                        break
                else:
                    return h._value(off)
            else:
                if name_len != 2 * qlen:
                    continue
                for i in range(qlen):
                    if r[VK_NAME + 2 * i + 1] != 0 or _ascii_upper(r[VK_NAME + 2 * i]) != q[i]:
                        break
                else:
                    return h._value(off)
        return None

    def __repr__(self):
        return f"<Key {self.name!r} {self.subkey_count} subkeys {self.value_count} values>"


cdef class Value:
    """A value (``vk`` record): name and type at once, data when asked for."""

    cdef Hive _hive
    cdef Py_ssize_t _pos
    cdef readonly uint32_t offset       # cell offset of the vk record
    cdef readonly str name
    cdef readonly uint32_t type
    cdef uint32_t _size
    cdef uint32_t _data_off

    @property
    def type_name(self):
        """"REG_SZ" and friends; an unknown type is shown as its number, "0x000001f4"."""
        name = TYPE_NAMES.get(self.type)
        return name if name is not None else f"0x{self.type:08x}"

    @property
    def size(self):
        """The data size the vk record states."""
        return self._size & ~DATA_IS_RESIDENT

    @property
    def raw(self):
        """The value's data bytes (resident, in one cell, or gathered from a db record)."""
        cdef Hive h = self._hive
        cdef uint32_t size = self._size & ~DATA_IS_RESIDENT
        cdef uint32_t length
        cdef Py_ssize_t pos
        if self._size & DATA_IS_RESIDENT:
            if size > 4:
                raise CorruptImage(h.name, "vk cell", CELL_BASE + <uint64_t>self.offset,
                                   f"resident data of {size} bytes (at most 4 fit)")
            return bytes(h._p[self._pos + VK_DATA_OFFSET:self._pos + VK_DATA_OFFSET + size])
        if size == 0:
            return b""
        if size > limits.REGF_MAX_VALUE_DATA:
            raise LimitExceeded(h.name, "vk cell", CELL_BASE + <uint64_t>self.offset,
                                f"{size} bytes of data exceed the limit of "
                                f"{limits.REGF_MAX_VALUE_DATA}")
        if size > h._bins_end:
            raise CorruptImage(h.name, "vk cell", CELL_BASE + <uint64_t>self.offset,
                               f"{size} bytes of data are more than the hive bins hold")
        pos = h._cell(self._data_off, 2, "value data cell", &length)
        if size <= length:
            return bytes(h._p[pos:pos + size])
        if le16(h._p + pos) != SIG_DB:
            raise CorruptImage(h.name, "value data cell", CELL_BASE + <uint64_t>self._data_off,
                               f"{size} bytes of data do not fit the {length}-byte cell, "
                               f"which is not a db record")
        return self._big_data(size)

    cdef bytes _big_data(self, uint32_t size):
        """Gather a value stored in db segments of 16344 bytes each."""
        cdef Hive h = self._hive
        cdef uint32_t length, seg_len, i, chunk, seg
        cdef uint32_t needed = (size + DB_SEGMENT_DATA - 1) // DB_SEGMENT_DATA
        cdef Py_ssize_t pos = h._record(self._data_off, DB_RECORD_SIZE, SIG_DB, "db cell", &length)
        cdef uint32_t count = le16(h._p + pos + DB_SEGMENT_COUNT)
        cdef uint32_t seg_list = le32(h._p + pos + DB_SEGMENT_LIST)
        if count > limits.REGF_MAX_DB_SEGMENTS:
            raise LimitExceeded(h.name, "db cell", CELL_BASE + <uint64_t>self._data_off,
                                f"{count} segments exceed the limit of "
                                f"{limits.REGF_MAX_DB_SEGMENTS}")
        if count < needed:
            raise CorruptImage(h.name, "db cell", CELL_BASE + <uint64_t>self._data_off,
                               f"{count} segments cannot hold {size} bytes "
                               f"({needed} needed)")
        cdef Py_ssize_t lpos = h._cell(seg_list, 4 * count, "db segment list", &length)
        out = bytearray(size)
        cdef uint32_t done = 0
        for i in range(needed):
            seg = le32(h._p + lpos + 4 * i)
            chunk = size - done
            if chunk > <uint32_t>DB_SEGMENT_DATA:
                chunk = DB_SEGMENT_DATA
            pos = h._cell(seg, chunk, "db segment", &seg_len)
            out[done:done + chunk] = h._p[pos:pos + chunk]
            done += chunk
        return bytes(out)

    @property
    def data(self):
        """The data decoded by type: str (SZ, EXPAND_SZ, LINK), list[str] (MULTI_SZ),
        int (DWORD, DWORD_BIG_ENDIAN, QWORD) or bytes (the rest, and integers whose
        size is wrong, which regedit also shows as binary)."""
        raw = self.raw
        t = self.type
        if t == REG_SZ or t == REG_EXPAND_SZ or t == REG_LINK:
            return _decode_sz(raw)
        if t == REG_DWORD and len(raw) == 4:
            return int.from_bytes(raw, "little")
        if t == REG_DWORD_BIG_ENDIAN and len(raw) == 4:
            return int.from_bytes(raw, "big")
        if t == REG_QWORD and len(raw) == 8:
            return int.from_bytes(raw, "little")
        if t == REG_MULTI_SZ:
            return _decode_multi_sz(raw)
        return raw

    def __repr__(self):
        return f"<Value {self.name!r} {self.type_name} {self.size} bytes>"

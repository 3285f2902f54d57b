"""Format signatures matched in one native pass over the file's two ends.

Detection (:mod:`imgscan._core.registry`) asks, for every registered format in
turn, whether one of its magics sits at its offset: about two dozen checks per
file. As Python closures they cost more than decoding the header of the format
that wins; here they are one loop in C over a table built once, at import,
from the registry's own declarations (``registry.at``), so no magic is written
twice.

:class:`Peek` reads the file's first :data:`PEEK_HEAD` bytes (every magic at a
fixed offset but the farther LUKS2 secondary headers, the ISO 9660 primary
volume descriptor included) and last :data:`PEEK_TAIL` (VHD footer, DMG
trailer) once; a signature outside both is read with one ``pread`` of its own
length into a stack buffer. The rule for a file cut short inside a magic is
the registry's: what the file holds there must be a prefix of the magic (unless its
row asks for the whole magic). Both ends stay with the source (``Source.keep_ends``):
the decoder's header and footer reads that fall inside them cost no system call.

:meth:`SignatureTable.read` is detection's one native pass: both ends read, every
signature matched (an OVF package's cheap condition among them), the result kept on
the :class:`Peek` (``found``), so Python sees one number. Once a candidate in its
``defer`` has matched, it leaves the far signatures unread (``Peek.unread``) for
:meth:`SignatureTable.read_far`: detection reads them after the decoder of that format,
which they cannot displace, has opened the file, from the decoder's own reads where they
fall inside one (issue 18). The second-reading check's MBR probe (:func:`mbr_partitions`)
is here too, on the layout :mod:`c_mbr` declares, compiled in at build time.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcmp

from .source cimport KEEP_MAX, Source

# The MBR layout as declared in c_mbr, as C values (one sector's probe, on every open),
# rendered at build time (probes/compiled_layouts.py, which also checks the two-byte
# signature, the two boot indicators and the 32-bit sector count this probe assumes, and
# that the four entries and the signature lie inside the one sector it reads): no
# declaration is imported at start-up (nor c_tar: TAR_MAGIC_OFFSET and TAR_MAGIC_USTAR,
# where an OVA's first tar header keeps its magic, for the registry's package signature).
include "signatures_layout.pxi"
#: The sector's size and where its boot signature lies, for the registry's check and message.
MBR_SECTOR = MBR_SECTOR_SIZE
MBR_SIGNATURE_AT = MBR_SIGNATURE_OFFSET

#: Bytes :class:`Peek` reads at each end of the file (the ISO 9660 primary volume
#: descriptor is at 32768 + 1; the VHD footer and DMG trailer in the last 512).
PEEK_HEAD = 16 * 2048 + 8
PEEK_TAIL = 512

cdef enum:
    # The longest magic a table may hold (the stack buffer a far signature is read into).
    MAX_MAGIC = 64
    # Candidates a table may hold (one bit each in the match).
    MAX_CANDIDATES = 64


cdef class Peek:
    """The bytes detection looks at, read with two system calls.

    ``head`` holds the first :data:`PEEK_HEAD` bytes (fewer in a smaller file),
    ``tail`` the bytes from ``tail_start`` to the end (at most :data:`PEEK_TAIL`,
    never overlapping ``head``).
    """

    cdef readonly Source source
    cdef readonly uint64_t size
    cdef readonly bytes head
    cdef readonly bytes tail
    cdef readonly uint64_t tail_start
    #: The candidates whose signature is in the file (bit ``candidate``), when the
    #: peek was made by :meth:`SignatureTable.read`; 0 otherwise.
    cdef readonly uint64_t found
    #: The candidates not in ``found`` with a far signature left unread (``defer``).
    cdef readonly uint64_t unread

    def __init__(self, Source source):
        self.source = source
        self.size = source.size
        self.head = source.read(0, min(<uint64_t>PEEK_HEAD, self.size), "format signature")
        self.tail_start = max(<uint64_t>len(self.head),
                              self.size - min(<uint64_t>PEEK_TAIL, self.size))
        self.tail = source.read(self.tail_start, self.size - self.tail_start,
                                "format signature")
        source.keep_ends(self.head, self.tail, self.tail_start)


cdef struct Row:
    int candidate           # bit in the match
    int64_t offset          # negative: from the end of the file
    Py_ssize_t first        # its magics: [first, first + count) of the magic table
    Py_ssize_t count
    Py_ssize_t longest      # the longest of them
    bint whole              # a file cut short inside the magic does not match


cdef struct Magic:
    Py_ssize_t start        # in the table's blob
    Py_ssize_t length


cdef class SignatureTable:
    """Rows ``(candidate, offset, magics)`` or ``(candidate, offset, magics, whole)``:
    candidate ``candidate`` (0 to 63) matches when one of ``magics`` is at ``offset``
    (negative: from the end of the file); with ``whole`` true, only when the file holds
    all of it (no prefix rule)."""

    cdef Row* _rows
    cdef Magic* _magics
    cdef Py_ssize_t _nrows
    cdef bytes _blob
    # The rows at positive offsets past PEEK_HEAD (never in a peek's head): where, and
    # their longest magic's length, for Source.keep_reads.
    cdef uint64_t _far_at[KEEP_MAX]
    cdef uint64_t _far_len[KEEP_MAX]
    cdef int _nfar

    def __init__(self, rows):
        rows = list(rows)
        rows = [(*row, False) if len(row) == 3 else tuple(row) for row in rows]
        cdef Py_ssize_t nmagics = sum(len(row[2]) for row in rows)
        self._rows = <Row*>PyMem_Malloc(max(len(rows), 1) * sizeof(Row))
        self._magics = <Magic*>PyMem_Malloc(max(nmagics, 1) * sizeof(Magic))
        if self._rows == NULL or self._magics == NULL:
            raise MemoryError()
        parts = []
        cdef Py_ssize_t at = 0, m = 0, i
        for i, (candidate, offset, magics, whole) in enumerate(rows):
            if not 0 <= candidate < MAX_CANDIDATES:
                raise ValueError(f"candidate {candidate} is not in 0..{MAX_CANDIDATES - 1}")
            if not magics or not all(0 < len(magic) <= MAX_MAGIC for magic in magics):
                raise ValueError(f"magics {magics!r}: 1 to {MAX_MAGIC} bytes each")
            self._rows[i] = Row(candidate, offset, m, len(magics),
                                max(len(magic) for magic in magics), bool(whole))
            for magic in magics:
                self._magics[m] = Magic(at, len(magic))
                parts.append(magic)
                at += len(magic)
                m += 1
        self._nrows = len(rows)
        self._blob = b"".join(parts)
        far = [(offset, max(map(len, magics))) for _, offset, magics, _ in rows
               if offset + max(map(len, magics)) > PEEK_HEAD]
        if len(far) > KEEP_MAX:
            raise ValueError(f"{len(far)} signatures past the head: at most {KEEP_MAX}")
        for i, (offset, length) in enumerate(far):
            self._far_at[i] = offset
            self._far_len[i] = length
        self._nfar = len(far)

    def __dealloc__(self):
        PyMem_Free(self._rows)
        PyMem_Free(self._magics)

    def read(self, Source source, uint64_t defer=0):
        """The file's two ends (:class:`Peek`), read once, with the candidates whose
        signatures they hold (``Peek.found``): detection's one native pass. A signature
        outside both ends is read too, unless a row before it matched a candidate in
        ``defer`` (bit ``candidate``): then it is not read, and its candidate, unless
        found otherwise, is in ``Peek.unread``. Only where that candidate's decoder
        reads those bytes anyway does leaving them for :meth:`read_far_after` save a read;
        for any other match the second pass costs more than it saves."""
        cdef Peek peek = Peek(source)
        peek.found = self._match(peek, defer, ~<uint64_t>0, &peek.unread)
        return peek

    def read_far_after(self, Peek peek, open):
        """``open(peek.source)``, then the signatures ``read`` left unread, from the
        reads ``open`` made where one holds them (``Source.keep_reads``), adding their
        candidates to ``peek.found``; returns what ``open`` returned."""
        cdef Source source = peek.source
        source.keep_reads(self._far_at, self._far_len, self._nfar)
        try:
            opened = open(source)
            self.read_far(peek)
        finally:
            source.keep_reads(NULL, NULL, 0)
        return opened

    def read_far(self, Peek peek):
        """Read the signatures ``read`` left unread, adding their candidates to
        ``peek.found``."""
        if peek.unread:
            peek.found |= self._match(peek, 0, peek.unread, &peek.unread)

    cdef uint64_t _match(self, Peek peek, uint64_t defer, uint64_t only,
                         uint64_t* unread) except? 0:
        """The candidates in ``only`` with a signature in the file (bit ``candidate`` of
        the result), a signature outside both ends read unless a candidate in ``defer``
        has matched already; the candidates left unread by that (and not found) in
        ``unread``."""
        cdef uint8_t far_bytes[MAX_MAGIC]
        cdef const uint8_t* blob = self._blob
        cdef const uint8_t* head = peek.head
        cdef const uint8_t* tail = peek.tail
        cdef uint64_t head_len = len(peek.head)
        cdef uint64_t size = peek.size, tail_start = peek.tail_start, start, avail, n
        cdef uint64_t found = 0, skipped = 0
        cdef const uint8_t* got
        cdef const Row* row
        cdef Magic magic
        cdef Py_ssize_t i, j
        for i in range(self._nrows):
            row = &self._rows[i]
            if (found | ~only) >> row.candidate & 1:
                continue
            if row.offset < 0:
                if <uint64_t>(-row.offset) > size:
                    continue
                start = size - <uint64_t>(-row.offset)
            else:
                start = <uint64_t>row.offset
            if start >= size:
                continue
            avail = min(<uint64_t>row.longest, size - start)
            if start + avail <= head_len:
                got = head + start
            elif start >= tail_start:
                got = tail + (start - tail_start)
            elif found & defer:
                skipped |= <uint64_t>1 << row.candidate
                continue
            else:
                peek.source.copy_into(start, far_bytes, avail)
                got = far_bytes
            for j in range(row.first, row.first + row.count):
                magic = self._magics[j]
                # the whole magic, or what a file cut short holds of it
                n = min(<uint64_t>magic.length, avail)
                if row.whole and n < <uint64_t>magic.length:
                    continue
                if memcmp(got, blob + magic.start, n) == 0:
                    found |= <uint64_t>1 << row.candidate
                    break
        unread[0] = skipped & ~found
        return found


def mbr_partitions(const uint8_t[::1] sector not None):
    """Partition entries of a plausible MBR in ``sector`` (0 when it is not one).

    Plausible: the boot signature, and every non-empty entry with a valid boot
    indicator, a non-zero type and a non-zero length (the first LBA may be 0:
    isohybrid's partition covers the whole file). A stray 0x55AA alone
    (padding, data) is not a partition table.
    """
    if sector.shape[0] < MBR_SECTOR_SIZE:
        return 0
    # every offset below lies inside the sector's first MBR_SECTOR_SIZE bytes
    cdef const uint8_t* p = &sector[0]
    if p[MBR_SIGNATURE_OFFSET] != MBR_SIGNATURE_0 or p[MBR_SIGNATURE_OFFSET + 1] != MBR_SIGNATURE_1:
        return 0
    cdef Py_ssize_t i, k, count = 0
    cdef const uint8_t* entry
    cdef bint empty
    for i in range(MBR_ENTRY_COUNT):
        entry = p + MBR_PARTITION_RECORD + i * MBR_ENTRY_SIZE
        empty = True
        for k in range(MBR_ENTRY_SIZE):
            if entry[k]:
                empty = False
                break
        if empty:
            continue
        if ((entry[MBR_BOOT_INDICATOR] != MBR_STATUS_INACTIVE
                and entry[MBR_BOOT_INDICATOR] != MBR_STATUS_ACTIVE)
                or entry[MBR_OS_TYPE] == 0
                or (entry[MBR_SIZE_IN_LBA] | entry[MBR_SIZE_IN_LBA + 1]
                    | entry[MBR_SIZE_IN_LBA + 2] | entry[MBR_SIZE_IN_LBA + 3]) == 0):
            return 0
        count += 1
    return count

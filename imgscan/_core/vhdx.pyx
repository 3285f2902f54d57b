"""VHDX containers (Hyper-V; qemu's "vhdx" driver).

Spec: Microsoft "[MS-VHDX]: Virtual Hard Disk v2 (VHDX) File Format" (the
VHDX Format Specification 1.00 of 2012, published as an open specification).
All fields are little-endian; GUIDs are in Microsoft mixed-endian order.

A VHDX starts with a 1 MiB *header section*: the file type identifier
(``vhdxfile`` and a UTF-16 creator string) at 0, two *headers* at 64 KiB and
128 KiB (``head``, CRC-32C, a sequence number: the valid one with the larger
number is current), two copies of the *region table* at 192 KiB and 256 KiB
(``regi``, CRC-32C) locating the *BAT* and *metadata* regions. The metadata
region holds a table of items found by GUID (block size, virtual disk size,
sector sizes, page 83 id, parent locator). The BAT has one 64-bit entry per
payload block (state in bits 0-2, file offset in MiB in bits 20-63), with one
sector bitmap entry after every *chunk ratio* payload entries. A *log*
(circular, 4 KiB sectors) holds metadata writes that may not have reached
their place yet.

Where the spec leaves room, this decoder does what qemu 7.2
(``block/vhdx.c``, ``block/vhdx-log.c``) does, so that ``imgscan`` and
``qemu-img -f vhdx`` agree on the guest disk:

* the log: when the current header names a log GUID and the log holds a valid
  sequence of entries (found the way qemu searches for it), the image is
  ``dirty`` and the entries are replayed *in memory*, never written: an
  overlay of 4 KiB file sectors consulted by every region table, metadata,
  BAT and sector bitmap read, and by guest reads (the extent map points a
  replayed sector at its bytes inside the log, or calls it zero). The facts
  and guest bytes are those qemu shows after ``qemu-img check -r all``.
  Headers are read as stored: qemu parses them before the replay and rewrites
  them after it;
* payload block states: FULLY_PRESENT is data; ZERO, UNDEFINED, UNMAPPED (and
  the 0.95 draft's UNMAPPED, 5) read as zeros; NOT_PRESENT is unallocated
  (zeros, or the parent of a differencing disk); PARTIALLY_PRESENT in a
  differencing disk is decided sector by sector by the sector bitmap;
* ``cluster_size`` is the block size; the virtual size is the metadata's
  virtual disk size in whole 512-byte sectors.

qemu reports no subformat; here it is ``differencing`` when the file
parameters say HasParent, ``fixed`` when they say LeaveBlocksAllocated (what
``qemu-img create -o subformat=fixed`` and Hyper-V write for fixed disks),
``dynamic`` otherwise.

It departs from qemu where qemu refuses an image an inspector should still
describe, reporting a finding instead: one region table copy damaged (qemu
reads only the first), payload blocks past the end of the file or on top of
another region (qemu refuses the image; missing bytes read as zeros here),
block states 4 and PARTIALLY_PRESENT in a disk without a parent (qemu fails
reads of them with EIO; read here as zeros and as a fully present block).
Differencing disks, which qemu 7.2 cannot open at all, are read as the spec
says, with ``backing_file`` from the parent locator. qemu 7.2 sizes a disk
with 4096-byte logical sectors at one eighth of its size (it shifts by the
logical sector size where it means 512-byte sectors); the spec's size is
used here.

This module is the container: header section, region tables, metadata and
the BAT's checks. The structures are declared in :mod:`imgscan._core.c_vhdx`,
the log search and replay are :mod:`imgscan._core.vhdx_log`, and the nogil
BAT walk that builds the extent map is :mod:`imgscan._core.vhdx_bat`.
"""

from array import array

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from imgscan import limits
from imgscan.errors import CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature
from imgscan.findings import CORRUPT, SIZE_MISMATCH, TRUNCATED, UNKNOWN_FEATURE

from .binary cimport le16, le32, le64
from .c_vhdx import (
    BAT_REGION_GUID, BLOCK_SIZE_MAX, BLOCK_SIZE_MIN, FILE_ID_SIGNATURE, FILE_PARAMETERS,
    FILE_TYPE_IDENTIFIER, FP_HAS_PARENT, FP_LEAVE_BLOCKS_ALLOCATED, HEADER, HEADER_OFFSETS,
    HEADER_SECTION_SIZE, HEADER_SIGNATURE, HEADER_SIZE, HEADER_VERSION, LOG_VERSION,
    KNOWN_METADATA, LOGICAL_SECTOR_SIZE, LOGICAL_SECTOR_SIZES, METADATA_GUIDS,
    METADATA_REGION_GUID, METADATA_SIGNATURE, METADATA_TABLE_ENTRY, METADATA_TABLE_HEADER,
    METADATA_TABLE_SIZE, MTE_IS_REQUIRED, PAGE_83_DATA, PARENT_LOCATOR_ENTRY,
    PARENT_LOCATOR_HEADER, PARENT_PATH_KEYS, PHYSICAL_SECTOR_SIZE, REGION_SIGNATURE,
    REGION_TABLE_ENTRY, REGION_TABLE_HEADER, REGION_TABLE_OFFSETS, REGION_TABLE_SIZE,
    SECTOR_SIZE, SECTORS_PER_BITMAP_BLOCK, VHDX_PARENT_LOCATOR_TYPE, VIRTUAL_DISK_SIZE,
    ZERO_GUID, MiB,
)
from .container import Container, Format
from .crc32c cimport crc32c_zeroed
from .extents cimport ExtentMap
from .guid import guid_text
from .guid_text cimport ms_guid_text
from .source cimport Source
from .utf16_text cimport utf16_text
from .vhdx_bat cimport FileCtx, WalkStats, walk_bat, walk_counted
from .vhdx_layout cimport BAT_ENTRY_SIZE
from .vhdx_log import LogScan, Overlay

#: What is read of the 64 KiB metadata table at first: its header and 127 entries (the rest
#: only for a table that lists more); a read size, not a structure.
cdef Py_ssize_t METADATA_TABLE_FIRST_READ = 4096

#: How much of the BAT region a remote source is told to fetch with the metadata: the
#: entries of the first 16 GiB of a disk of 32 MiB blocks, often all; a constant, never
#: a length the file claims (the rest is read when the extent map is built).
BAT_ANNOUNCE_BYTES = 64 * 1024

# --------------------------------------------------------------------------
# Field offsets, taken once from the declarations in c_vhdx.py: the header section's
# structures are read field by field from C on every open (a CStruct dict per
# structure and entry cost about a third of an open of a small VHDX).
# --------------------------------------------------------------------------

cdef Py_ssize_t H_SIGNATURE = HEADER.offset("signature")
cdef Py_ssize_t H_CHECKSUM = HEADER.offset("checksum")
cdef Py_ssize_t H_SEQUENCE_NUMBER = HEADER.offset("sequence_number")
cdef Py_ssize_t H_FILE_WRITE_GUID = HEADER.offset("file_write_guid")
cdef Py_ssize_t H_DATA_WRITE_GUID = HEADER.offset("data_write_guid")
cdef Py_ssize_t H_LOG_GUID = HEADER.offset("log_guid")
cdef Py_ssize_t H_LOG_VERSION = HEADER.offset("log_version")
cdef Py_ssize_t H_VERSION = HEADER.offset("version")
cdef Py_ssize_t H_LOG_LENGTH = HEADER.offset("log_length")
cdef Py_ssize_t H_LOG_OFFSET = HEADER.offset("log_offset")
cdef Py_ssize_t RT_SIGNATURE = REGION_TABLE_HEADER.offset("signature")
cdef Py_ssize_t RT_CHECKSUM = REGION_TABLE_HEADER.offset("checksum")
cdef Py_ssize_t RT_ENTRY_COUNT = REGION_TABLE_HEADER.offset("entry_count")
cdef Py_ssize_t RT_HEADER_SIZE = REGION_TABLE_HEADER.size
cdef Py_ssize_t RTE_GUID = REGION_TABLE_ENTRY.offset("guid")
cdef Py_ssize_t RTE_FILE_OFFSET = REGION_TABLE_ENTRY.offset("file_offset")
cdef Py_ssize_t RTE_LENGTH = REGION_TABLE_ENTRY.offset("length")
cdef Py_ssize_t RTE_REQUIRED = REGION_TABLE_ENTRY.offset("required")
cdef Py_ssize_t RTE_SIZE = REGION_TABLE_ENTRY.size
cdef Py_ssize_t MT_SIGNATURE = METADATA_TABLE_HEADER.offset("signature")
cdef Py_ssize_t MT_ENTRY_COUNT = METADATA_TABLE_HEADER.offset("entry_count")
cdef Py_ssize_t MT_HEADER_SIZE = METADATA_TABLE_HEADER.size
cdef Py_ssize_t MTE_ITEM_ID = METADATA_TABLE_ENTRY.offset("item_id")
cdef Py_ssize_t MTE_OFFSET = METADATA_TABLE_ENTRY.offset("offset")
cdef Py_ssize_t MTE_LENGTH = METADATA_TABLE_ENTRY.offset("length")
cdef Py_ssize_t MTE_FLAGS = METADATA_TABLE_ENTRY.offset("flags")
cdef Py_ssize_t MTE_SIZE = METADATA_TABLE_ENTRY.size
cdef Py_ssize_t GUID_SIZE = 16
cdef uint64_t C_HEADER_SIZE = HEADER_SIZE
cdef Py_ssize_t C_REGION_TABLE_SIZE = REGION_TABLE_SIZE
if REGION_TABLE_OFFSETS[1] != REGION_TABLE_OFFSETS[0] + REGION_TABLE_SIZE:
    # _read_region_tables reads both copies at once, the second right after the first
    raise ImportError("c_vhdx: the region table copies are not end to end")
cdef Py_ssize_t FI_SIGNATURE_END = FILE_TYPE_IDENTIFIER.end("signature")
cdef Py_ssize_t FI_CREATOR = FILE_TYPE_IDENTIFIER.offset("creator")
cdef Py_ssize_t FI_CREATOR_SIZE = FILE_TYPE_IDENTIFIER.field_size("creator")
cdef Py_ssize_t FP_BLOCK_SIZE = FILE_PARAMETERS.offset("block_size")
cdef Py_ssize_t FP_FLAGS = FILE_PARAMETERS.offset("flags")
cdef Py_ssize_t VDS_VIRTUAL_DISK_SIZE = VIRTUAL_DISK_SIZE.offset("virtual_disk_size")
cdef Py_ssize_t LSS_LOGICAL_SECTOR_SIZE = LOGICAL_SECTOR_SIZE.offset("logical_sector_size")
cdef Py_ssize_t PSS_PHYSICAL_SECTOR_SIZE = PHYSICAL_SECTOR_SIZE.offset("physical_sector_size")
cdef Py_ssize_t P83_PAGE_83_DATA = PAGE_83_DATA.offset("page_83_data")
#: The metadata items this reader knows (c_vhdx.KNOWN_METADATA), as C arrays indexed by
#: their place there: the GUID as stored, the bytes the item's structure needs, whether
#: every image has it; and their names. A table entry's item is found and kept in these
#: from C (a dict of items by name, a tuple per item, and the structures' sizes looked up
#: per entry were most of the metadata's 22 k instructions an open, issue 18).
cdef enum:
    ITEMS_MAX = 8
cdef Py_ssize_t N_ITEMS = len(KNOWN_METADATA)
if N_ITEMS > ITEMS_MAX:
    raise ImportError("c_vhdx: more known metadata items than vhdx.ITEMS_MAX")
cdef uint8_t ITEM_GUID[ITEMS_MAX][16]
cdef uint64_t ITEM_NEED[ITEMS_MAX]
cdef bint ITEM_REQUIRED[ITEMS_MAX]
cdef tuple ITEM_NAMES = tuple(name for name, _, _, _ in KNOWN_METADATA)


cdef int _init_items() except -1:
    """Fill ITEM_GUID, ITEM_NEED and ITEM_REQUIRED from c_vhdx once, at import (C arrays
    are filled by a function: module code cannot declare the typed GUID it copies)."""
    cdef Py_ssize_t k
    cdef bytes guid
    for k, (name, _, struct, required) in enumerate(KNOWN_METADATA):
        guid = METADATA_GUIDS[name]
        if len(guid) != GUID_SIZE:
            raise ImportError("c_vhdx: a metadata item GUID is not 16 bytes")
        memcpy(ITEM_GUID[k], <const char*>guid, GUID_SIZE)
        ITEM_NEED[k] = struct.size
        ITEM_REQUIRED[k] = required
    return 0


_init_items()
cdef Py_ssize_t K_FILE_PARAMETERS = ITEM_NAMES.index("file_parameters")
cdef Py_ssize_t K_VIRTUAL_DISK_SIZE = ITEM_NAMES.index("virtual_disk_size")
cdef Py_ssize_t K_PAGE_83_DATA = ITEM_NAMES.index("page_83_data")
cdef Py_ssize_t K_LOGICAL_SECTOR_SIZE = ITEM_NAMES.index("logical_sector_size")
cdef Py_ssize_t K_PHYSICAL_SECTOR_SIZE = ITEM_NAMES.index("physical_sector_size")
cdef Py_ssize_t K_PARENT_LOCATOR = ITEM_NAMES.index("parent_locator")
# _read_metadata reads these items' pointers unchecked: a table that marked one optional
# would leave its pointer unset on a file without it.
if not all(ITEM_REQUIRED[k] for k in (K_FILE_PARAMETERS, K_VIRTUAL_DISK_SIZE, K_PAGE_83_DATA,
                                      K_LOGICAL_SECTOR_SIZE, K_PHYSICAL_SECTOR_SIZE)):
    raise ImportError("c_vhdx.KNOWN_METADATA marks an item _read_metadata reads as optional")

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

cdef bint _checksum_ok(const uint8_t* p, Py_ssize_t size, Py_ssize_t field):
    """Whether the stored CRC-32C at ``field`` matches the ``size`` bytes of the structure
    at ``p`` (the caller read the whole structure, so ``field`` lies inside it)."""
    return crc32c_zeroed(p, size, field) == le32(p + field)


cdef Py_ssize_t _known_item(const uint8_t* guid) noexcept:
    """The index in ITEM_GUID of the 16-byte GUID at ``guid``, or -1: compared in place (a
    bytes made, hashed and looked up in a dict per table entry was about 800 instructions,
    five or six an open, issue 18)."""
    cdef Py_ssize_t k
    for k in range(N_ITEMS):
        if memcmp(ITEM_GUID[k], guid, GUID_SIZE) == 0:
            return k
    return -1


cdef inline bytes _bytes_at(const uint8_t* p, Py_ssize_t offset, Py_ssize_t n):
    """The ``n`` bytes at ``offset`` of a structure the caller read whole, as a new bytes
    (made from C: a slice of the structure's bytes object went through the sequence
    protocol, about 500 instructions each, a dozen an open of a small VHDX, issue 18)."""
    return (<const char*>p + offset)[:n]


cdef bytes _read(img, uint64_t offset, uint64_t length, str structure):
    """File bytes as replay leaves them; TruncatedImage past the replayed end.

    A C function of the image, not its method: every read of an open comes here, and a
    Python method call each (with the overlay's length asked twice) was about a twentieth
    of a small VHDX's open (issue 18)."""
    cdef Source src = img.source
    cdef uint64_t eff_size = img._eff_size
    if offset > eff_size or length > eff_size - offset:
        raise TruncatedImage(
            src.path, structure, offset,
            f"{length} bytes needed but the file ends at {eff_size}")
    overlay = img._overlay
    if not overlay:
        # inside the file (Source.contains, in C)
        if offset <= src.size and length <= src.size - offset:
            return src.read(offset, length, structure)
        return src.read_zero_padded(offset, length)
    buf = bytearray(src.read_zero_padded(offset, length))
    overlay.apply(offset, buf)
    return bytes(buf)


cdef object _region_table_problem(img, uint64_t offset, const uint8_t* raw):
    """Why the table copy at file ``offset`` (its 64 KiB read whole at ``raw``) is not
    valid, or None."""
    if not _checksum_ok(raw, C_REGION_TABLE_SIZE, RT_CHECKSUM):
        return f"region table at {offset}: CRC-32C mismatch"
    signature = _bytes_at(raw, RT_SIGNATURE, 4)
    if signature != REGION_SIGNATURE:
        return f"region table at {offset}: signature {signature!r} is not 'regi'"
    count = le32(raw + RT_ENTRY_COUNT)
    if count > limits.VHDX_MAX_REGION_ENTRIES:    # compared inline, enforce words it
        try:
            limits.enforce(count, "VHDX_MAX_REGION_ENTRIES", img.source.path,
                           "VHDX region table", offset + RT_ENTRY_COUNT, "entry count")
        except LimitExceeded as exc:
            # one copy over the cap is a finding when the other copy is good
            return f"region table at {offset}: {exc.problem}"
    if RT_HEADER_SIZE + count * RTE_SIZE > C_REGION_TABLE_SIZE:
        # the entries are read from C: only a cap raised past the spec's gets here
        return f"region table at {offset}: {count} entries overrun the table"
    return None


# --------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------

class VhdxImage(Container):
    """A fixed, dynamic or differencing VHDX."""

    format = "vhdx"

    def __init__(self, Source source):
        Container.__init__(self, source, 0)
        self._overlay = Overlay()
        #: The file's size once replay has extended it (as qemu's replay would).
        self._eff_size = source.size
        d = self.details
        if source.wants_prefetch:
            # where the spec puts them: one round trip for what is read one after the other
            source.prefetch([*((off, HEADER_SIZE) for off in HEADER_OFFSETS),
                             *((off, REGION_TABLE_SIZE) for off in REGION_TABLE_OFFSETS)],
                            "VHDX headers and region tables")
        self._read_file_identifier()
        hdr, log_guid = self._read_headers()
        self._regions = [(0, HEADER_SECTION_SIZE)]
        self._parse_log(hdr, log_guid)
        bat, meta = self._read_region_tables()
        if source.wants_prefetch:
            # the metadata table with the items after it (qemu-img and Hyper-V put them
            # in the table's next 64 KiB), and the start of the BAT
            source.prefetch([(bat[0], min(bat[1], BAT_ANNOUNCE_BYTES))],
                            "VHDX metadata and BAT", [(meta[0], METADATA_TABLE_SIZE)])
        self._read_metadata(meta)
        self._check_bat_region(bat)
        if self._eff_size != source.size:
            d["replayed_file_size"] = self._eff_size

    # -- header section -----------------------------------------------------
    def _read_file_identifier(self):
        cdef Source src = self.source
        ident = src.read(0, FI_SIGNATURE_END, "VHDX file type identifier")
        if ident != FILE_ID_SIGNATURE:
            raise CorruptImage(src.path, "VHDX file type identifier", 0,
                               f"signature {ident!r} is not 'vhdxfile'")
        self.details["creator"] = utf16_text(
            src.read_zero_padded(FI_CREATOR, FI_CREATOR_SIZE), False)

    def _read_headers(self):
        """Both headers; the valid one with the larger sequence number is current."""
        cdef Source src = self.source
        cdef bytes raw
        cdef const uint8_t* p
        cdef uint64_t off
        path = src.path
        raws, valid, why, seqs = [], [], [], []
        for off in HEADER_OFFSETS:
            if off + C_HEADER_SIZE > src.size:     # Source.contains, in C
                raws.append(None)
                valid.append(False)
                why.append(f"header at {off} lies past the end of the file ({src.size})")
                seqs.append(None)
                continue
            raw = src.read(off, HEADER_SIZE, "VHDX header")
            raws.append(raw)
            p = <const uint8_t*><char*>raw
            problem = None
            if not _checksum_ok(p, C_HEADER_SIZE, H_CHECKSUM):
                problem = "CRC-32C mismatch"
            elif _bytes_at(p, H_SIGNATURE, 4) != HEADER_SIGNATURE:
                problem = f"signature {_bytes_at(p, H_SIGNATURE, 4)!r} is not 'head'"
            elif le16(p + H_VERSION) != HEADER_VERSION:
                problem = f"version {le16(p + H_VERSION)} is not 1"
            valid.append(problem is None)
            why.append(f"header at {off}: {problem}" if problem else None)
            seqs.append(le64(p + H_SEQUENCE_NUMBER) if problem is None else None)
        if not valid[0] and not valid[1]:
            cls = TruncatedImage if raws[0] is None else CorruptImage
            raise cls(path, "VHDX headers", HEADER_OFFSETS[0],
                      "no valid header: " + "; ".join(why))
        if valid[0] and valid[1]:
            if seqs[0] > seqs[1]:
                current = 0
            elif seqs[1] > seqs[0]:
                current = 1
            elif raws[0] == raws[1]:
                current = 0       # Disk2vhd writes two identical headers
            else:
                raise CorruptImage(path, "VHDX headers", HEADER_OFFSETS[0],
                                   f"both headers are valid with sequence number {seqs[0]} "
                                   "but differ, so neither can be chosen")
        else:
            current = 0 if valid[0] else 1
            bad = 1 - current
            self.add_finding(CORRUPT, "warning",
                             f"VHDX {why[bad]}; the other header (sequence number "
                             f"{seqs[current]}) is used")
        raw = raws[current]
        p = <const uint8_t*><char*>raw
        h = {
            "sequence_number": seqs[current],
            "file_write_guid": ms_guid_text(p + H_FILE_WRITE_GUID),
            "data_write_guid": ms_guid_text(p + H_DATA_WRITE_GUID),
            "log_guid": ms_guid_text(p + H_LOG_GUID),
            "log_version": le16(p + H_LOG_VERSION),
            "version": le16(p + H_VERSION),
            "log_length": le32(p + H_LOG_LENGTH),
            "log_offset": le64(p + H_LOG_OFFSET),
        }
        d = self.details
        d["current_header"] = current + 1
        d["header_sequence_numbers"] = seqs
        d["header"] = h
        return h, _bytes_at(p, H_LOG_GUID, GUID_SIZE)

    # -- log ------------------------------------------------------------------
    def _parse_log(self, dict hdr, bytes log_guid):
        """Find the active log sequence the way qemu does; replay it in memory.

        ``hdr`` is the current header's fields (``details["header"]``), ``log_guid``
        its log GUID as stored.
        """
        src = self.source
        path = src.path
        log_offset = hdr["log_offset"]
        log_length = hdr["log_length"]
        where = HEADER_OFFSETS[self.details["current_header"] - 1]
        if log_offset < MiB or log_offset % MiB:
            raise CorruptImage(path, "VHDX header log offset", where + HEADER.offset("log_offset"),
                               f"log offset {log_offset} is not a non-zero multiple of 1 MiB")
        if hdr["log_version"] != LOG_VERSION:
            raise UnsupportedFeature(path, "VHDX header log version",
                                     where + HEADER.offset("log_version"),
                                     f"log version {hdr['log_version']} is not 0")
        self._regions.append((log_offset, log_length))
        log = {"offset": log_offset, "length": log_length, "entries_replayed": 0}
        self.details["log"] = log
        if log_guid == ZERO_GUID or log_length == 0:
            return
        if log_length % MiB:
            raise CorruptImage(path, "VHDX header log length", where + HEADER.offset("log_length"),
                               f"log length {log_length} is not a multiple of 1 MiB")
        if log_length > limits.VHDX_MAX_LOG_BYTES:     # compared inline, enforce words it
            limits.enforce(log_length, "VHDX_MAX_LOG_BYTES", path, "VHDX header log length",
                           where + HEADER.offset("log_length"), "log length")
        scan = LogScan(self, log_offset, log_length, log_guid)
        seq = scan.search()
        if seq is None:
            return
        start, count, first_seq = seq
        self.dirty = True
        scan.replay(start, count)
        log["entries_replayed"] = count
        log["first_sequence_number"] = first_seq
        self.add_finding(
            CORRUPT, "info",
            f"the VHDX log holds {count} unreplayed entr{'y' if count == 1 else 'ies'} "
            f"(sequence {first_seq}..); they were replayed in memory, as qemu-img check -r all "
            "would write them, and the file was not changed",
        )

    # -- region tables --------------------------------------------------------
    def _read_region_tables(self):
        """Both copies, judged; the entries of the one used.

        The copies lie end to end: one read of their 128 KiB, or of what the file holds of
        them when it ends sooner (a system call less than a read each, issue 18); a copy
        the read does not hold whole lies past the end. A second copy with the same bytes
        as a valid first passes every check the first passed, so it is compared, not
        checksummed again (half of a VHDX open's instructions went to CRC-32C, issue 18).
        A second copy that differs, or is damaged, is a finding."""
        path = self.source.path
        cdef uint64_t off, eff_size = self._eff_size
        cdef uint64_t first = REGION_TABLE_OFFSETS[0]
        cdef uint64_t n = min(<uint64_t>(2 * C_REGION_TABLE_SIZE),
                              eff_size - first if eff_size > first else 0)
        cdef const uint8_t* ps[2]
        cdef bytes both = None
        cdef Py_ssize_t k
        cdef bint same = False
        problems = []
        if n >= <uint64_t>C_REGION_TABLE_SIZE:
            both = _read(self, first, n, "VHDX region tables")
        for k in range(2):
            off = first + <uint64_t>(k * C_REGION_TABLE_SIZE)
            if <uint64_t>((k + 1) * C_REGION_TABLE_SIZE) > n:
                ps[k] = NULL
                problems.append(f"region table at {off} lies past the end of the file")
                continue
            ps[k] = <const uint8_t*><char*>both + k * C_REGION_TABLE_SIZE
            if k == 1 and problems[0] is None and \
                    memcmp(ps[0], ps[1], C_REGION_TABLE_SIZE) == 0:
                same = True
                problems.append(None)
            else:
                problems.append(_region_table_problem(self, off, ps[k]))
        if problems[0] and problems[1]:
            cls = (TruncatedImage if ps[0] == NULL
                   else LimitExceeded if all("limits." in p for p in problems)
                   else CorruptImage)
            raise cls(path, "VHDX region tables", REGION_TABLE_OFFSETS[0],
                      "no valid region table: " + "; ".join(problems))
        use = 0 if problems[0] is None else 1
        if problems[0]:
            self.add_finding(CORRUPT, "warning",
                             f"VHDX {problems[0]}; the copy at {REGION_TABLE_OFFSETS[1]} is "
                             "used (qemu-img reads only the first and refuses the image)")
        elif problems[1]:
            self.add_finding(CORRUPT, "warning",
                             f"VHDX {problems[1]}; the first copy is used (as qemu does)")
        elif not same:
            self.add_finding(CORRUPT, "warning",
                             "the two VHDX region table copies differ; the first is used "
                             "(as qemu does)")
        # every entry lies inside the table (checked with the entry count's cap)
        cdef const uint8_t* p = ps[use]
        cdef Py_ssize_t i, e
        base = REGION_TABLE_OFFSETS[use]
        bat = meta = None
        regions = []
        for i in range(le32(p + RT_ENTRY_COUNT)):
            e = RT_HEADER_SIZE + i * RTE_SIZE
            guid = _bytes_at(p, e + RTE_GUID, GUID_SIZE)
            off = le64(p + e + RTE_FILE_OFFSET)
            length = le32(p + e + RTE_LENGTH)
            required = bool(le32(p + e + RTE_REQUIRED) & 1)
            where = base + e
            text = ms_guid_text(p + e + RTE_GUID)
            name = ("bat" if guid == BAT_REGION_GUID
                    else "metadata" if guid == METADATA_REGION_GUID else text)
            regions.append({"guid": text, "name": name, "file_offset": off,
                            "length": length, "required": required})
            for r_off, r_len in self._regions:
                if off < r_off + r_len and r_off < off + length:
                    raise CorruptImage(path, "VHDX region table entry", where,
                                       f"region {name} at {off} (+{length}) overlaps another "
                                       f"region at {r_off} (+{r_len})")
            self._regions.append((off, length))
            if name == "bat" or name == "metadata":
                if (bat if name == "bat" else meta) is not None:
                    raise CorruptImage(path, "VHDX region table entry", where,
                                       f"the {name} region is listed twice")
                if name == "bat":
                    bat = (off, length, where)
                else:
                    meta = (off, length, where)
            elif required:
                raise UnsupportedFeature(path, "VHDX region table entry", where,
                                         f"region {name} is marked required but is not "
                                         "one this reader (or qemu) knows")
        self.details["regions"] = regions
        if bat is None or meta is None:
            raise CorruptImage(path, "VHDX region table", base,
                               "the table names no " + ("BAT" if bat is None else "metadata")
                               + " region")
        return bat, meta

    # -- metadata -------------------------------------------------------------
    def _read_metadata(self, meta):
        path = self.source.path
        moff, mlen, mwhere = meta
        if moff + METADATA_TABLE_SIZE > self._eff_size:
            # the whole table must be in the file, as before: this read raises, naming it
            _read(self, moff, METADATA_TABLE_SIZE, "VHDX metadata table")
        # Its header and first entries, and the rest only when the count needs it: the
        # 64 KiB table holds 5 or 6 entries as qemu-img and Hyper-V write it, and copying
        # all of it from the kernel was about a twentieth of a small VHDX's open (issue 18).
        cdef bytes table = _read(self, moff, METADATA_TABLE_FIRST_READ, "VHDX metadata table")
        cdef const uint8_t* p = <const uint8_t*><char*>table
        cdef Py_ssize_t i, e, count, k
        # The entries' fields as C integers, the table's offset among them (inside the file:
        # checked above); each known item's file offset, length and entry in C arrays by its
        # index in KNOWN_METADATA (the loop's arithmetic on Python ints, and a dict of
        # tuples by name, were most of the metadata's instructions, issue 18).
        cdef uint64_t base = moff, region_len = mlen, ioff, ilen, flags, where
        cdef uint64_t it_off[ITEMS_MAX]
        cdef uint64_t it_len[ITEMS_MAX]
        cdef uint64_t it_where[ITEMS_MAX]
        cdef bint seen[ITEMS_MAX]
        memset(seen, 0, sizeof(seen))
        signature = _bytes_at(p, MT_SIGNATURE, 8)
        if signature != METADATA_SIGNATURE:
            raise CorruptImage(path, "VHDX metadata table", moff,
                               f"signature {signature!r} is not 'metadata'")
        count = le16(p + MT_ENTRY_COUNT)
        if count > limits.VHDX_MAX_METADATA_ENTRIES:
            limits.enforce(count, "VHDX_MAX_METADATA_ENTRIES", path,
                           "VHDX metadata table entry count", moff + MT_ENTRY_COUNT,
                           "entry count")
        if MT_HEADER_SIZE + count * MTE_SIZE > METADATA_TABLE_SIZE:
            # the entries are read from C: only a cap raised past the spec's gets here
            raise CorruptImage(path, "VHDX metadata table", moff,
                               f"{count} entries overrun the table")
        if MT_HEADER_SIZE + count * MTE_SIZE > len(table):
            table = _read(self, moff, MT_HEADER_SIZE + count * MTE_SIZE, "VHDX metadata table")
            p = <const uint8_t*><char*>table
        for i in range(count):
            e = MT_HEADER_SIZE + i * MTE_SIZE
            ioff = le32(p + e + MTE_OFFSET)
            ilen = le32(p + e + MTE_LENGTH)
            flags = le32(p + e + MTE_FLAGS)
            where = base + <uint64_t>e
            k = _known_item(p + e + MTE_ITEM_ID)
            if k < 0:
                if flags & MTE_IS_REQUIRED:
                    raise UnsupportedFeature(path, "VHDX metadata table entry", where,
                                             f"metadata item "
                                             f"{guid_text(_bytes_at(p, e + MTE_ITEM_ID, GUID_SIZE))}"
                                             " is marked required but is not one this reader "
                                             "(or qemu) knows")
                continue
            if seen[k]:
                raise CorruptImage(path, "VHDX metadata table entry", where,
                                   f"metadata item {ITEM_NAMES[k]} is listed twice")
            if ilen < ITEM_NEED[k] or ioff + ilen > region_len:
                self.add_finding(CORRUPT, "warning",
                                 f"VHDX metadata item {ITEM_NAMES[k]} (entry at {where}) "
                                 f"claims {ilen} bytes at offset {ioff} of the {mlen}-byte "
                                 f"metadata region; {ITEM_NEED[k]} bytes are read there "
                                 "(as qemu does)")
            seen[k] = True
            it_off[k] = base + ioff
            it_len[k] = ilen
            it_where[k] = where
        missing = [ITEM_NAMES[k] for k in range(N_ITEMS) if ITEM_REQUIRED[k] and not seen[k]]
        if missing:
            raise CorruptImage(path, "VHDX metadata table", moff,
                               "required metadata item(s) missing: " + ", ".join(missing))

        # The required items lie together after the table, where qemu-img and Hyper-V
        # write them: one read of their span when it is short and inside the file (not
        # a read each, five system calls an open), else one read each, which names the
        # item that lies outside. Their fields are read from C at the offsets declared in
        # c_vhdx.py (a CStruct dict per item was a tenth of a small VHDX's open, issue 18).
        cdef uint64_t lo = <uint64_t>-1, hi = 0
        for k in range(N_ITEMS):
            if ITEM_REQUIRED[k]:
                lo = min(lo, it_off[k])
                hi = max(hi, it_off[k] + ITEM_NEED[k])
        cdef bytes span, one
        cdef list alone = []    # the bytes the pointers point into, when read one by one
        cdef const uint8_t* at[ITEMS_MAX]
        if hi - lo <= METADATA_TABLE_SIZE and hi <= <uint64_t>self._eff_size:
            span = _read(self, lo, hi - lo, "VHDX metadata items")
            for k in range(N_ITEMS):
                if ITEM_REQUIRED[k]:
                    at[k] = <const uint8_t*><char*>span + (it_off[k] - lo)
        else:
            for k in range(N_ITEMS):
                if ITEM_REQUIRED[k]:
                    one = _read(self, it_off[k], ITEM_NEED[k],
                                f"VHDX metadata item {ITEM_NAMES[k]}")
                    alone.append(one)
                    at[k] = <const uint8_t*><char*>one
        cdef const uint8_t* fp = at[K_FILE_PARAMETERS]
        block_size = le32(fp + FP_BLOCK_SIZE)
        fp_flags = le32(fp + FP_FLAGS)
        vsize = le64(at[K_VIRTUAL_DISK_SIZE] + VDS_VIRTUAL_DISK_SIZE)
        lss = le32(at[K_LOGICAL_SECTOR_SIZE] + LSS_LOGICAL_SECTOR_SIZE)
        pss = le32(at[K_PHYSICAL_SECTOR_SIZE] + PSS_PHYSICAL_SECTOR_SIZE)
        cdef const uint8_t* page83 = at[K_PAGE_83_DATA] + P83_PAGE_83_DATA
        has_parent = bool(fp_flags & FP_HAS_PARENT)
        leave = bool(fp_flags & FP_LEAVE_BLOCKS_ALLOCATED)
        cdef dict d = self.details
        d["block_size"] = block_size
        d["leave_blocks_allocated"] = leave
        d["has_parent"] = has_parent
        d["virtual_disk_size"] = vsize
        d["logical_sector_size"] = lss
        d["physical_sector_size"] = pss
        d["virtual_disk_id"] = ms_guid_text(page83)
        if block_size < BLOCK_SIZE_MIN or block_size > BLOCK_SIZE_MAX \
                or block_size & (block_size - 1):
            raise CorruptImage(path, "VHDX file parameters block size",
                               it_off[K_FILE_PARAMETERS],
                               f"block size {block_size} is not a power of two from 1 MiB "
                               "to 256 MiB")
        if lss not in LOGICAL_SECTOR_SIZES:
            raise CorruptImage(path, "VHDX logical sector size",
                               it_off[K_LOGICAL_SECTOR_SIZE],
                               f"logical sector size {lss} is not 512 or 4096")
        if pss not in LOGICAL_SECTOR_SIZES:
            self.add_finding(UNKNOWN_FEATURE, "warning",
                             f"VHDX physical sector size {pss} is not 512 or 4096")
        # the cap is the spec's 64 TiB (compared inline, enforce called only to refuse)
        if vsize > limits.VHDX_MAX_VIRTUAL_SIZE:
            limits.enforce(vsize, "VHDX_MAX_VIRTUAL_SIZE", path, "VHDX virtual disk size",
                           it_off[K_VIRTUAL_DISK_SIZE], "virtual size")
        if vsize % lss:
            self.add_finding(SIZE_MISMATCH, "warning",
                             f"VHDX virtual disk size {vsize} is not a multiple of the "
                             f"{lss}-byte logical sector; whole 512-byte sectors are used")
        if unknown := fp_flags & ~(FP_LEAVE_BLOCKS_ALLOCATED | FP_HAS_PARENT):
            self.add_finding(UNKNOWN_FEATURE, "info",
                             f"VHDX file parameter flags 0x{unknown:x} are not in the spec")
        self.virtual_size = vsize // SECTOR_SIZE * SECTOR_SIZE
        self.cluster_size = block_size
        self._block_size = block_size
        self._lss = lss
        self._has_parent = has_parent
        self._chunk_ratio = SECTORS_PER_BITMAP_BLOCK * lss // block_size
        d["chunk_ratio"] = self._chunk_ratio
        self.subformat = "differencing" if has_parent else "fixed" if leave else "dynamic"
        if has_parent:
            if not seen[K_PARENT_LOCATOR]:
                raise CorruptImage(path, "VHDX metadata table", moff,
                                   "HasParent is set but there is no parent locator item")
            self._read_parent_locator(it_off[K_PARENT_LOCATOR], it_len[K_PARENT_LOCATOR],
                                      it_where[K_PARENT_LOCATOR])
        elif seen[K_PARENT_LOCATOR]:
            self.add_finding(CORRUPT, "info",
                             "the VHDX has a parent locator but HasParent is not set; "
                             "it is ignored")

    def _read_parent_locator(self, uint64_t off, uint64_t length, uint64_t where):
        path = self.source.path
        limits.enforce(length, "VHDX_MAX_PARENT_LOCATOR_BYTES", path, "VHDX parent locator",
                       off, "parent locator length")
        if length < PARENT_LOCATOR_HEADER.size:
            raise CorruptImage(path, "VHDX parent locator", off,
                               f"its {length} bytes are shorter than the "
                               f"{PARENT_LOCATOR_HEADER.size}-byte locator header")
        raw = _read(self, off, length, "VHDX parent locator")
        h = PARENT_LOCATOR_HEADER.unpack(raw)
        count = h["key_value_count"]
        limits.enforce(count, "VHDX_MAX_PARENT_LOCATOR_ENTRIES", path, "VHDX parent locator",
                       off + PARENT_LOCATOR_HEADER.offset("key_value_count"),
                       "key/value entry count")
        if PARENT_LOCATOR_HEADER.size + count * PARENT_LOCATOR_ENTRY.size > length:
            raise CorruptImage(path, "VHDX parent locator", off,
                               f"{count} key/value entries do not fit in its {length} bytes")
        locator_type = h["locator_type"]
        entries = {}
        for i in range(count):
            e = PARENT_LOCATOR_HEADER.size + i * PARENT_LOCATOR_ENTRY.size
            entry = PARENT_LOCATOR_ENTRY.unpack(raw, e)
            ko, vo = entry["key_offset"], entry["value_offset"]
            kl, vl = entry["key_length"], entry["value_length"]
            if ko + kl > length or vo + vl > length:
                self.add_finding(CORRUPT, "warning",
                                 f"VHDX parent locator entry {i} (at {off + e}) points past "
                                 f"the {length}-byte item; skipped")
                continue
            key = utf16_text(raw[ko:ko + kl], False)
            if key in entries:
                self.add_finding(CORRUPT, "warning",
                                 f"VHDX parent locator key {key!r} appears more than once; "
                                 "the first is used")
                continue
            entries[key] = utf16_text(raw[vo:vo + vl], False)
        self.details["parent_locator"] = {"locator_type": guid_text(locator_type),
                                          "entries": entries}
        if locator_type != VHDX_PARENT_LOCATOR_TYPE:
            self.add_finding(UNKNOWN_FEATURE, "warning",
                             f"VHDX parent locator type {guid_text(locator_type)} is not the "
                             "VHDX parent type")
        for key in PARENT_PATH_KEYS:
            if entries.get(key):
                self.backing_file = entries[key]
                break
        else:
            self.add_finding(CORRUPT, "warning",
                             "the differencing VHDX's parent locator names no parent path; "
                             "sectors not stored here read as zeros")

    # -- BAT -----------------------------------------------------------------------
    def _check_bat_region(self, bat):
        path = self.source.path
        boff, blen, where = bat
        bs = self._block_size
        nblocks = -(-self.virtual_size // bs)
        cr = self._chunk_ratio
        if self._has_parent:
            entries = -(-nblocks // cr) * (cr + 1)
        else:
            entries = nblocks + (nblocks - 1) // cr if nblocks else 0
        self.details["bat_entries"] = entries
        if entries * BAT_ENTRY_SIZE > blen:
            raise CorruptImage(path, "VHDX BAT region", where,
                               f"{entries} BAT entries need {entries * BAT_ENTRY_SIZE} bytes "
                               f"but the region holds {blen}")
        if boff + entries * BAT_ENTRY_SIZE > self._eff_size:
            raise TruncatedImage(path, "VHDX BAT", boff,
                                 f"{entries} entries need {entries * BAT_ENTRY_SIZE} bytes "
                                 f"but the file ends at {self._eff_size}")
        self._bat = (boff, entries, nblocks)

    def build_extent_map(self):
        cdef Source src = self.source
        cdef uint64_t boff, entries, nblocks
        boff, entries, nblocks = self._bat
        cdef ExtentMap emap = ExtentMap(self.virtual_size, self._block_size)
        cdef const uint8_t[::1] bat
        cdef const uint8_t[::1] whole
        cdef const uint64_t[::1] ov_s, ov_e, ov_d, ov_x, rs, re
        cdef const uint8_t[::1] ov_k
        cdef FileCtx c
        cdef WalkStats st
        cdef int rc
        cdef uint64_t chunk_ratio = self._chunk_ratio, block_size = self._block_size
        cdef uint64_t lss = self._lss, vsize = self.virtual_size, eff = self._eff_size
        cdef bint has_parent = self._has_parent
        if nblocks == 0:
            return emap
        c.n_ov = len(self._overlay)     # asked once (a Python __len__)
        if c.n_ov:
            bat = _read(self, boff, entries * BAT_ENTRY_SIZE, "VHDX BAT")
        else:
            bat = src.view(boff, entries * BAT_ENTRY_SIZE, "VHDX BAT")
        st = WalkStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        c.f = NULL
        c.fsize = 0
        if c.n_ov or has_parent:
            # Sector bitmaps and replayed sectors are read in place from the
            # mapped file (bounded by the file's real size).
            if src.size:
                whole = src.view(0, src.size, "VHDX file")
                c.f = &whole[0]
                c.fsize = src.size
        if c.n_ov:
            a_s, a_e, a_k, a_d, a_x = self._overlay.arrays()
            ov_s, ov_e, ov_k, ov_d, ov_x = a_s, a_e, a_k, a_d, a_x
            c.ov_start, c.ov_end, c.ov_kind = &ov_s[0], &ov_e[0], &ov_k[0]
            c.ov_desc, c.ov_data = &ov_d[0], &ov_x[0]
        # a list made in place and sorted (sorted() of a generator ran it as a coroutine)
        regions = [(o, o + n) for o, n in self._regions if n]
        regions.sort()
        a_rs = array("Q", [r[0] for r in regions])
        a_re = array("Q", [r[1] for r in regions])
        rs, re = a_rs, a_re
        c.reg_start, c.reg_end, c.n_reg = &rs[0], &re[0], len(regions)
        with nogil:
            rc = walk_bat(emap, &bat[0], nblocks, chunk_ratio, block_size, lss, vsize,
                           has_parent, eff, &c, &st)
        if rc < 0:
            emap.refuse_full(src.path, "VHDX BAT", boff)
        # the counters made into a dict for the findings only when one counted anything
        if walk_counted(&st):
            self._walk_findings(st, boff)
        return emap

    def _walk_findings(self, st, uint64_t boff):
        cr = self._chunk_ratio

        def at(i):
            return f"block {i} (BAT entry at offset {boff + (i + i // cr) * BAT_ENTRY_SIZE})"

        if st["past_eof"]:
            self.add_finding(TRUNCATED, "error",
                             f"{st['past_eof']} VHDX payload block(s) lie (partly) past the end "
                             f"of the file, the first being {at(st['first_past_eof'])}; their "
                             "missing bytes read as zeros (qemu-img refuses such an image)")
        if st["overlap"]:
            self.add_finding(CORRUPT, "error",
                             f"{st['overlap']} VHDX payload block(s) lie on the header section "
                             f"or another region, the first being {at(st['first_overlap'])}; "
                             "they are read as stored (qemu-img refuses such an image)")
        if st["bad_state"]:
            self.add_finding(CORRUPT, "error",
                             f"{st['bad_state']} VHDX payload block(s) have the reserved state "
                             f"4, the first being {at(st['first_bad_state'])}; they read as "
                             "zeros here (qemu fails reads of them)")
        if st["partial_no_parent"]:
            self.add_finding(CORRUPT, "error",
                             f"{st['partial_no_parent']} VHDX payload block(s) are "
                             "PARTIALLY_PRESENT in a disk without a parent, the first being "
                             f"{at(st['first_partial_no_parent'])}; they are read as fully "
                             "present (qemu fails reads of them)")
        if st["no_bitmap"]:
            self.add_finding(CORRUPT, "error",
                             f"{st['no_bitmap']} PARTIALLY_PRESENT VHDX block(s) have no sector "
                             f"bitmap block, the first being {at(st['first_no_bitmap'])}; they "
                             "read from the parent")


def probe(Source source):
    """``vhdxfile`` at offset 0 (qemu's probe); the signature's end taken once at import
    (a CStruct look-up each probe was a tenth of the probe)."""
    return source.size >= <uint64_t>FI_SIGNATURE_END and source.read(
        0, FI_SIGNATURE_END, "VHDX file type identifier") == FILE_ID_SIGNATURE


FORMAT = Format("vhdx", probe, VhdxImage)

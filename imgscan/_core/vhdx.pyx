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
"""

from array import array

cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from imgscan import limits
from imgscan.errors import CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature
from imgscan.findings import CORRUPT, SIZE_MISMATCH, TRUNCATED, UNKNOWN_FEATURE

from .binary cimport le16, le32, le64
from .container import Container, Format
from .crc32c cimport crc32c_update, crc32c_zeroed
from .extents cimport ExtentMap, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST
from .guid import guid_text
from .source cimport Source

# --------------------------------------------------------------------------
# On-disk layout (spec section 2: "Header Section", "Log", "BAT", "Metadata
# Region"). Offsets are in bytes from the start of the structure.
# --------------------------------------------------------------------------

KiB = 1024
MiB = 1024 * 1024

# File type identifier (2.2.1)
FILE_ID_OFFSET = 0
FILE_ID_SIGNATURE = b"vhdxfile"
FILE_ID_CREATOR = 8
FILE_ID_CREATOR_SIZE = 512

# Headers (2.2.2)
HEADER_OFFSETS = (64 * KiB, 128 * KiB)
HEADER_SIZE = 4 * KiB
HEADER_SIGNATURE = b"head"
HDR_CHECKSUM = 4
HDR_SEQUENCE_NUMBER = 8
HDR_FILE_WRITE_GUID = 16
HDR_DATA_WRITE_GUID = 32
HDR_LOG_GUID = 48
HDR_LOG_VERSION = 64
HDR_VERSION = 66
HDR_LOG_LENGTH = 68
HDR_LOG_OFFSET = 72
HEADER_VERSION = 1
LOG_VERSION = 0

# Region table (2.2.3)
REGION_TABLE_OFFSETS = (192 * KiB, 256 * KiB)
REGION_TABLE_SIZE = 64 * KiB
REGION_SIGNATURE = b"regi"
RT_CHECKSUM = 4
RT_ENTRY_COUNT = 8
RT_HEADER_SIZE = 16
RT_ENTRY_SIZE = 32
RTE_GUID = 0
RTE_FILE_OFFSET = 16
RTE_LENGTH = 24
RTE_REQUIRED = 28                   # bit 0 of a 32-bit field
HEADER_SECTION_SIZE = 1 * MiB

# Log (2.3): 4 KiB sectors; an entry is a header sector holding descriptors,
# more descriptor sectors, then one data sector per data descriptor.
LOG_SECTOR_SIZE = 4 * KiB
LOG_ENTRY_SIGNATURE = b"loge"
LE_CHECKSUM = 4
LE_ENTRY_LENGTH = 8
LE_TAIL = 12
LE_SEQUENCE_NUMBER = 16
LE_DESCRIPTOR_COUNT = 24
LE_LOG_GUID = 32
LE_FLUSHED_FILE_OFFSET = 48
LE_LAST_FILE_OFFSET = 56
LOG_ENTRY_HEADER_SIZE = 64
LOG_DESCRIPTOR_SIZE = 32
DESC_SIGNATURE_DATA = b"desc"
DESC_SIGNATURE_ZERO = b"zero"
DESC_TRAILING_BYTES = 4             # data descriptor: last 4 bytes of the sector
DESC_LEADING_BYTES = 8              # data descriptor: first 8 bytes of the sector
DESC_ZERO_LENGTH = 8                # zero descriptor
DESC_FILE_OFFSET = 16
DESC_SEQUENCE_NUMBER = 24
DATA_SECTOR_SIGNATURE = b"data"
DS_SEQUENCE_HIGH = 4
DS_DATA = 8
DS_DATA_SIZE = 4084
DS_SEQUENCE_LOW = 4092

# BAT (2.5)
BAT_ENTRY_SIZE = 8
cdef uint64_t BAT_STATE_MASK = 0x7
cdef uint64_t BAT_FILE_OFFSET_MASK = 0xFFFFFFFFFFF00000
PAYLOAD_BLOCK_NOT_PRESENT = 0
PAYLOAD_BLOCK_UNDEFINED = 1
PAYLOAD_BLOCK_ZERO = 2
PAYLOAD_BLOCK_UNMAPPED = 3
PAYLOAD_BLOCK_UNMAPPED_V095 = 5     # UNMAPPED in the 0.95 draft; qemu reads zeros
PAYLOAD_BLOCK_FULLY_PRESENT = 6
PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7
SB_BLOCK_NOT_PRESENT = 0
SB_BLOCK_PRESENT = 6
#: Sectors described by one sector bitmap block (1 MiB of bits).
SECTORS_PER_BITMAP_BLOCK = 1 << 23

# Metadata region (2.6)
METADATA_TABLE_SIZE = 64 * KiB
METADATA_SIGNATURE = b"metadata"
MT_ENTRY_COUNT = 10
MT_HEADER_SIZE = 32
MT_ENTRY_SIZE = 32
MTE_ITEM_ID = 0
MTE_OFFSET = 16
MTE_LENGTH = 20
MTE_FLAGS = 24
MTE_IS_USER = 0x1
MTE_IS_VIRTUAL_DISK = 0x2
MTE_IS_REQUIRED = 0x4

FP_BLOCK_SIZE = 0
FP_FLAGS = 4
FP_LEAVE_BLOCKS_ALLOCATED = 0x1
FP_HAS_PARENT = 0x2
BLOCK_SIZE_MIN = 1 * MiB
BLOCK_SIZE_MAX = 256 * MiB
LOGICAL_SECTOR_SIZES = (512, 4096)

PL_LOCATOR_TYPE = 0
PL_KEY_VALUE_COUNT = 18
PL_HEADER_SIZE = 20
PL_ENTRY_SIZE = 12
PLE_KEY_OFFSET = 0
PLE_VALUE_OFFSET = 4
PLE_KEY_LENGTH = 8
PLE_VALUE_LENGTH = 10
#: Parent locator keys naming the parent file, in the order they are tried.
PARENT_PATH_KEYS = ("relative_path", "absolute_win32_path", "volume_path")

#: qemu counts the disk in 512-byte sectors.
SECTOR_SIZE = 512


def _guid(text):
    """A GUID written as text, in its on-disk (mixed-endian) byte order."""
    raw = bytes.fromhex(text.replace("-", ""))
    return raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]


BAT_REGION_GUID = _guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_REGION_GUID = _guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
FILE_PARAMETERS_GUID = _guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
VIRTUAL_DISK_SIZE_GUID = _guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
PAGE_83_DATA_GUID = _guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
LOGICAL_SECTOR_SIZE_GUID = _guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
PHYSICAL_SECTOR_SIZE_GUID = _guid("CDA348C7-445D-4471-9CC9-E9885251C556")
PARENT_LOCATOR_GUID = _guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
VHDX_PARENT_LOCATOR_TYPE = _guid("B04AEFB7-D19E-4A81-B789-25B8E9445913")

#: Known metadata items: name and the bytes each must hold.
METADATA_ITEMS = {
    FILE_PARAMETERS_GUID: ("file_parameters", 8),
    VIRTUAL_DISK_SIZE_GUID: ("virtual_disk_size", 8),
    PAGE_83_DATA_GUID: ("page_83_data", 16),
    LOGICAL_SECTOR_SIZE_GUID: ("logical_sector_size", 4),
    PHYSICAL_SECTOR_SIZE_GUID: ("physical_sector_size", 4),
    PARENT_LOCATOR_GUID: ("parent_locator", PL_HEADER_SIZE),
}
REQUIRED_METADATA = ("file_parameters", "virtual_disk_size", "page_83_data",
                     "logical_sector_size", "physical_sector_size")

ZERO_GUID = bytes(16)

# The same layout values for the nogil walk.
cdef enum:
    C_PAYLOAD_BLOCK_NOT_PRESENT = 0
    C_PAYLOAD_BLOCK_RESERVED_4 = 4
    C_PAYLOAD_BLOCK_FULLY_PRESENT = 6
    C_PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7
    C_SB_BLOCK_PRESENT = 6
    C_DESC_TRAILING_BYTES = 4
    C_DESC_LEADING_BYTES = 8
    C_DS_DATA = 8
    C_DS_DATA_SIZE = 4084
    C_LOG_SECTOR_SIZE = 4096
cdef uint64_t C_HEADER_SECTION_SIZE = 1024 * 1024

# Overlay record kinds (log replay)
cdef uint8_t OV_ZERO = 0
cdef uint8_t OV_DATA = 1


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _u(data, Py_ssize_t offset, Py_ssize_t size):
    return int.from_bytes(data[offset:offset + size], "little")


def _checksum_ok(const uint8_t[::1] data, Py_ssize_t field):
    """Whether the stored CRC-32C at ``field`` matches the structure's bytes."""
    cdef uint32_t stored = le32(&data[field])
    return crc32c_zeroed(&data[0], data.shape[0], field) == stored


def _utf16(data):
    """A UTF-16LE string up to its first NUL (lone surrogates kept escaped; an odd
    last byte, which no field of the spec has, dropped)."""
    raw = bytes(data)
    text = raw[:len(raw) & ~1].decode("utf-16-le", errors="surrogatepass")
    end = text.find("\x00")
    if end >= 0:
        text = text[:end]
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


# --------------------------------------------------------------------------
# Log replay overlay
# --------------------------------------------------------------------------

class _Overlay:
    """File sectors replaced by log replay: disjoint, sorted, 4 KiB-aligned runs.

    A run is ``zero`` (a zero descriptor) or one replayed data sector, kept
    both as its 4096 bytes and as where those bytes lie in the log (the
    descriptor holds the first 8 and last 4, the data sector the rest), so
    the extent map can point guest reads at them. Later writes replace
    earlier ones, as replay in order would.
    """

    def __init__(self):
        self.starts = []
        self.ends = []
        self.recs = []          # (kind, desc_pos, data_pos, sector bytes or None)
        self.end_of_writes = 0

    def __len__(self):
        return len(self.starts)

    def write(self, uint64_t start, uint64_t end, rec):
        from bisect import bisect_right
        starts, ends, recs = self.starts, self.ends, self.recs
        i = bisect_right(ends, start)       # first run ending after start
        new_s, new_e, new_r = [], [], []
        j = i
        while j < len(starts) and starts[j] < end:
            if starts[j] < start:           # keep the head of a zero run
                new_s.append(starts[j]); new_e.append(start); new_r.append(recs[j])
            if ends[j] > end:               # keep its tail
                new_s.append(end); new_e.append(ends[j]); new_r.append(recs[j])
            j += 1
        # keep order: heads before the new run, tails after it
        heads = [k for k in range(len(new_s)) if new_s[k] < start]
        tails = [k for k in range(len(new_s)) if new_s[k] >= end]
        s = [new_s[k] for k in heads] + [start] + [new_s[k] for k in tails]
        e = [new_e[k] for k in heads] + [end] + [new_e[k] for k in tails]
        r = [new_r[k] for k in heads] + [rec] + [new_r[k] for k in tails]
        starts[i:j] = s
        ends[i:j] = e
        recs[i:j] = r
        if end > self.end_of_writes:
            self.end_of_writes = end

    def apply(self, uint64_t offset, buf):
        """Patch ``buf`` (the file's bytes at ``offset``) with the replayed sectors."""
        from bisect import bisect_right
        cdef uint64_t end = offset + len(buf)
        cdef uint64_t s, e
        i = bisect_right(self.ends, offset)
        while i < len(self.starts) and self.starts[i] < end:
            s = max(self.starts[i], offset)
            e = min(self.ends[i], end)
            rec = self.recs[i]
            if rec[0] == OV_ZERO:
                buf[s - offset:e - offset] = bytes(e - s)
            else:
                base = self.starts[i]
                buf[s - offset:e - offset] = rec[3][s - base:e - base]
            i += 1

    def arrays(self):
        """The runs as flat arrays for the nogil BAT walk."""
        return (array("Q", self.starts), array("Q", self.ends),
                array("B", [r[0] for r in self.recs]),
                array("Q", [r[1] for r in self.recs]),
                array("Q", [r[2] for r in self.recs]))


# --------------------------------------------------------------------------
# The BAT walk
# --------------------------------------------------------------------------

cdef struct FileCtx:
    # the image file (may be NULL when no byte of it is needed)
    const uint8_t* f
    uint64_t fsize
    # log replay overlay, sorted disjoint runs
    const uint64_t* ov_start
    const uint64_t* ov_end
    const uint8_t* ov_kind
    const uint64_t* ov_desc
    const uint64_t* ov_data
    Py_ssize_t n_ov
    # other regions (header section, log, BAT, metadata, ...), sorted and disjoint
    const uint64_t* reg_start
    const uint64_t* reg_end
    Py_ssize_t n_reg


cdef struct WalkStats:
    uint64_t past_eof
    uint64_t first_past_eof
    uint64_t overlap
    uint64_t first_overlap
    uint64_t bad_state
    uint64_t first_bad_state
    uint64_t partial_no_parent
    uint64_t first_partial_no_parent
    uint64_t no_bitmap
    uint64_t first_no_bitmap


cdef Py_ssize_t _first_ending_after(const uint64_t* ends, Py_ssize_t n,
                                    uint64_t pos) noexcept nogil:
    """Index of the first run whose end is past ``pos`` (``n`` if none)."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid] <= pos:
            lo = mid + 1
        else:
            hi = mid
    return lo


@cython.boundscheck(False)
cdef uint8_t _file_byte(const FileCtx* c, uint64_t pos) noexcept nogil:
    """One byte of the file as replay leaves it (zeros past the end of the file)."""
    cdef Py_ssize_t i
    cdef uint64_t k, src
    if c.n_ov:
        i = _first_ending_after(c.ov_end, c.n_ov, pos)
        if i < c.n_ov and c.ov_start[i] <= pos:
            if c.ov_kind[i] == OV_ZERO:
                return 0
            k = pos - c.ov_start[i]
            if k < 8:
                src = c.ov_desc[i] + C_DESC_LEADING_BYTES + k
            elif k < 8 + C_DS_DATA_SIZE:
                src = c.ov_data[i] + C_DS_DATA + (k - 8)
            else:
                src = c.ov_desc[i] + C_DESC_TRAILING_BYTES + (k - 8 - C_DS_DATA_SIZE)
            return c.f[src] if src < c.fsize else 0
    return c.f[pos] if pos < c.fsize else 0


cdef int _add_data(ExtentMap emap, const FileCtx* c, uint64_t guest, uint64_t length,
                   uint64_t host) noexcept nogil:
    """Append stored bytes, split where log replay replaced file sectors.

    A replayed data sector maps to its three pieces inside the log; a zeroed
    one reads as zeros. Returns -1 when the extent map is full.
    """
    cdef Py_ssize_t i
    cdef uint64_t end = host + length, s, e, k, piece, src
    if c.n_ov == 0:
        return emap.add(guest, length, KIND_DATA, host, 0, 0)
    i = _first_ending_after(c.ov_end, c.n_ov, host)
    while host < end:
        if i >= c.n_ov or c.ov_start[i] >= end:
            return emap.add(guest, end - host, KIND_DATA, host, 0, 0)
        if c.ov_start[i] > host:
            s = c.ov_start[i] - host
            if emap.add(guest, s, KIND_DATA, host, 0, 0) < 0:
                return -1
            guest += s
            host += s
        e = c.ov_end[i] if c.ov_end[i] < end else end
        if c.ov_kind[i] == OV_ZERO:
            if emap.add(guest, e - host, KIND_ZERO, NO_HOST, 0, 0) < 0:
                return -1
            guest += e - host
            host = e
        else:
            while host < e:
                k = host - c.ov_start[i]
                if k < 8:
                    src = c.ov_desc[i] + C_DESC_LEADING_BYTES + k
                    piece = 8 - k
                elif k < 8 + C_DS_DATA_SIZE:
                    src = c.ov_data[i] + C_DS_DATA + (k - 8)
                    piece = 8 + C_DS_DATA_SIZE - k
                else:
                    src = c.ov_desc[i] + C_DESC_TRAILING_BYTES + (k - 8 - C_DS_DATA_SIZE)
                    piece = C_LOG_SECTOR_SIZE - k
                if piece > e - host:
                    piece = e - host
                if emap.add(guest, piece, KIND_DATA, src, 0, 0) < 0:
                    return -1
                guest += piece
                host += piece
        i += 1
    return 0


cdef bint _overlaps_region(const FileCtx* c, uint64_t start, uint64_t length) noexcept nogil:
    cdef Py_ssize_t i = _first_ending_after(c.reg_end, c.n_reg, start)
    return i < c.n_reg and c.reg_start[i] < start + length


cdef int _bitmap_runs(ExtentMap emap, const FileCtx* c, uint64_t guest, uint64_t length,
                      uint64_t host, uint64_t bitmap_off, uint64_t first_bit,
                      uint64_t lss) noexcept nogil:
    """Append a PARTIALLY_PRESENT block, one run per stretch of equal bitmap bits.

    Bit 0 of byte 0 is the chunk's first logical sector (least significant
    bit first, unlike VHD); 1 means the sector is stored here.
    """
    cdef uint64_t nsect = (length + lss - 1) // lss
    cdef uint64_t s = 0, e, bit, pos, b, run_end
    cdef uint8_t byte
    while s < nsect:
        b = first_bit + s
        bit = (_file_byte(c, bitmap_off + b // 8) >> (b % 8)) & 1
        e = s + 1
        while e < nsect:
            b = first_bit + e
            if b % 8 == 0 and e + 8 <= nsect:
                byte = _file_byte(c, bitmap_off + b // 8)
                if byte == (0xFF if bit else 0x00):
                    e += 8
                    continue
            if ((_file_byte(c, bitmap_off + b // 8) >> (b % 8)) & 1) != bit:
                break
            e += 1
        run_end = e * lss if e * lss < length else length
        if bit:
            if _add_data(emap, c, guest + s * lss, run_end - s * lss, host + s * lss) < 0:
                return -1
        elif emap.add(guest + s * lss, run_end - s * lss, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
            return -1
        s = e
    return 0


cdef int _walk_bat(ExtentMap emap, const uint8_t* bat, uint64_t nblocks, uint64_t chunk_ratio,
                   uint64_t block_size, uint64_t lss, uint64_t virtual_size, bint has_parent,
                   uint64_t eff_size, const FileCtx* c, WalkStats* st) noexcept nogil:
    """Append one run per payload block (per bitmap run for partially present ones).

    Returns -1 when the extent map is full.
    """
    cdef uint64_t i, idx, entry, state, off, start, length, sb_entry, sb_off
    cdef uint64_t sectors_per_block = block_size // lss
    for i in range(nblocks):
        start = i * block_size
        length = virtual_size - start
        if length > block_size:
            length = block_size
        idx = i + i // chunk_ratio
        entry = le64(bat + idx * 8)
        state = entry & BAT_STATE_MASK
        off = entry & BAT_FILE_OFFSET_MASK
        if state == C_PAYLOAD_BLOCK_NOT_PRESENT:
            if emap.add(start, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return -1
            continue
        if state != C_PAYLOAD_BLOCK_FULLY_PRESENT and state != C_PAYLOAD_BLOCK_PARTIALLY_PRESENT:
            if state == C_PAYLOAD_BLOCK_RESERVED_4:
                if st.bad_state == 0:
                    st.first_bad_state = i
                st.bad_state += 1
            if emap.add(start, length, KIND_ZERO, NO_HOST, 0, 0) < 0:
                return -1
            continue
        # stored here, wholly or in part: check where
        if off + length > eff_size:
            if st.past_eof == 0:
                st.first_past_eof = i
            st.past_eof += 1
        if off < C_HEADER_SECTION_SIZE or _overlaps_region(c, off, block_size):
            if st.overlap == 0:
                st.first_overlap = i
            st.overlap += 1
        if state == C_PAYLOAD_BLOCK_FULLY_PRESENT or not has_parent:
            if state == C_PAYLOAD_BLOCK_PARTIALLY_PRESENT:
                if st.partial_no_parent == 0:
                    st.first_partial_no_parent = i
                st.partial_no_parent += 1
            if _add_data(emap, c, start, length, off) < 0:
                return -1
            continue
        # PARTIALLY_PRESENT in a differencing disk: the chunk's sector bitmap decides
        sb_entry = le64(bat + ((i // chunk_ratio) * (chunk_ratio + 1) + chunk_ratio) * 8)
        if (sb_entry & BAT_STATE_MASK) != C_SB_BLOCK_PRESENT:
            if st.no_bitmap == 0:
                st.first_no_bitmap = i
            st.no_bitmap += 1
            if emap.add(start, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return -1
            continue
        sb_off = sb_entry & BAT_FILE_OFFSET_MASK
        if _bitmap_runs(emap, c, start, length, off, sb_off,
                        (i % chunk_ratio) * sectors_per_block, lss) < 0:
            return -1
    return 0


# --------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------

class VhdxImage(Container):
    """A fixed, dynamic or differencing VHDX."""

    format = "vhdx"

    def __init__(self, Source source):
        Container.__init__(self, source, 0)
        self._overlay = _Overlay()
        #: The file's size once replay has extended it (as qemu's replay would).
        self._eff_size = source.size
        d = self.details
        self._read_file_identifier()
        hdr = self._read_headers()
        self._regions = [(0, HEADER_SECTION_SIZE)]
        self._parse_log(hdr)
        bat, meta = self._read_region_tables()
        self._read_metadata(meta)
        self._check_bat_region(bat)
        if self._eff_size != source.size:
            d["replayed_file_size"] = self._eff_size

    # -- reads through the replay overlay -----------------------------------
    def _read(self, uint64_t offset, uint64_t length, str structure):
        """File bytes as replay leaves them; TruncatedImage past the replayed end."""
        src = self.source
        if offset > self._eff_size or length > self._eff_size - offset:
            raise TruncatedImage(
                src.path, structure, offset,
                f"{length} bytes needed but the file ends at {self._eff_size}")
        if not self._overlay and src.contains(offset, length):
            return src.read(offset, length, structure)
        if not self._overlay:
            return src.read_zero_padded(offset, length)
        buf = bytearray(src.read_zero_padded(offset, length))
        self._overlay.apply(offset, buf)
        return bytes(buf)

    # -- header section -----------------------------------------------------
    def _read_file_identifier(self):
        src = self.source
        ident = src.read(FILE_ID_OFFSET, FILE_ID_CREATOR, "VHDX file type identifier")
        if ident != FILE_ID_SIGNATURE:
            raise CorruptImage(src.path, "VHDX file type identifier", 0,
                               f"signature {ident!r} is not 'vhdxfile'")
        creator = src.read_zero_padded(FILE_ID_CREATOR, FILE_ID_CREATOR_SIZE)
        self.details["creator"] = _utf16(creator)

    def _read_headers(self):
        """Both headers; the valid one with the larger sequence number is current."""
        src = self.source
        path = src.path
        raws, valid, why = [], [], []
        for off in HEADER_OFFSETS:
            if not src.contains(off, HEADER_SIZE):
                raws.append(None)
                valid.append(False)
                why.append(f"header at {off} lies past the end of the file ({src.size})")
                continue
            raw = src.read(off, HEADER_SIZE, "VHDX header")
            raws.append(raw)
            problem = None
            if not _checksum_ok(raw, HDR_CHECKSUM):
                problem = "CRC-32C mismatch"
            elif raw[:4] != HEADER_SIGNATURE:
                problem = f"signature {raw[:4]!r} is not 'head'"
            elif _u(raw, HDR_VERSION, 2) != HEADER_VERSION:
                problem = f"version {_u(raw, HDR_VERSION, 2)} is not 1"
            valid.append(problem is None)
            why.append(f"header at {off}: {problem}" if problem else None)
        if not valid[0] and not valid[1]:
            cls = TruncatedImage if raws[0] is None else CorruptImage
            raise cls(path, "VHDX headers", HEADER_OFFSETS[0],
                      "no valid header: " + "; ".join(why))
        seqs = [_u(r, HDR_SEQUENCE_NUMBER, 8) if v else None for r, v in zip(raws, valid)]
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
        h = {
            "sequence_number": seqs[current],
            "file_write_guid": guid_text(raw[HDR_FILE_WRITE_GUID:HDR_FILE_WRITE_GUID + 16]),
            "data_write_guid": guid_text(raw[HDR_DATA_WRITE_GUID:HDR_DATA_WRITE_GUID + 16]),
            "log_guid": guid_text(raw[HDR_LOG_GUID:HDR_LOG_GUID + 16]),
            "log_version": _u(raw, HDR_LOG_VERSION, 2),
            "version": _u(raw, HDR_VERSION, 2),
            "log_length": _u(raw, HDR_LOG_LENGTH, 4),
            "log_offset": _u(raw, HDR_LOG_OFFSET, 8),
        }
        d = self.details
        d["current_header"] = current + 1
        d["header_sequence_numbers"] = seqs
        d["header"] = h
        return raw

    # -- log ------------------------------------------------------------------
    def _parse_log(self, bytes hdr):
        """Find the active log sequence the way qemu does; replay it in memory."""
        src = self.source
        path = src.path
        log_offset = _u(hdr, HDR_LOG_OFFSET, 8)
        log_length = _u(hdr, HDR_LOG_LENGTH, 4)
        log_guid = hdr[HDR_LOG_GUID:HDR_LOG_GUID + 16]
        where = HEADER_OFFSETS[self.details["current_header"] - 1]
        if log_offset < MiB or log_offset % MiB:
            raise CorruptImage(path, "VHDX header log offset", where + HDR_LOG_OFFSET,
                               f"log offset {log_offset} is not a non-zero multiple of 1 MiB")
        if _u(hdr, HDR_LOG_VERSION, 2) != LOG_VERSION:
            raise UnsupportedFeature(path, "VHDX header log version", where + HDR_LOG_VERSION,
                                     f"log version {_u(hdr, HDR_LOG_VERSION, 2)} is not 0")
        self._regions.append((log_offset, log_length))
        log = {"offset": log_offset, "length": log_length, "entries_replayed": 0}
        self.details["log"] = log
        if log_guid == ZERO_GUID or log_length == 0:
            return
        if log_length % MiB:
            raise CorruptImage(path, "VHDX header log length", where + HDR_LOG_LENGTH,
                               f"log length {log_length} is not a multiple of 1 MiB")
        if log_length > limits.VHDX_MAX_LOG_BYTES:
            raise LimitExceeded(path, "VHDX header log length", where + HDR_LOG_LENGTH,
                                f"log length {log_length} exceeds limits.VHDX_MAX_LOG_BYTES="
                                f"{limits.VHDX_MAX_LOG_BYTES}")
        scan = _LogScan(self, log_offset, log_length, log_guid)
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
    def _parse_region_table(self, uint64_t offset):
        """(entries, problem) for the table at ``offset``."""
        if offset + REGION_TABLE_SIZE > self._eff_size:
            return None, f"region table at {offset} lies past the end of the file"
        raw = self._read(offset, REGION_TABLE_SIZE, "VHDX region table")
        if not _checksum_ok(raw, RT_CHECKSUM):
            return raw, f"region table at {offset}: CRC-32C mismatch"
        if raw[:4] != REGION_SIGNATURE:
            return raw, f"region table at {offset}: signature {raw[:4]!r} is not 'regi'"
        count = _u(raw, RT_ENTRY_COUNT, 4)
        if count > limits.VHDX_MAX_REGION_ENTRIES:
            return raw, (f"region table at {offset}: {count} entries exceed "
                         f"limits.VHDX_MAX_REGION_ENTRIES={limits.VHDX_MAX_REGION_ENTRIES}")
        return raw, None

    def _read_region_tables(self):
        path = self.source.path
        raws, problems = [], []
        for off in REGION_TABLE_OFFSETS:
            raw, problem = self._parse_region_table(off)
            raws.append(raw)
            problems.append(problem)
        if problems[0] and problems[1]:
            cls = (TruncatedImage if raws[0] is None
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
        elif raws[0] != raws[1]:
            self.add_finding(CORRUPT, "warning",
                             "the two VHDX region table copies differ; the first is used "
                             "(as qemu does)")
        raw = raws[use]
        base = REGION_TABLE_OFFSETS[use]
        bat = meta = None
        regions = []
        for i in range(_u(raw, RT_ENTRY_COUNT, 4)):
            e = RT_HEADER_SIZE + i * RT_ENTRY_SIZE
            guid = raw[e + RTE_GUID:e + RTE_GUID + 16]
            off = _u(raw, e + RTE_FILE_OFFSET, 8)
            length = _u(raw, e + RTE_LENGTH, 4)
            required = bool(_u(raw, e + RTE_REQUIRED, 4) & 1)
            where = base + e
            name = ("bat" if guid == BAT_REGION_GUID
                    else "metadata" if guid == METADATA_REGION_GUID else guid_text(guid))
            regions.append({"guid": guid_text(guid), "name": name, "file_offset": off,
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
        table = self._read(moff, METADATA_TABLE_SIZE, "VHDX metadata table")
        if table[:8] != METADATA_SIGNATURE:
            raise CorruptImage(path, "VHDX metadata table", moff,
                               f"signature {table[:8]!r} is not 'metadata'")
        count = _u(table, MT_ENTRY_COUNT, 2)
        if count > limits.VHDX_MAX_METADATA_ENTRIES:
            raise LimitExceeded(path, "VHDX metadata table entry count", moff + MT_ENTRY_COUNT,
                                f"{count} entries exceed limits.VHDX_MAX_METADATA_ENTRIES="
                                f"{limits.VHDX_MAX_METADATA_ENTRIES}")
        items = {}
        for i in range(count):
            e = MT_HEADER_SIZE + i * MT_ENTRY_SIZE
            guid = table[e + MTE_ITEM_ID:e + MTE_ITEM_ID + 16]
            ioff = _u(table, e + MTE_OFFSET, 4)
            ilen = _u(table, e + MTE_LENGTH, 4)
            flags = _u(table, e + MTE_FLAGS, 4)
            where = moff + e
            known = METADATA_ITEMS.get(guid)
            if known is None:
                if flags & MTE_IS_REQUIRED:
                    raise UnsupportedFeature(path, "VHDX metadata table entry", where,
                                             f"metadata item {guid_text(guid)} is marked "
                                             "required but is not one this reader (or qemu) "
                                             "knows")
                continue
            name, need = known
            if name in items:
                raise CorruptImage(path, "VHDX metadata table entry", where,
                                   f"metadata item {name} is listed twice")
            if ilen < need or ioff + ilen > mlen:
                self.add_finding(CORRUPT, "warning",
                                 f"VHDX metadata item {name} (entry at {where}) claims "
                                 f"{ilen} bytes at offset {ioff} of the {mlen}-byte metadata "
                                 f"region; {need} bytes are read there (as qemu does)")
            items[name] = (moff + ioff, ilen, where)
        missing = [n for n in REQUIRED_METADATA if n not in items]
        if missing:
            raise CorruptImage(path, "VHDX metadata table", moff,
                               "required metadata item(s) missing: " + ", ".join(missing))

        def item(name, need):
            return self._read(items[name][0], need, f"VHDX metadata item {name}")

        fp = item("file_parameters", 8)
        block_size = _u(fp, FP_BLOCK_SIZE, 4)
        fp_flags = _u(fp, FP_FLAGS, 4)
        vsize = _u(item("virtual_disk_size", 8), 0, 8)
        lss = _u(item("logical_sector_size", 4), 0, 4)
        pss = _u(item("physical_sector_size", 4), 0, 4)
        page83 = item("page_83_data", 16)
        has_parent = bool(fp_flags & FP_HAS_PARENT)
        leave = bool(fp_flags & FP_LEAVE_BLOCKS_ALLOCATED)
        d = self.details
        d["block_size"] = block_size
        d["leave_blocks_allocated"] = leave
        d["has_parent"] = has_parent
        d["virtual_disk_size"] = vsize
        d["logical_sector_size"] = lss
        d["physical_sector_size"] = pss
        d["virtual_disk_id"] = guid_text(page83)
        fp_at = items["file_parameters"][0]
        if block_size < BLOCK_SIZE_MIN or block_size > BLOCK_SIZE_MAX \
                or block_size & (block_size - 1):
            raise CorruptImage(path, "VHDX file parameters block size", fp_at,
                               f"block size {block_size} is not a power of two from 1 MiB "
                               "to 256 MiB")
        if lss not in LOGICAL_SECTOR_SIZES:
            raise CorruptImage(path, "VHDX logical sector size",
                               items["logical_sector_size"][0],
                               f"logical sector size {lss} is not 512 or 4096")
        if pss not in LOGICAL_SECTOR_SIZES:
            self.add_finding(UNKNOWN_FEATURE, "warning",
                             f"VHDX physical sector size {pss} is not 512 or 4096")
        if vsize > limits.VHDX_MAX_VIRTUAL_SIZE:
            raise LimitExceeded(path, "VHDX virtual disk size", items["virtual_disk_size"][0],
                                f"virtual size {vsize} exceeds limits.VHDX_MAX_VIRTUAL_SIZE="
                                f"{limits.VHDX_MAX_VIRTUAL_SIZE} (the spec's 64 TiB)")
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
            if "parent_locator" not in items:
                raise CorruptImage(path, "VHDX metadata table", moff,
                                   "HasParent is set but there is no parent locator item")
            self._read_parent_locator(*items["parent_locator"])
        elif "parent_locator" in items:
            self.add_finding(CORRUPT, "info",
                             "the VHDX has a parent locator but HasParent is not set; "
                             "it is ignored")

    def _read_parent_locator(self, uint64_t off, uint64_t length, uint64_t where):
        path = self.source.path
        if length > limits.VHDX_MAX_PARENT_LOCATOR_BYTES:
            raise LimitExceeded(path, "VHDX parent locator", off,
                                f"{length} bytes exceed limits.VHDX_MAX_PARENT_LOCATOR_BYTES="
                                f"{limits.VHDX_MAX_PARENT_LOCATOR_BYTES}")
        raw = self._read(off, length, "VHDX parent locator")
        count = _u(raw, PL_KEY_VALUE_COUNT, 2)
        if count > limits.VHDX_MAX_PARENT_LOCATOR_ENTRIES:
            raise LimitExceeded(path, "VHDX parent locator", off + PL_KEY_VALUE_COUNT,
                                f"{count} entries exceed limits.VHDX_MAX_PARENT_LOCATOR_ENTRIES"
                                f"={limits.VHDX_MAX_PARENT_LOCATOR_ENTRIES}")
        if PL_HEADER_SIZE + count * PL_ENTRY_SIZE > length:
            raise CorruptImage(path, "VHDX parent locator", off,
                               f"{count} key/value entries do not fit in its {length} bytes")
        locator_type = raw[PL_LOCATOR_TYPE:PL_LOCATOR_TYPE + 16]
        entries = {}
        for i in range(count):
            e = PL_HEADER_SIZE + i * PL_ENTRY_SIZE
            ko, vo = _u(raw, e + PLE_KEY_OFFSET, 4), _u(raw, e + PLE_VALUE_OFFSET, 4)
            kl, vl = _u(raw, e + PLE_KEY_LENGTH, 2), _u(raw, e + PLE_VALUE_LENGTH, 2)
            if ko + kl > length or vo + vl > length:
                self.add_finding(CORRUPT, "warning",
                                 f"VHDX parent locator entry {i} (at {off + e}) points past "
                                 f"the {length}-byte item; skipped")
                continue
            key = _utf16(raw[ko:ko + kl])
            if key in entries:
                self.add_finding(CORRUPT, "warning",
                                 f"VHDX parent locator key {key!r} appears more than once; "
                                 "the first is used")
                continue
            entries[key] = _utf16(raw[vo:vo + vl])
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
        if self._overlay:
            bat = self._read(boff, entries * BAT_ENTRY_SIZE, "VHDX BAT")
        else:
            bat = src.view(boff, entries * BAT_ENTRY_SIZE, "VHDX BAT")
        st = WalkStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        c.f = NULL
        c.fsize = 0
        c.n_ov = len(self._overlay)
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
        regions = sorted((o, o + n) for o, n in self._regions if n)
        a_rs = array("Q", [r[0] for r in regions])
        a_re = array("Q", [r[1] for r in regions])
        rs, re = a_rs, a_re
        c.reg_start, c.reg_end, c.n_reg = &rs[0], &re[0], len(regions)
        with nogil:
            rc = _walk_bat(emap, &bat[0], nblocks, chunk_ratio, block_size, lss, vsize,
                           has_parent, eff, &c, &st)
        if rc < 0:
            raise LimitExceeded(src.path, "VHDX BAT", boff,
                                f"the extent map exceeds limits.MAX_EXTENTS={limits.MAX_EXTENTS}")
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


# --------------------------------------------------------------------------
# Log search and in-memory replay (spec 2.3; qemu block/vhdx-log.c)
# --------------------------------------------------------------------------

class _LogScan:
    """The circular log, read once; its entries validated as qemu validates them."""

    def __init__(self, img, uint64_t log_offset, uint64_t log_length, bytes log_guid):
        src = img.source
        self.img = img
        self.path = src.path
        self.offset = log_offset
        self.nsect = log_length // LOG_SECTOR_SIZE
        self.guid = log_guid
        # only the part of the log inside the file is read; the rest is zeros
        avail = 0
        if log_offset < src.size:
            avail = min(log_length, src.size - log_offset)
        self.avail = avail
        self.buf = src.view(log_offset, avail, "VHDX log") if avail else b""
        self.memo = {}
        self.steps = 0
        self.crc_bytes = 0

    def sector(self, uint64_t i):
        """Log sector ``i`` (4096 bytes)."""
        cdef uint64_t s = i * LOG_SECTOR_SIZE
        if s + LOG_SECTOR_SIZE <= self.avail:
            return self.buf[s:s + LOG_SECTOR_SIZE]
        if s >= self.avail:
            return bytes(LOG_SECTOR_SIZE)
        return bytes(self.buf[s:self.avail]) + bytes(s + LOG_SECTOR_SIZE - self.avail)

    def file_pos(self, uint64_t i):
        return self.offset + i * LOG_SECTOR_SIZE

    def header(self, uint64_t i):
        """The entry header at sector ``i`` as a dict, or None where qemu finds it invalid."""
        h = bytes(self.sector(i)[:LOG_ENTRY_HEADER_SIZE])
        if h[:4] != LOG_ENTRY_SIGNATURE:
            return None
        entry_length = _u(h, LE_ENTRY_LENGTH, 4)
        count = _u(h, LE_DESCRIPTOR_COUNT, 4)
        seq = _u(h, LE_SEQUENCE_NUMBER, 8)
        if (entry_length > self.nsect * LOG_SECTOR_SIZE or entry_length % LOG_SECTOR_SIZE
                or seq == 0 or h[LE_LOG_GUID:LE_LOG_GUID + 16] != self.guid
                or count * LOG_DESCRIPTOR_SIZE > entry_length):
            return None
        return {"seq": seq, "entry_length": entry_length, "count": count,
                "checksum": _u(h, LE_CHECKSUM, 4),
                "flushed_file_offset": _u(h, LE_FLUSHED_FILE_OFFSET, 8),
                "last_file_offset": _u(h, LE_LAST_FILE_OFFSET, 8)}

    def descriptors(self, uint64_t i, hdr):
        """The entry's descriptor sectors (bytes) and their count; CorruptImage if invalid."""
        count = hdr["count"]
        dsect = (count + 2 + 127) // 128
        raw = b"".join(bytes(self.sector((i + k) % self.nsect)) for k in range(dsect))
        descs = []
        for k in range(count):
            p = LOG_ENTRY_HEADER_SIZE + k * LOG_DESCRIPTOR_SIZE
            d = raw[p:p + LOG_DESCRIPTOR_SIZE]
            sig = d[:4]
            foff = _u(d, DESC_FILE_OFFSET, 8)
            ok = (_u(d, DESC_SEQUENCE_NUMBER, 8) == hdr["seq"] and foff % LOG_SECTOR_SIZE == 0
                  and (sig == DESC_SIGNATURE_DATA
                       or (sig == DESC_SIGNATURE_ZERO
                           and _u(d, DESC_ZERO_LENGTH, 8) % LOG_SECTOR_SIZE == 0)))
            if not ok:
                raise CorruptImage(self.path, "VHDX log descriptor",
                                   self.file_pos((i + p // LOG_SECTOR_SIZE) % self.nsect)
                                   + p % LOG_SECTOR_SIZE,
                                   f"descriptor {k} of log entry {hdr['seq']} is invalid "
                                   "(signature, sequence number or alignment); qemu refuses "
                                   "the image")
            descs.append((sig, foff, _u(d, DESC_ZERO_LENGTH, 8), p))
        return raw, dsect, descs

    def _entry(self, uint64_t i):
        """Sequence-independent validation of the entry at ``i``, memoised.

        Returns ``(hdr or None, next sector, checksum ok, descriptor error)``.
        """
        cdef const uint8_t[::1] view
        cdef uint32_t crc
        got = self.memo.get(i)
        if got is not None:
            return got
        hdr = self.header(i)
        if hdr is None:
            got = (None, (i + 1) % self.nsect, False, None)
        else:
            try:
                raw, dsect, _ = self.descriptors(i, hdr)
            except CorruptImage as exc:
                got = (hdr, None, False, exc)
            else:
                total = hdr["entry_length"] // LOG_SECTOR_SIZE
                view = raw
                crc = crc32c_zeroed(&view[0], len(raw), LE_CHECKSUM) ^ <uint32_t>0xFFFFFFFF
                for k in range(dsect, total):
                    view = bytes(self.sector((i + k) % self.nsect))
                    crc = crc32c_update(crc, &view[0], LOG_SECTOR_SIZE)
                crc ^= <uint32_t>0xFFFFFFFF
                self.crc_bytes += max(total, dsect) * LOG_SECTOR_SIZE
                if self.crc_bytes > limits.VHDX_MAX_LOG_SCAN_BYTES:
                    raise LimitExceeded(self.path, "VHDX log", self.offset,
                                        "checking the log's entries would checksum more than "
                                        "limits.VHDX_MAX_LOG_SCAN_BYTES="
                                        f"{limits.VHDX_MAX_LOG_SCAN_BYTES} bytes")
                got = (hdr, (i + max(total, dsect)) % self.nsect, crc == hdr["checksum"], None)
        self.memo[i] = got
        return got

    def validate(self, uint64_t i, uint64_t seq):
        """qemu's vhdx_validate_log_entry: (valid, hdr, next sector)."""
        self.steps += 1
        if self.steps > limits.VHDX_MAX_LOG_SCAN_STEPS:
            raise LimitExceeded(self.path, "VHDX log", self.offset,
                                "the search for the active log sequence exceeds "
                                f"limits.VHDX_MAX_LOG_SCAN_STEPS={limits.VHDX_MAX_LOG_SCAN_STEPS}")
        hdr, nxt, crc_ok, desc_error = self._entry(i)
        if hdr is None or (seq > 0 and hdr["seq"] != seq + 1):
            return False, None, (i + 1) % self.nsect
        if desc_error is not None:
            raise desc_error
        return crc_ok, hdr, nxt

    def search(self):
        """The active sequence, as qemu's vhdx_log_search finds it.

        Returns ``(first sector, entry count, first sequence number)`` or None.
        qemu compares sequences by their first entry's number and, after the
        first entry, does not check the second's number; both are kept. Where
        qemu would scan forever (a pass that ends exactly where it began), the
        scan is refused.
        """
        cdef uint64_t pos = 0, tail, curr_seq
        candidate = None
        seen = set()
        while True:
            tail = pos
            if tail in seen:
                raise CorruptImage(self.path, "VHDX log", self.file_pos(tail),
                                   "the log's entries lead the search for the active sequence "
                                   "round in a circle (qemu never finishes opening this image)")
            seen.add(tail)
            curr_seq = 0
            valid, hdr, pos = self.validate(pos, 0)
            if valid:
                first_seq = hdr["seq"]
                count = 1
                while True:
                    valid, hdr2, nxt = self.validate(pos, curr_seq)
                    pos = nxt
                    if not valid:
                        break
                    count += 1
                    curr_seq = hdr2["seq"]
                if candidate is None or first_seq > candidate[2]:
                    candidate = (tail, count, first_seq)
            if pos < tail:
                break
        return candidate

    def replay(self, uint64_t start, uint64_t count):
        """Apply the sequence's descriptors in order to the image's overlay."""
        img = self.img
        ov = img._overlay
        cdef uint64_t pos = start, foff, n, k
        for _ in range(count):
            entry_start = pos
            hdr = self.header(pos)
            if hdr is None:
                raise CorruptImage(self.path, "VHDX log entry", self.file_pos(pos),
                                   "an entry of the active sequence is not where replay finds "
                                   "it; qemu refuses the image")
            if hdr["flushed_file_offset"] > img._eff_size:
                raise TruncatedImage(self.path, "VHDX log entry", self.file_pos(pos),
                                     f"entry {hdr['seq']} was written when the file was "
                                     f"{hdr['flushed_file_offset']} bytes long, but it is "
                                     f"{img._eff_size}: the file has been truncated (qemu "
                                     "refuses it)")
            raw, dsect, descs = self.descriptors(pos, hdr)
            pos = (pos + dsect) % self.nsect
            for sig, foff, zero_length, p in descs:
                if sig == DESC_SIGNATURE_DATA:
                    data = bytes(self.sector(pos))
                    dpos = self.file_pos(pos)
                    pos = (pos + 1) % self.nsect
                    dseq = (_u(data, DS_SEQUENCE_HIGH, 4) << 32) | _u(data, DS_SEQUENCE_LOW, 4)
                    if dseq != hdr["seq"]:
                        raise CorruptImage(self.path, "VHDX log data sector", dpos,
                                           f"sequence number {dseq} is not the entry's "
                                           f"{hdr['seq']}; qemu refuses the image")
                    desc = raw[p:p + LOG_DESCRIPTOR_SIZE]
                    sector = (desc[DESC_LEADING_BYTES:DESC_LEADING_BYTES + 8]
                              + data[DS_DATA:DS_DATA + DS_DATA_SIZE]
                              + desc[DESC_TRAILING_BYTES:DESC_TRAILING_BYTES + 4])
                    desc_file = self._desc_file_pos(entry_start, p)
                    ov.write(foff, foff + LOG_SECTOR_SIZE, (OV_DATA, desc_file, dpos, sector))
                    end = foff + LOG_SECTOR_SIZE
                else:
                    if foff + zero_length >= 1 << 63:
                        raise CorruptImage(self.path, "VHDX log descriptor",
                                           self._desc_file_pos(entry_start, p),
                                           f"zero descriptor of {zero_length} bytes at "
                                           f"{foff} overflows")
                    if zero_length:
                        ov.write(foff, foff + zero_length, (OV_ZERO, 0, 0, None))
                    end = foff + zero_length
                if end > img._eff_size:
                    img._eff_size = end
            last = hdr["last_file_offset"]
            if img._eff_size < last and last % MiB:
                img._eff_size = (last // MiB + 1) * MiB
        return None

    def _desc_file_pos(self, uint64_t entry_start, uint64_t p):
        """File offset of byte ``p`` of the descriptor sectors of the entry at ``entry_start``."""
        return self.file_pos((entry_start + p // LOG_SECTOR_SIZE) % self.nsect) \
            + p % LOG_SECTOR_SIZE


def probe(Source source):
    """``vhdxfile`` at offset 0 (qemu's probe)."""
    return source.contains(0, 8) and source.read(0, 8, "VHDX file type identifier") \
        == FILE_ID_SIGNATURE


FORMAT = Format("vhdx", probe, VhdxImage)

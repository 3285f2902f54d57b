"""VMDK containers (VMware virtual disks).

Spec: VMware "Virtual Disk Format 1.1" (hosted sparse extents, the
descriptor, stream-optimized compressed sparse extents); ESX's older COWD
sparse extents and ESXi's seSparse extents as qemu 7.2 reads them
(``block/vmdk.c``). All on-disk integers are little-endian; offsets and sizes
in headers and tables count 512-byte sectors.

A VMDK disk is a *descriptor* (text: see :mod:`vmdk_descriptor`) listing
*extents*. The descriptor is either a file of its own (monolithicFlat,
twoGbMaxExtentSparse/Flat, vmfs, vmfsSparse, seSparse) whose extents are other
files, or embedded in a *hosted sparse extent* (monolithicSparse,
streamOptimized) that is the whole disk. A sparse extent starts with a
512-byte header (magic ``KDMV``) and maps grains (clusters) through a
two-level table: the *grain directory* (GD) of 32-bit sector numbers of
*grain tables* (GT), whose ``numGTEsPerGT`` entries are the grains' sector
numbers (0: unallocated; 1 with the zeroed-grain flag: reads as zeros).
streamOptimized extents compress every grain (zlib), each led by a *grain
marker* (LBA and stored size), and may put the GD at the end of the stream,
found through a *footer*: a copy of the header in the second-to-last sector.

Where the spec leaves room this decoder does what qemu 7.2 does, so that
``imgscan`` and ``qemu-img -f vmdk`` agree: createType and
parentFileNameHint are read qemu's way (first occurrence of the name in the
text), the primary grain directory is walked (the redundant one only
described), the footer replaces the header when the GD is at the end, and
``subformat`` is qemu's create type (monolithicSparse or streamOptimized for
a sparse file, whatever its embedded descriptor says).

It departs from qemu where qemu misreads or refuses a disk an inspector
should describe: RDONLY and NOACCESS extents and ZERO extents are part of the
disk as the spec says (qemu 7.2 skips the former and aborts on the latter);
grain tables that overlap the grain directory or each other are refused as
corrupt (qemu reads them); a grain marker whose LBA is not the grain's, and
descriptor readings that differ, are findings.

Other files are never opened here: :class:`imgscan.Image` opens
:meth:`VmdkImage.external_files` inside the caller's ``external_dir`` and
hands them over (:meth:`attach_external_sources`) before the map is built;
without them the descriptor still gives the facts and the map marks those
ranges as stored in the external files.
"""

cimport cython
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcpy
from posix.unistd cimport pread

from imgscan import limits
from imgscan.errors import (
    CorruptImage, ImageError, LimitExceeded, TruncatedImage, UnsupportedFeature, UnsupportedFormat,
)
from imgscan.findings import (
    CORRUPT, DESCRIPTOR_AMBIGUOUS, EXTERNAL_EXTENT, FOOTER_MISMATCH,
    SIZE_MISMATCH, TRUNCATED, UNKNOWN_FEATURE,
)

from .binary cimport le32, le64
from .container import Container, Format
from .inflate import StreamError, zlib_bounded
from .extents cimport ExtentMap, KIND_COMPRESSED, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST
from .paths import unsafe_reason
from .raw import map_host_range
from .source cimport Source
from . import vmdk_descriptor as vd

# --------------------------------------------------------------------------
# On-disk layout. Offsets are bytes from the start of the structure.
# --------------------------------------------------------------------------

SECTOR_SIZE = 512
cdef uint64_t C_SECTOR = 512

#: Hosted sparse extent header (spec: "SparseExtentHeader").
SPARSE_MAGIC = b"KDMV"
SPARSE_HEADER_SIZE = 512
#: qemu reads the 4-byte magic and a 75-byte header; a shorter file is truncated.
SPARSE_HEADER_MIN = 79
H_VERSION = 4
H_FLAGS = 8
H_CAPACITY = 12
H_GRAIN_SIZE = 20
H_DESCRIPTOR_OFFSET = 28
H_DESCRIPTOR_SIZE = 36
H_NUM_GTES_PER_GT = 44
H_RGD_OFFSET = 48
H_GD_OFFSET = 56
H_OVERHEAD = 64
H_UNCLEAN_SHUTDOWN = 72
H_SINGLE_END_LINE_CHAR = 73
H_NON_END_LINE_CHAR = 74
H_DOUBLE_END_LINE_CHAR1 = 75
H_DOUBLE_END_LINE_CHAR2 = 76
H_COMPRESS_ALGORITHM = 77
#: The newline-detection characters, as written in binary mode ("\n", " ", "\r\n").
NEWLINE_TEST = b"\n \r\n"

FLAG_VALID_NEWLINE_TEST = 1 << 0
FLAG_REDUNDANT_GRAIN_TABLE = 1 << 1
FLAG_ZEROED_GRAIN_GTE = 1 << 2
FLAG_COMPRESSED_GRAINS = 1 << 16
FLAG_MARKERS = 1 << 17
KNOWN_FLAGS = (FLAG_VALID_NEWLINE_TEST | FLAG_REDUNDANT_GRAIN_TABLE | FLAG_ZEROED_GRAIN_GTE
               | FLAG_COMPRESSED_GRAINS | FLAG_MARKERS)
FLAG_NAMES = ((FLAG_VALID_NEWLINE_TEST, "valid_newline_test"),
              (FLAG_REDUNDANT_GRAIN_TABLE, "redundant_grain_table"),
              (FLAG_ZEROED_GRAIN_GTE, "zeroed_grain_gte"),
              (FLAG_COMPRESSED_GRAINS, "compressed_grains"),
              (FLAG_MARKERS, "markers"))

COMPRESSION_NONE = 0
COMPRESSION_DEFLATE = 1
#: Highest header version qemu reads (3 adds changed-block tracking, read-only).
MAX_VERSION = 3
#: gdOffset meaning "the grain directory is at the end of the stream: see the footer".
GD_AT_END = 0xFFFFFFFFFFFFFFFF

#: Grain table entry of a grain that reads as zeros (with FLAG_ZEROED_GRAIN_GTE).
cdef uint32_t GTE_ZEROED = 1
GT_ENTRY_SIZE = 4
GD_ENTRY_SIZE = 4

#: Stream-optimized markers: val (LBA, or sectors of metadata), size, type (when size is 0).
MARKER_SIZE = 512
M_VAL = 0
M_SIZE = 8
M_TYPE = 12
#: A grain marker's data follows its 12-byte head.
GRAIN_MARKER_HEAD = 12
cdef uint64_t C_GRAIN_MARKER_HEAD = 12
MARKER_EOS = 0
MARKER_GT = 1
MARKER_GD = 2
MARKER_FOOTER = 3
#: The footer marker, the footer (a header copy) and the end-of-stream marker end the file.
FOOTER_AREA = 3 * MARKER_SIZE

#: ESX's old sparse extent (qemu's "VMDK3"): magic, then 32-bit fields.
COWD_MAGIC = b"COWD"
COWD_HEADER_MIN = 44
C_VERSION = 4
C_FLAGS = 8
C_CAPACITY = 12
C_GRANULARITY = 16
C_GD_OFFSET = 20
C_GD_SIZE = 24
C_FILE_SECTORS = 28
#: COWD grain tables hold 4096 entries (qemu).
COWD_GTES_PER_GT = 4096

#: ESXi seSparse constant header (qemu's VMDKSESparseConstHeader): 64-bit fields.
SESPARSE_MAGIC = 0xCAFEBABE
SESPARSE_VERSION = 0x200000001
SE_CAPACITY = 16
SE_GRAIN_SIZE = 24
SE_GRAIN_TABLE_SIZE = 32
SE_FLAGS = 40
SE_GRAIN_DIR_OFFSET = 128
SE_GRAIN_DIR_SIZE = 136
SE_GRAIN_TABLES_OFFSET = 144
SE_GRAINS_OFFSET = 192

#: The first bytes of a descriptor file (spec), and what qemu's probe accepts first.
DESCRIPTOR_SIGNATURE = b"# Disk DescriptorFile"
PROBE_BYTES = 2048


# --------------------------------------------------------------------------
# The grain directory walk
# --------------------------------------------------------------------------

cdef struct WalkResult:
    uint64_t bad_index      # GD entry of the failing GT (rc -2/-3/-4)
    uint64_t bad_offset     # its byte offset
    uint64_t past_eof       # grains (partly) past the end of the file
    uint64_t first_past_eof
    uint64_t lba_mismatch   # grain markers whose LBA is not the grain's
    uint64_t first_lba_mismatch


cdef int _cmp_u64(const void* a, const void* b) noexcept nogil:
    cdef uint64_t x = (<const uint64_t*>a)[0]
    cdef uint64_t y = (<const uint64_t*>b)[0]
    return (x > y) - (x < y)


@cython.cdivision(True)
cdef int _check_gts(const uint8_t* gd, uint64_t n, uint64_t gt_bytes, uint64_t gd_start,
                    uint64_t gd_end, uint64_t fsize, WalkResult* r) noexcept nogil:
    """Every GT inside the file, clear of the header and the GD, and of every other GT.

    Returns 0, -2 (past the end), -3 (over the header or the GD), -4 (two GTs
    overlap: a table shared or looped back into) or -5 (out of memory).
    """
    cdef uint64_t* offs = <uint64_t*>malloc((n if n else 1) * sizeof(uint64_t))
    cdef uint64_t i, k = 0, off
    if offs == NULL:
        return -5
    for i in range(n):
        off = <uint64_t>le32(gd + 4 * i) * C_SECTOR
        if off == 0:
            continue
        r.bad_index = i
        r.bad_offset = off
        if off + gt_bytes > fsize:
            free(offs)
            return -2
        if off < C_SECTOR or (off < gd_end and off + gt_bytes > gd_start):
            free(offs)
            return -3
        offs[k] = off
        k += 1
    qsort(offs, k, sizeof(uint64_t), _cmp_u64)
    for i in range(1, k):
        if offs[i] < offs[i - 1] + gt_bytes:
            r.bad_offset = offs[i]
            for k in range(n):
                if <uint64_t>le32(gd + 4 * k) * C_SECTOR == offs[i]:
                    r.bad_index = k
                    break
            free(offs)
            return -4
    free(offs)
    return 0


cdef inline uint64_t _zero_run_end(const uint8_t* gt, uint64_t j, uint64_t n) noexcept nogil:
    """The first entry at or after ``j`` (of ``n``) that is not 0, or ``n``."""
    cdef uint64_t word
    while j < n and (j & 1):
        if le32(gt + 4 * j) != 0:
            return j
        j += 1
    while j + 2 <= n:
        memcpy(&word, gt + 4 * j, 8)
        if word != 0:
            break
        j += 2
    while j < n and le32(gt + 4 * j) == 0:
        j += 1
    return j


#: Grain tables are read with pread into one reusable buffer of this size, a run
#: of tables that follow each other on disk at a time: a 100 GiB image has 3200
#: tables of 2 KiB, and faulting them in page by page (fresh memory or a map)
#: costs several times more than copying them into pages already touched.
cdef uint64_t GT_WINDOW = 256 * 1024


cdef struct GtWindow:
    int fd
    uint8_t* buf
    uint64_t cap
    uint64_t lo
    uint64_t hi


@cython.cdivision(True)
cdef const uint8_t* _gt_at(GtWindow* w, const uint8_t* gd, uint64_t n, uint64_t i,
                           uint64_t off, uint64_t gt_bytes) noexcept nogil:
    """The grain table at ``off`` (GD entry ``i``), read with the tables after it; NULL on error.

    The read extends over the tables of the next GD entries while they lie
    after this one within the window, so tables laid out in order (as every
    writer does) cost one read per 256 KiB.
    """
    cdef uint64_t end, k, nxt, done = 0
    cdef ssize_t got
    if off >= w.lo and off + gt_bytes <= w.hi:
        return w.buf + (off - w.lo)
    end = off + gt_bytes
    k = i + 1
    while k < n:
        nxt = <uint64_t>le32(gd + 4 * k) * C_SECTOR
        k += 1
        if nxt == 0:
            continue
        if nxt < off or nxt + gt_bytes - off > w.cap:
            break
        if nxt + gt_bytes > end:
            end = nxt + gt_bytes
    while done < end - off:
        got = pread(w.fd, w.buf + done, end - off - done, off + done)
        if got <= 0:
            return NULL
        done += got
    w.lo = off
    w.hi = end
    return w.buf


@cython.cdivision(True)
@cython.boundscheck(False)
cdef int _walk_gd(ExtentMap emap, const uint8_t* gd, uint64_t n, GtWindow* w,
                  const uint8_t* f, uint64_t fsize, uint64_t guest_base, uint64_t length,
                  uint64_t grain, uint64_t gtes, uint32_t file, bint zeroed_gte,
                  bint compressed, bint markers, WalkResult* r) noexcept nogil:
    """Append the runs of one sparse extent: ``length`` guest bytes from ``guest_base``.

    Grain tables come through ``w`` (they were checked by :func:`_check_gts`);
    ``f`` is the whole file, needed only for grain markers (``markers``), and
    ``fsize`` its size. Returns -1 when the extent map is full, -6 when a
    grain table could not be read.
    """
    cdef uint64_t span = gtes * grain
    cdef uint64_t i, j, k, pos, end, glen, host, size, ngr
    cdef const uint8_t* gt
    cdef uint32_t gte, gt_sector
    for i in range(n):
        pos = i * span
        if pos >= length:
            break
        end = pos + span
        if end > length:
            end = length
        gt_sector = le32(gd + 4 * i)
        if gt_sector == 0:
            if emap.add(guest_base + pos, end - pos, KIND_UNALLOCATED, NO_HOST, file, 0) < 0:
                return -1
            continue
        gt = _gt_at(w, gd, n, i, <uint64_t>gt_sector * C_SECTOR, gtes * 4)
        if gt == NULL:
            r.bad_index = i
            r.bad_offset = <uint64_t>gt_sector * C_SECTOR
            return -6
        ngr = (end - pos + grain - 1) // grain
        j = 0
        while j < ngr:
            glen = end - pos
            if glen > grain:
                glen = grain
            gte = le32(gt + 4 * j)
            if gte == 0:
                # Most entries of a sparse disk are 0: take the whole run at once.
                k = _zero_run_end(gt, j + 1, ngr)
                glen = (k - j) * grain
                if glen > end - pos:
                    glen = end - pos
                if emap.add(guest_base + pos, glen, KIND_UNALLOCATED, NO_HOST, file, 0) < 0:
                    return -1
                pos += glen
                j = k
                continue
            elif gte == GTE_ZEROED and zeroed_gte:
                if emap.add(guest_base + pos, glen, KIND_ZERO, NO_HOST, file, 0) < 0:
                    return -1
            elif compressed:
                host = <uint64_t>gte * C_SECTOR
                size = 0
                if markers:
                    if host + C_GRAIN_MARKER_HEAD <= fsize:
                        if le64(f + host) != pos // C_SECTOR:
                            if r.lba_mismatch == 0:
                                r.first_lba_mismatch = guest_base + pos
                            r.lba_mismatch += 1
                        size = le32(f + host + 8)
                    host += C_GRAIN_MARKER_HEAD
                    if host + size > fsize:
                        if r.past_eof == 0:
                            r.first_past_eof = guest_base + pos
                        r.past_eof += 1
                elif host < fsize:
                    size = fsize - host
                    if size > 2 * grain:
                        size = 2 * grain
                if emap.add(guest_base + pos, glen, KIND_COMPRESSED, host, file, size) < 0:
                    return -1
            else:
                host = <uint64_t>gte * C_SECTOR
                if host + glen > fsize:
                    if r.past_eof == 0:
                        r.first_past_eof = guest_base + pos
                    r.past_eof += 1
                if emap.add(guest_base + pos, glen, KIND_DATA, host, file, 0) < 0:
                    return -1
            pos += glen
            j += 1
    if n * span < length:
        # Never for KDMV (its GD is sized from the capacity) nor COWD (checked at open).
        return emap.add(guest_base + n * span, length - n * span, KIND_UNALLOCATED, NO_HOST,
                        file, 0)
    return 0


# --------------------------------------------------------------------------
# Sparse extent headers
# --------------------------------------------------------------------------

class SparseHeader:
    """The fields of one sparse extent's header (KDMV or COWD), in bytes where sizes."""

    __slots__ = ("kind", "version", "flags", "capacity", "grain", "desc_offset", "desc_size",
                 "gtes", "rgd_offset", "gd_offset", "overhead", "compress", "gd_entries",
                 "zeroed_gte", "compressed", "markers", "newline", "unclean")

    def as_dict(self):
        d = {"version": self.version, "flags": self.flags,
             "capacity": self.capacity // SECTOR_SIZE, "grain_size": self.grain // SECTOR_SIZE,
             "num_gtes_per_gt": self.gtes, "gd_offset": self.gd_offset // SECTOR_SIZE,
             "gd_entries": self.gd_entries}
        if self.kind == "KDMV":
            d["flag_names"] = [name for bit, name in FLAG_NAMES if self.flags & bit]
            d.update({"descriptor_offset": self.desc_offset // SECTOR_SIZE,
                      "descriptor_size": self.desc_size // SECTOR_SIZE,
                      "rgd_offset": self.rgd_offset // SECTOR_SIZE,
                      "overhead": self.overhead,
                      "unclean_shutdown": self.unclean,
                      "compress_algorithm": self.compress})
        return d


def _le(bytes b, Py_ssize_t off, Py_ssize_t size):
    return int.from_bytes(b[off:off + size], "little")


def _kdmv_fields(bytes h):
    return {
        "version": _le(h, H_VERSION, 4), "flags": _le(h, H_FLAGS, 4),
        "capacity": _le(h, H_CAPACITY, 8), "grain": _le(h, H_GRAIN_SIZE, 8),
        "desc_offset": _le(h, H_DESCRIPTOR_OFFSET, 8), "desc_size": _le(h, H_DESCRIPTOR_SIZE, 8),
        "gtes": _le(h, H_NUM_GTES_PER_GT, 4), "rgd_offset": _le(h, H_RGD_OFFSET, 8),
        "gd_offset": _le(h, H_GD_OFFSET, 8), "overhead": _le(h, H_OVERHEAD, 8),
        "unclean": bool(h[H_UNCLEAN_SHUTDOWN]),
        "newline": h[H_SINGLE_END_LINE_CHAR:H_DOUBLE_END_LINE_CHAR2 + 1],
        "compress": _le(h, H_COMPRESS_ALGORITHM, 2),
    }


def read_sparse_header(container, Source src, str label):
    """Parse and check the sparse header of ``src``; findings go to ``container``.

    ``label`` names the extent file in messages. Raises for what qemu refuses
    (and for tables that could not be walked safely).
    """
    path = container.path
    size = src.size
    if size < 4:
        raise TruncatedImage(path, f"{label} sparse header", 0,
                             f"the file holds {size} bytes, fewer than the 4-byte magic")
    magic = src.read(0, 4, f"{label} sparse header")
    if magic == COWD_MAGIC:
        return _read_cowd_header(container, src, label)
    if magic != SPARSE_MAGIC:
        raise CorruptImage(path, f"{label} sparse header", 0,
                           f"magic {magic!r} is not 'KDMV' or 'COWD'")
    if size < SPARSE_HEADER_MIN:
        raise TruncatedImage(path, f"{label} sparse header", 0,
                             f"the file holds {size} bytes; the header needs {SPARSE_HEADER_MIN}")
    h = src.read_zero_padded(0, SPARSE_HEADER_SIZE)
    f = _kdmv_fields(h)
    structure = f"{label} sparse header"
    hdr_base = 0
    if f["gd_offset"] == GD_AT_END:
        f, hdr_base = _read_footer(container, src, label, f)
        structure = f"{label} footer"
    else:
        _footer_beside_header(container, src, label, f)
    version = f["version"]
    if version > MAX_VERSION:
        container.add_finding(UNKNOWN_FEATURE, "error",
                              f"{label}: sparse header version {version} is newer than 3")
        raise UnsupportedFeature(path, structure, hdr_base + H_VERSION,
                                 f"VMDK sparse extent version {version} is not 1, 2 or 3")
    flags = f["flags"]
    unknown = flags & ~KNOWN_FLAGS
    if unknown:
        container.add_finding(UNKNOWN_FEATURE, "warning",
                              f"{label}: sparse header flag bits 0x{unknown:08x} are not in the "
                              "spec")
    if flags & FLAG_VALID_NEWLINE_TEST and f["newline"] != NEWLINE_TEST:
        container.add_finding(
            CORRUPT, "error",
            f"{label}: the newline-detection characters are {f['newline']!r}, not "
            f"{NEWLINE_TEST!r}: the file was probably copied in text mode and is damaged")
    gtes = f["gtes"]
    grain_sectors = f["grain"]
    if gtes > limits.VMDK_MAX_GTES_PER_GT:
        raise CorruptImage(path, structure, hdr_base + H_NUM_GTES_PER_GT,
                           f"numGTEsPerGT {gtes} exceeds limits.VMDK_MAX_GTES_PER_GT="
                           f"{limits.VMDK_MAX_GTES_PER_GT} (qemu: L2 table size too big)")
    if gtes == 0 or grain_sectors == 0:
        raise CorruptImage(path, structure, hdr_base + H_GRAIN_SIZE,
                           f"grain size {grain_sectors} sectors, {gtes} entries per grain table:"
                           " a grain table must map at least one sector")
    if grain_sectors > limits.VMDK_MAX_GRAIN_SECTORS:
        raise CorruptImage(path, structure, hdr_base + H_GRAIN_SIZE,
                           f"grain size {grain_sectors} sectors exceeds "
                           f"limits.VMDK_MAX_GRAIN_SECTORS={limits.VMDK_MAX_GRAIN_SECTORS}")
    h_out = SparseHeader()
    h_out.kind = "KDMV"
    h_out.version = version
    h_out.flags = flags
    h_out.newline = f["newline"]
    h_out.unclean = f["unclean"]
    h_out.compress = f["compress"]
    h_out.gtes = gtes
    h_out.grain = grain_sectors * SECTOR_SIZE
    h_out.desc_offset = f["desc_offset"] * SECTOR_SIZE
    h_out.desc_size = f["desc_size"] * SECTOR_SIZE
    h_out.rgd_offset = f["rgd_offset"] * SECTOR_SIZE
    h_out.gd_offset = f["gd_offset"] * SECTOR_SIZE
    h_out.overhead = f["overhead"]
    h_out.zeroed_gte = bool(flags & FLAG_ZEROED_GRAIN_GTE)
    # qemu decides by compressAlgorithm, not by the flag
    h_out.compressed = h_out.compress == COMPRESSION_DEFLATE
    h_out.markers = bool(flags & FLAG_MARKERS)
    if h_out.compress not in (COMPRESSION_NONE, COMPRESSION_DEFLATE):
        container.add_finding(UNKNOWN_FEATURE, "error",
                              f"{label}: compressAlgorithm {h_out.compress} is not deflate (1)")
    if h_out.compressed and h_out.grain > limits.MAX_DECOMPRESSED_CLUSTER:
        raise LimitExceeded(path, structure, hdr_base + H_GRAIN_SIZE,
                            f"compressed grains of {h_out.grain} bytes exceed "
                            f"limits.MAX_DECOMPRESSED_CLUSTER={limits.MAX_DECOMPRESSED_CLUSTER}")
    capacity = f["capacity"]
    if capacity * SECTOR_SIZE > limits.MAX_VIRTUAL_SIZE:
        raise LimitExceeded(path, structure, hdr_base + H_CAPACITY,
                            f"capacity {capacity} sectors exceeds limits.MAX_VIRTUAL_SIZE="
                            f"{limits.MAX_VIRTUAL_SIZE} bytes")
    h_out.capacity = capacity * SECTOR_SIZE
    h_out.gd_entries = -(-capacity // (gtes * grain_sectors))
    _check_gd(container, src, h_out, structure, hdr_base + H_GD_OFFSET)
    if f["overhead"] > size // SECTOR_SIZE:
        raise TruncatedImage(path, structure, hdr_base + H_OVERHEAD,
                             f"overHead is {f['overhead']} sectors but the file holds "
                             f"{size // SECTOR_SIZE} (qemu: file truncated)")
    return h_out


def _check_gd(container, Source src, h, str structure, field_offset):
    """The GD size against the limits and the file (both the primary and the redundant one)."""
    path = container.path
    if h.gd_entries > limits.VMDK_MAX_GD_ENTRIES:
        raise LimitExceeded(path, structure, field_offset,
                            f"{h.gd_entries} grain directory entries exceed "
                            f"limits.VMDK_MAX_GD_ENTRIES={limits.VMDK_MAX_GD_ENTRIES} "
                            "(qemu: L1 size too big)")
    gd_bytes = h.gd_entries * GD_ENTRY_SIZE
    if h.gd_entries and not src.contains(h.gd_offset, gd_bytes):
        raise TruncatedImage(path, "VMDK grain directory", h.gd_offset,
                             f"{h.gd_entries} entries ({gd_bytes} bytes) end past the end of "
                             f"the file ({src.size})")
    if h.gd_entries and h.gd_offset < SECTOR_SIZE:
        raise CorruptImage(path, "VMDK grain directory", h.gd_offset,
                           "the grain directory overlaps the sparse header")
    if h.kind == "KDMV" and h.flags & FLAG_REDUNDANT_GRAIN_TABLE and h.gd_entries:
        if not src.contains(h.rgd_offset, gd_bytes):
            container.add_finding(
                TRUNCATED, "warning",
                f"the redundant grain directory at offset {h.rgd_offset} ends past the end of "
                f"the file ({src.size}); the primary one is used (as qemu does)")


def _read_footer(container, Source src, str label, dict header):
    """The footer of a stream whose header says the GD is at the end; compare the two."""
    path = container.path
    end = src.size // SECTOR_SIZE * SECTOR_SIZE
    if end < FOOTER_AREA + SECTOR_SIZE:
        raise TruncatedImage(path, f"{label} footer", None,
                             "the header says the grain directory is at the end of the stream "
                             f"but the file ({src.size} bytes) has no room for a footer")
    base = end - FOOTER_AREA
    area = src.read(base, FOOTER_AREA, f"{label} footer")
    footer = area[MARKER_SIZE:2 * MARKER_SIZE]
    eos = area[2 * MARKER_SIZE:]
    if (footer[:4] != SPARSE_MAGIC or _le(area, M_SIZE, 4) != 0
            or _le(area, M_TYPE, 4) != MARKER_FOOTER or _le(eos, M_VAL, 8) != 0
            or _le(eos, M_SIZE, 4) != 0 or _le(eos, M_TYPE, 4) != MARKER_EOS):
        raise CorruptImage(path, f"{label} footer", base,
                           "the header says the grain directory is at the end of the stream but "
                           "no footer marker, footer and end-of-stream marker end the file "
                           "(qemu: Invalid footer)")
    f = _kdmv_fields(footer)
    hdr_base = base + MARKER_SIZE
    for key, name, finding in (("capacity", "capacity", SIZE_MISMATCH),
                               ("grain", "grainSize", FOOTER_MISMATCH),
                               ("desc_offset", "descriptorOffset", FOOTER_MISMATCH),
                               ("desc_size", "descriptorSize", FOOTER_MISMATCH),
                               ("gtes", "numGTEsPerGT", FOOTER_MISMATCH),
                               ("compress", "compressAlgorithm", FOOTER_MISMATCH),
                               ("version", "version", FOOTER_MISMATCH)):
        if f[key] != header[key]:
            container.add_finding(
                finding, "error",
                f"{label}: the footer (offset {hdr_base}) says {name} {f[key]} but the header "
                f"says {header[key]}; the footer is used, as qemu does")
    if f["gd_offset"] == GD_AT_END:
        raise CorruptImage(path, f"{label} footer", hdr_base + H_GD_OFFSET,
                           "the footer, too, says the grain directory is at the end")
    container.details["footer_offset"] = hdr_base
    return f, hdr_base


def _footer_beside_header(container, Source src, str label, dict header):
    """A stream whose header names its grain directory, yet which ends with a footer naming
    another one.

    qemu reads a footer only when the header's gdOffset is GD_AT_END, so it uses the
    header's; a reader that takes a stream's footer as the final word reads a different
    disk from the same file (LP#2073262).
    """
    end = src.size // SECTOR_SIZE * SECTOR_SIZE
    if not header["flags"] & FLAG_MARKERS or end < FOOTER_AREA + SECTOR_SIZE:
        return
    base = end - FOOTER_AREA
    area = src.read(base, FOOTER_AREA, f"{label} footer")
    footer = area[MARKER_SIZE:2 * MARKER_SIZE]
    if footer[:4] != SPARSE_MAGIC or _le(area, M_TYPE, 4) != MARKER_FOOTER:
        return
    gd = _kdmv_fields(footer)["gd_offset"]
    if gd != header["gd_offset"]:
        container.add_finding(
            FOOTER_MISMATCH, "error",
            f"{label}: the header says the grain directory is at sector {header['gd_offset']} "
            f"but the footer (offset {base + MARKER_SIZE}) says {gd}; the header is used, "
            "as qemu does")


def _read_cowd_header(container, Source src, str label):
    """ESX's COWD sparse header (qemu's VMDK3): 32-bit fields, 4096-entry grain tables."""
    path = container.path
    if src.size < COWD_HEADER_MIN:
        raise TruncatedImage(path, f"{label} COWD header", 0,
                             f"the file holds {src.size} bytes; the header needs "
                             f"{COWD_HEADER_MIN}")
    h = src.read(0, COWD_HEADER_MIN, f"{label} COWD header")
    h_out = SparseHeader()
    h_out.kind = "COWD"
    h_out.version = _le(h, C_VERSION, 4)
    h_out.flags = _le(h, C_FLAGS, 4)
    grain_sectors = _le(h, C_GRANULARITY, 4)
    if grain_sectors == 0 or grain_sectors > limits.VMDK_MAX_GRAIN_SECTORS:
        raise CorruptImage(path, f"{label} COWD header", C_GRANULARITY,
                           f"granularity {grain_sectors} sectors is 0 or exceeds "
                           f"limits.VMDK_MAX_GRAIN_SECTORS={limits.VMDK_MAX_GRAIN_SECTORS}")
    h_out.capacity = _le(h, C_CAPACITY, 4) * SECTOR_SIZE
    h_out.grain = grain_sectors * SECTOR_SIZE
    h_out.gtes = COWD_GTES_PER_GT
    h_out.gd_offset = _le(h, C_GD_OFFSET, 4) * SECTOR_SIZE
    h_out.gd_entries = _le(h, C_GD_SIZE, 4)
    h_out.desc_offset = h_out.desc_size = h_out.rgd_offset = h_out.overhead = 0
    h_out.compress = COMPRESSION_NONE
    h_out.zeroed_gte = h_out.compressed = h_out.markers = h_out.unclean = False
    h_out.newline = b""
    _check_gd(container, src, h_out, f"{label} COWD header", C_GD_SIZE)
    if h_out.gd_entries * COWD_GTES_PER_GT * h_out.grain < h_out.capacity:
        raise CorruptImage(path, f"{label} COWD header", C_GD_SIZE,
                           f"{h_out.gd_entries} grain directory entries cannot map the "
                           f"{h_out.capacity}-byte extent")
    return h_out


def walk_sparse(container, ExtentMap emap, Source src, h, uint64_t guest_base,
                uint64_t length, uint32_t file, str label):
    """Append the runs of sparse extent ``src`` (header ``h``) as map file index ``file``."""
    cdef uint64_t n = h.gd_entries
    cdef uint64_t fsize = src.size
    cdef uint64_t gt_bytes = <uint64_t>h.gtes * GT_ENTRY_SIZE
    # No entries: the offset is never read and, unchecked, may exceed 64 bits.
    cdef uint64_t gd_off = h.gd_offset if n else 0
    cdef uint64_t grain = h.grain
    cdef uint64_t gtes = h.gtes
    cdef bint zeroed = h.zeroed_gte, compressed = h.compressed, markers = h.markers
    cdef uint64_t gd_end = gd_off + n * 4
    cdef const uint8_t[::1] gd_view
    cdef const uint8_t[::1] whole
    cdef const uint8_t* gd_p
    cdef const uint8_t* f_p
    cdef WalkResult r
    cdef GtWindow w
    cdef int rc
    r.bad_index = r.bad_offset = r.past_eof = r.first_past_eof = 0
    r.lba_mismatch = r.first_lba_mismatch = 0
    path = container.path
    if length > h.capacity:
        # the descriptor claims more than the extent holds: the rest reads as zeros
        emap_tail = length - h.capacity
        length = h.capacity
    else:
        emap_tail = 0
    if n == 0 or length == 0:
        emap._append(guest_base, length + emap_tail, "unallocated", None, file)
        return
    if fsize == 0:
        raise TruncatedImage(path, f"{label} grain tables", 0, "the extent file is empty")
    gd_view = src.view(gd_off, n * GD_ENTRY_SIZE, "VMDK grain directory")
    gd_p = &gd_view[0]
    f_p = NULL
    if markers and compressed:
        # Grain markers are read in place from the (lazily) mapped file; where it
        # cannot be mapped, one read of the whole file, bounded by its size.
        whole = src.view(0, fsize, "VMDK grain markers")
        f_p = &whole[0]
    with nogil:
        rc = _check_gts(gd_p, n, gt_bytes, gd_off, gd_end, fsize, &r)
    if rc == -5:
        raise MemoryError()
    if rc == -2:
        raise TruncatedImage(path, "VMDK grain table", r.bad_offset,
                             f"{label}: grain table of GD entry {r.bad_index} ({gt_bytes} bytes) "
                             f"ends past the end of the file ({fsize})")
    if rc == -3:
        raise CorruptImage(path, "VMDK grain table", r.bad_offset,
                           f"{label}: grain table of GD entry {r.bad_index} overlaps the sparse "
                           "header or the grain directory itself")
    if rc == -4:
        raise CorruptImage(path, "VMDK grain table", r.bad_offset,
                           f"{label}: grain table of GD entry {r.bad_index} overlaps another "
                           "grain table (a shared or looping grain directory)")
    w.fd = src._fd
    w.cap = GT_WINDOW if GT_WINDOW > gt_bytes else gt_bytes
    w.lo = w.hi = 0
    w.buf = <uint8_t*>malloc(w.cap)
    if w.buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            rc = _walk_gd(emap, gd_p, n, &w, f_p, fsize, guest_base, length, grain, gtes,
                          file, zeroed, compressed, markers, &r)
    finally:
        free(w.buf)
    if rc == -6:
        raise TruncatedImage(path, "VMDK grain table", r.bad_offset,
                             f"{label}: the grain table of GD entry {r.bad_index} could not be "
                             "read")
    if rc < 0:
        raise LimitExceeded(path, "VMDK grain directory", gd_off,
                            f"the extent map exceeds limits.MAX_EXTENTS={limits.MAX_EXTENTS}")
    if emap_tail:
        emap._append(guest_base + length, emap_tail, "zero", None, file)
    if r.past_eof:
        container.add_finding(
            TRUNCATED, "error",
            f"{label}: {r.past_eof} grain(s) lie (partly) past the end of the file, the first at "
            f"guest offset {r.first_past_eof}; their missing bytes read as zeros")
    if r.lba_mismatch:
        container.add_finding(
            CORRUPT, "warning",
            f"{label}: {r.lba_mismatch} grain marker(s) name another LBA than the grain table "
            f"places them at, the first at guest offset {r.first_lba_mismatch}; the grain "
            "table decides (as in qemu)")


# --------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------

class _Extent:
    """One extent of the disk: where its guest range lives."""

    __slots__ = ("access", "file", "guest_start", "header", "length", "name", "offset", "type")

    def __init__(self, type, guest_start, length, file=0, name=None, offset=0, access="RW",
                 header=None):
        self.type = type
        self.guest_start = guest_start
        self.length = length
        self.file = file
        self.name = name
        self.offset = offset
        self.access = access
        self.header = header


class VmdkImage(Container):
    """A VMDK disk: a sparse extent (with its embedded descriptor) or a descriptor file."""

    format = "vmdk"
    map_reads_external = True

    def __init__(self, Source source):
        Container.__init__(self, source, 0)
        self._extents = []
        self._files = []
        self._header = None
        self.external_sources = None
        size = source.size
        head = source.read(0, min(size, 8), "VMDK header")
        if head[:4] in (SPARSE_MAGIC, COWD_MAGIC):
            self._open_sparse()
        elif len(head) == 8 and int.from_bytes(head, "little") == SESPARSE_MAGIC:
            self._open_sesparse()
        else:
            self._open_descriptor_file()

    # -- a sparse extent opened directly -------------------------------------
    def _open_sparse(self):
        src = self.source
        h = read_sparse_header(self, src, "VMDK")
        d = self.details
        self._header = h
        if h.kind == "COWD":
            self.subformat = "COWD"
            d["create_type"] = "COWD"
            d["header"] = h.as_dict()
            self.virtual_size = h.capacity
            self.cluster_size = h.grain
            self._extents.append(_Extent("sparse", 0, h.capacity, 0, header=h))
            return
        d["header"] = h.as_dict()
        desc = None
        if h.desc_offset and h.desc_size:
            desc = self._read_embedded_descriptor(h)
        if h.capacity == 0 and desc is not None:
            # qemu reads a capacity-0 sparse file's descriptor as a descriptor file.
            self._use_descriptor_file(desc)
            return
        self.virtual_size = h.capacity
        self.cluster_size = h.grain
        # qemu's create type for a sparse file: decided by the header, not the descriptor
        self.subformat = "streamOptimized" if h.compressed else "monolithicSparse"
        d["create_type"] = self.subformat
        self._extents.append(_Extent("sparse", 0, h.capacity, 0, header=h))
        if desc is not None:
            self._describe(desc)
            written = desc.first("createType")
            if written is not None and written != self.subformat:
                d["descriptor_create_type"] = written
            names = [e.filename for e in desc.extents if e.filename]
            total = sum(e.sectors for e in desc.extents) * SECTOR_SIZE
            if len(desc.extents) > 1 or (desc.extents and total != h.capacity):
                self.add_finding(
                    EXTERNAL_EXTENT, "warning",
                    f"the embedded descriptor lists {len(desc.extents)} extent(s) "
                    f"({', '.join(map(repr, names[:8]))}) of {total} bytes; this file alone "
                    f"holds {h.capacity} bytes and is read alone (as qemu does)")

    def _read_embedded_descriptor(self, h):
        src = self.source
        length = min(h.desc_size, limits.VMDK_MAX_DESCRIPTOR_BYTES)
        if h.desc_size > limits.VMDK_MAX_DESCRIPTOR_BYTES:
            raise LimitExceeded(self.path, "VMDK embedded descriptor", h.desc_offset,
                                f"descriptorSize {h.desc_size} bytes exceeds "
                                f"limits.VMDK_MAX_DESCRIPTOR_BYTES="
                                f"{limits.VMDK_MAX_DESCRIPTOR_BYTES}")
        if not src.contains(h.desc_offset, length):
            raise TruncatedImage(self.path, "VMDK embedded descriptor", h.desc_offset,
                                 f"{length} bytes end past the end of the file ({src.size})")
        if h.desc_offset != SECTOR_SIZE:
            self.add_finding(
                DESCRIPTOR_AMBIGUOUS, "warning",
                f"the embedded descriptor is at offset {h.desc_offset}, but qemu reads CID, "
                "parentCID and parentFileNameHint at sector 1 whatever descriptorOffset says")
        raw = src.read(h.desc_offset, length, "VMDK embedded descriptor")
        return vd.parse_descriptor(raw, self.path, h.desc_offset, "VMDK embedded descriptor")

    # -- seSparse --------------------------------------------------------------
    def _open_sesparse(self):
        src = self.source
        raw = src.read_zero_padded(0, SECTOR_SIZE)
        version = _le(raw, 8, 8)
        capacity = _le(raw, SE_CAPACITY, 8)
        grain = _le(raw, SE_GRAIN_SIZE, 8)
        self.subformat = "seSparse"
        d = self.details
        d["create_type"] = "seSparse"
        d["header"] = {"version": version, "capacity": capacity, "grain_size": grain,
                       "grain_table_size": _le(raw, SE_GRAIN_TABLE_SIZE, 8),
                       "flags": _le(raw, SE_FLAGS, 8),
                       "grain_dir_offset": _le(raw, SE_GRAIN_DIR_OFFSET, 8),
                       "grain_dir_size": _le(raw, SE_GRAIN_DIR_SIZE, 8),
                       "grain_tables_offset": _le(raw, SE_GRAIN_TABLES_OFFSET, 8),
                       "grains_offset": _le(raw, SE_GRAINS_OFFSET, 8)}
        if version != SESPARSE_VERSION or capacity * SECTOR_SIZE > limits.MAX_VIRTUAL_SIZE:
            raise UnsupportedFormat(self.path, "vmdk", "seSparse constant header", 8,
                                    f"seSparse version 0x{version:x} / capacity {capacity} "
                                    "sectors: not the 2.1 layout qemu reads")
        self.virtual_size = capacity * SECTOR_SIZE
        if 0 < grain <= limits.VMDK_MAX_GRAIN_SECTORS:
            self.cluster_size = grain * SECTOR_SIZE
        self.add_finding(
            UNKNOWN_FEATURE, "warning",
            "an ESXi seSparse extent (snapshot delta) opened without its descriptor: its facts "
            "come from the constant header; its grain tables are not decoded")
        self._extents.append(_Extent("sesparse", 0, self.virtual_size, 0, name=self.path))

    # -- descriptor files ------------------------------------------------------
    def _open_descriptor_file(self):
        src = self.source
        if src.size > limits.VMDK_MAX_DESCRIPTOR_BYTES:
            raise LimitExceeded(self.path, "VMDK descriptor file", 0,
                                f"a {src.size}-byte descriptor exceeds "
                                f"limits.VMDK_MAX_DESCRIPTOR_BYTES="
                                f"{limits.VMDK_MAX_DESCRIPTOR_BYTES}")
        raw = src.read(0, src.size, "VMDK descriptor file")
        desc = vd.parse_descriptor(raw, self.path, 0, "VMDK descriptor file")
        self._use_descriptor_file(desc)

    def _use_descriptor_file(self, desc):
        d = self.details
        create_type = desc.qemu_value("createType")
        if create_type is None or len(create_type) > vd.QEMU_CREATE_TYPE_MAX:
            raise CorruptImage(self.path, "VMDK descriptor createType", None,
                               "no createType=\"...\" value (qemu: invalid VMDK image descriptor)")
        self.subformat = create_type
        d["create_type"] = create_type
        self._describe(desc)
        if create_type not in vd.QEMU_DESCRIPTOR_CREATE_TYPES:
            self.add_finding(
                UNKNOWN_FEATURE, "warning",
                f"createType {create_type!r} is not one qemu opens from a descriptor file "
                f"({', '.join(vd.QEMU_DESCRIPTOR_CREATE_TYPES)}); the extent lines are read "
                "as written")
        if create_type in ("seSparse",) or any(e.type == vd.EXTENT_SESPARSE
                                               for e in desc.extents):
            seen = "seSparse"
        else:
            seen = None
        pos = 0
        index = {}
        skipped = 0
        for e in desc.extents:
            length = e.sectors * SECTOR_SIZE
            if e.access != "RW":
                skipped += 1
            file = 0
            if e.filename is not None:
                if e.filename not in index:
                    self._files.append(e.filename)
                    index[e.filename] = len(self._files)
                file = index[e.filename]
                self._report_extent(e)
            if e.type == vd.EXTENT_ZERO:
                kind = "zero"
            elif e.type in vd.FLAT_TYPES:
                kind = "flat"
            elif e.type in (vd.EXTENT_SPARSE, vd.EXTENT_VMFSSPARSE):
                kind = "sparse"
            elif e.type == vd.EXTENT_SESPARSE:
                kind = "sesparse"
            else:
                raise UnsupportedFeature(self.path, f"VMDK descriptor line {e.line}", None,
                                         f"extent type {e.type!r} is not one of "
                                         f"{', '.join(vd.EXTENT_TYPES)}")
            self._extents.append(_Extent(kind, pos, length, file, e.filename,
                                         e.offset * SECTOR_SIZE, e.access))
            pos += length
            if pos > limits.MAX_VIRTUAL_SIZE:
                raise LimitExceeded(self.path, f"VMDK descriptor line {e.line}", None,
                                    f"the extents add up to more than limits.MAX_VIRTUAL_SIZE="
                                    f"{limits.MAX_VIRTUAL_SIZE} bytes")
        self.virtual_size = pos
        d["extents"] = [e.as_dict() for e in desc.extents]
        if skipped:
            self.add_finding(
                UNKNOWN_FEATURE, "info",
                f"{skipped} extent(s) are RDONLY or NOACCESS: they are part of the disk as the "
                "spec says, but qemu 7.2 leaves them out (its disk is smaller)")
        if seen:
            self.add_finding(
                UNKNOWN_FEATURE, "warning",
                "seSparse extents (ESXi snapshot deltas) are named here but their grain tables "
                "are not decoded")

    def _report_extent(self, e):
        name = e.filename
        reason = unsafe_reason(name)
        if reason is None and ("/" in name or "\\" in name):
            reason = "it names a file in another directory"
        self.add_finding(
            EXTERNAL_EXTENT, "warning" if reason is None else "error",
            f"extent {e.access} {e.sectors} {e.type} (descriptor line {e.line}) is stored in "
            f"file {name!r}" + ("" if reason is None else f": {reason}") + "; it is opened only "
            "inside the directory given as external_dir" + (
                "" if unsafe_reason(name) is None else " and this name never"))

    # -- descriptor facts ----------------------------------------------------------
    def _describe(self, desc):
        """Descriptor facts shared by embedded descriptors and descriptor files."""
        d = self.details
        for key in ("createType", "parentFileNameHint"):
            desc.check_key(key)
        for message in desc.ambiguities:
            self.add_finding(DESCRIPTOR_AMBIGUOUS, "error", message)
        cid = desc.qemu_hex("CID")
        parent_cid = desc.qemu_hex("parentCID")
        if cid is not None:
            d["cid"] = cid
        if parent_cid is not None:
            d["parent_cid"] = parent_cid
        for key in ("version", "encoding", "isNativeSnapshot"):
            value = desc.first(key)
            if value is not None:
                d[f"descriptor_{key}" if key == "version" else key] = value
        parent = desc.qemu_value("parentFileNameHint")
        if parent:
            self.backing_file = parent
        ddb = {}
        encryption = []
        for key, value, _ in desc.entries:
            low = key.lower()
            if low.startswith("ddb.") and key not in ddb and len(ddb) < limits.VMDK_MAX_DDB_ENTRIES:
                ddb[key] = value
            if low.startswith(("encryption.", "ddb.encryption")) or "keysafe" in low:
                encryption.append(key)
        if ddb:
            d["ddb"] = ddb
        for key, name in (("ddb.adapterType", "adapter_type"),
                          ("ddb.virtualHWVersion", "hw_version"),
                          ("ddb.toolsVersion", "tools_version"),
                          ("ddb.uuid", "uuid"), ("ddb.longContentID", "long_content_id")):
            if key in ddb:
                d[name] = ddb[key]
        geometry = {k: ddb[f"ddb.geometry.{k}"] for k in ("cylinders", "heads", "sectors")
                    if f"ddb.geometry.{k}" in ddb}
        if geometry:
            d["geometry"] = geometry
        if encryption:
            self.encrypted = True
            self.encryption = "vmware"
            d["encryption_keys"] = encryption

    # -- the extent map ----------------------------------------------------------
    def external_files(self):
        return list(self._files)

    def _external(self, file):
        sources = self.external_sources
        if sources is None or file - 1 >= len(sources):
            return None
        return sources[file - 1]

    def build_extent_map(self):
        emap = ExtentMap(self.virtual_size, self.cluster_size or 0)
        for e in self._extents:
            if e.type == "zero":
                emap._append(e.guest_start, e.length, "zero")
                continue
            src = self.source if e.file == 0 else self._external(e.file)
            if e.type == "sesparse":
                raise UnsupportedFormat(self.path, "vmdk", f"seSparse extent {e.name!r}", None,
                                        "seSparse grain tables are not decoded")
            if src is None:
                # Not opened (no external_dir, or a name never followed): the range is
                # stored in that file; reading it raises UnsafePath.
                emap._append(e.guest_start, e.length, "data", e.offset, e.file)
            elif e.type == "flat":
                map_host_range(emap, src, e.guest_start, e.offset, e.length, e.file)
            else:
                h = e.header
                label = "VMDK" if e.file == 0 else f"VMDK extent {e.name!r}"
                if h is None:
                    h = e.header = read_sparse_header(self, src, label)
                    if h.compressed:
                        raise UnsupportedFeature(
                            self.path, f"{label} sparse header", H_COMPRESS_ALGORITHM,
                            "compressed grains in an extent file other than the image itself")
                    if h.capacity != e.length:
                        self.add_finding(
                            SIZE_MISMATCH, "warning",
                            f"{label} holds {h.capacity} bytes but its extent line says "
                            f"{e.length}; the extent line decides the disk's layout")
                    if not self.cluster_size:
                        self.cluster_size = h.grain
                walk_sparse(self, emap, src, h, e.guest_start, e.length, e.file, label)
        return emap

    # -- compressed grains -------------------------------------------------------
    def decompress(self, host, stored_length):
        """Inflate one stream-optimized grain (zlib) to at most the grain size."""
        import zlib

        h = self._header
        if h is None or not h.compressed:
            raise CorruptImage(self.path, "VMDK compressed grain", host,
                               "the extent has no compressed grains")
        grain = h.grain
        if stored_length == 0 or stored_length > 2 * grain:
            raise CorruptImage(self.path, "VMDK compressed grain", host,
                               f"stored size {stored_length} is 0 or more than two grains "
                               f"({2 * grain} bytes; qemu refuses it too)")
        data = self.source.read_zero_padded(host, stored_length)
        inflater = zlib.decompressobj()
        try:
            out, more = zlib_bounded(inflater, data, grain)
        except StreamError as exc:
            raise CorruptImage(self.path, "VMDK compressed grain", host, str(exc)) from None
        if more:
            raise self.compression_bomb("VMDK compressed grain", host, grain)
        if not inflater.eof:
            raise CorruptImage(self.path, "VMDK compressed grain", host,
                               "the zlib stream ends before its end marker")
        # A short grain fails the read only where a read needs the missing bytes (as in qemu).
        return out


def probe(Source source):
    """A sparse or COWD magic, an seSparse header, or descriptor text as qemu recognises it."""
    size = source.size
    if size < 4:
        return False
    head = source.read(0, min(size, PROBE_BYTES), "VMDK header")
    if head[:4] in (SPARSE_MAGIC, COWD_MAGIC):
        return True
    if len(head) >= 16 and (int.from_bytes(head[:8], "little") == SESPARSE_MAGIC
                            and int.from_bytes(head[8:16], "little") == SESPARSE_VERSION):
        return True
    if head.startswith(DESCRIPTOR_SIGNATURE):
        return True
    return _qemu_probe_text(head)


def _qemu_probe_text(bytes head):
    """qemu's vmdk_probe for text: comments and blank lines, then ``version=1|2|3``."""
    pos = 0
    n = len(head)
    while pos < n:
        c = head[pos]
        if c == 0x23:  # '#': skip the comment line
            nl = head.find(b"\n", pos)
            if nl < 0:
                return False
            pos = nl + 1
            continue
        if c == 0x20:
            while pos < n and head[pos] == 0x20:
                pos += 1
            if pos < n and head[pos] == 0x0A:
                pos += 1
                continue
        rest = head[pos:pos + 11]
        return rest[:10] in (b"version=1\n", b"version=2\n", b"version=3\n") or \
            rest in (b"version=1\r\n", b"version=2\r\n", b"version=3\r\n")
    return False


FORMAT = Format("vmdk", probe, VmdkImage)

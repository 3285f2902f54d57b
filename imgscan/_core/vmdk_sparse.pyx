"""VMDK sparse extents: their headers and grain directory walks.

The reader of one sparse extent, whatever holds it: a hosted sparse extent
(``KDMV``: monolithicSparse, its split and vmfsSparse kin), a stream-optimized
one (compressed grains behind grain markers, the grain directory possibly
found through the footer) and ESX's older COWD extent.
:func:`read_sparse_header` checks a header as qemu 7.2 (``block/vmdk.c``)
does; :func:`walk_sparse` appends the extent's runs to an extent map in a
nogil walk. The descriptor-based container that lays extents end to end is
:mod:`imgscan._core.vmdk`; the structures are declared in
:mod:`imgscan._core.c_vmdk`.
"""

cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcpy
from posix.unistd cimport pread

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage, UnsupportedFeature
from imgscan.findings import CORRUPT, FOOTER_MISMATCH, SIZE_MISMATCH, TRUNCATED, UNKNOWN_FEATURE

from .binary cimport le16, le32, le64
from .c_vmdk import (
    COMPRESSION_DEFLATE, COMPRESSION_NONE, COWD_GTES_PER_GT, COWD_HEADER, COWD_MAGIC,
    FLAG_MARKERS, FLAG_NAMES, FLAG_REDUNDANT_GRAIN_TABLE, FLAG_VALID_NEWLINE_TEST,
    FLAG_ZEROED_GRAIN_GTE, FOOTER_AREA, GD_AT_END, GD_ENTRY_SIZE, GRAIN_MARKER, GT_ENTRY_SIZE,
    GTE_ZEROED, KNOWN_FLAGS, MARKER, MARKER_EOS, MARKER_FOOTER, MARKER_SIZE, MAX_VERSION,
    NEWLINE_TEST, SECTOR_SIZE, SPARSE_HEADER_MIN, SPARSE_MAGIC,
)
from .extents cimport (
    ExtentMap, KIND_COMPRESSED, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST, add_run,
)
from .source cimport Source

# The layout values the nogil walk needs, as C values taken from c_vmdk.
cdef uint64_t C_SECTOR = SECTOR_SIZE
cdef uint32_t C_GTE_ZEROED = GTE_ZEROED
cdef uint64_t C_GRAIN_MARKER_HEAD = GRAIN_MARKER.size
cdef uint64_t C_GRAIN_MARKER_SIZE_FIELD = GRAIN_MARKER.offset("size")


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
                    uint64_t gd_end, uint64_t fsize, WalkResult* r, uint64_t* lo,
                    uint64_t* hi) noexcept nogil:
    """Every GT inside the file, clear of the header and the GD, and of every other GT;
    on success ``[lo, hi)`` is the host range from the first GT to the end of the last
    ((0, 0) if none), read off the sorted offsets (a pass and a GIL release of its own
    before, issue 18).

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
    lo[0] = offs[0] if k else 0
    hi[0] = offs[k - 1] + gt_bytes if k else 0
    free(offs)
    return 0


cdef inline uint64_t _zero_run_end(const uint8_t* gt, uint64_t j, uint64_t n) noexcept nogil:
    """The first entry at or after ``j`` (of ``n``) that is not 0, or ``n``: eight entries
    (four words) a step, where two a step were most of a small VMDK's walk (issue 18)."""
    cdef uint64_t word[4]
    while j < n and (j & 1):
        if le32(gt + 4 * j) != 0:
            return j
        j += 1
    while j + 8 <= n:
        memcpy(word, gt + 4 * j, 32)
        if word[0] | word[1] | word[2] | word[3]:
            break
        j += 8
    while j + 2 <= n:
        memcpy(word, gt + 4 * j, 8)
        if word[0] != 0:
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
#: What the announcement of the grain directory takes with it (constants, never sizes
#: the file claims): the grain tables writers put right after the directory, up to
#: GT_ANNOUNCE_BYTES (a 256 GiB disk's tables of 512 entries), and the first
#: FIRST_GRAIN_ANNOUNCE_BYTES of grains at ``overHead`` (the guest's first sectors, by
#: the order writers allocate), so a remote source fetches the directory, the tables
#: and the guest's partition table in one round trip rather than one after the other.
GT_ANNOUNCE_BYTES = 16 * 1024 * 1024
#: The most grain-table bytes a directory may map for its tables to be looked for in the
#: file's ends detection kept (its 32 KiB head; a bound, not a size the file claims).
cdef uint64_t KEPT_TABLES_MAX = 64 * 1024
FIRST_GRAIN_ANNOUNCE_BYTES = 64 * 1024


cdef struct GtWindow:
    int fd
    uint64_t base       # the source's start in its file (a window: an OVA member)
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
        got = pread(w.fd, w.buf + done, end - off - done, w.base + off + done)
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
            elif gte == C_GTE_ZEROED and zeroed_gte:
                if add_run(emap, guest_base + pos, glen, KIND_ZERO, NO_HOST, file, 0) < 0:
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
                        size = le32(f + host + C_GRAIN_MARKER_SIZE_FIELD)
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
                # add_run: a grain that continues the run before it (most of a written
                # disk's) merged inline, not by a call (about 2.5 k instructions of a small
                # VMDK's 48 grains, issue 18)
                if add_run(emap, guest_base + pos, glen, KIND_DATA, host, file, 0) < 0:
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

cdef class SparseHeader:
    """The fields of one sparse extent's header (KDMV or COWD), in bytes where sizes.

    An extension type declared in vmdk_sparse.pxd: its fields are set and read on every
    open of a sparse VMDK (as slots of a Python class they cost about 10 k instructions
    an open, issue 18), the container reads them as C members. ``stored`` holds the
    header's fields as read (sizes in sectors), from which :meth:`as_dict` builds the
    details in C."""

    cpdef dict as_dict(self):
        """The header as the details report it: its fields as stored (sizes in sectors)."""
        cdef KdmvFields* f = &self.stored
        cdef list flag_names
        if self.kind != "KDMV":
            return {"version": f.version, "flags": f.flags, "capacity": f.capacity,
                    "grain_size": f.grain, "num_gtes_per_gt": f.gtes,
                    "gd_offset": f.gd_offset, "gd_entries": self.gd_entries}
        # the flags' names: each bit tested in C (a Python "&" a flag, five, were about
        # 0.6 k instructions an open, issue 18)
        flag_names = []
        for bit, name in _FLAG_NAMES:
            if f.flags & <uint32_t>bit:
                flag_names.append(name)
        # one dict made at its size (a literal): the shared fields first, in the same order
        return {"version": f.version, "flags": f.flags, "capacity": f.capacity,
                "grain_size": f.grain, "num_gtes_per_gt": f.gtes,
                "gd_offset": f.gd_offset, "gd_entries": self.gd_entries,
                "flag_names": flag_names,
                "descriptor_offset": f.desc_offset, "descriptor_size": f.desc_size,
                "rgd_offset": f.rgd_offset, "overhead": f.overhead,
                "unclean_shutdown": f.unclean, "compress_algorithm": f.compress}


# The sparse header's field offsets and size are compiled in from the declaration in
# c_vmdk.py (compiled_layouts.vmdk_constants): the header (and a stream's footer) is read
# field by field into a C struct on every open (its CStruct dict, then a dict of its
# fields, were about a twentieth of a small VMDK's open, issue 18).
include "vmdk_layout.pxi"

cdef tuple _FLAG_NAMES = FLAG_NAMES
cdef uint32_t C_KNOWN_FLAGS = KNOWN_FLAGS
cdef uint64_t C_GD_AT_END = GD_AT_END
# the flags and compression values every header is tested against, as C values (each a
# module look-up and a Python operation was about 0.1 k instructions, eight an open: issue 18)
cdef uint32_t C_MAX_VERSION = MAX_VERSION
cdef uint32_t C_FLAG_MARKERS = FLAG_MARKERS
cdef uint32_t C_FLAG_VALID_NEWLINE_TEST = FLAG_VALID_NEWLINE_TEST
cdef uint32_t C_FLAG_ZEROED_GRAIN_GTE = FLAG_ZEROED_GRAIN_GTE
cdef uint32_t C_FLAG_REDUNDANT_GRAIN_TABLE = FLAG_REDUNDANT_GRAIN_TABLE
cdef uint16_t C_COMPRESSION_NONE = COMPRESSION_NONE
cdef uint16_t C_COMPRESSION_DEFLATE = COMPRESSION_DEFLATE


cdef void _kdmv_fields(const uint8_t* p, KdmvFields* f) noexcept nogil:
    """The fields of the whole header (SPARSE_HEADER_BYTES) at ``p``, sizes in sectors."""
    f.version = le32(p + SH_VERSION)
    f.flags = le32(p + SH_FLAGS)
    f.capacity = le64(p + SH_CAPACITY)
    f.grain = le64(p + SH_GRAIN_SIZE)
    f.desc_offset = le64(p + SH_DESCRIPTOR_OFFSET)
    f.desc_size = le64(p + SH_DESCRIPTOR_SIZE)
    f.gtes = le32(p + SH_NUM_GTES_PER_GT)
    f.rgd_offset = le64(p + SH_RGD_OFFSET)
    f.gd_offset = le64(p + SH_GD_OFFSET)
    f.overhead = le64(p + SH_OVERHEAD)
    f.unclean = p[SH_UNCLEAN_SHUTDOWN] != 0
    f.compress = le16(p + SH_COMPRESS_ALGORITHM)


cpdef SparseHeader read_sparse_header(container, Source src, str label):
    """Parse and check the sparse header of ``src``; findings go to ``container``.

    ``label`` names the extent file in messages. Raises for what qemu refuses
    (and for tables that could not be walked safely).
    """
    cdef uint64_t size = src.size
    cdef uint8_t raw[SPARSE_HEADER_BYTES]
    cdef KdmvFields f
    if size < 4:
        raise TruncatedImage(container.path, f"{label} sparse header", 0,
                             f"the file holds {size} bytes, fewer than the 4-byte magic")
    # the whole header at once, zeros past the end of the file (served from the file's
    # head detection kept), its magic looked at first
    src.copy_into(0, raw, SPARSE_HEADER_BYTES)
    magic = (<char*>raw)[:4]
    if magic == COWD_MAGIC:
        return _read_cowd_header(container, src, label)
    if magic != SPARSE_MAGIC:
        raise CorruptImage(container.path, f"{label} sparse header", 0,
                           f"magic {magic!r} is not 'KDMV' or 'COWD'")
    if size < SPARSE_HEADER_MIN:
        raise TruncatedImage(container.path, f"{label} sparse header", 0,
                             f"the file holds {size} bytes; the header needs {SPARSE_HEADER_MIN}")
    _kdmv_fields(raw, &f)
    newline = (<char*>raw)[SH_NEWLINE:SH_NEWLINE_END]
    structure = None    # the header's, made only for a message
    hdr_base = 0
    if f.gd_offset == C_GD_AT_END:
        hdr_base, newline = _read_footer(container, src, label, &f)
        structure = f"{label} footer"
    elif f.flags & C_FLAG_MARKERS:
        _footer_beside_header(container, src, label, f.gd_offset)
    cdef uint32_t version = f.version, flags = f.flags, unknown = f.flags & ~C_KNOWN_FLAGS
    if version > C_MAX_VERSION:
        container.add_finding(UNKNOWN_FEATURE, "error",
                              f"{label}: sparse header version {version} is newer than 3")
        raise UnsupportedFeature(container.path, _where(structure, label),
                                 hdr_base + SH_VERSION,
                                 f"VMDK sparse extent version {version} is not 1, 2 or 3")
    if unknown:
        container.add_finding(UNKNOWN_FEATURE, "warning",
                              f"{label}: sparse header flag bits 0x{unknown:08x} are not in the "
                              "spec")
    if flags & C_FLAG_VALID_NEWLINE_TEST and newline != NEWLINE_TEST:
        container.add_finding(
            CORRUPT, "error",
            f"{label}: the newline-detection characters are {newline!r}, not "
            f"{NEWLINE_TEST!r}: the file was probably copied in text mode and is damaged")
    cdef uint64_t gtes = f.gtes, grain_sectors = f.grain
    if gtes > limits.VMDK_MAX_GTES_PER_GT:
        # qemu refuses it as corrupt, not as over a limit: the type is kept
        raise CorruptImage(container.path, _where(structure, label),
                           hdr_base + SH_NUM_GTES_PER_GT,
                           f"numGTEsPerGT {gtes} exceeds limits.VMDK_MAX_GTES_PER_GT="
                           f"{limits.VMDK_MAX_GTES_PER_GT} (qemu: L2 table size too big)")
    if gtes == 0 or grain_sectors == 0:
        raise CorruptImage(container.path, _where(structure, label),
                           hdr_base + SH_GRAIN_SIZE,
                           f"grain size {grain_sectors} sectors, {gtes} entries per grain table:"
                           " a grain table must map at least one sector")
    if grain_sectors > limits.VMDK_MAX_GRAIN_SECTORS:
        raise CorruptImage(container.path, _where(structure, label),
                           hdr_base + SH_GRAIN_SIZE,
                           f"grain size {grain_sectors} sectors exceeds "
                           f"limits.VMDK_MAX_GRAIN_SECTORS={limits.VMDK_MAX_GRAIN_SECTORS}")
    cdef SparseHeader h_out = SparseHeader()
    h_out.stored = f
    h_out.kind = "KDMV"
    h_out.gtes = gtes
    # byte values are Python ints: a sector number is any 64-bit value (past 64 bits as
    # bytes, refused where it is used), and a test may raise the caps
    h_out.grain = <object>grain_sectors * SECTOR_SIZE
    h_out.desc_offset = <object>f.desc_offset * SECTOR_SIZE
    h_out.desc_size = <object>f.desc_size * SECTOR_SIZE
    h_out.rgd_offset = <object>f.rgd_offset * SECTOR_SIZE
    h_out.gd_offset = <object>f.gd_offset * SECTOR_SIZE
    h_out.overhead = f.overhead
    h_out.zeroed_gte = (flags & C_FLAG_ZEROED_GRAIN_GTE) != 0
    # qemu decides by compressAlgorithm, not by the flag
    h_out.compressed = f.compress == C_COMPRESSION_DEFLATE
    h_out.markers = (flags & C_FLAG_MARKERS) != 0
    if f.compress != C_COMPRESSION_NONE and f.compress != C_COMPRESSION_DEFLATE:
        container.add_finding(UNKNOWN_FEATURE, "error",
                              f"{label}: compressAlgorithm {f.compress} is not deflate (1)")
    # each cap compared inline, enforce called only to refuse
    if h_out.compressed and h_out.grain > limits.MAX_DECOMPRESSED_CLUSTER:
        limits.enforce(h_out.grain, "MAX_DECOMPRESSED_CLUSTER", container.path,
                       _where(structure, label), hdr_base + SH_GRAIN_SIZE,
                       "compressed grain size in bytes,")
    capacity = <object>f.capacity * SECTOR_SIZE
    if capacity > limits.MAX_VIRTUAL_SIZE:
        limits.enforce(capacity, "MAX_VIRTUAL_SIZE", container.path,
                       _where(structure, label), hdr_base + SH_CAPACITY,
                       "capacity in bytes,")
    h_out.capacity = capacity
    h_out.gd_entries = -(-<object>f.capacity // (<object>gtes * grain_sectors))
    _check_gd(container, src, h_out, structure, hdr_base + SH_GD_OFFSET, label)
    if f.overhead > size // C_SECTOR:
        raise TruncatedImage(container.path, _where(structure, label),
                             hdr_base + SH_OVERHEAD,
                             f"overHead is {f.overhead} sectors but the file holds "
                             f"{size // C_SECTOR} (qemu: file truncated)")
    return h_out


cdef str _where(str structure, str label):
    """The structure a sparse header's error names: ``structure``, or None for the KDMV
    header of ``label``'s (its name made only for a message)."""
    return structure or f"{label} sparse header"


cdef _check_gd(container, Source src, SparseHeader h, str structure, field_offset,
               str label):
    """The GD size against the limits and the file (both the primary and the redundant one).
    ``structure`` None: the KDMV header of ``label``'s (its name made only for a message).
    The container's path is read only for a message, here as in read_sparse_header (an
    attribute of a Python object, about 0.75 k instructions: issue 18)."""
    if h.gd_entries > limits.VMDK_MAX_GD_ENTRIES:
        limits.enforce(h.gd_entries, "VMDK_MAX_GD_ENTRIES", container.path,
                       _where(structure, label), field_offset,
                       "grain directory entry count")
    gd_bytes = h.gd_entries * GD_ENTRY_SIZE
    if h.gd_entries and not src.contains(h.gd_offset, gd_bytes):
        raise TruncatedImage(container.path, "VMDK grain directory", h.gd_offset,
                             f"{h.gd_entries} entries ({gd_bytes} bytes) end past the end of "
                             f"the file ({src.size})")
    if h.gd_entries and h.gd_offset < SECTOR_SIZE:
        raise CorruptImage(container.path, "VMDK grain directory", h.gd_offset,
                           "the grain directory overlaps the sparse header")
    if h.kind == "KDMV" and h.stored.flags & C_FLAG_REDUNDANT_GRAIN_TABLE and h.gd_entries:
        if not src.contains(h.rgd_offset, gd_bytes):
            container.add_finding(
                TRUNCATED, "warning",
                f"the redundant grain directory at offset {h.rgd_offset} ends past the end of "
                f"the file ({src.size}); the primary one is used (as qemu does)")


cdef tuple _read_footer(container, Source src, str label, KdmvFields* f):
    """The footer of a stream whose header says the GD is at the end, compared with the
    header ``f``, whose fields it then replaces; returns the footer's offset and its
    newline-detection characters."""
    path = container.path
    end = src.size // SECTOR_SIZE * SECTOR_SIZE
    if end < FOOTER_AREA + SECTOR_SIZE:
        raise TruncatedImage(path, f"{label} footer", None,
                             "the header says the grain directory is at the end of the stream "
                             f"but the file ({src.size} bytes) has no room for a footer")
    base = end - FOOTER_AREA
    area = src.read(base, FOOTER_AREA, f"{label} footer")
    footer = area[MARKER_SIZE:2 * MARKER_SIZE]
    marker = MARKER.unpack(area)
    eos = MARKER.unpack(area, 2 * MARKER_SIZE)
    if (footer[:4] != SPARSE_MAGIC or marker["size"] != 0 or marker["type"] != MARKER_FOOTER
            or eos["val"] != 0 or eos["size"] != 0 or eos["type"] != MARKER_EOS):
        raise CorruptImage(path, f"{label} footer", base,
                           "the header says the grain directory is at the end of the stream but "
                           "no footer marker, footer and end-of-stream marker end the file "
                           "(qemu: Invalid footer)")
    cdef KdmvFields h = f[0]
    _kdmv_fields(<const uint8_t*><char*>footer, f)
    hdr_base = base + MARKER_SIZE
    for name, finding, said, says in (
            ("capacity", SIZE_MISMATCH, f.capacity, h.capacity),
            ("grainSize", FOOTER_MISMATCH, f.grain, h.grain),
            ("descriptorOffset", FOOTER_MISMATCH, f.desc_offset, h.desc_offset),
            ("descriptorSize", FOOTER_MISMATCH, f.desc_size, h.desc_size),
            ("numGTEsPerGT", FOOTER_MISMATCH, f.gtes, h.gtes),
            ("compressAlgorithm", FOOTER_MISMATCH, f.compress, h.compress),
            ("version", FOOTER_MISMATCH, f.version, h.version)):
        if said != says:
            container.add_finding(
                finding, "error",
                f"{label}: the footer (offset {hdr_base}) says {name} {said} but the header "
                f"says {says}; the footer is used, as qemu does")
    if f.gd_offset == C_GD_AT_END:
        raise CorruptImage(path, f"{label} footer", hdr_base + SH_GD_OFFSET,
                           "the footer, too, says the grain directory is at the end")
    container.details["footer_offset"] = hdr_base
    return hdr_base, footer[SH_NEWLINE:SH_NEWLINE_END]


cdef _footer_beside_header(container, Source src, str label, uint64_t gd_offset):
    """A stream (its header's flags say markers) whose header names its grain directory,
    yet which ends with a footer naming another one.

    qemu reads a footer only when the header's gdOffset is GD_AT_END, so it uses the
    header's; a reader that takes a stream's footer as the final word reads a different
    disk from the same file (LP#2073262).
    """
    end = src.size // SECTOR_SIZE * SECTOR_SIZE
    if end < FOOTER_AREA + SECTOR_SIZE:
        return
    base = end - FOOTER_AREA
    area = src.read(base, FOOTER_AREA, f"{label} footer")
    footer = area[MARKER_SIZE:2 * MARKER_SIZE]
    if footer[:4] != SPARSE_MAGIC or MARKER.field(area, "type") != MARKER_FOOTER:
        return
    cdef uint64_t gd = le64(<const uint8_t*><char*>footer + SH_GD_OFFSET)
    if gd != gd_offset:
        container.add_finding(
            FOOTER_MISMATCH, "error",
            f"{label}: the header says the grain directory is at sector {gd_offset} "
            f"but the footer (offset {base + MARKER_SIZE}) says {gd}; the header is used, "
            "as qemu does")


cdef SparseHeader _read_cowd_header(container, Source src, str label):
    """ESX's COWD sparse header (qemu's VMDK3): 32-bit fields, 4096-entry grain tables."""
    path = container.path
    if src.size < COWD_HEADER.size:
        raise TruncatedImage(path, f"{label} COWD header", 0,
                             f"the file holds {src.size} bytes; the header needs "
                             f"{COWD_HEADER.size}")
    h = COWD_HEADER.unpack(src.read(0, COWD_HEADER.size, f"{label} COWD header"))
    cdef SparseHeader h_out = SparseHeader()
    h_out.kind = "COWD"
    grain_sectors = h["grainSize"]
    if grain_sectors == 0 or grain_sectors > limits.VMDK_MAX_GRAIN_SECTORS:
        raise CorruptImage(path, f"{label} COWD header", COWD_HEADER.offset("grainSize"),
                           f"granularity {grain_sectors} sectors is 0 or exceeds "
                           f"limits.VMDK_MAX_GRAIN_SECTORS={limits.VMDK_MAX_GRAIN_SECTORS}")
    h_out.capacity = h["numSectors"] * SECTOR_SIZE
    h_out.grain = grain_sectors * SECTOR_SIZE
    h_out.gtes = COWD_GTES_PER_GT
    h_out.gd_offset = h["gdOffset"] * SECTOR_SIZE
    h_out.gd_entries = h["numGDEntries"]
    h_out.desc_offset = h_out.desc_size = h_out.rgd_offset = h_out.overhead = 0
    h_out.zeroed_gte = h_out.compressed = h_out.markers = False
    # what the details report of it (as_dict), in the fields a KDMV header shares
    h_out.stored.version = h["version"]
    h_out.stored.flags = h["flags"]
    h_out.stored.capacity = h["numSectors"]
    h_out.stored.grain = grain_sectors
    h_out.stored.gtes = COWD_GTES_PER_GT
    h_out.stored.gd_offset = h["gdOffset"]
    _check_gd(container, src, h_out, f"{label} COWD header",
              COWD_HEADER.offset("numGDEntries"), label)
    if h_out.gd_entries * COWD_GTES_PER_GT * h_out.grain < h_out.capacity:
        raise CorruptImage(path, f"{label} COWD header", COWD_HEADER.offset("numGDEntries"),
                           f"{h_out.gd_entries} grain directory entries cannot map the "
                           f"{h_out.capacity}-byte extent")
    return h_out


cpdef walk_sparse(container, ExtentMap emap, Source src, SparseHeader h, uint64_t guest_base,
                  uint64_t length, uint32_t file, str label):
    """Append the runs of sparse extent ``src`` (header ``h``) as map file index ``file``.

    A C function (cpdef): the container calls it on every map of a sparse VMDK, and its
    eight arguments parsed as a Python call cost about 1 k instructions (issue 18)."""
    cdef uint64_t n = h.gd_entries
    cdef uint64_t fsize = src.size
    cdef uint64_t gt_bytes = <uint64_t>h.gtes * GT_ENTRY_SIZE
    # No entries: the offset is never read and, unchecked, may exceed 64 bits.
    cdef uint64_t gd_off = h.gd_offset if n else 0
    cdef uint64_t grain = h.grain
    cdef uint64_t gtes = h.gtes
    cdef bint zeroed = h.zeroed_gte, compressed = h.compressed, markers = h.markers
    cdef uint64_t gd_end = gd_off + n * GD_ENTRY_SIZE
    cdef const uint8_t[::1] gd_view
    cdef const uint8_t[::1] whole
    cdef const uint8_t* gd_p
    cdef const uint8_t* f_p
    cdef WalkResult r
    cdef GtWindow w
    cdef int rc
    cdef uint64_t span_lo, span_hi
    r.bad_index = r.bad_offset = r.past_eof = r.first_past_eof = 0
    r.lba_mismatch = r.first_lba_mismatch = 0
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
        raise TruncatedImage(container.path, f"{label} grain tables", 0,
                             "the extent file is empty")
    if src.wants_prefetch and not (markers and compressed):
        # (a stream-optimized extent is read whole below)
        src.prefetch([(gd_off, n * GD_ENTRY_SIZE + min(n * gt_bytes, GT_ANNOUNCE_BYTES)),
                      (h.overhead * SECTOR_SIZE, FIRST_GRAIN_ANNOUNCE_BYTES)],
                     "VMDK grain directory, grain tables and first grain")
    # the directory read in place where detection kept it (a small image's is in the
    # head): a memoryview's making and release were about 3 k instructions (issue 18).
    # The kept bytes are src's until its keep_reads or close: the ends are held here too,
    # so a close from another thread cannot free them under the walk (a VMDK's open
    # never keeps reads, detection's deferral is VHDX's alone).
    src._check(gd_off, n * GD_ENTRY_SIZE, "VMDK grain directory")
    held = (src._head, src._tail)
    gd_p = <const uint8_t*>src._kept_at(gd_off, n * GD_ENTRY_SIZE)
    if gd_p == NULL:
        gd_view = src.view(gd_off, n * GD_ENTRY_SIZE, "VMDK grain directory")
        gd_p = &gd_view[0]
    f_p = NULL
    if markers and compressed:
        # Grain markers are read in place from the (lazily) mapped file; where it
        # cannot be mapped, one read of the whole file, bounded by its size.
        whole = src.view(0, fsize, "VMDK grain markers")
        f_p = &whole[0]
    with nogil:
        rc = _check_gts(gd_p, n, gt_bytes, gd_off, gd_end, fsize, &r, &span_lo, &span_hi)
    if rc == -5:
        raise MemoryError()
    if rc == -2:
        raise TruncatedImage(container.path, "VMDK grain table", r.bad_offset,
                             f"{label}: grain table of GD entry {r.bad_index} ({gt_bytes} bytes) "
                             f"ends past the end of the file ({fsize})")
    if rc == -3:
        raise CorruptImage(container.path, "VMDK grain table", r.bad_offset,
                           f"{label}: grain table of GD entry {r.bad_index} overlaps the sparse "
                           "header or the grain directory itself")
    if rc == -4:
        raise CorruptImage(container.path, "VMDK grain table", r.bad_offset,
                           f"{label}: grain table of GD entry {r.bad_index} overlaps another "
                           "grain table (a shared or looping grain directory)")
    w.fd = src._fd
    w.base = src.base
    # The span from the first grain table to the end of the last (writers lay them out
    # together, after the grain directory). Served as one window that _gt_at never
    # leaves when it lies in the file's ends detection kept (a small image's tables do:
    # no read, and no 256 KiB window allocated, issue 18), or when the source is remote
    # (no file descriptor: the tables are fetched at once). A directory whose tables
    # could not fit in the kept ends (a big disk's thousands) is not walked for it.
    tables = None
    w.lo = w.hi = 0
    if w.fd < 0 or n * gt_bytes <= KEPT_TABLES_MAX:
        w.lo = span_lo
        w.hi = span_hi
        if w.hi:
            tables = src._kept(w.lo, w.hi - w.lo)
            # _check_gts refused tables past the end of the file; the window's size is
            # still taken from the bytes served, never from the span alone
            if tables is not None and len(tables) != w.hi - w.lo:
                tables = None
    if tables is None and w.fd < 0:
        tables = src.read(w.lo, w.hi - w.lo, f"{label} grain tables")
    if tables is not None:
        w.cap = w.hi - w.lo
        w.buf = <uint8_t*><const uint8_t*>tables
    else:
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
        if tables is None:
            free(w.buf)
    if rc == -6:
        raise TruncatedImage(container.path, "VMDK grain table", r.bad_offset,
                             f"{label}: the grain table of GD entry {r.bad_index} could not be "
                             "read")
    if rc < 0:
        emap.refuse_full(container.path, "VMDK grain directory", gd_off)
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

"""QEMU Enhanced Disk (QED) images.

Spec: qemu's docs/interop/qed_spec.txt ("QED Image File Format
Specification"); where it is silent, qemu's driver block/qed.c and qed.h
decide (read to learn the rules; no code is taken). All integers are
little-endian. The layout:

* the file is a sequence of clusters; cluster 0 starts with a 64-byte
  *header* (``QED_HEADER`` below): magic ``QED\\0``, cluster size, table
  size (in clusters), header size (in clusters), three feature bitmaps,
  the L1 table offset, the image size and, with the backing-file feature,
  the offset and length of the backing file name inside the header clusters;
* the L1 table at ``l1_table_offset``: ``table_size`` clusters of u64
  entries, each the offset of an L2 table (same size) or 0;
* L2 entries: 0 (unallocated: the backing file shows through, else zeros),
  1 (``QED_CLUSTER_ZERO``: reads as zeros) or the offset of a data cluster.

Features: ``QED_F_BACKING_FILE`` (bit 0), ``QED_F_NEED_CHECK`` (bit 1: the
image was not closed cleanly, its tables may be inconsistent: reported as
``dirty``) and ``QED_F_BACKING_FORMAT_NO_PROBE`` (bit 2: the backing file is
raw, which qemu reports as backing format ``raw``). Unknown feature bits
make qemu refuse the image, and so does imgscan; unknown compat and
autoclear bits are ignored, as the spec says, and reported.

Offsets are valid, as qemu checks them, when cluster-aligned, past the
header clusters and before the end of the file rounded down to a whole
cluster; qemu fails the read of a guest range whose table names any other
offset, and imgscan refuses to map the image. Two deviations: qemu refuses
``table_size`` 1 (its table-offset check compares the table's last cluster
with its first and calls equality an overflow), which the spec allows and
imgscan reads; and L2 tables that add up to more bytes than the file (L1
entries sharing tables) are refused, so the walk never costs more than the
file size, where qemu would read them.
"""

import struct

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from imgscan import limits
from imgscan.errors import CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature
from imgscan.findings import CORRUPT, TRUNCATED, UNKNOWN_FEATURE

from .binary cimport le64
from .container import Container, Format
from .extents cimport ExtentMap, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST
from .source cimport Source

# -- on-disk layout (qed_spec.txt, "Header") ---------------------------------------
QED_MAGIC = b"QED\x00"
#: magic, cluster_size, table_size, header_size, features, compat_features,
#: autoclear_features, l1_table_offset, image_size, backing_filename_offset,
#: backing_filename_size
QED_HEADER = struct.Struct("<4sIIIQQQQQII")
QED_HEADER_SIZE = QED_HEADER.size          # 64
#: Byte offsets of the header fields that errors point at.
OFF_CLUSTER_SIZE = 4
OFF_TABLE_SIZE = 8
OFF_HEADER_SIZE = 12
OFF_FEATURES = 16
OFF_COMPAT_FEATURES = 24
OFF_AUTOCLEAR_FEATURES = 32
OFF_L1_TABLE_OFFSET = 40
OFF_IMAGE_SIZE = 48
OFF_BACKING_FILENAME_OFFSET = 56
OFF_BACKING_FILENAME_SIZE = 60

QED_F_BACKING_FILE = 0x01
QED_F_NEED_CHECK = 0x02
QED_F_BACKING_FORMAT_NO_PROBE = 0x04
QED_FEATURE_MASK = QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_FORMAT_NO_PROBE
QED_COMPAT_FEATURE_MASK = 0
QED_AUTOCLEAR_FEATURE_MASK = 0

#: Image sizes are whole 512-byte sectors.
SECTOR_SIZE = 512
#: Size of one L1 / L2 entry (a little-endian u64).
QED_ENTRY_SIZE = 8
cdef uint64_t ENTRY_SIZE = QED_ENTRY_SIZE
#: L2 entries that name no cluster.
QED_CLUSTER_UNALLOCATED = 0
QED_CLUSTER_ZERO = 1
cdef uint64_t C_CLUSTER_UNALLOCATED = QED_CLUSTER_UNALLOCATED
cdef uint64_t C_CLUSTER_ZERO = QED_CLUSTER_ZERO


# -- the table walk ------------------------------------------------------------------
cdef struct Walk:
    # geometry, from the header
    uint64_t virtual_size
    uint64_t file_end           # file size rounded down to a cluster: offsets lie below
    uint64_t header_end         # header_size clusters: offsets lie at or above
    uint64_t cluster_size
    uint64_t table_bytes        # table_size clusters
    uint64_t table_entries
    uint64_t l1_size            # L1 entries covering the image
    # results
    uint64_t bad_index          # L1 index, or guest offset, of the offending entry
    uint64_t bad_offset         # ... and the offset it names
    uint64_t l2_bytes_total


cdef enum WalkStatus:
    WALK_OK = 0
    WALK_L2_MISALIGNED = 1  # an L2 offset qemu refuses: unaligned or inside the header
    WALK_L2_OUTSIDE = 2     # an L2 table not wholly inside the file
    WALK_L2_OVERLAP = 3     # L2 tables add up to more than the file: they alias
    WALK_DATA_MISALIGNED = 4
    WALK_DATA_OUTSIDE = 5
    WALK_MAP_FULL = 6


cdef inline int _offset_class(uint64_t off, uint64_t length, Walk* w) noexcept nogil:
    """0 when ``length`` bytes at cluster offset ``off`` are valid, 1 misplaced, 2 past EOF.

    qemu's rule: aligned, at or past the header, and every cluster of it
    starting before the file's last whole cluster ends.
    """
    if off & (w.cluster_size - 1) or off < w.header_end:
        return 1
    if off >= w.file_end or length > w.file_end - off:
        return 2
    return 0


cdef WalkStatus _locate_l2(const uint8_t* l1, uint64_t* l2_at, Walk* w) noexcept nogil:
    """Check every L2 table the L1 table names; record its offset in ``l2_at``."""
    cdef uint64_t i, off
    cdef int where
    for i in range(w.l1_size):
        off = le64(l1 + i * ENTRY_SIZE)
        if off == 0:
            l2_at[i] = NO_HOST
            continue
        where = _offset_class(off, w.table_bytes, w)
        if where:
            w.bad_index = i
            w.bad_offset = off
            return WALK_L2_MISALIGNED if where == 1 else WALK_L2_OUTSIDE
        w.l2_bytes_total += w.table_bytes
        if w.l2_bytes_total > w.file_end:
            w.bad_index = i
            w.bad_offset = off
            return WALK_L2_OVERLAP
        l2_at[i] = off
    return WALK_OK


cdef WalkStatus _walk_l2(ExtentMap emap, const uint8_t* tables, const uint64_t* l2_at,
                         Walk* w) noexcept nogil:
    """Append the guest disk to ``emap`` in order, one L1 span or one cluster at a time."""
    cdef uint64_t span = w.cluster_size * w.table_entries
    cdef uint64_t guest = 0, end, pos, length, entry
    cdef uint64_t i = 0, j
    cdef int where
    cdef const uint8_t* l2
    while guest < w.virtual_size:
        end = w.virtual_size if w.virtual_size - guest < span else guest + span
        if l2_at[i] == NO_HOST:
            if emap.add(guest, end - guest, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return WALK_MAP_FULL
        else:
            l2 = tables + l2_at[i]
            pos = guest
            j = 0
            while pos < end:
                length = w.cluster_size if end - pos > w.cluster_size else end - pos
                entry = le64(l2 + j * ENTRY_SIZE)
                if entry == C_CLUSTER_UNALLOCATED:
                    if emap.add(pos, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                        return WALK_MAP_FULL
                elif entry == C_CLUSTER_ZERO:
                    if emap.add(pos, length, KIND_ZERO, NO_HOST, 0, 0) < 0:
                        return WALK_MAP_FULL
                else:
                    where = _offset_class(entry, 1, w)
                    if where:
                        w.bad_index = pos
                        w.bad_offset = entry
                        return WALK_DATA_MISALIGNED if where == 1 else WALK_DATA_OUTSIDE
                    if emap.add(pos, length, KIND_DATA, entry, 0, 0) < 0:
                        return WALK_MAP_FULL
                pos += length
                j += 1
        guest = end
        i += 1
    return WALK_OK


cdef object _l2_tables(Source source, uint64_t* l2_at, uint64_t l1_size, uint64_t table_bytes,
                       uint64_t total):
    """The buffer the offsets in ``l2_at`` point into: the mapped file, or the tables gathered.

    Gathering (where the OS cannot map the file) reads ``total`` bytes,
    already checked against the file size, and rewrites ``l2_at``.
    """
    if source.map():
        return source.view(0, source.size, "QED image")
    gathered = bytearray(total + 1)   # never empty, so the walk may take its address
    cdef uint64_t i, pos = 0
    for i in range(l1_size):
        if l2_at[i] != NO_HOST:
            gathered[pos:pos + table_bytes] = source.read(l2_at[i], table_bytes, "QED L2 table")
            l2_at[i] = pos
            pos += table_bytes
    return gathered


cdef void _init_walk(Walk* w, img):
    """The walk's geometry from a decoded header (``img`` is a :class:`QedImage`)."""
    cdef uint64_t size = img.source.size
    w.virtual_size = img.virtual_size
    w.file_end = size - size % <uint64_t>img.cluster_size
    w.header_end = <uint64_t>img.header_size * <uint64_t>img.cluster_size
    w.cluster_size = img.cluster_size
    w.table_bytes = <uint64_t>img.table_size * <uint64_t>img.cluster_size
    w.table_entries = img.table_entries
    w.l1_size = img.l1_size
    w.bad_index = w.bad_offset = w.l2_bytes_total = 0


# -- the container ------------------------------------------------------------------
def _max_image_size(cluster_size, table_size):
    """qemu's bound: L1 entries x L2 entries x cluster size."""
    entries = table_size * cluster_size // QED_ENTRY_SIZE
    return entries * entries * cluster_size


def _bits(mask):
    return ", ".join(str(b) for b in range(64) if mask >> b & 1)


class QedImage(Container):
    """A QED image: facts from the header, the map from the L1/L2 tables."""

    format = "qed"

    def __init__(self, Source source):
        header = source.read(0, QED_HEADER_SIZE, "QED header")
        (magic, cluster_size, table_size, header_size, features, compat, autoclear,
         l1_table_offset, image_size, backing_offset, backing_size) = QED_HEADER.unpack(header)
        path = source.path
        if magic != QED_MAGIC:
            raise CorruptImage(path, "QED header magic", 0, f"magic {magic!r} is not 'QED\\0'")
        if features & ~QED_FEATURE_MASK:
            raise UnsupportedFeature(
                path, "QED header features", OFF_FEATURES,
                f"unknown-feature: feature bit(s) {_bits(features & ~QED_FEATURE_MASK)} "
                "are not in the spec; the tables cannot be read safely (qemu refuses too)")
        if (cluster_size < limits.QED_MIN_CLUSTER_SIZE
                or cluster_size > limits.QED_MAX_CLUSTER_SIZE
                or cluster_size & (cluster_size - 1)):
            raise CorruptImage(path, "QED header cluster_size", OFF_CLUSTER_SIZE,
                               f"cluster size {cluster_size} is not a power of two from "
                               f"{limits.QED_MIN_CLUSTER_SIZE} to {limits.QED_MAX_CLUSTER_SIZE}")
        if (table_size < limits.QED_MIN_TABLE_SIZE or table_size > limits.QED_MAX_TABLE_SIZE
                or table_size & (table_size - 1)):
            raise CorruptImage(path, "QED header table_size", OFF_TABLE_SIZE,
                               f"table size {table_size} is not a power of two from "
                               f"{limits.QED_MIN_TABLE_SIZE} to {limits.QED_MAX_TABLE_SIZE}")
        if image_size % SECTOR_SIZE:
            raise CorruptImage(path, "QED header image_size", OFF_IMAGE_SIZE,
                               f"image size {image_size} is not a multiple of {SECTOR_SIZE}")
        if image_size > _max_image_size(cluster_size, table_size):
            raise CorruptImage(path, "QED header image_size", OFF_IMAGE_SIZE,
                               f"image size {image_size} exceeds the "
                               f"{_max_image_size(cluster_size, table_size)} bytes two levels "
                               f"of {table_size}-cluster tables can map")
        if image_size > limits.MAX_VIRTUAL_SIZE:
            raise LimitExceeded(path, "QED header image_size", OFF_IMAGE_SIZE,
                                f"image size {image_size} exceeds limits.MAX_VIRTUAL_SIZE="
                                f"{limits.MAX_VIRTUAL_SIZE}")

        super().__init__(source, image_size)
        self.cluster_size = cluster_size
        self.table_size = table_size
        self.header_size = header_size
        self.l1_table_offset = l1_table_offset
        self.table_entries = table_size * cluster_size // QED_ENTRY_SIZE
        span = self.table_entries * cluster_size
        self.l1_size = (image_size + span - 1) // span
        self.dirty = bool(features & QED_F_NEED_CHECK)
        self.details = {
            "cluster_size": cluster_size,
            "table_size": table_size,
            "header_size": header_size,
            "features": features,
            "compat_features": compat,
            "autoclear_features": autoclear,
            "l1_table_offset": l1_table_offset,
            "image_size": image_size,
            "need_check": self.dirty,
        }
        if features & QED_F_BACKING_FILE:
            self.backing_file = self._read_backing_name(backing_offset, backing_size,
                                                        header_size * cluster_size)
            if features & QED_F_BACKING_FORMAT_NO_PROBE:
                self.backing_format = "raw"
        for mask, known, what, offset in (
                (compat, QED_COMPAT_FEATURE_MASK, "compat", OFF_COMPAT_FEATURES),
                (autoclear, QED_AUTOCLEAR_FEATURE_MASK, "autoclear", OFF_AUTOCLEAR_FEATURES)):
            if mask & ~known:
                self.add_finding(UNKNOWN_FEATURE, "info",
                                 f"unknown QED {what} feature bit(s) {_bits(mask & ~known)} "
                                 f"(header offset {offset}); safe to ignore, as the spec says")
        if table_size == 1:
            self.add_finding(UNKNOWN_FEATURE, "info",
                             "QED table size 1 is valid per the spec, but qemu-img refuses "
                             "such an image ('QED table offset is invalid')")
        self._check_l1_location()

    def _read_backing_name(self, offset, length, header_bytes):
        """The backing file name, which must lie inside the header clusters (as qemu checks)."""
        path = self.path
        if offset + length > header_bytes:
            raise CorruptImage(path, "QED backing file name", offset,
                               f"{length} bytes at offset {offset} end past the "
                               f"{header_bytes}-byte header ({self.header_size} clusters)")
        if length > limits.QED_MAX_BACKING_NAME:
            raise LimitExceeded(path, "QED backing file name", offset,
                                f"{length} bytes exceed limits.QED_MAX_BACKING_NAME="
                                f"{limits.QED_MAX_BACKING_NAME}")
        raw = self.source.read(offset, length, "QED backing file name")
        # qemu keeps it as a C string: it ends at the first NUL; empty means none.
        raw = raw.split(b"\x00", 1)[0]
        if not raw:
            return None
        return raw.decode("utf-8", errors="surrogateescape")

    def _check_l1_location(self):
        """Where qemu would refuse the L1 table: a finding now, an error when mapping."""
        cdef Walk w
        _init_walk(&w, self)
        cdef int where = _offset_class(self.l1_table_offset, w.table_bytes, &w)
        self._l1_problem = where
        if where == 2:
            self.add_finding(TRUNCATED, "error",
                             f"the QED L1 table ({w.table_bytes} bytes at offset "
                             f"{self.l1_table_offset}) ends past the last whole cluster of the "
                             f"file ({self.source.size} bytes)")
        elif where == 1:
            self.add_finding(CORRUPT, "error",
                             f"the QED L1 table offset {self.l1_table_offset} is not a "
                             f"cluster boundary past the {w.header_end}-byte header")

    def build_extent_map(self):
        """Check where every L2 table lies, then map cluster by cluster, both without the GIL."""
        cdef Source source = self.source
        cdef Walk w
        cdef WalkStatus status
        cdef ExtentMap emap = ExtentMap(self.virtual_size, self.cluster_size)
        cdef const uint8_t[::1] l1
        cdef const uint8_t[::1] tables
        cdef uint64_t* l2_at
        _init_walk(&w, self)
        path = self.path
        if self._l1_problem == 2:
            raise TruncatedImage(path, "QED L1 table", self.l1_table_offset,
                                 f"{w.table_bytes} bytes end past the last whole cluster of "
                                 f"the file ({source.size} bytes)")
        if self._l1_problem == 1:
            raise CorruptImage(path, "QED L1 table", self.l1_table_offset,
                               "the offset is not a cluster boundary past the header")
        if self.l1_size == 0:
            return emap
        # Inside the file: the whole table is (checked above); these entries are its start.
        l1 = source.view(self.l1_table_offset, self.l1_size * QED_ENTRY_SIZE, "QED L1 table")
        l2_at = <uint64_t*>malloc(self.l1_size * sizeof(uint64_t))
        if l2_at == NULL:
            raise MemoryError()
        try:
            with nogil:
                status = _locate_l2(&l1[0], l2_at, &w)
            if status == WALK_L2_OUTSIDE:
                raise TruncatedImage(path, f"QED L2 table (L1 entry {w.bad_index})",
                                     w.bad_offset,
                                     f"{w.table_bytes} bytes end past the last whole cluster "
                                     f"of the file ({source.size} bytes)")
            if status == WALK_L2_MISALIGNED:
                raise CorruptImage(path, f"QED L2 table (L1 entry {w.bad_index})", w.bad_offset,
                                   "the offset is not a cluster boundary past the header "
                                   "(qemu fails the read)")
            if status == WALK_L2_OVERLAP:
                raise CorruptImage(path, f"QED L2 table (L1 entry {w.bad_index})", w.bad_offset,
                                   f"the L2 tables add up to more than the file "
                                   f"({source.size} bytes): entries share tables")
            tables = _l2_tables(source, l2_at, w.l1_size, w.table_bytes, w.l2_bytes_total)
            with nogil:
                status = _walk_l2(emap, &tables[0], l2_at, &w)
        finally:
            free(l2_at)
        if status == WALK_MAP_FULL:
            raise LimitExceeded(path, "QED L2 tables", None,
                                f"more than limits.MAX_EXTENTS={limits.MAX_EXTENTS} extents")
        if status == WALK_DATA_OUTSIDE:
            raise TruncatedImage(path, f"QED L2 entry for guest offset {w.bad_index}",
                                 w.bad_offset,
                                 f"the data cluster starts past the last whole cluster of the "
                                 f"file ({source.size} bytes; qemu fails the read)")
        if status == WALK_DATA_MISALIGNED:
            raise CorruptImage(path, f"QED L2 entry for guest offset {w.bad_index}",
                               w.bad_offset,
                               "the data cluster offset is not a cluster boundary past the "
                               "header (qemu fails the read)")
        return emap


def probe(Source source):
    """The ``QED\\0`` magic at offset 0 (a shorter file is not QED, as for qemu)."""
    return source.size >= 4 and source.read(0, 4, "QED header") == QED_MAGIC


FORMAT = Format("qed", probe, QedImage)

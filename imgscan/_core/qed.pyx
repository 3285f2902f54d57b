"""QEMU Enhanced Disk (QED) images.

Spec: qemu's docs/interop/qed_spec.txt ("QED Image File Format
Specification"); where it is silent, qemu's driver block/qed.c and qed.h
decide (read to learn the rules; no code is taken). All integers are
little-endian. The layout:

* the file is a sequence of clusters; cluster 0 starts with a 64-byte
  *header* (``QED_HEADER`` in :mod:`.c_qed`): magic ``QED\\0``, cluster size, table
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

from libc.stdint cimport uint64_t
from libc.string cimport memset

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage, UnsupportedFeature
from imgscan.findings import CORRUPT, TRUNCATED, UNKNOWN_FEATURE

from .c_qed import (
    QED_AUTOCLEAR_FEATURE_MASK, QED_CLUSTER_ZERO, QED_COMPAT_FEATURE_MASK, QED_ENTRY_SIZE,
    QED_F_BACKING_FILE, QED_F_BACKING_FORMAT_NO_PROBE, QED_F_NEED_CHECK, QED_FEATURE_MASK,
    QED_HEADER, QED_MAGIC, SECTOR_SIZE,
)
from .container import Container, Format, backing_file_name
from .extents cimport ExtentMap
from .source cimport Source
from .twolevel cimport (
    TwoLevel, WALK_DATA_MISPLACED, WALK_DATA_OUTSIDE, WALK_L2_MISPLACED, WALK_L2_OUTSIDE,
    WalkStatus, misplaced, outside, refuse_shared, walk_two_level,
)

#: What the announcement of the L1 table takes after the table's clusters: qemu-img
#: writes the guest's first data clusters (its partition table and first volume) and
#: the first L2 table right after the L1 table, so a remote source fetches them with
#: the L1 entries in one round trip rather than one after the other. A constant, never
#: a size the file claims.
L1_FOLLOWING_BYTES = 512 * 1024


cdef void _init_walk(TwoLevel* w, img):
    """The walk's geometry from a decoded header (``img`` is a :class:`QedImage`).

    qemu's rule for every offset: cluster-aligned, at or past the header, and
    starting before the file's last whole cluster ends.
    """
    cdef uint64_t size = img.source.size
    cdef uint64_t cluster_size = img.cluster_size
    memset(w, 0, sizeof(TwoLevel))
    w.big_endian = False
    w.virtual_size = img.virtual_size
    w.cluster_size = cluster_size
    w.span = cluster_size * <uint64_t>img.table_entries
    w.l1_size = img.l1_size
    w.l2_bytes = <uint64_t>img.table_size * cluster_size
    w.file_size = size
    w.file_end = size - size % cluster_size
    w.header_end = <uint64_t>img.header_size * cluster_size
    w.l2_align_mask = w.data_align_mask = cluster_size - 1
    w.data_past_eof_fatal = True
    w.zero_entry = QED_CLUSTER_ZERO


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
        h = QED_HEADER.unpack(source.read(0, QED_HEADER.size, "QED header"))
        magic = h["magic"]
        cluster_size = h["cluster_size"]
        table_size = h["table_size"]
        header_size = h["header_size"]
        features = h["features"]
        compat = h["compat_features"]
        autoclear = h["autoclear_features"]
        l1_table_offset = h["l1_table_offset"]
        image_size = h["image_size"]
        path = source.path
        if magic != QED_MAGIC:
            raise CorruptImage(path, "QED header magic", 0, f"magic {magic!r} is not 'QED\\0'")
        if features & ~QED_FEATURE_MASK:
            raise UnsupportedFeature(
                path, "QED header features", QED_HEADER.offset("features"),
                f"feature bit(s) {_bits(features & ~QED_FEATURE_MASK)} "
                "are not in the spec; the tables cannot be read safely (qemu refuses too)")
        if (cluster_size < limits.QED_MIN_CLUSTER_SIZE
                or cluster_size > limits.QED_MAX_CLUSTER_SIZE
                or cluster_size & (cluster_size - 1)):
            raise CorruptImage(path, "QED header cluster_size", QED_HEADER.offset("cluster_size"),
                               f"cluster size {cluster_size} is not a power of two from "
                               f"{limits.QED_MIN_CLUSTER_SIZE} to {limits.QED_MAX_CLUSTER_SIZE}")
        if (table_size < limits.QED_MIN_TABLE_SIZE or table_size > limits.QED_MAX_TABLE_SIZE
                or table_size & (table_size - 1)):
            raise CorruptImage(path, "QED header table_size", QED_HEADER.offset("table_size"),
                               f"table size {table_size} is not a power of two from "
                               f"{limits.QED_MIN_TABLE_SIZE} to {limits.QED_MAX_TABLE_SIZE}")
        if image_size % SECTOR_SIZE:
            raise CorruptImage(path, "QED header image_size", QED_HEADER.offset("image_size"),
                               f"image size {image_size} is not a multiple of {SECTOR_SIZE}")
        if image_size > _max_image_size(cluster_size, table_size):
            raise CorruptImage(path, "QED header image_size", QED_HEADER.offset("image_size"),
                               f"image size {image_size} exceeds the "
                               f"{_max_image_size(cluster_size, table_size)} bytes two levels "
                               f"of {table_size}-cluster tables can map")
        limits.enforce(image_size, "MAX_VIRTUAL_SIZE", path, "QED header image_size",
                       QED_HEADER.offset("image_size"), "image size")

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
            self.backing_file = self._read_backing_name(h["backing_filename_offset"],
                                                        h["backing_filename_size"],
                                                        header_size * cluster_size)
            if features & QED_F_BACKING_FORMAT_NO_PROBE:
                self.backing_format = "raw"
        for mask, known, what in ((compat, QED_COMPAT_FEATURE_MASK, "compat"),
                                  (autoclear, QED_AUTOCLEAR_FEATURE_MASK, "autoclear")):
            offset = QED_HEADER.offset(f"{what}_features")
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
        limits.enforce(length, "QED_MAX_BACKING_NAME", path, "QED backing file name", offset,
                       "backing file name length")
        return backing_file_name(self.source.read(offset, length, "QED backing file name"))

    def _check_l1_location(self):
        """Where qemu would refuse the L1 table: a finding now, an error when mapping."""
        cdef TwoLevel w
        _init_walk(&w, self)
        cdef uint64_t offset = self.l1_table_offset
        self._l1_problem = (1 if misplaced(offset, w.l2_align_mask, &w)
                            else 2 if outside(offset, w.l2_bytes, &w) else 0)
        if self._l1_problem == 2:
            self.add_finding(TRUNCATED, "error",
                             f"the QED L1 table ({w.l2_bytes} bytes at offset "
                             f"{self.l1_table_offset}) ends past the last whole cluster of the "
                             f"file ({self.source.size} bytes)")
        elif self._l1_problem == 1:
            self.add_finding(CORRUPT, "error",
                             f"the QED L1 table offset {self.l1_table_offset} is not a "
                             f"cluster boundary past the {w.header_end}-byte header")

    def build_extent_map(self):
        """Walk the tables (:mod:`.twolevel`): every L2 table where qemu allows it, then
        cluster by cluster; a misplaced or out-of-file data cluster is refused, as qemu does."""
        cdef Source source = self.source
        cdef TwoLevel w
        cdef WalkStatus status
        cdef ExtentMap emap = ExtentMap(self.virtual_size, self.cluster_size)
        _init_walk(&w, self)
        path = self.path
        if self._l1_problem == 2:
            raise TruncatedImage(path, "QED L1 table", self.l1_table_offset,
                                 f"{w.l2_bytes} bytes end past the last whole cluster of "
                                 f"the file ({source.size} bytes)")
        if self._l1_problem == 1:
            raise CorruptImage(path, "QED L1 table", self.l1_table_offset,
                               "the offset is not a cluster boundary past the header")
        if self.l1_size == 0:
            return emap
        if source.wants_prefetch:
            # the L1 entries the walk reads, and what qemu-img writes after the table
            source.prefetch([(self.l1_table_offset, self.l1_size * QED_ENTRY_SIZE),
                             (self.l1_table_offset + w.l2_bytes, L1_FOLLOWING_BYTES)],
                            "QED L1 table and the clusters after it")
        # Inside the file: the whole table is (checked above); these entries are its start.
        l1 = source.view(self.l1_table_offset, self.l1_size * QED_ENTRY_SIZE, "QED L1 table")
        status = walk_two_level(source, emap, l1, &w, "QED image", "QED L2 table")
        if status == WALK_L2_OUTSIDE:
            raise TruncatedImage(path, f"QED L2 table (L1 entry {w.bad_index})", w.bad_offset,
                                 f"{w.l2_bytes} bytes end past the last whole cluster "
                                 f"of the file ({source.size} bytes)")
        if status == WALK_L2_MISPLACED:
            raise CorruptImage(path, f"QED L2 table (L1 entry {w.bad_index})", w.bad_offset,
                               "the offset is not a cluster boundary past the header "
                               "(qemu fails the read)")
        refuse_shared(status, &w, emap, path, "QED L2 table")
        if status == WALK_DATA_OUTSIDE:
            raise TruncatedImage(path, f"QED L2 entry for guest offset {w.bad_index}",
                                 w.bad_offset,
                                 f"the data cluster starts past the last whole cluster of the "
                                 f"file ({source.size} bytes; qemu fails the read)")
        if status == WALK_DATA_MISPLACED:
            raise CorruptImage(path, f"QED L2 entry for guest offset {w.bad_index}",
                               w.bad_offset,
                               "the data cluster offset is not a cluster boundary past the "
                               "header (qemu fails the read)")
        return emap


def probe(Source source):
    """The ``QED\\0`` magic at offset 0 (a shorter file is not QED, as for qemu)."""
    return source.size >= 4 and source.read(0, 4, "QED header") == QED_MAGIC


FORMAT = Format("qed", probe, QedImage)

"""QEMU QCOW version 1: header, two-level cluster tables, compressed clusters.

Spec: QEMU's original "QCOW" image format, version 1. It has no document of
its own; the reference is qemu's driver, block/qcow.c, whose rules are
followed here (without its code). The layout, all integers big-endian:

* a 48-byte header at offset 0 (``QCOW_HEADER`` in :mod:`.c_qcow`);
* optionally a backing file name, ``backing_file_size`` bytes at
  ``backing_file_offset`` (no terminating NUL);
* the L1 table at ``l1_table_offset``: one u64 per ``2**(cluster_bits +
  l2_bits)`` guest bytes, each the host offset of an L2 table or 0;
* L2 tables of ``2**l2_bits`` u64 entries. An entry is 0 (unallocated: the
  backing file shows through, else zeros), the host offset of a data
  cluster, or, with bit 63 set (``QCOW_OFLAG_COMPRESSED``), a compressed
  cluster: the low ``63 - cluster_bits`` bits hold its host offset and the
  ``cluster_bits`` bits above them its stored byte count. Compressed data is
  a raw deflate stream (no zlib header, 4 KiB window) of exactly one cluster.

There are no zero clusters, refcounts or snapshots. ``crypt_method`` 1 means
AES-CBC per 512-byte sector with a key made from a passphrase: imgscan
reports it and builds the map, but never decrypts.

The guest size is ``size`` rounded down to a whole 512-byte sector, because
qemu keeps sizes in sectors; the L1 table is sized from the unrounded value,
as qemu does, so both agree on where the tables are.
"""

from libc.stdint cimport uint64_t
from libc.string cimport memset

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage, UnsupportedFeature
from imgscan.findings import TRUNCATED

from .c_qcow import (
    QCOW_CRYPT_AES, QCOW_CRYPT_NONE, QCOW_ENTRY_SIZE, QCOW_HEADER, QCOW_MAGIC,
    QCOW_OFLAG_COMPRESSED, QCOW_VERSION, QCOW_VERSION_BYTES, SECTOR_SIZE,
)
from .container import Container, Format, backing_file_name
from .extents cimport ExtentMap
from .inflate import inflate_unit
from .source cimport Source
from .twolevel cimport (
    TwoLevel, WALK_DATA_MISPLACED, WALK_L2_OUTSIDE, WalkStatus, refuse_shared, walk_two_level,
)


class QcowImage(Container):
    """A QCOW version 1 image: facts from the header, the map from the L1/L2 tables."""

    format = "qcow"

    def __init__(self, Source source):
        h = QCOW_HEADER.unpack(source.read(0, QCOW_HEADER.size, "qcow header"))
        path = source.path
        version = h["version"]
        size = h["size"]
        cluster_bits = h["cluster_bits"]
        l2_bits = h["l2_bits"]
        crypt_method = h["crypt_method"]
        l1_table_offset = h["l1_table_offset"]
        if h["magic"] != QCOW_MAGIC or version != QCOW_VERSION:
            raise UnsupportedFeature(path, "qcow header", QCOW_HEADER.offset("version"),
                                     f"not a QCOW version {QCOW_VERSION} image (version {version})")
        if size <= 1:
            raise CorruptImage(path, "qcow header size", QCOW_HEADER.offset("size"),
                               f"image size {size} is too small (qemu needs at least 2 bytes)")
        limits.enforce(size, "MAX_VIRTUAL_SIZE", path, "qcow header size",
                       QCOW_HEADER.offset("size"), "image size")
        if not limits.QCOW_MIN_CLUSTER_BITS <= cluster_bits <= limits.QCOW_MAX_CLUSTER_BITS:
            raise CorruptImage(path, "qcow header cluster_bits",
                               QCOW_HEADER.offset("cluster_bits"),
                               f"cluster_bits {cluster_bits} is outside "
                               f"{limits.QCOW_MIN_CLUSTER_BITS}..{limits.QCOW_MAX_CLUSTER_BITS}")
        if not limits.QCOW_MIN_L2_BITS <= l2_bits <= limits.QCOW_MAX_L2_BITS:
            raise CorruptImage(path, "qcow header l2_bits", QCOW_HEADER.offset("l2_bits"),
                               f"l2_bits {l2_bits} is outside "
                               f"{limits.QCOW_MIN_L2_BITS}..{limits.QCOW_MAX_L2_BITS}")
        if crypt_method not in (QCOW_CRYPT_NONE, QCOW_CRYPT_AES):
            raise UnsupportedFeature(path, "qcow header crypt_method",
                                     QCOW_HEADER.offset("crypt_method"),
                                     f"unknown encryption method {crypt_method}")
        shift = cluster_bits + l2_bits
        l1_size = (size + (1 << shift) - 1) >> shift
        l1_bytes = l1_size * QCOW_ENTRY_SIZE
        limits.enforce(l1_bytes, "QCOW_MAX_L1_BYTES", path, "L1 table", l1_table_offset,
                       f"{l1_size}-entry L1 table, in bytes,")

        super().__init__(source, size - size % SECTOR_SIZE)
        self.cluster_size = 1 << cluster_bits
        self.cluster_bits = cluster_bits
        self.l2_bits = l2_bits
        self.l1_size = l1_size
        self.l1_table_offset = l1_table_offset
        if crypt_method == QCOW_CRYPT_AES:
            self.encrypted = True
            self.encryption = "aes"
        self.backing_file = self._read_backing_name(h["backing_file_offset"],
                                                    h["backing_file_size"])
        self.details = {"mtime": h["mtime"], "cluster_bits": cluster_bits, "l2_bits": l2_bits}
        if not source.contains(l1_table_offset, l1_bytes):
            # Raised again when the map is built; the facts above stay readable.
            self.add_finding(TRUNCATED, "error",
                             f"the L1 table ({l1_bytes} bytes at offset {l1_table_offset}) "
                             f"ends past the end of the file ({source.size} bytes)")

    def _read_backing_name(self, offset, length):
        """The backing file name, or ``None``; qemu reads no name at offset 0."""
        if offset == 0:
            return None
        limits.enforce(length, "QCOW_MAX_BACKING_NAME", self.path, "backing file name", offset,
                       "backing file name length")
        return backing_file_name(self.source.read(offset, length, "backing file name"))

    def build_extent_map(self):
        """Walk the tables (:mod:`.twolevel`): every L2 table inside the file, then cluster by
        cluster; data clusters past the end of the file are reported, not refused."""
        cdef Source source = self.source
        cdef TwoLevel w
        cdef WalkStatus status
        cdef ExtentMap emap = ExtentMap(self.virtual_size, self.cluster_size)
        cdef uint64_t cluster_size = self.cluster_size
        l1 = source.view(self.l1_table_offset, self.l1_size * QCOW_ENTRY_SIZE, "L1 table")
        memset(&w, 0, sizeof(w))
        w.big_endian = True
        w.virtual_size = self.virtual_size
        w.cluster_size = cluster_size
        w.span = cluster_size << self.l2_bits
        w.l1_size = self.l1_size
        w.l2_bytes = QCOW_ENTRY_SIZE << self.l2_bits
        w.file_size = w.file_end = source.size
        w.data_align_mask = SECTOR_SIZE - 1
        w.compressed_flag = QCOW_OFLAG_COMPRESSED
        w.compressed_shift = 63 - self.cluster_bits
        status = walk_two_level(source, emap, l1, &w, "qcow image", "L2 table")
        path = self.path
        if status == WALK_L2_OUTSIDE:
            raise TruncatedImage(path, f"L2 table (L1 entry {w.bad_index})", w.bad_offset,
                                 f"needs {w.l2_bytes} bytes but the file ends at {source.size}")
        refuse_shared(status, &w, emap, path, "L2 table")
        if status == WALK_DATA_MISPLACED:
            raise CorruptImage(path, f"L2 entry for guest offset {w.bad_index}", w.bad_offset,
                               "data cluster offset is not a multiple of 512 (qemu refuses it)")
        if w.past_eof:
            self.add_finding(TRUNCATED, "error",
                             f"{w.past_eof} cluster(s) lie past the end of the file (first at "
                             f"guest offset {w.first_past_eof}): data clusters read as zeros "
                             f"there, as in qemu; compressed ones cannot be read")
        return emap

    def decompress(self, host, stored_length):
        """One cluster's guest bytes from a raw deflate stream of ``stored_length`` bytes."""
        return inflate_unit(self, host, stored_length, self.cluster_size, "compressed cluster")


def probe(Source source):
    """Magic and version 1; a file cut short inside the version still counts.

    A damaged header is then reported as truncated by the decoder instead of
    the file being taken for raw. Version 2 and 3 belong to qcow2.
    """
    cdef uint64_t available = source.size if source.size < 8 else 8
    head = source.read(0, available, "qcow header")
    return (len(head) >= 4 and head[:4] == QCOW_MAGIC
            and QCOW_VERSION_BYTES.startswith(head[4:]))


FORMAT = Format("qcow", probe, QcowImage)

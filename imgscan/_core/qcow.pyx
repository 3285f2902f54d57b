"""QEMU QCOW version 1: header, two-level cluster tables, compressed clusters.

Spec: QEMU's original "QCOW" image format, version 1. It has no document of
its own; the reference is qemu's driver, block/qcow.c, whose rules are
followed here (without its code). The layout, all integers big-endian:

* a 48-byte header at offset 0 (``QCOW_HEADER`` below);
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

import struct
import zlib

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from imgscan import limits
from imgscan.errors import (
    CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature,
)
from imgscan.findings import TRUNCATED

from .binary cimport be64
from .container import Container, Format
from .inflate import StreamError, zlib_bounded
from .extents cimport (
    ExtentMap, KIND_COMPRESSED, KIND_DATA, KIND_UNALLOCATED, NO_HOST,
)
from .source cimport Source

# -- on-disk layout (block/qcow.c) ----------------------------------------------
QCOW_MAGIC = b"QFI\xfb"
QCOW_VERSION = 1
#: magic, version, backing_file_offset, backing_file_size, mtime, size,
#: cluster_bits, l2_bits, padding, crypt_method, l1_table_offset
QCOW_HEADER = struct.Struct(">4sIQIIQBBHIQ")
QCOW_HEADER_SIZE = QCOW_HEADER.size        # 48
QCOW_VERSION_FIELD = b"\x00\x00\x00\x01"   # the version as stored, bytes 4..8
#: Byte offsets of the header fields that errors point at.
OFF_VERSION = 4
OFF_SIZE = 24
OFF_CLUSTER_BITS = 32
OFF_L2_BITS = 33
OFF_CRYPT_METHOD = 36
QCOW_CRYPT_NONE = 0
QCOW_CRYPT_AES = 1
#: Size of one L1 / L2 entry (a big-endian u64).
QCOW_ENTRY_SIZE = 8
cdef uint64_t ENTRY_SIZE = QCOW_ENTRY_SIZE
#: Bit 63 of an L2 entry: the cluster is compressed.
cdef uint64_t QCOW_OFLAG_COMPRESSED = 1ULL << 63
#: Guest sizes and data cluster offsets are in 512-byte sectors.
cdef uint64_t SECTOR_SIZE = 512
#: Raw deflate with qemu's 4 KiB window (negative: no zlib header).
DEFLATE_WBITS = -12


# -- the table walk ----------------------------------------------------------------
cdef struct Walk:
    # geometry, from the header
    uint64_t virtual_size
    uint64_t file_size
    uint64_t l1_size
    uint32_t cluster_bits
    uint32_t l2_bits
    # results
    uint64_t bad_index          # L1 index of an L2 table outside the file
    uint64_t bad_offset         # ... and its host offset
    uint64_t l2_bytes_total     # bytes of L2 tables the L1 table references
    uint64_t past_eof           # clusters not stored inside the file
    uint64_t first_past_eof     # guest offset of the first of them
    uint64_t misaligned_guest   # guest offset of a data cluster not on a sector
    uint64_t misaligned_host


cdef enum WalkStatus:
    WALK_OK = 0
    WALK_L2_OUTSIDE = 1     # an L2 table is not wholly inside the file
    WALK_L2_OVERLAP = 2     # L2 tables add up to more than the file: they alias
    WALK_MAP_FULL = 3       # limits.MAX_EXTENTS reached
    WALK_MISALIGNED = 4     # a data cluster offset qemu refuses to read


cdef WalkStatus _locate_l2(const uint8_t* l1, uint64_t* l2_at, Walk* w) noexcept nogil:
    """Check every L2 table the L1 table names; record its host offset in ``l2_at``.

    Each table must lie inside the file, and together they may not be larger
    than the file: qemu gives every L1 entry its own table, so more bytes of
    tables than of file means entries share one, and walking such aliases
    would cost time the file size does not bound.
    """
    cdef uint64_t l2_bytes = ENTRY_SIZE << w.l2_bits
    cdef uint64_t i, off
    for i in range(w.l1_size):
        off = be64(l1 + i * ENTRY_SIZE)
        if off == 0:
            l2_at[i] = NO_HOST
            continue
        if off > w.file_size or l2_bytes > w.file_size - off:
            w.bad_index = i
            w.bad_offset = off
            return WALK_L2_OUTSIDE
        w.l2_bytes_total += l2_bytes
        if w.l2_bytes_total > w.file_size:
            w.bad_index = i
            w.bad_offset = off
            return WALK_L2_OVERLAP
        l2_at[i] = off
    return WALK_OK


cdef WalkStatus _walk_l2(ExtentMap emap, const uint8_t* tables, const uint64_t* l2_at,
                         Walk* w) noexcept nogil:
    """Append the guest disk to ``emap`` in order, one L1 span or cluster at a time.

    ``tables + l2_at[i]`` is the L2 table of L1 entry ``i`` (``NO_HOST``: none).
    """
    cdef uint64_t cluster_size = 1ULL << w.cluster_bits
    cdef uint64_t span = cluster_size << w.l2_bits
    cdef uint64_t offset_mask = (1ULL << (63 - w.cluster_bits)) - 1
    cdef uint64_t csize_mask = cluster_size - 1
    cdef uint64_t guest = 0, end, pos, length, entry, host, aux
    cdef uint64_t i = 0, j
    cdef uint32_t kind
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
                length = cluster_size if end - pos > cluster_size else end - pos
                entry = be64(l2 + j * ENTRY_SIZE)
                aux = 0
                if entry == 0:
                    kind = KIND_UNALLOCATED
                    host = NO_HOST
                elif entry & QCOW_OFLAG_COMPRESSED:
                    kind = KIND_COMPRESSED
                    host = entry & offset_mask
                    aux = (entry >> (63 - w.cluster_bits)) & csize_mask
                    if host > w.file_size or aux > w.file_size - host:
                        if w.past_eof == 0:
                            w.first_past_eof = pos
                        w.past_eof += 1
                else:
                    kind = KIND_DATA
                    host = entry
                    if host % SECTOR_SIZE:
                        w.misaligned_guest = pos
                        w.misaligned_host = host
                        return WALK_MISALIGNED
                    # Past the end of the file qemu reads zeros, and so does
                    # the reader (Source.copy_into); only report it.
                    if host >= w.file_size:
                        if w.past_eof == 0:
                            w.first_past_eof = pos
                        w.past_eof += 1
                if emap.add(pos, length, kind, host, 0, aux) < 0:
                    return WALK_MAP_FULL
                pos += length
                j += 1
        guest = end
        i += 1
    return WALK_OK


cdef object _l2_tables(Source source, uint64_t* l2_at, uint64_t l1_size, uint64_t l2_bytes,
                       uint64_t total):
    """The buffer the offsets in ``l2_at`` point into.

    That is the mapped file itself (no copy). A source that could not be
    mapped has its L2 tables read into one buffer, ``total`` bytes (checked
    against the file size), and ``l2_at`` is rewritten to positions in it.
    """
    if source.map():
        return source.view(0, source.size, "qcow image")
    gathered = bytearray(total + 1)   # never empty, so the walk may take its address
    cdef uint64_t i, pos = 0
    for i in range(l1_size):
        if l2_at[i] != NO_HOST:
            gathered[pos:pos + l2_bytes] = source.read(l2_at[i], l2_bytes, "L2 table")
            l2_at[i] = pos
            pos += l2_bytes
    return gathered


# -- the container ------------------------------------------------------------------
class QcowImage(Container):
    """A QCOW version 1 image: facts from the header, the map from the L1/L2 tables."""

    format = "qcow"

    def __init__(self, Source source):
        header = source.read(0, QCOW_HEADER_SIZE, "qcow header")
        (magic, version, backing_file_offset, backing_file_size, mtime, size,
         cluster_bits, l2_bits, _padding, crypt_method, l1_table_offset) = \
            QCOW_HEADER.unpack(header)
        path = source.path
        if magic != QCOW_MAGIC or version != QCOW_VERSION:
            raise UnsupportedFeature(path, "qcow header", OFF_VERSION,
                                     f"not a QCOW version {QCOW_VERSION} image (version {version})")
        if size <= 1:
            raise CorruptImage(path, "qcow header size", OFF_SIZE,
                               f"image size {size} is too small (qemu needs at least 2 bytes)")
        if size > limits.MAX_VIRTUAL_SIZE:
            raise LimitExceeded(path, "qcow header size", OFF_SIZE,
                                f"image size {size} exceeds limits.MAX_VIRTUAL_SIZE")
        if not limits.QCOW_MIN_CLUSTER_BITS <= cluster_bits <= limits.QCOW_MAX_CLUSTER_BITS:
            raise CorruptImage(path, "qcow header cluster_bits", OFF_CLUSTER_BITS,
                               f"cluster_bits {cluster_bits} is outside "
                               f"{limits.QCOW_MIN_CLUSTER_BITS}..{limits.QCOW_MAX_CLUSTER_BITS}")
        if not limits.QCOW_MIN_L2_BITS <= l2_bits <= limits.QCOW_MAX_L2_BITS:
            raise CorruptImage(path, "qcow header l2_bits", OFF_L2_BITS,
                               f"l2_bits {l2_bits} is outside "
                               f"{limits.QCOW_MIN_L2_BITS}..{limits.QCOW_MAX_L2_BITS}")
        if crypt_method not in (QCOW_CRYPT_NONE, QCOW_CRYPT_AES):
            raise UnsupportedFeature(path, "qcow header crypt_method", OFF_CRYPT_METHOD,
                                     f"unknown encryption method {crypt_method}")
        shift = cluster_bits + l2_bits
        l1_size = (size + (1 << shift) - 1) >> shift
        l1_bytes = l1_size * QCOW_ENTRY_SIZE
        if l1_bytes > limits.QCOW_MAX_L1_BYTES:
            raise LimitExceeded(path, "L1 table", l1_table_offset,
                                f"{l1_size} entries ({l1_bytes} bytes) exceed "
                                f"limits.QCOW_MAX_L1_BYTES={limits.QCOW_MAX_L1_BYTES}")

        super().__init__(source, size - size % SECTOR_SIZE)
        self.cluster_size = 1 << cluster_bits
        self.cluster_bits = cluster_bits
        self.l2_bits = l2_bits
        self.l1_size = l1_size
        self.l1_table_offset = l1_table_offset
        if crypt_method == QCOW_CRYPT_AES:
            self.encrypted = True
            self.encryption = "aes"
        self.backing_file = self._read_backing_name(backing_file_offset, backing_file_size)
        self.details = {"mtime": mtime, "cluster_bits": cluster_bits, "l2_bits": l2_bits}
        if not source.contains(l1_table_offset, l1_bytes):
            # Raised again when the map is built; the facts above stay readable.
            self.add_finding(TRUNCATED, "error",
                             f"the L1 table ({l1_bytes} bytes at offset {l1_table_offset}) "
                             f"ends past the end of the file ({source.size} bytes)")

    def _read_backing_name(self, offset, length):
        """The backing file name, or ``None``; qemu reads no name at offset 0."""
        if offset == 0:
            return None
        if length > limits.QCOW_MAX_BACKING_NAME:
            raise LimitExceeded(self.path, "backing file name", offset,
                                f"{length} bytes exceed limits.QCOW_MAX_BACKING_NAME="
                                f"{limits.QCOW_MAX_BACKING_NAME}")
        raw = self.source.read(offset, length, "backing file name")
        # qemu keeps the name as a C string: it ends at the first NUL, and an
        # empty name means no backing file.
        raw = raw.split(b"\x00", 1)[0]
        if not raw:
            return None
        return raw.decode("utf-8", errors="surrogateescape")

    def build_extent_map(self):
        """Walk the tables: check where every L2 table lies, then map cluster by cluster.

        Both passes run without the GIL over the mapped file; only the L2
        table positions (one u64 per L1 entry, capped with the L1 table)
        are allocated.
        """
        cdef Source source = self.source
        cdef Walk w
        cdef WalkStatus status
        cdef ExtentMap emap = ExtentMap(self.virtual_size, self.cluster_size)
        cdef const uint8_t[::1] l1 = source.view(
            self.l1_table_offset, self.l1_size * QCOW_ENTRY_SIZE, "L1 table")
        cdef const uint8_t[::1] tables
        cdef uint64_t* l2_at = <uint64_t*>malloc(self.l1_size * sizeof(uint64_t))
        if l2_at == NULL:
            raise MemoryError()
        memset(&w, 0, sizeof(w))
        w.virtual_size = self.virtual_size
        w.file_size = source.size
        w.l1_size = self.l1_size
        w.cluster_bits = self.cluster_bits
        w.l2_bits = self.l2_bits
        try:
            with nogil:
                status = _locate_l2(&l1[0], l2_at, &w)
            l2_bytes = QCOW_ENTRY_SIZE << self.l2_bits
            if status == WALK_L2_OUTSIDE:
                raise TruncatedImage(self.path, f"L2 table (L1 entry {w.bad_index})",
                                     w.bad_offset,
                                     f"needs {l2_bytes} bytes but the file ends at {source.size}")
            if status == WALK_L2_OVERLAP:
                raise CorruptImage(self.path, f"L2 table (L1 entry {w.bad_index})", w.bad_offset,
                                   f"the L2 tables add up to more than the file "
                                   f"({source.size} bytes): entries share tables")
            tables = _l2_tables(source, l2_at, w.l1_size, l2_bytes, w.l2_bytes_total)
            with nogil:
                status = _walk_l2(emap, &tables[0], l2_at, &w)
        finally:
            free(l2_at)
        if status == WALK_MAP_FULL:
            raise LimitExceeded(self.path, "L2 tables", None,
                                f"more than limits.MAX_EXTENTS={limits.MAX_EXTENTS} extents")
        if status == WALK_MISALIGNED:
            raise CorruptImage(self.path, f"L2 entry for guest offset {w.misaligned_guest}",
                               w.misaligned_host,
                               "data cluster offset is not a multiple of 512 (qemu refuses it)")
        if w.past_eof:
            self.add_finding(TRUNCATED, "error",
                             f"{w.past_eof} cluster(s) lie past the end of the file (first at "
                             f"guest offset {w.first_past_eof}): data clusters read as zeros "
                             f"there, as in qemu; compressed ones cannot be read")
        return emap

    def decompress(self, host, stored_length):
        """One cluster's guest bytes from a raw deflate stream of ``stored_length`` bytes.

        The output is capped at the cluster size; a stream that would expand
        further is a compression bomb (qemu silently cuts it off).
        """
        cluster_size = self.cluster_size
        data = self.source.view(host, stored_length, "compressed cluster")
        try:
            out, more = zlib_bounded(zlib.decompressobj(DEFLATE_WBITS), data, cluster_size)
        except StreamError as exc:
            raise CorruptImage(self.path, "compressed cluster", host, str(exc)) from None
        if more:
            raise self.compression_bomb("compressed cluster", host, cluster_size)
        if len(out) != cluster_size:
            raise CorruptImage(self.path, "compressed cluster", host,
                               f"decompresses to {len(out)} bytes, not the "
                               f"{cluster_size}-byte cluster")
        return out


def probe(Source source):
    """Magic and version 1; a file cut short inside the version still counts.

    A damaged header is then reported as truncated by the decoder instead of
    the file being taken for raw. Version 2 and 3 belong to qcow2.
    """
    cdef uint64_t available = source.size if source.size < 8 else 8
    head = source.read(0, available, "qcow header")
    return (len(head) >= 4 and head[:4] == QCOW_MAGIC
            and QCOW_VERSION_FIELD.startswith(head[4:]))


FORMAT = Format("qcow", probe, QcowImage)

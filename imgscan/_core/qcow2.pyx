# cython: language_level=3
"""QEMU qcow2 images, versions 2 and 3.

Spec: qemu ``docs/interop/qcow2.txt`` ("qcow2 image format"). Where the spec
leaves room, qemu 7.2's ``block/qcow2.c`` is the reference behaviour, since
``qemu-img`` is what every image here is compared with.

The header, its extensions, the backing file name and the snapshot table are
small and parsed at Python level when the image is opened, so facts are
available even when the tables are damaged. The L1/L2 walk that describes the
guest disk runs in ``nogil`` loops over the mapped file and only when the
extent map is first needed.

Deliberate choices (each one a place where a lax reader would be fooled):

* a file that starts with the magic but is shorter than its own header is a
  :class:`TruncatedImage`, never raw (qemu would zero-fill it and open it);
* unknown incompatible feature bits are reported, and the extent map, hence
  every guest read, is refused: the tables may mean something else;
* L1 and L2 tables must lie inside the file (qemu reads them as zeros past
  its end, which silently turns a truncated image into an empty one); a
  data cluster past the end of the file reads as zeros, as in qemu, and is
  reported;
* a compressed cluster must inflate to exactly one cluster: longer streams
  are compression bombs, shorter ones corrupt (qemu silently truncates the
  longer ones);
* every allocated cluster is data, as the L2 table says. For an image it
  guesses to be metadata-preallocated (refcounted clusters versus the blocks
  the host file occupies) ``qemu-img map`` also asks the host file, and calls
  the clusters in its holes "data, zero"; the extent map has no such kind
  and the guess depends on the host filesystem, so those stay data here.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

from imgscan import limits
from imgscan.errors import CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature
from imgscan.findings import CORRUPT, TRUNCATED, UNKNOWN_FEATURE

from .binary cimport be64
from .container import Container, Format
from .inflate import StreamError, zlib_bounded, zstd_bounded
from .extents cimport (
    ExtentMap, KIND_COMPRESSED, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST,
)
from .source cimport Source

# -- On-disk layout (docs/interop/qcow2.txt) ----------------------------------
QCOW2_MAGIC = b"QFI\xfb"
#: Version 1 is the older QCOW format, decoded by its own module.
QCOW1_VERSION = 1
HEADER_V2_LENGTH = 72
HEADER_V3_MIN_LENGTH = 104
#: Header field offsets.
H_VERSION = 4
H_BACKING_FILE_OFFSET = 8
H_BACKING_FILE_SIZE = 16
H_CLUSTER_BITS = 20
H_SIZE = 24
H_CRYPT_METHOD = 32
H_L1_SIZE = 36
H_L1_TABLE_OFFSET = 40
H_REFCOUNT_TABLE_OFFSET = 48
H_REFCOUNT_TABLE_CLUSTERS = 56
H_NB_SNAPSHOTS = 60
H_SNAPSHOTS_OFFSET = 64
H_INCOMPATIBLE_FEATURES = 72
H_COMPATIBLE_FEATURES = 80
H_AUTOCLEAR_FEATURES = 88
H_REFCOUNT_ORDER = 96
H_HEADER_LENGTH = 100
H_COMPRESSION_TYPE = 104

CRYPT_NONE = 0
CRYPT_AES = 1
CRYPT_LUKS = 2
CRYPT_NAMES = {CRYPT_AES: "aes", CRYPT_LUKS: "luks"}

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_KNOWN = (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE
                  | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2)
COMPAT_LAZY_REFCOUNTS = 1 << 0
COMPAT_KNOWN = COMPAT_LAZY_REFCOUNTS
AUTOCLEAR_BITMAPS = 1 << 0
AUTOCLEAR_DATA_FILE_RAW = 1 << 1
AUTOCLEAR_KNOWN = AUTOCLEAR_BITMAPS | AUTOCLEAR_DATA_FILE_RAW
FEATURE_KINDS = ("incompatible", "compatible", "autoclear")

COMPRESSION_ZLIB = 0
COMPRESSION_ZSTD = 1
COMPRESSION_NAMES = {COMPRESSION_ZLIB: "zlib", COMPRESSION_ZSTD: "zstd"}
#: qemu deflates with a 4 KiB window and no zlib header.
ZLIB_WBITS = -12

#: Header extension types and fixed sizes.
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO_HEADER = 0x0537BE77
EXT_DATA_FILE = 0x44415441
EXT_HEADER_SIZE = 8
FEATURE_ENTRY_SIZE = 48
FEATURE_NAME_SIZE = 46
BITMAPS_EXT_SIZE = 24
CRYPTO_EXT_SIZE = 16
#: qemu keeps the backing format in a 16-byte buffer (15 characters).
BACKING_FORMAT_MAX = 15

BITMAP_ENTRY_SIZE = 24
BITMAP_FLAG_IN_USE = 1 << 0
BITMAP_FLAG_AUTO = 1 << 1

SNAPSHOT_HEADER_SIZE = 40
#: Extra data fields of a snapshot entry, as offsets into the extra data.
SNAPSHOT_EXTRA_VM_STATE_SIZE = 0
SNAPSHOT_EXTRA_DISK_SIZE = 8
SNAPSHOT_EXTRA_ICOUNT = 16

cdef uint64_t L1E_OFFSET_MASK = 0x00FFFFFFFFFFFE00ULL
cdef uint64_t L2E_OFFSET_MASK = 0x00FFFFFFFFFFFE00ULL
cdef uint64_t OFLAG_COPIED = 1ULL << 63
cdef uint64_t OFLAG_COMPRESSED = 1ULL << 62
cdef uint64_t OFLAG_ZERO = 1ULL
cdef uint64_t COMPRESSED_SECTOR_SIZE = 512
cdef uint64_t L1E_SIZE = 8
cdef uint64_t L2E_SIZE_NORMAL = 8
cdef uint64_t L2E_SIZE_EXTENDED = 16
cdef uint32_t SUBCLUSTERS = 32

# -- The nogil table walk -------------------------------------------------------

cdef enum WalkError:
    WALK_OK = 0
    WALK_TOO_MANY_EXTENTS = 1
    WALK_UNALIGNED_DATA = 2
    WALK_BAD_SUBCLUSTERS = 3
    WALK_COMPRESSED_IN_DATA_FILE = 4


cdef struct WalkParams:
    uint64_t virtual_size
    uint64_t cluster_size
    uint64_t l2_entries
    uint64_t entry_size
    uint64_t file_size          # of the image file itself
    uint64_t csize_shift        # compressed descriptor: sector count position
    uint64_t csize_mask
    uint64_t coffset_mask
    uint32_t data_index         # file index of data clusters (1: external)
    bint extended_l2


cdef struct WalkState:
    int error
    uint64_t error_entry        # host offset of the offending L2 entry
    uint64_t past_eof           # data clusters wholly past the end of the file
    uint64_t first_past_eof     # guest offset of the first of them


cdef int _walk_l2(ExtentMap emap, const uint8_t* l2, uint64_t l2_host, uint64_t guest,
                  const WalkParams* p, WalkState* st) noexcept nogil:
    """Append the runs of one L2 table, which maps guest bytes from ``guest``.

    ``l2`` points at ``p.cluster_size`` bytes (one table); the caller checked
    that. Runs stop at ``p.virtual_size``.
    """
    cdef uint64_t i, entry, bitmap, host, length, stored, alloc, zero, sub, s_start, s_len
    cdef uint32_t j
    cdef int rc
    cdef bint allocated
    cdef const uint8_t* e
    for i in range(p.l2_entries):
        if guest >= p.virtual_size:
            break
        e = l2 + i * p.entry_size
        entry = be64(e)
        length = p.virtual_size - guest
        if length > p.cluster_size:
            length = p.cluster_size
        if entry & OFLAG_COMPRESSED:
            # Compressed clusters carry no subcluster bitmap; it is reserved.
            if p.data_index != 0:
                st.error = WALK_COMPRESSED_IN_DATA_FILE
                st.error_entry = l2_host + i * p.entry_size
                return -1
            host = entry & p.coffset_mask
            stored = (((entry >> p.csize_shift) & p.csize_mask) + 1) * COMPRESSED_SECTOR_SIZE \
                - (host & (COMPRESSED_SECTOR_SIZE - 1))
            if host >= p.file_size:
                stored = 0
            elif stored > p.file_size - host:
                stored = p.file_size - host
            if emap.add(guest, length, KIND_COMPRESSED, host, 0, stored) < 0:
                st.error = WALK_TOO_MANY_EXTENTS
                return -1
            guest += p.cluster_size
            continue
        host = entry & L2E_OFFSET_MASK
        # Offset 0 is unallocated, except in an external data file, where the
        # COPIED bit (always set there) tells a real cluster at offset 0 apart.
        allocated = host != 0 or (p.data_index != 0 and (entry & OFLAG_COPIED) != 0)
        if allocated and (host & (p.cluster_size - 1)) != 0:
            st.error = WALK_UNALIGNED_DATA
            st.error_entry = l2_host + i * p.entry_size
            return -1
        if allocated and p.data_index == 0 and host >= p.file_size:
            if st.past_eof == 0:
                st.first_past_eof = guest
            st.past_eof += 1
        if not p.extended_l2:
            if entry & OFLAG_ZERO:
                rc = emap.add(guest, length, KIND_ZERO, host if allocated else NO_HOST, 0, 0)
            elif allocated:
                rc = emap.add(guest, length, KIND_DATA, host, p.data_index, 0)
            else:
                rc = emap.add(guest, length, KIND_UNALLOCATED, NO_HOST, 0, 0)
            if rc < 0:
                st.error = WALK_TOO_MANY_EXTENTS
                return -1
            guest += p.cluster_size
            continue
        bitmap = be64(e + 8)
        alloc = bitmap & 0xFFFFFFFFULL
        zero = bitmap >> 32
        if (alloc & zero) != 0 or (not allocated and alloc != 0):
            st.error = WALK_BAD_SUBCLUSTERS
            st.error_entry = l2_host + i * p.entry_size
            return -1
        sub = p.cluster_size // SUBCLUSTERS
        for j in range(SUBCLUSTERS):
            s_start = guest + j * sub
            if s_start >= p.virtual_size:
                break
            s_len = p.virtual_size - s_start
            if s_len > sub:
                s_len = sub
            if (zero >> j) & 1:
                rc = emap.add(s_start, s_len, KIND_ZERO,
                              host + j * sub if allocated else NO_HOST, 0, 0)
            elif (alloc >> j) & 1:
                rc = emap.add(s_start, s_len, KIND_DATA, host + j * sub, p.data_index, 0)
            else:
                rc = emap.add(s_start, s_len, KIND_UNALLOCATED, NO_HOST, 0, 0)
            if rc < 0:
                st.error = WALK_TOO_MANY_EXTENTS
                return -1
        guest += p.cluster_size
    return 0


def _walk_tables(Source source, ExtentMap emap, l1_view, uint64_t l1_offset,
                 uint64_t n_l1, uint64_t cluster_size, bint extended_l2,
                 uint32_t data_index, uint64_t csize_shift):
    """Describe the guest disk from the active L1 table and its L2 tables.

    ``l1_view`` holds the first ``n_l1`` L1 entries (those covering the
    virtual size). Returns ``(past_eof, first_past_eof)``.
    """
    cdef const uint8_t[::1] l1 = l1_view
    cdef const uint8_t[::1] l2
    cdef const uint8_t* l1p
    cdef WalkParams p
    cdef WalkState st
    cdef uint64_t idx = 0, entry = 0, span, guest, length
    cdef int rc = 0
    path = source.path
    if <uint64_t>l1.shape[0] < n_l1 * L1E_SIZE:
        raise TruncatedImage(path, "L1 table", l1_offset, "shorter than the virtual size needs")
    p.virtual_size = emap.virtual_size
    p.cluster_size = cluster_size
    p.extended_l2 = extended_l2
    p.entry_size = L2E_SIZE_EXTENDED if extended_l2 else L2E_SIZE_NORMAL
    p.l2_entries = cluster_size // p.entry_size
    p.file_size = source.size
    p.csize_shift = csize_shift
    p.csize_mask = (1ULL << (62 - csize_shift)) - 1
    p.coffset_mask = (1ULL << csize_shift) - 1
    p.data_index = data_index
    st.error = WALK_OK
    st.error_entry = 0
    st.past_eof = 0
    st.first_past_eof = 0
    span = cluster_size * p.l2_entries
    l1p = NULL
    if n_l1:
        l1p = &l1[0]
    while idx < n_l1:
        with nogil:
            # Runs of empty L1 entries: whole L2 ranges that are unallocated.
            while idx < n_l1:
                entry = be64(l1p + idx * L1E_SIZE) & L1E_OFFSET_MASK
                if entry != 0:
                    break
                guest = idx * span
                length = p.virtual_size - guest
                if length > span:
                    length = span
                if emap.add(guest, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                    rc = -1
                    break
                idx += 1
        if rc < 0:
            raise LimitExceeded(path, "extent map", None,
                                f"more than limits.MAX_EXTENTS={limits.MAX_EXTENTS} runs")
        if idx >= n_l1:
            break
        if entry & (cluster_size - 1):
            raise CorruptImage(path, "L1 table", l1_offset + idx * L1E_SIZE,
                               f"L2 table offset {entry:#x} is not cluster aligned")
        l2 = source.view(entry, cluster_size, f"L2 table (L1 index {idx})")
        with nogil:
            rc = _walk_l2(emap, &l2[0], entry, idx * span, &p, &st)

        if rc < 0:
            where = st.error_entry
            if st.error == WALK_TOO_MANY_EXTENTS:
                raise LimitExceeded(path, "extent map", None,
                                    f"more than limits.MAX_EXTENTS={limits.MAX_EXTENTS} runs")
            if st.error == WALK_UNALIGNED_DATA:
                raise CorruptImage(path, "L2 table entry", where,
                                   "data cluster offset is not cluster aligned")
            if st.error == WALK_BAD_SUBCLUSTERS:
                raise CorruptImage(path, "L2 table entry", where,
                                   "invalid subcluster allocation bitmap")
            raise CorruptImage(path, "L2 table entry", where,
                               "compressed cluster in an image with an external data file")
        idx += 1
    return st.past_eof, st.first_past_eof


# -- Header parsing and the container ----------------------------------------------

def _u32(data, off):
    return int.from_bytes(data[off:off + 4], "big")


def _u64(data, off):
    return int.from_bytes(data[off:off + 8], "big")


def _u16(data, off):
    return int.from_bytes(data[off:off + 2], "big")


def _text(raw):
    """A name as written in the file; undecodable bytes survive as surrogates."""
    return bytes(raw).decode("utf-8", "surrogateescape")


def _bit_list(mask):
    return [bit for bit in range(64) if mask >> bit & 1]


class Qcow2Image(Container):
    """A qcow2 image: header facts at open, the L1/L2 map on demand."""

    format = "qcow2"

    def __init__(self, source):
        self._read_header(source)
        super().__init__(source, self._virtual_size)
        self._unsupported = None
        self._check_features()
        self._read_extensions()
        self._read_backing_file()
        self._read_snapshots()
        self._fill_details()

    # -- header ---------------------------------------------------------------
    def _read_header(self, source):
        path = source.path
        size = source.size
        head = source.read(0, min(size, HEADER_V3_MIN_LENGTH), "qcow2 header")
        if len(head) < H_VERSION + 4:
            raise TruncatedImage(path, "qcow2 header", 0,
                                 f"the file ends at {size}, inside the header's magic/version")
        version = _u32(head, H_VERSION)
        if version not in (2, 3):
            raise UnsupportedFeature(
                path, "qcow2 header", H_VERSION,
                f"unknown-feature: qcow2 version {version} is not defined (only 2 and 3 are)")
        need = HEADER_V2_LENGTH if version == 2 else HEADER_V3_MIN_LENGTH
        if size < need:
            raise TruncatedImage(path, "qcow2 header", 0,
                                 f"a version {version} header needs {need} bytes but the file "
                                 f"ends at {size}")
        cluster_bits = _u32(head, H_CLUSTER_BITS)
        if cluster_bits < limits.QCOW2_MIN_CLUSTER_BITS:
            raise CorruptImage(path, "qcow2 header", H_CLUSTER_BITS,
                               f"cluster_bits {cluster_bits} is below the spec's minimum "
                               f"{limits.QCOW2_MIN_CLUSTER_BITS}")
        if cluster_bits > limits.QCOW2_MAX_CLUSTER_BITS:
            raise LimitExceeded(path, "qcow2 header", H_CLUSTER_BITS,
                                f"cluster_bits {cluster_bits} exceeds limits.QCOW2_MAX_CLUSTER_BITS="
                                f"{limits.QCOW2_MAX_CLUSTER_BITS}")
        self._cluster_bits = cluster_bits
        self.cluster_size = cluster_size = 1 << cluster_bits
        if version == 2:
            header_length = HEADER_V2_LENGTH
            self._incompatible = self._compatible = self._autoclear = 0
            self._refcount_order = 4
        else:
            header_length = _u32(head, H_HEADER_LENGTH)
            if header_length < HEADER_V3_MIN_LENGTH:
                raise CorruptImage(path, "qcow2 header", H_HEADER_LENGTH,
                                   f"header_length {header_length} is below "
                                   f"{HEADER_V3_MIN_LENGTH}")
            if header_length > cluster_size:
                raise CorruptImage(path, "qcow2 header", H_HEADER_LENGTH,
                                   f"header_length {header_length} exceeds the cluster size "
                                   f"{cluster_size}")
            if size < header_length:
                raise TruncatedImage(path, "qcow2 header", 0,
                                     f"header_length is {header_length} but the file ends at "
                                     f"{size}")
            self._incompatible = _u64(head, H_INCOMPATIBLE_FEATURES)
            self._compatible = _u64(head, H_COMPATIBLE_FEATURES)
            self._autoclear = _u64(head, H_AUTOCLEAR_FEATURES)
            self._refcount_order = _u32(head, H_REFCOUNT_ORDER)
            if self._refcount_order > 6:
                raise CorruptImage(path, "qcow2 header", H_REFCOUNT_ORDER,
                                   f"refcount_order {self._refcount_order} exceeds 6 (64 bits)")
        self._version = version
        self._header_length = header_length
        self.subformat = f"v{version}"

        self._compression_type = COMPRESSION_ZLIB
        if header_length > H_COMPRESSION_TYPE:
            self._compression_type = source.read(H_COMPRESSION_TYPE, 1, "qcow2 header")[0]

        disk_size = _u64(head, H_SIZE)
        if disk_size > limits.MAX_VIRTUAL_SIZE:
            raise LimitExceeded(path, "qcow2 header", H_SIZE,
                                f"virtual size {disk_size} exceeds limits.MAX_VIRTUAL_SIZE="
                                f"{limits.MAX_VIRTUAL_SIZE}")
        # qemu counts whole 512-byte sectors and drops a partial last one.
        self._header_size = disk_size
        self._virtual_size = disk_size // 512 * 512

        crypt = _u32(head, H_CRYPT_METHOD)
        if crypt not in (CRYPT_NONE, CRYPT_AES, CRYPT_LUKS):
            raise UnsupportedFeature(path, "qcow2 header", H_CRYPT_METHOD,
                                     f"unknown-feature: crypt_method {crypt} is not defined")
        self._crypt_method = crypt
        self.encrypted = crypt != CRYPT_NONE
        self.encryption = CRYPT_NAMES.get(crypt)

        l1_size = _u32(head, H_L1_SIZE)
        l1_offset = _u64(head, H_L1_TABLE_OFFSET)
        if l1_size * L1E_SIZE > limits.QCOW2_MAX_L1_BYTES:
            raise LimitExceeded(path, "qcow2 header", H_L1_SIZE,
                                f"l1_size {l1_size} ({l1_size * L1E_SIZE} bytes) exceeds "
                                f"limits.QCOW2_MAX_L1_BYTES={limits.QCOW2_MAX_L1_BYTES}")
        if l1_offset & (cluster_size - 1):
            raise CorruptImage(path, "qcow2 header", H_L1_TABLE_OFFSET,
                               f"l1_table_offset {l1_offset:#x} is not cluster aligned")
        extended = self._version == 3 and bool(self._incompatible & INCOMPAT_EXTL2)
        entry_size = L2E_SIZE_EXTENDED if extended else L2E_SIZE_NORMAL
        span = cluster_size * (cluster_size // entry_size)
        self._l1_needed = -(-self._virtual_size // span)
        if self._l1_needed > l1_size:
            raise CorruptImage(path, "qcow2 header", H_L1_SIZE,
                               f"l1_size {l1_size} is too small for the virtual size "
                               f"{self._virtual_size} (needs {self._l1_needed} entries)")
        if extended and cluster_bits < 14:
            raise CorruptImage(path, "qcow2 header", H_CLUSTER_BITS,
                               "extended L2 entries need clusters of at least 16 KiB")
        self._l1_size = l1_size
        self._l1_offset = l1_offset
        self._extended_l2 = extended

        reftable_clusters = _u32(head, H_REFCOUNT_TABLE_CLUSTERS)
        if reftable_clusters * cluster_size > limits.QCOW2_MAX_REFTABLE_BYTES:
            raise LimitExceeded(path, "qcow2 header", H_REFCOUNT_TABLE_CLUSTERS,
                                f"refcount table of {reftable_clusters} clusters exceeds "
                                f"limits.QCOW2_MAX_REFTABLE_BYTES="
                                f"{limits.QCOW2_MAX_REFTABLE_BYTES}")
        self._nb_snapshots = _u32(head, H_NB_SNAPSHOTS)
        self._snapshots_offset = _u64(head, H_SNAPSHOTS_OFFSET)
        self._backing_offset = _u64(head, H_BACKING_FILE_OFFSET)
        self._backing_size = _u32(head, H_BACKING_FILE_SIZE)

    def _check_features(self):
        incompat = self._incompatible
        self.dirty = bool(incompat & (INCOMPAT_DIRTY | INCOMPAT_CORRUPT))
        if incompat & INCOMPAT_CORRUPT:
            self.add_finding(CORRUPT, "error",
                             "the qcow2 corrupt bit is set: qemu found its metadata inconsistent "
                             "and will only open it read-only")
        ctype = self._compression_type
        if ctype not in COMPRESSION_NAMES:
            raise UnsupportedFeature(self.path, "qcow2 header", H_COMPRESSION_TYPE,
                                     f"unknown-feature: compression type {ctype} is not defined")
        if (ctype != COMPRESSION_ZLIB) != bool(incompat & INCOMPAT_COMPRESSION):
            raise CorruptImage(self.path, "qcow2 header", H_INCOMPATIBLE_FEATURES,
                               f"compression type {COMPRESSION_NAMES[ctype]} disagrees with "
                               "the compression type feature bit")

    def _report_unknown_features(self, names):
        """Findings for feature bits this reader does not know, named by the image's table."""
        for kind, mask, known, header_offset in (
            (0, self._incompatible, INCOMPAT_KNOWN, H_INCOMPATIBLE_FEATURES),
            (1, self._compatible, COMPAT_KNOWN, H_COMPATIBLE_FEATURES),
            (2, self._autoclear, AUTOCLEAR_KNOWN, H_AUTOCLEAR_FEATURES),
        ):
            unknown = mask & ~known
            if not unknown:
                continue
            labels = ", ".join(
                f"bit {bit}" + (f" ({names[(kind, bit)]!r})" if (kind, bit) in names else "")
                for bit in _bit_list(unknown))
            what = FEATURE_KINDS[kind]
            if kind == 0:
                message = (f"unknown incompatible qcow2 feature(s) {labels} at header offset "
                           f"{header_offset}: the tables cannot be interpreted safely")
                self._unsupported = message
                self.add_finding(UNKNOWN_FEATURE, "error", message)
            else:
                self.add_finding(UNKNOWN_FEATURE, "info",
                                 f"unknown {what} qcow2 feature(s) {labels}; safe to ignore")

    # -- header extensions -----------------------------------------------------
    def _read_extensions(self):
        path = self.path
        start = self._header_length
        end = self._backing_offset if self._backing_offset else self.cluster_size
        end = min(end, self.cluster_size)
        # qemu reads the extension area zero-filled past the end of the file.
        area = self.source.read_zero_padded(start, end - start) if end > start else b""
        pos = 0
        count = 0
        feature_names = {}
        self._backing_format = None
        self._data_file_name = None
        self._bitmaps = []
        self._crypto_header = None
        self._unknown_extensions = []
        while pos + EXT_HEADER_SIZE <= len(area):
            ext_type = _u32(area, pos)
            ext_len = _u32(area, pos + 4)
            where = start + pos
            if ext_type == EXT_END:
                break
            count += 1
            if count > limits.QCOW2_MAX_HEADER_EXTENSIONS:
                raise LimitExceeded(path, "qcow2 header extension", where,
                                    f"more than limits.QCOW2_MAX_HEADER_EXTENSIONS="
                                    f"{limits.QCOW2_MAX_HEADER_EXTENSIONS} extensions")
            pos += EXT_HEADER_SIZE
            if ext_len > len(area) - pos:
                raise CorruptImage(path, "qcow2 header extension", where,
                                   f"extension {ext_type:#010x} of {ext_len} bytes runs past "
                                   f"the header area (ends at {end})")
            data = area[pos:pos + ext_len]
            if ext_type == EXT_BACKING_FORMAT:
                if ext_len > BACKING_FORMAT_MAX:
                    raise CorruptImage(path, "backing format extension", where,
                                       f"{ext_len} bytes is longer than {BACKING_FORMAT_MAX}")
                self._backing_format = _text(data)
            elif ext_type == EXT_FEATURE_TABLE:
                for off in range(0, ext_len - FEATURE_ENTRY_SIZE + 1, FEATURE_ENTRY_SIZE):
                    name = data[off + 2:off + 2 + FEATURE_NAME_SIZE].split(b"\0", 1)[0]
                    feature_names[(data[off], data[off + 1])] = _text(name)
            elif ext_type == EXT_CRYPTO_HEADER:
                if self._crypt_method != CRYPT_LUKS:
                    raise CorruptImage(path, "crypto header extension", where,
                                       "only LUKS encrypted images carry it")
                if ext_len != CRYPTO_EXT_SIZE:
                    raise CorruptImage(path, "crypto header extension", where,
                                       f"{ext_len} bytes, expected {CRYPTO_EXT_SIZE}")
                self._crypto_header = (_u64(data, 0), _u64(data, 8))
            elif ext_type == EXT_BITMAPS:
                self._read_bitmaps(data, where)
            elif ext_type == EXT_DATA_FILE:
                self._data_file_name = _text(data)
            else:
                self._unknown_extensions.append({"type": f"{ext_type:#010x}", "length": ext_len})
            pos += (ext_len + 7) & ~7
        self._feature_names = feature_names
        self._report_unknown_features(feature_names)
        self.backing_format = self._backing_format
        if self._incompatible & INCOMPAT_DATA_FILE:
            # The bit alone makes every data cluster live elsewhere, named or not.
            self.data_file = self._data_file_name if self._data_file_name is not None else ""
        else:
            # An extension without the bit is ignored by qemu, but still reported.
            self.data_file = self._data_file_name
        if self._autoclear & AUTOCLEAR_DATA_FILE_RAW and not self._incompatible & INCOMPAT_DATA_FILE:
            self.add_finding(CORRUPT, "error",
                             "the data-file-raw bit is set without an external data file")
        if self._crypt_method == CRYPT_LUKS and self._crypto_header is None:
            self.add_finding(CORRUPT, "error",
                             "LUKS encryption without the crypto header extension")

    def _read_bitmaps(self, data, where):
        """Names of the persistent dirty bitmaps (qemu-img info's ``bitmaps``)."""
        path = self.path
        if len(data) != BITMAPS_EXT_SIZE:
            raise CorruptImage(path, "bitmaps extension", where,
                               f"{len(data)} bytes, expected {BITMAPS_EXT_SIZE}")
        if not self._autoclear & AUTOCLEAR_BITMAPS:
            # Written by a program that did not know bitmaps: stale, qemu ignores them.
            self.add_finding(UNKNOWN_FEATURE, "info",
                             "the bitmaps extension is inconsistent (autoclear bit clear); ignored")
            return
        nb = _u32(data, 0)
        dir_size = _u64(data, 8)
        dir_offset = _u64(data, 16)
        if nb == 0 or nb > limits.QCOW2_MAX_BITMAPS:
            raise LimitExceeded(path, "bitmaps extension", where,
                                f"{nb} bitmaps (1..limits.QCOW2_MAX_BITMAPS="
                                f"{limits.QCOW2_MAX_BITMAPS} allowed)")
        if dir_size > limits.QCOW2_MAX_BITMAP_DIRECTORY_BYTES:
            raise LimitExceeded(path, "bitmaps extension", where,
                                f"bitmap directory of {dir_size} bytes exceeds "
                                f"limits.QCOW2_MAX_BITMAP_DIRECTORY_BYTES")
        directory = self.source.read(dir_offset, dir_size, "bitmap directory")
        pos = 0
        for _ in range(nb):
            if pos + BITMAP_ENTRY_SIZE > dir_size:
                raise CorruptImage(path, "bitmap directory", dir_offset + pos,
                                   "entries run past bitmap_directory_size")
            flags = _u32(directory, pos + 12)
            granularity_bits = directory[pos + 17]
            name_size = _u16(directory, pos + 18)
            extra = _u32(directory, pos + 20)
            name_at = pos + BITMAP_ENTRY_SIZE + extra
            if name_at + name_size > dir_size:
                raise CorruptImage(path, "bitmap directory", dir_offset + pos,
                                   "bitmap name runs past bitmap_directory_size")
            flag_names = []
            if flags & BITMAP_FLAG_IN_USE:
                flag_names.append("in-use")
            if flags & BITMAP_FLAG_AUTO:
                flag_names.append("auto")
            self._bitmaps.append({
                "flags": flag_names,
                "name": _text(directory[name_at:name_at + name_size]),
                "granularity": 1 << granularity_bits,
            })
            pos = (name_at + name_size + 7) & ~7

    def _read_backing_file(self):
        offset, size = self._backing_offset, self._backing_size
        if offset == 0:
            return
        if size > limits.QCOW2_MAX_BACKING_NAME:
            raise LimitExceeded(self.path, "qcow2 header", H_BACKING_FILE_SIZE,
                                f"backing file name of {size} bytes exceeds "
                                f"limits.QCOW2_MAX_BACKING_NAME={limits.QCOW2_MAX_BACKING_NAME}")
        self.backing_file = _text(self.source.read(offset, size, "backing file name"))

    # -- snapshots ---------------------------------------------------------------
    def _read_snapshots(self):
        path = self.path
        nb = self._nb_snapshots
        self.snapshots = nb
        self._snapshot_list = []
        if nb == 0:
            return
        if nb > limits.QCOW2_MAX_SNAPSHOTS:
            raise LimitExceeded(path, "qcow2 header", H_NB_SNAPSHOTS,
                                f"{nb} snapshots exceed limits.QCOW2_MAX_SNAPSHOTS="
                                f"{limits.QCOW2_MAX_SNAPSHOTS}")
        offset = self._snapshots_offset
        if offset & (self.cluster_size - 1):
            raise CorruptImage(path, "qcow2 header", H_SNAPSHOTS_OFFSET,
                               f"snapshots_offset {offset:#x} is not cluster aligned")
        try:
            pos = offset
            for _ in range(nb):
                head = self.source.read(pos, SNAPSHOT_HEADER_SIZE, "snapshot table entry")
                id_size = _u16(head, 12)
                name_size = _u16(head, 14)
                extra_size = _u32(head, 36)
                if extra_size > limits.QCOW2_MAX_SNAPSHOT_EXTRA_DATA:
                    raise LimitExceeded(path, "snapshot table entry", pos,
                                        f"{extra_size} bytes of extra data exceed "
                                        f"limits.QCOW2_MAX_SNAPSHOT_EXTRA_DATA")
                total = SNAPSHOT_HEADER_SIZE + extra_size + id_size + name_size
                if pos + total - offset > limits.QCOW2_MAX_SNAPSHOT_TABLE_BYTES:
                    raise LimitExceeded(path, "snapshot table", offset,
                                        f"larger than limits.QCOW2_MAX_SNAPSHOT_TABLE_BYTES="
                                        f"{limits.QCOW2_MAX_SNAPSHOT_TABLE_BYTES}")
                rest = self.source.read(pos + SNAPSHOT_HEADER_SIZE, total - SNAPSHOT_HEADER_SIZE,
                                        "snapshot table entry")
                extra = rest[:extra_size]
                vm_state = _u32(head, 32)
                if extra_size >= SNAPSHOT_EXTRA_VM_STATE_SIZE + 8:
                    vm_state = _u64(extra, SNAPSHOT_EXTRA_VM_STATE_SIZE)
                vm_clock = _u64(head, 24)
                entry = {
                    "id": _text(rest[extra_size:extra_size + id_size]),
                    "name": _text(rest[extra_size + id_size:]),
                    "vm-state-size": vm_state,
                    "date-sec": _u32(head, 16),
                    "date-nsec": _u32(head, 20),
                    "vm-clock-sec": vm_clock // 1_000_000_000,
                    "vm-clock-nsec": vm_clock % 1_000_000_000,
                }
                if extra_size >= SNAPSHOT_EXTRA_DISK_SIZE + 8:
                    entry["disk-size"] = _u64(extra, SNAPSHOT_EXTRA_DISK_SIZE)
                if extra_size >= SNAPSHOT_EXTRA_ICOUNT + 8:
                    icount = _u64(extra, SNAPSHOT_EXTRA_ICOUNT)
                    if icount != (1 << 64) - 1:
                        entry["icount"] = icount
                self._snapshot_list.append(entry)
                pos += (total + 7) & ~7
        except TruncatedImage as exc:
            self.add_finding(TRUNCATED, "warning",
                             f"the snapshot table is cut short ({exc.problem}); "
                             f"{len(self._snapshot_list)} of {nb} snapshots read")

    # -- facts --------------------------------------------------------------------
    def _fill_details(self):
        d = self.details
        d["compat"] = "0.10" if self._version == 2 else "1.1"
        d["compression-type"] = COMPRESSION_NAMES[self._compression_type]
        if self._version == 3:
            d["lazy-refcounts"] = bool(self._compatible & COMPAT_LAZY_REFCOUNTS)
            d["corrupt"] = bool(self._incompatible & INCOMPAT_CORRUPT)
            d["extended-l2"] = self._extended_l2
        d["refcount-bits"] = 1 << self._refcount_order
        if self._data_file_name is not None:
            d["data-file"] = self._data_file_name
        if self._incompatible & INCOMPAT_DATA_FILE:
            d["data-file-raw"] = bool(self._autoclear & AUTOCLEAR_DATA_FILE_RAW)
        if self._bitmaps:
            d["bitmaps"] = self._bitmaps
        if self.encrypted:
            d["encrypt"] = {"format": self.encryption}
        if self._snapshot_list:
            d["snapshots"] = self._snapshot_list
        if self._unknown_extensions:
            d["unknown-header-extensions"] = self._unknown_extensions
        if self._header_size != self.virtual_size:
            d["header-size"] = self._header_size

    def external_files(self):
        if self._incompatible & INCOMPAT_DATA_FILE:
            return [self.data_file or ""]
        return []

    # -- the map ------------------------------------------------------------------
    def build_extent_map(self):
        if self._unsupported is not None:
            raise UnsupportedFeature(self.path, "qcow2 header", H_INCOMPATIBLE_FEATURES,
                                     self._unsupported)
        source = self.source
        emap = ExtentMap(self.virtual_size, self.cluster_size)
        n_l1 = self._l1_needed
        l1 = source.view(self._l1_offset, n_l1 * L1E_SIZE, "L1 table")
        data_index = 1 if self._incompatible & INCOMPAT_DATA_FILE else 0
        past_eof, first = _walk_tables(source, emap, l1, self._l1_offset, n_l1,
                                       self.cluster_size, self._extended_l2, data_index,
                                       62 - (self._cluster_bits - 8))
        del l1
        if past_eof:
            self.add_finding(TRUNCATED, "warning",
                             f"{past_eof} data cluster(s) lie wholly past the end of the file "
                             f"(first at guest offset {first}); they read as zeros")
        return emap

    # -- compressed clusters --------------------------------------------------------
    def decompress(self, host, stored_length):
        """Inflate one compressed cluster to exactly ``cluster_size`` bytes."""
        cluster_size = self.cluster_size
        if cluster_size > limits.MAX_DECOMPRESSED_CLUSTER:
            raise LimitExceeded(self.path, "compressed cluster", host,
                                "cluster larger than limits.MAX_DECOMPRESSED_CLUSTER")
        import zlib

        data = self.source.read(host, stored_length, "compressed cluster")
        try:
            if self._compression_type == COMPRESSION_ZSTD:
                out, more = zstd_bounded(data, cluster_size)
            else:
                out, more = zlib_bounded(zlib.decompressobj(ZLIB_WBITS), data, cluster_size)
        except StreamError as exc:
            raise CorruptImage(self.path, "compressed cluster", host, str(exc)) from None
        if more:
            raise self.compression_bomb("compressed cluster", host, cluster_size)
        if len(out) != cluster_size:
            # qemu fails the read too: a cluster must inflate to the full size.
            raise CorruptImage(self.path, "compressed cluster", host,
                               f"inflates to {len(out)} bytes, not the cluster size "
                               f"{cluster_size}")
        return out


def probe(Source source):
    """The qcow2 magic with any version but 1 (QCOW v1 shares the magic).

    A file holding only the start of the magic is claimed too, so a header
    cut short is reported as truncated rather than read as raw.
    """
    size = source.size
    if size == 0:
        return False
    if size < 4:
        head = source.read(0, size, "qcow2 magic")
        return QCOW2_MAGIC.startswith(head)
    if source.read(0, 4, "qcow2 magic") != QCOW2_MAGIC:
        return False
    if size < H_VERSION + 4:
        return True
    return _u32(source.read(H_VERSION, 4, "qcow2 header"), 0) != QCOW1_VERSION


FORMAT = Format("qcow2", probe, Qcow2Image)

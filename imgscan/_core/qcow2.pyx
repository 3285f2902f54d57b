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

from .binary cimport be32, be64
from .container import Container, Format
from .extents cimport (
    ExtentMap, KIND_COMPRESSED, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST, add_run,
)
from .source cimport Source

# On-disk layout: declared in c_qcow2, rendered into qcow2_layout.pxi at build time
# (probes/compiled_layouts.py): the header and its extensions are read with be32 / be64 at
# the declared offsets and c_qcow2 is imported only for the structures few images hold
# (feature name table, bitmaps, crypto header, snapshots). Its eight declarations, with
# cstruct and struct, were some 2.4 M of the 61.3 M instructions of a whole
# ``imgscan info`` (issue 18).
include "qcow2_layout.pxi"

#: Bytes of the header extension area read first (qemu's extensions and feature name
#: table fit in a few hundred).
EXTENSION_AREA_FIRST_READ = 4096
#: What the announcement of the L1 table takes after it: qemu-img writes the L2 tables
#: and then the first data clusters (the guest's partition table and first volume)
#: right after the L1 table, so a remote source fetches them with it in one round trip
#: rather than the L1, an L2 and the guest's first sectors one after the other. A
#: constant, never a size the file claims.
L1_FOLLOWING_BYTES = 512 * 1024
#: How many L2 tables the walk announces at once, before reading them one by one (with
#: L1_FOLLOWING_BYTES after the first: an L1 table that grew on resize moves to the
#: end of the file, the first L2 table and data clusters stay where they were).
L2_ANNOUNCE_TABLES = 64

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


cdef inline int _add_cluster(ExtentMap emap, uint64_t guest, uint64_t length, bint zero,
                             bint data, bint allocated, uint64_t host,
                             uint32_t data_index) noexcept nogil:
    """One cluster or subcluster into the map: reads as zeros (keeping the host bytes
    preallocated for it, if any), stored data at ``host``, or unallocated."""
    if zero:
        return add_run(emap, guest, length, KIND_ZERO, host if allocated else NO_HOST, 0, 0)
    if data:
        return add_run(emap, guest, length, KIND_DATA, host, data_index, 0)
    return add_run(emap, guest, length, KIND_UNALLOCATED, NO_HOST, 0, 0)


cdef int _walk_l2(ExtentMap emap, const uint8_t* l2, uint64_t l2_host, uint64_t guest,
                  const WalkParams* p, WalkState* st) noexcept nogil:
    """Append the runs of one L2 table, which maps guest bytes from ``guest``.

    ``l2`` points at the table's entries up to ``p.virtual_size`` (the caller read
    them), where the runs stop.
    """
    cdef uint64_t i = 0, entry, bitmap, host, length, stored, alloc, zero, sub, s_start, s_len
    cdef uint64_t run
    cdef uint32_t j
    cdef bint allocated
    cdef const uint8_t* e
    while i < p.l2_entries:
        if guest >= p.virtual_size:
            break
        e = l2 + i * p.entry_size
        entry = be64(e)
        if entry == 0 and not p.extended_l2:
            # Unallocated clusters (most of a small image's table) as one run: the zero
            # entries after this one are only compared, not each added (issue 18: the
            # per-cluster add was most of a small qcow2's map).
            run = 1
            while (i + run < p.l2_entries and guest + run * p.cluster_size < p.virtual_size
                   and be64(e + run * p.entry_size) == 0):
                run += 1
            length = p.virtual_size - guest
            if length > run * p.cluster_size:
                length = run * p.cluster_size
            if add_run(emap, guest, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                st.error = WALK_TOO_MANY_EXTENTS
                return -1
            guest += run * p.cluster_size
            i += run
            continue
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
            i += 1
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
            if _add_cluster(emap, guest, length, (entry & OFLAG_ZERO) != 0, allocated,
                            allocated, host, p.data_index) < 0:
                st.error = WALK_TOO_MANY_EXTENTS
                return -1
            guest += p.cluster_size
            i += 1
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
            if _add_cluster(emap, s_start, s_len, (zero >> j) & 1, (alloc >> j) & 1,
                            allocated, host + j * sub, p.data_index) < 0:
                st.error = WALK_TOO_MANY_EXTENTS
                return -1
        guest += p.cluster_size
        i += 1
    return 0


cdef _announce_l2_tables(Source source, const uint8_t* l1p, uint64_t l1_offset,
                         uint64_t n_l1, uint64_t span, WalkParams* p):
    """Announce the first L2_ANNOUNCE_TABLES L2 tables the L1 table names, the part of
    each the walk reads, and L1_FOLLOWING_BYTES after the first one unless it lies in
    what the L1 table's announcement took: a remote source fetches them in one round
    trip rather than one per table (none when they were all fetched with the L1)."""
    cdef uint64_t idx, entry, needed
    cdef uint64_t announced_end = l1_offset + n_l1 * L1E_SIZE + L1_FOLLOWING_BYTES
    ranges = []
    for idx in range(n_l1):
        entry = be64(l1p + idx * L1E_SIZE) & L1E_OFFSET_MASK
        if entry == 0:
            continue
        needed = (p.virtual_size - idx * span + p.cluster_size - 1) // p.cluster_size \
            * p.entry_size
        following = 0 if ranges or l1_offset <= entry < announced_end else L1_FOLLOWING_BYTES
        ranges.append((entry, min(needed, p.cluster_size) + following))
        if len(ranges) == L2_ANNOUNCE_TABLES:
            break
    if ranges:
        source.prefetch(ranges, "L2 tables")


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
    cdef uint64_t idx = 0, entry = 0, span, guest, length, needed
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
        if source.wants_prefetch:
            _announce_l2_tables(source, l1p, l1_offset, n_l1, span, &p)
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
            emap.refuse_full(path, "extent map")
        if idx >= n_l1:
            break
        if entry & (cluster_size - 1):
            raise CorruptImage(path, "L1 table", l1_offset + idx * L1E_SIZE,
                               f"L2 table offset {entry:#x} is not cluster aligned")
        # The whole table must be in the file; only the entries up to the virtual size
        # are read (a 64 MiB disk needs 8 KiB of a 64 KiB table).
        structure = f"L2 table (L1 index {idx})"
        source._check(entry, cluster_size, structure)
        needed = (p.virtual_size - idx * span + cluster_size - 1) // cluster_size * p.entry_size
        l2 = source.view(entry, min(needed, cluster_size), structure)
        with nogil:
            rc = _walk_l2(emap, &l2[0], entry, idx * span, &p, &st)

        if rc < 0:
            where = st.error_entry
            if st.error == WALK_TOO_MANY_EXTENTS:
                emap.refuse_full(path, "extent map")
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

def _text(raw):
    """A name as written in the file; undecodable bytes survive as surrogates."""
    return bytes(raw).decode("utf-8", "surrogateescape")


cdef inline object _u32(const uint8_t* p, Py_ssize_t at):
    """The big-endian 32-bit field at ``p + at``, as a Python int (the header's checks
    compute with it as Python does: no C overflow)."""
    return be32(p + at)


cdef inline object _u64(const uint8_t* p, Py_ssize_t at):
    """The same for a 64-bit field."""
    return be64(p + at)


def _feature_names(tables):
    """``{(type, bit): name}`` of qcow2 feature name tables (a later entry wins)."""
    # a table only read when a feature bit is unknown: its declaration with it
    from .c_qcow2 import QCOW2_FEATURE
    names = {}
    for data in tables:
        for ftype, bit, name in QCOW2_FEATURE.rows(data, len(data) // QCOW2_FEATURE.size):
            names[(ftype, bit)] = _text(name.split(b"\0", 1)[0])
    return names


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
        if len(head) < HEADER_VERSION_END:
            raise TruncatedImage(path, "qcow2 header", 0,
                                 f"the file ends at {size}, inside the header's magic/version")
        # Padded to the whole declaration: a v2 header is shorter, and the v3 fields it
        # lacks are never read for it.
        cdef bytes padded = head.ljust(HEADER_SIZE, b"\0")
        cdef const uint8_t* h = padded
        version = _u32(h, H_VERSION)
        if version not in (2, 3):
            raise UnsupportedFeature(
                path, "qcow2 header", H_VERSION,
                f"qcow2 version {version} is not defined (only 2 and 3 are)")
        need = HEADER_V2_LENGTH if version == 2 else HEADER_V3_MIN_LENGTH
        if size < need:
            raise TruncatedImage(path, "qcow2 header", 0,
                                 f"a version {version} header needs {need} bytes but the file "
                                 f"ends at {size}")
        cluster_bits = _u32(h, H_CLUSTER_BITS)
        if cluster_bits < limits.QCOW2_MIN_CLUSTER_BITS:
            raise CorruptImage(path, "qcow2 header", H_CLUSTER_BITS,
                               f"cluster_bits {cluster_bits} is below the spec's minimum "
                               f"{limits.QCOW2_MIN_CLUSTER_BITS}")
        # each cap compared inline, enforce called only to refuse (its call and its
        # arguments, offsets and f-strings, were a tenth of the header's decoding; issue 18)
        if cluster_bits > limits.QCOW2_MAX_CLUSTER_BITS:
            limits.enforce(cluster_bits, "QCOW2_MAX_CLUSTER_BITS", path, "qcow2 header",
                           H_CLUSTER_BITS, "cluster_bits")
        self._cluster_bits = cluster_bits
        self.cluster_size = cluster_size = 1 << cluster_bits
        if version == 2:
            header_length = HEADER_V2_LENGTH
            self._incompatible = self._compatible = self._autoclear = 0
            self._refcount_order = 4
        else:
            header_length = _u32(h, H_HEADER_LENGTH)
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
            self._incompatible = _u64(h, H_INCOMPATIBLE_FEATURES)
            self._compatible = _u64(h, H_COMPATIBLE_FEATURES)
            self._autoclear = _u64(h, H_AUTOCLEAR_FEATURES)
            self._refcount_order = _u32(h, H_REFCOUNT_ORDER)
            if self._refcount_order > MAX_REFCOUNT_ORDER:
                raise CorruptImage(path, "qcow2 header", H_REFCOUNT_ORDER,
                                   f"refcount_order {self._refcount_order} exceeds "
                                   f"{MAX_REFCOUNT_ORDER} (64 bits)")
        self._version = version
        self._header_length = header_length
        self.subformat = f"v{version}"

        self._compression_type = COMPRESSION_ZLIB
        if header_length > H_COMPRESSION_TYPE:
            self._compression_type = source.read(H_COMPRESSION_TYPE, 1, "qcow2 header")[0]

        disk_size = _u64(h, H_SIZE)
        if disk_size > limits.MAX_VIRTUAL_SIZE:
            limits.enforce(disk_size, "MAX_VIRTUAL_SIZE", path, "qcow2 header", H_SIZE,
                           "virtual size")
        # qemu counts whole 512-byte sectors and drops a partial last one.
        self._header_size = disk_size
        self._virtual_size = disk_size - disk_size % SECTOR_SIZE

        crypt = _u32(h, H_CRYPT_METHOD)
        if crypt not in (CRYPT_NONE, CRYPT_AES, CRYPT_LUKS):
            raise UnsupportedFeature(path, "qcow2 header", H_CRYPT_METHOD,
                                     f"crypt_method {crypt} is not defined")
        self._crypt_method = crypt
        self.encrypted = crypt != CRYPT_NONE
        self.encryption = CRYPT_NAMES.get(crypt)

        l1_size = _u32(h, H_L1_SIZE)
        l1_offset = _u64(h, H_L1_TABLE_OFFSET)
        if l1_size * L1E_SIZE > limits.QCOW2_MAX_L1_BYTES:
            limits.enforce(l1_size * L1E_SIZE, "QCOW2_MAX_L1_BYTES", path, "qcow2 header",
                           H_L1_SIZE, f"l1_size {l1_size}, in bytes,")
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
        if extended and cluster_bits < EXTL2_MIN_CLUSTER_BITS:
            raise CorruptImage(path, "qcow2 header", H_CLUSTER_BITS,
                               "extended L2 entries need clusters of at least 16 KiB")
        self._l1_size = l1_size
        self._l1_offset = l1_offset
        self._extended_l2 = extended

        reftable_clusters = _u32(h, H_REFCOUNT_TABLE_CLUSTERS)
        if reftable_clusters * cluster_size > limits.QCOW2_MAX_REFTABLE_BYTES:
            limits.enforce(reftable_clusters * cluster_size, "QCOW2_MAX_REFTABLE_BYTES", path,
                           "qcow2 header", H_REFCOUNT_TABLE_CLUSTERS,
                           f"refcount table of {reftable_clusters} clusters, in bytes,")
        self._nb_snapshots = _u32(h, H_NB_SNAPSHOTS)
        self._snapshots_offset = _u64(h, H_SNAPSHOTS_OFFSET)
        self._backing_offset = _u64(h, H_BACKING_FILE_OFFSET)
        self._backing_size = _u32(h, H_BACKING_FILE_SIZE)

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
                                     f"compression type {ctype} is not defined")
        if (ctype != COMPRESSION_ZLIB) != bool(incompat & INCOMPAT_COMPRESSION):
            raise CorruptImage(self.path, "qcow2 header", H_INCOMPATIBLE_FEATURES,
                               f"compression type {COMPRESSION_NAMES[ctype]} disagrees with "
                               "the compression type feature bit")

    def _report_unknown_features(self, feature_tables):
        """Findings for feature bits this reader does not know, named by the image's
        feature name tables (the extensions' bytes, in file order; read only when a bit
        is unknown: qemu writes a table into every image)."""
        names = None
        for kind, mask, known, header_offset in (
            (0, self._incompatible, INCOMPAT_KNOWN, H_INCOMPATIBLE_FEATURES),
            (1, self._compatible, COMPAT_KNOWN, H_COMPATIBLE_FEATURES),
            (2, self._autoclear, AUTOCLEAR_KNOWN, H_AUTOCLEAR_FEATURES),
        ):
            unknown = mask & ~known
            if not unknown:
                continue
            if names is None:
                names = _feature_names(feature_tables)
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
        # C locals: each was a Python int, the loop's arithmetic and comparisons a
        # call each (about a third of the method's 16 k instructions; issue 18)
        cdef uint64_t start = self._header_length, cluster_size = self.cluster_size
        cdef uint64_t backing_offset = self._backing_offset or 0
        cdef uint64_t end = min(backing_offset or cluster_size, cluster_size)
        cdef Py_ssize_t length = end - start if end > start else 0
        cdef Py_ssize_t pos = 0, count = 0, have
        cdef uint32_t ext_type, ext_len
        path = self.path
        # qemu reads the extension area zero-filled past the end of the file. The area
        # runs to the end of the first cluster (64 KiB and more) but holds a few hundred
        # bytes in practice: its first EXTENSION_AREA_FIRST_READ are read, the whole of it
        # only when an extension runs past them.
        cdef bytes area = self.source.read_zero_padded(start,
                                                       min(length, EXTENSION_AREA_FIRST_READ))
        have = len(area)    # what the pointer reads below is bounded by
        feature_tables = []
        self._backing_format = None
        self._data_file_name = None
        self._bitmaps = []
        self._crypto_header = None
        self._unknown_extensions = []
        while True:
            if pos + EXTENSION_SIZE > have:
                if have == length:
                    break
                area = self.source.read_zero_padded(start, length)
                have = length = len(area)   # the whole area: never read again
                continue
            ext_type = _u32(<const uint8_t*>area, pos + EXTENSION_MAGIC)
            ext_len = _u32(<const uint8_t*>area, pos + EXTENSION_LEN)
            where = start + pos
            if ext_type == EXT_END:
                break
            count += 1
            if count > limits.QCOW2_MAX_HEADER_EXTENSIONS:
                limits.enforce(count, "QCOW2_MAX_HEADER_EXTENSIONS", path,
                               "qcow2 header extension", where, "header extension number")
            pos += EXTENSION_SIZE
            if ext_len > have - pos and have < length:
                area = self.source.read_zero_padded(start, length)
                have = length = len(area)   # the whole area: never read again
            if ext_len > have - pos:
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
                feature_tables.append(data)
            elif ext_type == EXT_CRYPTO_HEADER:
                if self._crypt_method != CRYPT_LUKS:
                    raise CorruptImage(path, "crypto header extension", where,
                                       "only LUKS encrypted images carry it")
                # a LUKS image's extension: its declaration with it
                from .c_qcow2 import QCOW2_CRYPTO_EXT
                if ext_len != QCOW2_CRYPTO_EXT.size:
                    raise CorruptImage(path, "crypto header extension", where,
                                       f"{ext_len} bytes, expected {QCOW2_CRYPTO_EXT.size}")
                crypto = QCOW2_CRYPTO_EXT.unpack(data)
                self._crypto_header = (crypto["offset"], crypto["length"])
            elif ext_type == EXT_BITMAPS:
                self._read_bitmaps(data, where)
            elif ext_type == EXT_DATA_FILE:
                self._data_file_name = _text(data)
            else:
                self._unknown_extensions.append({"type": f"{ext_type:#010x}", "length": ext_len})
            pos += (ext_len + 7) & ~7
        self._report_unknown_features(feature_tables)
        self.backing_format = self._backing_format
        if self._incompatible & INCOMPAT_DATA_FILE:
            # The bit alone makes every data cluster live elsewhere, named or not.
            self.data_file = self._data_file_name if self._data_file_name is not None else ""
        else:
            # An extension without the bit is ignored by qemu, but still reported.
            self.data_file = self._data_file_name
        if (self._autoclear & AUTOCLEAR_DATA_FILE_RAW
                and not self._incompatible & INCOMPAT_DATA_FILE):
            self.add_finding(CORRUPT, "error",
                             "the data-file-raw bit is set without an external data file")
        if self._crypt_method == CRYPT_LUKS and self._crypto_header is None:
            self.add_finding(CORRUPT, "error",
                             "LUKS encryption without the crypto header extension")

    def _read_bitmaps(self, data, where):
        """Names of the persistent dirty bitmaps (qemu-img info's ``bitmaps``)."""
        # an image with bitmaps: their declarations with them
        from .c_qcow2 import (
            BITMAP_FLAG_AUTO, BITMAP_FLAG_IN_USE, QCOW2_BITMAP_DIR_ENTRY, QCOW2_BITMAPS_EXT,
        )
        path = self.path
        if len(data) != QCOW2_BITMAPS_EXT.size:
            raise CorruptImage(path, "bitmaps extension", where,
                               f"{len(data)} bytes, expected {QCOW2_BITMAPS_EXT.size}")
        if not self._autoclear & AUTOCLEAR_BITMAPS:
            # Written by a program that did not know bitmaps: stale, qemu ignores them.
            self.add_finding(UNKNOWN_FEATURE, "info",
                             "the bitmaps extension is inconsistent (autoclear bit clear); ignored")
            return
        ext = QCOW2_BITMAPS_EXT.unpack(data)
        nb = ext["nb_bitmaps"]
        dir_size = ext["bitmap_directory_size"]
        dir_offset = ext["bitmap_directory_offset"]
        if nb == 0:
            # qemu refuses an empty bitmaps extension; it has always been refused with the cap.
            raise LimitExceeded(path, "bitmaps extension", where,
                                f"0 bitmaps (1..limits.QCOW2_MAX_BITMAPS="
                                f"{limits.QCOW2_MAX_BITMAPS} allowed)")
        limits.enforce(nb, "QCOW2_MAX_BITMAPS", path, "bitmaps extension",
                       where + QCOW2_BITMAPS_EXT.offset("nb_bitmaps"), "nb_bitmaps")
        limits.enforce(dir_size, "QCOW2_MAX_BITMAP_DIRECTORY_BYTES", path, "bitmaps extension",
                       where + QCOW2_BITMAPS_EXT.offset("bitmap_directory_size"),
                       "bitmap_directory_size")
        directory = self.source.read(dir_offset, dir_size, "bitmap directory")
        pos = 0
        for _ in range(nb):
            if pos + QCOW2_BITMAP_DIR_ENTRY.size > dir_size:
                raise CorruptImage(path, "bitmap directory", dir_offset + pos,
                                   "entries run past bitmap_directory_size")
            entry = QCOW2_BITMAP_DIR_ENTRY.unpack(directory, pos)
            flags = entry["flags"]
            granularity_bits = entry["granularity_bits"]
            name_size = entry["name_size"]
            name_at = pos + QCOW2_BITMAP_DIR_ENTRY.size + entry["extra_data_size"]
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
        limits.enforce(size, "QCOW2_MAX_BACKING_NAME", self.path, "qcow2 header",
                       H_BACKING_FILE_SIZE, "backing file name length")
        self.backing_file = _text(self.source.read(offset, size, "backing file name"))

    # -- snapshots ---------------------------------------------------------------
    def _read_snapshots(self):
        path = self.path
        nb = self._nb_snapshots
        self.snapshots = nb
        self._snapshot_list = []
        if nb == 0:
            return
        limits.enforce(nb, "QCOW2_MAX_SNAPSHOTS", path, "qcow2 header", H_NB_SNAPSHOTS,
                       "nb_snapshots")
        # an image with snapshots: the table's declarations with it
        from .c_qcow2 import ICOUNT_NONE, QCOW2_SNAPSHOT_EXTRA, QCOW2_SNAPSHOT_HEADER
        offset = self._snapshots_offset
        if offset & (self.cluster_size - 1):
            raise CorruptImage(path, "qcow2 header", H_SNAPSHOTS_OFFSET,
                               f"snapshots_offset {offset:#x} is not cluster aligned")
        try:
            pos = offset
            for _ in range(nb):
                head = QCOW2_SNAPSHOT_HEADER.unpack(self.source.read(
                    pos, QCOW2_SNAPSHOT_HEADER.size, "snapshot table entry"))
                id_size = head["id_str_size"]
                name_size = head["name_size"]
                extra_size = head["extra_data_size"]
                limits.enforce(extra_size, "QCOW2_MAX_SNAPSHOT_EXTRA_DATA", path,
                               "snapshot table entry", pos, "extra_data_size")
                total = QCOW2_SNAPSHOT_HEADER.size + extra_size + id_size + name_size
                limits.enforce(pos + total - offset, "QCOW2_MAX_SNAPSHOT_TABLE_BYTES", path,
                               "snapshot table", offset, "snapshot table bytes")
                rest = self.source.read(pos + QCOW2_SNAPSHOT_HEADER.size,
                                        total - QCOW2_SNAPSHOT_HEADER.size,
                                        "snapshot table entry")
                extra = rest[:extra_size]
                vm_state = head["vm_state_size"]
                if extra_size >= QCOW2_SNAPSHOT_EXTRA.end("vm_state_size_large"):
                    vm_state = QCOW2_SNAPSHOT_EXTRA.field(extra, "vm_state_size_large")
                vm_clock = head["vm_clock_nsec"]
                entry = {
                    "id": _text(rest[extra_size:extra_size + id_size]),
                    "name": _text(rest[extra_size + id_size:]),
                    "vm-state-size": vm_state,
                    "date-sec": head["date_sec"],
                    "date-nsec": head["date_nsec"],
                    "vm-clock-sec": vm_clock // 1_000_000_000,
                    "vm-clock-nsec": vm_clock % 1_000_000_000,
                }
                if extra_size >= QCOW2_SNAPSHOT_EXTRA.end("disk_size"):
                    entry["disk-size"] = QCOW2_SNAPSHOT_EXTRA.field(extra, "disk_size")
                if extra_size >= QCOW2_SNAPSHOT_EXTRA.end("icount"):
                    icount = QCOW2_SNAPSHOT_EXTRA.field(extra, "icount")
                    if icount != ICOUNT_NONE:
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
        if source.wants_prefetch:
            source.prefetch([(self._l1_offset, n_l1 * L1E_SIZE + L1_FOLLOWING_BYTES)],
                            "L1 table and the clusters after it")
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
        # imported at the first compressed cluster: an image without one never loads it
        from .inflate import inflate_unit
        return inflate_unit(self, host, stored_length, self.cluster_size, "compressed cluster",
                            zstd=self._compression_type == COMPRESSION_ZSTD,
                            cap="MAX_DECOMPRESSED_CLUSTER")


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
    if size < <uint64_t>HEADER_VERSION_END:
        return True
    cdef bytes version = source.read(0, HEADER_VERSION_END, "qcow2 header")
    return be32(<const uint8_t*>version + H_VERSION) != QCOW1_VERSION


FORMAT = Format("qcow2", probe, Qcow2Image)

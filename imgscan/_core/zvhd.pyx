"""ZVHD and ZVHD2 containers (Huawei Cloud IMS's compressed stream formats).

Spec: none is published. The layout here is the one of the only public
implementation, ``huaweicloud/ims-qemu-img`` (``src/zvhd.c``, ``src/zvhd2.c``,
``src/comp_wrapper.c``; qemu 2.3 block drivers, GPL-2.0, Dec 2018), read for
facts only and summarised in imgscan's research notes (import-rules.md
section 1.7). No code is taken from it.

NOT CHECKED AGAINST HUAWEI'S TOOLS. No file written by Huawei's closed
``qemu-img-hw`` was available: every offset, byte order and encoding below is
derived from the C structs (natural x86-64 alignment, host byte order, so
little-endian) and exercised only on files built from that same reading. In
particular unverified: the byte order; that ZVHD records continue one zlib
stream; the meaning of the ZVHD2 record fields ``compressed`` and
``orig_size`` (the public writer leaves both zero); that real files use
2 MiB blocks. Where the public code leaves a field's meaning open the decoder
refuses (:class:`UnsupportedFeature` naming the field) instead of guessing.

Both formats
    A 4096-byte block at offset 0 holds a VHD-footer-like 512-byte structure
    (cookie ``stream`` or ``z2strm``; one's complement byte-sum checksum, as
    VHD's, stored little-endian); ``orig_size`` is the guest size in bytes,
    ``curr_size`` the same rounded up to a whole GiB (what qemu-img-hw shows).
    Guest data follows as *records*, one per non-zero 2 MiB guest block, in
    guest order: a 48-byte record header (``hwstream bg\\0``, stored payload
    size, guest block number), the compressed payload, padding to a multiple
    of 4096 bytes whose last 4 bytes are ``end\\0``. All-zero blocks are not
    stored.

ZVHD
    Stream only: no index. The record payloads are consecutive pieces of ONE
    zlib stream (the writer keeps one OpenSSL ``COMP_zlib`` context, which is
    stateful, for the whole file and ends each block with a sync flush), so a
    block can only be inflated after every block before it. After the last
    record the 4096-byte header block is written again; a file without that
    closing copy is a truncated upload.

ZVHD2
    ``zvhd2_version`` 1 adds random access: after the records come a copy of
    the header block, an index (16-byte entries: record offset, guest block,
    record size), a bitmap (one bit per guest block, least significant bit
    first, set for stored blocks) and a final 4096-byte block holding the
    header with ``index_lba`` / ``bitmap_lba`` filled in, which readers take
    from the end of the file. With ``index_contains_zero_blk`` 0 (the
    writer's default) the index lists only stored blocks, in order, and the
    bitmap says which guest block each belongs to; with 1 it has one entry
    per guest block. Each payload is compressed on its own (zlib with a sync
    flush and no end, or one zstd frame). A file whose final block or index is
    missing is a truncated upload: its facts are reported, its reads refuse.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage, UnsupportedFeature
from imgscan.findings import CORRUPT, FOOTER_MISMATCH, SIZE_MISMATCH

from .binary cimport le32, le64
from .container import Container, Format
from .inflate import StreamError, inflate_exact, whole_unit, zlib_bounded
from .extents cimport ExtentMap, KIND_COMPRESSED, KIND_ZERO, NO_HOST
from .guid import uuid_text
from .source cimport Source
from .vhd import vhd_checksum

from .c_zvhd import (
    BITMAP_SEG_SIZE, BLOCKS_PER_SEG, COMPRESS_NAMES, COMPRESS_ZLIB, GUEST_BLOCK_SIZE,
    HEADER_BLOCK_SIZE, INDEX_ENTRY, INDEX_SEG_SIZE, RECORD_ALIGN, RECORD_END, RECORD_HEADER,
    RECORD_PREFIX, STRUCT_SIZE, TAP_CREATOR, TAP_HIDDEN_QUIRK_VERSIONS, ZLIB_WBITS,
    ZVHD2_COOKIE, ZVHD2_VERSION_INDEXED, ZVHD_COOKIE, ZVHD_HEADER, GiB,
)

# The same numbers for the nogil index walk.
cdef uint64_t C_HEADER_BLOCK_SIZE = HEADER_BLOCK_SIZE
cdef uint64_t C_GUEST_BLOCK_SIZE = GUEST_BLOCK_SIZE
cdef uint64_t C_INDEX_ENTRY_SIZE = INDEX_ENTRY.size
cdef uint64_t C_IE_BLK_OFFSET = INDEX_ENTRY.offset("blk_offset")
cdef uint64_t C_IE_BLK_NUM = INDEX_ENTRY.offset("blk_num")
cdef uint64_t C_IE_BLK_DISK_SIZE = INDEX_ENTRY.offset("blk_disk_size")


def _h(field):
    """Byte offset of a header field: where an error about it points."""
    return ZVHD_HEADER.offset(field)


# --------------------------------------------------------------------------
# Header structure
# --------------------------------------------------------------------------

def header_checksum(data):
    """The checksum the 512-byte structure should carry (VHD's algorithm)."""
    return vhd_checksum(data[:STRUCT_SIZE], _h("checksum"))


def _checksum_ok(bytes s):
    h = ZVHD_HEADER.unpack(s)
    stored = h["checksum"]
    if header_checksum(s) == stored:
        return True
    if (h["hidden"] and h["crtr_app"].startswith(TAP_CREATOR)
            and h["crtr_ver"] in TAP_HIDDEN_QUIRK_VERSIONS):
        unhidden = s[:_h("hidden")] + b"\x00" + s[ZVHD_HEADER.end("hidden"):]
        return header_checksum(unhidden) == stored
    return False


def _timestamp(uint32_t seconds):
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(946684800 + seconds))


class _HwStreamImage(Container):
    """What ZVHD and ZVHD2 share: the header structure and its checks."""

    cluster_size = GUEST_BLOCK_SIZE

    def __init__(self, Source source):
        Container.__init__(self, source, 0)
        name = self.format.upper()
        if source.size < HEADER_BLOCK_SIZE:
            raise TruncatedImage(source.path, f"{name} header block", 0,
                                 f"the file ({source.size} bytes) is shorter than the "
                                 f"{HEADER_BLOCK_SIZE}-byte header block")
        s = source.read(0, STRUCT_SIZE, f"{name} header")
        self._header = s
        if not _checksum_ok(s):
            self.add_finding(
                CORRUPT, "error",
                f"{name} header at offset 0: checksum 0x{ZVHD_HEADER.field(s, 'checksum'):08x} "
                f"stored, 0x{header_checksum(s):08x} computed; Huawei's reader refuses such "
                "an image, the fields are used as they are",
            )
        self._describe(self._facts(s))

    def _facts(self, bytes header):
        """The structure whose fields describe the image (ZVHD: the header)."""
        return header

    def _describe(self, bytes s):
        d = self.details
        h = ZVHD_HEADER.unpack(s)
        orig = h["orig_size"]
        curr = h["curr_size"]
        limits.enforce(orig, "MAX_VIRTUAL_SIZE", self.path,
                       f"{self.format.upper()} header orig_size", _h("orig_size"), "orig_size")
        self.virtual_size = orig
        geometry = h["geometry"]
        crtr_ver = h["crtr_ver"]
        ff_version = h["ff_version"]
        d["cookie"] = h["cookie"].rstrip(b"\x00").decode("latin-1")
        d["features"] = h["features"]
        d["ff_version"] = "%d.%d" % (ff_version >> 16, ff_version & 0xFFFF)
        d["data_offset"] = h["data_offset"]
        d["timestamp"] = _timestamp(h["timestamp"])
        d["creator_application"] = h["crtr_app"].rstrip(b"\x00").decode("latin-1")
        d["creator_version"] = "%d.%d" % (crtr_ver >> 16, crtr_ver & 0xFFFF)
        d["creator_host_os"] = h["crtr_os"]
        d["original_size"] = orig
        d["current_size"] = curr
        d["disk_geometry"] = {"cylinders": geometry >> 16, "heads": (geometry >> 8) & 0xFF,
                              "sectors_per_track": geometry & 0xFF}
        d["disk_type"] = h["type"]
        d["checksum"] = h["checksum"]
        d["unique_id"] = uuid_text(h["uuid"])
        if curr != (orig + GiB - 1) // GiB * GiB:
            self.add_finding(
                SIZE_MISMATCH, "warning",
                f"{self.format.upper()} current size {curr} is not the original size {orig} "
                "rounded up to a whole GiB, as Huawei's writer sets it; qemu-img-hw shows "
                "the current size",
            )

    # -- shared record handling ------------------------------------------------
    def _record(self, uint64_t host, uint64_t stored_length):
        """Check one padded record; return its payload size and raw bytes."""
        structure = f"{self.format.upper()} record"
        if stored_length < RECORD_ALIGN or stored_length % RECORD_ALIGN:
            raise CorruptImage(self.path, structure, host,
                               f"record size {stored_length} is not a positive multiple of "
                               f"{RECORD_ALIGN}")
        limits.enforce(stored_length, "ZVHD_MAX_RECORD_BYTES", self.path, structure, host,
                       "record size")
        raw = self.source.read(host, stored_length, structure)
        if raw[:len(RECORD_PREFIX)] != RECORD_PREFIX:
            raise CorruptImage(self.path, structure, host, "no 'hwstream bg' record prefix")
        size = RECORD_HEADER.field(raw, "size")
        if size == 0 or RECORD_HEADER.size + size + len(RECORD_END) > stored_length:
            raise CorruptImage(self.path, structure, host,
                               f"payload size {size} does not fit the {stored_length}-byte "
                               "record")
        if raw[stored_length - len(RECORD_END):] != RECORD_END:
            raise CorruptImage(self.path, structure, host + stored_length - len(RECORD_END),
                               "the record does not end with 'end\\0'")
        return size, raw

    def _payload(self, bytes raw, size):
        return raw[RECORD_HEADER.size:RECORD_HEADER.size + size]


# --------------------------------------------------------------------------
# ZVHD: records in one zlib stream, no index
# --------------------------------------------------------------------------

class ZvhdImage(_HwStreamImage):
    """A ZVHD stream: the records are found by walking the file."""

    format = "zvhd"
    # decompress() continues one inflater from record to record.
    concurrent_reads = False

    def __init__(self, Source source):
        _HwStreamImage.__init__(self, source)
        self.details["compress_method"] = "zlib"
        #: Record offsets in file (= guest) order, filled by the map walk.
        self._hosts = []
        self._inflater = None
        self._next = 0
        self._checkpoints = {}

    def build_extent_map(self):
        """Walk the records from offset 4096 up to the closing header copy."""
        cdef Source src = self.source
        cdef uint64_t vsize = self.virtual_size
        cdef uint64_t fsize = src.size
        cdef uint64_t off = HEADER_BLOCK_SIZE
        cdef uint64_t guest = 0, start, size, padded
        cdef int64_t prev_blk = -1
        cdef ExtentMap emap = ExtentMap(vsize, GUEST_BLOCK_SIZE)
        hosts = []
        while True:
            if off + HEADER_BLOCK_SIZE > fsize:
                raise TruncatedImage(
                    self.path, "ZVHD record stream", off,
                    f"the file ends after {len(hosts)} record(s) without the closing header "
                    "copy: a truncated upload")
            head = src.read(off, RECORD_HEADER.size, "ZVHD record header")
            if head[:8] == ZVHD_COOKIE:
                closing = src.read(off, STRUCT_SIZE, "ZVHD closing header copy")
                if closing != self._header:
                    self.add_finding(
                        FOOTER_MISMATCH, "warning",
                        f"the closing ZVHD header copy at offset {off} differs from the "
                        "header at offset 0 (the writer copies it unchanged)")
                break
            if head[:len(RECORD_PREFIX)] != RECORD_PREFIX:
                raise CorruptImage(self.path, "ZVHD record", off,
                                   "neither a 'hwstream bg' record nor the closing header copy")
            size = RECORD_HEADER.field(head, "size")
            blk = RECORD_HEADER.field(head, "curr_blk")
            padded = _padded_size(size)
            if size == 0:
                raise CorruptImage(self.path, "ZVHD record", off, "payload size 0")
            limits.enforce(padded, "ZVHD_MAX_RECORD_BYTES", self.path, "ZVHD record", off,
                           "record size")
            if off + padded > fsize:
                raise TruncatedImage(self.path, "ZVHD record", off,
                                     f"the {padded}-byte record runs past the end of the "
                                     f"file ({fsize}): a truncated upload")
            if <int64_t>blk <= prev_blk:
                raise CorruptImage(self.path, "ZVHD record", off + RECORD_HEADER.offset("curr_blk"),
                                   f"guest block {blk} does not follow block {prev_blk}: "
                                   "a stream's records are in guest order")
            start = <uint64_t>blk * GUEST_BLOCK_SIZE
            if start >= vsize:
                raise CorruptImage(self.path, "ZVHD record", off + RECORD_HEADER.offset("curr_blk"),
                                   f"guest block {blk} lies past the {vsize}-byte disk")
            if src.read(off + padded - len(RECORD_END), len(RECORD_END),
                        "ZVHD record end") != RECORD_END:
                raise CorruptImage(self.path, "ZVHD record", off + padded - len(RECORD_END),
                                   "the record does not end with 'end\\0'")
            if (emap.add(guest, start - guest, KIND_ZERO, NO_HOST, 0, 0) < 0
                    or emap.add(start, min(GUEST_BLOCK_SIZE, vsize - start), KIND_COMPRESSED,
                                off, 0, padded) < 0):
                emap.refuse_full(self.path, "ZVHD record", off)
            hosts.append(off)
            guest = min(start + GUEST_BLOCK_SIZE, vsize)
            prev_blk = blk
            off += padded
        if emap.add(guest, vsize - guest, KIND_ZERO, NO_HOST, 0, 0) < 0:
            emap.refuse_full(self.path, "ZVHD record", off)
        self._hosts = hosts
        self.details["records"] = len(hosts)
        return emap

    def decompress(self, host, stored_length):
        """Inflate one record: the stream is continued from the record before it.

        The inflater of the last record read is kept, so guest-order reads
        cost one record each; a jump back restarts from the nearest checkpoint
        (a copy of the inflater taken every ``limits.ZVHD_CHECKPOINT_SPACING``
        records, at most ``limits.ZVHD_MAX_CHECKPOINTS`` of them).
        """
        import bisect
        hosts = self._hosts
        i = bisect.bisect_left(hosts, host)
        if i == len(hosts) or hosts[i] != host:
            raise CorruptImage(self.path, "ZVHD record", host, "not a record of the stream")
        try:
            return self._inflate_record(i, host, stored_length)
        except BaseException:
            self._inflater = None       # its state is unknown after a failure
            raise

    def _inflate_record(self, i, host, stored_length):
        import zlib
        hosts = self._hosts
        if self._inflater is None or self._next > i:
            base = max((k for k in self._checkpoints if k <= i), default=None)
            if base is None:
                self._inflater, self._next = zlib.decompressobj(ZLIB_WBITS), 0
            else:
                self._inflater, self._next = self._checkpoints[base].copy(), base
        out = b""
        while self._next <= i:
            k = self._next
            if (k % limits.ZVHD_CHECKPOINT_SPACING == 0 and k not in self._checkpoints
                    and len(self._checkpoints) < limits.ZVHD_MAX_CHECKPOINTS):
                self._checkpoints[k] = self._inflater.copy()
            rec_host = hosts[k]
            size, raw = self._record(rec_host, stored_length if k == i else
                                     self._padded(rec_host))
            structure = "ZVHD record"
            try:
                out, more = zlib_bounded(self._inflater, self._payload(raw, size),
                                         GUEST_BLOCK_SIZE)
            except StreamError as exc:
                raise CorruptImage(self.path, structure, rec_host, str(exc)) from None
            self._next = k + 1
            # Past the block only the sync flush's empty stored block may remain.
            whole_unit(self, out, more or bool(self._inflater.unconsumed_tail),
                       GUEST_BLOCK_SIZE, structure, rec_host, "block")
        return out

    def _padded(self, uint64_t host):
        head = self.source.read(host, RECORD_HEADER.size, "ZVHD record header")
        return _padded_size(RECORD_HEADER.field(head, "size"))


def _padded_size(size):
    """The bytes a record of a ``size``-byte payload takes: header, payload, end, padding."""
    return ((RECORD_HEADER.size + size + len(RECORD_END) + RECORD_ALIGN - 1)
            // RECORD_ALIGN * RECORD_ALIGN)


# --------------------------------------------------------------------------
# ZVHD2: index and bitmap at the end
# --------------------------------------------------------------------------

cdef int _walk_index(ExtentMap emap, const uint8_t* index, uint64_t entries,
                     const uint8_t* bitmap, uint64_t nblocks, uint64_t vsize,
                     bint with_zero_blocks, uint64_t data_end,
                     uint64_t* bad_at, int* why) noexcept nogil:
    """Map every guest block from the index (and the bitmap when it is sparse).

    Returns 0, -1 when the map is full, or -2 with ``why``/``bad_at`` naming the
    inconsistency (1: more stored blocks than entries, 2: entry for another
    block, 3: record outside the data area, 4: fewer stored blocks than
    entries, 5: a zero entry the bitmap calls stored).
    """
    cdef uint64_t b, rank = 0, start, length, e_off, e_size
    cdef uint32_t e_blk
    cdef const uint8_t* e
    cdef bint stored
    for b in range(nblocks):
        start = b * C_GUEST_BLOCK_SIZE
        length = C_GUEST_BLOCK_SIZE if vsize - start > C_GUEST_BLOCK_SIZE else vsize - start
        if with_zero_blocks:
            e = index + b * C_INDEX_ENTRY_SIZE
        else:
            stored = (bitmap[b >> 3] >> (b & 7)) & 1
            if not stored:
                if emap.add(start, length, KIND_ZERO, NO_HOST, 0, 0) < 0:
                    return -1
                continue
            if rank >= entries:
                bad_at[0] = b
                why[0] = 1
                return -2
            e = index + rank * C_INDEX_ENTRY_SIZE
            rank += 1
        e_off = le64(e + C_IE_BLK_OFFSET)
        e_blk = le32(e + C_IE_BLK_NUM)
        e_size = le32(e + C_IE_BLK_DISK_SIZE)
        if e_off == 0 or e_size == 0:
            if not with_zero_blocks:
                bad_at[0] = b
                why[0] = 5
                return -2
            if emap.add(start, length, KIND_ZERO, NO_HOST, 0, 0) < 0:
                return -1
            continue
        if e_blk != b:
            bad_at[0] = b
            why[0] = 2
            return -2
        if e_off < C_HEADER_BLOCK_SIZE or e_off > data_end or e_size > data_end - e_off:
            bad_at[0] = b
            why[0] = 3
            return -2
        if emap.add(start, length, KIND_COMPRESSED, e_off, 0, e_size) < 0:
            return -1
    if not with_zero_blocks and rank != entries:
        bad_at[0] = rank
        why[0] = 4
        return -2
    return 0


class Zvhd2Image(_HwStreamImage):
    """A ZVHD2 file; the index and bitmap come from the block at its end."""

    format = "zvhd2"

    def __init__(self, Source source):
        self._missing = None
        _HwStreamImage.__init__(self, source)
        self._describe2(self._facts_struct)

    def _facts(self, bytes s):
        """The final block at the end of the file when present, as Huawei's reader does."""
        src = self.source
        tail_off = src.size - HEADER_BLOCK_SIZE
        tail = src.read(tail_off, STRUCT_SIZE, "ZVHD2 final header block") \
            if tail_off >= HEADER_BLOCK_SIZE else b""
        if not (tail[:len(ZVHD2_COOKIE)] == ZVHD2_COOKIE
                and ZVHD_HEADER.field(tail, "index_lba")
                and ZVHD_HEADER.field(tail, "bitmap_lba")):
            self._missing = (tail_off if tail_off >= HEADER_BLOCK_SIZE else src.size,
                             "no final header block with an index and bitmap at the end of "
                             "the file: a truncated upload (Huawei's reader refuses it)")
            self._facts_struct = s
            return s
        if not _checksum_ok(tail):
            self.add_finding(
                CORRUPT, "error",
                f"ZVHD2 final header block at offset {tail_off}: checksum "
                f"0x{ZVHD_HEADER.field(tail, 'checksum'):08x} stored, "
                f"0x{header_checksum(tail):08x} "
                "computed; Huawei's reader refuses such an image")
        differ = [name for name in (
            "orig_size", "curr_size", "uuid", "block_size", "max_blk_num", "compress_method",
            "index_contains_zero_blk")
            if ZVHD_HEADER.field(s, name) != ZVHD_HEADER.field(tail, name)]
        if differ:
            self.add_finding(
                FOOTER_MISMATCH, "warning",
                f"the ZVHD2 header at offset 0 and the final block at offset {tail_off} "
                f"differ in {', '.join(differ)}; the final block is used (as Huawei's "
                "reader does)")
        self.details["final_block_offset"] = tail_off
        self._facts_struct = tail
        return tail

    def _describe2(self, bytes s):
        d = self.details
        path = self.path
        h = ZVHD_HEADER.unpack(s)
        version = h["zvhd2_version"]
        block_size = h["block_size"]
        method = h["compress_method"]
        d["zvhd2_version"] = version
        d["block_size"] = block_size
        d["max_blk_num"] = h["max_blk_num"]
        d["non_zero_blk_num"] = h["non_zero_blk_num"]
        d["index_contains_zero_blk"] = bool(h["index_contains_zero_blk"])
        d["compress_method"] = COMPRESS_NAMES.get(method, method)
        for name in ("index_lba", "bitmap_lba", "index_size", "bitmap_size", "index_seg_size",
                     "bitmap_seg_size", "index_seg_num", "bitmap_seg_num"):
            d[name] = h[name]
        if version != ZVHD2_VERSION_INDEXED:
            raise UnsupportedFeature(
                path, "ZVHD2 header zvhd2_version", _h("zvhd2_version"),
                f"version {version}: only 1 (indexed) is known; the stream layout of other "
                "versions is not documented")
        if block_size != GUEST_BLOCK_SIZE:
            raise UnsupportedFeature(
                path, "ZVHD2 header block_size", _h("block_size"),
                f"block size {block_size}: Huawei's public reader numbers blocks in 2 MiB "
                "units whatever this field says, so another value has no known meaning")
        if method not in COMPRESS_NAMES:
            raise UnsupportedFeature(path, "ZVHD2 header compress_method", _h("compress_method"),
                                     f"method {method} is neither zlib (0) nor zstd (1)")
        self._method = method
        nblocks = (self.virtual_size + GUEST_BLOCK_SIZE - 1) // GUEST_BLOCK_SIZE
        if d["max_blk_num"] != nblocks:
            raise CorruptImage(path, "ZVHD2 header max_blk_num", _h("max_blk_num"),
                               f"{d['max_blk_num']} blocks, but the {self.virtual_size}-byte "
                               f"disk has {nblocks}")

    def _tables(self):
        """Check and read the index and bitmap named by the final block."""
        d = self.details
        path = self.path
        tail_off = self.source.size - HEADER_BLOCK_SIZE
        nblocks = d["max_blk_num"]
        entries = nblocks if d["index_contains_zero_blk"] else d["non_zero_blk_num"]
        if d["index_seg_size"] != INDEX_SEG_SIZE:
            raise UnsupportedFeature(path, "ZVHD2 index_seg_size", tail_off + _h("index_seg_size"),
                                     f"{d['index_seg_size']}: only {INDEX_SEG_SIZE} is known")
        if d["bitmap_seg_size"] != BITMAP_SEG_SIZE:
            raise UnsupportedFeature(path, "ZVHD2 bitmap_seg_size",
                                     tail_off + _h("bitmap_seg_size"),
                                     f"{d['bitmap_seg_size']}: only {BITMAP_SEG_SIZE} is known")
        if entries > nblocks:
            raise CorruptImage(path, "ZVHD2 non_zero_blk_num", tail_off + _h("non_zero_blk_num"),
                               f"{entries} stored blocks in a disk of {nblocks}")
        index_segs = -(-entries // BLOCKS_PER_SEG)
        bitmap_segs = -(-nblocks // BLOCKS_PER_SEG)
        for name, want in (("index_seg_num", index_segs),
                           ("index_size", index_segs * INDEX_SEG_SIZE),
                           ("bitmap_seg_num", bitmap_segs),
                           ("bitmap_size", bitmap_segs * BITMAP_SEG_SIZE)):
            if d[name] != want:
                raise CorruptImage(path, f"ZVHD2 {name}", tail_off,
                                   f"{d[name]}, but {entries} index entries and {nblocks} "
                                   f"blocks need {want}")
        for name, what in (("index", d["index_size"]), ("bitmap", d["bitmap_size"])):
            limits.enforce(what, "ZVHD2_MAX_TABLE_BYTES", path, f"ZVHD2 {name}",
                           d[name + "_lba"], f"{name} size")
            lba = d[name + "_lba"]
            if lba < HEADER_BLOCK_SIZE or lba + what > tail_off:
                raise TruncatedImage(path, f"ZVHD2 {name}", lba,
                                     f"{what} bytes at offset {lba} do not lie between the "
                                     f"header and the final block at {tail_off}: truncated "
                                     "or damaged")
        index = self.source.read(d["index_lba"], entries * INDEX_ENTRY.size, "ZVHD2 index")
        bitmap = self.source.read(d["bitmap_lba"], d["bitmap_size"], "ZVHD2 bitmap")
        return index, entries, bitmap, min(d["index_lba"], d["bitmap_lba"])

    def build_extent_map(self):
        if self._missing is not None:
            raise TruncatedImage(self.path, "ZVHD2 final header block", *self._missing)
        index, entries, bitmap, data_end = self._tables()
        cdef const uint8_t[::1] ix = index
        cdef const uint8_t[::1] bm = bitmap
        cdef uint64_t vsize = self.virtual_size
        cdef uint64_t nblocks = self.details["max_blk_num"]
        cdef ExtentMap emap = ExtentMap(vsize, GUEST_BLOCK_SIZE)
        cdef uint64_t bad_at = 0
        cdef int why = 0, rc
        cdef bint with_zero = self.details["index_contains_zero_blk"]
        cdef const uint8_t* ip = &ix[0] if ix.shape[0] else NULL
        cdef const uint8_t* bp = &bm[0] if bm.shape[0] else NULL
        cdef uint64_t n_entries = entries, end = data_end
        with nogil:
            rc = _walk_index(emap, ip, n_entries, bp, nblocks, vsize, with_zero, end,
                             &bad_at, &why)
        if rc == -1:
            emap.refuse_full(self.path, "ZVHD2 index", self.details["index_lba"])
        if rc == -2:
            problems = {
                1: f"the bitmap marks block {bad_at} stored but the index has only "
                   f"{entries} entries",
                2: f"the index entry for guest block {bad_at} names another block",
                3: f"the record of guest block {bad_at} lies outside the data area "
                   f"(offsets {HEADER_BLOCK_SIZE}..{data_end})",
                4: f"the bitmap marks {bad_at} blocks stored but the index has {entries} "
                   "entries",
                5: f"the bitmap marks block {bad_at} stored but its index entry is empty",
            }
            raise CorruptImage(self.path, "ZVHD2 index", self.details["index_lba"],
                               problems[why])
        return emap

    def decompress(self, host, stored_length):
        """Inflate one record: each payload is a stream of its own."""
        size, raw = self._record(host, stored_length)
        record = RECORD_HEADER.unpack(raw)
        compressed = record["compressed"]
        orig = record["orig_size"]
        if compressed not in (0, 1):
            raise UnsupportedFeature(self.path, "ZVHD2 record compressed",
                                     host + RECORD_HEADER.offset("compressed"),
                                     f"value {compressed}: the public writer leaves it 0; "
                                     "other values have no known meaning")
        if orig not in (0, GUEST_BLOCK_SIZE):
            raise UnsupportedFeature(self.path, "ZVHD2 record orig_size",
                                     host + RECORD_HEADER.offset("orig_size"),
                                     f"value {orig}: the public writer leaves it 0; only 0 "
                                     f"or the block size {GUEST_BLOCK_SIZE} is understood")
        return inflate_exact(self, self._payload(raw, size), GUEST_BLOCK_SIZE, "ZVHD2 record",
                             host, zstd=self._method != COMPRESS_ZLIB, wbits=ZLIB_WBITS,
                             unit_name="block")


# --------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------

def _probe(Source source, bytes cookie):
    """The 8-byte cookie at offset 0 (the writer zero-fills after the 6 letters).

    A file holding only part of the cookie is not claimed: the header block is
    4 KiB, so such a file is not even a damaged header.
    """
    return source.size >= 8 and source.read(0, 8, "ZVHD cookie") == cookie


def probe_zvhd(Source source):
    return _probe(source, ZVHD_COOKIE)


def probe_zvhd2(Source source):
    return _probe(source, ZVHD2_COOKIE)


FORMAT = Format("zvhd", probe_zvhd, ZvhdImage)
FORMAT2 = Format("zvhd2", probe_zvhd2, Zvhd2Image)
#: Both, for the registry.
FORMATS = (FORMAT, FORMAT2)

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
from imgscan.errors import CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature
from imgscan.findings import CORRUPT, FOOTER_MISMATCH, SIZE_MISMATCH

from .binary cimport le32, le64
from .container import Container, Format
from .inflate import StreamError, zlib_bounded, zstd_bounded
from .extents cimport ExtentMap, KIND_COMPRESSED, KIND_ZERO, NO_HOST
from .guid import uuid_text
from .source cimport Source
from .vhd import vhd_checksum

# --------------------------------------------------------------------------
# On-disk layout (struct ZVHD_FOOTER / ZVHD2_FOOTER, ZVHD2_DATA,
# ZVHD2_INDEX_ENTRY of the public source). Little-endian; offsets in bytes.
# --------------------------------------------------------------------------

#: The header block at offset 0 (and its copies) is 4096 bytes; its first 512
#: bytes are the structure, the rest is zero padding.
HEADER_BLOCK_SIZE = 4096
STRUCT_SIZE = 512

ZVHD_COOKIE = b"stream\x00\x00"
ZVHD2_COOKIE = b"z2strm\x00\x00"

H_COOKIE = 0                 # char[8]
H_FEATURES = 8               # u32, 0x00000002
H_FF_VERSION = 12            # u32, 0x00010000
H_DATA_OFFSET = 16           # u64, all ones
H_TIMESTAMP = 24             # u32, seconds since 2000-01-01 UTC
H_CRTR_APP = 28              # char[4], "tap"
H_CRTR_VER = 32              # u32, 0x00010004 (new) or 0x00010003 (old)
H_CRTR_OS = 36               # u32
H_ORIG_SIZE = 40             # u64, guest size in bytes
H_CURR_SIZE = 48             # u64, orig_size rounded up to a whole GiB
H_GEOMETRY = 56              # u32, CHS as VHD: cylinders << 16 | heads << 8 | sectors
H_TYPE = 60                  # u32, 4 as written
H_CHECKSUM = 64              # u32
H_UUID = 68                  # 16 bytes (libuuid order)
H_SAVED = 84
H_HIDDEN = 85
H_ALIGN_64 = 86
# ZVHD2 only
H_ZVHD2_VERSION = 87         # u8, 1 = indexed
H_BLOCK_SIZE = 88            # u32
H_MAX_BLK_NUM = 92           # u32, guest blocks
H_INDEX_LBA = 96             # u64, byte offset of the index
H_BITMAP_LBA = 104           # u64, byte offset of the bitmap
H_INDEX_SIZE = 112           # u32, bytes
H_BITMAP_SIZE = 116          # u32, bytes
H_INDEX_SEG_SIZE = 120       # u32
H_BITMAP_SEG_SIZE = 124      # u32
H_INDEX_SEG_NUM = 128        # u32
H_BITMAP_SEG_NUM = 132       # u32
H_NON_ZERO_BLK_NUM = 136     # u32, stored blocks
H_INDEX_CONTAINS_ZERO_BLK = 140  # u8
H_COMPRESS_METHOD = 141      # u8

COMPRESS_ZLIB = 0
COMPRESS_ZSTD = 1
COMPRESS_NAMES = {COMPRESS_ZLIB: "zlib", COMPRESS_ZSTD: "zstd"}
ZVHD2_VERSION_INDEXED = 1

#: What the public writer puts in the fixed fields (reported, not enforced).
FEATURES_RESERVED = 0x00000002
FF_VERSION = 0x00010000
CRTR_VER_NEW = 0x00010004
CRTR_VER_OLD = 0x00010003
#: tapdisk's checksum quirk, honoured by the public reader: when the
#: checksum fails, a set ``hidden`` byte with creator "tap" 0.1 or 1.1 is
#: counted as zero.
TAP_HIDDEN_QUIRK_VERSIONS = (0x00000001, 0x00010001)

#: Guest block: the public reader and writer number blocks in 2 MiB units
#: (sector / 4096) whatever ``block_size`` says; a record inflates to one block.
GUEST_BLOCK_SIZE = 2 * 1024 * 1024
GiB = 1 << 30

# Record header (struct ZVHD2_DATA, 48 bytes; ZVHD uses the first 20).
RECORD_HEADER_SIZE = 48
RECORD_PREFIX = b"hwstream bg\x00"
R_SIZE = 12                  # u32, stored payload bytes
R_CURR_BLK = 16              # u32, guest block number
R_COMPRESSED = 20            # u8 (ZVHD2; 0 as the public writer leaves it)
R_ORIG_SIZE = 24             # u32 (ZVHD2; 0 as the public writer leaves it)
RECORD_END = b"end\x00"      # last 4 bytes of the padded record
RECORD_ALIGN = 4096

# Index entry (struct ZVHD2_INDEX_ENTRY) and the segment sizes the public
# code uses (its reader ignores the header's values and uses these).
INDEX_ENTRY_SIZE = 16
IE_BLK_OFFSET = 0            # u64, record offset; 0 = zero block
IE_BLK_NUM = 8               # u32, guest block
IE_BLK_DISK_SIZE = 12        # u32, padded record size
INDEX_SEG_SIZE = 512 * 1024
BLOCKS_PER_SEG = INDEX_SEG_SIZE // INDEX_ENTRY_SIZE       # 32768
BITMAP_SEG_SIZE = BLOCKS_PER_SEG // 8                      # 4096

# The same numbers for the nogil index walk.
cdef enum:
    C_HEADER_BLOCK_SIZE = 4096
    C_GUEST_BLOCK_SIZE = 2 * 1024 * 1024
    C_INDEX_ENTRY_SIZE = 16
    C_IE_BLK_OFFSET = 0
    C_IE_BLK_NUM = 8
    C_IE_BLK_DISK_SIZE = 12

#: zlib stream of ZVHD (zlib header, 32 KiB window); ZVHD2's zlib payloads too.
ZLIB_WBITS = 15


# --------------------------------------------------------------------------
# Header structure
# --------------------------------------------------------------------------

def _le(bytes data, Py_ssize_t offset, Py_ssize_t size):
    return int.from_bytes(data[offset:offset + size], "little")


def header_checksum(data):
    """The checksum the 512-byte structure should carry (VHD's algorithm)."""
    return vhd_checksum(data[:STRUCT_SIZE], H_CHECKSUM)


def _checksum_ok(bytes s):
    stored = _le(s, H_CHECKSUM, 4)
    if header_checksum(s) == stored:
        return True
    if (s[H_HIDDEN] and s[H_CRTR_APP:H_CRTR_APP + 3] == b"tap"
            and _le(s, H_CRTR_VER, 4) in TAP_HIDDEN_QUIRK_VERSIONS):
        unhidden = s[:H_HIDDEN] + b"\x00" + s[H_HIDDEN + 1:]
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
                f"{name} header at offset 0: checksum 0x{_le(s, H_CHECKSUM, 4):08x} stored, "
                f"0x{header_checksum(s):08x} computed; Huawei's reader refuses such an "
                "image, the fields are used as they are",
            )
        self._describe(self._facts(s))

    def _facts(self, bytes header):
        """The structure whose fields describe the image (ZVHD: the header)."""
        return header

    def _describe(self, bytes s):
        d = self.details
        orig = _le(s, H_ORIG_SIZE, 8)
        curr = _le(s, H_CURR_SIZE, 8)
        if orig > limits.MAX_VIRTUAL_SIZE:
            raise LimitExceeded(self.path, f"{self.format.upper()} header orig_size",
                                H_ORIG_SIZE, f"{orig} bytes exceed limits.MAX_VIRTUAL_SIZE")
        self.virtual_size = orig
        geometry = _le(s, H_GEOMETRY, 4)
        crtr_ver = _le(s, H_CRTR_VER, 4)
        d["cookie"] = s[:8].rstrip(b"\x00").decode("latin-1")
        d["features"] = _le(s, H_FEATURES, 4)
        d["ff_version"] = "%d.%d" % (_le(s, H_FF_VERSION, 4) >> 16, _le(s, H_FF_VERSION, 4) & 0xFFFF)
        d["data_offset"] = _le(s, H_DATA_OFFSET, 8)
        d["timestamp"] = _timestamp(_le(s, H_TIMESTAMP, 4))
        d["creator_application"] = s[H_CRTR_APP:H_CRTR_APP + 4].rstrip(b"\x00").decode("latin-1")
        d["creator_version"] = "%d.%d" % (crtr_ver >> 16, crtr_ver & 0xFFFF)
        d["creator_host_os"] = _le(s, H_CRTR_OS, 4)
        d["original_size"] = orig
        d["current_size"] = curr
        d["disk_geometry"] = {"cylinders": geometry >> 16, "heads": (geometry >> 8) & 0xFF,
                              "sectors_per_track": geometry & 0xFF}
        d["disk_type"] = _le(s, H_TYPE, 4)
        d["checksum"] = _le(s, H_CHECKSUM, 4)
        d["unique_id"] = uuid_text(s[H_UUID:H_UUID + 16])
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
        if stored_length > limits.ZVHD_MAX_RECORD_BYTES:
            raise LimitExceeded(self.path, structure, host,
                                f"record of {stored_length} bytes exceeds "
                                f"limits.ZVHD_MAX_RECORD_BYTES")
        raw = self.source.read(host, stored_length, structure)
        if raw[:len(RECORD_PREFIX)] != RECORD_PREFIX:
            raise CorruptImage(self.path, structure, host, "no 'hwstream bg' record prefix")
        size = _le(raw, R_SIZE, 4)
        if size == 0 or RECORD_HEADER_SIZE + size + len(RECORD_END) > stored_length:
            raise CorruptImage(self.path, structure, host,
                               f"payload size {size} does not fit the {stored_length}-byte "
                               "record")
        if raw[stored_length - len(RECORD_END):] != RECORD_END:
            raise CorruptImage(self.path, structure, host + stored_length - len(RECORD_END),
                               "the record does not end with 'end\\0'")
        return size, raw

    def _bomb(self, uint64_t host):
        return self.compression_bomb(f"{self.format.upper()} record", host, GUEST_BLOCK_SIZE)

    def _whole_block(self, bytes out, uint64_t host):
        if len(out) != GUEST_BLOCK_SIZE:
            raise CorruptImage(self.path, f"{self.format.upper()} record", host,
                               f"the payload inflates to {len(out)} bytes, not the "
                               f"{GUEST_BLOCK_SIZE}-byte block")
        return out


def _zlib_feed(inflater, data, self, uint64_t host):
    """Inflate one record's piece of a zlib stream into at most one block."""
    try:
        out, more = zlib_bounded(inflater, data, GUEST_BLOCK_SIZE)
    except StreamError as exc:
        raise CorruptImage(self.path, f"{self.format.upper()} record", host, str(exc)) from None
    # Past the block only the sync flush's empty stored block may remain.
    if more or inflater.unconsumed_tail:
        raise self._bomb(host)
    return out


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
            head = src.read(off, RECORD_HEADER_SIZE, "ZVHD record header")
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
            size = _le(head, R_SIZE, 4)
            blk = _le(head, R_CURR_BLK, 4)
            padded = (RECORD_HEADER_SIZE + size + len(RECORD_END) + RECORD_ALIGN - 1) \
                // RECORD_ALIGN * RECORD_ALIGN
            if size == 0:
                raise CorruptImage(self.path, "ZVHD record", off, "payload size 0")
            if padded > limits.ZVHD_MAX_RECORD_BYTES:
                raise LimitExceeded(self.path, "ZVHD record", off,
                                    f"record of {padded} bytes exceeds "
                                    "limits.ZVHD_MAX_RECORD_BYTES")
            if off + padded > fsize:
                raise TruncatedImage(self.path, "ZVHD record", off,
                                     f"the {padded}-byte record runs past the end of the "
                                     f"file ({fsize}): a truncated upload")
            if <int64_t>blk <= prev_blk:
                raise CorruptImage(self.path, "ZVHD record", off + R_CURR_BLK,
                                   f"guest block {blk} does not follow block {prev_blk}: "
                                   "a stream's records are in guest order")
            start = <uint64_t>blk * GUEST_BLOCK_SIZE
            if start >= vsize:
                raise CorruptImage(self.path, "ZVHD record", off + R_CURR_BLK,
                                   f"guest block {blk} lies past the {vsize}-byte disk")
            if src.read(off + padded - len(RECORD_END), len(RECORD_END),
                        "ZVHD record end") != RECORD_END:
                raise CorruptImage(self.path, "ZVHD record", off + padded - len(RECORD_END),
                                   "the record does not end with 'end\\0'")
            if (emap.add(guest, start - guest, KIND_ZERO, NO_HOST, 0, 0) < 0
                    or emap.add(start, min(GUEST_BLOCK_SIZE, vsize - start), KIND_COMPRESSED,
                                off, 0, padded) < 0):
                raise LimitExceeded(self.path, "ZVHD record", off,
                                    "the extent map exceeds limits.MAX_EXTENTS")
            hosts.append(off)
            guest = min(start + GUEST_BLOCK_SIZE, vsize)
            prev_blk = blk
            off += padded
        if emap.add(guest, vsize - guest, KIND_ZERO, NO_HOST, 0, 0) < 0:
            raise LimitExceeded(self.path, "ZVHD record", off,
                                "the extent map exceeds limits.MAX_EXTENTS")
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
            out = _zlib_feed(self._inflater, raw[RECORD_HEADER_SIZE:RECORD_HEADER_SIZE + size],
                             self, rec_host)
            self._next = k + 1
            if k != i:
                self._whole_block(out, rec_host)
        return self._whole_block(out, host)

    def _padded(self, uint64_t host):
        size = _le(self.source.read(host, RECORD_HEADER_SIZE, "ZVHD record header"), R_SIZE, 4)
        return (RECORD_HEADER_SIZE + size + len(RECORD_END) + RECORD_ALIGN - 1) \
            // RECORD_ALIGN * RECORD_ALIGN


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
        if not (tail[:8] == ZVHD2_COOKIE and _le(tail, H_INDEX_LBA, 8)
                and _le(tail, H_BITMAP_LBA, 8)):
            self._missing = (tail_off if tail_off >= HEADER_BLOCK_SIZE else src.size,
                             "no final header block with an index and bitmap at the end of "
                             "the file: a truncated upload (Huawei's reader refuses it)")
            self._facts_struct = s
            return s
        if not _checksum_ok(tail):
            self.add_finding(
                CORRUPT, "error",
                f"ZVHD2 final header block at offset {tail_off}: checksum "
                f"0x{_le(tail, H_CHECKSUM, 4):08x} stored, 0x{header_checksum(tail):08x} "
                "computed; Huawei's reader refuses such an image")
        differ = [name for name, off, size in (
            ("orig_size", H_ORIG_SIZE, 8), ("curr_size", H_CURR_SIZE, 8),
            ("uuid", H_UUID, 16), ("block_size", H_BLOCK_SIZE, 4),
            ("max_blk_num", H_MAX_BLK_NUM, 4), ("compress_method", H_COMPRESS_METHOD, 1),
            ("index_contains_zero_blk", H_INDEX_CONTAINS_ZERO_BLK, 1))
            if s[off:off + size] != tail[off:off + size]]
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
        version = s[H_ZVHD2_VERSION]
        block_size = _le(s, H_BLOCK_SIZE, 4)
        method = s[H_COMPRESS_METHOD]
        d["zvhd2_version"] = version
        d["block_size"] = block_size
        d["max_blk_num"] = _le(s, H_MAX_BLK_NUM, 4)
        d["non_zero_blk_num"] = _le(s, H_NON_ZERO_BLK_NUM, 4)
        d["index_contains_zero_blk"] = bool(s[H_INDEX_CONTAINS_ZERO_BLK])
        d["compress_method"] = COMPRESS_NAMES.get(method, method)
        for name, off, size in (("index_lba", H_INDEX_LBA, 8), ("bitmap_lba", H_BITMAP_LBA, 8),
                                ("index_size", H_INDEX_SIZE, 4),
                                ("bitmap_size", H_BITMAP_SIZE, 4),
                                ("index_seg_size", H_INDEX_SEG_SIZE, 4),
                                ("bitmap_seg_size", H_BITMAP_SEG_SIZE, 4),
                                ("index_seg_num", H_INDEX_SEG_NUM, 4),
                                ("bitmap_seg_num", H_BITMAP_SEG_NUM, 4)):
            d[name] = _le(s, off, size)
        if version != ZVHD2_VERSION_INDEXED:
            raise UnsupportedFeature(
                path, "ZVHD2 header zvhd2_version", H_ZVHD2_VERSION,
                f"version {version}: only 1 (indexed) is known; the stream layout of other "
                "versions is not documented")
        if block_size != GUEST_BLOCK_SIZE:
            raise UnsupportedFeature(
                path, "ZVHD2 header block_size", H_BLOCK_SIZE,
                f"block size {block_size}: Huawei's public reader numbers blocks in 2 MiB "
                "units whatever this field says, so another value has no known meaning")
        if method not in COMPRESS_NAMES:
            raise UnsupportedFeature(path, "ZVHD2 header compress_method", H_COMPRESS_METHOD,
                                     f"method {method} is neither zlib (0) nor zstd (1)")
        self._method = method
        nblocks = (self.virtual_size + GUEST_BLOCK_SIZE - 1) // GUEST_BLOCK_SIZE
        if d["max_blk_num"] != nblocks:
            raise CorruptImage(path, "ZVHD2 header max_blk_num", H_MAX_BLK_NUM,
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
            raise UnsupportedFeature(path, "ZVHD2 index_seg_size", tail_off + H_INDEX_SEG_SIZE,
                                     f"{d['index_seg_size']}: only {INDEX_SEG_SIZE} is known")
        if d["bitmap_seg_size"] != BITMAP_SEG_SIZE:
            raise UnsupportedFeature(path, "ZVHD2 bitmap_seg_size",
                                     tail_off + H_BITMAP_SEG_SIZE,
                                     f"{d['bitmap_seg_size']}: only {BITMAP_SEG_SIZE} is known")
        if entries > nblocks:
            raise CorruptImage(path, "ZVHD2 non_zero_blk_num", tail_off + H_NON_ZERO_BLK_NUM,
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
            if what > limits.ZVHD2_MAX_TABLE_BYTES:
                raise LimitExceeded(path, f"ZVHD2 {name}", d[name + "_lba"],
                                    f"{what} bytes exceed limits.ZVHD2_MAX_TABLE_BYTES")
            lba = d[name + "_lba"]
            if lba < HEADER_BLOCK_SIZE or lba + what > tail_off:
                raise TruncatedImage(path, f"ZVHD2 {name}", lba,
                                     f"{what} bytes at offset {lba} do not lie between the "
                                     f"header and the final block at {tail_off}: truncated "
                                     "or damaged")
        index = self.source.read(d["index_lba"], entries * INDEX_ENTRY_SIZE, "ZVHD2 index")
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
            raise LimitExceeded(self.path, "ZVHD2 index", self.details["index_lba"],
                                "the extent map exceeds limits.MAX_EXTENTS")
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
        compressed = raw[R_COMPRESSED]
        orig = _le(raw, R_ORIG_SIZE, 4)
        if compressed not in (0, 1):
            raise UnsupportedFeature(self.path, "ZVHD2 record compressed", host + R_COMPRESSED,
                                     f"value {compressed}: the public writer leaves it 0; "
                                     "other values have no known meaning")
        if orig not in (0, GUEST_BLOCK_SIZE):
            raise UnsupportedFeature(self.path, "ZVHD2 record orig_size", host + R_ORIG_SIZE,
                                     f"value {orig}: the public writer leaves it 0; only 0 "
                                     f"or the block size {GUEST_BLOCK_SIZE} is understood")
        payload = raw[RECORD_HEADER_SIZE:RECORD_HEADER_SIZE + size]
        if self._method == COMPRESS_ZLIB:
            import zlib
            out = _zlib_feed(zlib.decompressobj(ZLIB_WBITS), payload, self, host)
        else:
            out = self._inflate_zstd(payload, host)
        return self._whole_block(out, host)

    def _inflate_zstd(self, bytes data, uint64_t host):
        try:
            out, more = zstd_bounded(data, GUEST_BLOCK_SIZE)
        except StreamError as exc:
            raise CorruptImage(self.path, "ZVHD2 record", host, str(exc)) from None
        if more:
            raise self._bomb(host)
        return out


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

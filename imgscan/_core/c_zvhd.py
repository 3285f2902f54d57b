"""ZVHD / ZVHD2 on-disk structures and constants, as Huawei's public source names them.

Structures ``ZVHD_FOOTER`` / ``ZVHD2_FOOTER`` (the header at offset 0 and its
copies), ``ZVHD2_DATA`` (a record header) and ``ZVHD2_INDEX_ENTRY``. All
integers are little-endian. The logic lives in :mod:`imgscan._core.zvhd`.
"""

from __future__ import annotations

from .cstruct import CStruct

#: The header block at offset 0 (and its copies) is 4096 bytes; its first 512
#: bytes are the structure, the rest is zero padding.
HEADER_BLOCK_SIZE = 4096
STRUCT_SIZE = 512

ZVHD_COOKIE = b"stream\x00\x00"
ZVHD2_COOKIE = b"z2strm\x00\x00"

#: ZVHD2_FOOTER; ZVHD's ZVHD_FOOTER is the same up to ``align_64``.
ZVHD_HEADER = CStruct("ZVHD2_FOOTER", "<", [
    ("cookie", "8s"),
    ("features", "I"),              # 0x00000002
    ("ff_version", "I"),            # 0x00010000
    ("data_offset", "Q"),           # all ones
    ("timestamp", "I"),             # seconds since 2000-01-01 UTC
    ("crtr_app", "4s"),             # "tap"
    ("crtr_ver", "I"),              # 0x00010004 (new) or 0x00010003 (old)
    ("crtr_os", "I"),
    ("orig_size", "Q"),             # guest size in bytes
    ("curr_size", "Q"),             # orig_size rounded up to a whole GiB
    ("geometry", "I"),              # CHS as VHD: cylinders << 16 | heads << 8 | sectors
    ("type", "I"),                  # 4 as written
    ("checksum", "I"),
    ("uuid", "16s"),                # libuuid order
    ("saved", "B"),
    ("hidden", "B"),
    ("align_64", "B"),
    # ZVHD2 only
    ("zvhd2_version", "B"),         # 1 = indexed
    ("block_size", "I"),
    ("max_blk_num", "I"),           # guest blocks
    ("index_lba", "Q"),             # byte offset of the index
    ("bitmap_lba", "Q"),            # byte offset of the bitmap
    ("index_size", "I"),            # bytes
    ("bitmap_size", "I"),           # bytes
    ("index_seg_size", "I"),
    ("bitmap_seg_size", "I"),
    ("index_seg_num", "I"),
    ("bitmap_seg_num", "I"),
    ("non_zero_blk_num", "I"),      # stored blocks
    ("index_contains_zero_blk", "B"),
    ("compress_method", "B"),
])

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
TAP_CREATOR = b"tap"

#: Guest block: the public reader and writer number blocks in 2 MiB units
#: (sector / 4096) whatever ``block_size`` says; a record inflates to one block.
GUEST_BLOCK_SIZE = 2 * 1024 * 1024
GiB = 1 << 30

#: A record header (ZVHD2_DATA, 48 bytes; ZVHD uses the first 20).
RECORD_HEADER = CStruct("ZVHD2_DATA", "<", [
    ("prefix", "12s"),              # "hwstream bg\0"
    ("size", "I"),                  # stored payload bytes
    ("curr_blk", "I"),              # guest block number
    ("compressed", "B"),            # ZVHD2; 0 as the public writer leaves it
    (None, "3x"),
    ("orig_size", "I"),             # ZVHD2; 0 as the public writer leaves it
    (None, "20x"),
])
RECORD_PREFIX = b"hwstream bg\x00"
RECORD_END = b"end\x00"      # last 4 bytes of the padded record
RECORD_ALIGN = 4096

#: One index entry (ZVHD2_INDEX_ENTRY).
INDEX_ENTRY = CStruct("ZVHD2_INDEX_ENTRY", "<", [
    ("blk_offset", "Q"),            # record offset; 0 = zero block
    ("blk_num", "I"),               # guest block
    ("blk_disk_size", "I"),         # padded record size
])
#: The segment sizes the public code uses (its reader ignores the header's).
INDEX_SEG_SIZE = 512 * 1024
BLOCKS_PER_SEG = INDEX_SEG_SIZE // INDEX_ENTRY.size       # 32768
BITMAP_SEG_SIZE = BLOCKS_PER_SEG // 8                      # 4096

#: zlib stream of ZVHD (zlib header, 32 KiB window); ZVHD2's zlib payloads too.
ZLIB_WBITS = 15

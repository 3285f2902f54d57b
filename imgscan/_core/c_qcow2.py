"""qcow2 on-disk structures and constants, as qemu's docs/interop/qcow2.txt and qcow2.h name them.

All integers are big-endian. The logic lives in :mod:`imgscan._core.qcow2`.
"""

from __future__ import annotations

from .cstruct import CStruct

QCOW2_MAGIC = b"QFI\xfb"
#: Version 1 is the older QCOW format, decoded by its own module.
QCOW1_VERSION = 1

#: ``QCowHeader``. Version 2 stops before ``incompatible_features``; version 3
#: has at least up to ``header_length``, and ``compression_type`` when its
#: ``header_length`` covers it.
QCOW2_HEADER = CStruct("QCowHeader", ">", [
    ("magic", "4s"),
    ("version", "I"),
    ("backing_file_offset", "Q"),
    ("backing_file_size", "I"),
    ("cluster_bits", "I"),
    ("size", "Q"),                      # guest bytes
    ("crypt_method", "I"),
    ("l1_size", "I"),
    ("l1_table_offset", "Q"),
    ("refcount_table_offset", "Q"),
    ("refcount_table_clusters", "I"),
    ("nb_snapshots", "I"),
    ("snapshots_offset", "Q"),
    ("incompatible_features", "Q"),     # version 3 from here
    ("compatible_features", "Q"),
    ("autoclear_features", "Q"),
    ("refcount_order", "I"),
    ("header_length", "I"),
    ("compression_type", "B"),
    (None, "7x"),
])
HEADER_V2_LENGTH = QCOW2_HEADER.offset("incompatible_features")      # 72
HEADER_V3_MIN_LENGTH = QCOW2_HEADER.offset("compression_type")       # 104
#: Guest sizes count whole 512-byte sectors; qemu drops a partial last one.
SECTOR_SIZE = 512
#: refcount_order is at most 6: 64-bit refcounts.
MAX_REFCOUNT_ORDER = 6

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
#: The feature name table's ``type`` values, in order.
FEATURE_KINDS = ("incompatible", "compatible", "autoclear")

COMPRESSION_ZLIB = 0
COMPRESSION_ZSTD = 1
COMPRESSION_NAMES = {COMPRESSION_ZLIB: "zlib", COMPRESSION_ZSTD: "zstd"}

#: A header extension: ``len`` bytes of data follow, padded to 8 bytes.
QCOW2_EXTENSION = CStruct("QCowExtension", ">", [("magic", "I"), ("len", "I")])
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO_HEADER = 0x0537BE77
EXT_DATA_FILE = 0x44415441
#: qemu keeps the backing format in a 16-byte buffer (15 characters).
BACKING_FORMAT_MAX = 15

#: One entry of the feature name table extension.
QCOW2_FEATURE = CStruct("Qcow2Feature", ">", [("type", "B"), ("bit", "B"), ("name", "46s")])
#: The bitmaps extension.
QCOW2_BITMAPS_EXT = CStruct("Qcow2BitmapHeaderExt", ">", [
    ("nb_bitmaps", "I"),
    (None, "4x"),
    ("bitmap_directory_size", "Q"),
    ("bitmap_directory_offset", "Q"),
])
#: The full disk encryption header extension.
QCOW2_CRYPTO_EXT = CStruct("Qcow2CryptoHeaderExtension", ">", [
    ("offset", "Q"),
    ("length", "Q"),
])
#: One bitmap directory entry; ``extra_data_size`` bytes and the name follow.
QCOW2_BITMAP_DIR_ENTRY = CStruct("Qcow2BitmapDirEntry", ">", [
    ("bitmap_table_offset", "Q"),
    ("bitmap_table_size", "I"),
    ("flags", "I"),
    ("type", "B"),
    ("granularity_bits", "B"),
    ("name_size", "H"),
    ("extra_data_size", "I"),
])
BITMAP_FLAG_IN_USE = 1 << 0
BITMAP_FLAG_AUTO = 1 << 1

#: One snapshot table entry; extra data, the id string and the name follow.
QCOW2_SNAPSHOT_HEADER = CStruct("QCowSnapshotHeader", ">", [
    ("l1_table_offset", "Q"),
    ("l1_size", "I"),
    ("id_str_size", "H"),
    ("name_size", "H"),
    ("date_sec", "I"),
    ("date_nsec", "I"),
    ("vm_clock_nsec", "Q"),
    ("vm_state_size", "I"),
    ("extra_data_size", "I"),
])
#: The snapshot's extra data, of which a writer may store any prefix.
QCOW2_SNAPSHOT_EXTRA = CStruct("QCowSnapshotExtraData", ">", [
    ("vm_state_size_large", "Q"),
    ("disk_size", "Q"),
    ("icount", "Q"),
])
#: ``icount`` when the snapshot records none.
ICOUNT_NONE = (1 << 64) - 1

#: L1 / L2 entries (qcow2.h).
L1E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
QCOW_OFLAG_COPIED = 1 << 63
QCOW_OFLAG_COMPRESSED = 1 << 62
QCOW_OFLAG_ZERO = 1 << 0
L1E_SIZE = 8
L2E_SIZE_NORMAL = 8
L2E_SIZE_EXTENDED = 16
#: An extended L2 entry's allocation / zero bitmaps cover 32 subclusters.
SUBCLUSTERS = 32
#: Compressed cluster sizes count 512-byte sectors.
COMPRESSED_SECTOR_SIZE = 512
#: Extended L2 entries need clusters of at least 16 KiB.
EXTL2_MIN_CLUSTER_BITS = 14

"""Btrfs on-disk structures and constants, as btrfs-progs' ``kernel-shared/ctree.h`` and
the kernel's ``uapi/linux/btrfs_tree.h`` name them (docs: "On-disk format").

All integers are little-endian. The logic lives in :mod:`imgscan._core.btrfs`; the
probe in :mod:`imgscan._core.probes.linux` reads the superblock with these too.
"""

from __future__ import annotations

from .cstruct import CStruct

BTRFS_MAGIC = b"_BHRfS_M"
#: The primary superblock and its mirrors (``btrfs_sb_offset``): 64 KiB, 64 MiB, 256 GiB.
BTRFS_SUPER_INFO_OFFSET = 64 * 1024
BTRFS_SUPER_MIRROR_OFFSETS = (64 * 1024, 64 * 1024 * 1024, 256 * 1024 * 1024 * 1024)
BTRFS_SUPER_INFO_SIZE = 4096
#: Every checksummed block keeps its checksum in its first 32 bytes.
BTRFS_CSUM_SIZE = 32
BTRFS_FSID_SIZE = 16
BTRFS_UUID_SIZE = 16
BTRFS_LABEL_SIZE = 256
BTRFS_SYSTEM_CHUNK_ARRAY_SIZE = 2048
#: The deepest tree btrfs builds (``BTRFS_MAX_LEVEL``): levels 0..7.
BTRFS_MAX_LEVEL = 8

#: ``btrfs_dev_item``, embedded in the superblock.
BTRFS_DEV_ITEM = CStruct("btrfs_dev_item", "<", [
    ("devid", "Q"),
    ("total_bytes", "Q"),
    ("bytes_used", "Q"),
    ("io_align", "I"),
    ("io_width", "I"),
    ("sector_size", "I"),
    ("type", "Q"),
    ("generation", "Q"),
    ("start_offset", "Q"),
    ("dev_group", "I"),
    ("seek_speed", "B"),
    ("bandwidth", "B"),
    ("uuid", "16s"),
    ("fsid", "16s"),
])

#: ``btrfs_super_block`` up to the system chunk array (which follows at ``sys_chunk_array``).
BTRFS_SUPER_BLOCK = CStruct("btrfs_super_block", "<", [
    ("csum", "32s"),
    ("fsid", "16s"),
    ("bytenr", "Q"),
    ("flags", "Q"),
    ("magic", "8s"),
    ("generation", "Q"),
    ("root", "Q"),
    ("chunk_root", "Q"),
    ("log_root", "Q"),
    ("log_root_transid", "Q"),
    ("total_bytes", "Q"),
    ("bytes_used", "Q"),
    ("root_dir_objectid", "Q"),
    ("num_devices", "Q"),
    ("sectorsize", "I"),
    ("nodesize", "I"),
    ("__unused_leafsize", "I"),
    ("stripesize", "I"),
    ("sys_chunk_array_size", "I"),
    ("chunk_root_generation", "Q"),
    ("compat_flags", "Q"),
    ("compat_ro_flags", "Q"),
    ("incompat_flags", "Q"),
    ("csum_type", "H"),
    ("root_level", "B"),
    ("chunk_root_level", "B"),
    ("log_root_level", "B"),
    ("dev_item", f"{BTRFS_DEV_ITEM.size}s"),
    ("label", f"{BTRFS_LABEL_SIZE}s"),
    ("cache_generation", "Q"),
    ("uuid_tree_generation", "Q"),
    ("metadata_uuid", "16s"),
    ("nr_global_roots", "Q"),
    (None, "216x"),                     # reserved[27] u64
    ("sys_chunk_array", f"{BTRFS_SYSTEM_CHUNK_ARRAY_SIZE}s"),
])
#: The superblock's device UUID, for the probe.
SUPER_DEV_UUID = BTRFS_SUPER_BLOCK.offset("dev_item") + BTRFS_DEV_ITEM.offset("uuid")

#: ``csum_type``: the checksum of the superblock and of every tree block.
BTRFS_CSUM_TYPE_CRC32 = 0
BTRFS_CSUM_TYPE_XXHASH = 1
BTRFS_CSUM_TYPE_SHA256 = 2
BTRFS_CSUM_TYPE_BLAKE2 = 3
CSUM_NAMES = {BTRFS_CSUM_TYPE_CRC32: "crc32c", BTRFS_CSUM_TYPE_XXHASH: "xxhash64",
              BTRFS_CSUM_TYPE_SHA256: "sha256", BTRFS_CSUM_TYPE_BLAKE2: "blake2b"}

#: ``incompat_flags`` with ``METADATA_UUID`` put the checked fsid in ``metadata_uuid``.
BTRFS_FEATURE_INCOMPAT_METADATA_UUID = 1 << 10

#: ``btrfs_disk_key``: the 17-byte key every item and node pointer is sorted by.
BTRFS_DISK_KEY = CStruct("btrfs_disk_key", "<", [
    ("objectid", "Q"),
    ("type", "B"),
    ("offset", "Q"),
])

#: ``btrfs_header``: the start of every tree block (node or leaf).
BTRFS_HEADER = CStruct("btrfs_header", "<", [
    ("csum", "32s"),
    ("fsid", "16s"),
    ("bytenr", "Q"),
    ("flags", "Q"),
    ("chunk_tree_uuid", "16s"),
    ("generation", "Q"),
    ("owner", "Q"),
    ("nritems", "I"),
    ("level", "B"),
])
#: ``btrfs_item``: one leaf item; its data lies at ``offset`` from the end of the header.
BTRFS_ITEM = CStruct("btrfs_item", "<", [
    ("key", f"{BTRFS_DISK_KEY.size}s"),
    ("offset", "I"),
    ("size", "I"),
])
#: ``btrfs_key_ptr``: one pointer of an internal node.
BTRFS_KEY_PTR = CStruct("btrfs_key_ptr", "<", [
    ("key", f"{BTRFS_DISK_KEY.size}s"),
    ("blockptr", "Q"),
    ("generation", "Q"),
])

#: ``btrfs_chunk``: ``num_stripes`` ``btrfs_stripe`` follow.
BTRFS_CHUNK = CStruct("btrfs_chunk", "<", [
    ("length", "Q"),
    ("owner", "Q"),
    ("stripe_len", "Q"),
    ("type", "Q"),
    ("io_align", "I"),
    ("io_width", "I"),
    ("sector_size", "I"),
    ("num_stripes", "H"),
    ("sub_stripes", "H"),
])
BTRFS_STRIPE = CStruct("btrfs_stripe", "<", [
    ("devid", "Q"),
    ("offset", "Q"),
    ("dev_uuid", "16s"),
])

#: Block group / chunk type flags.
BTRFS_BLOCK_GROUP_DATA = 1 << 0
BTRFS_BLOCK_GROUP_SYSTEM = 1 << 1
BTRFS_BLOCK_GROUP_METADATA = 1 << 2
BTRFS_BLOCK_GROUP_RAID0 = 1 << 3
BTRFS_BLOCK_GROUP_RAID1 = 1 << 4
BTRFS_BLOCK_GROUP_DUP = 1 << 5
BTRFS_BLOCK_GROUP_RAID10 = 1 << 6
BTRFS_BLOCK_GROUP_RAID5 = 1 << 7
BTRFS_BLOCK_GROUP_RAID6 = 1 << 8
BTRFS_BLOCK_GROUP_RAID1C3 = 1 << 9
BTRFS_BLOCK_GROUP_RAID1C4 = 1 << 10
#: The profiles, as ``btrfs filesystem df`` names them; none of the flags is "single".
PROFILE_NAMES = {
    BTRFS_BLOCK_GROUP_RAID0: "raid0", BTRFS_BLOCK_GROUP_RAID1: "raid1",
    BTRFS_BLOCK_GROUP_DUP: "dup", BTRFS_BLOCK_GROUP_RAID10: "raid10",
    BTRFS_BLOCK_GROUP_RAID5: "raid5", BTRFS_BLOCK_GROUP_RAID6: "raid6",
    BTRFS_BLOCK_GROUP_RAID1C3: "raid1c3", BTRFS_BLOCK_GROUP_RAID1C4: "raid1c4",
}
BTRFS_BLOCK_GROUP_PROFILE_MASK = sum(PROFILE_NAMES)
#: The profiles read from one device: every copy of a DUP chunk holds the same bytes.
READABLE_PROFILES = BTRFS_BLOCK_GROUP_DUP

#: Well-known objectids.
BTRFS_ROOT_TREE_OBJECTID = 1
BTRFS_CHUNK_TREE_OBJECTID = 3
BTRFS_FS_TREE_OBJECTID = 5
BTRFS_ROOT_TREE_DIR_OBJECTID = 6
BTRFS_FIRST_FREE_OBJECTID = 256
BTRFS_LAST_FREE_OBJECTID = (1 << 64) - 256
BTRFS_FIRST_CHUNK_TREE_OBJECTID = 256
#: The placeholder directory a snapshot shows for a subvolume nested in its source.
BTRFS_EMPTY_SUBVOL_DIR_OBJECTID = 2

#: Item key types.
BTRFS_INODE_ITEM_KEY = 1
BTRFS_INODE_REF_KEY = 12
BTRFS_INODE_EXTREF_KEY = 13
BTRFS_XATTR_ITEM_KEY = 24
BTRFS_DIR_ITEM_KEY = 84
BTRFS_DIR_INDEX_KEY = 96
BTRFS_EXTENT_DATA_KEY = 108
BTRFS_ROOT_ITEM_KEY = 132
BTRFS_ROOT_BACKREF_KEY = 144
BTRFS_ROOT_REF_KEY = 156
BTRFS_CHUNK_ITEM_KEY = 228

#: ``btrfs_timespec``.
BTRFS_TIMESPEC = CStruct("btrfs_timespec", "<", [("sec", "q"), ("nsec", "I")])
#: ``btrfs_inode_item``.
BTRFS_INODE_ITEM = CStruct("btrfs_inode_item", "<", [
    ("generation", "Q"),
    ("transid", "Q"),
    ("size", "Q"),
    ("nbytes", "Q"),
    ("block_group", "Q"),
    ("nlink", "I"),
    ("uid", "I"),
    ("gid", "I"),
    ("mode", "I"),
    ("rdev", "Q"),
    ("flags", "Q"),
    ("sequence", "Q"),
    (None, "32x"),                      # reserved[4] u64
    ("atime", f"{BTRFS_TIMESPEC.size}s"),
    ("ctime", f"{BTRFS_TIMESPEC.size}s"),
    ("mtime", f"{BTRFS_TIMESPEC.size}s"),
    ("otime", f"{BTRFS_TIMESPEC.size}s"),
])
#: ``btrfs_root_item``, as far as the reader needs it (newer items are longer).
BTRFS_ROOT_ITEM = CStruct("btrfs_root_item", "<", [
    ("inode", f"{BTRFS_INODE_ITEM.size}s"),
    ("generation", "Q"),
    ("root_dirid", "Q"),
    ("bytenr", "Q"),
    ("byte_limit", "Q"),
    ("bytes_used", "Q"),
    ("last_snapshot", "Q"),
    ("flags", "Q"),
    ("refs", "I"),
    ("drop_progress", f"{BTRFS_DISK_KEY.size}s"),
    ("drop_level", "B"),
    ("level", "B"),
])
#: ``btrfs_root_ref`` (ROOT_REF and ROOT_BACKREF items): the name follows.
BTRFS_ROOT_REF = CStruct("btrfs_root_ref", "<", [
    ("dirid", "Q"),
    ("sequence", "Q"),
    ("name_len", "H"),
])
#: ``btrfs_dir_item`` (DIR_ITEM, DIR_INDEX, XATTR_ITEM): the name, then data, follow;
#: one DIR_ITEM may pack several whose names hash alike.
BTRFS_DIR_ITEM = CStruct("btrfs_dir_item", "<", [
    ("location", f"{BTRFS_DISK_KEY.size}s"),
    ("transid", "Q"),
    ("data_len", "H"),
    ("name_len", "H"),
    ("type", "B"),
])
#: ``btrfs_inode_ref``: the name follows; one item may pack several.
BTRFS_INODE_REF = CStruct("btrfs_inode_ref", "<", [
    ("index", "Q"),
    ("name_len", "H"),
])
#: ``btrfs_file_extent_item``: inline data follows ``type``; the rest is for the others.
BTRFS_FILE_EXTENT_ITEM = CStruct("btrfs_file_extent_item", "<", [
    ("generation", "Q"),
    ("ram_bytes", "Q"),
    ("compression", "B"),
    ("encryption", "B"),
    ("other_encoding", "H"),
    ("type", "B"),
    ("disk_bytenr", "Q"),
    ("disk_num_bytes", "Q"),
    ("offset", "Q"),
    ("num_bytes", "Q"),
])
BTRFS_FILE_EXTENT_INLINE_DATA_START = BTRFS_FILE_EXTENT_ITEM.offset("disk_bytenr")
BTRFS_FILE_EXTENT_INLINE = 0
BTRFS_FILE_EXTENT_REG = 1
BTRFS_FILE_EXTENT_PREALLOC = 2
BTRFS_COMPRESS_NONE = 0
BTRFS_COMPRESS_ZLIB = 1
BTRFS_COMPRESS_LZO = 2
BTRFS_COMPRESS_ZSTD = 3
COMPRESSION_NAMES = {BTRFS_COMPRESS_ZLIB: "zlib", BTRFS_COMPRESS_LZO: "lzo",
                     BTRFS_COMPRESS_ZSTD: "zstd"}
#: btrfs LZO: a 4-byte total length, then segments of a 4-byte length and LZO1X data,
#: a segment header never straddling a sector (``fs/btrfs/lzo.c``).
BTRFS_LZO_LEN_SIZE = 4

#: ``dir_item.type`` (``BTRFS_FT_*``).
BTRFS_FT_REG_FILE = 1
BTRFS_FT_DIR = 2
BTRFS_FT_SYMLINK = 7
#: The root tree's directory item naming the default subvolume.
DEFAULT_SUBVOLUME_NAME = b"default"
#: The seed of the name hash of DIR_ITEM keys (``btrfs_name_hash``: crc32c seeded ~1).
BTRFS_NAME_HASH_SEED = 0xFFFFFFFE

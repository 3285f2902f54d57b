"""ext2/3/4 on-disk structures, declared once (e2fsprogs ``lib/ext2fs/ext2_fs.h``).

Names are e2fsprogs' and the kernel's (Documentation/filesystems/ext4, "ext4 Data
Structures and Algorithms"). Every field is little-endian except the journal's (JBD2,
``lib/ext2fs/kernel-jbd.h``), which is big-endian. The reader (``ext4.pyx``) and the
filesystem probe (``probes/linux.pyx``) both take their offsets and magics from here.
"""

from __future__ import annotations

from .cstruct import CStruct

#: The primary superblock lies 1024 bytes into the volume, whatever the block size.
SUPERBLOCK_OFFSET = 1024
SUPERBLOCK_SIZE = 1024
EXT2_SUPER_MAGIC = 0xEF53

EXT2_SUPER_BLOCK = CStruct("ext2 superblock", "<", [
    ("s_inodes_count", "I"),
    ("s_blocks_count", "I"),
    ("s_r_blocks_count", "I"),
    ("s_free_blocks_count", "I"),
    ("s_free_inodes_count", "I"),
    ("s_first_data_block", "I"),
    ("s_log_block_size", "I"),
    ("s_log_cluster_size", "I"),
    ("s_blocks_per_group", "I"),
    ("s_clusters_per_group", "I"),
    ("s_inodes_per_group", "I"),
    ("s_mtime", "I"),
    ("s_wtime", "I"),
    ("s_mnt_count", "H"),
    ("s_max_mnt_count", "h"),
    ("s_magic", "H"),
    ("s_state", "H"),
    ("s_errors", "H"),
    ("s_minor_rev_level", "H"),
    ("s_lastcheck", "I"),
    ("s_checkinterval", "I"),
    ("s_creator_os", "I"),
    ("s_rev_level", "I"),
    ("s_def_resuid", "H"),
    ("s_def_resgid", "H"),
    ("s_first_ino", "I"),
    ("s_inode_size", "H"),
    ("s_block_group_nr", "H"),
    ("s_feature_compat", "I"),
    ("s_feature_incompat", "I"),
    ("s_feature_ro_compat", "I"),
    ("s_uuid", "16s"),
    ("s_volume_name", "16s"),
    ("s_last_mounted", "64s"),
    ("s_algorithm_usage_bitmap", "I"),
    ("s_prealloc_blocks", "B"),
    ("s_prealloc_dir_blocks", "B"),
    ("s_reserved_gdt_blocks", "H"),
    ("s_journal_uuid", "16s"),
    ("s_journal_inum", "I"),
    ("s_journal_dev", "I"),
    ("s_last_orphan", "I"),
    ("s_hash_seed", "16s"),
    ("s_def_hash_version", "B"),
    ("s_jnl_backup_type", "B"),
    ("s_desc_size", "H"),
    ("s_default_mount_opts", "I"),
    ("s_first_meta_bg", "I"),
    ("s_mkfs_time", "I"),
    ("s_jnl_blocks", "68s"),
    ("s_blocks_count_hi", "I"),
    ("s_r_blocks_count_hi", "I"),
    ("s_free_blocks_hi", "I"),
    ("s_min_extra_isize", "H"),
    ("s_want_extra_isize", "H"),
    ("s_flags", "I"),
    ("s_raid_stride", "H"),
    ("s_mmp_update_interval", "H"),
    ("s_mmp_block", "Q"),
    ("s_raid_stripe_width", "I"),
    ("s_log_groups_per_flex", "B"),
    ("s_checksum_type", "B"),
    ("s_encryption_level", "B"),
    ("s_reserved_pad", "B"),
    ("s_kbytes_written", "Q"),
    ("s_snapshot_inum", "I"),
    ("s_snapshot_id", "I"),
    ("s_snapshot_r_blocks_count", "Q"),
    ("s_snapshot_list", "I"),
    ("s_error_count", "I"),
    ("s_first_error_time", "I"),
    ("s_first_error_ino", "I"),
    ("s_first_error_block", "Q"),
    ("s_first_error_func", "32s"),
    ("s_first_error_line", "I"),
    ("s_last_error_time", "I"),
    ("s_last_error_ino", "I"),
    ("s_last_error_line", "I"),
    ("s_last_error_block", "Q"),
    ("s_last_error_func", "32s"),
    ("s_mount_opts", "64s"),
    ("s_usr_quota_inum", "I"),
    ("s_grp_quota_inum", "I"),
    ("s_overhead_clusters", "I"),
    ("s_backup_bgs", "8s"),
    ("s_encrypt_algos", "4s"),
    ("s_encrypt_pw_salt", "16s"),
    ("s_lpf_ino", "I"),
    ("s_prj_quota_inum", "I"),
    ("s_checksum_seed", "I"),
    ("s_wtime_hi", "B"),
    ("s_mtime_hi", "B"),
    ("s_mkfs_time_hi", "B"),
    ("s_lastcheck_hi", "B"),
    ("s_first_error_time_hi", "B"),
    ("s_last_error_time_hi", "B"),
    ("s_first_error_errcode", "B"),
    ("s_last_error_errcode", "B"),
    ("s_encoding", "H"),
    ("s_encoding_flags", "H"),
    ("s_orphan_file_inum", "I"),
    (None, "376x"),
    ("s_checksum", "I"),
])
assert EXT2_SUPER_BLOCK.size == SUPERBLOCK_SIZE

#: s_state bits.
EXT2_VALID_FS = 0x0001
EXT2_ERROR_FS = 0x0002
EXT3_ORPHAN_FS = 0x0004
#: s_flags bit: a development filesystem (blkid's "ext4dev").
EXT2_FLAGS_TEST_FILESYS = 0x0004
#: s_rev_level 0 has fixed 128-byte inodes and first inode 11.
EXT2_GOOD_OLD_REV = 0
EXT2_GOOD_OLD_INODE_SIZE = 128
EXT2_GOOD_OLD_FIRST_INO = 11
#: Block sizes: 1024 << s_log_block_size, up to 64 KiB.
EXT2_MIN_BLOCK_LOG_SIZE = 10
EXT2_MAX_BLOCK_LOG_SIZE = 16
#: Group descriptors are 32 bytes, or s_desc_size (>= 64) with the 64bit feature.
EXT2_MIN_DESC_SIZE = 32
EXT2_MIN_DESC_SIZE_64BIT = 64
EXT2_MAX_DESC_SIZE = 1024

# Feature flags, by e2fsprogs' names (lib/e2p/feature.c), as dumpe2fs lists them.
COMPAT_FEATURES = {
    0x0001: "dir_prealloc", 0x0002: "imagic_inodes", 0x0004: "has_journal",
    0x0008: "ext_attr", 0x0010: "resize_inode", 0x0020: "dir_index",
    0x0040: "lazy_bg", 0x0100: "snapshot_bitmap", 0x0200: "sparse_super2",
    0x0400: "fast_commit", 0x0800: "stable_inodes", 0x1000: "orphan_file",
}
RO_COMPAT_FEATURES = {
    0x0001: "sparse_super", 0x0002: "large_file", 0x0004: "btree_dir",
    0x0008: "huge_file", 0x0010: "uninit_bg", 0x0020: "dir_nlink",
    0x0040: "extra_isize", 0x0080: "has_snapshot", 0x0100: "quota",
    0x0200: "bigalloc", 0x0400: "metadata_csum", 0x0800: "replica",
    0x1000: "read-only", 0x2000: "project", 0x4000: "shared_blocks",
    0x8000: "verity", 0x10000: "orphan_present",
}
INCOMPAT_FEATURES = {
    0x0001: "compression", 0x0002: "filetype", 0x0004: "needs_recovery",
    0x0008: "journal_dev", 0x0010: "meta_bg", 0x0040: "extent",
    0x0080: "64bit", 0x0100: "mmp", 0x0200: "flex_bg", 0x0400: "ea_inode",
    0x1000: "dirdata", 0x2000: "metadata_csum_seed", 0x4000: "large_dir",
    0x8000: "inline_data", 0x10000: "encrypt", 0x20000: "casefold",
}
EXT3_FEATURE_COMPAT_HAS_JOURNAL = 0x0004
EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER = 0x0001
EXT4_FEATURE_RO_COMPAT_METADATA_CSUM = 0x0400
EXT2_FEATURE_INCOMPAT_FILETYPE = 0x0002
EXT3_FEATURE_INCOMPAT_RECOVER = 0x0004
EXT3_FEATURE_INCOMPAT_JOURNAL_DEV = 0x0008
EXT2_FEATURE_INCOMPAT_META_BG = 0x0010
EXT4_FEATURE_INCOMPAT_64BIT = 0x0080
EXT4_FEATURE_INCOMPAT_INLINE_DATA = 0x8000
EXT4_FEATURE_INCOMPAT_ENCRYPT = 0x10000
EXT4_FEATURE_INCOMPAT_CASEFOLD = 0x20000
#: The incompat features the reader implements; any other set bit is refused by name.
INCOMPAT_READABLE = (0x0002 | 0x0004 | 0x0010 | 0x0040 | 0x0080 | 0x0100 | 0x0200 | 0x0400
                     | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000)
#: Features ext2 and ext3 drivers understand; anything beyond makes it ext4 (blkid's rule).
EXT2_FEATURE_RO_COMPAT_SUPP = 0x0001 | 0x0002 | 0x0004
EXT2_FEATURE_INCOMPAT_SUPP = EXT2_FEATURE_INCOMPAT_FILETYPE | EXT2_FEATURE_INCOMPAT_META_BG
EXT3_FEATURE_RO_COMPAT_SUPP = EXT2_FEATURE_RO_COMPAT_SUPP
EXT3_FEATURE_INCOMPAT_SUPP = EXT2_FEATURE_INCOMPAT_SUPP | EXT3_FEATURE_INCOMPAT_RECOVER


def blkid_type(compat: int, incompat: int, ro_compat: int, flags: int) -> str:
    """The TYPE blkid gives a superblock with these features (libblkid ``ext.c``)."""
    if incompat & EXT3_FEATURE_INCOMPAT_JOURNAL_DEV:
        return "jbd"
    if flags & EXT2_FLAGS_TEST_FILESYS:
        return "ext4dev"
    if (ro_compat & ~EXT3_FEATURE_RO_COMPAT_SUPP) or (incompat & ~EXT3_FEATURE_INCOMPAT_SUPP):
        return "ext4"
    if compat & EXT3_FEATURE_COMPAT_HAS_JOURNAL:
        return "ext3"
    if (ro_compat & ~EXT2_FEATURE_RO_COMPAT_SUPP) or (incompat & ~EXT2_FEATURE_INCOMPAT_SUPP):
        # needs_recovery without a journal: ext3 refuses it, ext4 takes it.
        return "ext4"
    return "ext2"


#: struct ext4_group_desc; the first 32 bytes are ext2's descriptor, the rest needs 64bit.
EXT4_GROUP_DESC = CStruct("ext4 group descriptor", "<", [
    ("bg_block_bitmap", "I"),
    ("bg_inode_bitmap", "I"),
    ("bg_inode_table", "I"),
    ("bg_free_blocks_count", "H"),
    ("bg_free_inodes_count", "H"),
    ("bg_used_dirs_count", "H"),
    ("bg_flags", "H"),
    ("bg_exclude_bitmap_lo", "I"),
    ("bg_block_bitmap_csum_lo", "H"),
    ("bg_inode_bitmap_csum_lo", "H"),
    ("bg_itable_unused", "H"),
    ("bg_checksum", "H"),
    ("bg_block_bitmap_hi", "I"),
    ("bg_inode_bitmap_hi", "I"),
    ("bg_inode_table_hi", "I"),
])

#: struct ext2_inode_large: the 128-byte ext2 inode, then i_extra_isize bytes of more.
EXT2_INODE = CStruct("ext4 inode", "<", [
    ("i_mode", "H"),
    ("i_uid", "H"),
    ("i_size", "I"),
    ("i_atime", "I"),
    ("i_ctime", "I"),
    ("i_mtime", "I"),
    ("i_dtime", "I"),
    ("i_gid", "H"),
    ("i_links_count", "H"),
    ("i_blocks", "I"),
    ("i_flags", "I"),
    ("l_i_version", "I"),
    ("i_block", "60s"),
    ("i_generation", "I"),
    ("i_file_acl", "I"),
    ("i_size_high", "I"),
    ("i_faddr", "I"),
    ("l_i_blocks_hi", "H"),
    ("l_i_file_acl_high", "H"),
    ("l_i_uid_high", "H"),
    ("l_i_gid_high", "H"),
    ("l_i_checksum_lo", "H"),
    ("l_i_reserved", "H"),
])
assert EXT2_INODE.size == EXT2_GOOD_OLD_INODE_SIZE
#: The large inode's fields after the first 128 bytes (present up to 128 + i_extra_isize).
EXT2_INODE_EXTRA = CStruct("ext4 inode extra fields", "<", [
    ("i_extra_isize", "H"),
    ("i_checksum_hi", "H"),
    ("i_ctime_extra", "I"),
    ("i_mtime_extra", "I"),
    ("i_atime_extra", "I"),
    ("i_crtime", "I"),
    ("i_crtime_extra", "I"),
    ("i_version_hi", "I"),
    ("i_projid", "I"),
])
#: The low two bits of an *_extra time extend the 32-bit seconds' epoch.
EXT4_EPOCH_MASK = 3
#: i_block: 12 direct block numbers, then the single, double and triple indirect blocks.
EXT2_N_BLOCKS = 15
EXT2_NDIR_BLOCKS = 12
EXT2_IND_BLOCK, EXT2_DIND_BLOCK, EXT2_TIND_BLOCK = 12, 13, 14
I_BLOCK_SIZE = 4 * EXT2_N_BLOCKS

#: i_flags bits the reader looks at.
EXT4_ENCRYPT_FL = 0x00000800
EXT2_INDEX_FL = 0x00001000
EXT4_EXTENTS_FL = 0x00080000
EXT4_INLINE_DATA_FL = 0x10000000
EXT4_CASEFOLD_FL = 0x40000000

#: Well-known inodes.
EXT2_ROOT_INO = 2
EXT4_JOURNAL_INO = 8

#: struct ext3_extent_header, then entries: ext3_extent_idx (depth > 0) or ext3_extent.
EXT3_EXTENT_HEADER = CStruct("ext4 extent header", "<", [
    ("eh_magic", "H"),
    ("eh_entries", "H"),
    ("eh_max", "H"),
    ("eh_depth", "H"),
    ("eh_generation", "I"),
])
EXT3_EXTENT_IDX = CStruct("ext4 extent index", "<", [
    ("ei_block", "I"),
    ("ei_leaf", "I"),
    ("ei_leaf_hi", "H"),
    ("ei_unused", "H"),
])
EXT3_EXTENT = CStruct("ext4 extent", "<", [
    ("ee_block", "I"),
    ("ee_len", "H"),
    ("ee_start_hi", "H"),
    ("ee_start", "I"),
])
EXT3_EXT_MAGIC = 0xF30A
#: ee_len above this marks an uninitialized extent (reads as zeros) of ee_len - it blocks.
EXT_INIT_MAX_LEN = 1 << 15

#: struct ext2_dir_entry_2 (with the filetype feature; without it name_len is 16 bits).
EXT2_DIR_ENTRY_2 = CStruct("ext4 directory entry", "<", [
    ("inode", "I"),
    ("rec_len", "H"),
    ("name_len", "B"),
    ("file_type", "B"),
])
EXT2_DIR_NAME_LEN = 255
#: The inline-data directory starts with the parent's inode number (4 bytes), no "." / "..".
EXT4_INLINE_DATA_DOTDOT_SIZE = 4

#: In-inode extended attributes: this magic after i_extra_isize, then entries.
EXT2_EXT_ATTR_MAGIC = 0xEA020000
EXT2_EXT_ATTR_ENTRY = CStruct("ext4 xattr entry", "<", [
    ("e_name_len", "B"),
    ("e_name_index", "B"),
    ("e_value_offs", "H"),
    ("e_value_inum", "I"),
    ("e_value_size", "I"),
    ("e_hash", "I"),
])
#: system.data (index 7, name "data") holds inline data past i_block's 60 bytes.
EXT4_XATTR_INDEX_SYSTEM = 7
EXT4_XATTR_SYSTEM_DATA = b"data"

#: The JBD2 journal superblock at the start of the journal (inode s_journal_inum).
JOURNAL_SUPERBLOCK = CStruct("JBD2 journal superblock", ">", [
    ("h_magic", "I"),
    ("h_blocktype", "I"),
    ("h_sequence", "I"),
    ("s_blocksize", "I"),
    ("s_maxlen", "I"),
    ("s_first", "I"),
    ("s_sequence", "I"),
    ("s_start", "I"),
    ("s_errno", "i"),
    ("s_feature_compat", "I"),
    ("s_feature_incompat", "I"),
    ("s_feature_ro_compat", "I"),
    ("s_uuid", "16s"),
    ("s_nr_users", "I"),
])
JBD2_MAGIC_NUMBER = 0xC03B3998
JBD2_SUPERBLOCK_V1, JBD2_SUPERBLOCK_V2 = 3, 4

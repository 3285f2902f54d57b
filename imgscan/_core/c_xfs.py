"""XFS on-disk structures and constants, declared once, as xfsprogs names them.

Sources: "XFS Algorithms & Data Structures" (3rd edition) and xfsprogs'
``libxfs/xfs_format.h``, ``xfs_da_format.h`` and ``xfs_log_format.h``; field
names are theirs (``sb_*``, ``di_*``, ``bb_*``). Every integer is big-endian
except the CRC fields (little-endian crc32c, not checked here). The reader is
:mod:`imgscan._core.xfs`; the blkid-style probe in ``probes/linux.pyx`` takes
its offsets from ``XFS_DSB`` too.
"""

from __future__ import annotations

from .cstruct import CStruct

XFS_SB_MAGIC = b"XFSB"

#: ``struct xfs_dsb``: the superblock at the start of every allocation group (AG 0's rules).
XFS_DSB = CStruct("XFS superblock", ">", [
    ("sb_magicnum", "4s"),
    ("sb_blocksize", "I"),
    ("sb_dblocks", "Q"),
    ("sb_rblocks", "Q"),
    ("sb_rextents", "Q"),
    ("sb_uuid", "16s"),
    ("sb_logstart", "Q"),
    ("sb_rootino", "Q"),
    ("sb_rbmino", "Q"),
    ("sb_rsumino", "Q"),
    ("sb_rextsize", "I"),
    ("sb_agblocks", "I"),
    ("sb_agcount", "I"),
    ("sb_rbmblocks", "I"),
    ("sb_logblocks", "I"),
    ("sb_versionnum", "H"),
    ("sb_sectsize", "H"),
    ("sb_inodesize", "H"),
    ("sb_inopblock", "H"),
    ("sb_fname", "12s"),
    ("sb_blocklog", "B"),
    ("sb_sectlog", "B"),
    ("sb_inodelog", "B"),
    ("sb_inopblog", "B"),
    ("sb_agblklog", "B"),
    ("sb_rextslog", "B"),
    ("sb_inprogress", "B"),
    ("sb_imax_pct", "B"),
    ("sb_icount", "Q"),
    ("sb_ifree", "Q"),
    ("sb_fdblocks", "Q"),
    ("sb_frextents", "Q"),
    ("sb_uquotino", "Q"),
    ("sb_gquotino", "Q"),
    ("sb_qflags", "H"),
    ("sb_flags", "B"),
    ("sb_shared_vn", "B"),
    ("sb_inoalignmt", "I"),
    ("sb_unit", "I"),
    ("sb_width", "I"),
    ("sb_dirblklog", "B"),
    ("sb_logsectlog", "B"),
    ("sb_logsectsize", "H"),
    ("sb_logsunit", "I"),
    ("sb_features2", "I"),
    ("sb_bad_features2", "I"),
    ("sb_features_compat", "I"),         # version 5 from here
    ("sb_features_ro_compat", "I"),
    ("sb_features_incompat", "I"),
    ("sb_features_log_incompat", "I"),
    ("sb_crc", "4s"),
    ("sb_spino_align", "I"),
    ("sb_pquotino", "Q"),
    ("sb_lsn", "Q"),
    ("sb_meta_uuid", "16s"),
])
#: The part of the superblock every version has (up to ``sb_bad_features2``).
XFS_SB_V4_BYTES = XFS_DSB.offset("sb_features_compat")

XFS_SB_VERSION_NUMBITS = 0x000F
XFS_SB_VERSION_4 = 4
XFS_SB_VERSION_5 = 5
XFS_SB_VERSION_DIRV2BIT = 0x2000
XFS_SB_VERSION_MOREBITSBIT = 0x8000
XFS_SB_VERSION2_FTYPE = 0x00000200
#: Version 5 incompatible features (``XFS_SB_FEAT_INCOMPAT_*``).
XFS_SB_FEAT_INCOMPAT_FTYPE = 1 << 0
XFS_SB_FEAT_INCOMPAT_SPINODES = 1 << 1
XFS_SB_FEAT_INCOMPAT_META_UUID = 1 << 2
XFS_SB_FEAT_INCOMPAT_BIGTIME = 1 << 3
XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR = 1 << 4
XFS_SB_FEAT_INCOMPAT_NREXT64 = 1 << 5
#: The incompatible features this reader understands; any other bit is refused.
XFS_SB_FEAT_INCOMPAT_KNOWN = (
    XFS_SB_FEAT_INCOMPAT_FTYPE | XFS_SB_FEAT_INCOMPAT_SPINODES | XFS_SB_FEAT_INCOMPAT_META_UUID
    | XFS_SB_FEAT_INCOMPAT_BIGTIME | XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR
    | XFS_SB_FEAT_INCOMPAT_NREXT64)
#: Geometry bounds of xfs_sb.c's superblock verifier.
XFS_MIN_BLOCKSIZE_LOG, XFS_MAX_BLOCKSIZE_LOG = 9, 16
XFS_MIN_SECTORSIZE_LOG, XFS_MAX_SECTORSIZE_LOG = 9, 15
XFS_DINODE_MIN_LOG, XFS_DINODE_MAX_LOG = 8, 11
XFS_MIN_AG_BLOCKS = 64
XFS_MIN_RTEXTSIZE, XFS_MAX_RTEXTSIZE = 4 * 1024, 1024 * 1024 * 1024
#: A directory block is at most 64 KiB.
XFS_MAX_DIRBLOCK_LOG = 16

#: ``struct xfs_dinode``: the inode core; version 3 (v5 filesystems) is 176 bytes, CRC'd.
XFS_DINODE = CStruct("XFS inode core", ">", [
    ("di_magic", "2s"),
    ("di_mode", "H"),
    ("di_version", "B"),
    ("di_format", "B"),
    ("di_onlink", "H"),
    ("di_uid", "I"),
    ("di_gid", "I"),
    ("di_nlink", "I"),
    ("di_projid_lo", "H"),
    ("di_projid_hi", "H"),
    ("di_big_nextents", "Q"),            # v2: pad and di_flushiter; NREXT64: the extent count
    ("di_atime", "Q"),
    ("di_mtime", "Q"),
    ("di_ctime", "Q"),
    ("di_size", "Q"),
    ("di_nblocks", "Q"),
    ("di_extsize", "I"),
    ("di_nextents", "I"),                # NREXT64: di_big_anextents
    ("di_anextents", "H"),
    ("di_forkoff", "B"),
    ("di_aformat", "b"),
    ("di_dmevmask", "I"),
    ("di_dmstate", "H"),
    ("di_flags", "H"),
    ("di_gen", "I"),
    ("di_next_unlinked", "I"),
    ("di_crc", "4s"),                    # version 3 from here
    ("di_changecount", "Q"),
    ("di_lsn", "Q"),
    ("di_flags2", "Q"),
    ("di_cowextsize", "I"),
    (None, "12x"),
    ("di_crtime", "Q"),
    ("di_ino", "Q"),
    ("di_uuid", "16s"),
])
XFS_DINODE_MAGIC = b"IN"
XFS_DINODE_V2_SIZE = XFS_DINODE.offset("di_crc")     # 100
XFS_DINODE_V3_SIZE = XFS_DINODE.size                 # 176
XFS_DIFLAG2_BIGTIME = 1 << 3
XFS_DIFLAG2_NREXT64 = 1 << 4
#: A big timestamp counts nanoseconds from this many seconds before the epoch.
XFS_BIGTIME_EPOCH_OFFSET = 1 << 31

#: Fork formats (``enum xfs_dinode_fmt``).
XFS_DINODE_FMT_DEV = 0
XFS_DINODE_FMT_LOCAL = 1
XFS_DINODE_FMT_EXTENTS = 2
XFS_DINODE_FMT_BTREE = 3

#: A packed extent record (``xfs_bmbt_rec``): 128 bits, flag | startoff:54 | startblock:52 |
#: blockcount:21.
XFS_BMBT_REC_SIZE = 16
XFS_BMBT_STARTOFF_BITS = 54
XFS_BMBT_STARTBLOCK_BITS = 52
XFS_BMBT_BLOCKCOUNT_BITS = 21

#: The bmap btree root in the inode fork (``xfs_bmdr_block``), then keys and pointers.
XFS_BMDR_BLOCK = CStruct("bmap btree root", ">", [
    ("bb_level", "H"),
    ("bb_numrecs", "H"),
])
#: A bmap btree block (``xfs_btree_block`` long form); v5 adds the CRC'd tail.
XFS_BMBT_BLOCK = CStruct("bmap btree block", ">", [
    ("bb_magic", "4s"),
    ("bb_level", "H"),
    ("bb_numrecs", "H"),
    ("bb_leftsib", "Q"),
    ("bb_rightsib", "Q"),
    ("bb_blkno", "Q"),                   # version 5 from here
    ("bb_lsn", "Q"),
    ("bb_uuid", "16s"),
    ("bb_owner", "Q"),
    ("bb_crc", "4s"),
    (None, "4x"),
])
XFS_BMAP_MAGIC = b"BMAP"
XFS_BMAP_CRC_MAGIC = b"BMA3"
XFS_BTREE_LBLOCK_LEN = XFS_BMBT_BLOCK.offset("bb_blkno")     # 24
XFS_BTREE_LBLOCK_CRC_LEN = XFS_BMBT_BLOCK.size               # 72
XFS_BMBT_KEY_SIZE = 8
XFS_BMBT_PTR_SIZE = 8

#: The short-form directory header (``xfs_dir2_sf_hdr``), parent 4 or 8 bytes wide.
XFS_DIR2_SF_HDR = CStruct("short-form directory header", ">", [
    ("count", "B"),
    ("i8count", "B"),
])
XFS_DIR2_SF_ENTRY_OFFSET_SIZE = 2        # the entry's be16 offset, after its namelen

#: Directory data blocks: v4 headers are a magic and three bestfree pairs; v5 adds the
#: CRC'd header (``xfs_dir3_blk_hdr``) and pads to 64 bytes.
XFS_DIR2_DATA_HDR = CStruct("directory data header", ">", [
    ("magic", "4s"),
    ("bestfree", "12s"),
])
XFS_DIR3_DATA_HDR = CStruct("directory data header", ">", [
    ("magic", "4s"),
    ("crc", "4s"),
    ("blkno", "Q"),
    ("lsn", "Q"),
    ("uuid", "16s"),
    ("owner", "Q"),
    ("best_free", "12s"),
    (None, "4x"),
])
XFS_DIR2_BLOCK_MAGIC = b"XD2B"
XFS_DIR2_DATA_MAGIC = b"XD2D"
XFS_DIR3_BLOCK_MAGIC = b"XDB3"
XFS_DIR3_DATA_MAGIC = b"XDD3"
#: The tail of a single-block directory (``xfs_dir2_block_tail``), after its leaf entries.
XFS_DIR2_BLOCK_TAIL = CStruct("directory block tail", ">", [
    ("count", "I"),
    ("stale", "I"),
])
XFS_DIR2_LEAF_ENTRY_SIZE = 8
#: A data entry: be64 inumber, namelen, name, [ftype], padding to 8, be16 tag.
XFS_DIR2_DATA_ENTRY_FIXED = 8 + 1 + 2
XFS_DIR2_DATA_ALIGN = 8
#: An unused span starts with this freetag and its be16 length.
XFS_DIR2_DATA_FREE_TAG = 0xFFFF
#: Data blocks live below this byte offset of the directory (leaves and free index above).
XFS_DIR2_LEAF_OFFSET = 32 * 1024 * 1024 * 1024

#: The v5 remote symlink block header (``xfs_dsymlink_hdr``).
XFS_DSYMLINK_HDR = CStruct("remote symlink header", ">", [
    ("sl_magic", "4s"),
    ("sl_offset", "I"),
    ("sl_bytes", "I"),
    ("sl_crc", "4s"),
    ("sl_uuid", "16s"),
    ("sl_owner", "Q"),
    ("sl_blkno", "Q"),
    ("sl_lsn", "Q"),
])
XFS_SYMLINK_MAGIC = b"XSLM"
XFS_SYMLINK_MAXLEN = 1024

#: File types of the directory entries' ftype byte (``XFS_DIR3_FT_*``).
XFS_DIR3_FT_REG_FILE = 1
XFS_DIR3_FT_DIR = 2
XFS_DIR3_FT_SYMLINK = 7

#: The log's basic block and its record header (``xlog_rec_header``).
XLOG_BBSIZE = 512
XLOG_REC_HEADER = CStruct("log record header", ">", [
    ("h_magicno", "I"),
    ("h_cycle", "I"),
    ("h_version", "I"),
    ("h_len", "I"),
    ("h_lsn", "Q"),
    ("h_tail_lsn", "Q"),
    ("h_crc", "4s"),
    ("h_prev_block", "i"),
    ("h_num_logops", "i"),
    ("h_cycle_data", "256s"),
    ("h_fmt", "i"),
    ("h_fs_uuid", "16s"),
    ("h_size", "i"),
])
XLOG_HEADER_MAGIC_NUM = 0xFEEDBABE
XLOG_HEADER_CYCLE_SIZE = 32 * 1024
#: The largest log record (v2 logs), so the last header is at most this far before the head.
XLOG_MAX_RECORD_BSIZE = 256 * 1024
#: An operation header (``xlog_op_header``) in a record's data.
XLOG_OP_HEADER = CStruct("log operation header", ">", [
    ("oh_tid", "I"),
    ("oh_len", "I"),
    ("oh_clientid", "B"),
    ("oh_flags", "B"),
    ("oh_res2", "H"),
])
XLOG_UNMOUNT_TRANS = 0x20
XLOG_UNMOUNT_TYPE = 0x556E

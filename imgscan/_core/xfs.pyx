# cython: language_level=3
"""XFS volumes, read-only: directory listings, file bytes, symlinks and the log's state.

Spec: "XFS Algorithms & Data Structures" and xfsprogs' ``libxfs/xfs_format.h``,
``xfs_da_format.h`` and ``xfs_log_format.h`` (structures declared once in
:mod:`imgscan._core.c_xfs`). Volumes in the tests are made by mkfs.xfs (v5 and
``-m crc=0`` v4) and read back through a read-only loop mount and ``xfs_db``.

A volume is read through ``read(offset, length) -> bytes`` over the guest bytes of
the whole disk, as every reader of the core; ``offset``/``size`` locate the volume
and error offsets are disk offsets.

* The superblock at the start of AG 0 gives the geometry; an inode number is
  ``agno | agbno | index`` in ``sb_agblklog`` and ``sb_inopblog`` bits, a
  filesystem block number ``agno | agbno`` in ``sb_agblklog`` bits.
* An inode's data fork is local (short-form directory, inline symlink), a
  list of packed 128-bit extents, or the root of a bmap btree whose leaves
  hold the extents; the extents of a fork are decoded into one flat array
  (``startoff, startblock, blockcount, unwritten`` per extent) with nogil.
* Directories other than short-form keep their entries in data blocks below
  ``XFS_DIR2_LEAF_OFFSET``; block, leaf, node and btree directories differ only
  in their hash indexes above it, which a reader that lists every entry does
  not need: every data block is walked (nogil) and a name index is kept per
  directory for lookups.
* The log is clean when the last record before its head is an unmount record.

Version 5 metadata is checked against its CRC-32C (superblock, inodes, bmap btree
blocks, directory data blocks, remote symlink blocks), as the kernel's verifiers do.

Every claimed count is bounded before it sizes anything: fork extents by
``limits.XFS_MAX_FORK_EXTENTS``, btree depth by ``limits.XFS_MAX_BMBT_DEPTH``,
directory bytes by ``limits.XFS_MAX_DIRECTORY_BYTES``; blocks are checked
against their AG and the volume before they are read.
"""

import uuid as _uuid
from array import array

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage, UnsupportedFeature

from .binary cimport be16, be32, be64
from .crc32c import crc32c_with_zeroed_field
from .c_xfs import *  # noqa: F403  the structures and constants, named as the spec names them
from .fsapi import DirEntry, FileSystem, Stat, kind_of_mode

#: Entries kept in the caches of parsed inodes, extent maps and directory indexes.
_INODE_CACHE = 4096
_MAP_CACHE = 64
_DIR_CACHE = 64
#: ``ftype`` byte -> kind.
_FTYPE_KIND = {XFS_DIR3_FT_REG_FILE: "file", XFS_DIR3_FT_DIR: "dir",
               XFS_DIR3_FT_SYMLINK: "symlink"}
_DINODE_FORMAT = XFS_DINODE.offset("di_format")
_DINODE_VERSION = XFS_DINODE.offset("di_version")
_DINODE_FORKOFF = XFS_DINODE.offset("di_forkoff")
_DINODE_NEXTENTS = XFS_DINODE.offset("di_nextents")
_DINODE_SIZE_AT = XFS_DINODE.offset("di_size")
_V5_INODES, _V4_INODES = (3,), (1, 2)
_OH_FLAGS = XLOG_OP_HEADER.offset("oh_flags")
_LOG_BBS_BACK = (XLOG_MAX_RECORD_BSIZE + XLOG_HEADER_CYCLE_SIZE) // XLOG_BBSIZE
# The constants of c_xfs the nogil walks need as C values (checked against it below), and
# the columns of an extent map: startoff, startblock, blockcount, unwritten.
cdef enum:
    _EXT_COLS = 4
    _FREE_TAG = 0xFFFF
    _ENTRY_FIXED = 11
    _ALIGN = 8

assert (_FREE_TAG, _ENTRY_FIXED, _ALIGN) == (
    XFS_DIR2_DATA_FREE_TAG, XFS_DIR2_DATA_ENTRY_FIXED, XFS_DIR2_DATA_ALIGN)


# --------------------------------------------------------------------------
# nogil walks
# --------------------------------------------------------------------------

cdef void _decode_extents(const uint8_t* p, Py_ssize_t n, uint64_t* out) noexcept nogil:
    """Unpack ``n`` packed bmbt records at ``p`` into rows of ``out``."""
    cdef Py_ssize_t i
    cdef uint64_t hi, lo
    for i in range(n):
        hi = be64(p + 16 * i)
        lo = be64(p + 16 * i + 8)
        out[4 * i] = (hi >> 9) & ((<uint64_t>1 << 54) - 1)
        out[4 * i + 1] = ((hi & 0x1FF) << 43) | (lo >> 21)
        out[4 * i + 2] = lo & 0x1FFFFF
        out[4 * i + 3] = hi >> 63


cdef Py_ssize_t _first_disordered(const uint64_t* m, Py_ssize_t n) noexcept nogil:
    """The first extent that is empty or overlaps the one before it, or -1."""
    cdef Py_ssize_t i
    cdef uint64_t end = 0
    for i in range(n):
        if m[4 * i + 2] == 0 or m[4 * i] < end:
            return i
        end = m[4 * i] + m[4 * i + 2]
    return -1


cdef Py_ssize_t _extent_at(const uint64_t* m, Py_ssize_t n, uint64_t block) noexcept nogil:
    """The first extent that ends after logical ``block`` (binary search), or ``n``."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) // 2
        if m[4 * mid] + m[4 * mid + 2] <= block:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef Py_ssize_t _walk_data_block(const uint8_t* p, Py_ssize_t start, Py_ssize_t end,
                                 int ftype, Py_ssize_t* found, Py_ssize_t* count) noexcept nogil:
    """Offsets of the entries of a directory data block's ``[start, end)`` into ``found``.

    Returns -1 when the block walks cleanly, else the offset of the first bad entry.
    """
    cdef Py_ssize_t pos = start, size, namelen
    count[0] = 0
    while pos < end:
        if end - pos < 4:
            return pos
        if be16(p + pos) == _FREE_TAG:
            size = be16(p + pos + 2)
            if size < _ALIGN or size % _ALIGN or pos + size > end:
                return pos
            pos += size
            continue
        if end - pos < _ENTRY_FIXED:
            return pos
        namelen = p[pos + 8]
        if namelen == 0:
            return pos
        size = _ENTRY_FIXED + namelen + ftype
        size = (size + _ALIGN - 1) & ~(<Py_ssize_t>_ALIGN - 1)
        if pos + size > end:
            return pos
        found[count[0]] = pos
        count[0] += 1
        pos += size
    return -1


# --------------------------------------------------------------------------
# Inodes
# --------------------------------------------------------------------------

class _Inode:
    """The parts of an inode core the reader uses, and its data fork's bytes."""

    __slots__ = ("fork", "fork_at", "format", "ino", "mode", "mtime", "nextents", "nlink",
                 "size", "uid", "gid", "at")

    def __init__(self, ino, at, mode, fmt, size, nextents, fork, fork_at, uid, gid, nlink,
                 mtime):
        self.ino = ino
        self.at = at
        self.mode = mode
        self.format = fmt
        self.size = size
        self.nextents = nextents
        self.fork = fork
        self.fork_at = fork_at
        self.uid = uid
        self.gid = gid
        self.nlink = nlink
        self.mtime = mtime


def _cstr(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


class XfsFileSystem(FileSystem):
    """An XFS volume at ``offset`` (``size`` bytes) of a disk read by ``read``."""

    filesystem = "xfs"

    def __init__(self, read, offset, size, name="volume"):
        self._diskread = read
        self.name = name if name else "volume"
        self.offset = offset
        self.size = size
        self._inodes = {}
        self._maps = {}
        self._dirs = {}
        self._dirty = None
        self._superblock()
        FileSystem.__init__(self, self.name, self.sb["sb_rootino"])
        self._check_ino(self.root, offset + XFS_DSB.offset("sb_rootino"), "XFS superblock")

    # -- bytes ----------------------------------------------------------------------
    def _bytes(self, pos, length, structure):
        """``length`` bytes at volume offset ``pos``, all inside the volume."""
        if pos < 0 or length < 0 or pos + length > self.size:
            raise CorruptImage(self.name, structure, self.offset + pos,
                               f"{length} bytes at {pos} lie outside the {self.size}-byte volume")
        data = self._diskread(self.offset + pos, length)
        if len(data) != length:
            raise TruncatedImage(self.name, structure, self.offset + pos,
                                 f"{len(data)} of {length} bytes readable")
        return data

    # -- superblock -----------------------------------------------------------------
    def _superblock(self):
        name = self.name
        head = self._bytes(0, XFS_DSB.size, "XFS superblock")
        sb = XFS_DSB.unpack(head)
        if sb["sb_magicnum"] != XFS_SB_MAGIC:
            raise CorruptImage(name, "XFS superblock", self.offset, "no XFSB magic")
        self.version = sb["sb_versionnum"] & XFS_SB_VERSION_NUMBITS
        if self.version not in (XFS_SB_VERSION_4, XFS_SB_VERSION_5):
            raise UnsupportedFeature(name, "XFS superblock",
                                     self.offset + XFS_DSB.offset("sb_versionnum"),
                                     f"superblock version {self.version}")
        blocklog, inodelog = sb["sb_blocklog"], sb["sb_inodelog"]
        agblocks, agcount, agblklog = sb["sb_agblocks"], sb["sb_agcount"], sb["sb_agblklog"]
        bad = None
        if not XFS_MIN_BLOCKSIZE_LOG <= blocklog <= XFS_MAX_BLOCKSIZE_LOG \
                or sb["sb_blocksize"] != 1 << blocklog:
            bad = "sb_blocksize"
        elif not XFS_DINODE_MIN_LOG <= inodelog <= XFS_DINODE_MAX_LOG \
                or sb["sb_inodesize"] != 1 << inodelog or inodelog > blocklog \
                or sb["sb_inopblog"] != blocklog - inodelog:
            bad = "sb_inodesize"
        elif agcount == 0 or agblocks < XFS_MIN_AG_BLOCKS or agblklog > 32 \
                or agblocks > 1 << agblklog or (agblklog and agblocks <= 1 << (agblklog - 1)):
            bad = "sb_agblocks"
        elif sb["sb_dirblklog"] + blocklog > XFS_MAX_DIRBLOCK_LOG:
            bad = "sb_dirblklog"
        elif sb["sb_dblocks"] > agcount * agblocks:
            bad = "sb_dblocks"
        if bad is not None:
            raise CorruptImage(name, "XFS superblock", self.offset + XFS_DSB.offset(bad),
                               f"impossible geometry ({bad})")
        if self.version == XFS_SB_VERSION_5:
            sector = self._bytes(0, sb["sb_sectsize"], "XFS superblock")
            self._verify(sector, XFS_DSB.offset("sb_crc"), "XFS superblock", self.offset)
            incompat = sb["sb_features_incompat"]
            unknown = incompat & ~XFS_SB_FEAT_INCOMPAT_KNOWN
            if unknown:
                raise UnsupportedFeature(
                    name, "XFS superblock",
                    self.offset + XFS_DSB.offset("sb_features_incompat"),
                    f"unknown incompatible features 0x{unknown:x}")
            self.ftype = bool(incompat & XFS_SB_FEAT_INCOMPAT_FTYPE)
            self.inode_core = XFS_DINODE_V3_SIZE
        else:
            if not sb["sb_versionnum"] & XFS_SB_VERSION_DIRV2BIT:
                raise UnsupportedFeature(name, "XFS superblock",
                                         self.offset + XFS_DSB.offset("sb_versionnum"),
                                         "version 1 directories")
            self.ftype = bool(sb["sb_versionnum"] & XFS_SB_VERSION_MOREBITSBIT
                              and sb["sb_features2"] & XFS_SB_VERSION2_FTYPE)
            self.inode_core = XFS_DINODE_V2_SIZE
        self.sb = sb
        self.block_size = sb["sb_blocksize"]
        self.dirblock_size = self.block_size << sb["sb_dirblklog"]
        self.crc = self.version == XFS_SB_VERSION_5
        self.dir_header = (XFS_DIR3_DATA_HDR if self.crc else XFS_DIR2_DATA_HDR).size

    def _verify(self, data, field, structure, at):
        """Refuse v5 metadata whose little-endian CRC-32C at ``field`` does not match."""
        stored = int.from_bytes(data[field:field + 4], "little")
        if crc32c_with_zeroed_field(data, field) != stored:
            raise CorruptImage(self.name, structure, None if at is None else at + field,
                               "CRC mismatch")

    # -- addresses ------------------------------------------------------------------
    def _fsb(self, fsb, count, structure):
        """The volume byte offset of filesystem block ``fsb``; ``count`` blocks stay in its AG."""
        sb = self.sb
        agno = fsb >> sb["sb_agblklog"]
        agbno = fsb & ((1 << sb["sb_agblklog"]) - 1)
        if agno >= sb["sb_agcount"] or agbno + count > sb["sb_agblocks"]:
            raise CorruptImage(self.name, structure, None,
                               f"block {fsb} (+{count}) is outside its allocation group")
        return (agno * sb["sb_agblocks"] + agbno) * self.block_size

    def _check_ino(self, ino, at, what):
        sb = self.sb
        shift = sb["sb_agblklog"] + sb["sb_inopblog"]
        agbno = (ino >> sb["sb_inopblog"]) & ((1 << sb["sb_agblklog"]) - 1)
        if ino <= 0 or ino >> shift >= sb["sb_agcount"] or agbno >= sb["sb_agblocks"]:
            raise CorruptImage(self.name, what, at, f"inode number {ino} is outside the volume")
        return ((ino >> shift) * sb["sb_agblocks"] + agbno) * self.block_size \
            + (ino & ((1 << sb["sb_inopblog"]) - 1)) * sb["sb_inodesize"]

    # -- inodes ---------------------------------------------------------------------
    def _inode(self, ino):
        got = self._inodes.get(ino)
        if got is not None:
            return got
        pos = self._check_ino(ino, None, f"inode {ino}")
        isize = self.sb["sb_inodesize"]
        raw = self._bytes(pos, isize, f"inode {ino}")
        at = self.offset + pos
        if raw[:2] != XFS_DINODE_MAGIC:
            raise CorruptImage(self.name, f"inode {ino}", at, "no IN magic")
        core = XFS_DINODE.unpack(raw) if isize >= XFS_DINODE.size else None
        if core is None or core["di_version"] not in (_V5_INODES if self.crc else _V4_INODES):
            raise CorruptImage(self.name, f"inode {ino}", at + _DINODE_VERSION,
                               "inode version does not match the superblock")
        if self.crc:
            self._verify(raw, XFS_DINODE.offset("di_crc"), f"inode {ino}", at)
        big = self.crc and core["di_flags2"] & XFS_DIFLAG2_NREXT64
        nextents = core["di_big_nextents"] if big else core["di_nextents"]
        forkoff = core["di_forkoff"] * 8
        fork_size = forkoff if forkoff else isize - self.inode_core
        if self.inode_core + fork_size > isize:
            raise CorruptImage(self.name, f"inode {ino}", at + _DINODE_FORKOFF,
                               f"di_forkoff {core['di_forkoff']} is past the inode")
        if self.crc and core["di_flags2"] & XFS_DIFLAG2_BIGTIME:
            mtime = core["di_mtime"] // 1_000_000_000 - XFS_BIGTIME_EPOCH_OFFSET
        else:
            mtime = core["di_mtime"] >> 32
            mtime -= (mtime & 0x80000000) << 1
        size = core["di_size"]
        if size >> 63:
            raise CorruptImage(self.name, f"inode {ino}", at + _DINODE_SIZE_AT,
                               f"negative di_size {size}")
        node = _Inode(ino, at, core["di_mode"], core["di_format"], size, nextents,
                      raw[self.inode_core:self.inode_core + fork_size], at + self.inode_core,
                      core["di_uid"], core["di_gid"],
                      core["di_nlink"] if core["di_version"] > 1 else core["di_onlink"], mtime)
        if len(self._inodes) >= _INODE_CACHE:
            self._inodes.clear()
        self._inodes[ino] = node
        return node

    # -- extent maps ----------------------------------------------------------------
    def _map(self, node):
        """The data fork's extents, one row of ``_EXT_COLS`` per extent, in file order."""
        got = self._maps.get(node.ino)
        if got is not None:
            return got
        where = f"inode {node.ino} data fork"
        if node.format == XFS_DINODE_FMT_EXTENTS:
            limits.enforce(node.nextents, "XFS_MAX_FORK_EXTENTS", self.name, where,
                           node.at + _DINODE_NEXTENTS, "extents")
            if node.nextents * XFS_BMBT_REC_SIZE > len(node.fork):
                raise CorruptImage(self.name, where, node.at + _DINODE_NEXTENTS,
                                   f"{node.nextents} extents do not fit in the fork")
            m = array("Q", bytes(8 * _EXT_COLS * node.nextents))
            self._decode(node.fork, 0, node.nextents, m, 0)
        elif node.format == XFS_DINODE_FMT_BTREE:
            m = self._btree_map(node, where)
        else:
            raise CorruptImage(self.name, where, node.at + _DINODE_FORMAT,
                               f"a fork of format {node.format} has no extents")
        bad = self._disordered(m)
        if bad >= 0:
            raise CorruptImage(self.name, where, None,
                               f"extent {bad} is empty or overlaps the one before it")
        if len(self._maps) >= _MAP_CACHE:
            self._maps.clear()
        self._maps[node.ino] = m
        return m

    def _decode(self, const uint8_t[::1] src, Py_ssize_t off, Py_ssize_t n, uint64_t[::1] out,
                Py_ssize_t row):
        if n == 0:
            return
        with nogil:
            _decode_extents(&src[off], n, &out[row * _EXT_COLS])

    def _disordered(self, uint64_t[::1] m):
        cdef Py_ssize_t n = m.shape[0] // _EXT_COLS, bad
        if n == 0:
            return -1
        with nogil:
            bad = _first_disordered(&m[0], n)
        return bad

    def _btree_map(self, node, where):
        fork = node.fork
        if len(fork) < XFS_BMDR_BLOCK.size:
            raise CorruptImage(self.name, where, node.fork_at, "fork too small for a btree root")
        root = XFS_BMDR_BLOCK.unpack(fork)
        level, numrecs = root["bb_level"], root["bb_numrecs"]
        limits.enforce(level, "XFS_MAX_BMBT_DEPTH", self.name, where, node.fork_at,
                       "bmap btree levels")
        maxrecs = (len(fork) - XFS_BMDR_BLOCK.size) // (XFS_BMBT_KEY_SIZE + XFS_BMBT_PTR_SIZE)
        if level == 0 or numrecs == 0 or numrecs > maxrecs:
            raise CorruptImage(self.name, where, node.fork_at,
                               f"bmap btree root of level {level} with {numrecs} records")
        limits.enforce(node.nextents, "XFS_MAX_FORK_EXTENTS", self.name, where,
                       node.at + _DINODE_NEXTENTS, "extents")
        ptrs = XFS_BMDR_BLOCK.size + maxrecs * XFS_BMBT_KEY_SIZE
        pending = [(be_u64(fork, ptrs + 8 * i), level - 1) for i in range(numrecs)]
        pending.reverse()
        hdr = XFS_BTREE_LBLOCK_CRC_LEN if self.crc else XFS_BTREE_LBLOCK_LEN
        magic = XFS_BMAP_CRC_MAGIC if self.crc else XFS_BMAP_MAGIC
        bs = self.block_size
        node_max = (bs - hdr) // (XFS_BMBT_KEY_SIZE + XFS_BMBT_PTR_SIZE)
        leaf_max = (bs - hdr) // XFS_BMBT_REC_SIZE
        seen = set()
        m = array("Q", bytes(8 * _EXT_COLS * node.nextents))
        rows = 0
        while pending:
            fsb, want = pending.pop()
            if fsb in seen:
                raise CorruptImage(self.name, where, None, f"bmap btree block {fsb} visited twice")
            seen.add(fsb)
            pos = self._fsb(fsb, 1, where)
            blk = self._bytes(pos, bs, "bmap btree block")
            at = self.offset + pos
            h = XFS_BMBT_BLOCK.unpack(blk) if self.crc else None
            if blk[:4] != magic:
                raise CorruptImage(self.name, "bmap btree block", at, "bad magic")
            if self.crc:
                self._verify(blk, XFS_BMBT_BLOCK.offset("bb_crc"), "bmap btree block", at)
            lvl = be_u16(blk, XFS_BMBT_BLOCK.offset("bb_level"))
            count = be_u16(blk, XFS_BMBT_BLOCK.offset("bb_numrecs"))
            if h is not None and h["bb_owner"] != node.ino:
                raise CorruptImage(self.name, "bmap btree block", at,
                                   f"owned by inode {h['bb_owner']}, not {node.ino}")
            if lvl != want or not 0 < count <= (leaf_max if lvl == 0 else node_max):
                raise CorruptImage(self.name, "bmap btree block", at,
                                   f"level {lvl} with {count} records where level {want} was due")
            if lvl:
                base = hdr + node_max * XFS_BMBT_KEY_SIZE
                more = [(be_u64(blk, base + 8 * i), lvl - 1) for i in range(count)]
                more.reverse()
                pending.extend(more)
                continue
            if rows + count > node.nextents:
                limits.enforce(rows + count, "XFS_MAX_FORK_EXTENTS", self.name, where, at,
                               "extents")
                raise CorruptImage(self.name, where, node.at + _DINODE_NEXTENTS,
                                   f"the btree holds more than di_nextents {node.nextents}")
            self._decode(blk, hdr, count, m, rows)
            rows += count
        if rows != node.nextents:
            raise CorruptImage(self.name, where, node.at + _DINODE_NEXTENTS,
                               f"di_nextents {node.nextents} but the btree holds {rows}")
        return m

    def _fork_bytes(self, node, pos, length, structure):
        """``length`` bytes (bytes or bytearray) of ``node``'s data fork from byte ``pos``:
        holes and unwritten extents read as zeros."""
        cdef uint64_t[::1] m = self._map(node)
        cdef Py_ssize_t n = m.shape[0] // _EXT_COLS, i
        cdef uint64_t first
        if length == 0 or n == 0:
            return bytearray(length)
        out = bytearray()
        bs = self.block_size
        first, last = pos // bs, (pos + length - 1) // bs
        with nogil:
            i = _extent_at(&m[0], n, first)
        while i < n and m[4 * i] <= last:
            start, fsb, count = m[4 * i], m[4 * i + 1], m[4 * i + 2]
            if not m[4 * i + 3]:
                lo, hi = max(start * bs, pos), min((start + count) * bs, pos + length)
                disk = self._fsb(fsb, count, structure)
                data = self._bytes(disk + lo - start * bs, hi - lo, structure)
                if hi - lo == length:
                    return data               # one extent holds it all: no copy
                if not out:
                    out = bytearray(length)
                out[lo - pos:hi - pos] = data
            i += 1
        return out or bytearray(length)

    # -- primitives -----------------------------------------------------------------
    def _stat(self, ino):
        node = self._inode(ino)
        return Stat(ino, kind_of_mode(node.mode), node.size, node.mode, node.uid, node.gid,
                    node.nlink, node.mtime)

    def _read(self, ino, offset, length):
        node = self._inode(ino)
        if node.format == XFS_DINODE_FMT_LOCAL:
            return bytes(node.fork[offset:offset + length]).ljust(length, b"\0")
        data = self._fork_bytes(node, offset, length, f"inode {ino} data")
        return data if type(data) is bytes else bytes(data)

    def _readlink(self, ino):
        node = self._inode(ino)
        where = f"symlink inode {ino}"
        if node.size == 0 or node.size > XFS_SYMLINK_MAXLEN:
            raise CorruptImage(self.name, where, node.at + _DINODE_SIZE_AT,
                               f"a {node.size}-byte target")
        if node.format == XFS_DINODE_FMT_LOCAL:
            if node.size > len(node.fork):
                raise CorruptImage(self.name, where, node.at + _DINODE_SIZE_AT,
                                   "target longer than its fork")
            target = bytes(node.fork[:node.size])
        elif not self.crc:
            target = bytes(self._fork_bytes(node, 0, node.size, where))
        else:
            target = self._remote_symlink(node, where)
        return target.decode("utf-8", "surrogateescape")

    def _remote_symlink(self, node, where):
        """A v5 remote target: each block starts with a header naming its slice."""
        bs = self.block_size
        room = bs - XFS_DSYMLINK_HDR.size
        parts = []
        got = 0
        block = 0
        while got < node.size:
            blk = self._fork_bytes(node, block * bs, bs, where)
            hdr = XFS_DSYMLINK_HDR.unpack(blk)
            if hdr["sl_magic"] == XFS_SYMLINK_MAGIC:
                self._verify(blk, XFS_DSYMLINK_HDR.offset("sl_crc"), where, None)
            if hdr["sl_magic"] != XFS_SYMLINK_MAGIC or hdr["sl_offset"] != got \
                    or not 0 < hdr["sl_bytes"] <= min(room, node.size - got):
                raise CorruptImage(self.name, where, None,
                                   f"remote symlink block {block} has a bad header")
            parts.append(bytes(blk[XFS_DSYMLINK_HDR.size:XFS_DSYMLINK_HDR.size
                                   + hdr["sl_bytes"]]))
            got += hdr["sl_bytes"]
            block += 1
        return b"".join(parts)

    def _entries(self, dir_ino):
        for name, ino, kind in self._raw_entries(dir_ino):
            if name in (b".", b".."):
                continue
            if kind is None:
                kind = kind_of_mode(self._inode(ino).mode)
            yield DirEntry(name.decode("utf-8", "surrogateescape"), ino, kind)

    def _lookup(self, dir_ino, name):
        index = self._dirs.get(dir_ino)
        if index is None:
            node = self._inode(dir_ino)
            if node.format == XFS_DINODE_FMT_LOCAL:
                want = name.encode("utf-8", "surrogateescape")
                for entry, ino, _ in self._raw_entries(dir_ino):
                    if entry == want:
                        return ino
                return None
            index = {entry: ino for entry, ino, _ in self._raw_entries(dir_ino)}
            if len(self._dirs) >= _DIR_CACHE:
                self._dirs.clear()
            self._dirs[dir_ino] = index
        return index.get(name.encode("utf-8", "surrogateescape"))

    # -- directories ----------------------------------------------------------------
    def _raw_entries(self, dir_ino):
        """(name bytes, inode, kind or None) of every entry, ``.`` and ``..`` included."""
        node = self._inode(dir_ino)
        if node.format == XFS_DINODE_FMT_LOCAL:
            return self._shortform(node)
        return self._data_blocks(node)

    def _shortform(self, node):
        fork, where = node.fork, f"short-form directory inode {node.ino}"
        if node.size > len(fork) or node.size < XFS_DIR2_SF_HDR.size:
            raise CorruptImage(self.name, where, node.at + _DINODE_SIZE_AT,
                               f"di_size {node.size} does not fit the fork")
        count, i8 = fork[0], fork[1]
        width = 8 if i8 else 4
        pos = XFS_DIR2_SF_HDR.size + width
        out = [(b"..", self._sf_ino(fork, 2, width), None)]
        end = node.size
        for _ in range(count):
            fixed = 1 + XFS_DIR2_SF_ENTRY_OFFSET_SIZE
            if pos + fixed > end:
                raise CorruptImage(self.name, where, node.fork_at + pos, "entry past di_size")
            namelen = fork[pos]
            name_at = pos + fixed
            ino_at = name_at + namelen + (1 if self.ftype else 0)
            if namelen == 0 or ino_at + width > end:
                raise CorruptImage(self.name, where, node.fork_at + pos, "bad entry")
            kind = _FTYPE_KIND.get(fork[ino_at - 1], "other") if self.ftype else None
            out.append((bytes(fork[name_at:name_at + namelen]),
                        self._sf_ino(fork, ino_at, width), kind))
            pos = ino_at + width
        return out

    def _sf_ino(self, fork, pos, width):
        return int.from_bytes(fork[pos:pos + width], "big")

    def _data_blocks(self, node):
        where = f"directory inode {node.ino}"
        cdef uint64_t[::1] m = self._map(node)
        n = m.shape[0] // _EXT_COLS
        bs, dbs = self.block_size, self.dirblock_size
        per = dbs // bs
        limit = XFS_DIR2_LEAF_OFFSET // bs
        blocks = []
        for i in range(n):
            start, count = m[4 * i], m[4 * i + 2]
            if start >= limit:
                break
            end = min(start + count, limit)
            first = start // per
            if blocks and blocks[-1] == first:
                first += 1
            stop = (end + per - 1) // per
            limits.enforce((len(blocks) + max(stop - first, 0)) * dbs, "XFS_MAX_DIRECTORY_BYTES",
                           self.name, where, node.at, "directory bytes")
            blocks.extend(range(first, stop))
        out = []
        for blk in blocks:
            data = bytes(self._fork_bytes(node, blk * dbs, dbs, where))
            self._parse_data_block(data, blk, where, out)
        return out

    def _parse_data_block(self, bytes data, blk, where, out):
        cdef const uint8_t* p = data
        cdef Py_ssize_t dbs = len(data), end, bad, count, k, at, tail
        cdef uint32_t leaves
        cdef Py_ssize_t start = self.dir_header
        cdef int ftype = 1 if self.ftype else 0
        magic = data[:4]
        if magic in (XFS_DIR3_BLOCK_MAGIC, XFS_DIR2_BLOCK_MAGIC):
            tail = dbs - XFS_DIR2_BLOCK_TAIL.size
            leaves = be32(p + tail)
            if leaves > tail // XFS_DIR2_LEAF_ENTRY_SIZE:
                raise CorruptImage(self.name, where, None, f"block {blk} tail count {leaves}")
            end = tail - leaves * XFS_DIR2_LEAF_ENTRY_SIZE
        elif magic in (XFS_DIR3_DATA_MAGIC, XFS_DIR2_DATA_MAGIC):
            end = dbs
        else:
            raise CorruptImage(self.name, where, None, f"directory block {blk} has no data magic")
        if magic[2:] == b"B3" or magic[2:] == b"D3":
            if not self.crc:
                raise CorruptImage(self.name, where, None, f"block {blk}: a v5 block on v4")
            self._verify(data, XFS_DIR3_DATA_HDR.offset("crc"), f"{where} block {blk}", None)
        elif self.crc:
            raise CorruptImage(self.name, where, None, f"block {blk}: a v4 block on v5")
        if end < start:
            raise CorruptImage(self.name, where, None, f"block {blk} has no room for entries")
        cdef Py_ssize_t* found = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (dbs // 16 + 1))
        if found == NULL:
            raise MemoryError
        try:
            with nogil:
                bad = _walk_data_block(p, start, end, ftype, found, &count)
            if bad >= 0:
                raise CorruptImage(self.name, where, None,
                                   f"directory block {blk}: bad entry at byte {bad}")
            for k in range(count):
                at = found[k]
                namelen = p[at + 8]
                kind = None
                if ftype:
                    kind = _FTYPE_KIND.get(p[at + 9 + namelen], "other")
                out.append((data[at + 9:at + 9 + namelen], be64(p + at), kind))
        finally:
            free(found)

    # -- the log --------------------------------------------------------------------
    def _log_dirty(self):
        """Whether the internal log holds changes (its last record is no unmount record)."""
        sb = self.sb
        if sb["sb_logstart"] == 0:
            return None                          # an external log: not on this volume
        total = sb["sb_logblocks"] * self.block_size // XLOG_BBSIZE
        base = self._fsb(sb["sb_logstart"], sb["sb_logblocks"], "XFS log")
        if total == 0:
            raise CorruptImage(self.name, "XFS superblock",
                               self.offset + XFS_DSB.offset("sb_logblocks"), "an empty log")

        def cycle(bb):
            # xlog_get_cycle: a record header keeps it in h_cycle, other blocks in word 0
            raw = self._bytes(base + bb * XLOG_BBSIZE, 8, "XFS log")
            return be_u32(raw, 4 if be_u32(raw, 0) == XLOG_HEADER_MAGIC_NUM else 0)

        first, last = cycle(0), cycle(total - 1)
        if first == 0:
            return False                          # never written since mkfs zeroed it
        lo, hi = 0, total
        if first == last:
            want = first
            lo, hi = 0, total
            # head: the first block of an older cycle, else the end
            while lo < hi:
                mid = (lo + hi) // 2
                if cycle(mid) == want:
                    lo = mid + 1
                else:
                    hi = mid
        else:
            while lo < hi:
                mid = (lo + hi) // 2
                if cycle(mid) != last:
                    lo = mid + 1
                else:
                    hi = mid
        head = lo
        back = min(_LOG_BBS_BACK, total)
        for step in range(1, back + 1):
            bb = (head - step) % total
            raw = self._bytes(base + bb * XLOG_BBSIZE, XLOG_BBSIZE, "XFS log")
            if be_u32(raw, 0) != XLOG_HEADER_MAGIC_NUM:
                continue
            rec = XLOG_REC_HEADER.unpack(raw)
            hbbs = 1
            if rec["h_version"] & 2 and rec["h_size"] > XLOG_HEADER_CYCLE_SIZE:
                hbbs = (rec["h_size"] + XLOG_HEADER_CYCLE_SIZE - 1) // XLOG_HEADER_CYCLE_SIZE
            if rec["h_num_logops"] != 1:
                return True
            op = self._bytes(base + ((bb + hbbs) % total) * XLOG_BBSIZE, XLOG_OP_HEADER.size,
                             "XFS log")
            return not op[_OH_FLAGS] & XLOG_UNMOUNT_TRANS
        raise CorruptImage(self.name, "XFS log", self.offset + base,
                           "no record header before the head of the log")

    def facts(self):
        if self._dirty is None:
            self._dirty = self._log_dirty()
        label = _cstr(self.sb["sb_fname"]) or None
        return {"filesystem": "xfs", "label": label,
                "uuid": str(_uuid.UUID(bytes=self.sb["sb_uuid"])),
                "version": f"v{self.version}", "block_size": self.block_size,
                # the superblock's free data blocks (xfs_db "sb 0; print fdblocks"; lazy
                # counters make it stale until the log is recovered)
                "free_blocks": self.sb["sb_fdblocks"],
                "dirty": self._dirty,
                "state": None if self._dirty is None else ("dirty" if self._dirty else "clean")}


def be_u16(data, pos):
    return int.from_bytes(data[pos:pos + 2], "big")


def be_u32(data, pos):
    return int.from_bytes(data[pos:pos + 4], "big")


def be_u64(data, pos):
    return int.from_bytes(data[pos:pos + 8], "big")

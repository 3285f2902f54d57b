# cython: language_level=3
"""ext2/3/4 filesystems, read-only: files by path, directory listings, volume facts.

Spec: the kernel's "ext4 Data Structures and Algorithms"
(Documentation/filesystems/ext4) and e2fsprogs ``lib/ext2fs/ext2_fs.h``, whose
names :mod:`imgscan._core.c_ext4` declares once. The filesystems of the tests are
made by mke2fs (``-d DIR``) and read back by debugfs as the oracle.

A volume is read through ``read(offset, length) -> bytes`` over the guest
bytes of the whole disk, so the same code works through every container;
``offset`` and ``size`` delimit the volume. Offsets in errors are disk offsets.

What is read, and how:

* the superblock (1024 bytes in) gives the geometry and the features; an
  incompat feature the reader does not implement is refused by name
  (``UnsupportedFeature``); the journal is never replayed, a filesystem that
  needs recovery is reported dirty;
* group descriptors (32 bytes, or ``s_desc_size`` with 64bit; ``meta_bg``
  placement included) locate each group's inode table; inodes are
  ``s_inode_size`` bytes;
* file blocks are mapped by the extent tree (depth capped, each node's header
  checked, a descent per run of blocks) or the ext2/3 indirect map (direct,
  single, double, triple); holes and uninitialized extents read as zeros;
  small files and directories may be inline (``i_block`` then the
  ``system.data`` in-inode xattr);
* directories are read linearly: an htree directory's leaves are ordinary
  entry blocks and its index blocks look like empty entries, so the hash tree
  is never trusted; names are matched byte for byte in a nogil scan
  (casefolded directories through Unicode casefolding).

Encrypted (fscrypt) inodes are refused with ``UnsupportedFeature``: their
names and bytes are ciphertext.
"""

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp

import unicodedata

from imgscan import limits
from imgscan.errors import CorruptImage, ImageError, TruncatedImage, UnsupportedFeature

from .binary cimport le16, le32
from . import c_ext4 as C
from .fsapi import DirEntry, FileSystem, Stat, kind_of_mode

# Field offsets the nogil walks use, from the one declaration.
cdef Py_ssize_t EH_MAGIC = C.EXT3_EXTENT_HEADER.offset("eh_magic")
cdef Py_ssize_t EH_ENTRIES = C.EXT3_EXTENT_HEADER.offset("eh_entries")
cdef Py_ssize_t EH_MAX = C.EXT3_EXTENT_HEADER.offset("eh_max")
cdef Py_ssize_t EH_DEPTH = C.EXT3_EXTENT_HEADER.offset("eh_depth")
cdef Py_ssize_t EH_SIZE = C.EXT3_EXTENT_HEADER.size
cdef Py_ssize_t EXT_ENTRY = C.EXT3_EXTENT.size
cdef Py_ssize_t EE_LEN = C.EXT3_EXTENT.offset("ee_len")
cdef Py_ssize_t EE_START_HI = C.EXT3_EXTENT.offset("ee_start_hi")
cdef Py_ssize_t EE_START = C.EXT3_EXTENT.offset("ee_start")
cdef Py_ssize_t EI_LEAF = C.EXT3_EXTENT_IDX.offset("ei_leaf")
cdef Py_ssize_t EI_LEAF_HI = C.EXT3_EXTENT_IDX.offset("ei_leaf_hi")
cdef Py_ssize_t DE_REC_LEN = C.EXT2_DIR_ENTRY_2.offset("rec_len")
cdef Py_ssize_t DE_NAME_LEN = C.EXT2_DIR_ENTRY_2.offset("name_len")
cdef Py_ssize_t DE_FILE_TYPE = C.EXT2_DIR_ENTRY_2.offset("file_type")
cdef Py_ssize_t DE_SIZE = C.EXT2_DIR_ENTRY_2.size
cdef Py_ssize_t I_BLOCK = C.EXT2_INODE.offset("i_block")
cdef Py_ssize_t I_EXTRA = C.EXT2_INODE.size
cdef Py_ssize_t I_MTIME_EXTRA = I_EXTRA + C.EXT2_INODE_EXTRA.offset("i_mtime_extra")
cdef Py_ssize_t XE_SIZE = C.EXT2_EXT_ATTR_ENTRY.size
cdef uint32_t EXT_MAGIC = C.EXT3_EXT_MAGIC
cdef uint64_t NDIR_BLOCKS = C.EXT2_NDIR_BLOCKS
cdef uint32_t INIT_MAX_LEN = C.EXT_INIT_MAX_LEN

#: A mapped run: data at a block, a hole, or an uninitialized extent (zeros too).
cdef enum:
    RUN_HOLE = 0
    RUN_DATA = 1
    RUN_UNWRITTEN = 2

#: dirent file_type (with the filetype feature) to the interface's kinds.
_FT_KIND = {1: "file", 2: "dir", 3: "other", 4: "other", 5: "other", 6: "other", 7: "symlink"}

#: Inodes kept decoded between calls (a path walk stats each component more than once).
INODE_CACHE = 4096

#: Files whose bytes are ciphertext or otherwise unreadable.
UNREADABLE_FLAGS = C.EXT4_ENCRYPT_FL


cdef inline Py_ssize_t _last_le(const uint8_t* entries, Py_ssize_t n, uint32_t key) noexcept nogil:
    """Index of the last 12-byte extent entry whose first block is <= key, or -1."""
    cdef Py_ssize_t lo = 0, hi = n - 1, mid, found = -1
    while lo <= hi:
        mid = (lo + hi) >> 1
        if le32(entries + 12 * mid) <= key:
            found = mid
            lo = mid + 1
        else:
            hi = mid - 1
    return found


cdef struct _Dirent:
    Py_ssize_t pos
    uint32_t ino
    uint16_t name_len
    uint8_t file_type


cdef Py_ssize_t _scan_entries(const uint8_t* d, Py_ssize_t start, Py_ssize_t end,
                              bint filetype, bint big_rec, _Dirent* out, Py_ssize_t cap,
                              Py_ssize_t* bad) noexcept nogil:
    """Walk the entries of ``d[start:end]``: the count put in ``out``, or -1 with ``*bad``
    set to the position of the first impossible entry."""
    cdef Py_ssize_t pos = start, n = 0
    cdef uint32_t rec, nl
    while pos + 8 <= end:
        rec = le16(d + pos + DE_REC_LEN)
        if big_rec:
            if rec == 65535 or rec == 0:
                rec = end - start
            else:
                rec = (rec & 65532) | ((rec & 3) << 16)
        nl = d[pos + DE_NAME_LEN] if filetype else le16(d + pos + DE_NAME_LEN)
        if rec == 0 and pos == start and le32(d + pos) == 0:
            return n    # an all-zero block: a hole in the directory
        if rec < 8 or (rec & 3) or pos + rec > end or nl + 8 > rec:
            bad[0] = pos
            return -1
        if le32(d + pos) != 0 and nl > 0 and n < cap:
            if not ((nl == 1 and d[pos + 8] == 46)
                    or (nl == 2 and d[pos + 8] == 46 and d[pos + 9] == 46)):
                out[n].pos = pos
                out[n].ino = le32(d + pos)
                out[n].name_len = <uint16_t>nl
                out[n].file_type = d[pos + DE_FILE_TYPE] if filetype else 0
                n += 1
        pos += rec
    return n


cdef uint64_t _scan_cost(list found):
    """The directory bytes a scan keeps alive (every region shares one buffer)."""
    return len(found[0][0]) if found else 0


cdef class _Inode:
    """One decoded inode: what stat, the block map and inline data need."""
    cdef readonly uint32_t ino
    cdef readonly uint32_t mode, uid, gid, links, flags
    cdef readonly uint64_t size, blocks, file_acl
    cdef readonly int64_t mtime
    cdef readonly bytes i_block, raw
    cdef readonly int64_t disk


cdef class Ext4Volume:
    """The volume's geometry and the block, inode, map and directory readers."""
    cdef readonly object name
    cdef object _readfn
    cdef readonly int64_t offset, size
    cdef readonly uint32_t block_size, inode_size, inodes_per_group, blocks_per_group
    cdef readonly uint32_t first_data_block, desc_size, groups, first_meta_bg, inodes_count
    cdef readonly uint64_t blocks_count
    cdef readonly uint32_t compat, incompat, ro_compat
    cdef readonly dict sb
    cdef dict _inodes, _tables, _map
    cdef uint32_t _map_reads
    # Scanned directories, most recent last, and the bytes they hold (see _scan).
    cdef dict _dirs
    cdef uint64_t _dirs_bytes

    def __init__(self, read, int64_t offset, int64_t size, str name="volume"):
        self._readfn = read
        self.offset = offset
        self.size = size
        self.name = name
        self._inodes = {}
        self._tables = {}
        self._map = {}
        self._dirs = {}
        self._dirs_bytes = 0
        self._superblock()

    # -- bytes -------------------------------------------------------------------------
    cdef object _err(self, cls, str structure, object vol_offset, str problem):
        return cls(self.name, structure, None if vol_offset is None else self.offset + vol_offset,
                   problem)

    cdef bytes _bytes(self, int64_t pos, int64_t length, str structure):
        """``length`` bytes at volume offset ``pos``, all of them or TruncatedImage."""
        if pos < 0 or length < 0 or pos + length > self.size:
            raise self._err(TruncatedImage, structure, pos,
                            f"{length} bytes at {pos} lie past the volume's {self.size} bytes")
        data = self._readfn(self.offset + pos, length)
        if len(data) != length:
            raise self._err(TruncatedImage, structure, pos,
                            f"only {len(data)} of {length} bytes could be read")
        return data

    cdef bytes _blocks(self, uint64_t block, uint64_t count, str structure):
        if block >= self.blocks_count or count > self.blocks_count - block:
            raise self._err(CorruptImage, structure, None,
                            f"blocks {block}+{count} lie past the filesystem's "
                            f"{self.blocks_count} blocks")
        return self._bytes(block * self.block_size, count * self.block_size, structure)

    # -- superblock and groups ---------------------------------------------------------
    cdef _superblock(self):
        S = C.EXT2_SUPER_BLOCK
        raw = self._bytes(C.SUPERBLOCK_OFFSET, C.SUPERBLOCK_SIZE, S.name)
        sb = S.unpack(raw)
        self.sb = sb
        at = lambda field: C.SUPERBLOCK_OFFSET + S.offset(field)
        if sb["s_magic"] != C.EXT2_SUPER_MAGIC:
            raise self._err(CorruptImage, S.name, at("s_magic"),
                            f"magic 0x{sb['s_magic']:04x} is not 0x{C.EXT2_SUPER_MAGIC:04x}")
        self.compat = sb["s_feature_compat"]
        self.incompat = sb["s_feature_incompat"]
        self.ro_compat = sb["s_feature_ro_compat"]
        if self.incompat & C.EXT3_FEATURE_INCOMPAT_JOURNAL_DEV:
            raise self._err(UnsupportedFeature, S.name, at("s_feature_incompat"),
                            "an external journal device (journal_dev), not a filesystem")
        unknown = self.incompat & ~C.INCOMPAT_READABLE
        if unknown:
            names = [C.INCOMPAT_FEATURES.get(1 << b, f"FEATURE_I{b}")
                     for b in range(32) if unknown >> b & 1]
            raise self._err(UnsupportedFeature, S.name, at("s_feature_incompat"),
                            f"incompat feature {', '.join(names)} is not implemented")
        log = sb["s_log_block_size"]
        if log > C.EXT2_MAX_BLOCK_LOG_SIZE - C.EXT2_MIN_BLOCK_LOG_SIZE:
            raise self._err(CorruptImage, S.name, at("s_log_block_size"),
                            f"block size 2^(10+{log}) is impossible")
        self.block_size = 1024 << log
        if sb["s_rev_level"] == C.EXT2_GOOD_OLD_REV:
            self.inode_size = C.EXT2_GOOD_OLD_INODE_SIZE
        else:
            self.inode_size = sb["s_inode_size"]
        isz = self.inode_size
        if isz < C.EXT2_GOOD_OLD_INODE_SIZE or isz > self.block_size or isz & (isz - 1):
            raise self._err(CorruptImage, S.name, at("s_inode_size"),
                            f"inode size {isz} is impossible")
        self.blocks_count = sb["s_blocks_count"]
        if self.incompat & C.EXT4_FEATURE_INCOMPAT_64BIT:
            self.blocks_count |= <uint64_t>sb["s_blocks_count_hi"] << 32
            self.desc_size = sb["s_desc_size"]
            if (self.desc_size < C.EXT2_MIN_DESC_SIZE_64BIT or self.desc_size > C.EXT2_MAX_DESC_SIZE
                    or self.desc_size & (self.desc_size - 1)):
                raise self._err(CorruptImage, S.name, at("s_desc_size"),
                                f"group descriptor size {self.desc_size} is impossible")
        else:
            self.desc_size = C.EXT2_MIN_DESC_SIZE
        self.first_data_block = sb["s_first_data_block"]
        self.blocks_per_group = sb["s_blocks_per_group"]
        self.inodes_per_group = sb["s_inodes_per_group"]
        self.inodes_count = sb["s_inodes_count"]
        self.first_meta_bg = sb["s_first_meta_bg"]
        if self.blocks_per_group == 0 or self.first_data_block >= self.blocks_count:
            raise self._err(CorruptImage, S.name, at("s_blocks_per_group"),
                            f"{self.blocks_per_group} blocks per group, first data block "
                            f"{self.first_data_block} of {self.blocks_count} are impossible")
        if self.inodes_per_group == 0 or self.inodes_per_group > 8 * self.block_size:
            raise self._err(CorruptImage, S.name, at("s_inodes_per_group"),
                            f"{self.inodes_per_group} inodes per group is impossible")
        self.groups = <uint32_t>min((self.blocks_count - self.first_data_block
                                     + self.blocks_per_group - 1) // self.blocks_per_group,
                                    0xFFFFFFFF)

    cdef bint _has_super(self, uint64_t group):
        """Whether ``group`` holds a superblock backup (sparse_super / sparse_super2)."""
        if group <= 1 or not self.ro_compat & C.EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER:
            return True
        if self.compat & 0x0200:   # sparse_super2: backups in s_backup_bgs only
            bgs = self.sb["s_backup_bgs"]
            return group in (int.from_bytes(bgs[:4], "little"), int.from_bytes(bgs[4:], "little"))
        for base in (3, 5, 7):
            g = base
            while g < group:
                g *= base
            if g == group:
                return True
        return False

    cdef uint64_t _inode_table(self, uint32_t group) except? 0:
        cached = self._tables.get(group)
        if cached is not None:
            return cached
        cdef uint64_t per_block = self.block_size // self.desc_size
        cdef uint64_t mg = group // per_block, blk
        if (self.incompat & C.EXT2_FEATURE_INCOMPAT_META_BG) and mg >= self.first_meta_bg:
            first = mg * per_block
            blk = (self.first_data_block + first * <uint64_t>self.blocks_per_group
                   + (1 if self._has_super(first) else 0))
        else:
            blk = self.first_data_block + 1 + mg
        G = C.EXT4_GROUP_DESC
        pos = blk * self.block_size + (group % per_block) * self.desc_size
        where = f"group descriptor {group}"
        if blk >= self.blocks_count:
            raise self._err(CorruptImage, where, None, f"descriptor block {blk} is past the end")
        raw = self._bytes(pos, min(self.desc_size, G.size), where)
        table = G.field(raw, "bg_inode_table")
        if self.desc_size >= G.end("bg_inode_table_hi"):
            table |= <uint64_t>G.field(raw, "bg_inode_table_hi") << 32
        if table == 0 or table >= self.blocks_count:
            raise self._err(CorruptImage, where, pos + G.offset("bg_inode_table"),
                            f"inode table at block {table} is outside the filesystem")
        self._tables[group] = table
        return table

    # -- inodes ------------------------------------------------------------------------
    cpdef _Inode inode(self, uint64_t ino):
        cdef _Inode i = self._inodes.get(ino)
        if i is not None:
            return i
        where = f"inode {ino}"
        if ino == 0 or ino > self.inodes_count:
            raise self._err(CorruptImage, where, None,
                            f"inode number outside 1..{self.inodes_count}")
        cdef uint32_t group = (ino - 1) // self.inodes_per_group
        cdef uint64_t table = self._inode_table(group)
        cdef int64_t pos = (table * self.block_size
                            + ((ino - 1) % self.inodes_per_group) * <int64_t>self.inode_size)
        raw = self._bytes(pos, self.inode_size, where)
        I = C.EXT2_INODE
        f = I.unpack(raw)
        i = _Inode()
        i.ino = <uint32_t>ino
        i.raw = raw
        i.disk = self.offset + pos
        i.mode = f["i_mode"]
        i.uid = f["i_uid"] | f["l_i_uid_high"] << 16
        i.gid = f["i_gid"] | f["l_i_gid_high"] << 16
        i.links = f["i_links_count"]
        i.flags = f["i_flags"]
        i.size = f["i_size"] | <uint64_t>f["i_size_high"] << 32
        i.blocks = f["i_blocks"] | <uint64_t>f["l_i_blocks_hi"] << 32
        i.file_acl = f["i_file_acl"] | <uint64_t>f["l_i_file_acl_high"] << 32
        i.i_block = f["i_block"]
        mtime = f["i_mtime"]
        i.mtime = mtime - (1 << 32) if mtime >= 1 << 31 else mtime
        if (self.inode_size >= I_MTIME_EXTRA + 4
                and I_EXTRA + le16(<const uint8_t*>raw + I_EXTRA) >= I_MTIME_EXTRA + 4):
            i.mtime += <int64_t>(le32(<const uint8_t*>raw + I_MTIME_EXTRA) & C.EXT4_EPOCH_MASK) << 32
        if len(self._inodes) >= INODE_CACHE:
            self._inodes.clear()
        self._inodes[ino] = i
        return i

    cpdef bytes inline_data(self, _Inode i):
        """An inline inode's bytes: ``i_block`` then the in-inode ``system.data`` xattr."""
        where = f"inode {i.ino} inline data"
        raw = i.raw
        cdef const uint8_t* r = raw
        cdef Py_ssize_t n = len(raw)
        cdef Py_ssize_t extra = le16(r + I_EXTRA) if n > I_EXTRA + 2 else 0
        cdef Py_ssize_t base = I_EXTRA + extra, pos, end, voff, vsize
        more = b""
        if n > I_EXTRA + 2 and base + 4 <= n and le32(r + base) == C.EXT2_EXT_ATTR_MAGIC:
            first = pos = base + 4
            while pos + XE_SIZE <= n and le32(r + pos) != 0:
                name_len, index = r[pos], r[pos + 1]
                end = pos + XE_SIZE + name_len
                if end > n:
                    raise self._err(CorruptImage, where, i.disk - self.offset + pos,
                                    "an xattr entry runs past the inode")
                if index == C.EXT4_XATTR_INDEX_SYSTEM and raw[pos + XE_SIZE:end] == \
                        C.EXT4_XATTR_SYSTEM_DATA:
                    voff = le16(r + pos + 2)
                    vsize = le32(r + pos + 8)
                    if le32(r + pos + 4) != 0 or first + voff + vsize > n:
                        raise self._err(CorruptImage, where, i.disk - self.offset + pos,
                                        f"system.data value ({vsize} bytes at {voff}) "
                                        "is outside the inode")
                    more = raw[first + voff:first + voff + vsize]
                    break
                pos = (end + 3) & ~3
        return i.i_block + more

    # -- block maps --------------------------------------------------------------------
    cdef bytes _map_block(self, uint64_t block, str where):
        """A block of the file's map, counted against EXT4_MAX_MAP_BLOCKS for this walk."""
        data = self._map.get(block)
        if data is None:
            self._map_reads += 1
            limits.enforce(self._map_reads, "EXT4_MAX_MAP_BLOCKS", self.name, where,
                           block * self.block_size + self.offset, "map blocks read")
            data = self._blocks(block, 1, where)
            self._map[block] = data
        return data

    cdef tuple _extent_run(self, _Inode i, uint64_t lblk):
        """(first block, blocks, physical block, kind) of the run holding ``lblk``."""
        where = f"inode {i.ino} extent tree"
        if lblk >> 32:
            return lblk, 1 << 62, 0, RUN_HOLE    # extents map 32-bit block numbers only
        node = i.i_block
        cdef const uint8_t* p = node
        cdef Py_ssize_t cap = len(node), n, k
        cdef uint32_t depth = le16(p + EH_DEPTH), expect = depth, key = <uint32_t>lblk
        cdef uint64_t bound = 1 << 32, child, start, length
        limits.enforce(depth, "EXT4_MAX_EXTENT_DEPTH", self.name, where,
                       i.disk + I_BLOCK + EH_DEPTH, "extent tree depth")
        cdef int64_t at = i.disk + I_BLOCK
        cdef const uint8_t* q
        cdef int kind
        while True:
            p = node
            n = le16(p + EH_ENTRIES)
            if (le16(p + EH_MAGIC) != EXT_MAGIC or le16(p + EH_DEPTH) != expect
                    or n > le16(p + EH_MAX) or EH_SIZE + n * EXT_ENTRY > cap):
                raise CorruptImage(self.name, where, at,
                                   f"bad extent node header (magic 0x{le16(p + EH_MAGIC):04x}, "
                                   f"depth {le16(p + EH_DEPTH)} where {expect} was due, "
                                   f"{n} entries)")
            k = _last_le(p + EH_SIZE, n, key)
            if k + 1 < n:
                bound = min(bound, le32(p + EH_SIZE + (k + 1) * EXT_ENTRY))
            if k < 0:
                return lblk, max(bound - lblk, 1), 0, RUN_HOLE
            q = p + EH_SIZE + k * EXT_ENTRY
            if expect == 0:
                start = le32(q)
                length = le16(q + EE_LEN)
                kind = RUN_DATA
                if length > INIT_MAX_LEN:
                    length -= INIT_MAX_LEN
                    kind = RUN_UNWRITTEN
                if lblk >= start + length:
                    return lblk, max(bound - lblk, 1), 0, RUN_HOLE
                child = le32(q + EE_START) | <uint64_t>le16(q + EE_START_HI) << 32
                return start, length, child, kind
            child = le32(q + EI_LEAF) | <uint64_t>le16(q + EI_LEAF_HI) << 32
            node = self._map_block(child, where)
            cap = len(node)
            at = self.offset + child * self.block_size
            expect -= 1

    cdef tuple _indirect_run(self, _Inode i, uint64_t lblk, uint64_t want):
        """(lblk, blocks, physical block, kind) of the run from ``lblk`` in the indirect map."""
        where = f"inode {i.ino} block map"
        cdef uint64_t per = self.block_size // 4, span, idx, first, k, limit, node
        cdef const uint8_t* p = i.i_block
        cdef int levels
        cdef uint64_t rel = lblk
        if rel < NDIR_BLOCKS:
            ptrs, idx, limit = i.i_block, rel, NDIR_BLOCKS
        else:
            rel -= NDIR_BLOCKS
            span, levels = per, 1
            while rel >= span:
                rel -= span
                levels += 1
                if levels > 3:
                    return lblk, want, 0, RUN_HOLE       # past the triple-indirect map
                span *= per
            node = le32(p + 4 * (NDIR_BLOCKS + levels - 1))
            while True:
                span //= per        # blocks under each pointer of this node
                if node == 0:
                    return lblk, min(want, span * per - rel), 0, RUN_HOLE
                ptrs = self._map_block(node, where)
                idx = rel // span
                if span == 1:
                    limit = per
                    break
                node = le32(<const uint8_t*>ptrs + 4 * idx)
                rel %= span
        p = ptrs
        first = le32(p + 4 * idx)
        k = 1
        while idx + k < limit and k < want:
            if first == 0:
                if le32(p + 4 * (idx + k)) != 0:
                    break
            elif le32(p + 4 * (idx + k)) != first + k:
                break
            k += 1
        return lblk, k, first, RUN_DATA if first else RUN_HOLE

    cpdef bytes read(self, _Inode i, uint64_t offset, uint64_t length):
        """``length`` bytes of inode ``i`` from ``offset``; holes and unwritten extents are zeros."""
        if i.flags & UNREADABLE_FLAGS:
            raise self._err(UnsupportedFeature, f"inode {i.ino}", i.disk - self.offset,
                            "the file is encrypted (fscrypt): its bytes are ciphertext")
        if length == 0:
            return b""
        if i.flags & C.EXT4_INLINE_DATA_FL:
            data = self.inline_data(i)
            return data[offset:offset + length].ljust(length, b"\0")
        cdef uint64_t bs = self.block_size
        cdef uint64_t lblk = offset // bs, last = (offset + length + bs - 1) // bs
        cdef uint64_t start, count, phys, s, e, skip
        cdef bint extents = i.flags & C.EXT4_EXTENTS_FL
        self._map = {}
        self._map_reads = 0
        pieces = []         # joined once: no zero-filled buffer copied into and out of
        cdef uint64_t done = offset
        while lblk < last:
            if extents:
                start, count, phys, kind = self._extent_run(i, lblk)
            else:
                start, count, phys, kind = self._indirect_run(i, lblk, last - lblk)
            # The run may start before lblk (an extent covering it): skip its head.
            skip = lblk - start
            count -= skip
            if count > last - lblk:
                count = last - lblk
            s = max(lblk * bs, offset)
            e = min((lblk + count) * bs, offset + length)
            if kind == RUN_DATA:
                if s > done:
                    pieces.append(bytes(s - done))
                pieces.append(self._bytes_of(phys + skip, count, s - lblk * bs, e - s, i))
                done = e
            lblk += count
        self._map = {}
        if done < offset + length:
            pieces.append(bytes(offset + length - done))
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    cdef bytes _bytes_of(self, uint64_t phys, uint64_t count, uint64_t skip, uint64_t n,
                         _Inode i):
        where = f"inode {i.ino} data"
        if phys >= self.blocks_count or count > self.blocks_count - phys:
            raise self._err(CorruptImage, where, i.disk - self.offset,
                            f"data blocks {phys}+{count} lie past the filesystem's "
                            f"{self.blocks_count} blocks")
        return self._bytes(phys * self.block_size + skip, n, where)

    # -- directories -------------------------------------------------------------------
    cdef list _regions(self, _Inode d):
        """The directory's bytes as (bytes, [(start, end)]) regions of entries."""
        if d.flags & UNREADABLE_FLAGS:
            raise self._err(UnsupportedFeature, f"directory inode {d.ino}", d.disk - self.offset,
                            "the directory is encrypted (fscrypt): its names are ciphertext")
        where = f"directory inode {d.ino}"
        if d.flags & C.EXT4_INLINE_DATA_FL:
            data = self.inline_data(d)
            head = C.EXT4_INLINE_DATA_DOTDOT_SIZE
            return [(data, head, C.I_BLOCK_SIZE), (data, C.I_BLOCK_SIZE, len(data))]
        limits.enforce(d.size, "EXT4_MAX_DIRECTORY_BYTES", self.name, where,
                       d.disk, "directory bytes")
        bs = self.block_size
        if d.size % bs:
            raise self._err(CorruptImage, where, d.disk - self.offset,
                            f"directory size {d.size} is not a multiple of the block size")
        data = self.read(d, 0, d.size)
        return [(data, pos, pos + bs) for pos in range(0, len(data), bs)]

    cdef list _scan(self, _Inode d):
        """(bytes of each region, the entries of each region) of directory ``d``.

        A path walk looks up one name at a time, so the same directories (the root,
        ``/etc``, ``/usr/lib``) are searched again and again; a directory is read whole,
        so each search would read and parse it anew (a directory of tens of MiB, real
        or hostile, then costs that much per lookup). The scans are kept, most recent
        last, while their directory bytes stay within twice EXT4_MAX_DIRECTORY_BYTES
        (so that a directory at the cap and the small ones under it stay together; the
        entries parsed from them are bounded by the same bytes): the image is read-only,
        so a scan never goes stale.
        """
        cdef uint64_t cost, budget = 2 * limits.EXT4_MAX_DIRECTORY_BYTES
        cached = self._dirs.pop(d.ino, None)
        if cached is not None:
            self._dirs[d.ino] = cached
            return cached[0]
        found = self._scan_uncached(d)
        cost = _scan_cost(found)
        if cost <= budget:
            while self._dirs and self._dirs_bytes + cost > budget:
                _, evicted = self._dirs.pop(next(iter(self._dirs)))
                self._dirs_bytes -= evicted
            self._dirs[d.ino] = (found, cost)
            self._dirs_bytes += cost
        return found

    cdef list _scan_uncached(self, _Inode d):
        cdef bint filetype = self.incompat & C.EXT2_FEATURE_INCOMPAT_FILETYPE
        cdef bint big = self.block_size >= 65536 and not d.flags & C.EXT4_INLINE_DATA_FL
        cdef Py_ssize_t n, bad = 0, start, end, cap
        cdef const uint8_t* p
        found = []
        for data, start, end in self._regions(d):
            if end <= start:
                continue
            p = data
            cap = (end - start) // 8 + 1
            ents = <_Dirent*>malloc(cap * sizeof(_Dirent))
            if ents == NULL:
                raise MemoryError()
            try:
                with nogil:
                    n = _scan_entries(p, start, end, filetype, big, ents, cap, &bad)
                if n < 0:
                    at = d.disk - self.offset if d.flags & C.EXT4_INLINE_DATA_FL else None
                    raise self._err(CorruptImage, f"directory inode {d.ino}", at,
                                    f"impossible entry at byte {bad} of its data")
                found.append((data, [(ents[k].pos, ents[k].ino, ents[k].name_len,
                                       ents[k].file_type) for k in range(n)]))
            finally:
                free(ents)
        return found

    cpdef list entries(self, _Inode d):
        """(name bytes, inode, file_type) of every entry but ``.`` and ``..``."""
        out = []
        for data, ents in self._scan(d):
            for pos, ino, nl, ft in ents:
                out.append((data[pos + DE_SIZE:pos + DE_SIZE + nl], ino, ft))
        return out

    cpdef object find(self, _Inode d, bytes name):
        """The inode ``name`` links to in directory ``d`` (bytes compared), or None."""
        cdef const uint8_t* p
        cdef const uint8_t* key = name
        cdef Py_ssize_t nl = len(name)
        for data, ents in self._scan(d):
            p = data
            for pos, ino, n, ft in ents:
                if n == nl and memcmp(p + <Py_ssize_t>pos + DE_SIZE, key, nl) == 0:
                    return ino
        return None


def _casefold(name: str) -> str:
    """A name as a casefolded ext4 directory compares it (utf8 NFD + casefold)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


class Ext4FileSystem(FileSystem):
    """An ext2, ext3 or ext4 filesystem at ``offset`` (``size`` bytes) of a disk read by ``read``."""

    def __init__(self, read, offset: int, size: int, name: str = "volume") -> None:
        self.volume = Ext4Volume(read, offset, size, name)
        v = self.volume
        self.filesystem = C.blkid_type(v.compat, v.incompat, v.ro_compat, v.sb["s_flags"])
        super().__init__(name, C.EXT2_ROOT_INO)

    def _stat(self, ino: int) -> Stat:
        i = self.volume.inode(ino)
        return Stat(ino, kind_of_mode(i.mode), i.size, i.mode, i.uid, i.gid, i.links, i.mtime)

    def _lookup(self, dir_ino: int, name: str) -> int | None:
        v = self.volume
        d = v.inode(dir_ino)
        if d.flags & C.EXT4_CASEFOLD_FL:
            want = _casefold(name)
            for raw, ino, _ in v.entries(d):
                if _casefold(raw.decode("utf-8", "surrogateescape")) == want:
                    return ino
            return None
        return v.find(d, name.encode("utf-8", "surrogateescape"))

    def _entries(self, dir_ino: int):
        v = self.volume
        for raw, ino, ft in v.entries(v.inode(dir_ino)):
            kind = _FT_KIND.get(ft)
            if kind is None:
                kind = kind_of_mode(v.inode(ino).mode)
            yield DirEntry(raw.decode("utf-8", "surrogateescape"), ino, kind)

    def _readlink(self, ino: int) -> str:
        v = self.volume
        i = v.inode(ino)
        where = f"symlink inode {ino}"
        if i.size > v.block_size:
            raise CorruptImage(self.name, where, i.disk,
                               f"a {i.size}-byte target is longer than a block")
        ea_blocks = (v.block_size << v.sb["s_log_cluster_size"] >> 9) if i.file_acl else 0
        if i.flags & C.EXT4_ENCRYPT_FL:
            raise UnsupportedFeature(self.name, where, i.disk,
                                     "the symlink is encrypted (fscrypt)")
        if not i.flags & C.EXT4_INLINE_DATA_FL and i.blocks - ea_blocks == 0:
            if i.size > C.I_BLOCK_SIZE:
                raise CorruptImage(self.name, where, i.disk,
                                   f"a fast symlink of {i.size} bytes does not fit i_block")
            target = i.i_block[:i.size]
        else:
            target = v.read(i, 0, i.size)
        return target.decode("utf-8", "surrogateescape")

    def _read(self, ino: int, offset: int, length: int) -> bytes:
        v = self.volume
        return v.read(v.inode(ino), offset, length)

    def journal(self) -> dict | None:
        """The JBD2 journal superblock's facts, or None without an internal journal."""
        v = self.volume
        jino = v.sb["s_journal_inum"]
        if not v.compat & C.EXT3_FEATURE_COMPAT_HAS_JOURNAL or not jino:
            return None
        J = C.JOURNAL_SUPERBLOCK
        i = v.inode(jino)
        if i.size < J.size:
            raise CorruptImage(self.name, f"journal inode {jino}", i.disk,
                               f"a {i.size}-byte journal cannot hold its superblock")
        j = J.unpack(v.read(i, 0, J.size))
        if j["h_magic"] != C.JBD2_MAGIC_NUMBER:
            raise CorruptImage(self.name, J.name, None,
                               f"magic 0x{j['h_magic']:08x} is not 0x{C.JBD2_MAGIC_NUMBER:08x}")
        return {"version": 2 if j["h_blocktype"] == C.JBD2_SUPERBLOCK_V2 else 1,
                "block_size": j["s_blocksize"], "blocks": j["s_maxlen"],
                "sequence": j["s_sequence"], "start": j["s_start"],
                "needs_replay": j["s_start"] != 0}

    def facts(self) -> dict:
        v = self.volume
        sb = v.sb
        state = sb["s_state"]
        recovery = bool(v.incompat & C.EXT3_FEATURE_INCOMPAT_RECOVER)
        text = "clean" if state & C.EXT2_VALID_FS else "not clean"
        if state & C.EXT2_ERROR_FS:
            text += " with errors"
        if recovery:
            text += ", needs journal recovery"
        u = sb["s_uuid"].hex()
        features = []
        for word, table, letter in ((v.compat, C.COMPAT_FEATURES, "C"),
                                    (v.incompat, C.INCOMPAT_FEATURES, "I"),
                                    (v.ro_compat, C.RO_COMPAT_FEATURES, "R")):
            features += [table.get(1 << b, f"FEATURE_{letter}{b}")
                         for b in range(32) if word >> b & 1]
        try:
            journal = self.journal()
        except ImageError as exc:
            journal = {"error": str(exc)}
        return {
            "filesystem": self.filesystem,
            "label": sb["s_volume_name"].split(b"\0", 1)[0].decode("utf-8", "replace"),
            "uuid": f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}" if any(sb["s_uuid"])
                    else None,
            "state": text,
            "dirty": (not state & C.EXT2_VALID_FS) or bool(state & C.EXT2_ERROR_FS) or recovery,
            "block_size": v.block_size,
            "blocks": v.blocks_count,
            # the superblock's count (what df and dumpe2fs show; the kernel keeps it
            # up to date at unmount), its high word only with the 64bit feature
            "free_blocks": sb["s_free_blocks_count"] | (
                sb["s_free_blocks_hi"] << 32 if v.incompat & C.EXT4_FEATURE_INCOMPAT_64BIT
                else 0),
            "inode_size": v.inode_size,
            "inode_count": v.inodes_count,
            "features": features,
            "encrypt": bool(v.incompat & C.EXT4_FEATURE_INCOMPAT_ENCRYPT),
            "casefold": bool(v.incompat & C.EXT4_FEATURE_INCOMPAT_CASEFOLD),
            "last_mounted": sb["s_last_mounted"].split(b"\0", 1)[0].decode("utf-8",
                                                                           "surrogateescape"),
            "revision": f"{sb['s_rev_level']}.{sb['s_minor_rev_level']}",
            "journal": journal,
        }

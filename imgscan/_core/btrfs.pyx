# cython: language_level=3
"""Btrfs volumes, read-only: subvolumes, directories, files by extents, symlinks, facts.

Spec: the btrfs documentation's "On-disk format" and btrfs-progs'
``kernel-shared/ctree.h`` (structures declared in :mod:`imgscan._core.c_btrfs`),
``fs/btrfs/lzo.c`` for the LZO framing. Volumes in the tests are made by
mkfs.btrfs and the kernel, and read back through a loop mount and
``btrfs inspect-internal`` as oracles.

Everything btrfs stores is in copy-on-write B-trees of 17-byte keys
(objectid, type, offset), addressed by *logical* byte numbers that the chunk
tree maps to device offsets. Opening reads the superblock (the valid copy
with the highest generation), the chunks of its ``sys_chunk_array`` (enough
to read the chunk tree), then the chunk tree itself and the root tree, which
holds one ROOT_ITEM per tree: each subvolume is an FS tree of its own. A
file is its INODE_ITEM; a directory's entries are DIR_INDEX items (in
creation order) and DIR_ITEM items (keyed by the name's hash, for lookups);
a file's bytes are EXTENT_DATA items keyed by file offset (inline bytes, or
a range of a disk extent, possibly compressed; gaps are holes).

Only what one device holds is read: SINGLE and DUP chunks (DUP keeps two
copies on the device; the first is read); RAID profiles and multi-device
volumes are refused as :class:`~imgscan.errors.UnsupportedFeature` naming
them, never guessed. Inode handles given to :class:`FileSystem` are the
inode numbers of the opened subvolume; an inode of another subvolume (one
nested below it) is ``tree << 64 | inode``.

Every tree block is checked before use: its checksum, that it is where it
says it is, its fsid, its level (one less than its parent's, at most
``limits.BTRFS_MAX_TREE_LEVEL``), its keys in increasing order and its items
inside the block. One lookup or listing visits at most
``limits.BTRFS_MAX_NODES_VISITED`` blocks, so a tree whose nodes share
children cannot blow up. Offsets in errors are disk offsets.

The reader is one module of about 870 lines, over the house's 800: the volume
(superblock, chunk map, checked tree walk) and a subvolume's files are one
object whose parts call each other on every lookup. What stands apart does:
the structures (:mod:`imgscan._core.c_btrfs`) and the LZO1X decoder (``lzo.pyx``).
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t

import bisect
import hashlib

import xxhash

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage, UnsupportedFeature

from .binary cimport le16, le32, le64
from .crc32c cimport crc32c_update

from . import c_btrfs as C
from .fsapi import DirEntry, FileNotFound, FileSystem, Stat, kind_of_mode
from .inflate import StreamError, zlib_bounded, zstd_bounded
from .lzo import lzo1x_decompress

cdef Py_ssize_t HEADER_SIZE = C.BTRFS_HEADER.size
cdef Py_ssize_t ITEM_SIZE = C.BTRFS_ITEM.size
cdef Py_ssize_t KEY_PTR_SIZE = C.BTRFS_KEY_PTR.size
cdef Py_ssize_t CSUM_SIZE = C.BTRFS_CSUM_SIZE
cdef Py_ssize_t ITEM_DATA_OFFSET = C.BTRFS_ITEM.offset("offset")
cdef Py_ssize_t KEY_PTR_BLOCKPTR = C.BTRFS_KEY_PTR.offset("blockptr")

MAX_KEY = (1 << 64) - 1
_U64 = (1 << 64) - 1
#: The header fields checked on every block.
_H_BYTENR = C.BTRFS_HEADER.offset("bytenr")
_H_FSID = C.BTRFS_HEADER.offset("fsid")
cdef Py_ssize_t _H_NRITEMS = C.BTRFS_HEADER.offset("nritems")
cdef Py_ssize_t _H_LEVEL = C.BTRFS_HEADER.offset("level")
#: The node/sector sizes btrfs allows (``BTRFS_MAX_METADATA_BLOCKSIZE`` is 64 KiB).
MIN_BLOCK_SIZE = 4096
MAX_BLOCK_SIZE = 65536
#: Decoded stat()s and tree blocks kept, so repeated path walks cost no re-reads.
_CACHE_ENTRIES = 4096
_NODE_CACHE_BYTES = 32 * 1024 * 1024

_DIR_TYPES = {C.BTRFS_FT_DIR: "dir", C.BTRFS_FT_REG_FILE: "file", C.BTRFS_FT_SYMLINK: "symlink"}


# --------------------------------------------------------------------------
# nogil helpers on one tree block
# --------------------------------------------------------------------------

cdef inline int _key_cmp(const uint8_t* k, uint64_t oid, uint8_t typ, uint64_t off) noexcept nogil:
    cdef uint64_t a = le64(k)
    if a != oid:
        return -1 if a < oid else 1
    if k[8] != typ:
        return -1 if k[8] < typ else 1
    a = le64(k + 9)
    if a != off:
        return -1 if a < off else 1
    return 0


cdef inline int _keys_ordered(const uint8_t* a, const uint8_t* b) noexcept nogil:
    """1 when key ``a`` < key ``b``."""
    return _key_cmp(a, le64(b), b[8], le64(b + 9)) < 0


cdef Py_ssize_t _bad_slot(const uint8_t* p, Py_ssize_t nodesize, Py_ssize_t nritems,
                          int leaf) noexcept nogil:
    """-1 when the block's item table is sound, else the first bad slot (nritems for the count)."""
    cdef Py_ssize_t stride = ITEM_SIZE if leaf else KEY_PTR_SIZE
    cdef Py_ssize_t i, start, size, table_end
    cdef const uint8_t* e
    if nritems > (nodesize - HEADER_SIZE) // stride or (nritems == 0 and not leaf):
        return nritems
    table_end = nritems * stride
    for i in range(nritems):
        e = p + HEADER_SIZE + i * stride
        if i and not _keys_ordered(e - stride, e):
            return i
        if leaf:
            start = le32(e + ITEM_DATA_OFFSET)
            size = le32(e + ITEM_DATA_OFFSET + 4)
            if start < table_end or start + size > nodesize - HEADER_SIZE:
                return i
    return -1


cdef Py_ssize_t _slot(const uint8_t* p, Py_ssize_t nritems, Py_ssize_t stride, uint64_t oid,
                      uint8_t typ, uint64_t off) noexcept nogil:
    """The last slot whose key is <= the given key, or -1."""
    cdef Py_ssize_t lo = 0, hi = nritems, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if _key_cmp(p + HEADER_SIZE + mid * stride, oid, typ, off) <= 0:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


cdef Py_ssize_t DIR_ITEM_SIZE = C.BTRFS_DIR_ITEM.size
cdef Py_ssize_t DIR_DATA_LEN = C.BTRFS_DIR_ITEM.offset("data_len")
cdef Py_ssize_t DIR_NAME_LEN = C.BTRFS_DIR_ITEM.offset("name_len")
cdef Py_ssize_t DIR_TYPE = C.BTRFS_DIR_ITEM.offset("type")


def _parse_dir_items(const uint8_t[::1] data not None):
    """([(location key, type, name bytes)], -1) of the dir items packed in one item, or
    (items so far, offset of the first one that does not fit)."""
    cdef Py_ssize_t pos = 0, n = data.shape[0], name_len, end
    cdef const uint8_t* p
    items = []
    while pos < n:
        if pos + DIR_ITEM_SIZE > n:
            return items, pos
        p = &data[pos]
        name_len = le16(p + DIR_NAME_LEN)
        end = pos + DIR_ITEM_SIZE + name_len + le16(p + DIR_DATA_LEN)
        if end > n:
            return items, pos
        items.append(((le64(p), p[8], le64(p + 9)), p[DIR_TYPE],
                      (<const char*>p)[DIR_ITEM_SIZE:DIR_ITEM_SIZE + name_len]))
        pos = end
    return items, -1


def name_hash(const uint8_t[::1] name not None):
    """``btrfs_name_hash``: the DIR_ITEM key offset of ``name``."""
    cdef uint8_t empty = 0
    return crc32c_update(C.BTRFS_NAME_HASH_SEED, &name[0] if name.shape[0] else &empty,
                         name.shape[0])


def _crc32c_sum(const uint8_t[::1] block not None):
    cdef uint32_t crc = crc32c_update(0xFFFFFFFF, &block[CSUM_SIZE], block.shape[0] - CSUM_SIZE)
    return (crc ^ 0xFFFFFFFF).to_bytes(4, "little")


def block_checksum(int csum_type, data):
    """The checksum of a superblock or tree block as stored in its first 32 bytes (prefix)."""
    if csum_type == C.BTRFS_CSUM_TYPE_CRC32:
        return _crc32c_sum(data)
    if csum_type == C.BTRFS_CSUM_TYPE_SHA256:
        return hashlib.sha256(data[CSUM_SIZE:]).digest()
    if csum_type == C.BTRFS_CSUM_TYPE_BLAKE2:
        return hashlib.blake2b(data[CSUM_SIZE:], digest_size=32).digest()
    return xxhash.xxh64(data[CSUM_SIZE:]).intdigest().to_bytes(8, "little")


def _name(raw):
    return bytes(raw).decode("utf-8", "surrogateescape")


def _key(data, base=0):
    return (int.from_bytes(data[base:base + 8], "little"), data[base + 8],
            int.from_bytes(data[base + 9:base + 17], "little"))


def profile_name(flags):
    """The profile of a chunk's type flags, as ``btrfs filesystem df`` names it."""
    for bit, pname in C.PROFILE_NAMES.items():
        if flags & bit:
            return pname
    return "single"


class _Shared:
    """What every subvolume of one volume shares: geometry, chunks, root tree, caches."""

    def __init__(self):
        self.nodes = {}
        self.node_bytes = 0


class BtrfsFileSystem(FileSystem):
    """A Btrfs volume at ``offset`` (``size`` bytes) of a disk read by ``read``.

    Its root is the default subvolume's root directory unless ``subvolume``
    (an id, or a path such as ``"@"`` or ``"/@/home"``) names another.
    """

    filesystem = "btrfs"

    def __init__(self, read, offset, size, name="volume", *, subvolume=None, _shared=None):
        self._readfn = read
        self.name = name
        self.offset = offset
        self.size = size
        self._stats = {}
        self._last_extent = None
        if _shared is None:
            _shared = _Shared()
            self._s = _shared
            self._load_superblock()
            self._load_chunks()
        else:
            self._s = _shared
        self.default_subvolume = self._default_subvolume()
        if subvolume is None:
            tree = self.default_subvolume
        elif isinstance(subvolume, int):
            tree = subvolume
        else:
            tree = self._subvolume_by_path(subvolume)
        self.tree = tree
        self._tree_root = self._fs_root(tree)
        super().__init__(name, self._tree_root[2])

    # -- bounded device reads ----------------------------------------------------------
    def _dev_read(self, physical, length, structure):
        if physical < 0 or physical + length > self.size:
            raise TruncatedImage(self.name, structure, self.offset + physical,
                                 f"{length} bytes at device offset {physical} lie past the "
                                 f"volume's {self.size} bytes")
        data = self._readfn(self.offset + physical, length)
        if len(data) != length:
            raise TruncatedImage(self.name, structure, self.offset + physical,
                                 f"only {len(data)} of {length} bytes could be read")
        return data

    # -- superblock ----------------------------------------------------------------
    def _load_superblock(self):
        S = C.BTRFS_SUPER_BLOCK
        best = None
        problem = None
        for mirror, where in enumerate(C.BTRFS_SUPER_MIRROR_OFFSETS):
            if where + C.BTRFS_SUPER_INFO_SIZE > self.size:
                break
            raw = self._dev_read(where, C.BTRFS_SUPER_INFO_SIZE, "btrfs_super_block")
            if raw[S.offset("magic"):S.end("magic")] != C.BTRFS_MAGIC:
                problem = problem or (where, "no btrfs magic")
                continue
            sb = S.unpack(raw)
            if sb["bytenr"] != where:
                problem = problem or (where, f"bytenr {sb['bytenr']} is not its own offset")
                continue
            csum_type = sb["csum_type"]
            if csum_type not in C.CSUM_NAMES:
                raise UnsupportedFeature(self.name, "btrfs_super_block", self.offset + where,
                                         f"unknown csum_type {csum_type}")
            want = block_checksum(csum_type, raw)
            if raw[:len(want)] != want:
                problem = problem or (where, "checksum mismatch")
                continue
            if best is None or sb["generation"] > best[1]["generation"]:
                best = (where, sb, raw)
        if best is None:
            where, why = problem or (C.BTRFS_SUPER_INFO_OFFSET, "volume too small")
            raise CorruptImage(self.name, "btrfs_super_block", self.offset + where,
                               f"no valid superblock: {why}")
        where, sb, raw = best
        s = self._s
        s.sb, s.sb_offset, s.csum_type = sb, where, sb["csum_type"]
        at = self.offset + where
        for field in ("sectorsize", "nodesize"):
            v = sb[field]
            if v < MIN_BLOCK_SIZE or v > MAX_BLOCK_SIZE or v & (v - 1):
                raise CorruptImage(self.name, "btrfs_super_block",
                                   at + S.offset(field), f"{field} {v} is not a power of two "
                                   f"from {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE}")
        s.nodesize, s.sectorsize = sb["nodesize"], sb["sectorsize"]
        if sb["incompat_flags"] & C.BTRFS_FEATURE_INCOMPAT_METADATA_UUID:
            s.meta_fsid = sb["metadata_uuid"]
        else:
            s.meta_fsid = sb["fsid"]
        s.devid = C.BTRFS_DEV_ITEM.field(sb["dev_item"], "devid")
        s.sys_array = raw[S.offset("sys_chunk_array"):S.end("sys_chunk_array")]

    # -- chunks: logical -> physical ----------------------------------------------------
    def _add_chunk(self, logical, data, base, structure, at):
        """The chunk at ``data[base:]`` (its stripes included); returns its length in bytes."""
        CH, ST = C.BTRFS_CHUNK, C.BTRFS_STRIPE
        s = self._s
        if base + CH.size > len(data):
            raise CorruptImage(self.name, structure, at, "chunk item is cut short")
        ch = CH.unpack(data, base)
        n = ch["num_stripes"]
        size = CH.size + n * ST.size
        if n == 0 or base + size > len(data):
            raise CorruptImage(self.name, structure, at,
                               f"num_stripes {n} does not fit the chunk item")
        kind = ch["type"]
        profile = kind & C.BTRFS_BLOCK_GROUP_PROFILE_MASK
        if profile & ~C.READABLE_PROFILES:
            raise UnsupportedFeature(self.name, structure, at,
                                     f"chunk at logical {logical} uses the "
                                     f"{profile_name(profile)} profile (more than one device)")
        stripe = ST.unpack(data, base + CH.size)
        if stripe["devid"] != s.devid:
            raise UnsupportedFeature(self.name, structure, at,
                                     f"chunk at logical {logical} lies on device "
                                     f"{stripe['devid']}: a multi-device volume")
        if ch["length"] == 0 or logical + ch["length"] > _U64:
            raise CorruptImage(self.name, structure, at, f"chunk length {ch['length']} is invalid")
        if logical in s.chunk_index:
            return size
        limits.enforce(len(s.chunks) + 1, "BTRFS_MAX_CHUNKS", self.name, structure, at,
                       "chunks")
        i = bisect.bisect_left(s.chunk_starts, logical)
        if (i > 0 and s.chunks[i - 1][0] + s.chunks[i - 1][1] > logical) or (
                i < len(s.chunks) and logical + ch["length"] > s.chunks[i][0]):
            raise CorruptImage(self.name, structure, at,
                               f"chunk at logical {logical} overlaps another")
        s.chunk_starts.insert(i, logical)
        s.chunks.insert(i, (logical, ch["length"], stripe["offset"], kind))
        s.chunk_index.add(logical)
        return size

    def _load_chunks(self):
        s = self._s
        s.chunks, s.chunk_starts, s.chunk_index = [], [], set()
        sb = s.sb
        n = sb["sys_chunk_array_size"]
        base_at = self.offset + s.sb_offset + C.BTRFS_SUPER_BLOCK.offset("sys_chunk_array")
        if n > C.BTRFS_SYSTEM_CHUNK_ARRAY_SIZE:
            raise CorruptImage(self.name, "sys_chunk_array", base_at,
                               f"sys_chunk_array_size {n} exceeds "
                               f"{C.BTRFS_SYSTEM_CHUNK_ARRAY_SIZE}")
        arr = s.sys_array[:n]
        pos = 0
        K = C.BTRFS_DISK_KEY
        while pos < n:
            if pos + K.size > n:
                raise CorruptImage(self.name, "sys_chunk_array", base_at + pos, "key cut short")
            oid, typ, logical = _key(arr, pos)
            if typ != C.BTRFS_CHUNK_ITEM_KEY:
                raise CorruptImage(self.name, "sys_chunk_array", base_at + pos,
                                   f"key type {typ} is not CHUNK_ITEM")
            pos += K.size
            pos += self._add_chunk(logical, arr, pos, "sys_chunk_array", base_at + pos)
        root, level = sb["chunk_root"], sb["chunk_root_level"]
        lo = (C.BTRFS_FIRST_CHUNK_TREE_OBJECTID, C.BTRFS_CHUNK_ITEM_KEY, 0)
        hi = (C.BTRFS_FIRST_CHUNK_TREE_OBJECTID, C.BTRFS_CHUNK_ITEM_KEY, MAX_KEY)
        for key, data, at in self._items(root, level, lo, hi, "chunk tree"):
            self._add_chunk(key[2], data, 0, "chunk tree CHUNK_ITEM", at)
        if sb["num_devices"] != 1:
            raise UnsupportedFeature(self.name, "btrfs_super_block",
                                     self.offset + s.sb_offset
                                     + C.BTRFS_SUPER_BLOCK.offset("num_devices"),
                                     f"num_devices {sb['num_devices']}: a multi-device volume")

    def _map(self, logical, structure):
        """(physical offset, bytes left in its chunk) of ``logical``."""
        s = self._s
        i = bisect.bisect_right(s.chunk_starts, logical) - 1
        if i >= 0:
            start, length, physical, _ = s.chunks[i]
            if logical < start + length:
                return physical + (logical - start), start + length - logical
        raise CorruptImage(self.name, structure, None,
                           f"logical address {logical} lies in no chunk")

    def _logical_read(self, logical, length, structure):
        parts = []
        while length > 0:
            physical, left = self._map(logical, structure)
            n = min(left, length)
            parts.append(self._dev_read(physical, n, structure))
            logical += n
            length -= n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # -- tree blocks ---------------------------------------------------------------
    def _node(self, bytenr, level, structure):
        s = self._s
        node = s.nodes.get(bytenr)
        if node is None:
            physical, left = self._map(bytenr, structure)
            at = self.offset + physical
            if left < s.nodesize:
                raise CorruptImage(self.name, structure, at,
                                   f"tree block at logical {bytenr} crosses its chunk's end")
            node = self._dev_read(physical, s.nodesize, structure)
            want = block_checksum(s.csum_type, node)
            if node[:len(want)] != want:
                raise CorruptImage(self.name, structure, at,
                                   f"tree block at logical {bytenr}: checksum mismatch")
            h = C.BTRFS_HEADER
            if h.field(node, "bytenr") != bytenr:
                raise CorruptImage(self.name, structure, at + _H_BYTENR,
                                   f"tree block at logical {bytenr} says it is at "
                                   f"{h.field(node, 'bytenr')}")
            if node[_H_FSID:_H_FSID + 16] != s.meta_fsid:
                raise CorruptImage(self.name, structure, at + _H_FSID,
                                   "tree block belongs to another filesystem")
            if s.node_bytes + s.nodesize > _NODE_CACHE_BYTES:
                s.nodes.clear()
                s.node_bytes = 0
            s.nodes[bytenr] = node
            s.node_bytes += s.nodesize
        cdef const uint8_t[::1] v = node
        cdef int got = v[_H_LEVEL]
        cdef Py_ssize_t nritems = le32(&v[_H_NRITEMS])
        physical, _ = self._map(bytenr, structure)
        at = self.offset + physical
        if got != level:
            raise CorruptImage(self.name, structure, at + _H_LEVEL,
                               f"tree block at logical {bytenr} has level {got}, not {level}")
        cdef Py_ssize_t bad
        cdef int leaf = got == 0
        with nogil:
            bad = _bad_slot(&v[0], v.shape[0], nritems, leaf)
        if bad == nritems:
            raise CorruptImage(self.name, structure, at + _H_NRITEMS,
                               f"tree block at logical {bytenr}: nritems {nritems} does not "
                               "fit the block")
        if bad >= 0:
            raise CorruptImage(self.name, structure, at + HEADER_SIZE + bad * (
                ITEM_SIZE if level == 0 else KEY_PTR_SIZE),
                f"tree block at logical {bytenr}: item {bad} of {nritems} is out of "
                "order or outside the block")
        return node, nritems, at

    def _items(self, root, level, lo, hi, structure, prior=False):
        """Yield (key, data, disk offset) of the items with lo <= key <= hi of a tree.

        With ``prior`` the last item below ``lo`` comes first, when there is one
        (a file extent that starts before an offset). Blocks visited are capped.
        """
        limits.enforce(level, "BTRFS_MAX_TREE_LEVEL", self.name, structure, None,
                       "tree level")
        if level >= C.BTRFS_MAX_LEVEL:
            raise CorruptImage(self.name, structure, None, f"tree level {level} is too deep")
        cdef const uint8_t[::1] v
        cdef Py_ssize_t i, start, n, slot
        cdef const uint8_t* e
        cdef uint64_t lo0 = lo[0], lo2 = lo[2]
        cdef uint8_t lo1 = lo[1]
        visited = 0
        stack = [(root, level)]
        while stack:
            bytenr, lvl = stack.pop()
            visited += 1
            limits.enforce(visited, "BTRFS_MAX_NODES_VISITED", self.name, structure, None,
                           "tree blocks visited")
            node, n, at = self._node(bytenr, lvl, structure)
            v = node
            if lvl:
                slot = _slot(&v[0], n, KEY_PTR_SIZE, lo0, lo1, lo2)
                start = slot if slot > 0 else 0
                children = []
                for i in range(start, n):
                    e = &v[0] + HEADER_SIZE + i * KEY_PTR_SIZE
                    if i > start and _key_cmp(e, hi[0], hi[1], hi[2]) > 0:
                        break
                    children.append((le64(e + KEY_PTR_BLOCKPTR), lvl - 1))
                children.reverse()
                stack.extend(children)
                continue
            slot = _slot(&v[0], n, ITEM_SIZE, lo0, lo1, lo2)
            if slot < 0:
                start = 0
            elif prior or _key_cmp(&v[0] + HEADER_SIZE + slot * ITEM_SIZE, lo0, lo1, lo2) == 0:
                start = slot
            else:
                start = slot + 1
            prior = False
            for i in range(start, n):
                e = &v[0] + HEADER_SIZE + i * ITEM_SIZE
                if _key_cmp(e, hi[0], hi[1], hi[2]) > 0:
                    return
                doff = HEADER_SIZE + le32(e + ITEM_DATA_OFFSET)
                dlen = le32(e + ITEM_DATA_OFFSET + 4)
                yield ((le64(e), e[8], le64(e + 9)), node[doff:doff + dlen], at + doff)

    def _first(self, root, level, lo, hi, structure):
        for item in self._items(root, level, lo, hi, structure):
            return item
        return None

    # -- the root tree: subvolumes -----------------------------------------------------
    def _root_tree(self):
        sb = self._s.sb
        return sb["root"], sb["root_level"]

    def _fs_root(self, tree):
        """(bytenr, level, root_dirid) of the FS tree ``tree``."""
        cache = self._s.__dict__.setdefault("roots", {})
        if tree in cache:
            return cache[tree]
        root, level = self._root_tree()
        found = None
        for item in self._items(root, level, (tree, C.BTRFS_ROOT_ITEM_KEY, 0),
                                (tree, C.BTRFS_ROOT_ITEM_KEY, MAX_KEY), "root tree"):
            found = item
        if found is None or not (tree == C.BTRFS_FS_TREE_OBJECTID
                                 or C.BTRFS_FIRST_FREE_OBJECTID <= tree
                                 <= C.BTRFS_LAST_FREE_OBJECTID):
            raise FileNotFound(self.name, "root tree", None, f"no subvolume {tree}")
        _, data, at = found
        R = C.BTRFS_ROOT_ITEM
        if len(data) < R.size:
            raise CorruptImage(self.name, f"ROOT_ITEM of tree {tree}", at,
                               f"{len(data)} bytes, fewer than {R.size}")
        r = R.unpack(data)
        result = (r["bytenr"], r["level"], r["root_dirid"])
        cache[tree] = result
        return result

    def _default_subvolume(self):
        root, level = self._root_tree()
        dirid = self._s.sb["root_dir_objectid"]
        tree = C.BTRFS_FS_TREE_OBJECTID
        h = name_hash(C.DEFAULT_SUBVOLUME_NAME)
        for _key_, data, at in self._items(root, level, (dirid, C.BTRFS_DIR_ITEM_KEY, h),
                                           (dirid, C.BTRFS_DIR_ITEM_KEY, h), "root tree"):
            for loc, _typ, name in self._dir_items(data, at, "root tree DIR_ITEM"):
                if name == C.DEFAULT_SUBVOLUME_NAME:
                    tree = loc[0]
        return tree

    def _backrefs(self):
        """(subvolume id, parent id, dirid in parent, name) of every subvolume but the top."""
        root, level = self._root_tree()
        out = []
        Rf = C.BTRFS_ROOT_REF
        for key, data, at in self._items(root, level,
                                         (C.BTRFS_FIRST_FREE_OBJECTID, 0, 0),
                                         (C.BTRFS_LAST_FREE_OBJECTID, 255, MAX_KEY),
                                         "root tree"):
            if key[1] != C.BTRFS_ROOT_BACKREF_KEY:
                continue
            limits.enforce(len(out) + 1, "BTRFS_MAX_SUBVOLUMES", self.name, "root tree", at,
                           "subvolumes")
            if len(data) < Rf.size or Rf.size + Rf.field(data, "name_len") > len(data):
                raise CorruptImage(self.name, "ROOT_BACKREF", at, "name lies outside the item")
            r = Rf.unpack(data)
            out.append((key[0], key[2], r["dirid"], _name(data[Rf.size:Rf.size
                                                               + r["name_len"]])))
        return out

    def subvolumes(self):
        """(id, path) of every subvolume, the top-level one (5, "/") first; paths from the top."""
        refs = {sub: (parent, dirid, name) for sub, parent, dirid, name in self._backrefs()}
        paths = {C.BTRFS_FS_TREE_OBJECTID: ""}
        result = [(C.BTRFS_FS_TREE_OBJECTID, "/")]
        for sub in sorted(refs):
            chain = []                      # sub, its parent, ... up to a known path
            up = sub
            while up not in paths:
                if up not in refs or len(chain) > len(refs):
                    raise CorruptImage(self.name, "ROOT_BACKREF", None,
                                       f"subvolume {sub} has no path to the top level")
                chain.append(up)
                up = refs[up][0]
            for down in reversed(chain):
                parent, dirid, name = refs[down]
                paths[down] = f"{paths[parent]}{self._dir_path(parent, dirid)}/{name}"
            result.append((sub, paths[sub]))
        return result

    def _dir_path(self, tree, dirid):
        """The path of directory ``dirid`` inside FS tree ``tree`` ("" for its root)."""
        root, level, top = self._fs_root(tree)
        parts = []
        ino = dirid
        while ino != top:
            limits.enforce(len(parts) + 1, "FS_MAX_PATH_COMPONENTS", self.name,
                           f"INODE_REF of {ino}", None, "path components walked")
            item = self._first(root, level, (ino, C.BTRFS_INODE_REF_KEY, 0),
                               (ino, C.BTRFS_INODE_REF_KEY, MAX_KEY), f"tree {tree}")
            if item is None:
                raise CorruptImage(self.name, f"INODE_REF of {ino} in tree {tree}", None,
                                   "missing")
            key, data, at = item
            IR = C.BTRFS_INODE_REF
            if len(data) < IR.size or IR.size + IR.field(data, "name_len") > len(data):
                raise CorruptImage(self.name, "INODE_REF", at, "name lies outside the item")
            parts.append(_name(data[IR.size:IR.size + IR.field(data, "name_len")]))
            ino = key[2]
        return "".join("/" + p for p in reversed(parts))

    def _subvolume_by_path(self, path):
        want = "/" + "/".join(p for p in path.split("/") if p)
        for sub, p in self.subvolumes():
            if p == want:
                return sub
        raise FileNotFound(self.name, "root tree", None, f"no subvolume {path!r}")

    def open_subvolume(self, subvolume):
        """The same volume with ``subvolume`` (an id or a path from the top) as its root."""
        return BtrfsFileSystem(self._readfn, self.offset, self.size, self.name,
                               subvolume=subvolume, _shared=self._s)

    # -- inodes --------------------------------------------------------------------
    def _where(self, handle):
        """(tree, bytenr, level, inode) of an inode handle."""
        tree = handle >> 64 or self.tree
        ino = handle & _U64
        root, level, _ = self._tree_root if tree == self.tree else self._fs_root(tree)
        return tree, root, level, ino

    def _handle(self, tree, ino):
        return ino if tree == self.tree else (tree << 64) | ino

    def _stat(self, handle):
        st = self._stats.get(handle)
        if st is not None:
            return st
        tree, root, level, ino = self._where(handle)
        if ino == C.BTRFS_EMPTY_SUBVOL_DIR_OBJECTID:
            return Stat(ino, "dir", 0, 0o40755, nlink=1)
        item = self._first(root, level, (ino, C.BTRFS_INODE_ITEM_KEY, 0),
                           (ino, C.BTRFS_INODE_ITEM_KEY, MAX_KEY), f"tree {tree}")
        if item is None:
            raise CorruptImage(self.name, f"INODE_ITEM {ino} of tree {tree}", None, "missing")
        _, data, at = item
        I = C.BTRFS_INODE_ITEM
        if len(data) < I.size:
            raise CorruptImage(self.name, f"INODE_ITEM {ino}", at, "item is cut short")
        r = I.unpack(data)
        mode = r["mode"]
        st = Stat(ino, kind_of_mode(mode), r["size"], mode, r["uid"], r["gid"], r["nlink"],
                  C.BTRFS_TIMESPEC.field(r["mtime"], "sec"))
        if len(self._stats) >= _CACHE_ENTRIES:
            self._stats.clear()
        self._stats[handle] = st
        return st

    def _dir_items(self, data, at, structure):
        """(location key, type, name bytes) of each dir item packed in one item."""
        items, bad = _parse_dir_items(data)
        if bad >= 0:
            raise CorruptImage(self.name, structure, at + bad,
                               "dir item's name and data lie outside the item")
        return items

    def _entry(self, tree, dir_ino, name, loc, typ):
        """(handle, kind) the entry ``name`` of directory ``dir_ino`` of tree ``tree`` points at.

        An entry naming a subvolume leads to its root only when the root tree has the
        matching ROOT_REF; a snapshot's copy of such an entry has none and shows, as
        the kernel shows it, an empty directory (BTRFS_EMPTY_SUBVOL_DIR_OBJECTID).
        """
        if loc[1] == C.BTRFS_ROOT_ITEM_KEY:
            sub = loc[0]
            if self._root_ref(tree, sub) == (dir_ino, name):
                return self._handle(sub, self._fs_root(sub)[2]), "dir"
            return self._handle(tree, C.BTRFS_EMPTY_SUBVOL_DIR_OBJECTID), "dir"
        return self._handle(tree, loc[0]), _DIR_TYPES.get(typ, "other")

    def _root_ref(self, parent, sub):
        """(dirid, name bytes) of the ROOT_REF linking subvolume ``sub`` into ``parent``."""
        root, level = self._root_tree()
        item = self._first(root, level, (parent, C.BTRFS_ROOT_REF_KEY, sub),
                           (parent, C.BTRFS_ROOT_REF_KEY, sub), "root tree")
        if item is None:
            return None
        _, data, at = item
        Rf = C.BTRFS_ROOT_REF
        if len(data) < Rf.size or Rf.size + Rf.field(data, "name_len") > len(data):
            raise CorruptImage(self.name, "ROOT_REF", at, "name lies outside the item")
        return Rf.field(data, "dirid"), bytes(data[Rf.size:Rf.size + Rf.field(data, "name_len")])

    def _lookup(self, handle, name):
        tree, root, level, ino = self._where(handle)
        raw = name.encode("utf-8", "surrogateescape")
        h = name_hash(raw)
        for _, data, at in self._items(root, level, (ino, C.BTRFS_DIR_ITEM_KEY, h),
                                       (ino, C.BTRFS_DIR_ITEM_KEY, h), f"tree {tree}"):
            for loc, typ, got in self._dir_items(data, at, f"DIR_ITEM of {ino}"):
                if got == raw:
                    return self._entry(tree, ino, raw, loc, typ)[0]
        return None

    def _entries(self, handle):
        tree, root, level, ino = self._where(handle)
        for _, data, at in self._items(root, level, (ino, C.BTRFS_DIR_INDEX_KEY, 0),
                                       (ino, C.BTRFS_DIR_INDEX_KEY, MAX_KEY), f"tree {tree}"):
            for loc, typ, raw in self._dir_items(data, at, f"DIR_INDEX of {ino}"):
                child, kind = self._entry(tree, ino, raw, loc, typ)
                yield DirEntry(_name(raw), child, kind)

    # -- file data -----------------------------------------------------------------
    def _readlink(self, handle):
        st = self._stat(handle)
        limits.enforce(st.size, "BTRFS_MAX_INLINE_EXTENT", self.name, f"symlink {st.ino}",
                       None, "target bytes")
        return _name(self._read(handle, 0, st.size))

    def _decompress(self, kind, data, ram_bytes, structure, at):
        """``ram_bytes`` bytes out of a compressed extent (zero-filled when the stream is short)."""
        limits.enforce(ram_bytes, "BTRFS_MAX_DECOMPRESSED_EXTENT", self.name, structure, at,
                       "decompressed bytes")
        try:
            if kind == C.BTRFS_COMPRESS_ZLIB:
                import zlib
                out, more = zlib_bounded(zlib.decompressobj(), data, ram_bytes)
            elif kind == C.BTRFS_COMPRESS_ZSTD:
                out, more = zstd_bounded(data, ram_bytes)
            elif kind == C.BTRFS_COMPRESS_LZO:
                out, more = self._lzo(data, ram_bytes, structure, at), False
            else:
                raise UnsupportedFeature(self.name, structure, at,
                                         f"compression type {kind}")
        except (StreamError, ValueError) as exc:
            raise CorruptImage(self.name, structure, at,
                               f"{C.COMPRESSION_NAMES.get(kind)}: {exc}") from None
        if more:
            raise CorruptImage(self.name, structure, at,
                               f"{C.COMPRESSION_NAMES[kind]} stream inflates past its "
                               f"ram_bytes {ram_bytes} (a compression bomb)")
        return out if len(out) == ram_bytes else out + bytes(ram_bytes - len(out))

    def _lzo(self, data, limit, structure, at):
        """btrfs's LZO framing: total length, then (length, LZO1X segment) per sector."""
        L = C.BTRFS_LZO_LEN_SIZE
        sector = self._s.sectorsize
        if len(data) < L:
            raise ValueError("no total length")
        total = int.from_bytes(data[:L], "little")
        if total > len(data) or total < L:
            raise ValueError(f"total length {total} does not fit {len(data)} bytes")
        out = []
        got = 0
        pos = L
        while pos < total and got < limit:
            if sector - pos % sector < L:
                pos += sector - pos % sector
                continue
            if pos + L > total:
                raise ValueError(f"segment header at {pos} is cut short")
            seg = int.from_bytes(data[pos:pos + L], "little")
            pos += L
            if seg > total - pos:
                raise ValueError(f"segment of {seg} bytes at {pos} runs past the stream")
            piece = lzo1x_decompress(data[pos:pos + seg], min(sector, limit - got))
            out.append(piece)
            got += len(piece)
            pos += seg
            if sector - pos % sector < L:
                pos += sector - pos % sector
        return b"".join(out)

    def _read(self, handle, offset, length):
        """The file's bytes, gathered as pieces (extent reads, zeros for holes) and joined
        once: a read inside one extent is that extent's read, with no copy."""
        tree, root, level, ino = self._where(handle)
        end = offset + length
        pieces = []
        pos = offset
        F = C.BTRFS_FILE_EXTENT_ITEM
        structure = f"EXTENT_DATA of {ino}"
        for key, data, at in self._items(root, level, (ino, C.BTRFS_EXTENT_DATA_KEY, offset),
                                         (ino, C.BTRFS_EXTENT_DATA_KEY, MAX_KEY),
                                         f"tree {tree}", prior=True):
            if key[0] != ino or key[1] != C.BTRFS_EXTENT_DATA_KEY:
                continue
            start = key[2]
            if start >= end:
                break
            if len(data) < C.BTRFS_FILE_EXTENT_INLINE_DATA_START:
                raise CorruptImage(self.name, structure, at, "item is cut short")
            kind = F.field(data, "type")
            comp = F.field(data, "compression")
            if F.field(data, "encryption") or F.field(data, "other_encoding"):
                raise UnsupportedFeature(self.name, structure, at, "encrypted or encoded extent")
            if kind == C.BTRFS_FILE_EXTENT_INLINE:
                plain = data[C.BTRFS_FILE_EXTENT_INLINE_DATA_START:]
                ram = F.field(data, "ram_bytes")
                limits.enforce(ram if comp else len(plain), "BTRFS_MAX_INLINE_EXTENT",
                               self.name, structure, at, "inline extent bytes")
                if comp:
                    plain = self._decompress(comp, plain, ram, structure, at)
                skip, num, e = 0, len(plain), None
            elif kind in (C.BTRFS_FILE_EXTENT_REG, C.BTRFS_FILE_EXTENT_PREALLOC):
                if len(data) < F.size:
                    raise CorruptImage(self.name, structure, at, "item is cut short")
                e = F.unpack(data)
                skip, num, plain = e["offset"], e["num_bytes"], None
            else:
                raise CorruptImage(self.name, structure, at, f"extent type {kind}")
            lo, hi = max(start, pos), min(start + num, end)
            if hi <= lo:
                continue
            if lo > pos:
                pieces.append(bytes(lo - pos))      # a hole
            if e is not None and (kind == C.BTRFS_FILE_EXTENT_PREALLOC
                                  or e["disk_bytenr"] == 0):
                piece = bytes(hi - lo)              # prealloc and sparse extents read as zeros
            elif e is not None and not comp:
                piece = self._logical_read(e["disk_bytenr"] + skip + (lo - start), hi - lo,
                                           structure)
            else:
                if e is not None:
                    plain = self._extent_bytes(e, comp, structure, at)
                src = skip + (lo - start)
                piece = bytes(plain[src:src + (hi - lo)])
                if len(piece) < hi - lo:            # the extent claims more than it holds
                    piece += bytes(hi - lo - len(piece))
            pieces.append(piece)
            pos = hi
        if pos < end:
            pieces.append(bytes(end - pos))
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _extent_bytes(self, e, comp, structure, at):
        cached = self._last_extent
        key = (e["disk_bytenr"], e["disk_num_bytes"], comp)
        if cached is not None and cached[0] == key:
            return cached[1]
        limits.enforce(e["disk_num_bytes"], "BTRFS_MAX_DECOMPRESSED_EXTENT", self.name,
                       structure, at, "compressed bytes")
        raw = self._logical_read(e["disk_bytenr"], e["disk_num_bytes"], structure)
        plain = self._decompress(comp, raw, e["ram_bytes"], structure, at)
        self._last_extent = (key, plain)
        return plain

    # -- facts -----------------------------------------------------------------------
    def facts(self):
        s = self._s
        sb = s.sb
        label = sb["label"].split(b"\0", 1)[0].decode("utf-8", "replace")
        fsid = sb["fsid"].hex()
        uuid = f"{fsid[:8]}-{fsid[8:12]}-{fsid[12:16]}-{fsid[16:20]}-{fsid[20:]}"
        profiles = {}
        for _, _, _, kind in s.chunks:
            for bit, role in ((C.BTRFS_BLOCK_GROUP_DATA, "data"),
                              (C.BTRFS_BLOCK_GROUP_METADATA, "metadata"),
                              (C.BTRFS_BLOCK_GROUP_SYSTEM, "system")):
                if kind & bit:
                    profiles.setdefault(role, set()).add(profile_name(kind))
        return {
            "filesystem": self.filesystem,
            "label": label or None,
            "uuid": uuid,
            "generation": sb["generation"],
            "state": "log tree to replay" if sb["log_root"] else "clean",
            "dirty": bool(sb["log_root"]),
            "node_size": s.nodesize,
            "sector_size": s.sectorsize,
            "checksum": C.CSUM_NAMES[s.csum_type],
            "default_subvolume": self.default_subvolume,
            "subvolumes": [{"id": sub, "path": p} for sub, p in self.subvolumes()],
            "profiles": {role: sorted(v) for role, v in sorted(profiles.items())},
        }

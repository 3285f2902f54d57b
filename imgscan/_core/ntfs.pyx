# cython: language_level=3
"""NTFS volumes, read-only: files by path, directory listings, volume facts.

Spec: Joachim Metz, libyal/libfsntfs "New Technologies File System (NTFS)"
(documentation/New Technologies File System (NTFS).asciidoc), checked against
the Linux-NTFS documentation (Russon & Fledel), ntfs-3g's ``layout.h`` and
``compress.c`` and sleuthkit's ``tsk/fs/ntfs.c`` (behaviour only). Every field
is little-endian. Volumes in the tests are made by mkntfs / ntfs-3g and by
Windows, and read back by sleuthkit as the oracle.

A volume is read through a callable ``read(offset, length) -> bytes`` over
the guest bytes of the whole disk (short at its end), so the same code works
through every container; ``offset`` and ``size`` delimit the volume (a
partition, or the whole disk). Offsets in error messages are *disk* offsets,
ready for a hex editor on ``qemu-img convert -O raw`` output.

Structure, as far as this reader needs it:

* the boot sector gives the geometry and the cluster number (LCN) of $MFT;
* the MFT is a file of fixed-size records ("FILE", protected by an update
  sequence array: the last two bytes of every 512-byte stride are moved to
  the array and replaced by a check value); record 0 describes the MFT
  itself, so its $DATA run list is read first and every later record is
  located through it (the MFT may be fragmented);
* a record holds attributes, resident (value inline) or non-resident (a run
  list: (length, signed LCN delta) pairs, a missing delta meaning sparse);
  when they do not fit, an $ATTRIBUTE_LIST in the base record names the
  extension records that hold the rest;
* directories are B+trees of $FILE_NAME keys: $INDEX_ROOT in the record,
  "INDX" nodes in $INDEX_ALLOCATION addressed by VCN, ordered by the name
  mapped through the volume's $UpCase table (record 10);
* compressed attributes store each compression unit (16 clusters) either
  verbatim (all clusters allocated), as LZNT1 (fewer clusters, the rest of
  the unit sparse) or not at all (all sparse: zeros).
* CompactOS (WOF) files keep their bytes as XPRESS Huffman or LZX chunks in a
  ``WofCompressedData`` stream behind an IO_REPARSE_TAG_WOF reparse point, the
  unnamed stream a sparse placeholder of the file's size; reading the file
  decodes the chunks (``ntfs_records``, ``wof``);
* junctions and symbolic links are reparse points naming a target path
  (``ntfs_reparse``); a path through them is followed on this volume, at most
  ``limits.NTFS_MAX_REPARSE_FOLLOWS`` of them.

The reader is layered, one module per section: ``ntfs_runs`` (boot sector,
bounded reads, run lists), ``ntfs_records`` (MFT records, attributes,
attribute lists, attribute data) and this module (``$UpCase``, directory
indexes, paths, the file API), over the nogil helpers of ``ntfs_codec`` and
the layout declared in ``ntfs_layout.pxd`` and ``c_ntfs``.

Hostile volumes are bounded: every LCN is checked against the volume, every
count against :mod:`imgscan.limits`, attribute lists and index trees keep
visited sets and depth caps, and an extension record is never followed back
to a base record. Problems raise :class:`~imgscan.errors.CorruptImage`,
``TruncatedImage`` or ``LimitExceeded`` naming the volume (``name``), the
structure ("MFT record 5", "index of \\Windows") and the disk offset.
"""

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from sys import byteorder

from imgscan import limits
from imgscan.errors import CorruptImage, ImageError, UnsupportedFeature

from .binary cimport le16, le32, le64
from .ntfs_codec cimport (
    SEARCH_ABSENT, SEARCH_CORRUPT, SEARCH_FOUND, UPCASE_PAGE_SHIFT, apply_fixup, name_pages,
    node_pages, search_node,
)
from .ntfs_layout cimport *
from .ntfs_records cimport NtfsRecords, _Attr, _Inode, _utf16
from .c_ntfs import (
    AT_REPARSE_POINT, IO_REPARSE_TAG_DEDUP, WOF_ALGORITHMS, WOF_ALGORITHM_LZX,
)
from .ntfs_reparse import parse_link, reparse_tag

# The reader's public names, defined with the layer that uses them first.
from .ntfs_codec import lznt1_decompress
from .ntfs_records import (
    AT_STANDARD_INFORMATION, AT_ATTRIBUTE_LIST, AT_FILE_NAME, AT_VOLUME_NAME,
    AT_VOLUME_INFORMATION, AT_DATA, AT_INDEX_ROOT, AT_INDEX_ALLOCATION, AT_BITMAP, AT_END,
    NAMESPACE_POSIX, NAMESPACE_WIN32, NAMESPACE_DOS, NAMESPACE_WIN32_AND_DOS, MFT_RECORD_MFT,
    MFT_RECORD_VOLUME, MFT_RECORD_ROOT, MFT_RECORD_UPCASE, I30, REFERENCE_MASK, UPCASE_UNITS,
    INDEX_BLOCK_SIZE,
)
from .ntfs_runs import (
    BOOT_SECTOR_SIZE, MAX_CLUSTER_SIZE, MAX_SECTOR_SIZE, MIN_RECORD_SIZE, MIN_SECTOR_SIZE,
    NTFS_OEM,
)

cdef class NtfsFile

#: NtfsFile's "not looked at yet".
cdef object _UNKNOWN = object()
#: $UpCase is stored little-endian: on such a host its bytes are the table as they are.
cdef bint LITTLE_ENDIAN_HOST = byteorder == "little"
#: How much of a directory's $INDEX_ALLOCATION the first lookup by name announces with
#: $UpCase: the root directory's nodes, whose node the search descends into cannot be
#: known before $UpCase is read (a Windows system volume's root holds 2 to 4 nodes).
INDEX_ANNOUNCE_BYTES = 64 * 1024
#: One page of $UpCase, in bytes (the unit :meth:`NtfsVolume._load_upcase` reads).
cdef Py_ssize_t UPCASE_PAGE_BYTES = 2 << UPCASE_PAGE_SHIFT
#: Every page of $UpCase (its 32 pages, bit i: page i).
cdef uint32_t ALL_UPCASE_PAGES = 0xFFFFFFFF
#: A WOF format's name by (chunk size, is LZX).
WOF_ALGORITHMS_BY_CHUNK = {(chunk, number == WOF_ALGORITHM_LZX): name
                           for number, (name, chunk) in WOF_ALGORITHMS.items()}


class FileNotFound(ImageError):
    """A path names nothing on the volume (raised by :meth:`NtfsVolume.open`)."""


# --------------------------------------------------------------------------
# The volume
# --------------------------------------------------------------------------

cdef class NtfsVolume(NtfsRecords):
    """An NTFS volume at ``offset`` (``size`` bytes) of a disk read by ``read``.

    Opening reads the boot sector, the MFT's own record and $Volume; $UpCase
    is read at the first lookup by name. ``prefetch(ranges, structure, near)``,
    when given, is told the disk ranges (``read``'s coordinates) that lookup reads
    next: $UpCase and the directory's first index nodes, fetched together by a remote
    source (one round trip instead of two, one after the other).
    """
    cdef readonly object label, version
    cdef readonly bint dirty
    #: $UpCase as native uint16 units, and the buffer that holds them; only the pages
    #: in ``_upcase_pages`` (bit i: units [i << UPCASE_PAGE_SHIFT, (i + 1) << ...)) are read.
    cdef object _upcase_table
    cdef uint16_t* _upcase
    cdef uint32_t _upcase_pages
    #: (directory record, name) -> the record the name leads to, or None: the path
    #: lookups of one inspection share their prefixes (``\Windows\System32\config``).
    cdef dict _entries_found
    cdef object _prefetch

    def __cinit__(self):
        self._upcase = NULL
        self._upcase_pages = 0

    def __init__(self, read, int64_t offset, int64_t size, str name="volume", prefetch=None):
        self._read = read
        self._prefetch = prefetch
        self.offset = offset
        self.size = size
        self.name = name
        self._cache = {}
        self._entries_found = {}
        self._budget = -1
        self.label = None
        self.version = None
        self._parse_boot_sector()
        self._load_mft()
        self._load_volume_info()

    cdef _load_volume_info(self):
        cdef _Inode vol = self._inode(MFT_RECORD_VOLUME)
        cdef _Attr a = vol.find(AT_VOLUME_NAME, "")
        if a is not None and a.resident:
            self.label = bytes(a.value).decode("utf-16-le", "replace")
        a = vol.find(AT_VOLUME_INFORMATION, "")
        if a is not None and a.resident and len(a.value) >= VI_FLAGS + 2:
            v = a.value
            self.version = f"{v[VI_MAJOR]}.{v[VI_MINOR]}"
            self.dirty = bool(le16_at(v, VI_FLAGS) & VOLUME_IS_DIRTY)

    # -- $UpCase and names -------------------------------------------------------
    def lookup_announcement(self):
        """``(ranges, near)``: what the first lookup by name from the root directory reads
        next, $UpCase's first page and the root's first index nodes (both empty once
        $UpCase is being read). The Windows inspection announces every volume's at once,
        so that a disk's volumes cost one round trip for them rather than one each."""
        return self._lookup_ranges(self._inode(MFT_RECORD_ROOT))

    cdef tuple _lookup_ranges(self, _Inode d):
        """$UpCase's first page and the first INDEX_ANNOUNCE_BYTES of directory ``d``'s
        $INDEX_ALLOCATION as disk ranges, which the first lookup by name reads one after
        the other (both empty once $UpCase is being read)."""
        upcase, index = [], []
        if self._upcase != NULL:
            return upcase, index
        cdef _Attr a = self._inode(MFT_RECORD_UPCASE).find(AT_DATA, "")
        if a is not None and not a.resident:
            upcase = self._run_extents(a.runs, 0, min(a.data_size, UPCASE_PAGE_BYTES))
        a = d.find(AT_INDEX_ALLOCATION, I30)
        if a is not None and not a.resident:
            index = self._run_extents(a.runs, 0, min(a.data_size, INDEX_ANNOUNCE_BYTES))
        return upcase, index

    cdef _announce_lookup(self, _Inode d):
        """Announce what the first lookup by name in directory ``d`` reads next (a no-op
        without ``prefetch``, once $UpCase is being read, or when the inspection
        announced it already: the reader then has it cached)."""
        if self._prefetch is None:
            return
        upcase, index = self._lookup_ranges(d)
        if upcase or index:
            # $UpCase exactly (nothing beside it is read); the index with the window
            # around it: the nodes and MFT records of the path's next directories are
            # usually beside the root's index
            self._prefetch(upcase, "NTFS $UpCase and directory index", index)

    cdef _load_upcase(self, uint32_t pages):
        """Read the pages of $UpCase in ``pages`` not read yet (a short table maps the
        rest to themselves; a big-endian host swaps each unit). Names are mapped a page
        at a time as they need it: a Windows system volume's paths and the names beside
        them in its indexes are ASCII, so a lookup reads the first 4 KiB of the 128 KiB
        table (over a network, 124 KiB less per volume)."""
        pages &= ~self._upcase_pages
        if not pages:
            return
        cdef _Inode ino = self._inode(MFT_RECORD_UPCASE)
        cdef _Attr a = ino.find(AT_DATA, "")
        if a is None:
            raise self._error(CorruptImage, "$UpCase", ino.disk_offset - self.offset,
                              "record 10 has no $DATA")
        cdef Py_ssize_t i, n, first
        cdef const uint8_t* b
        if self._prefetch is None and self._upcase == NULL:
            # A local disk (nothing announced): the whole table in one read and, on a
            # little-endian host, its bytes the table as read, not copied (the pages
            # save bytes only over a network; here they cost a Windows inspection 5 %)
            data = self._attr_bytes(ino, a, 0, UPCASE_UNITS * 2)
            if LITTLE_ENDIAN_HOST and len(data) == UPCASE_UNITS * 2:
                self._upcase_table = data
                b = data
                self._upcase = <uint16_t*>b       # never written: every page is read
                self._upcase_pages = ALL_UPCASE_PAGES
                return
        if self._upcase == NULL:
            self._upcase_table = bytearray(UPCASE_UNITS * 2)
            self._upcase = <uint16_t*><uint8_t*>self._upcase_table
        for page in range(UPCASE_UNITS >> UPCASE_PAGE_SHIFT):
            if not pages >> page & 1:
                continue
            first = page << UPCASE_PAGE_SHIFT
            data = self._attr_bytes(ino, a, first * 2, UPCASE_PAGE_BYTES)
            n = len(data) // 2
            b = data
            if LITTLE_ENDIAN_HOST:
                memcpy(self._upcase + first, b, n * 2)
            else:
                for i in range(n):
                    self._upcase[first + i] = le16(b + 2 * i)
            for i in range(n, 1 << UPCASE_PAGE_SHIFT):
                self._upcase[first + i] = <uint16_t>(first + i)
            self._upcase_pages |= 1u << page

    cdef bytes _upcased(self, str name):
        """``name`` as UTF-16 code units mapped through $UpCase (native uint16)."""
        raw = name.encode("utf-16-le", "surrogatepass")
        out = bytearray(len(raw))
        cdef const uint8_t[::1] s = raw
        cdef uint16_t[::1] d = memoryview(out).cast("H") if len(raw) else None
        cdef Py_ssize_t i
        if len(raw):
            self._load_upcase(name_pages(&s[0], len(raw) // 2))
        for i in range(len(raw) // 2):
            d[i] = self._upcase[le16(&s[2 * i])]
        return bytes(out)

    # -- directory indexes ---------------------------------------------------------
    cdef tuple _index(self, _Inode d, str where):
        """($INDEX_ROOT value, $INDEX_ALLOCATION or None, record size, VCN unit)."""
        cdef _Attr root = d.find(AT_INDEX_ROOT, I30)
        if root is None or not root.resident:
            raise self._error(CorruptImage, where, d.disk_offset - self.offset,
                              "a directory without an $I30 $INDEX_ROOT")
        v = root.value
        if len(v) < IR_NODE_HEADER + NH_SIZE:
            raise self._error(CorruptImage, where, root.disk_offset - self.offset,
                              "$INDEX_ROOT is truncated")
        if le32_at(v, IR_INDEXED_TYPE) != AT_FILE_NAME:
            raise self._error(CorruptImage, where, root.disk_offset - self.offset,
                              "$I30 does not index $FILE_NAME")
        rsize = le32_at(v, IR_INDEX_RECORD_SIZE)
        alloc = d.find(AT_INDEX_ALLOCATION, I30)
        if alloc is not None:
            if not MIN_RECORD_SIZE <= rsize <= limits.NTFS_MAX_RECORD_SIZE or rsize & (rsize - 1):
                raise self._error(CorruptImage, where, root.disk_offset - self.offset,
                                  f"index record size {rsize} is impossible")
        unit = self.cluster_size if rsize >= self.cluster_size else INDEX_BLOCK_SIZE
        return v, alloc, rsize, unit

    cdef tuple _node(self, _Inode d, _Attr alloc, int64_t vcn, int64_t rsize, int64_t unit,
                     str where):
        """One INDX node: (fixed-up bytes, first entry position, end position)."""
        cdef int64_t pos = vcn * unit
        cdef int64_t disk = 0
        if alloc is None or alloc.resident or vcn < 0 or pos + rsize > alloc.data_size:
            raise self._error(CorruptImage, where, d.disk_offset - self.offset,
                              f"sub-node VCN {vcn} is outside the $INDEX_ALLOCATION")
        self._spend(1, where)
        rec = bytearray(self._read_runs(alloc.runs, pos, rsize, where, &disk))
        cdef uint8_t[::1] r = rec
        vol = disk - self.offset
        if rec[:4] != b"INDX":
            raise self._error(CorruptImage, where, vol,
                              f"index node at VCN {vcn} has signature {bytes(rec[:4])!r}")
        cdef Py_ssize_t bad = apply_fixup(&r[0], rsize)
        if bad >= 0:
            raise self._error(CorruptImage, where, vol + bad,
                              f"update sequence mismatch in index node at VCN {vcn}")
        if <int64_t>le64(&r[0] + INDX_VCN) != vcn:
            raise self._error(CorruptImage, where, vol + INDX_VCN,
                              f"index node at VCN {vcn} says it is VCN {le64(&r[0] + INDX_VCN)}")
        first = INDX_NODE_HEADER + le32(&r[0] + INDX_NODE_HEADER + NH_ENTRIES_OFFSET)
        end = INDX_NODE_HEADER + le32(&r[0] + INDX_NODE_HEADER + NH_TOTAL_SIZE)
        if end > rsize or first < INDX_NODE_HEADER + NH_SIZE or first > end:
            raise self._error(CorruptImage, where, vol + INDX_NODE_HEADER,
                              f"index node at VCN {vcn} has entries outside it")
        return bytes(rec), first, end, vol

    cdef object _find_in_dir(self, _Inode d, str component, str where):
        """The file reference of ``component`` in directory ``d``, or None."""
        self._announce_lookup(d)
        target = self._upcased(component)
        cdef const uint8_t[::1] t = target
        cdef const uint16_t* tp = <const uint16_t*>&t[0] if len(target) else NULL
        cdef Py_ssize_t tlen = len(target) // 2
        v, alloc, rsize, unit = self._index(d, where)
        cdef const uint8_t[::1] node = v
        cdef Py_ssize_t first = IR_NODE_HEADER + le32(&node[0] + IR_NODE_HEADER + NH_ENTRIES_OFFSET)
        cdef Py_ssize_t end = IR_NODE_HEADER + le32(&node[0] + IR_NODE_HEADER + NH_TOTAL_SIZE)
        cdef uint64_t ref = 0
        cdef int64_t vcn = 0
        cdef Py_ssize_t bad = 0
        cdef int res, depth = 0
        node_vol = (<_Attr>d.find(AT_INDEX_ROOT, I30)).disk_offset - self.offset
        if end > len(v) or first < IR_NODE_HEADER + NH_SIZE or first > end:
            raise self._error(CorruptImage, where, node_vol,
                              "$INDEX_ROOT entries lie outside it")
        visited = set()
        while True:
            self._load_upcase(node_pages(&node[0], first, end))
            with nogil:
                res = search_node(&node[0], first, end, self._upcase, tp, tlen,
                                   &ref, &vcn, &bad)
            if res == SEARCH_FOUND:
                return ref
            if res == SEARCH_ABSENT:
                return None
            if res == SEARCH_CORRUPT:
                raise self._error(CorruptImage, where, node_vol + bad,
                                  "malformed index entry")
            depth += 1
            if vcn in visited:
                raise self._error(CorruptImage, where, node_vol,
                                  f"index sub-node VCN {vcn} is visited twice (a cycle)")
            self._enforce(depth, "NTFS_MAX_INDEX_DEPTH", where, node_vol,
                          f"depth of index sub-node VCN {vcn}")
            visited.add(vcn)
            data, first, end, node_vol = self._node(d, alloc, vcn, rsize, unit, where)
            node = data

    cdef list _entries(self, _Inode d, str where):
        """Every index entry of a directory in order: [(reference, namespace, name)]."""
        v, alloc, rsize, unit = self._index(d, where)
        out = []
        visited = set()
        root_vol = (<_Attr>d.find(AT_INDEX_ROOT, I30)).disk_offset - self.offset
        cdef const uint8_t[::1] b = v
        first = IR_NODE_HEADER + le32(&b[0] + IR_NODE_HEADER + NH_ENTRIES_OFFSET)
        end = IR_NODE_HEADER + le32(&b[0] + IR_NODE_HEADER + NH_TOTAL_SIZE)
        if end > len(v) or first < IR_NODE_HEADER + NH_SIZE or first > end:
            raise self._error(CorruptImage, where, root_vol, "$INDEX_ROOT entries lie outside it")
        self._walk(d, alloc, rsize, unit, v, first, end, root_vol, 0, visited, out, where)
        return out

    cdef _walk(self, _Inode d, _Attr alloc, int64_t rsize, int64_t unit, bytes data,
               Py_ssize_t pos, Py_ssize_t end, int64_t vol, int depth, set visited,
               list out, str where):
        self._enforce(depth, "NTFS_MAX_INDEX_DEPTH", where, vol, "index depth")
        cdef const uint8_t[::1] b = data
        cdef const uint8_t* p = &b[0]
        cdef Py_ssize_t length, key_length, nlen
        cdef uint32_t flags
        cdef int64_t vcn
        while True:
            if pos + IE_HEADER > end:
                raise self._error(CorruptImage, where, vol + pos, "malformed index entry")
            length = le16(p + pos + IE_LENGTH)
            key_length = le16(p + pos + IE_KEY_LENGTH)
            flags = le32(p + pos + IE_FLAGS)
            if length < IE_HEADER or length % 8 or pos + length > end or (
                    flags & IE_HAS_SUBNODE and length < IE_HEADER + 8):
                raise self._error(CorruptImage, where, vol + pos, "malformed index entry")
            if flags & IE_HAS_SUBNODE:
                vcn = <int64_t>le64(p + pos + length - 8)
                if vcn in visited:
                    raise self._error(CorruptImage, where, vol + pos,
                                      f"index sub-node VCN {vcn} is visited twice (a cycle)")
                visited.add(vcn)
                self._enforce(len(visited), "NTFS_MAX_INDEX_NODES", where, vol + pos,
                              "index node count")
                sub, sfirst, send, svol = self._node(d, alloc, vcn, rsize, unit, where)
                self._walk(d, alloc, rsize, unit, sub, sfirst, send, svol, depth + 1,
                           visited, out, where)
            if flags & IE_LAST:
                return
            if key_length < FN_NAME or IE_KEY + key_length > length:
                raise self._error(CorruptImage, where, vol + pos, "malformed index entry key")
            nlen = p[pos + IE_KEY + FN_NAME_LENGTH]
            if FN_NAME + 2 * nlen > key_length:
                raise self._error(CorruptImage, where, vol + pos, "index entry name too long")
            if len(out) >= limits.NTFS_MAX_DIRECTORY_ENTRIES:
                self._enforce(len(out) + 1, "NTFS_MAX_DIRECTORY_ENTRIES", where, vol + pos,
                              "directory entry count")
            out.append((le64(p + pos + IE_REFERENCE), p[pos + IE_KEY + FN_NAMESPACE],
                        _utf16(b, pos + IE_KEY + FN_NAME, nlen)))
            pos += length

    # -- paths ---------------------------------------------------------------------
    cdef _Inode _child(self, _Inode d, str part, str where):
        """The file ``part`` names in directory ``d``, or None; a stale entry is corrupt."""
        ref = self._find_in_dir(d, part, where)
        if ref is None:
            return None
        number = ref & REFERENCE_MASK
        seq = ref >> 48
        cdef _Inode child = self._inode(number)
        if seq and child.sequence and seq != child.sequence:
            raise self._error(CorruptImage, where, child.disk_offset - self.offset,
                              f"entry {part!r} names record {number} sequence {seq}, "
                              f"the record has sequence {child.sequence} (stale entry)")
        return child

    cdef _Inode _resolve(self, str path):
        """The file at ``path``, junctions and symbolic links followed (the last one too,
        as CreateFile does), or None when nothing is there."""
        parts = [c for c in path.replace("/", "\\").split("\\") if c]
        self._enforce(len(parts), "NTFS_MAX_PATH_COMPONENTS", f"path {path!r}", 0,
                      "path component count")
        self._budget = limits.NTFS_MAX_LOOKUP_STEPS
        cdef _Inode d
        cdef int follows = 0
        try:
            d = self._inode(MFT_RECORD_ROOT)
            walked = []
            while parts:
                part = parts.pop(0)
                if part == ".":
                    continue
                if part == "..":        # only in link targets, resolved by name as Windows does
                    parts = walked[:max(0, len(walked) - 1)] + parts
                    walked = []
                    d = self._inode(MFT_RECORD_ROOT)
                    continue
                if not d.is_dir:
                    return None
                key = (d.number, part)
                number = self._entries_found.get(key, _UNKNOWN)
                if number is _UNKNOWN:
                    where = "index of \\" + "\\".join(walked)
                    d = self._child(d, part, where)
                    if len(self._entries_found) >= limits.NTFS_INODE_CACHE:
                        self._entries_found.clear()
                    self._entries_found[key] = None if d is None else d.number
                elif number is not None:
                    d = self._inode(number)
                else:
                    d = None
                if d is None:
                    return None
                link = self._link(d)
                if link is None:
                    walked.append(part)
                    continue
                follows += 1
                self._enforce(follows, "NTFS_MAX_REPARSE_FOLLOWS", f"path {path!r}",
                              d.disk_offset - self.offset, "junctions and symbolic links followed")
                parts = (walked if link.relative else []) + list(link.parts) + parts
                self._enforce(len(parts), "NTFS_MAX_PATH_COMPONENTS", f"path {path!r}",
                              d.disk_offset - self.offset, "path component count")
                walked = []
                d = self._inode(MFT_RECORD_ROOT)
            return d
        finally:
            self._budget = -1

    cdef object _link(self, _Inode ino):
        """Where a junction or symbolic link leads (a ``Link``), or None for other files;
        UnsupportedFeature when it leads off the volume."""
        if ino.find(AT_REPARSE_POINT, "") is None:
            return None
        rp = self._reparse_value(ino)
        try:
            link = parse_link(rp)
        except ValueError as exc:
            raise self._error(CorruptImage, f"MFT record {ino.number}",
                              ino.disk_offset - self.offset, f"reparse point: {exc}") from None
        if link is not None and link.problem:
            raise self._error(UnsupportedFeature, f"MFT record {ino.number}",
                              ino.disk_offset - self.offset,
                              f"a link is not followed: {link.problem}")
        return link

    def link_target(self, int64_t number):
        """(target components, relative) of the junction or symbolic link at record
        ``number``, or None when it is neither (for the filesystem interface)."""
        link = self._link(self._inode(number))
        return None if link is None else (list(link.parts), link.relative)

    cdef _refuse_placeholder(self, _Inode ino):
        """A file whose unnamed stream is a placeholder for data kept elsewhere
        (deduplication's chunk store) cannot be read: say why instead of giving zeros."""
        rp = self._reparse_value(ino)
        if rp is not None and reparse_tag(rp) == IO_REPARSE_TAG_DEDUP:
            raise self._error(UnsupportedFeature, f"MFT record {ino.number}",
                              ino.disk_offset - self.offset,
                              "a deduplicated file: its data is in the volume's chunk store")

    def lookup(self, str path):
        """The :class:`NtfsFile` at ``path`` (``\\`` or ``/`` separated,
        case-insensitive), or None when nothing is there."""
        ino = self._resolve(path)
        return None if ino is None else NtfsFile(self, ino, "", path)

    def open(self, str path, str stream=""):
        """The file at ``path`` (its named ``stream`` if given); raises
        :class:`FileNotFound` when there is none."""
        ino = self._resolve(path)
        if ino is None:
            raise FileNotFound(self.name, f"path {path!r}", None, "no such file or directory")
        cdef NtfsFile f = NtfsFile(self, ino, stream, path)
        if stream and f._attr is None:
            raise FileNotFound(self.name, f"path {path!r}", None, f"no stream {stream!r}")
        return f

    def open_record(self, int64_t number, str stream=""):
        """The file whose base MFT record is ``number`` (for tools and tests)."""
        return NtfsFile(self, self._inode(number), stream, f"MFT record {number}")

    def exists(self, str path):
        return self._resolve(path) is not None

    def is_dir(self, str path):
        ino = self._resolve(path)
        return ino is not None and ino.is_dir

    def listdir(self, str path="\\"):
        """Names in the directory at ``path`` in index order (Win32/POSIX names;
        DOS 8.3 aliases and ``.`` left out)."""
        ino = self._resolve(path)
        if ino is None:
            raise FileNotFound(self.name, f"path {path!r}", None, "no such directory")
        if not ino.is_dir:
            raise FileNotFound(self.name, f"path {path!r}", None, "not a directory")
        return [name for ref, ns, name in self._entries(ino, f"index of {path}")
                if ns != NAMESPACE_DOS and name != "."]

    def entries(self, str path="\\"):
        """[(record number, namespace, name)] of every index entry of a directory."""
        ino = self._resolve(path)
        if ino is None or not ino.is_dir:
            raise FileNotFound(self.name, f"path {path!r}", None, "no such directory")
        return self._record_entries(ino, f"index of {path}")

    cdef list _record_entries(self, _Inode ino, str where):
        return [(ref & REFERENCE_MASK, ns, name) for ref, ns, name in self._entries(ino, where)]

    # -- by record number (the filesystem interface's inodes) ------------------------
    def record_entries(self, int64_t number):
        """[(record number, namespace, name)] of every index entry of directory record
        ``number``; raises :class:`FileNotFound` when it is not a directory."""
        cdef _Inode ino = self._inode(number)
        if not ino.is_dir:
            raise FileNotFound(self.name, f"MFT record {number}", None, "not a directory")
        return self._record_entries(ino, f"index of MFT record {number}")

    def child(self, int64_t number, str name):
        """The record number ``name`` (case-insensitive) links to in directory record
        ``number``, or None; a stale entry (sequence mismatch) is corrupt, as in paths."""
        self._budget = limits.NTFS_MAX_LOOKUP_STEPS
        cdef _Inode d
        try:
            d = self._inode(number)
            if not d.is_dir:
                return None
            d = self._child(d, name, f"index of MFT record {number}")
            return None if d is None else d.number
        finally:
            self._budget = -1

    @property
    def serial(self):
        """The volume serial number as blkid prints NTFS UUIDs (16 hex digits)."""
        return f"{self.serial_number:016X}"

    def __repr__(self):
        return (f"NtfsVolume({self.name!r}, label={self.label!r}, version={self.version!r}, "
                f"cluster_size={self.cluster_size})")


cdef class NtfsFile:
    """One file (or directory) of an :class:`NtfsVolume` and one of its streams."""
    cdef readonly NtfsVolume volume
    cdef _Inode _ino
    cdef _Attr _attr
    cdef readonly str path, stream
    #: Its CompactOS setup (``NtfsRecords._wof``: chunk size, is LZX, the stream), None
    #: when its data is not WOF-compressed, _UNKNOWN until the first read asks.
    cdef object _wof_setup
    #: The last chunk a WOF read decoded, and its number (-1: none): small reads in one
    #: chunk (a PE header, then its sections' headers) decode it once.
    cdef bytes _chunk
    cdef int64_t _chunk_number

    def __init__(self, NtfsVolume volume, _Inode ino, str stream="", str path=""):
        self.volume = volume
        self._ino = ino
        self.stream = stream
        self.path = path
        self._attr = ino.find(AT_DATA, stream)
        self._wof_setup = _UNKNOWN
        self._chunk_number = -1

    cdef object _wof(self):
        """The WOF setup of its unnamed stream, found once (None for any other data)."""
        if self._wof_setup is _UNKNOWN:
            self._wof_setup = None if self.stream or \
                self._ino.find(AT_REPARSE_POINT, "") is None else self.volume._wof(self._ino)
        return self._wof_setup

    cdef bytes _wof_read(self, tuple wof, int64_t start, int64_t end):
        """Bytes [start, end) of its WOF data, the last chunk decoded kept for the next."""
        if start >= end:
            return b""
        cdef int64_t chunk = wof[0]
        cdef int64_t first = start // chunk, last = (end - 1) // chunk
        if first == last == self._chunk_number:
            return self._chunk[start - first * chunk:end - first * chunk]
        out = self.volume._wof_chunks(self._ino, wof, self._attr.size, first, last)
        with memoryview(out) as decoded:        # each slice copied once, into its bytes
            self._chunk = bytes(decoded[(last - first) * chunk:])
            self._chunk_number = last
            return bytes(decoded[start - first * chunk:end - first * chunk])

    @property
    def record_number(self):
        return self._ino.number

    @property
    def is_dir(self):
        return self._ino.is_dir

    @property
    def size(self):
        return 0 if self._attr is None else self._attr.size

    @property
    def compressed(self):
        return self._attr is not None and bool(self._attr.flags & ATTR_FLAG_COMPRESSED)

    @property
    def wof(self):
        """The CompactOS (WOF) format of its data ("XPRESS4K", "LZX", ...), or None."""
        wof = self._wof()
        return None if wof is None else WOF_ALGORITHMS_BY_CHUNK[wof[0], wof[1]]

    def reparse_tag(self):
        """The tag of its reparse point, or None (junctions, symbolic links, WOF...)."""
        rp = self.volume._reparse_value(self._ino)
        return None if rp is None else reparse_tag(rp)

    @property
    def sparse(self):
        return self._attr is not None and bool(self._attr.flags & ATTR_FLAG_SPARSE)

    @property
    def names(self):
        """[(parent record, namespace, name)] of its $FILE_NAME attributes."""
        out = []
        cdef _Attr a
        for a in self._ino.attrs:
            if a.type == AT_FILE_NAME and a.resident and len(a.value) >= FN_NAME:
                n = a.value[FN_NAME_LENGTH]
                if FN_NAME + 2 * n <= len(a.value):
                    out.append((le64_at(a.value, FN_PARENT) & REFERENCE_MASK,
                                a.value[FN_NAMESPACE],
                                a.value[FN_NAME:FN_NAME + 2 * n].decode("utf-16-le",
                                                                        "surrogatepass")))
        return out

    def resident_value(self, uint32_t type):
        """The value of its first resident attribute of ``type`` (unnamed), or None."""
        a = self._ino.find(type, "")
        return bytes(a.value) if a is not None and a.resident else None

    def has_attribute(self, uint32_t type):
        """Whether any of its records holds an attribute of ``type``."""
        return any((<_Attr>a).type == type for a in self._ino.attrs)

    def streams(self):
        """Names of the $DATA streams ("" is the unnamed, main one)."""
        return [a.name for a in self._ino.attrs if (<_Attr>a).type == AT_DATA]

    def runs(self):
        """[(vcn, lcn or -1, clusters)] of the stream (empty when resident)."""
        return [] if self._attr is None else list(self._attr.runs)

    def read(self, int64_t offset=0, length=None):
        """Bytes of the stream from ``offset``; at most limits.NTFS_MAX_FILE_READ
        per call (LimitExceeded beyond: read big files in pieces)."""
        if self._attr is None:
            return b""
        cdef int64_t size = self._attr.size
        cdef int64_t n = size - offset if length is None else length
        if offset < 0 or n < 0:
            raise ValueError("negative offset or length")
        n = min(n, max(0, size - offset))
        limits.enforce(n, "NTFS_MAX_FILE_READ", self.volume.name, f"file {self.path!r}", None,
                       "read length in bytes")
        wof = self._wof()
        if wof is not None:
            return self._wof_read(wof, offset, offset + n)
        if self.stream == "" and self._ino.find(AT_REPARSE_POINT, "") is not None:
            self.volume._refuse_placeholder(self._ino)
        return self.volume._attr_bytes(self._ino, self._attr, offset, n)

    def __repr__(self):
        return f"NtfsFile({self.path!r}, record={self._ino.number}, size={self.size})"


cdef inline uint32_t le16_at(bytes b, Py_ssize_t pos):
    cdef const uint8_t* p = b
    return le16(p + pos)


cdef inline uint32_t le32_at(bytes b, Py_ssize_t pos):
    cdef const uint8_t* p = b
    return le32(p + pos)


cdef inline uint64_t le64_at(bytes b, Py_ssize_t pos):
    cdef const uint8_t* p = b
    return le64(p + pos)

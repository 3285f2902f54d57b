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

Hostile volumes are bounded: every LCN is checked against the volume, every
count against :mod:`imgscan.limits`, attribute lists and index trees keep
visited sets and depth caps, and an extension record is never followed back
to a base record. Problems raise :class:`~imgscan.errors.CorruptImage`,
``TruncatedImage`` or ``LimitExceeded`` naming the volume (``name``), the
structure ("MFT record 5", "index of \\Windows") and the disk offset.
"""

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from imgscan import limits
from imgscan.errors import (
    CorruptImage, ImageError, TruncatedImage, UnsupportedFeature,
)

from .binary cimport le16, le32, le64
from .ntfs_codec cimport (
    SEARCH_ABSENT, SEARCH_CORRUPT, SEARCH_FOUND, apply_fixup, lznt1, search_node,
)
from .ntfs_codec import lznt1_decompress
from .ntfs_layout cimport *
from .ntfs_runs cimport NtfsRuns

from .ntfs_runs import (
    BOOT_SECTOR_SIZE, MAX_CLUSTER_SIZE, MAX_SECTOR_SIZE, MIN_RECORD_SIZE, MIN_SECTOR_SIZE,
    NTFS_OEM,
)

# --------------------------------------------------------------------------
# On-disk layout (libfsntfs sections "Volume header", "MFT entry", "MFT
# attribute", "Data runs", "Index", "Compression").
# --------------------------------------------------------------------------

#: Attribute types.
AT_STANDARD_INFORMATION = 0x10
AT_ATTRIBUTE_LIST = 0x20
AT_FILE_NAME = 0x30
AT_VOLUME_NAME = 0x60
AT_VOLUME_INFORMATION = 0x70
AT_DATA = 0x80
AT_INDEX_ROOT = 0x90
AT_INDEX_ALLOCATION = 0xA0
AT_BITMAP = 0xB0
AT_END = 0xFFFFFFFF
#: $FILE_NAME namespaces.
NAMESPACE_POSIX = 0
NAMESPACE_WIN32 = 1
NAMESPACE_DOS = 2
NAMESPACE_WIN32_AND_DOS = 3
#: Well-known MFT records.
MFT_RECORD_MFT = 0
MFT_RECORD_VOLUME = 3
MFT_RECORD_ROOT = 5
MFT_RECORD_UPCASE = 10
#: The directory index is named $I30 and keyed on $FILE_NAME.
I30 = "$I30"
#: File references: 48-bit record number, 16-bit sequence number.
REFERENCE_MASK = 0xFFFFFFFFFFFF
#: $UpCase maps each of the 65536 UTF-16 code units.
UPCASE_UNITS = 65536
#: Index node VCNs count 512-byte blocks when index records are smaller than a cluster.
INDEX_BLOCK_SIZE = 512

cdef class NtfsFile


class FileNotFound(ImageError):
    """A path names nothing on the volume (raised by :meth:`NtfsVolume.open`)."""


# --------------------------------------------------------------------------
# Attributes and records
# --------------------------------------------------------------------------

@cython.final
cdef class _Attr:
    """One attribute, merged over its extents when it is non-resident."""
    cdef public uint32_t type
    cdef public str name
    cdef public bint resident
    cdef public uint32_t flags
    cdef public uint16_t ident        # attribute id, unique within its record
    cdef public object value          # resident value (bytes)
    cdef public list runs             # [(vcn, lcn or -1, clusters)] in VCN order
    cdef public int64_t start_vcn, end_vcn
    cdef public int64_t allocated_size, data_size, initialized_size
    cdef public int compression_unit
    cdef public int64_t record        # MFT record holding it (its first extent)
    cdef public int64_t disk_offset   # of the attribute header

    @property
    def size(self):
        return len(self.value) if self.resident else self.data_size


@cython.final
cdef class _Inode:
    """A file: its base record's header and the attributes of all its records."""
    cdef public int64_t number
    cdef public uint16_t flags, sequence
    cdef public list attrs
    cdef public int64_t disk_offset

    cdef _Attr find(self, uint32_t type, str name):
        cdef _Attr a
        for a in self.attrs:
            if a.type == type and a.name == name:
                return a
        return None

    @property
    def is_dir(self):
        return bool(self.flags & MFT_RECORD_IS_DIRECTORY)


cdef str _utf16(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t units):
    # Names are UTF-16 without validation: unpaired surrogates survive.
    return bytes(buf[pos:pos + 2 * units]).decode("utf-16-le", "surrogatepass")


# --------------------------------------------------------------------------
# The volume
# --------------------------------------------------------------------------

cdef class NtfsVolume(NtfsRuns):
    """An NTFS volume at ``offset`` (``size`` bytes) of a disk read by ``read``.

    Opening reads the boot sector, the MFT's own record and $Volume; $UpCase
    is read at the first lookup by name.
    """
    cdef readonly object label, version
    cdef readonly bint dirty
    cdef list _mft_runs
    cdef int64_t _mft_size
    cdef uint16_t* _upcase
    cdef dict _cache
    cdef int64_t _budget

    def __cinit__(self):
        self._upcase = NULL

    def __dealloc__(self):
        if self._upcase != NULL:
            free(self._upcase)

    def __init__(self, read, int64_t offset, int64_t size, str name="volume"):
        self._read = read
        self.offset = offset
        self.size = size
        self.name = name
        self._cache = {}
        self._budget = -1
        self.label = None
        self.version = None
        self._parse_boot_sector()
        self._load_mft()
        self._load_volume_info()

    # -- MFT ---------------------------------------------------------------------
    cdef _load_mft(self):
        """Locate the MFT through its own record 0, following its attribute list."""
        cdef int64_t clusters = (self.record_size * 16 + self.cluster_size - 1) \
            // self.cluster_size
        clusters = min(clusters, self.total_clusters - self.mft_lcn)
        # Bootstrap: the first records lie at the boot sector's LCN.
        self._mft_runs = [(0, self.mft_lcn, clusters)]
        self._mft_size = min(clusters * self.cluster_size, 16 * self.record_size)
        base = self._parse_record(MFT_RECORD_MFT, True)
        flags, base_ref, sequence, attrs, disk = base
        cdef _Attr a, first = None
        for a in attrs:
            if a.type == AT_DATA and a.name == "" and not a.resident and a.start_vcn == 0:
                first = a
        if first is None:
            raise self._error(CorruptImage, "MFT record 0", disk - self.offset,
                              "$MFT has no non-resident $DATA attribute")
        # The base record's own extent covers the records of any extension.
        self._mft_runs = first.runs
        self._mft_size = first.data_size
        cdef _Inode mft = self._inode_from(MFT_RECORD_MFT, base)
        a = mft.find(AT_DATA, "")
        if a is None or a.resident:
            raise self._error(CorruptImage, "MFT record 0", disk - self.offset,
                              "$MFT has no non-resident $DATA attribute")
        if a.data_size < self.record_size * 16:
            raise self._error(CorruptImage, "MFT record 0", disk - self.offset,
                              f"$MFT is {a.data_size} bytes, too small for the "
                              "system files")
        self._mft_runs = a.runs
        self._mft_size = a.data_size
        self._cache.clear()

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

    cdef bytes _read_record(self, int64_t number, int64_t* disk_offset):
        """The raw bytes of MFT record ``number`` (through the MFT's run list)."""
        cdef int64_t start = number * self.record_size
        cdef str where = f"MFT record {number}"
        if number < 0 or start + self.record_size > self._mft_size:
            raise self._error(CorruptImage, where, self.mft_lcn * self.cluster_size,
                              f"record {number} is past the end of the "
                              f"{self._mft_size}-byte MFT")
        return self._read_runs(self._mft_runs, start, self.record_size, where, disk_offset)

    cdef tuple _parse_record(self, int64_t number, bint allow_unused):
        """(flags, base reference, sequence, [attributes], disk offset) of one record."""
        cdef int64_t disk = 0
        cdef str where = f"MFT record {number}"
        rec = bytearray(self._read_record(number, &disk))
        cdef uint8_t[::1] r = rec
        cdef uint8_t* p = &r[0]
        cdef Py_ssize_t size = self.record_size, bad
        vol = disk - self.offset
        if rec[:4] != b"FILE":
            raise self._error(CorruptImage, where, vol,
                              f"signature {bytes(rec[:4])!r} is not b'FILE'")
        bad = apply_fixup(p, size)
        if bad >= 0:
            raise self._error(CorruptImage, where, vol + bad,
                              "update sequence mismatch (torn or corrupt record)")
        flags = le16(p + MFT_FLAGS)
        if not flags & MFT_RECORD_IN_USE and not allow_unused:
            raise self._error(CorruptImage, where, vol, "the record is not in use")
        base_ref = le64(p + MFT_BASE_RECORD)
        sequence = le16(p + MFT_SEQUENCE)
        cdef Py_ssize_t pos = le16(p + MFT_FIRST_ATTRIBUTE)
        cdef Py_ssize_t used = le32(p + MFT_USED_SIZE)
        if used > size or used < MFT_HEADER_MIN:
            used = size
        if pos < MFT_HEADER_MIN or pos % 8 or pos >= used:
            raise self._error(CorruptImage, where, vol + MFT_FIRST_ATTRIBUTE,
                              f"first attribute offset {pos} is outside the record")
        attrs = []
        cdef uint32_t atype
        cdef Py_ssize_t alen, nlen, noff, vlen, voff, roff
        cdef _Attr a
        while True:
            if pos + 4 > used:
                raise self._error(CorruptImage, where, vol + pos,
                                  "attributes run past the record without an end marker")
            atype = le32(p + pos + ATTR_TYPE)
            if atype == AT_END:
                break
            if pos + ATTR_RES_HEADER > used:
                raise self._error(CorruptImage, where, vol + pos, "attribute header truncated")
            alen = le32(p + pos + ATTR_LENGTH)
            if alen < ATTR_RES_HEADER or alen % 8 or pos + alen > used:
                raise self._error(CorruptImage, where, vol + pos,
                                  f"attribute 0x{atype:x} length {alen} is outside the record")
            a = _Attr()
            a.type = atype
            a.record = number
            a.disk_offset = disk + pos
            a.flags = le16(p + pos + ATTR_FLAGS)
            a.ident = le16(p + pos + ATTR_ID)
            nlen = p[pos + ATTR_NAME_LENGTH]
            noff = le16(p + pos + ATTR_NAME_OFFSET)
            if nlen and noff + 2 * nlen > alen:
                raise self._error(CorruptImage, where, vol + pos,
                                  "attribute name is outside the attribute")
            a.name = _utf16(r, pos + noff, nlen) if nlen else ""
            if not p[pos + ATTR_NON_RESIDENT]:
                a.resident = True
                vlen = le32(p + pos + ATTR_RES_VALUE_LENGTH)
                voff = le16(p + pos + ATTR_RES_VALUE_OFFSET)
                if voff + vlen > alen:
                    raise self._error(CorruptImage, where, vol + pos,
                                      f"resident value of attribute 0x{atype:x} is outside it")
                a.value = bytes(rec[pos + voff:pos + voff + vlen])
                a.runs = []
            else:
                if alen < ATTR_NR_HEADER:
                    raise self._error(CorruptImage, where, vol + pos,
                                      "non-resident attribute header truncated")
                a.resident = False
                a.start_vcn = <int64_t>le64(p + pos + ATTR_NR_START_VCN)
                a.end_vcn = <int64_t>le64(p + pos + ATTR_NR_END_VCN)
                a.compression_unit = p[pos + ATTR_NR_COMPRESSION_UNIT]
                a.allocated_size = <int64_t>le64(p + pos + ATTR_NR_ALLOCATED_SIZE)
                a.data_size = <int64_t>le64(p + pos + ATTR_NR_DATA_SIZE)
                a.initialized_size = <int64_t>le64(p + pos + ATTR_NR_INITIALIZED_SIZE)
                roff = le16(p + pos + ATTR_NR_RUNS_OFFSET)
                if roff < ATTR_NR_HEADER or roff > alen:
                    raise self._error(CorruptImage, where, vol + pos + ATTR_NR_RUNS_OFFSET,
                                      f"run list offset {roff} is outside the attribute")
                if a.start_vcn < 0 or a.end_vcn < a.start_vcn - 1 \
                        or a.data_size < 0 or a.initialized_size < 0:
                    raise self._error(CorruptImage, where, vol + pos,
                                      f"attribute 0x{atype:x} has impossible VCNs or sizes")
                a.runs = self._decode_runs(p + pos + roff, alen - roff, a.start_vcn,
                                           where, vol + pos + roff)
            attrs.append(a)
            pos += alen
        return flags, base_ref, sequence, attrs, disk

    # -- files -------------------------------------------------------------------
    cdef _Inode _inode(self, int64_t number):
        cached = self._cache.get(number)
        if cached is not None:
            return <_Inode>cached
        self._spend(1, f"MFT record {number}")
        rec = self._parse_record(number, False)
        cdef _Inode ino = self._inode_from(number, rec)
        if len(self._cache) >= limits.NTFS_INODE_CACHE:
            self._cache.clear()
        self._cache[number] = ino
        return ino

    cdef _spend(self, int64_t n, str where):
        if self._budget < 0:
            return
        self._budget -= n
        if self._budget < 0:
            self._enforce(limits.NTFS_MAX_LOOKUP_STEPS - self._budget, "NTFS_MAX_LOOKUP_STEPS",
                          where, 0, "records and index nodes a lookup visits")

    cdef _Inode _inode_from(self, int64_t number, tuple rec):
        flags, base_ref, sequence, attrs, disk = rec
        cdef str where = f"MFT record {number}"
        if base_ref & REFERENCE_MASK:
            raise self._error(CorruptImage, where, disk - self.offset + MFT_BASE_RECORD,
                              f"record {number} is an extension of record "
                              f"{base_ref & REFERENCE_MASK}, not a file")
        cdef _Inode ino = _Inode()
        ino.number = number
        ino.flags = flags
        ino.sequence = sequence
        ino.disk_offset = disk
        cdef _Attr a, al = None
        for a in attrs:
            if a.type == AT_ATTRIBUTE_LIST:
                al = a
        if al is not None:
            attrs = list(attrs) + self._extension_attrs(number, al, attrs)
        ino.attrs = self._merge(number, attrs)
        return ino

    cdef list _extension_attrs(self, int64_t number, _Attr al, list base_attrs):
        """Attributes of the extension records named by an $ATTRIBUTE_LIST."""
        cdef str where = f"attribute list of MFT record {number}"
        if al.resident:
            data = al.value
        else:
            self._enforce(al.data_size, "NTFS_MAX_ATTRIBUTE_LIST_BYTES", where,
                          al.disk_offset - self.offset, "attribute list size in bytes")
            data = self._read_runs(al.runs, 0, min(al.data_size, al.initialized_size),
                                   where, NULL)
        cdef const uint8_t[::1] b = data
        cdef Py_ssize_t pos = 0, n = len(data), length, entries = 0
        records = []
        listed = []
        seen = {number}
        while pos + AL_MIN_LENGTH <= n:
            length = le16(&b[pos] + AL_LENGTH)
            if length < AL_MIN_LENGTH or pos + length > n:
                raise self._error(CorruptImage, where, al.disk_offset - self.offset,
                                  f"entry at byte {pos} has length {length}")
            entries += 1
            self._enforce(entries, "NTFS_MAX_ATTRIBUTE_LIST_ENTRIES", where,
                          al.disk_offset - self.offset, "attribute list entry count")
            ref = le64(&b[pos] + AL_REFERENCE) & REFERENCE_MASK
            listed.append((ref, le32(&b[pos] + AL_TYPE), le16(&b[pos] + AL_ID), pos))
            if ref not in seen:
                seen.add(ref)
                records.append(ref)
            pos += length
        held = {}
        for a in base_attrs:
            held[number, (<_Attr>a).ident] = a
        for ref in records:
            self._spend(1, where)
            flags, base_ref, sequence, attrs, disk = self._parse_record(ref, False)
            if base_ref & REFERENCE_MASK != <uint64_t>number:
                raise self._error(CorruptImage, f"MFT record {ref}", disk - self.offset,
                                  f"listed as an extension of record {number}, but its base "
                                  f"record is {base_ref & REFERENCE_MASK}")
            for a in attrs:
                held[ref, (<_Attr>a).ident] = a
        # Only the attributes the list names, and each of them must be where it says.
        extra = []
        for ref, atype, ident, pos in listed:
            a = held.get((ref, ident))
            if a is None or (<_Attr>a).type != atype:
                raise self._error(CorruptImage, where, al.disk_offset - self.offset,
                                  f"entry at byte {pos} names attribute 0x{atype:x} id {ident} "
                                  f"in record {ref}, which does not hold it")
            if ref != <uint64_t>number:
                extra.append(a)
        return extra

    cdef list _merge(self, int64_t number, list attrs):
        """Join the extents of each non-resident attribute in VCN order."""
        groups = {}
        order = []
        cdef _Attr a, m
        for a in attrs:
            if a.type == AT_ATTRIBUTE_LIST:
                continue
            key = (a.type, a.name)
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append(a)
        out = []
        for key in order:
            parts = groups[key]
            a = parts[0]
            if a.resident and (len(parts) == 1 or key[0] == AT_FILE_NAME):
                out.extend(parts)   # several $FILE_NAMEs are normal (hard links, DOS)
                continue
            parts.sort(key=lambda x: x.start_vcn)
            m = parts[0]
            if m.resident or m.start_vcn != 0:
                raise self._error(CorruptImage, f"MFT record {number}",
                                  m.disk_offset - self.offset,
                                  f"attribute 0x{m.type:x} {m.name!r} has no first extent")
            runs = list(m.runs)
            next_vcn = m.end_vcn + 1
            for a in parts[1:]:
                if a.resident or a.start_vcn != next_vcn:
                    raise self._error(CorruptImage, f"MFT record {a.record}",
                                      a.disk_offset - self.offset,
                                      f"extent of attribute 0x{a.type:x} starts at VCN "
                                      f"{a.start_vcn}, expected {next_vcn}")
                runs.extend(a.runs)
                next_vcn = a.end_vcn + 1
            if next_vcn * self.cluster_size < m.data_size:
                raise self._error(CorruptImage, f"MFT record {number}",
                                  m.disk_offset - self.offset,
                                  f"attribute 0x{m.type:x} {m.name!r} of {m.data_size} bytes "
                                  f"has extents for only {next_vcn} clusters")
            if len(parts) == 1:
                out.append(m)
                continue
            self._enforce(len(runs), "NTFS_MAX_RUNS", f"MFT record {number}",
                          m.disk_offset - self.offset, "run count")
            merged = _Attr()
            merged.type = m.type
            merged.name = m.name
            merged.resident = False
            merged.flags = m.flags
            merged.value = None
            merged.runs = runs
            merged.start_vcn = 0
            merged.end_vcn = next_vcn - 1
            merged.allocated_size = m.allocated_size
            merged.data_size = m.data_size
            merged.initialized_size = m.initialized_size
            merged.compression_unit = m.compression_unit
            merged.record = m.record
            merged.disk_offset = m.disk_offset
            out.append(merged)
        return out

    cdef bytes _attr_bytes(self, _Inode ino, _Attr a, int64_t start, int64_t length):
        """Bytes of an attribute's value: resident, plain, sparse or compressed."""
        cdef str where = f"MFT record {ino.number}"
        cdef int64_t size = a.size, valid, end
        if start < 0 or start >= size or length <= 0:
            return b""
        end = min(size, start + length)
        if a.resident:
            return bytes(a.value[start:end])
        if a.flags & ATTR_FLAG_ENCRYPTED:
            raise self._error(UnsupportedFeature, where, a.disk_offset - self.offset,
                              f"attribute {a.name or '$DATA'} is EFS-encrypted")
        valid = min(a.initialized_size, size)
        if a.flags & ATTR_FLAG_COMPRESSED and a.compression_unit:
            data = self._read_compressed(ino, a, start, end)
        elif start >= valid:
            return bytes(end - start)
        else:
            data = self._read_runs(a.runs, start, min(end, valid) - start, where, NULL)
            if end > valid:
                data += bytes(end - valid)
            return data
        if end > valid:
            keep = max(0, valid - start)
            data = data[:keep] + bytes(end - start - keep)
        return data

    cdef bytes _read_compressed(self, _Inode ino, _Attr a, int64_t start, int64_t end):
        """Decompress the compression units covering [start, end)."""
        cdef str where = f"MFT record {ino.number}"
        cdef int64_t cs = self.cluster_size
        # A Python int: the shift by a hostile unit must not overflow before the cap sees it.
        self._enforce((<object>cs) << a.compression_unit, "NTFS_MAX_COMPRESSION_UNIT_BYTES",
                      where, a.disk_offset - self.offset,
                      f"compression unit of 2^{a.compression_unit} clusters, in bytes,")
        cdef int64_t unit_clusters = <int64_t>1 << a.compression_unit
        cdef int64_t unit = unit_clusters * cs
        cdef int64_t first = start // unit, last = (end - 1) // unit, u
        cdef int64_t vcn, lcn, count, lo, hi, allocated
        cdef bint sparse_seen, fragmented
        out = bytearray()
        cdef Py_ssize_t i = 0, n = len(a.runs), got
        cdef const uint8_t[::1] src
        cdef uint8_t[::1] dst
        for u in range(first, last + 1):
            lo = u * unit_clusters
            hi = lo + unit_clusters
            pieces = []
            allocated = 0
            sparse_seen = False
            fragmented = False
            while i < n and a.runs[i][0] + a.runs[i][2] <= lo:
                i += 1
            j = i
            while j < n and a.runs[j][0] < hi:
                vcn, lcn, count = a.runs[j]
                s = max(vcn, lo)
                e = min(vcn + count, hi)
                if lcn < 0:
                    sparse_seen = True
                else:
                    if sparse_seen:
                        fragmented = True
                    pieces.append((lcn + (s - vcn), e - s))
                    allocated += e - s
                j += 1
            if allocated == 0:
                out += bytes(unit)
            elif allocated == unit_clusters:
                out += self._read_runs(a.runs, lo * cs, unit, where, NULL)
            else:
                if fragmented:
                    raise self._error(CorruptImage, where, a.disk_offset - self.offset,
                                      f"compression unit {u} has data after its sparse tail")
                stream = b"".join([self._read_volume(l * cs, c * cs, where)
                                   for l, c in pieces])
                unit_out = bytearray(unit)
                src = stream
                dst = unit_out
                with nogil:
                    got = lznt1(&src[0], src.shape[0], &dst[0], unit)
                if got < 0:
                    raise self._error(CorruptImage, where, pieces[0][0] * cs,
                                      f"LZNT1 stream of compression unit {u} is malformed "
                                      f"at byte {-1 - got}")
                out += unit_out
        base = first * unit
        return bytes(out[start - base:end - base])

    # -- $UpCase and names -------------------------------------------------------
    cdef _load_upcase(self):
        if self._upcase != NULL:
            return
        cdef _Inode ino = self._inode(MFT_RECORD_UPCASE)
        cdef _Attr a = ino.find(AT_DATA, "")
        if a is None:
            raise self._error(CorruptImage, "$UpCase", ino.disk_offset - self.offset,
                              "record 10 has no $DATA")
        data = self._attr_bytes(ino, a, 0, UPCASE_UNITS * 2)
        cdef uint16_t* table = <uint16_t*>malloc(UPCASE_UNITS * sizeof(uint16_t))
        if table == NULL:
            raise MemoryError()
        cdef const uint8_t[::1] b = data
        cdef Py_ssize_t i, n = len(data) // 2
        for i in range(UPCASE_UNITS):
            table[i] = le16(&b[2 * i]) if i < n else <uint16_t>i
        self._upcase = table

    cdef bytes _upcased(self, str name):
        """``name`` as UTF-16 code units mapped through $UpCase (native uint16)."""
        raw = name.encode("utf-16-le", "surrogatepass")
        out = bytearray(len(raw))
        cdef const uint8_t[::1] s = raw
        cdef uint16_t[::1] d = memoryview(out).cast("H") if len(raw) else None
        cdef Py_ssize_t i
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
        self._load_upcase()
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
    cdef _Inode _resolve(self, str path):
        parts = [c for c in path.replace("/", "\\").split("\\") if c]
        self._enforce(len(parts), "NTFS_MAX_PATH_COMPONENTS", f"path {path!r}", 0,
                      "path component count")
        self._budget = limits.NTFS_MAX_LOOKUP_STEPS
        cdef _Inode d
        try:
            d = self._inode(MFT_RECORD_ROOT)
            walked = ""
            for part in parts:
                if not d.is_dir:
                    return None
                where = f"index of \\{walked}"
                ref = self._find_in_dir(d, part, where)
                if ref is None:
                    return None
                number = ref & REFERENCE_MASK
                seq = ref >> 48
                d = self._inode(number)
                if seq and d.sequence and seq != d.sequence:
                    raise self._error(CorruptImage, where, d.disk_offset - self.offset,
                                      f"entry {part!r} names record {number} sequence {seq}, "
                                      f"the record has sequence {d.sequence} (stale entry)")
                walked = f"{walked}\\{part}" if walked else part
            return d
        finally:
            self._budget = -1

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
        return [(ref & REFERENCE_MASK, ns, name)
                for ref, ns, name in self._entries(ino, f"index of {path}")]

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

    def __init__(self, NtfsVolume volume, _Inode ino, str stream="", str path=""):
        self.volume = volume
        self._ino = ino
        self.stream = stream
        self.path = path
        self._attr = ino.find(AT_DATA, stream)

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

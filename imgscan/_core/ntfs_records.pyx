"""NTFS's MFT records and attributes: the layer between the run lists and the directory indexes.

:class:`NtfsRecords` locates the MFT through its own record 0, reads and
checks records (update sequence fixups, attribute headers, resident values and
run lists), follows $ATTRIBUTE_LIST into extension records, merges an
attribute's extents and reads attribute data, LZNT1-compressed included, and
the data of CompactOS (WOF) files: a ``WofCompressedData`` stream of XPRESS
Huffman or LZX chunks (:mod:`imgscan._core.wof`) behind a sparse placeholder.
Records are cached (``limits.NTFS_INODE_CACHE``) and a lookup's record and
node visits are counted against ``limits.NTFS_MAX_LOOKUP_STEPS``.
:class:`~imgscan._core.ntfs.NtfsVolume` adds $UpCase, the directory indexes
and the file API.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage, UnsupportedFeature

from .binary cimport le16, le32, le64
# The attribute types and well-known records, declared in c_ntfs (the probe reads them too).
from .c_ntfs import (
    AT_STANDARD_INFORMATION, AT_ATTRIBUTE_LIST, AT_FILE_NAME, AT_VOLUME_NAME,
    AT_VOLUME_INFORMATION, AT_DATA, AT_INDEX_ROOT, AT_INDEX_ALLOCATION, AT_BITMAP, AT_END,
    NAMESPACE_POSIX, NAMESPACE_WIN32, NAMESPACE_DOS, NAMESPACE_WIN32_AND_DOS, MFT_RECORD_MFT,
    MFT_RECORD_VOLUME, MFT_RECORD_ROOT, MFT_RECORD_UPCASE, I30, REFERENCE_MASK, UPCASE_UNITS,
    INDEX_BLOCK_SIZE,
)
from .c_ntfs import (
    AT_REPARSE_POINT, WOF_REPARSE, WOF_PROVIDER_FILE, WOF_PROVIDER_WIM, WOF_ALGORITHMS,
    WOF_ALGORITHM_LZX, WOF_STREAM, IO_REPARSE_TAG_WOF,
)
from .ntfs_codec cimport apply_fixup, lznt1
from .ntfs_reparse import reparse_tag
from .wof cimport lzx, xpress_huffman
from .ntfs_layout cimport *
from .ntfs_runs cimport NtfsRuns


@cython.final
cdef class _Attr:
    """One attribute, merged over its extents when it is non-resident."""
    @property
    def size(self):
        return len(self.value) if self.resident else self.data_size


@cython.final
cdef class _Inode:
    """A file: its base record's header and the attributes of all its records."""
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


cdef class NtfsRecords(NtfsRuns):
    """The MFT of the volume: records, attributes and attribute data, cached."""

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

    # -- reparse points and CompactOS (WOF) files ----------------------------------------
    cdef bytes _reparse_value(self, _Inode ino):
        """The value of the file's $REPARSE_POINT, or None when it has none."""
        cdef _Attr a = ino.find(AT_REPARSE_POINT, "")
        if a is None:
            return None
        self._enforce(a.size, "NTFS_MAX_REPARSE_BYTES", f"MFT record {ino.number}",
                      a.disk_offset - self.offset, "reparse point size in bytes")
        return self._attr_bytes(ino, a, 0, a.size)

    cdef tuple _wof(self, _Inode ino):
        """(chunk size, is LZX, WofCompressedData attribute) of a CompactOS file, or None
        for any other file; a WOF file whose data imgscan cannot reach raises
        UnsupportedFeature saying why (WIMBoot keeps it in a WIM outside the volume)."""
        rp = self._reparse_value(ino)
        if rp is None or reparse_tag(rp) != IO_REPARSE_TAG_WOF:
            return None
        cdef str where = f"MFT record {ino.number}"
        cdef _Attr rpa = ino.find(AT_REPARSE_POINT, "")
        cdef int64_t vol = rpa.disk_offset - self.offset
        if len(rp) < 16:
            raise self._error(CorruptImage, where, vol, "WOF reparse point is truncated")
        fields = WOF_REPARSE.unpack(rp[8:] + bytes(max(0, 24 - len(rp))))
        if fields["wof_provider"] == WOF_PROVIDER_WIM:
            raise self._error(UnsupportedFeature, where, vol,
                              "a WIMBoot file: its data is in a WIM file outside the volume")
        if fields["wof_provider"] != WOF_PROVIDER_FILE or len(rp) < 24 \
                or fields["algorithm"] not in WOF_ALGORITHMS:
            raise self._error(UnsupportedFeature, where, vol,
                              f"WOF provider {fields['wof_provider']} algorithm "
                              f"{fields['algorithm']} is not a CompactOS format imgscan reads")
        name, chunk = WOF_ALGORITHMS[fields["algorithm"]]
        cdef _Attr data = ino.find(AT_DATA, WOF_STREAM)
        if data is None:
            raise self._error(CorruptImage, where, vol,
                              f"a {name} CompactOS file without its {WOF_STREAM} stream")
        self._enforce(chunk, "WOF_MAX_CHUNK_BYTES", where, vol, f"{name} chunk size in bytes")
        return chunk, fields["algorithm"] == WOF_ALGORITHM_LZX, data

    cdef bytearray _wof_chunks(self, _Inode ino, tuple wof, int64_t size, int64_t first,
                               int64_t last):
        """Chunks ``first`` to ``last`` of a CompactOS file of ``size`` bytes, decoded: the
        chunk table's entries for them, then the chunks, decoded in one nogil pass.

        The stream is a table of the offsets of chunks 1..n-1 (4 bytes each, 8 from 4 GiB
        up) relative to its end, then the chunks; a chunk as long as its output is stored
        verbatim."""
        cdef str where = f"MFT record {ino.number}"
        cdef int64_t chunk = wof[0]
        cdef bint is_lzx = wof[1]
        cdef _Attr a = wof[2]
        cdef int64_t vol = a.disk_offset - self.offset
        cdef int64_t n = (size + chunk - 1) // chunk
        cdef int64_t entry = 4 if size <= 0xFFFFFFFF else 8
        cdef int64_t table = (n - 1) * entry
        cdef int64_t stored = a.size - table
        if stored < 0:
            raise self._error(CorruptImage, where, vol,
                              f"{WOF_STREAM} of {a.size} bytes is shorter than the table "
                              f"of {n} chunks")
        cdef int64_t k, lo, hi, p
        # bounds[i]: offset of chunk first + i, the last one the end of chunk ``last``.
        cdef int64_t kmin = max(first, 1), kmax = min(last + 1, n - 1)
        raw = self._attr_bytes(ino, a, (kmin - 1) * entry, (kmax - kmin + 1) * entry) \
            if kmin <= kmax else b""
        cdef const uint8_t* t = raw
        bounds = []
        for k in range(first, last + 2):
            if k == 0:
                bounds.append(0)
            elif k == n:
                bounds.append(stored)
            else:
                p = (k - kmin) * entry
                bounds.append(<int64_t>(le32(t + p) if entry == 4 else le64(t + p)))
        for k in range(first, last + 1):
            lo, hi = bounds[k - first], bounds[k - first + 1]
            if not 0 <= lo <= hi <= stored or hi - lo > min(chunk, size - k * chunk):
                raise self._error(CorruptImage, where, vol,
                                  f"{WOF_STREAM} chunk {k} at [{lo}, {hi}) of {stored} bytes "
                                  "is out of order or larger than its data")
        src_bytes = self._attr_bytes(ino, a, table + bounds[0],
                                     bounds[len(bounds) - 1] - bounds[0])
        out = bytearray(min(size, (last + 1) * chunk) - first * chunk)
        cdef uint8_t[::1] dst = out
        cdef const uint8_t* src = src_bytes
        cdef int64_t base = bounds[0], slen, dlen, got = 0, bad = -1
        cdef int64_t[::1] offs = array_of(bounds)
        with nogil:
            for k in range(first, last + 1):
                lo = offs[k - first] - base
                slen = offs[k - first + 1] - base - lo
                dlen = min(chunk, size - k * chunk)
                if slen == dlen:
                    memcpy(&dst[(k - first) * chunk], src + lo, slen)
                    continue
                if is_lzx:
                    got = lzx(src + lo, slen, &dst[(k - first) * chunk], dlen)
                else:
                    got = xpress_huffman(src + lo, slen, &dst[(k - first) * chunk], dlen)
                if got != dlen:
                    bad = k
                    break
        if bad >= 0:
            raise self._error(CorruptImage, where, vol,
                              f"{'LZX' if is_lzx else 'XPRESS Huffman'} chunk {bad} of "
                              f"{WOF_STREAM} is malformed at its byte {-1 - got}")
        return out


cdef int64_t[::1] array_of(list values):
    """A typed copy of a list of offsets, for the nogil decode loop."""
    out = bytearray(8 * len(values))
    cdef int64_t[::1] view = memoryview(out).cast("q")
    cdef Py_ssize_t i
    for i in range(len(values)):
        view[i] = values[i]
    return view

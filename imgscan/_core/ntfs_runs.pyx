"""An NTFS volume's geometry, bounded raw reads and run lists: the layer under the MFT.

:class:`NtfsRuns` reads the boot sector (declared in :mod:`imgscan._core.c_ntfs`)
for the sector, cluster and record sizes and where $MFT is, reads volume bytes
only inside the volume, and decodes and reads run lists ((length, signed LCN
delta) pairs, a missing delta meaning sparse). :class:`~imgscan._core.ntfs.NtfsVolume`
builds the MFT records, attributes and directory indexes on it. Errors name the
volume, the structure and the *disk* offset, as the reader's do.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage

from . import c_ntfs
from .binary cimport le16, le64
from .c_ntfs import NTFS_BOOT_SECTOR

NTFS_OEM = c_ntfs.OEM_ID
BOOT_SECTOR_SIZE = c_ntfs.BOOT_SECTOR_SIZE
# The boot sector's fields as C offsets, from the one declaration (c_ntfs).
cdef Py_ssize_t BS_OEM = NTFS_BOOT_SECTOR.offset("oem_name")
cdef Py_ssize_t BS_BYTES_PER_SECTOR = NTFS_BOOT_SECTOR.offset("bytes_per_sector")
cdef Py_ssize_t BS_SECTORS_PER_CLUSTER = NTFS_BOOT_SECTOR.offset("sectors_per_cluster")
cdef Py_ssize_t BS_TOTAL_SECTORS = NTFS_BOOT_SECTOR.offset("total_sectors")
cdef Py_ssize_t BS_MFT_LCN = NTFS_BOOT_SECTOR.offset("mft_lcn")
cdef Py_ssize_t BS_MFTMIRR_LCN = NTFS_BOOT_SECTOR.offset("mftmirr_lcn")
cdef Py_ssize_t BS_CLUSTERS_PER_MFT_RECORD = NTFS_BOOT_SECTOR.offset("clusters_per_mft_record")
cdef Py_ssize_t BS_CLUSTERS_PER_INDEX_RECORD = NTFS_BOOT_SECTOR.offset(
    "clusters_per_index_record")
cdef Py_ssize_t BS_SERIAL = NTFS_BOOT_SECTOR.offset("volume_serial_number")

#: Bytes per sector allowed (powers of two).
MIN_SECTOR_SIZE = 256
MAX_SECTOR_SIZE = 4096
#: Largest cluster (Windows 10 1709+ formats up to 2 MiB clusters).
MAX_CLUSTER_SIZE = 2 * 1024 * 1024
#: Smallest MFT / index record (one update-sequence stride).
MIN_RECORD_SIZE = 512


cdef class NtfsRuns:
    """The volume at ``offset`` (``size`` bytes) of the disk ``read`` reads, as far as its
    boot sector and run lists go (the attributes are set by the subclass's ``__init__``)."""

    # -- errors and raw reads ------------------------------------------------
    cdef _error(self, cls, str structure, int64_t vol_offset, str problem):
        return cls(self.name, structure, self.offset + vol_offset, problem)

    cdef _enforce(self, value, str cap, str structure, int64_t vol_offset, str what):
        """:func:`limits.enforce` for a value claimed at volume offset ``vol_offset``."""
        limits.enforce(value, cap, self.name, structure, self.offset + vol_offset, what)

    cdef bytes _read_volume(self, int64_t pos, int64_t length, str structure):
        """``length`` bytes at volume offset ``pos``: inside the volume, all present."""
        if pos < 0 or length < 0 or pos + length > self.size:
            raise self._error(CorruptImage, structure, pos,
                              f"{length} bytes at volume offset {pos} lie outside the "
                              f"{self.size}-byte volume")
        data = self._read(self.offset + pos, length)
        if len(data) != length:
            raise self._error(TruncatedImage, structure, pos + len(data),
                              f"the disk ends inside it ({len(data)} of {length} bytes)")
        return data

    # -- boot sector -----------------------------------------------------------
    cdef _parse_boot_sector(self):
        cdef str where = "boot sector"
        if self.size < BOOT_SECTOR_SIZE:
            raise self._error(TruncatedImage, where, 0,
                              f"the volume is {self.size} bytes, smaller than a boot sector")
        data = self._read_volume(0, BOOT_SECTOR_SIZE, where)
        cdef const uint8_t[::1] b = data
        cdef const uint8_t* p = &b[0]
        if data[BS_OEM:BS_OEM + 8] != NTFS_OEM:
            raise self._error(CorruptImage, where, BS_OEM,
                              f"OEM id {data[BS_OEM:BS_OEM + 8]!r} is not {NTFS_OEM!r}")
        bps = le16(p + BS_BYTES_PER_SECTOR)
        if not MIN_SECTOR_SIZE <= bps <= MAX_SECTOR_SIZE or bps & (bps - 1):
            raise self._error(CorruptImage, where, BS_BYTES_PER_SECTOR,
                              f"bytes per sector {bps} is not a power of two in "
                              f"{MIN_SECTOR_SIZE}..{MAX_SECTOR_SIZE}")
        spc = p[BS_SECTORS_PER_CLUSTER]
        if spc > 0x80:
            # Clusters above 64 KiB: the byte is a negative shift, 2^(256 - n) sectors.
            if 256 - spc > 31:
                raise self._error(CorruptImage, where, BS_SECTORS_PER_CLUSTER,
                                  f"sectors per cluster 2^{256 - spc} is absurd")
            spc = 1 << (256 - spc)
        if spc == 0 or spc & (spc - 1):
            raise self._error(CorruptImage, where, BS_SECTORS_PER_CLUSTER,
                              f"sectors per cluster {spc} is not a power of two")
        cluster = bps * spc
        if cluster > MAX_CLUSTER_SIZE:
            raise self._error(CorruptImage, where, BS_SECTORS_PER_CLUSTER,
                              f"cluster size {cluster} exceeds {MAX_CLUSTER_SIZE}")
        self.sector_size = bps
        self.cluster_size = cluster
        total_sectors = le64(p + BS_TOTAL_SECTORS)
        if total_sectors == 0 or total_sectors > <uint64_t>(self.size // bps):
            raise self._error(CorruptImage, where, BS_TOTAL_SECTORS,
                              f"{total_sectors} sectors of {bps} bytes do not fit the "
                              f"{self.size}-byte volume")
        self.total_clusters = <int64_t>(total_sectors * bps // <uint64_t>cluster)
        self.mft_lcn = <int64_t>min(le64(p + BS_MFT_LCN), <uint64_t>1 << 62)
        self.mftmirr_lcn = <int64_t>min(le64(p + BS_MFTMIRR_LCN), <uint64_t>1 << 62)
        for field, lcn in ((BS_MFT_LCN, self.mft_lcn), (BS_MFTMIRR_LCN, self.mftmirr_lcn)):
            if lcn >= self.total_clusters:
                raise self._error(CorruptImage, where, field,
                                  f"LCN {lcn} is past the volume's {self.total_clusters} "
                                  "clusters")
        self.record_size = self._record_size(<signed char>p[BS_CLUSTERS_PER_MFT_RECORD],
                                             BS_CLUSTERS_PER_MFT_RECORD, "MFT record")
        self.index_record_size = self._record_size(
            <signed char>p[BS_CLUSTERS_PER_INDEX_RECORD], BS_CLUSTERS_PER_INDEX_RECORD,
            "index record")
        self.serial_number = le64(p + BS_SERIAL)

    cdef int64_t _record_size(self, int n, int field, str what) except -1:
        """Clusters per record, or for n < 0 a size of 2^-n bytes."""
        cdef int64_t size
        if n < 0:
            if -n > 31:
                raise self._error(CorruptImage, "boot sector", field,
                                  f"{what} size 2^{-n} is absurd")
            size = <int64_t>1 << -n
        else:
            size = n * self.cluster_size
        if not MIN_RECORD_SIZE <= size <= limits.NTFS_MAX_RECORD_SIZE or size & (size - 1):
            raise self._error(CorruptImage, "boot sector", field,
                              f"{what} size {size} is not a power of two in "
                              f"{MIN_RECORD_SIZE}..{limits.NTFS_MAX_RECORD_SIZE}")
        return size

    cdef list _decode_runs(self, const uint8_t* p, Py_ssize_t n, int64_t vcn, str where,
                           int64_t vol):
        """Decode a run list: [(vcn, lcn, clusters)], lcn -1 for a sparse run."""
        cdef Py_ssize_t pos = 0
        cdef int lsize, osize, i
        cdef uint64_t length
        cdef int64_t lcn = 0, delta
        cdef uint8_t h
        runs = []
        cdef int64_t max_runs = limits.NTFS_MAX_RUNS
        cdef int64_t max_vcn = (<int64_t>1 << 62) // self.cluster_size
        while pos < n:
            h = p[pos]
            if h == 0:
                return runs
            lsize = h & 0x0F
            osize = h >> 4
            if lsize == 0 or lsize > 8 or osize > 8 or pos + 1 + lsize + osize > n:
                raise self._error(CorruptImage, where, vol + pos,
                                  f"run header 0x{h:02x} is malformed")
            length = 0
            for i in range(lsize):
                length |= <uint64_t>p[pos + 1 + i] << (8 * i)
            # A sparse run may be longer than the volume (a hole takes no clusters); an
            # allocated one is held to the volume below, by its LCN.
            if length == 0 or length > <uint64_t>max_vcn:
                raise self._error(CorruptImage, where, vol + pos,
                                  f"run of {length} clusters is larger than any file")
            if osize:
                delta = 0
                for i in range(osize):
                    delta |= <int64_t>(<uint64_t>p[pos + 1 + lsize + i] << (8 * i))
                if osize < 8 and p[pos + lsize + osize] & 0x80:
                    delta -= <int64_t>1 << (8 * osize)      # sign-extend
                lcn += delta
                if lcn < 0 or lcn > self.total_clusters - <int64_t>length:
                    raise self._error(CorruptImage, where, vol + pos,
                                      f"run at LCN {lcn} of {length} clusters lies outside "
                                      f"the volume's {self.total_clusters} clusters")
                runs.append((vcn, lcn, <int64_t>length))
            else:
                runs.append((vcn, -1, <int64_t>length))
            vcn += <int64_t>length
            if vcn > max_vcn:
                # Holes let a file outgrow its volume, but not 2^62 bytes.
                raise self._error(CorruptImage, where, vol + pos,
                                  f"run list maps more than {max_vcn} clusters")
            if len(runs) > max_runs:
                self._enforce(len(runs), "NTFS_MAX_RUNS", where, vol + pos, "run count")
            pos += 1 + lsize + osize
        raise self._error(CorruptImage, where, vol + pos, "run list has no terminator")

    cdef list _run_extents(self, list runs, int64_t start, int64_t length):
        """The disk ranges ``(offset, length)`` (in ``read``'s coordinates) that hold bytes
        [start, start + length) of a run-mapped stream, clipped to the volume; sparse runs
        and what the runs do not map are left out. Never an error: what it gives is only
        announced (``prefetch``), the read itself checks the runs."""
        # Python integers: a hostile run's LCN times the cluster size may not fit 64 bits
        cs = <object>self.cluster_size
        end = <object>start + length
        out = []
        for vcn, lcn, count in runs:     # in VCN order
            if vcn * cs >= end:
                break
            a = max(start, vcn * cs)
            b = min(end, (vcn + count) * cs)
            if lcn < 0 or a >= b:
                continue
            disk = lcn * cs + (a - vcn * cs)
            if 0 <= disk < self.size:
                out.append((self.offset + disk, min(b - a, self.size - disk)))
        return out

    cdef bytes _read_runs(self, list runs, int64_t start, int64_t length, str where,
                          int64_t* disk_offset):
        """Bytes [start, start + length) of a run-mapped stream (sparse = zeros).

        The result is one bytes object filled in place (large hives are read
        this way: every extra buffer costs a page fault per 4 KiB here), and a
        range inside a single run is the disk read itself, with no copy.
        """
        cdef int64_t cs = self.cluster_size, pos = start, end = start + length
        cdef int64_t vcn, lcn, count, run_start, run_end, a, b
        cdef Py_ssize_t lo = 0, hi = len(runs), mid
        cdef bint first = True
        cdef char* dst = NULL
        cdef const uint8_t* src
        out = None
        # Binary search for the first run ending after ``start``.
        while lo < hi:
            mid = (lo + hi) // 2
            vcn, lcn, count = runs[mid]
            if (vcn + count) * cs <= start:
                lo = mid + 1
            else:
                hi = mid
        if disk_offset != NULL:
            disk_offset[0] = self.offset
        cdef Py_ssize_t i = lo
        while pos < end:
            if i >= len(runs):
                raise self._error(CorruptImage, where, 0,
                                  f"the run list ends at byte {pos}, before {end}")
            vcn, lcn, count = runs[i]
            run_start = vcn * cs
            run_end = (vcn + count) * cs
            if run_start > pos:
                raise self._error(CorruptImage, where, 0,
                                  f"the run list has a gap at byte {pos}")
            a = pos
            b = min(end, run_end)
            if first and lcn >= 0 and disk_offset != NULL:
                disk_offset[0] = self.offset + lcn * cs + (a - run_start)
            if first and b == end and lcn >= 0:
                return self._read_volume(lcn * cs + (a - run_start), b - a, where)
            if out is None:
                out = PyBytes_FromStringAndSize(NULL, length)
                dst = PyBytes_AS_STRING(out)
            if lcn >= 0:
                piece = self._read_volume(lcn * cs + (a - run_start), b - a, where)
                src = piece
                memcpy(dst + (a - start), src, b - a)
            else:
                memset(dst + (a - start), 0, b - a)
            first = False
            pos = b
            i += 1
        return b"" if out is None else out

"""The virtual disk reader: guest-visible bytes through an extent map.

Data runs are copied from the mapped file, zero runs are zero, compressed
clusters are decompressed by their container (the last one is cached, since
sequential reads hit it cluster by cluster), and unallocated runs read from
the backing disk when the caller opened one, zeros otherwise.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset

from imgscan import limits
from imgscan.errors import CorruptImage, EncryptedImage, UnsafePath

from .extents cimport ExtentRec, KIND_COMPRESSED, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO
from .source cimport Source

# Zero fills at least this long release the GIL, so threads reading at once
# (a fingerprint's) do not queue behind each other's holes.
cdef uint64_t NOGIL_FILL = 64 * 1024


cdef inline void _zero(uint8_t* dst, uint64_t n) noexcept:
    if n >= NOGIL_FILL:
        with nogil:
            memset(dst, 0, n)
    else:
        memset(dst, 0, n)


cdef class VirtualDisk:
    """Random access to a container's guest bytes.

    ``files`` holds one :class:`Source` per ``file`` index of the map (index 0
    is the image itself); ``None`` marks an external file the caller did not
    allow imgscan to open. ``backing`` is the parent disk, or ``None``.
    """

    def __init__(self, container, list files, VirtualDisk backing=None):
        if container.encrypted:
            raise EncryptedImage(
                container.path, f"{container.format} encryption", None,
                f"guest data is encrypted ({container.encryption}); only the facts can be read",
            )
        self.container = container
        self.emap = container.extent_map()
        self.files = files
        self.backing = backing
        self.size = container.virtual_size
        self.wants_prefetch = any(f is not None and f.wants_prefetch for f in files)
        self._cached = None
        self._cached_host = 0

    def read(self, uint64_t offset, Py_ssize_t length):
        """Up to ``length`` guest bytes at ``offset`` (short at the end of the disk)."""
        return self.read_bytes(offset, length)

    cdef bytes read_bytes(self, uint64_t offset, Py_ssize_t length):
        """:meth:`read` for a caller in C (the volume probes): no bound method made, no
        Python call."""
        if length < 0:
            raise ValueError("negative length")
        if length > limits.MAX_READ:
            raise ValueError(f"read of {length} bytes exceeds limits.MAX_READ")
        cdef uint64_t n = self._clamp(offset, length)
        # Filled in place before anyone sees it: one allocation, not a
        # bytearray and a copy (fresh pages cost a fault each here).
        out = PyBytes_FromStringAndSize(NULL, n)
        if n:
            self._fill(offset, <uint8_t*>PyBytes_AS_STRING(out), n)
        return out

    cdef uint64_t read_into(self, uint64_t offset, uint8_t* dst, uint64_t length) except? 0:
        """Fill ``dst`` (``length`` bytes, the caller's buffer) with guest bytes at
        ``offset``; return the count read, short at the end of the disk. For fixed reads
        whose bytes are only compared (the probes' far signatures): no bytes object."""
        cdef uint64_t n = self._clamp(offset, length)
        if n:
            self._fill(offset, dst, n)
        return n

    def readinto(self, uint64_t offset, buffer, *, bint mapped=True):
        """Fill ``buffer`` with guest bytes at ``offset``; return the count read.

        ``mapped=False`` copies stored data with ``pread``, never through the
        file's memory map (see ``Source.copy_into``): for one pass over the
        whole disk, in threads, with memory that stays flat.
        """
        cdef uint8_t[::1] dst = buffer
        cdef uint64_t n = self._clamp(offset, dst.shape[0])
        if n:
            self._fill(offset, &dst[0], n, mapped)
        return n

    def prefetch(self, ranges, str structure, near=()):
        """Announce guest ranges ``(offset, length)`` that will be read next (``near``:
        with their neighbourhood): each is passed on, through the map, as the host
        ranges of its stored data to the file that holds them (``Source.prefetch``);
        zeros, holes and compressed clusters have nothing to announce."""
        hosts = {}
        self._to_hosts(ranges, hosts, 0)
        self._to_hosts(near, hosts, 1)
        for index, (host_ranges, host_near) in hosts.items():
            self.files[index].prefetch(host_ranges, structure, host_near)

    cdef _to_hosts(self, ranges, dict hosts, int which):
        """Add the host ranges of the stored data of guest ``ranges`` to
        ``hosts[file index][which]``."""
        cdef Py_ssize_t idx
        cdef ExtentRec* e
        cdef uint64_t offset, end, take
        for start, length in ranges:
            if start < 0 or length <= 0 or start >= self.size:
                continue
            offset = start
            end = min(<uint64_t>start + <uint64_t>length, self.size)
            while offset < end:
                idx = self.emap.find(offset)
                if idx < 0:
                    break
                e = &self.emap.ext[idx]
                take = min(e.start + e.length, end) - offset
                if e.kind == KIND_DATA and e.file < len(self.files) \
                        and self.files[e.file] is not None:
                    hosts.setdefault(e.file, ([], []))[which].append(
                        (e.host + offset - e.start, take))
                offset += take

    def stored(self, uint64_t offset, uint64_t length):
        """``(source, host)`` when guest bytes ``[offset, offset + length)`` are stored
        verbatim and contiguously at ``host`` inside one open file, else ``None``.

        Such a range (all of a raw or fixed VHD disk, a run of contiguous data
        clusters) can be hashed straight from ``source.view`` without a copy.
        """
        cdef Py_ssize_t idx = self.emap.find(offset)
        if idx < 0 or length == 0:
            return None
        cdef ExtentRec* e = &self.emap.ext[idx]
        if e.kind != KIND_DATA or length > e.start + e.length - offset:
            return None
        src = self.files[e.file] if e.file < len(self.files) else None
        host = e.host + (offset - e.start)
        if src is None or not src.contains(host, length):
            return None
        return src, host

    cdef uint64_t _clamp(self, uint64_t offset, uint64_t length):
        if offset >= self.size:
            return 0
        return min(length, self.size - offset)

    cdef int _fill(self, uint64_t offset, uint8_t* dst, uint64_t n,
                   bint mapped=True) except -1:
        cdef Py_ssize_t idx
        cdef ExtentRec* e
        cdef uint64_t within, take, avail
        cdef Source src
        cdef const uint8_t[::1] cluster
        while n:
            idx = self.emap.find(offset)
            if idx < 0:
                raise CorruptImage(self.container.path, "extent map", offset,
                                   "guest offset not covered by the map")
            e = &self.emap.ext[idx]
            within = offset - e.start
            take = min(e.length - within, n)
            if e.kind == KIND_DATA:
                src = self.files[e.file] if e.file < len(self.files) else None
                if src is None:
                    raise UnsafePath(
                        self.container.path, "external file", e.host + within,
                        "guest data lives in another file, which is opened only inside "
                        "the directory given as external_dir",
                    )
                src.copy_into(e.host + within, dst, take, mapped)
            elif e.kind == KIND_ZERO:
                _zero(dst, take)
            elif e.kind == KIND_UNALLOCATED:
                if self.backing is not None and offset < self.backing.size:
                    avail = min(take, self.backing.size - offset)
                    self.backing._fill(offset, dst, avail, mapped)
                    _zero(dst + avail, take - avail)
                else:
                    _zero(dst, take)
            elif e.kind == KIND_COMPRESSED:
                if self._cached is None or self._cached_host != e.host:
                    self._cached = self.container.decompress(e.host, e.aux)
                    self._cached_host = e.host
                cluster = self._cached
                if <uint64_t>cluster.shape[0] < within + take:
                    raise CorruptImage(self.container.path, "compressed cluster", e.host,
                                       "decompresses to fewer bytes than the cluster")
                memcpy(dst, &cluster[within], take)
            offset += take
            dst += take
            n -= take
        return 0

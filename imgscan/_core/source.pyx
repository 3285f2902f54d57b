"""The source stage: an image file as read-only, bounds-checked bytes.

Two ways in, each where it is cheaper. Headers and other small structures
are read with ``pread``: a page fault on a fresh mapping costs several
microseconds here, a small ``pread`` well under one, and opening an image
reads a handful of them. Large tables and guest data go through a read-only
memory map, made on first need, so multi-gigabyte images cost address space,
not memory, and tables are walked without copies. Where mmap is impossible
(an empty file, a character device, a pipe) or refused (``use_mmap=False``)
everything is served with ``pread``.

A source may also be a window of its file (:func:`window`): the bytes
``[base, base + length)``, such as a disk stored as a member of an OVA (a tar
archive), read in place. Its offsets, its size and every bounds check are the
window's; ``base`` is added only where the file is touched (``pread``, the
map, ``lseek``), so a decoder cannot tell a window from a whole file and
cannot read outside it.

Every read is checked against the file size before any byte is touched: an
offset or length taken from the file can never read outside it. Reads that a
format defines as zero past the end of the file (a last data cluster the
writer never extended the file to cover, as qemu reads it) go through
:meth:`Source.read_zero_padded` or ``copy_into``, which are explicit about it.
"""

import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.exc cimport (PyErr_CheckSignals, PyErr_SetFromErrno,
                          PyErr_SetFromErrnoWithFilenameObject)
from libc.errno cimport EINTR, EISDIR, ENXIO, ESPIPE, errno as c_errno
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset
from posix.fcntl cimport F_GETFL, F_SETFL, O_CLOEXEC, O_NONBLOCK, O_RDONLY, fcntl, open as c_open
from posix.mman cimport MADV_DONTNEED, madvise
from posix.stat cimport S_ISBLK, S_ISDIR, S_ISFIFO, S_ISREG, S_ISSOCK, fstat, struct_stat
from posix.types cimport off_t
from posix.unistd cimport _SC_PAGESIZE, SEEK_END, close as c_close, lseek, pread, sysconf

from imgscan.errors import ImageError, TruncatedImage

#: Why an open expecting one file (``Source(identity=...)``) refused what is at its path.
NOT_EXPECTED = "not the file expected (replaced since it was listed)"

# Views at least this long come from the map; shorter ones from one pread.
cdef uint64_t MAP_THRESHOLD = 256 * 1024



cdef ssize_t _read_at(int fd, void* dst, size_t length, off_t offset) noexcept:
    """One ``pread``, the GIL released, so a cold or remote disk never stalls the
    process's other threads. Returns what ``pread`` returns (short reads included),
    ``errno`` set.

    Not ``preadv2`` with ``RWF_NOWAIT`` holding the GIL for what the page cache holds (as
    from wt/i18r): that saved the GIL's round trip (a few hundred instructions a read)
    but the kernel's vectored path costs more than that here: a 4 KiB read 100-300 ns
    more than ``pread`` (a C loop of 20,000 of each, alternated), and the small images'
    open and info, 12 to 16 reads each, took 0.5 to 3.6 us less CPU time with ``pread``
    (20 alternated pairs, issue 18)."""
    cdef ssize_t got
    with nogil:
        got = pread(fd, dst, length, offset)
    return got


cdef extern from "<unistd.h>" nogil:
    enum: SEEK_DATA
    enum: SEEK_HOLE


cdef off_t _seek(int fd, uint64_t offset, int whence) noexcept:
    """``lseek`` in C (``os.lseek`` was a module lookup and an exception per hole), the
    GIL released: ``SEEK_DATA`` may read a cold file's extent tree. -1 with ``errno``
    set on failure."""
    cdef off_t found
    with nogil:
        found = lseek(fd, <off_t>offset, whence)
    return found


cdef int _open_read_only(str path, uint64_t* size, const uint64_t* identity) except -1:
    """A descriptor of ``path`` opened read-only, as Python's ``open(path, "rb")`` would
    open it (the same errors, a directory refused), its size in ``size``: without the file
    object, and with one ``fstat``, opening a file object and asking its size was a tenth
    of a small image's detection (issue 18).

    ``identity``, when not NULL, is the device and inode the caller expects (a scan's
    walk saw them): that one ``fstat`` checks it before anything else is done with the
    descriptor, so any other file now at ``path`` (a copy, a character device) is refused,
    its descriptor closed, before its flags are changed or its end sought (one ``fstat``
    an image, not a second one after the open, issue 18).

    Opened without blocking: a FIFO named as an image (or put in place of one after a
    scan's walk saw a file there) would otherwise block the open until a writer came, a
    hang no time limit should have to end. It is refused instead, as a socket is; a
    character device gets its blocking reads back."""
    cdef bytes name = os.fsencode(path)
    if b"\0" in name:
        raise ValueError("embedded null byte")
    cdef int fd
    cdef struct_stat st
    while True:
        fd = c_open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd >= 0:
            break
        if c_errno != EINTR:
            PyErr_SetFromErrnoWithFilenameObject(OSError, path)
        PyErr_CheckSignals()
    cdef bint stated = fstat(fd, &st) == 0
    cdef long long end
    if identity != NULL and not (stated and st.st_dev == identity[0]
                                 and st.st_ino == identity[1]):
        c_close(fd)
        raise ImageError(path, "file", None, NOT_EXPECTED)
    if stated and S_ISDIR(st.st_mode):
        c_close(fd)
        raise IsADirectoryError(EISDIR, os.strerror(EISDIR), path)
    if stated and S_ISREG(st.st_mode):
        size[0] = st.st_size
        return fd
    if stated and (S_ISFIFO(st.st_mode) or S_ISSOCK(st.st_mode)):
        c_close(fd)
        raise OSError(ESPIPE, "a FIFO or socket, not an image file (not read: it would "
                      "wait for a writer)", path)
    if stated and not S_ISBLK(st.st_mode):
        # O_NONBLOCK means nothing to a file or a block device; a character device's
        # reads would fail with EAGAIN under it
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
    # the end of anything else (a block device's stat does not give its size)
    end = lseek(fd, 0, SEEK_END)
    if end < 0:
        err = c_errno                   # close may set errno: the error is lseek's
        c_close(fd)
        raise OSError(err, os.strerror(err), path)
    size[0] = end
    return fd


cdef class Source:
    """One image file, opened read-only.

    ``use_mmap=False`` serves every read with ``pread`` (for filesystems where
    a file shrinking under a mapping would raise SIGBUS, and for tests).
    ``read`` and ``view`` raise :class:`~imgscan.errors.TruncatedImage`
    naming the file, the structure being read and its offset when the range
    is not wholly inside the file. ``wants_prefetch`` says whether :meth:`prefetch`
    does anything (false for a file; true for a remote object).

    ``identity`` (``(device, inode)``) is the file the caller expects at ``path``: any
    other is refused with :class:`~imgscan.errors.ImageError` (:data:`NOT_EXPECTED`)
    before a byte of it is read.
    """

    # __init__, not __cinit__: a subclass that fetches its bytes elsewhere (the remote
    # source, imgscan/_core/remote.pyx) is made without opening a local file.
    def __init__(self, str path, bint use_mmap=True, identity=None):
        self.path = path
        self.base = 0
        self._mmap = None
        self.mapped = False
        self.wants_prefetch = False
        self._head = self._tail = None
        self._use_mmap = use_mmap
        cdef uint64_t size = 0
        cdef uint64_t expected[2]
        cdef const uint64_t* want = NULL
        if identity is not None:
            expected[0], expected[1] = identity
            want = expected
        self._fd = _open_read_only(path, &size, want)
        self.size = size

    def __cinit__(self, *args, **kwargs):
        # before any __init__ (a subclass's too): no descriptor yet
        self._fd = -1

    def __dealloc__(self):
        # a source dropped unclosed (an error path): its descriptor and kept reads go with it
        self.keep_reads(NULL, NULL, 0)
        self._close_fd()

    cdef void _close_fd(self) noexcept:
        if self._fd >= 0:
            c_close(self._fd)
            self._fd = -1

    cpdef bint map(self):
        """Map the file now if it can be; return whether it is mapped."""
        if self.mapped or not self._use_mmap or self.size == 0 or self._fd < 0:
            return self.mapped
        # imported at the first map: a view of at least MAP_THRESHOLD bytes (a command that
        # reads headers and small tables, `imgscan info` of most images, never maps)
        import mmap
        try:
            mapping = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError, OverflowError):
            self._use_mmap = False
            return False
        if self.mapped:
            # Another thread mapped the file while mmap() ran without the GIL:
            # keep its map, which views may already point into.
            mapping.close()
            return True
        self._mmap = mapping
        self._view = self._mmap
        self.mapped = True
        return True

    def close(self):
        """Release the mapping and the file descriptor (idempotent)."""
        if self._mmap is not None:
            self._view = None
            try:
                self._mmap.close()
            except BufferError:
                # A view handed out by view() is still alive; the mapping is
                # released when the last view goes.
                pass
            self._mmap = None
        self.mapped = False
        self._head = self._tail = None
        self.keep_reads(NULL, NULL, 0)
        self._close_fd()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    cdef int _check(self, uint64_t offset, uint64_t length, str structure) except -1:
        if offset > self.size or length > self.size - offset:
            raise TruncatedImage(
                self.path, structure, offset,
                f"needs {length} bytes but the file ends at {self.size}",
            )
        return 0

    cpdef bint contains(self, offset, length) except -1:
        """Whether ``[offset, offset + length)`` lies wholly inside the file.

        Python ints, not uint64: decoders pass values computed from header fields
        (sectors times 512, ...), which a hostile file can push past 2**64 or
        below zero; such a range is simply not inside the file. ``cpdef``: a decoder
        holding a typed Source calls it in C (a method call was about 0.9 k
        instructions, issue 18).
        """
        return 0 <= offset <= self.size and 0 <= length <= self.size - offset

    cpdef bytes read(self, uint64_t offset, uint64_t length, str structure):
        """Return ``length`` bytes at ``offset``; ``structure`` names them in errors."""
        self._check(offset, length, structure)
        if length == 0:
            return b""
        kept = self._kept(offset, length)
        if kept is not None:
            return kept
        return self._pread(offset, length, structure)

    cpdef object view(self, uint64_t offset, uint64_t length, str structure):
        """Like :meth:`read`, without a copy for large ranges where the file is mapped.

        The result supports the buffer protocol (a memoryview or bytes).
        """
        self._check(offset, length, structure)
        if length == 0:
            return b""
        if length >= MAP_THRESHOLD and self.map():
            return memoryview(self._mmap)[self.base + offset:self.base + offset + length]
        kept = self._kept(offset, length)
        if kept is not None:
            return kept
        return self._pread(offset, length, structure)

    cdef int keep_ends(self, bytes head, bytes tail, uint64_t tail_start) except -1:
        """Keep ``head``, the file's first bytes, and ``tail``, its bytes from
        ``tail_start`` to the end, as format detection read them
        (:class:`~imgscan._core.signatures.Peek`): the decoder's header (or footer)
        reads and the conflict checks that follow look there again, so they are served
        from them, without a system call each."""
        self._head = head
        self._tail = tail
        self._tail_start = tail_start
        return 0

    cdef void keep_reads(self, const uint64_t* at, const uint64_t* length, int n) noexcept:
        """Keep the bytes of each read made from now on that holds one of the ``n``
        ranges ``[at[i], at[i] + length[i])`` (the arrays outlive the keeping): later
        reads inside a kept one are served from it, as from the kept ends. ``n = 0``
        stops, and forgets them.

        For format detection, while the decoder opens a file whose format its first
        bytes decided (:meth:`SignatureTable.read_far_after`): the far signatures read
        after it (the LUKS2 secondary headers at 64 KiB, 128 KiB and 256 KiB, where a
        VHDX's headers and second region table lie) are served from the decoder's reads,
        not a system call each (issue 18). Only the reads that hold one are kept (the
        others are freed as they were), at most ``KEEP_MAX``, each a bytes object the
        read made anyway."""
        cdef int i
        for i in range(self._n_reads):
            Py_XDECREF(self._reads[i])
        self._n_reads = 0
        self._want_at = at
        self._want_len = length
        self._n_want = n

    cdef const char* _kept_at(self, uint64_t offset, uint64_t length):
        """Where ``[offset, offset + length)`` (inside the file) lies in the kept ends or
        reads, or NULL."""
        cdef int i
        if self._head is not None and offset + length <= <uint64_t>len(self._head):
            return <const char*>self._head + offset
        if self._tail is not None and offset >= self._tail_start:
            return <const char*>self._tail + (offset - self._tail_start)
        for i in range(self._n_reads):
            if self._reads_at[i] <= offset and \
                    offset - self._reads_at[i] + length <= self._reads_len[i]:
                return self._reads_data[i] + (offset - self._reads_at[i])
        return NULL

    cdef object _kept(self, uint64_t offset, uint64_t length):
        """``[offset, offset + length)`` (inside the file) from the kept ends or reads, or
        None."""
        cdef const char* at = self._kept_at(offset, length)
        if at == NULL:
            return None
        return at[:length]

    def prefetch(self, ranges, str structure, near=()):
        """A hint: the ``(offset, length)`` ranges in ``ranges`` will be read next.

        A stage that knows the structures it needs next (format detection's
        signatures, each partition's first sectors) announces them, so that a
        source for which each read costs a round trip
        (:class:`imgscan._core.remote.RemoteSource`) fetches them together;
        the ranges in ``near`` are read with their neighbourhood. Nothing to do
        for a file: its reads are cheap, and ``wants_prefetch`` is false, so a stage
        need not even build the list for it.
        """

    def drop(self, uint64_t offset, uint64_t length):
        """Unmap the map's pages over ``[offset, offset + length)`` from this process.

        After one pass over a range through :meth:`view` (a fingerprint hashes
        a big file straight from the map): pages touched through a map stay
        resident in the process, so without this its memory would grow with
        the file. The page cache keeps them, and views stay valid: touching
        the range again maps the same bytes back. Whole pages are dropped,
        which may include a page or two beyond the range.
        """
        if not self.mapped or length == 0 or offset >= self.size:
            return
        cdef uint64_t page = sysconf(_SC_PAGESIZE)
        cdef uint64_t start = self.base + offset - (self.base + offset) % page
        cdef uint64_t end = self.base + min(offset + length, self.size)
        with nogil:
            madvise(<void*>&self._view[start], end - start, MADV_DONTNEED)

    def read_zero_padded(self, uint64_t offset, uint64_t length):
        """Return ``length`` bytes at ``offset``, zeros where the file has ended.

        Only for data a format defines as zero past the end of the file.
        """
        out = PyBytes_FromStringAndSize(NULL, length)
        if length:
            # filled in place before anyone sees it: no bytearray, no copy of it
            self.copy_into(offset, <uint8_t*>PyBytes_AS_STRING(out), length)
        return out

    cdef int copy_into(self, uint64_t offset, uint8_t* dst, uint64_t length,
                       bint may_map=True) except -1:
        """Copy ``length`` bytes at ``offset`` into ``dst``, zero-filling past EOF.

        ``may_map=False`` copies with ``pread`` even where the file is mapped:
        for one pass over much of the file (a fingerprint's chunks), where every
        page touched through the map would stay resident in the process, so
        memory would grow with the file.
        """
        cdef uint64_t avail = 0, done = 0
        cdef ssize_t got
        if offset < self.size:
            avail = min(self.size - offset, length)
        cdef const char* kept = self._kept_at(offset, avail) if avail else NULL
        if kept != NULL:
            memcpy(dst, kept, avail)
            done = avail
        if done < avail and may_map and (self.mapped or (avail >= MAP_THRESHOLD and self.map())):
            with nogil:
                memcpy(dst, &self._view[self.base + offset], avail)
            done = avail
        while done < avail:
            got = _read_at(self._fd, dst + done, avail - done, self.base + offset + done)
            if got <= 0:
                raise TruncatedImage(self.path, "data", offset + done,
                                     "the file ended or failed while reading")
            done += got
        if done < length:
            memset(dst + done, 0, length - done)
        return 0

    cdef bytes _pread(self, uint64_t offset, uint64_t length, str structure):
        """``length`` bytes at ``offset`` (checked by the caller), with ``pread`` straight
        into the result: no chunks joined, no Python-level call per read."""
        out = PyBytes_FromStringAndSize(NULL, length)
        cdef char* dst = PyBytes_AS_STRING(out)
        cdef uint64_t got = 0
        cdef ssize_t n
        while got < length:
            n = _read_at(self._fd, dst + got, min(length - got, <uint64_t>1 << 30),
                         self.base + offset + got)
            if n < 0:
                if c_errno == EINTR:
                    PyErr_CheckSignals()
                    continue
                PyErr_SetFromErrno(OSError)
            if n == 0:
                raise TruncatedImage(self.path, structure, offset + got,
                                     "the file ended while reading")
            got += n
        if self._n_want and self._n_reads < KEEP_MAX:
            self._keep_if_wanted(out, offset, length)
        return out

    cdef void _keep_if_wanted(self, bytes out, uint64_t offset, uint64_t length) noexcept:
        """Keep ``out``, the read of ``[offset, offset + length)``, when it holds a range
        :meth:`keep_reads` asked for (the caller checked there is room)."""
        cdef int i
        for i in range(self._n_want):
            if offset <= self._want_at[i] and \
                    self._want_at[i] - offset + self._want_len[i] <= length:
                Py_INCREF(out)
                self._reads[self._n_reads] = <PyObject*>out
                self._reads_data[self._n_reads] = PyBytes_AS_STRING(out)
                self._reads_at[self._n_reads] = offset
                self._reads_len[self._n_reads] = length
                self._n_reads += 1
                return

    def data_runs(self, uint64_t start, uint64_t end):
        """Host ranges in ``[start, end)`` as ``(offset, length, is_data)``.

        Uses ``SEEK_DATA`` / ``SEEK_HOLE``, so holes in a sparse file are
        reported as such (qemu's file driver does the same). Where the
        filesystem cannot tell, the whole range is data.
        """
        runs = []
        if end > self.size:
            end = self.size
        if start >= end:
            return runs
        cdef uint64_t base = self.base, pos = start + base, data, hole
        cdef off_t found
        end += base
        while pos < end:
            found = _seek(self._fd, pos, SEEK_DATA)
            # ENXIO: only a hole after pos; anything else: unknown, call it data
            data = (end if c_errno == ENXIO else pos) if found < 0 else <uint64_t>found
            if data > end:
                data = end
            if data > pos:
                runs.append((pos - base, data - pos, False))
                pos = data
                continue
            found = _seek(self._fd, pos, SEEK_HOLE)
            hole = end if found < 0 else <uint64_t>found
            if hole > end:
                hole = end
            if hole <= pos:
                hole = end
            runs.append((pos - base, hole - pos, True))
            pos = hole
        return runs


def window(str path, uint64_t base, uint64_t length, str name, bint use_mmap=True):
    """A :class:`Source` over ``[base, base + length)`` of the file at ``path``.

    For a disk stored inside another file (an OVA's tar member) and read in
    place. ``name`` replaces the path in every error the window raises (say
    ``pkg.ova [disk1.vmdk]``), so a message names the package and the member;
    offsets in errors are the member's. Raises :class:`TruncatedImage` when
    the window does not lie wholly inside the file.
    """
    cdef Source src = Source(path, use_mmap)
    if base > src.size or length > src.size - base:
        src.close()
        raise TruncatedImage(name, "archive member", base,
                             f"needs {length} bytes but the file ends at {src.size}")
    src.base = base
    src.size = length
    src.path = name
    return src

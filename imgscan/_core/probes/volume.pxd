# The volume a probe reads, and the field and text helpers every probe shares
# (volume.pyx says why each exists).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp

from ..binary cimport be16, be32, be64, le16, le32, le64
from ..vdisk cimport VirtualDisk

cdef enum:
    # The first region every volume is read for (volume.pyx: HEAD_BYTES).
    HEAD_SIZE = 8192


cdef class Probe:
    cdef object read
    #: The disk whose ``read`` method ``read`` is, read from C; None for another reader.
    cdef VirtualDisk disk
    cdef uint64_t base
    cdef uint64_t size
    cdef bytes head
    cpdef bytes get(self, uint64_t rel, uint64_t length)
    cdef bytes at(self, uint64_t rel, uint64_t length)
    cdef uint64_t fill(self, uint64_t rel, uint8_t* dst, uint64_t length) except? 0
    cdef uint64_t _within(self, uint64_t rel, uint64_t length) noexcept


cdef str rtrim(str text)
cdef object label8(bytes raw, str encoding=*)
cdef object label16(bytes raw, str encoding)
cdef object uuid_or_none(bytes raw)
cdef str cstr(bytes raw, tuple field)


cdef inline bint pow2(uint64_t v) noexcept:
    return v != 0 and (v & (v - 1)) == 0


# Field readers: a field that lies (partly) outside the bytes read is 0, so a
# short read can only make a probe fail its checks, never read out of bounds.

cdef inline uint64_t uint_at(bytes buf, Py_ssize_t off, Py_ssize_t width, bint big):
    """The unsigned ``width``-byte (2, 4 or 8) field at ``off`` of ``buf``, 0 outside it."""
    cdef const uint8_t* f
    if off < 0 or off + width > len(buf):
        return 0
    f = (<const uint8_t*>buf) + off
    if width == 2:
        return be16(f) if big else le16(f)
    if width == 4:
        return be32(f) if big else le32(f)
    return be64(f) if big else le64(f)


cdef inline uint16_t le16_at(bytes buf, Py_ssize_t off):
    return <uint16_t>uint_at(buf, off, 2, False)


cdef inline uint32_t le32_at(bytes buf, Py_ssize_t off):
    return <uint32_t>uint_at(buf, off, 4, False)


cdef inline uint64_t le64_at(bytes buf, Py_ssize_t off):
    return uint_at(buf, off, 8, False)


cdef inline uint16_t be16_at(bytes buf, Py_ssize_t off):
    return <uint16_t>uint_at(buf, off, 2, True)


cdef inline uint32_t be32_at(bytes buf, Py_ssize_t off):
    return <uint32_t>uint_at(buf, off, 4, True)


cdef inline uint64_t be64_at(bytes buf, Py_ssize_t off):
    return uint_at(buf, off, 8, True)


cdef inline bint bytes_in(const uint8_t* buf, Py_ssize_t size, Py_ssize_t off,
                          bytes expected) noexcept:
    """The ``size`` bytes at ``buf`` hold ``expected`` at ``off`` (False when they end
    before): a signature compared in place, in a bytes object or a probe's own buffer."""
    cdef Py_ssize_t n = len(expected)
    if off < 0 or off + n > size:
        return False
    return memcmp(buf + off, <const char*>expected, n) == 0


cdef inline bint bytes_at(bytes buf, Py_ssize_t off, bytes expected):
    """``buf`` holds ``expected`` at ``off`` (False when it ends before): where slicing
    ``buf`` would make a bytes object per probe."""
    return bytes_in(<const uint8_t*>buf, len(buf), off, expected)

"""The volume a probe reads, what a probe reports, and the helpers every probe shares.

:class:`Probe` holds one volume's bounds and its first :data:`HEAD_BYTES`,
read once and shared by every probe that looks there; :class:`Volume` is the
answer in blkid's words. Labels and UUIDs are spelled by the same few rules
(blkid's) whatever the format, so those helpers live here too.
"""

from cpython.method cimport PyMethod_Check, PyMethod_GET_FUNCTION, PyMethod_GET_SELF
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from ..guid_text cimport rfc_uuid_text
from ..vdisk cimport VirtualDisk

#: The function a VirtualDisk's bound ``read`` wraps: a Probe given one reads that disk
#: from C.
cdef object DISK_READ = VirtualDisk.read

#: The first region every volume is read for: boot sectors, LUKS/LVM2/XFS/ext
#: superblocks, the swap signature for 4 and 8 KiB pages, MD 1.1 and 1.2.
HEAD_BYTES = HEAD_SIZE  # (volume.pxd: a C constant for the probes)

USAGE_FILESYSTEM, USAGE_CRYPTO, USAGE_RAID, USAGE_OTHER = "filesystem", "crypto", "raid", "other"


class Volume:
    """What a volume holds, in blkid's words (``filesystem`` is its TYPE)."""

    __slots__ = ("filesystem", "label", "uuid", "size", "encrypted", "version", "usage",
                 "details")

    def __init__(self, filesystem, label=None, uuid=None, size=None, encrypted=False,
                 version=None, usage=USAGE_FILESYSTEM, details=None):
        self.filesystem = filesystem
        self.label = label
        self.uuid = uuid
        self.size = size
        self.encrypted = encrypted
        self.version = version
        self.usage = usage
        self.details = {} if details is None else details

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self):
        return f"Volume({self.as_dict()!r})"

    def __eq__(self, other):
        return isinstance(other, Volume) and self.as_dict() == other.as_dict()


# -- text helpers ------------------------------------------------------------

cdef str rtrim(str text):
    """blkid's label rules: stop at the first NUL, drop trailing white space."""
    cdef Py_ssize_t nul = text.find("\x00")
    if nul >= 0:
        text = text[:nul]
    return text.rstrip(" \t\n\r\v\f")


cdef object label8(bytes raw, str encoding="utf-8"):
    """A byte label as text, or None when empty."""
    cdef Py_ssize_t nul = raw.find(b"\x00")
    if nul >= 0:
        raw = raw[:nul]
    text = rtrim(raw.decode(encoding, "replace"))
    return text or None


cdef object label16(bytes raw, str encoding):
    """A UTF-16 label as text (decoded whole code units only), or None when empty."""
    text = rtrim(raw[:len(raw) & ~1].decode(encoding, "replace"))
    return text or None


cdef object uuid_or_none(bytes raw):
    """RFC 4122 text, or None for the all-zero UUID (blkid prints none)."""
    if len(raw) != 16 or not any(raw):
        return None
    return rfc_uuid_text(<const uint8_t*>raw)  # 16 bytes, checked above


cdef str cstr(bytes raw, tuple field):
    """The NUL-padded ASCII string at ``field`` = (offset, length), "" when empty."""
    start, length = field
    return label8(raw[start:start + length], "ascii") or ""


# -- the volume being probed ------------------------------------------------

cdef class Probe:
    """One volume: bounded reads relative to its start, and the shared head region."""

    def __init__(self, read, uint64_t base, uint64_t size, bytes head=None):
        """``head``: the volume's first bytes (at least HEAD_BYTES, or all of a smaller
        volume) when the caller read them already.

        ``read`` is most often a :class:`VirtualDisk`'s own ``read`` (the layout's): that
        disk is then read from C (:meth:`fill`, :meth:`get`), since a Python call and a
        bytes object per read cost more than the probes of a volume that holds nothing
        known (issue 18)."""
        cdef uint64_t keep = min(<uint64_t>HEAD_SIZE, size)
        self.read = read
        if (PyMethod_Check(read) and PyMethod_GET_FUNCTION(read) == <PyObject*>DISK_READ
                and isinstance(<object>PyMethod_GET_SELF(read), VirtualDisk)):
            self.disk = <VirtualDisk>PyMethod_GET_SELF(read)
        self.base = base
        self.size = size
        if head is None:
            head = self.get(0, HEAD_SIZE)
        elif <uint64_t>len(head) > keep:
            head = head[:keep]  # else as it is: no slice made of what is kept whole
        self.head = head

    cpdef bytes get(self, uint64_t rel, uint64_t length):
        """Up to ``length`` bytes at ``rel``, never past the volume's end (short there)."""
        length = self._within(rel, length)
        if length == 0:
            return b""
        if self.disk is not None:
            return self.disk.read_bytes(self.base + rel, length)
        data = self.read(self.base + rel, length)
        return bytes(data) if not isinstance(data, bytes) else data

    cdef uint64_t _within(self, uint64_t rel, uint64_t length) noexcept:
        """``length`` cut at the volume's end: 0 from there on."""
        return 0 if rel >= self.size else min(length, self.size - rel)

    cdef bytes at(self, uint64_t rel, uint64_t length):
        """Bytes at ``rel``: from the head region when it covers them, else read."""
        if rel + length <= <uint64_t>len(self.head):
            return self.head[rel:rel + length]
        return self.get(rel, length)

    cdef uint64_t fill(self, uint64_t rel, uint8_t* dst, uint64_t length) except? 0:
        """Fill ``dst`` (``length`` bytes, the caller's) with the bytes :meth:`at` would
        return and return their count: for the fixed reads whose bytes are only compared
        (a signature far from the head), no bytes object when the disk is read from C."""
        cdef bytes data
        cdef uint64_t held = len(self.head)
        if rel <= held and length <= held - rel:
            memcpy(dst, (<const uint8_t*>self.head) + rel, length)
            return length
        length = self._within(rel, length)
        if length == 0:
            return 0
        if self.disk is not None:
            return self.disk.read_into(self.base + rel, dst, length)
        data = self.get(rel, length)
        length = min(length, <uint64_t>len(data))
        memcpy(dst, <const char*>data, length)
        return length

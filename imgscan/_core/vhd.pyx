"""VHD containers (Virtual PC / Virtual Server / Hyper-V; qemu calls the format "vpc").

Spec: Microsoft "Virtual Hard Disk Image Format Specification", version 1.0
(October 11, 2006). All fields are big-endian; sectors are 512 bytes.

A VHD is a 512-byte *hard disk footer* at the end of the file (cookie
``conectix``), preceded by the guest data (fixed disks) or, for dynamic and
differencing disks, by a copy of the footer at offset 0, a 1024-byte *dynamic
disk header* (cookie ``cxsparse``), a *block allocation table* (BAT) of 32-bit
sector numbers, and data blocks, each led by a *sector bitmap*.

Where the spec leaves room, this decoder does what qemu 7.2 (``block/vpc.c``)
does, so that ``imgscan`` and ``qemu-img -f vpc`` agree on the guest disk:

* the copy at offset 0 is preferred to the footer at the end when both exist;
* the virtual size comes from the CHS geometry for creators that size disks
  that way (Virtual PC, old qemu) and from *current size* otherwise, or when
  the geometry is the 65535/16/255 "too big for CHS" sentinel;
* a fixed disk is raw data: guest bytes are the file's bytes from offset 0,
  whatever they are (including the footer, should the size claim more);
* for dynamic disks an allocated block is data, whatever its sector bitmap
  says (qemu never reads the bitmap).

It departs from qemu where qemu refuses an image an inspector should still
describe, reporting a finding instead: checksums that do not match (qemu
refuses "Incorrect header checksum"), blocks past the end of the file (qemu
refuses the image as truncated; they read as zeros here), a dynamic disk
whose copy at offset 0 is gone. Differencing disks, which qemu reads as
dynamic disks with no parent, are read as the spec says: the sector bitmap
decides, sector by sector, whether a sector is in this file or in the parent.
"""

cimport cython
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage, UnsupportedFeature
from imgscan.findings import (
    CORRUPT, FOOTER_MISMATCH, RESOURCE_EXHAUSTION, SIZE_MISMATCH, TRUNCATED, UNKNOWN_FEATURE,
)

from .binary cimport be32, be64
from .c_vhd import (
    BAT_ENTRY_SIZE, BAT_UNUSED, CHS_MAX, DISK_TYPE_DIFFERENCING, DISK_TYPE_DYNAMIC,
    DISK_TYPE_FIXED, DISK_TYPE_NAMES, DYNAMIC_HEADER, DYNAMIC_HEADER_COOKIE, DYNAMIC_HEADER_SIZE,
    DYNAMIC_HEADER_VERSION, FEATURE_TEMPORARY, FILE_FORMAT_VERSION, FOOTER, FOOTER_COOKIE,
    FOOTER_SIZE, FOOTER_SIZE_OLD, HOST_OS_NAMES, KNOWN_FEATURES, PARENT_LOCATOR_COUNT,
    PARENT_LOCATOR_ENTRY, PLATFORM_MACX, PLATFORM_NONE, PLATFORM_W2KU, PLATFORM_W2RU,
    SECTOR_SIZE, VHD_EPOCH_UNIX,
)
from .container import Container, Format
from .guid_text cimport rfc_uuid_text
from .extents cimport ExtentMap, KIND_DATA, KIND_UNALLOCATED, NO_HOST
from .raw import map_host_range
from .source cimport Source
from .utf16_text cimport utf16_text

#: The bytes of the footer's cookie, all the probe and the footer search read.
COOKIE_SIZE = FOOTER.end("cookie")

# The layout values the nogil walk needs, as C values taken from c_vhd.
cdef uint64_t C_SECTOR_SIZE = SECTOR_SIZE
cdef uint32_t C_BAT_UNUSED = BAT_UNUSED

#: Creator applications whose disks qemu sizes by the footer's current size
#: rather than by CHS geometry (Hyper-V, qemu with force_size, Disk2vhd,
#: XenConverter, XenServer); every other creator is sized by CHS. The match is
#: on all four bytes: Disk2vhd's "d2v\0" is not "d2v " (its disks carry the
#: 65535/16/255 geometry, which selects current size anyway).
CURRENT_SIZE_CREATORS = (b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\x00")


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

#: Where an entry's platform code lies (from the declaration in c_vhd.py).
cdef Py_ssize_t LOCATOR_PLATFORM_CODE = PARENT_LOCATOR_ENTRY.offset("platform_code")
cdef Py_ssize_t LOCATOR_ENTRY_SIZE = PARENT_LOCATOR_ENTRY.size
cdef bytes C_PLATFORM_NONE = PLATFORM_NONE

# Field offsets, taken once from the declarations in c_vhd.py: the footer and the dynamic
# disk header are read field by field from C on every open (their CStruct dicts and
# Python-level offset look-ups were about a fifth of a small VHD's open, issue 18).
cdef Py_ssize_t F_FEATURES = FOOTER.offset("features")
cdef Py_ssize_t F_FILE_FORMAT_VERSION = FOOTER.offset("file_format_version")
cdef Py_ssize_t F_DATA_OFFSET = FOOTER.offset("data_offset")
cdef Py_ssize_t F_TIMESTAMP = FOOTER.offset("timestamp")
cdef Py_ssize_t F_CREATOR_APPLICATION = FOOTER.offset("creator_application")
cdef Py_ssize_t F_CREATOR_VERSION = FOOTER.offset("creator_version")
cdef Py_ssize_t F_CREATOR_HOST_OS = FOOTER.offset("creator_host_os")
cdef Py_ssize_t F_ORIGINAL_SIZE = FOOTER.offset("original_size")
cdef Py_ssize_t F_CURRENT_SIZE = FOOTER.offset("current_size")
cdef Py_ssize_t F_DISK_GEOMETRY = FOOTER.offset("disk_geometry")
cdef Py_ssize_t F_DISK_TYPE = FOOTER.offset("disk_type")
cdef Py_ssize_t F_CHECKSUM = FOOTER.offset("checksum")
cdef Py_ssize_t F_UNIQUE_ID = FOOTER.offset("unique_id")
cdef Py_ssize_t F_SAVED_STATE = FOOTER.offset("saved_state")
cdef Py_ssize_t DH_COOKIE = DYNAMIC_HEADER.offset("cookie")
cdef Py_ssize_t DH_COOKIE_END = DYNAMIC_HEADER.end("cookie")
cdef Py_ssize_t DH_TABLE_OFFSET = DYNAMIC_HEADER.offset("table_offset")
cdef Py_ssize_t DH_HEADER_VERSION = DYNAMIC_HEADER.offset("header_version")
cdef Py_ssize_t DH_MAX_TABLE_ENTRIES = DYNAMIC_HEADER.offset("max_table_entries")
cdef Py_ssize_t DH_BLOCK_SIZE = DYNAMIC_HEADER.offset("block_size")
cdef Py_ssize_t DH_CHECKSUM = DYNAMIC_HEADER.offset("checksum")
cdef Py_ssize_t DH_PARENT_UNIQUE_ID = DYNAMIC_HEADER.offset("parent_unique_id")
cdef Py_ssize_t DH_PARENT_TIMESTAMP = DYNAMIC_HEADER.offset("parent_timestamp")
cdef Py_ssize_t DH_PARENT_UNICODE_NAME = DYNAMIC_HEADER.offset("parent_unicode_name")
cdef Py_ssize_t DH_PARENT_UNICODE_NAME_END = DYNAMIC_HEADER.end("parent_unicode_name")
cdef Py_ssize_t DH_PARENT_LOCATOR_ENTRIES = DYNAMIC_HEADER.offset("parent_locator_entries")
cdef Py_ssize_t DH_PARENT_LOCATOR_ENTRIES_END = DYNAMIC_HEADER.end("parent_locator_entries")


cdef uint32_t _checksum(const uint8_t* p, Py_ssize_t n, Py_ssize_t field) noexcept nogil:
    """:func:`vhd_checksum` of the ``n`` bytes at ``p``: every byte summed, then those of
    the 4-byte field at ``field`` that lie inside them taken back out (no test per byte)."""
    cdef uint32_t total = 0
    cdef Py_ssize_t i
    for i in range(n):
        total += p[i]
    for i in range(max(field, 0), min(field + 4, n)):
        total -= p[i]
    return ~total


def vhd_checksum(const uint8_t[::1] data, Py_ssize_t checksum_offset):
    """One's complement of the byte sum, the checksum field counted as zero."""
    if data.shape[0] == 0:
        return 0xFFFFFFFF
    return _checksum(&data[0], data.shape[0], checksum_offset)


cdef uint32_t _disk_type(bytes footer):
    """The disk type field of a whole footer (FOOTER_SIZE bytes, as the caller read it)."""
    return be32(<const uint8_t*><char*>footer + F_DISK_TYPE)


def _cookie_at(Source source, uint64_t offset, str structure):
    """Whether a footer (or its copy) starts at ``offset``: its ``conectix`` cookie."""
    return source.read(offset, COOKIE_SIZE, structure) == FOOTER_COOKIE


#: The VHD epoch, 2000-01-01 00:00:00 UTC, in Unix seconds (from c_vhd.py).
cdef uint64_t C_VHD_EPOCH_UNIX = VHD_EPOCH_UNIX


@cython.cdivision(True)
def vhd_timestamp(uint32_t seconds):
    """A VHD time (seconds since the VHD epoch, UTC) as ``YYYY-MM-DDTHH:MM:SS+00:00``.

    The date is computed here, in the proleptic Gregorian calendar (H. Hinnant's
    ``civil_from_days``; every operand is non-negative, so C division is floor
    division): ``time.strftime`` of ``time.gmtime``, which it replaces, cost about
    9 k instructions per call, two calls per open (issue 18); datetime would cost
    milliseconds of import on the single-image path.
    """
    cdef uint64_t t = C_VHD_EPOCH_UNIX + seconds
    cdef uint64_t rem = t % 86400
    cdef uint64_t z = t // 86400 + 719468            # days since 0000-03-01
    cdef uint64_t era = z // 146097
    cdef uint64_t doe = z - era * 146097              # day of the 400-year era
    cdef uint64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef uint64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)   # from March 1st
    cdef uint64_t mp = (5 * doy + 2) // 153
    cdef uint64_t day = doy - (153 * mp + 2) // 5 + 1
    cdef uint64_t month = mp + 3 if mp < 10 else mp - 9
    cdef uint64_t year = yoe + era * 400 + (1 if month <= 2 else 0)
    # the digits written in place (snprintf's format parsing was most of the call); every
    # year from the epoch on has four digits
    cdef char buf[25]
    buf[:] = b"0000-00-00T00:00:00+00:00"
    _digits(buf, 4, year)
    _digits(buf + 5, 2, month)
    _digits(buf + 8, 2, day)
    _digits(buf + 11, 2, rem // 3600)
    _digits(buf + 14, 2, rem // 60 % 60)
    _digits(buf + 17, 2, rem % 60)
    return buf[:25].decode("ascii")


@cython.cdivision(True)
cdef inline void _digits(char* out, int width, uint64_t value) noexcept nogil:
    """``value``'s last ``width`` decimal digits at ``out``, zero-padded."""
    cdef int i
    for i in range(width - 1, -1, -1):
        out[i] = <char>(48 + value % 10)
        value //= 10


def _fourcc(bytes code):
    return code.rstrip(b"\x00").decode("latin-1")


def _parse_footer(bytes raw):
    """The footer's fields by name, geometry and creator version split (raw: 512 bytes),
    read from C at the offsets declared in c_vhd.py."""
    if len(raw) < FOOTER_SIZE:
        raise ValueError(f"a VHD footer is {FOOTER_SIZE} bytes, not {len(raw)}")
    cdef const uint8_t* p = <const uint8_t*><char*>raw
    cdef uint32_t geometry = be32(p + F_DISK_GEOMETRY)
    cdef uint32_t version = be32(p + F_CREATOR_VERSION)
    return {
        "features": be32(p + F_FEATURES),
        "file_format_version": be32(p + F_FILE_FORMAT_VERSION),
        "data_offset": be64(p + F_DATA_OFFSET),
        "timestamp": be32(p + F_TIMESTAMP),
        "creator_application": raw[F_CREATOR_APPLICATION:F_CREATOR_APPLICATION + 4],
        "creator_version": (version >> 16, version & 0xFFFF),
        "creator_host_os": raw[F_CREATOR_HOST_OS:F_CREATOR_HOST_OS + 4],
        "original_size": be64(p + F_ORIGINAL_SIZE),
        "current_size": be64(p + F_CURRENT_SIZE),
        "geometry": (geometry >> 16, (geometry >> 8) & 0xFF, geometry & 0xFF),
        "disk_type": be32(p + F_DISK_TYPE),
        "checksum": be32(p + F_CHECKSUM),
        "unique_id": rfc_uuid_text(p + F_UNIQUE_ID),
        "saved_state": p[F_SAVED_STATE],
    }


# --------------------------------------------------------------------------
# The BAT walk
# --------------------------------------------------------------------------

@cython.cdivision(True)
cdef inline uint32_t _bitmap_bit(const uint8_t* f, uint64_t fsize, uint64_t bitmap_off,
                                 uint64_t sector) noexcept nogil:
    """Bit of ``sector`` in the bitmap at ``bitmap_off``; 0 past the end of the file.

    The most significant bit of byte 0 stands for the block's first sector.
    """
    cdef uint64_t pos = bitmap_off + sector // 8
    if pos >= fsize:
        return 0
    return (f[pos] >> (7 - sector % 8)) & 1


@cython.cdivision(True)
cdef uint64_t _bitmap_run_end(const uint8_t* f, uint64_t fsize, uint64_t bitmap_off,
                              uint64_t sector, uint64_t nsectors, uint32_t bit) noexcept nogil:
    """First sector at or after ``sector`` whose bit differs from ``bit`` (or ``nsectors``).

    Whole bytes of equal bits are skipped at once: long runs are the common case.
    """
    cdef uint8_t full = 0xFF if bit else 0x00
    cdef uint64_t pos
    while sector < nsectors:
        if sector % 8 == 0 and sector + 8 <= nsectors:
            pos = bitmap_off + sector // 8
            if (f[pos] if pos < fsize else 0) == full:
                sector += 8
                continue
        if _bitmap_bit(f, fsize, bitmap_off, sector) != bit:
            break
        sector += 1
    return sector


@cython.cdivision(True)
cdef int _walk_bat(ExtentMap emap, const uint8_t* bat, uint64_t nblocks, uint64_t block_size,
                   uint64_t bitmap_size, uint64_t virtual_size, bint differencing,
                   const uint8_t* f, uint64_t fsize, uint64_t* past_eof,
                   uint64_t* first_past_eof) noexcept nogil:
    """Append one run per block (or per bitmap run, for differencing disks).

    ``f``/``fsize`` is the whole file, needed only for the sector bitmaps of
    differencing disks. Returns -1 when the extent map is full.
    """
    cdef uint64_t i, start, length, bitmap_off, data_off, nsect, s, e
    cdef uint32_t entry, bit
    for i in range(nblocks):
        start = i * block_size
        length = virtual_size - start
        if length > block_size:
            length = block_size
        entry = be32(bat + 4 * i)
        if entry == C_BAT_UNUSED:
            if emap.add(start, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return -1
            continue
        bitmap_off = <uint64_t>entry * C_SECTOR_SIZE
        data_off = bitmap_off + bitmap_size
        if data_off + length > fsize:
            if past_eof[0] == 0:
                first_past_eof[0] = i
            past_eof[0] += 1
        if not differencing:
            if emap.add(start, length, KIND_DATA, data_off, 0, 0) < 0:
                return -1
            continue
        nsect = (length + C_SECTOR_SIZE - 1) // C_SECTOR_SIZE
        s = 0
        while s < nsect:
            bit = _bitmap_bit(f, fsize, bitmap_off, s)
            e = _bitmap_run_end(f, fsize, bitmap_off, s + 1, nsect, bit)
            # the last sector may be partial: clip the run to the block's length
            if bit:
                if emap.add(start + s * C_SECTOR_SIZE,
                            min(e * C_SECTOR_SIZE, length) - s * C_SECTOR_SIZE,
                            KIND_DATA, data_off + s * C_SECTOR_SIZE, 0, 0) < 0:
                    return -1
            elif emap.add(start + s * C_SECTOR_SIZE,
                          min(e * C_SECTOR_SIZE, length) - s * C_SECTOR_SIZE,
                          KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return -1
            s = e
    return 0


# --------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------

class VhdImage(Container):
    """A fixed, dynamic or differencing VHD."""

    format = "vhd"

    def __init__(self, Source source):
        # The virtual size is known only once the footer is read: start at 0.
        Container.__init__(self, source, 0)
        footer, footer_offset, footer_length = self._locate_footer(source)
        self._footer_offset = footer_offset
        self._footer_length = footer_length
        self._dyn = None
        self._check_footers(footer)
        f = _parse_footer(self._footer_raw)
        self._disk_type = f["disk_type"]
        if self._disk_type not in DISK_TYPE_NAMES:
            raise UnsupportedFeature(
                source.path, "VHD footer disk type", footer_offset + F_DISK_TYPE,
                f"disk type {self._disk_type} is not fixed (2), dynamic (3) or differencing (4)",
            )
        self.subformat = DISK_TYPE_NAMES[self._disk_type]
        self._describe_footer(f)
        self.virtual_size = self._virtual_size(f)
        if self._disk_type == DISK_TYPE_FIXED:
            self._check_fixed_size()
        else:
            self._read_dynamic_header(f["data_offset"])

    # -- footer -------------------------------------------------------------
    def _locate_footer(self, Source source):
        """Find the footer copies; choose the one qemu would use.

        Returns ``(footer_bytes, offset, length)`` and keeps both copies for
        the comparison in :meth:`_check_footers`.
        """
        size = source.size
        head = tail = None
        tail_offset = None
        tail_length = FOOTER_SIZE
        if source.contains(0, COOKIE_SIZE) and _cookie_at(source, 0, "VHD footer copy"):
            # Raises TruncatedImage when the file is shorter than a footer.
            head = source.read(0, FOOTER_SIZE, "VHD footer copy")
        if size >= FOOTER_SIZE and _cookie_at(source, size - FOOTER_SIZE, "VHD footer"):
            tail_offset = size - FOOTER_SIZE
            tail = source.read(tail_offset, FOOTER_SIZE, "VHD footer")
        elif (size >= FOOTER_SIZE_OLD
              and _cookie_at(source, size - FOOTER_SIZE_OLD, "VHD footer")):
            tail_offset = size - FOOTER_SIZE_OLD
            tail_length = FOOTER_SIZE_OLD
            tail = source.read(tail_offset, FOOTER_SIZE_OLD, "VHD footer") + b"\x00"
        if tail_offset == 0:
            head = None         # a 512-byte file: the footer is the only copy
        self._head = head
        self._tail = tail
        self._tail_offset = tail_offset
        if head is None and tail is None:
            raise CorruptImage(source.path, "VHD footer", max(size - FOOTER_SIZE, 0),
                               "no 'conectix' footer at the start or the end of the file")
        # qemu reads the copy at offset 0 when there is one. A fixed disk has
        # no copy; a 'conectix' there on a fixed disk is guest data, unless
        # the end of the file has no footer to prefer.
        if head is not None and (tail is None or _disk_type(head) != DISK_TYPE_FIXED):
            self._footer_raw = head
            return head, 0, FOOTER_SIZE
        self._footer_raw = tail
        return tail, tail_offset, tail_length

    def _check_footers(self, bytes footer):
        """Checksums of both copies, and whether they agree."""
        head, tail = self._head, self._tail
        cdef bytes copy
        cdef const uint8_t* p
        for name, copy, offset in (("footer copy", head, 0),
                                   ("footer", tail, self._tail_offset)):
            if copy is None:
                continue
            p = <const uint8_t*><char*>copy      # a whole footer (FOOTER_SIZE bytes)
            stored = be32(p + F_CHECKSUM)
            computed = _checksum(p, FOOTER_SIZE, F_CHECKSUM)
            if stored != computed:
                self.add_finding(
                    CORRUPT, "error",
                    f"VHD {name} at offset {offset}: checksum 0x{stored:08x} stored, "
                    f"0x{computed:08x} computed; "
                    "qemu-img refuses such an image ('Incorrect header checksum'), "
                    "the fields are used as they are",
                )
        if head is not None and tail is not None:
            if head != tail:
                head_fields, tail_fields = FOOTER.unpack(head), FOOTER.unpack(tail)
                differ = [name for name, value in head_fields.items()
                          if tail_fields[name] != value]
                if not differ:
                    differ = ["reserved bytes"]
                used = "the copy at offset 0" if footer is head else "the footer at the end"
                self.add_finding(
                    FOOTER_MISMATCH, "warning",
                    f"the VHD footer copy at offset 0 and the footer at the end differ in "
                    f"{', '.join(differ)}; {used} is used (as qemu does)",
                )
        elif head is not None:
            self.add_finding(
                TRUNCATED, "warning",
                f"the VHD has a footer copy at offset 0 but no footer at the end of "
                f"the file (size {self.source.size}): truncated or damaged; the copy is used "
                "(as qemu does)",
            )
        elif _disk_type(tail) in (DISK_TYPE_DYNAMIC, DISK_TYPE_DIFFERENCING):
            self.add_finding(
                FOOTER_MISMATCH, "warning",
                "the VHD footer at the end describes a dynamic or differencing disk but the "
                "footer copy at offset 0 is missing (qemu-img refuses such an image); the "
                "footer at the end is used",
            )

    def _describe_footer(self, f):
        d = self.details
        major, minor = f["creator_version"]
        d["footer_offset"] = self._footer_offset
        if self._footer_length != FOOTER_SIZE:
            d["footer_length"] = self._footer_length
        d["features"] = f["features"]
        d["temporary"] = bool(f["features"] & FEATURE_TEMPORARY)
        d["file_format_version"] = "%d.%d" % (f["file_format_version"] >> 16,
                                              f["file_format_version"] & 0xFFFF)
        d["data_offset"] = f["data_offset"]
        d["timestamp"] = vhd_timestamp(f["timestamp"])
        d["creator_application"] = _fourcc(f["creator_application"])
        d["creator_version"] = f"{major}.{minor}"
        d["creator_host_os"] = HOST_OS_NAMES.get(f["creator_host_os"],
                                                 _fourcc(f["creator_host_os"]))
        d["original_size"] = f["original_size"]
        d["current_size"] = f["current_size"]
        d["disk_geometry"] = {"cylinders": f["geometry"][0], "heads": f["geometry"][1],
                              "sectors_per_track": f["geometry"][2]}
        d["disk_type"] = f["disk_type"]
        d["checksum"] = f["checksum"]
        d["unique_id"] = f["unique_id"]
        d["saved_state"] = bool(f["saved_state"])
        if f["file_format_version"] >> 16 != FILE_FORMAT_VERSION >> 16:
            self.add_finding(UNKNOWN_FEATURE, "warning",
                             f"VHD file format version {d['file_format_version']} is not 1.x")
        unknown = f["features"] & ~KNOWN_FEATURES
        if unknown:
            self.add_finding(UNKNOWN_FEATURE, "info",
                             f"VHD footer feature bits 0x{unknown:08x} are not in the spec")

    # -- size -------------------------------------------------------------------
    def _virtual_size(self, f):
        """qemu's rule: CHS geometry for CHS-sizing creators, current size otherwise."""
        d = self.details
        cyl, heads, spt = f["geometry"]
        chs_size = cyl * heads * spt * SECTOR_SIZE
        current = f["current_size"]
        creator = f["creator_application"]
        use_chs = creator not in CURRENT_SIZE_CREATORS and f["geometry"] != CHS_MAX
        # qemu counts whole sectors.
        size = chs_size if use_chs else current // SECTOR_SIZE * SECTOR_SIZE
        d["chs_size"] = chs_size
        d["size_source"] = "chs" if use_chs else "current_size"
        if chs_size != current:
            self.add_finding(
                SIZE_MISMATCH, "info",
                f"VHD current size {current} differs from the CHS geometry "
                f"{cyl}/{heads}/{spt} ({chs_size} bytes); the "
                f"{'CHS geometry' if use_chs else 'current size'} is used for creator "
                f"{_fourcc(creator)!r}, as qemu does",
            )
        # the cap is qemu's 2040 GiB (compared inline, enforce called only to refuse)
        if size > limits.VHD_MAX_VIRTUAL_SIZE:
            limits.enforce(size, "VHD_MAX_VIRTUAL_SIZE", self.source.path,
                           "VHD footer current size / geometry",
                           self._footer_offset + F_CURRENT_SIZE, "virtual size")
        return size

    def _check_fixed_size(self):
        data_area = self._footer_offset
        self.details["data_area"] = data_area
        if data_area < self.virtual_size:
            self.add_finding(
                TRUNCATED, "warning",
                f"the fixed VHD's data area holds {data_area} bytes but the disk is "
                f"{self.virtual_size}; the rest reads as the footer and zeros (as in qemu)",
            )
        elif data_area > self.virtual_size:
            self.add_finding(
                SIZE_MISMATCH, "info",
                f"the fixed VHD's data area holds {data_area} bytes, "
                f"{data_area - self.virtual_size} more than the {self.virtual_size}-byte disk",
            )

    # -- dynamic header ---------------------------------------------------------
    def _read_dynamic_header(self, uint64_t offset):
        cdef Source src = self.source
        path = src.path
        # The cookie must be in the file; qemu reads the rest of a header cut
        # short by the end of the file as zeros, and so is it read here.
        src.read(offset, DH_COOKIE_END, "VHD dynamic disk header")
        cdef bytes h
        if offset <= src.size and DYNAMIC_HEADER_SIZE <= src.size - offset:
            h = src.read(offset, DYNAMIC_HEADER_SIZE, "VHD dynamic disk header")
        else:
            h = src.read_zero_padded(offset, DYNAMIC_HEADER_SIZE)
            self.add_finding(
                TRUNCATED, "error",
                f"the VHD dynamic disk header at offset {offset} is cut short by the end of "
                f"the file ({src.size}); the missing bytes read as zeros",
            )
        # the fields read from C (h holds the whole header)
        cdef const uint8_t* p = <const uint8_t*><char*>h
        cookie = h[DH_COOKIE:DH_COOKIE_END]
        if cookie != DYNAMIC_HEADER_COOKIE:
            raise CorruptImage(path, "VHD dynamic disk header", offset,
                               f"cookie {cookie!r} is not 'cxsparse'")
        stored = be32(p + DH_CHECKSUM)
        computed = _checksum(p, DYNAMIC_HEADER_SIZE, DH_CHECKSUM)
        if stored != computed:
            self.add_finding(
                CORRUPT, "warning",
                f"VHD dynamic disk header at offset {offset}: checksum 0x{stored:08x} stored, "
                f"0x{computed:08x} computed; the fields are used as they are",
            )
        version = be32(p + DH_HEADER_VERSION)
        table_offset = be64(p + DH_TABLE_OFFSET)
        max_entries = be32(p + DH_MAX_TABLE_ENTRIES)
        block_size = be32(p + DH_BLOCK_SIZE)
        block_size_at = offset + DH_BLOCK_SIZE
        max_entries_at = offset + DH_MAX_TABLE_ENTRIES
        d = self.details
        d["header_offset"] = offset
        d["header_version"] = "%d.%d" % (version >> 16, version & 0xFFFF)
        d["table_offset"] = table_offset
        d["max_table_entries"] = max_entries
        d["block_size"] = block_size
        if version >> 16 != DYNAMIC_HEADER_VERSION >> 16:
            self.add_finding(UNKNOWN_FEATURE, "warning",
                             f"VHD dynamic disk header version {d['header_version']} is not 1.x")
        if block_size < SECTOR_SIZE or block_size & (block_size - 1):
            raise CorruptImage(path, "VHD dynamic disk header block size", block_size_at,
                               f"block size {block_size} is not a power of two of at least 512")
        # each cap compared inline, enforce called only to refuse
        if block_size > limits.VHD_MAX_BLOCK_SIZE:
            limits.enforce(block_size, "VHD_MAX_BLOCK_SIZE", path,
                           "VHD dynamic disk header block size", block_size_at, "block size")
        if max_entries > limits.VHD_MAX_BAT_ENTRIES:
            limits.enforce(max_entries, "VHD_MAX_BAT_ENTRIES", path,
                           "VHD dynamic disk header max table entries", max_entries_at,
                           "BAT entry count")
        if max_entries * block_size < self.virtual_size:
            raise CorruptImage(path, "VHD dynamic disk header max table entries",
                               max_entries_at,
                               f"{max_entries} blocks of {block_size} bytes cannot hold the "
                               f"{self.virtual_size}-byte disk")
        if not src.contains(table_offset, max_entries * BAT_ENTRY_SIZE):
            raise TruncatedImage(path, "VHD block allocation table", table_offset,
                                 f"{max_entries} entries need {max_entries * BAT_ENTRY_SIZE} "
                                 f"bytes but the file ends at {src.size}")
        self.cluster_size = block_size
        # bitmap: one bit per sector, padded to whole sectors
        bitmap_size = (block_size // SECTOR_SIZE + 7) // 8
        bitmap_size = (bitmap_size + SECTOR_SIZE - 1) // SECTOR_SIZE * SECTOR_SIZE
        d["bitmap_size"] = bitmap_size
        self._dyn = (table_offset, max_entries, block_size, bitmap_size)
        d["parent_unique_id"] = rfc_uuid_text(p + DH_PARENT_UNIQUE_ID)
        d["parent_timestamp"] = vhd_timestamp(be32(p + DH_PARENT_TIMESTAMP))
        name = utf16_text(h[DH_PARENT_UNICODE_NAME:DH_PARENT_UNICODE_NAME_END], True)
        d["parent_unicode_name"] = name
        locators = self._read_parent_locators(
            h[DH_PARENT_LOCATOR_ENTRIES:DH_PARENT_LOCATOR_ENTRIES_END],
            offset + DH_PARENT_LOCATOR_ENTRIES)
        d["parent_locators"] = locators
        if self._disk_type == DISK_TYPE_DIFFERENCING:
            self.backing_file = name or self._locator_path(locators)
            if self.backing_file is None:
                self.add_finding(
                    CORRUPT, "warning",
                    "the differencing VHD names no parent (empty parent name, no locator); "
                    "sectors not stored here read as zeros",
                )

    def _read_parent_locators(self, bytes entries, uint64_t entries_offset):
        """The eight parent locator entries (``entries``, at file offset ``entries_offset``)."""
        src = self.source
        out = []
        cdef const uint8_t* p = entries
        cdef const uint8_t* none = C_PLATFORM_NONE
        cdef Py_ssize_t i, base
        for i in range(min(PARENT_LOCATOR_COUNT, len(entries) // LOCATOR_ENTRY_SIZE)):
            base = i * LOCATOR_ENTRY_SIZE
            # unused entries (all of a dynamic disk's) are skipped before any unpacking,
            # compared in place: eight dicts per open were about a tenth of a small VHD's
            # open, eight slices another 4 k instructions (issue 18)
            if memcmp(p + base + LOCATOR_PLATFORM_CODE, none, 4) == 0:
                continue
            code = entries[base + LOCATOR_PLATFORM_CODE:base + LOCATOR_PLATFORM_CODE + 4]
            e = PARENT_LOCATOR_ENTRY.unpack(entries, base)
            length = e["platform_data_length"]
            data_offset = e["platform_data_offset"]
            loc = {"platform": _fourcc(code), "data_offset": data_offset,
                   "data_space": e["platform_data_space"], "data_length": length, "path": None}
            out.append(loc)
            where = entries_offset + base
            if length > limits.VHD_MAX_LOCATOR_BYTES:
                self.add_finding(
                    RESOURCE_EXHAUSTION, "warning",
                    f"VHD parent locator {i} (entry at offset {where}) claims {length} bytes, "
                    f"more than limits.VHD_MAX_LOCATOR_BYTES={limits.VHD_MAX_LOCATOR_BYTES}; "
                    "not read",
                )
                continue
            if not src.contains(data_offset, length):
                self.add_finding(
                    TRUNCATED, "warning",
                    f"VHD parent locator {i} (entry at offset {where}): {length} bytes at "
                    f"offset {data_offset} lie past the end of the file ({src.size})",
                )
                continue
            data = src.read(data_offset, length, "VHD parent locator data")
            if code in (PLATFORM_W2RU, PLATFORM_W2KU):
                loc["path"] = utf16_text(data, False)
            elif code == PLATFORM_MACX:
                loc["path"] = data.split(b"\x00", 1)[0].decode("utf-8", errors="backslashreplace")
        return out

    @staticmethod
    def _locator_path(locators):
        for code in ("W2ru", "W2ku", "MacX"):
            for loc in locators:
                if loc["platform"] == code and loc["path"]:
                    return loc["path"]
        return None

    # -- extent map ---------------------------------------------------------
    def build_extent_map(self):
        if self._disk_type == DISK_TYPE_FIXED:
            emap = ExtentMap(self.virtual_size)
            map_host_range(emap, self.source, 0, 0, self.virtual_size)
            return emap
        return self._walk()

    def _walk(self):
        cdef Source src = self.source
        cdef uint64_t table_offset, max_entries, block_size, bitmap_size
        table_offset, max_entries, block_size, bitmap_size = self._dyn
        cdef uint64_t vsize = self.virtual_size
        cdef uint64_t nblocks = (vsize + block_size - 1) // block_size
        cdef ExtentMap emap = ExtentMap(vsize, block_size)
        cdef bint differencing = self._disk_type == DISK_TYPE_DIFFERENCING
        cdef const uint8_t[::1] bat
        cdef const uint8_t[::1] whole
        cdef const uint8_t* bat_p = NULL
        cdef const uint8_t* file_p = NULL
        cdef uint64_t file_size = src.size
        cdef uint64_t past_eof = 0, first_past_eof = 0
        cdef int rc
        if nblocks == 0:
            return emap
        bat = src.view(table_offset, nblocks * BAT_ENTRY_SIZE, "VHD block allocation table")
        bat_p = &bat[0]
        if differencing:
            # The sector bitmaps are read in place from the mapped file (or,
            # where the OS cannot map it, from one read of the whole file:
            # bounded by the file's real size, never by a claimed one).
            whole = src.view(0, file_size, "VHD sector bitmaps")
            file_p = &whole[0]
        with nogil:
            rc = _walk_bat(emap, bat_p, nblocks, block_size, bitmap_size, vsize, differencing,
                           file_p, file_size, &past_eof, &first_past_eof)
        if rc < 0:
            emap.refuse_full(src.path, "VHD block allocation table", table_offset)
        if past_eof:
            self.add_finding(
                TRUNCATED, "error",
                f"{past_eof} VHD block(s) lie (partly) past the end of the file, the first "
                f"being block {first_past_eof} (BAT entry at offset "
                f"{table_offset + first_past_eof * BAT_ENTRY_SIZE}); their missing bytes read "
                "as zeros (qemu-img refuses such an image as truncated)",
            )
        return emap


def probe(Source source):
    """A ``conectix`` cookie at offset 0 or in the last 512 (or 511) bytes."""
    size = source.size
    if source.contains(0, COOKIE_SIZE) and _cookie_at(source, 0, "VHD footer copy"):
        return True
    for length in (FOOTER_SIZE, FOOTER_SIZE_OLD):
        if size >= length and _cookie_at(source, size - length, "VHD footer"):
            return True
    return False


FORMAT = Format("vhd", probe, VhdImage)

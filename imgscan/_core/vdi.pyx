"""VirtualBox Disk Images (VDI), header version 1.1.

Spec: VirtualBox has no published VDI document; the reference is its own
header, src/VBox/Storage/VDICore.h (structures VDIPREHEADER, VDIHEADER1,
VDIHEADER1PLUS), with qemu's reader, block/vdi.c, as the second opinion.
Both were read to learn the layout; no code is taken from either. All
integers are little-endian. The layout:

* a 72-byte *pre-header* at offset 0: 64 bytes of text for human eyes
  (``<<< Oracle VM VirtualBox Disk Image >>>``, ``<<< Sun xVM ... >>>``,
  ``<<< innotek ... >>>``, qemu's ``<<< QEMU VM Virtual Disk Image >>>``),
  the signature ``0xbeda107f`` and the version (major << 16 | minor);
* the version-1 *header* right after it (``cbHeader`` bytes; 384 for
  VDIHEADER1, 400 for VDIHEADER1PLUS which adds an LCHS geometry): image
  type, flags, a comment, the offsets of the block map and of the data
  area, a legacy geometry, the disk size, the block size, per-block extra
  data, the number of blocks and of allocated blocks, and four UUIDs;
* the *block map* at ``offset_bmap``: one u32 per guest block, the index of
  the block in the data area, or ``0xffffffff`` (never allocated: read from
  the parent image of a differencing disk, else zeros) or ``0xfffffffe``
  (discarded: reads as zeros);
* the data area at ``offset_data``: block ``n`` starts at
  ``offset_data + n * (block_size + block_extra) + block_extra``.

Field names below are qemu's (``offset_bmap``, ``uuid_link``, ...); the
comments give VirtualBox's. UUIDs are IPRT RTUUIDs, stored like Microsoft
GUIDs (first three fields little-endian): qemu swaps them to RFC 4122 order
before printing, and so are they printed here. ``uuid_link``
(VirtualBox's uuidLinkage) is the UUID of the parent image of a
differencing disk; ``uuid_parent`` (uuidParentModify) the parent's
modification UUID when the child was made.

Where VirtualBox and qemu differ, guest bytes are read as VirtualBox writes
them and the difference is a finding. qemu 7.2 refuses block sizes other
than 1 MiB, any non-null link or parent UUID (so every differencing image),
versions other than 1.1 and block map / data offsets not on a 512-byte
boundary; imgscan decodes them. qemu ignores ``block_extra`` (VirtualBox
skips it at the start of every block); imgscan skips it. A differencing VDI
names its parent only by UUID (VirtualBox finds the file through its media
registry), so ``backing_file`` stays null, a ``backing-file`` finding names
the parent UUID, and blocks not stored here read as zeros.

Detection: the signature, as qemu probes; a file whose pre-header text is
one VirtualBox or qemu writes but whose signature is damaged or cut off is
still taken for a VDI (and refused as corrupt or truncated), where qemu
would read it as raw. Block map entries past ``blocks_in_image`` are refused
(qemu-img check's "block index too large"; qemu would read past the data
area); entries sharing a data block are a ``corrupt`` finding and read as
stored, as qemu reads them.
"""

from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free

from imgscan import limits
from imgscan.errors import CorruptImage, LimitExceeded, TruncatedImage, UnsupportedFeature
from imgscan.findings import BACKING_FILE, CORRUPT, SIZE_MISMATCH, TRUNCATED, UNKNOWN_FEATURE

from .binary cimport le32
from .container import Container, Format
from .extents cimport ExtentMap, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST
from .guid import guid_text
from .source cimport Source

# --------------------------------------------------------------------------
# On-disk layout (VDICore.h). Offsets are from the start of the file.
# --------------------------------------------------------------------------

#: The pre-header (VDIPREHEADER): text, signature, version.
PRE_TEXT = 0
PRE_TEXT_SIZE = 64
PRE_SIGNATURE = 0x40
PRE_VERSION = 0x44
PRE_HEADER_SIZE = 0x48
VDI_SIGNATURE = 0xBEDA107F
VDI_SIGNATURE_BYTES = b"\x7f\x10\xda\xbe"
VDI_VERSION_1_1 = 0x00010001

#: Texts VirtualBox (and qemu) put in the pre-header, for human eyes only.
#: A file too short to hold the signature is taken for a damaged VDI when it
#: starts with one of these.
KNOWN_TEXTS = (
    b"<<< Oracle VM VirtualBox Disk Image >>>\n",
    b"<<< Sun xVM VirtualBox Disk Image >>>\n",
    b"<<< Sun VirtualBox Disk Image >>>\n",
    b"<<< innotek VirtualBox Disk Image >>>\n",
    b"<<< InnoTek VirtualBox Disk Image >>>\n",
    b"<<< QEMU VM Virtual Disk Image >>>\n",
)

#: The version-1 header (VDIHEADER1), qemu's names; VirtualBox's in comments.
H_HEADER_SIZE = 0x48        # cbHeader: bytes of this header
H_IMAGE_TYPE = 0x4C         # u32Type
H_IMAGE_FLAGS = 0x50        # fFlags
H_DESCRIPTION = 0x54        # szComment, 256 bytes of UTF-8
H_DESCRIPTION_SIZE = 256
H_OFFSET_BMAP = 0x154       # offBlocks
H_OFFSET_DATA = 0x158       # offData
H_CYLINDERS = 0x15C         # LegacyGeometry.cCylinders
H_HEADS = 0x160             # LegacyGeometry.cHeads
H_SECTORS = 0x164           # LegacyGeometry.cSectors
H_SECTOR_SIZE = 0x168       # LegacyGeometry.cbSector
H_DISK_SIZE = 0x170         # cbDisk (u64)
H_BLOCK_SIZE = 0x178        # cbBlock
H_BLOCK_EXTRA = 0x17C       # cbBlockExtra
H_BLOCKS_IN_IMAGE = 0x180   # cBlocks
H_BLOCKS_ALLOCATED = 0x184  # cBlocksAllocated
H_UUID_IMAGE = 0x188        # uuidCreate
H_UUID_LAST_SNAP = 0x198    # uuidModify
H_UUID_LINK = 0x1A8         # uuidLinkage: the parent image
H_UUID_PARENT = 0x1B8       # uuidParentModify: the parent's modification
HEADER1_END = 0x1C8         # end of VDIHEADER1
HEADER1_SIZE = HEADER1_END - PRE_HEADER_SIZE            # 384
H_LCHS = 0x1C8              # VDIHEADER1PLUS.LCHSGeometry (4 x u32)
HEADER1PLUS_END = 0x1D8
HEADER1PLUS_SIZE = HEADER1PLUS_END - PRE_HEADER_SIZE    # 400

#: Image types (VDIIMAGETYPE) and the subformat each is reported as.
VDI_TYPE_DYNAMIC = 1        # VDI_IMAGE_TYPE_NORMAL
VDI_TYPE_STATIC = 2         # VDI_IMAGE_TYPE_FIXED
VDI_TYPE_UNDO = 3
VDI_TYPE_DIFF = 4
SUBFORMATS = {
    VDI_TYPE_DYNAMIC: "dynamic",
    VDI_TYPE_STATIC: "static",
    VDI_TYPE_UNDO: "undo",
    VDI_TYPE_DIFF: "differencing",
}

SECTOR_SIZE = 512
#: The block size qemu (and VirtualBox by default) uses; qemu refuses any other.
DEFAULT_BLOCK_SIZE = 1024 * 1024
BMAP_ENTRY_SIZE = 4
#: Block map entries that name no block in the data area.
VDI_UNALLOCATED = 0xFFFFFFFF    # VDI_IMAGE_BLOCK_FREE: parent's bytes, else zeros
VDI_DISCARDED = 0xFFFFFFFE      # VDI_IMAGE_BLOCK_ZERO: zeros
cdef uint32_t C_UNALLOCATED = VDI_UNALLOCATED
cdef uint32_t C_DISCARDED = VDI_DISCARDED

_NULL_UUID = bytes(16)


# --------------------------------------------------------------------------
# The block map walk
# --------------------------------------------------------------------------

cdef struct Walk:
    # geometry, from the header
    uint64_t virtual_size
    uint64_t file_size
    uint64_t block_size
    uint64_t block_extra
    uint64_t offset_data
    uint64_t nblocks            # guest blocks covering the disk
    uint64_t blocks_in_image    # entries in the block map
    # results
    uint64_t allocated          # entries naming a block in the data area
    uint64_t bad_index          # first entry out of range ...
    uint64_t bad_entry          # ... and its value
    uint64_t duplicates         # entries naming a block another entry names too
    uint64_t first_duplicate
    uint64_t duplicate_entry
    uint64_t past_eof           # guest blocks stored (partly) past the end of the file
    uint64_t first_past_eof


cdef enum WalkStatus:
    WALK_OK = 0
    WALK_OUT_OF_RANGE = 1   # an entry names a block past blocks_in_image
    WALK_MAP_FULL = 2       # limits.MAX_EXTENTS reached


cdef WalkStatus _check_bmap(const uint8_t* bmap, uint8_t* seen, Walk* w) noexcept nogil:
    """Every entry of the block map: in range, counted, duplicates noted.

    ``seen`` holds one bit per data block (``blocks_in_image`` bits, capped).
    """
    cdef uint64_t i
    cdef uint32_t entry
    for i in range(w.blocks_in_image):
        entry = le32(bmap + i * 4)
        if entry == C_UNALLOCATED or entry == C_DISCARDED:
            continue
        if entry >= w.blocks_in_image:
            w.bad_index = i
            w.bad_entry = entry
            return WALK_OUT_OF_RANGE
        w.allocated += 1
        if seen[entry >> 3] & (1 << (entry & 7)):
            if w.duplicates == 0:
                w.first_duplicate = i
                w.duplicate_entry = entry
            w.duplicates += 1
        else:
            seen[entry >> 3] |= <uint8_t>(1 << (entry & 7))
    return WALK_OK


cdef WalkStatus _walk_bmap(ExtentMap emap, const uint8_t* bmap, Walk* w) noexcept nogil:
    """Append one run per guest block, in guest order (``emap.add`` merges neighbours)."""
    cdef uint64_t i, start, length, host
    cdef uint64_t stride = w.block_size + w.block_extra
    cdef uint32_t entry
    for i in range(w.nblocks):
        start = i * w.block_size
        length = w.virtual_size - start
        if length > w.block_size:
            length = w.block_size
        entry = le32(bmap + i * 4)
        if entry == C_UNALLOCATED:
            if emap.add(start, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return WALK_MAP_FULL
            continue
        if entry == C_DISCARDED:
            if emap.add(start, length, KIND_ZERO, NO_HOST, 0, 0) < 0:
                return WALK_MAP_FULL
            continue
        host = w.offset_data + entry * stride + w.block_extra
        # Bytes past the end of the file read as zeros (as qemu reads them);
        # the reader does that, the walk only counts the blocks.
        if host + length > w.file_size:
            if w.past_eof == 0:
                w.first_past_eof = i
            w.past_eof += 1
        if emap.add(start, length, KIND_DATA, host, 0, 0) < 0:
            return WALK_MAP_FULL
    return WALK_OK


# --------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------

def _u32(bytes h, Py_ssize_t off):
    return int.from_bytes(h[off:off + 4], "little")


def _u64(bytes h, Py_ssize_t off):
    return int.from_bytes(h[off:off + 8], "little")


def _cstring(bytes raw):
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="backslashreplace")


class VdiImage(Container):
    """A VDI of header version 1.x: dynamic, static, undo or differencing."""

    format = "vdi"

    def __init__(self, Source source):
        path = source.path
        if not source.contains(0, HEADER1_END):
            # Raises TruncatedImage naming the header.
            source.read(0, HEADER1_END, "VDI header")
        head = source.read(0, min(source.size, HEADER1PLUS_END), "VDI header")
        signature = _u32(head, PRE_SIGNATURE)
        if signature != VDI_SIGNATURE:
            raise CorruptImage(path, "VDI pre-header signature", PRE_SIGNATURE,
                               f"signature 0x{signature:08x} is not 0x{VDI_SIGNATURE:08x}")
        version = _u32(head, PRE_VERSION)
        major, minor = version >> 16, version & 0xFFFF
        if major != 1:
            raise UnsupportedFeature(
                path, "VDI pre-header version", PRE_VERSION,
                f"unknown-feature: version {major}.{minor} (only version 1 headers are decoded)")
        header_size = _u32(head, H_HEADER_SIZE)
        if header_size < HEADER1_SIZE:
            raise CorruptImage(path, "VDI header size", H_HEADER_SIZE,
                               f"header size {header_size} is below the {HEADER1_SIZE} bytes "
                               "of a version 1 header")
        image_type = _u32(head, H_IMAGE_TYPE)
        if image_type not in SUBFORMATS:
            raise UnsupportedFeature(
                path, "VDI image type", H_IMAGE_TYPE,
                f"unknown-feature: image type {image_type} is not dynamic (1), static (2), "
                "undo (3) or differencing (4)")
        disk_size = _u64(head, H_DISK_SIZE)
        block_size = _u32(head, H_BLOCK_SIZE)
        block_extra = _u32(head, H_BLOCK_EXTRA)
        blocks_in_image = _u32(head, H_BLOCKS_IN_IMAGE)
        offset_bmap = _u32(head, H_OFFSET_BMAP)
        offset_data = _u32(head, H_OFFSET_DATA)
        if disk_size > limits.MAX_VIRTUAL_SIZE:
            raise LimitExceeded(path, "VDI header disk size", H_DISK_SIZE,
                                f"disk size {disk_size} exceeds limits.MAX_VIRTUAL_SIZE="
                                f"{limits.MAX_VIRTUAL_SIZE}")
        if block_size < SECTOR_SIZE or block_size & (block_size - 1):
            raise CorruptImage(path, "VDI header block size", H_BLOCK_SIZE,
                               f"block size {block_size} is not a power of two of at least "
                               f"{SECTOR_SIZE}")
        if block_size > limits.VDI_MAX_BLOCK_SIZE:
            raise LimitExceeded(path, "VDI header block size", H_BLOCK_SIZE,
                                f"block size {block_size} exceeds limits.VDI_MAX_BLOCK_SIZE="
                                f"{limits.VDI_MAX_BLOCK_SIZE}")
        if block_extra & (block_extra - 1) or block_extra % SECTOR_SIZE and block_extra:
            raise CorruptImage(path, "VDI header block extra data size", H_BLOCK_EXTRA,
                               f"block extra data size {block_extra} is neither 0 nor a power "
                               f"of two multiple of {SECTOR_SIZE}")
        if block_extra > limits.VDI_MAX_BLOCK_EXTRA:
            raise LimitExceeded(path, "VDI header block extra data size", H_BLOCK_EXTRA,
                                f"block extra data size {block_extra} exceeds "
                                f"limits.VDI_MAX_BLOCK_EXTRA={limits.VDI_MAX_BLOCK_EXTRA}")
        if blocks_in_image > limits.VDI_MAX_BLOCKS:
            raise LimitExceeded(path, "VDI header blocks in image", H_BLOCKS_IN_IMAGE,
                                f"{blocks_in_image} blocks exceed limits.VDI_MAX_BLOCKS="
                                f"{limits.VDI_MAX_BLOCKS}")
        # qemu keeps sizes in sectors and rounds an odd disk size up (VBoxManage
        # convertfromraw makes such images); the room check uses the rounded size.
        size = -(-disk_size // SECTOR_SIZE) * SECTOR_SIZE
        if size > blocks_in_image * block_size:
            raise CorruptImage(path, "VDI header blocks in image", H_BLOCKS_IN_IMAGE,
                               f"disk size {disk_size} does not fit in {blocks_in_image} blocks "
                               f"of {block_size} bytes (qemu: unsupported VDI image)")
        bmap_end = offset_bmap + blocks_in_image * BMAP_ENTRY_SIZE
        if offset_bmap < HEADER1_END:
            raise CorruptImage(path, "VDI header block map offset", H_OFFSET_BMAP,
                               f"the block map at {offset_bmap} overlaps the header "
                               f"(which ends at {HEADER1_END})")
        if offset_data < bmap_end:
            raise CorruptImage(path, "VDI header data offset", H_OFFSET_DATA,
                               f"the data area at {offset_data} overlaps the block map "
                               f"({offset_bmap} to {bmap_end})")

        super().__init__(source, size)
        self.subformat = SUBFORMATS[image_type]
        self.cluster_size = block_size
        self._image_type = image_type
        self._nblocks = -(-size // block_size)
        self._blocks_in_image = blocks_in_image
        self._block_extra = block_extra
        self._offset_bmap = offset_bmap
        self._offset_data = offset_data
        self._blocks_allocated = _u32(head, H_BLOCKS_ALLOCATED)
        self._describe(head, version, header_size, image_type, disk_size)
        self._qemu_differences(head, version, block_size, block_extra, offset_bmap,
                               offset_data)
        if not source.contains(offset_bmap, bmap_end - offset_bmap):
            # Raised again when the map is built; the facts above stay readable.
            self.add_finding(TRUNCATED, "error",
                             f"the VDI block map ({blocks_in_image} entries at offset "
                             f"{offset_bmap}) ends past the end of the file ({source.size} "
                             "bytes)")

    def _describe(self, bytes head, version, header_size, image_type, disk_size):
        d = self.details
        d["text"] = _cstring(head[PRE_TEXT:PRE_TEXT + PRE_TEXT_SIZE]).rstrip("\n")
        d["version"] = "%d.%d" % (version >> 16, version & 0xFFFF)
        d["header_size"] = header_size
        d["image_type"] = image_type
        d["image_flags"] = _u32(head, H_IMAGE_FLAGS)
        d["description"] = _cstring(head[H_DESCRIPTION:H_DESCRIPTION + H_DESCRIPTION_SIZE])
        d["offset_bmap"] = self._offset_bmap
        d["offset_data"] = self._offset_data
        d["geometry"] = {"cylinders": _u32(head, H_CYLINDERS), "heads": _u32(head, H_HEADS),
                         "sectors": _u32(head, H_SECTORS)}
        d["sector_size"] = _u32(head, H_SECTOR_SIZE)
        d["disk_size"] = disk_size
        d["block_size"] = self.cluster_size
        d["block_extra"] = self._block_extra
        d["blocks_in_image"] = self._blocks_in_image
        d["blocks_allocated"] = self._blocks_allocated
        for key, off in (("uuid_image", H_UUID_IMAGE), ("uuid_last_snap", H_UUID_LAST_SNAP),
                         ("uuid_link", H_UUID_LINK), ("uuid_parent", H_UUID_PARENT)):
            d[key] = guid_text(head[off:off + 16])
        if header_size >= HEADER1PLUS_SIZE and len(head) >= HEADER1PLUS_END:
            d["lchs_geometry"] = {"cylinders": _u32(head, H_LCHS),
                                  "heads": _u32(head, H_LCHS + 4),
                                  "sectors": _u32(head, H_LCHS + 8),
                                  "sector_size": _u32(head, H_LCHS + 12)}
        if disk_size != self.virtual_size:
            self.add_finding(SIZE_MISMATCH, "info",
                             f"VDI disk size {disk_size} is not a whole number of "
                             f"{SECTOR_SIZE}-byte sectors; read as {self.virtual_size} bytes, "
                             "as qemu does")
        if self._blocks_allocated > self._blocks_in_image:
            self.add_finding(CORRUPT, "warning",
                             f"the VDI header counts {self._blocks_allocated} allocated blocks "
                             f"of {self._blocks_in_image} (VirtualBox refuses such an image)")
        link = head[H_UUID_LINK:H_UUID_LINK + 16]
        if image_type in (VDI_TYPE_DIFF, VDI_TYPE_UNDO):
            self.add_finding(
                BACKING_FILE, "warning",
                f"the {self.subformat} VDI reads through its parent image, UUID "
                f"{d['uuid_link']} (VDI names a parent only by UUID, which VirtualBox "
                "looks up in its media registry); blocks not stored here read as zeros")
            if link == _NULL_UUID:
                self.add_finding(CORRUPT, "warning",
                                 f"the {self.subformat} VDI has a null parent (link) UUID")

    def _qemu_differences(self, bytes head, version, block_size, block_extra, offset_bmap,
                          offset_data):
        """Findings for images VirtualBox reads but qemu-img refuses or reads otherwise."""
        refused = []
        if version != VDI_VERSION_1_1:
            self.add_finding(UNKNOWN_FEATURE, "warning",
                             f"VDI version {self.details['version']} is not 1.1; read with "
                             "the version 1.1 layout")
            refused.append(f"version {self.details['version']}")
        if block_size != DEFAULT_BLOCK_SIZE:
            refused.append(f"block size {block_size}")
        if offset_bmap % SECTOR_SIZE or offset_data % SECTOR_SIZE:
            refused.append("block map or data offset not a multiple of 512")
        if self.details["sector_size"] != SECTOR_SIZE:
            refused.append(f"sector size {self.details['sector_size']}")
        if head[H_UUID_LINK:H_UUID_PARENT + 16] != bytes(32):
            refused.append("non-null link or parent UUID")
        if refused:
            self.add_finding(UNKNOWN_FEATURE, "info",
                             "qemu-img refuses this VDI (" + "; ".join(refused) + "); "
                             "imgscan reads it as VirtualBox does")
        if block_extra:
            self.add_finding(UNKNOWN_FEATURE, "warning",
                             f"every VDI block is led by {block_extra} bytes of extra data, "
                             "skipped as VirtualBox does (qemu ignores the field and reads "
                             "other bytes)")

    # -- extent map ---------------------------------------------------------
    def build_extent_map(self):
        """Check the whole block map, then map the guest blocks; both without the GIL."""
        cdef Source src = self.source
        cdef Walk w
        cdef WalkStatus status
        cdef ExtentMap emap = ExtentMap(self.virtual_size, self.cluster_size)
        cdef const uint8_t[::1] bmap
        cdef const uint8_t* bmap_p
        cdef uint8_t* seen
        cdef uint64_t nentries = self._blocks_in_image
        w.virtual_size = self.virtual_size
        w.file_size = src.size
        w.block_size = self.cluster_size
        w.block_extra = self._block_extra
        w.offset_data = self._offset_data
        w.nblocks = self._nblocks
        w.blocks_in_image = nentries
        w.allocated = w.bad_index = w.bad_entry = 0
        w.duplicates = w.first_duplicate = w.duplicate_entry = 0
        w.past_eof = w.first_past_eof = 0
        if nentries == 0:
            return emap
        # In the file (checked by view) and capped (limits.VDI_MAX_BLOCKS).
        bmap = src.view(self._offset_bmap, nentries * BMAP_ENTRY_SIZE, "VDI block map")
        bmap_p = &bmap[0]
        seen = <uint8_t*>calloc((nentries + 7) // 8, 1)
        if seen == NULL:
            raise MemoryError()
        try:
            with nogil:
                status = _check_bmap(bmap_p, seen, &w)
                if status == WALK_OK:
                    status = _walk_bmap(emap, bmap_p, &w)
        finally:
            free(seen)
        if status == WALK_OUT_OF_RANGE:
            raise CorruptImage(self.path, f"VDI block map entry {w.bad_index}",
                               self._offset_bmap + w.bad_index * BMAP_ENTRY_SIZE,
                               f"block index {w.bad_entry} is not below blocks in image "
                               f"({nentries})")
        if status == WALK_MAP_FULL:
            raise LimitExceeded(self.path, "VDI block map", self._offset_bmap,
                                f"more than limits.MAX_EXTENTS={limits.MAX_EXTENTS} extents")
        if w.duplicates:
            self.add_finding(
                CORRUPT, "error",
                f"{w.duplicates} VDI block map entr(y/ies) name a data block another entry "
                f"names too, the first being entry {w.first_duplicate} (block "
                f"{w.duplicate_entry}, at offset "
                f"{self._offset_bmap + w.first_duplicate * BMAP_ENTRY_SIZE}): guest blocks "
                "share storage (qemu-img check: 'also used by'); read as stored")
        if w.allocated != self._blocks_allocated:
            self.add_finding(
                CORRUPT, "warning",
                f"the VDI header counts {self._blocks_allocated} allocated blocks but the "
                f"block map names {w.allocated}")
        if w.past_eof:
            self.add_finding(
                TRUNCATED, "error",
                f"{w.past_eof} VDI block(s) lie (partly) past the end of the file, the first "
                f"being guest block {w.first_past_eof} (block map entry at offset "
                f"{self._offset_bmap + w.first_past_eof * BMAP_ENTRY_SIZE}); their missing "
                "bytes read as zeros, as in qemu")
        return emap


def probe(Source source):
    """The signature at offset 0x40, or a known pre-header text in a file too short for it.

    A known text with a wrong signature also counts, so that a damaged VDI
    is reported as one instead of being read as raw.
    """
    cdef uint64_t available = source.size if source.size < PRE_HEADER_SIZE else PRE_HEADER_SIZE
    head = source.read(0, available, "VDI pre-header")
    if len(head) >= PRE_VERSION and head[PRE_SIGNATURE:PRE_VERSION] == VDI_SIGNATURE_BYTES:
        return True
    return any(head.startswith(text) for text in KNOWN_TEXTS)


FORMAT = Format("vdi", probe, VdiImage)

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
from imgscan.errors import CorruptImage, UnsupportedFeature
from imgscan.findings import BACKING_FILE, CORRUPT, SIZE_MISMATCH, TRUNCATED, UNKNOWN_FEATURE

from .binary cimport le32
from .container import Container, Format
from .extents cimport ExtentMap, KIND_DATA, KIND_UNALLOCATED, KIND_ZERO, NO_HOST
from .guid import guid_text
from .source cimport Source
from .vdi_layout cimport BMAP_ENTRY_SIZE

from .c_vdi import (
    DEFAULT_BLOCK_SIZE, HEADER1_END, HEADER1_SIZE, HEADER1PLUS_END,
    HEADER1PLUS_SIZE, KNOWN_TEXTS, PRE_HEADER_SIZE, SECTOR_SIZE, SUBFORMATS, VDI_DISCARDED,
    VDI_HEADER, VDI_SIGNATURE, VDI_TYPE_DIFF, VDI_TYPE_UNDO,
    VDI_UNALLOCATED, VDI_VERSION_1_1,
)

cdef uint32_t C_UNALLOCATED = VDI_UNALLOCATED
cdef uint32_t C_DISCARDED = VDI_DISCARDED


def _offset(field):
    """Byte offset of a header field from the start of the file: where an error points."""
    return VDI_HEADER.offset(field)
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
        entry = le32(bmap + i * BMAP_ENTRY_SIZE)
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
    # Locals, not reads through ``w`` or of module globals: emap.add writes memory, so
    # those would be loaded again after every call.
    cdef uint64_t block_size = w.block_size, virtual_size = w.virtual_size
    cdef uint64_t stride = block_size + w.block_extra
    cdef uint64_t first_host = w.offset_data + w.block_extra, file_size = w.file_size
    cdef uint32_t unallocated = C_UNALLOCATED, discarded = C_DISCARDED
    cdef uint32_t entry
    for i in range(w.nblocks):
        start = i * block_size
        length = virtual_size - start
        if length > block_size:
            length = block_size
        entry = le32(bmap + i * BMAP_ENTRY_SIZE)
        if entry == unallocated:
            if emap.add(start, length, KIND_UNALLOCATED, NO_HOST, 0, 0) < 0:
                return WALK_MAP_FULL
            continue
        if entry == discarded:
            if emap.add(start, length, KIND_ZERO, NO_HOST, 0, 0) < 0:
                return WALK_MAP_FULL
            continue
        host = first_host + entry * stride
        # Bytes past the end of the file read as zeros (as qemu reads them);
        # the reader does that, the walk only counts the blocks.
        if host + length > file_size:
            if w.past_eof == 0:
                w.first_past_eof = i
            w.past_eof += 1
        if emap.add(start, length, KIND_DATA, host, 0, 0) < 0:
            return WALK_MAP_FULL
    return WALK_OK


# --------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------

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
        signature = VDI_HEADER.field(head, "signature")
        if signature != VDI_SIGNATURE:
            raise CorruptImage(path, "VDI pre-header signature", _offset("signature"),
                               f"signature 0x{signature:08x} is not 0x{VDI_SIGNATURE:08x}")
        version = VDI_HEADER.field(head, "version")
        major, minor = version >> 16, version & 0xFFFF
        if major != 1:
            raise UnsupportedFeature(
                path, "VDI pre-header version", _offset("version"),
                f"version {major}.{minor} is not decoded (only version 1 headers are)")
        header_size = VDI_HEADER.field(head, "header_size")
        if header_size < HEADER1_SIZE:
            raise CorruptImage(path, "VDI header size", _offset("header_size"),
                               f"header size {header_size} is below the {HEADER1_SIZE} bytes "
                               "of a version 1 header")
        image_type = VDI_HEADER.field(head, "image_type")
        if image_type not in SUBFORMATS:
            raise UnsupportedFeature(
                path, "VDI image type", _offset("image_type"),
                f"image type {image_type} is not dynamic (1), static (2), "
                "undo (3) or differencing (4)")
        disk_size = VDI_HEADER.field(head, "disk_size")
        block_size = VDI_HEADER.field(head, "block_size")
        block_extra = VDI_HEADER.field(head, "block_extra")
        blocks_in_image = VDI_HEADER.field(head, "blocks_in_image")
        offset_bmap = VDI_HEADER.field(head, "offset_bmap")
        offset_data = VDI_HEADER.field(head, "offset_data")
        limits.enforce(disk_size, "MAX_VIRTUAL_SIZE", path, "VDI header disk size",
                       _offset("disk_size"), "disk size")
        if block_size < SECTOR_SIZE or block_size & (block_size - 1):
            raise CorruptImage(path, "VDI header block size", _offset("block_size"),
                               f"block size {block_size} is not a power of two of at least "
                               f"{SECTOR_SIZE}")
        limits.enforce(block_size, "VDI_MAX_BLOCK_SIZE", path, "VDI header block size",
                       _offset("block_size"), "block size")
        if block_extra & (block_extra - 1) or block_extra % SECTOR_SIZE and block_extra:
            raise CorruptImage(path, "VDI header block extra data size",
                               _offset("block_extra"),
                               f"block extra data size {block_extra} is neither 0 nor a power "
                               f"of two multiple of {SECTOR_SIZE}")
        limits.enforce(block_extra, "VDI_MAX_BLOCK_EXTRA", path,
                       "VDI header block extra data size", _offset("block_extra"),
                       "block extra data size")
        limits.enforce(blocks_in_image, "VDI_MAX_BLOCKS", path, "VDI header blocks in image",
                       _offset("blocks_in_image"), "blocks in image")
        # qemu keeps sizes in sectors and rounds an odd disk size up (VBoxManage
        # convertfromraw makes such images); the room check uses the rounded size.
        size = -(-disk_size // SECTOR_SIZE) * SECTOR_SIZE
        if size > blocks_in_image * block_size:
            raise CorruptImage(path, "VDI header blocks in image", _offset("blocks_in_image"),
                               f"disk size {disk_size} does not fit in {blocks_in_image} blocks "
                               f"of {block_size} bytes (qemu: unsupported VDI image)")
        bmap_end = offset_bmap + blocks_in_image * BMAP_ENTRY_SIZE
        if offset_bmap < HEADER1_END:
            raise CorruptImage(path, "VDI header block map offset", _offset("offset_bmap"),
                               f"the block map at {offset_bmap} overlaps the header "
                               f"(which ends at {HEADER1_END})")
        if offset_data < bmap_end:
            raise CorruptImage(path, "VDI header data offset", _offset("offset_data"),
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
        self._blocks_allocated = VDI_HEADER.field(head, "blocks_allocated")
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
        d["text"] = _cstring(VDI_HEADER.field(head, "text")).rstrip("\n")
        d["version"] = "%d.%d" % (version >> 16, version & 0xFFFF)
        d["header_size"] = header_size
        d["image_type"] = image_type
        d["image_flags"] = VDI_HEADER.field(head, "image_flags")
        d["description"] = _cstring(VDI_HEADER.field(head, "description"))
        d["offset_bmap"] = self._offset_bmap
        d["offset_data"] = self._offset_data
        d["geometry"] = {key: VDI_HEADER.field(head, key)
                         for key in ("cylinders", "heads", "sectors")}
        d["sector_size"] = VDI_HEADER.field(head, "sector_size")
        d["disk_size"] = disk_size
        d["block_size"] = self.cluster_size
        d["block_extra"] = self._block_extra
        d["blocks_in_image"] = self._blocks_in_image
        d["blocks_allocated"] = self._blocks_allocated
        for key in ("uuid_image", "uuid_last_snap", "uuid_link", "uuid_parent"):
            d[key] = guid_text(VDI_HEADER.field(head, key))
        if header_size >= HEADER1PLUS_SIZE and len(head) >= HEADER1PLUS_END:
            d["lchs_geometry"] = {key: VDI_HEADER.field(head, f"lchs_{key}")
                                  for key in ("cylinders", "heads", "sectors", "sector_size")}
        if disk_size != self.virtual_size:
            self.add_finding(SIZE_MISMATCH, "info",
                             f"VDI disk size {disk_size} is not a whole number of "
                             f"{SECTOR_SIZE}-byte sectors; read as {self.virtual_size} bytes, "
                             "as qemu does")
        if self._blocks_allocated > self._blocks_in_image:
            self.add_finding(CORRUPT, "warning",
                             f"the VDI header counts {self._blocks_allocated} allocated blocks "
                             f"of {self._blocks_in_image} (VirtualBox refuses such an image)")
        link = VDI_HEADER.field(head, "uuid_link")
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
        if (VDI_HEADER.field(head, "uuid_link") != _NULL_UUID
                or VDI_HEADER.field(head, "uuid_parent") != _NULL_UUID):
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
            emap.refuse_full(self.path, "VDI block map")
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
    if (len(head) >= VDI_HEADER.end("signature")
            and VDI_HEADER.field(head, "signature") == VDI_SIGNATURE):
        return True
    return any(head.startswith(text) for text in KNOWN_TEXTS)


FORMAT = Format("vdi", probe, VdiImage)

"""VDI on-disk structures and constants: VirtualBox's VDICore.h with qemu's block/vdi.c names.

All integers are little-endian. The pre-header (VDIPREHEADER), the version-1
header (VDIHEADER1) and the LCHS geometry VDIHEADER1PLUS adds are declared
as one structure from offset 0, so field offsets are file offsets. Names are
qemu's (``VdiHeader``); VirtualBox's are in the comments. The logic lives in
:mod:`imgscan._core.vdi`.
"""

from __future__ import annotations

from .cstruct import CStruct

VDI_HEADER = CStruct("VdiHeader", "<", [
    # VDIPREHEADER
    ("text", "64s"),                # szFileInfo, for human eyes
    ("signature", "I"),             # u32Signature
    ("version", "I"),               # u32Version: major << 16 | minor
    # VDIHEADER1
    ("header_size", "I"),           # cbHeader: bytes of VDIHEADER1(PLUS)
    ("image_type", "I"),            # u32Type
    ("image_flags", "I"),           # fFlags
    ("description", "256s"),        # szComment, UTF-8
    ("offset_bmap", "I"),           # offBlocks
    ("offset_data", "I"),           # offData
    ("cylinders", "I"),             # LegacyGeometry.cCylinders
    ("heads", "I"),                 # LegacyGeometry.cHeads
    ("sectors", "I"),               # LegacyGeometry.cSectors
    ("sector_size", "I"),           # LegacyGeometry.cbSector
    (None, "4x"),                   # u32Dummy
    ("disk_size", "Q"),             # cbDisk
    ("block_size", "I"),            # cbBlock
    ("block_extra", "I"),           # cbBlockExtra
    ("blocks_in_image", "I"),       # cBlocks
    ("blocks_allocated", "I"),      # cBlocksAllocated
    ("uuid_image", "16s"),          # uuidCreate
    ("uuid_last_snap", "16s"),      # uuidModify
    ("uuid_link", "16s"),           # uuidLinkage: the parent image
    ("uuid_parent", "16s"),         # uuidParentModify: the parent's modification
    # VDIHEADER1PLUS
    ("lchs_cylinders", "I"),        # LCHSGeometry.cCylinders
    ("lchs_heads", "I"),            # LCHSGeometry.cHeads
    ("lchs_sectors", "I"),          # LCHSGeometry.cSectors
    ("lchs_sector_size", "I"),      # LCHSGeometry.cbSector
])
PRE_HEADER_SIZE = VDI_HEADER.offset("header_size")                      # 0x48
HEADER1_END = VDI_HEADER.offset("lchs_cylinders")                       # 0x1c8
HEADER1_SIZE = HEADER1_END - PRE_HEADER_SIZE                            # 384
HEADER1PLUS_END = VDI_HEADER.size                                       # 0x1d8
HEADER1PLUS_SIZE = HEADER1PLUS_END - PRE_HEADER_SIZE                    # 400

VDI_SIGNATURE = 0xBEDA107F
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
# One block map entry, a u32 block index: its size is a C enum in vdi_layout.pxd,
# for the nogil walks.
#: Block map entries that name no block in the data area.
VDI_UNALLOCATED = 0xFFFFFFFF    # VDI_IMAGE_BLOCK_FREE: parent's bytes, else zeros
VDI_DISCARDED = 0xFFFFFFFE      # VDI_IMAGE_BLOCK_ZERO: zeros

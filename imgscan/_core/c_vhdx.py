"""VHDX on-disk structures and constants, declared once.

Names follow "[MS-VHDX]: Virtual Hard Disk v2 (VHDX) File Format": the file
type identifier, headers and region table of the header section (2.2), the
log entry header, descriptors and data sectors (2.3), BAT entries (2.5) and
the metadata table, its items and the parent locator (2.6). Every field is
little-endian; GUIDs are in Microsoft mixed-endian order. The container is
:mod:`imgscan._core.vhdx`, the log replay :mod:`imgscan._core.vhdx_log`.
"""

from __future__ import annotations

from .cstruct import CStruct

KiB = 1024
MiB = 1024 * 1024

#: qemu counts the disk in 512-byte sectors.
SECTOR_SIZE = 512


def _guid(text: str) -> bytes:
    """A GUID written as text, in its on-disk (mixed-endian) byte order."""
    raw = bytes.fromhex(text.replace("-", ""))
    return raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]


ZERO_GUID = bytes(16)

# -- header section (2.2) -----------------------------------------------------

FILE_TYPE_IDENTIFIER = CStruct("VHDX file type identifier", "<", [
    ("signature", "8s"),
    ("creator", "512s"),                # UTF-16LE
])
FILE_ID_SIGNATURE = b"vhdxfile"

HEADER = CStruct("VHDX header", "<", [
    ("signature", "4s"),
    ("checksum", "I"),
    ("sequence_number", "Q"),
    ("file_write_guid", "16s"),
    ("data_write_guid", "16s"),
    ("log_guid", "16s"),
    ("log_version", "H"),
    ("version", "H"),
    ("log_length", "I"),
    ("log_offset", "Q"),
    (None, "4016x"),
])
HEADER_OFFSETS = (64 * KiB, 128 * KiB)
HEADER_SIZE = HEADER.size
HEADER_SIGNATURE = b"head"
HEADER_VERSION = 1
LOG_VERSION = 0

REGION_TABLE_HEADER = CStruct("VHDX region table header", "<", [
    ("signature", "4s"),
    ("checksum", "I"),
    ("entry_count", "I"),
    (None, "4x"),
])
REGION_TABLE_ENTRY = CStruct("VHDX region table entry", "<", [
    ("guid", "16s"),
    ("file_offset", "Q"),
    ("length", "I"),
    ("required", "I"),                  # bit 0
])
REGION_TABLE_OFFSETS = (192 * KiB, 256 * KiB)
REGION_TABLE_SIZE = 64 * KiB
REGION_SIGNATURE = b"regi"
HEADER_SECTION_SIZE = 1 * MiB

BAT_REGION_GUID = _guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
METADATA_REGION_GUID = _guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")

# -- log (2.3): 4 KiB sectors; an entry is a header sector holding descriptors,
# more descriptor sectors, then one data sector per data descriptor. ----------

LOG_SECTOR_SIZE = 4 * KiB
LOG_ENTRY_HEADER = CStruct("VHDX log entry header", "<", [
    ("signature", "4s"),
    ("checksum", "I"),
    ("entry_length", "I"),
    ("tail", "I"),
    ("sequence_number", "Q"),
    ("descriptor_count", "I"),
    (None, "4x"),
    ("log_guid", "16s"),
    ("flushed_file_offset", "Q"),
    ("last_file_offset", "Q"),
])
LOG_ENTRY_SIGNATURE = b"loge"

#: A zero descriptor; a data descriptor shares its signature, file offset and
#: sequence number fields and keeps the replaced sector's ends in the others.
ZERO_DESCRIPTOR = CStruct("VHDX log zero descriptor", "<", [
    ("zero_signature", "4s"),
    (None, "4x"),
    ("zero_length", "Q"),
    ("file_offset", "Q"),
    ("sequence_number", "Q"),
])
DATA_DESCRIPTOR = CStruct("VHDX log data descriptor", "<", [
    ("data_signature", "4s"),
    ("trailing_bytes", "4s"),           # the last 4 bytes of the sector
    ("leading_bytes", "8s"),            # the first 8 bytes of the sector
    ("file_offset", "Q"),
    ("sequence_number", "Q"),
])
LOG_DESCRIPTOR_SIZE = DATA_DESCRIPTOR.size
DESC_SIGNATURE_DATA = b"desc"
DESC_SIGNATURE_ZERO = b"zero"

DATA_SECTOR = CStruct("VHDX log data sector", "<", [
    ("data_signature", "4s"),
    ("sequence_high", "I"),
    ("data", "4084s"),
    ("sequence_low", "I"),
])
DATA_SECTOR_SIGNATURE = b"data"

# -- BAT (2.5): state in bits 0-2, file offset in MiB in bits 20-63 ------------
# The entry's fields and states are C enums in vhdx_layout.pxd, for the nogil walk.
#: Sectors described by one sector bitmap block (1 MiB of bits).
SECTORS_PER_BITMAP_BLOCK = 1 << 23

# -- metadata region (2.6) ---------------------------------------------------

METADATA_TABLE_HEADER = CStruct("VHDX metadata table header", "<", [
    ("signature", "8s"),
    (None, "2x"),
    ("entry_count", "H"),
    (None, "20x"),
])
METADATA_TABLE_ENTRY = CStruct("VHDX metadata table entry", "<", [
    ("item_id", "16s"),
    ("offset", "I"),
    ("length", "I"),
    ("flags", "I"),                     # IsUser, IsVirtualDisk, IsRequired
    (None, "4x"),
])
METADATA_TABLE_SIZE = 64 * KiB
METADATA_SIGNATURE = b"metadata"
MTE_IS_USER = 0x1
MTE_IS_VIRTUAL_DISK = 0x2
MTE_IS_REQUIRED = 0x4

FILE_PARAMETERS = CStruct("VHDX file parameters", "<", [
    ("block_size", "I"),
    ("flags", "I"),
])
FP_LEAVE_BLOCKS_ALLOCATED = 0x1
FP_HAS_PARENT = 0x2
BLOCK_SIZE_MIN = 1 * MiB
BLOCK_SIZE_MAX = 256 * MiB
VIRTUAL_DISK_SIZE = CStruct("VHDX virtual disk size", "<", [("virtual_disk_size", "Q")])
PAGE_83_DATA = CStruct("VHDX page 83 data", "<", [("page_83_data", "16s")])
LOGICAL_SECTOR_SIZE = CStruct("VHDX logical sector size", "<", [("logical_sector_size", "I")])
PHYSICAL_SECTOR_SIZE = CStruct("VHDX physical sector size", "<",
                               [("physical_sector_size", "I")])
LOGICAL_SECTOR_SIZES = (512, 4096)

PARENT_LOCATOR_HEADER = CStruct("VHDX parent locator header", "<", [
    ("locator_type", "16s"),
    (None, "2x"),
    ("key_value_count", "H"),
])
PARENT_LOCATOR_ENTRY = CStruct("VHDX parent locator entry", "<", [
    ("key_offset", "I"),
    ("value_offset", "I"),
    ("key_length", "H"),
    ("value_length", "H"),
])
VHDX_PARENT_LOCATOR_TYPE = _guid("B04AEFB7-D19E-4A81-B789-25B8E9445913")
#: Parent locator keys naming the parent file, in the order they are tried.
PARENT_PATH_KEYS = ("relative_path", "absolute_win32_path", "volume_path")

#: The metadata items this reader knows, once: name, item GUID, the structure
#: each holds (its size is what must be there) and whether every image has it.
KNOWN_METADATA = (
    ("file_parameters", "CAA16737-FA36-4D43-B3B6-33F0AA44E76B", FILE_PARAMETERS, True),
    ("virtual_disk_size", "2FA54224-CD1B-4876-B211-5DBED83BF4B8", VIRTUAL_DISK_SIZE, True),
    ("page_83_data", "BECA12AB-B2E6-4523-93EF-C309E000C746", PAGE_83_DATA, True),
    ("logical_sector_size", "8141BF1D-A96F-4709-BA47-F233A8FAAB5F", LOGICAL_SECTOR_SIZE, True),
    ("physical_sector_size", "CDA348C7-445D-4471-9CC9-E9885251C556", PHYSICAL_SECTOR_SIZE,
     True),
    ("parent_locator", "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C", PARENT_LOCATOR_HEADER, False),
)
METADATA_GUIDS = {name: _guid(guid) for name, guid, _, _ in KNOWN_METADATA}

"""ISO 9660 and El Torito on-disk structures and constants, declared once.

Names follow ECMA-119 (4th edition, 2019) section 8 for the volume
descriptors and 9.1 for the directory record the primary volume descriptor
holds, and the "El Torito Bootable CD-ROM Format Specification" 1.0 sections
2.0-2.5 for the boot record and the boot catalog's entries. Integers are
little-endian; ECMA-119's both-byte-order fields are declared as their
little-endian half and the big-endian copy (``*_msb``) that follows it. The
logic is :mod:`imgscan._core.iso9660`.
"""

from __future__ import annotations

from .cstruct import CStruct

#: Logical sector size of a CD (ECMA-119 6.1.2): volume descriptors, the boot
#: catalog and El Torito load RBAs count in these.
ISO_SECTOR_SIZE = 2048
#: The volume descriptor set starts after the 16-sector system area.
ISO_FIRST_VD_SECTOR = 16
ISO_STANDARD_ID = b"CD001"

#: What every volume descriptor starts with (ECMA-119 8.1).
VOLUME_DESCRIPTOR_HEADER = CStruct("ISO 9660 volume descriptor", "<", [
    ("volume_descriptor_type", "B"),
    ("standard_identifier", "5s"),
    ("volume_descriptor_version", "B"),
])
VD_TYPE_BOOT_RECORD = 0
VD_TYPE_PRIMARY = 1
VD_TYPE_SUPPLEMENTARY = 2
VD_TYPE_PARTITION = 3
VD_TYPE_TERMINATOR = 255
VD_TYPE_NAMES = {VD_TYPE_BOOT_RECORD: "boot", VD_TYPE_PRIMARY: "primary",
                 VD_TYPE_SUPPLEMENTARY: "supplementary", VD_TYPE_PARTITION: "partition",
                 VD_TYPE_TERMINATOR: "terminator"}

#: The primary (8.4) and supplementary (8.5) volume descriptor: one layout,
#: the volume flags and escape sequences being a supplementary one's.
VOLUME_DESCRIPTOR = CStruct("ISO 9660 primary volume descriptor", "<", [
    ("volume_descriptor_type", "B"),
    ("standard_identifier", "5s"),
    ("volume_descriptor_version", "B"),
    ("volume_flags", "B"),
    ("system_identifier", "32s"),
    ("volume_identifier", "32s"),
    (None, "8x"),
    ("volume_space_size", "I"),
    ("volume_space_size_msb", "4s"),
    ("escape_sequences", "32s"),
    ("volume_set_size", "H"),
    ("volume_set_size_msb", "2s"),
    ("volume_sequence_number", "H"),
    ("volume_sequence_number_msb", "2s"),
    ("logical_block_size", "H"),
    ("logical_block_size_msb", "2s"),
    ("path_table_size", "I"),
    ("path_table_size_msb", "4s"),
    ("type_l_path_table", "I"),
    ("optional_type_l_path_table", "I"),
    ("type_m_path_table", "4s"),
    ("optional_type_m_path_table", "4s"),
    ("root_directory_record", "34s"),   # a DIRECTORY_RECORD
    ("volume_set_identifier", "128s"),
    ("publisher_identifier", "128s"),
    ("data_preparer_identifier", "128s"),
    ("application_identifier", "128s"),
    ("copyright_file_identifier", "37s"),
    ("abstract_file_identifier", "37s"),
    ("bibliographic_file_identifier", "37s"),
    ("volume_creation_date", "17s"),    # dec-datetime (8.4.26.1)
    ("volume_modification_date", "17s"),
    ("volume_expiration_date", "17s"),
    ("volume_effective_date", "17s"),
    ("file_structure_version", "B"),
    (None, "1x"),
    ("application_use", "512s"),
    (None, "653x"),
])

#: Joliet's UCS-2 escape sequences and the level each stands for.
JOLIET_ESCAPES = {b"%/@": 1, b"%/C": 2, b"%/E": 3}

#: The El Torito boot record volume descriptor (El Torito 2.0).
BOOT_RECORD = CStruct("El Torito boot record volume descriptor", "<", [
    ("boot_record_indicator", "B"),
    ("iso_identifier", "5s"),
    ("descriptor_version", "B"),
    ("boot_system_identifier", "32s"),
    ("boot_identifier", "32s"),
    ("boot_catalog_pointer", "I"),      # absolute sector of the boot catalog
    (None, "1973x"),
])
EL_TORITO_ID = b"EL TORITO SPECIFICATION"

# -- the boot catalog (El Torito 2.1-2.5): 32-byte entries --------------------

VALIDATION_ENTRY = CStruct("El Torito validation entry", "<", [
    ("header_id", "B"),
    ("platform_id", "B"),
    (None, "2x"),
    ("id_string", "24s"),
    ("checksum", "H"),
    ("key", "2s"),
])
CATALOG_ENTRY_SIZE = VALIDATION_ENTRY.size
VALIDATION_HEADER_ID = 0x01
VALIDATION_KEY = b"\x55\xaa"

SECTION_HEADER = CStruct("El Torito section header entry", "<", [
    ("header_indicator", "B"),
    ("platform_id", "B"),
    ("section_entry_count", "H"),
    ("id_string", "28s"),
])
SECTION_HEADER_MORE = 0x90
SECTION_HEADER_FINAL = 0x91

#: The initial/default entry and the section entries (their selection
#: criteria are not read).
BOOT_ENTRY = CStruct("El Torito boot entry", "<", [
    ("boot_indicator", "B"),
    ("boot_media_type", "B"),
    ("load_segment", "H"),
    ("system_type", "B"),
    (None, "1x"),
    ("sector_count", "H"),
    ("load_rba", "I"),
    (None, "20x"),
])
BOOTABLE = 0x88
NOT_BOOTABLE = 0x00
MEDIA_TYPE_MASK = 0x0F
#: Bit 5 of a section entry's media type byte: an extension entry follows.
MEDIA_EXTENSION_FOLLOWS = 0x20

SECTION_ENTRY_EXTENSION = CStruct("El Torito section entry extension", "<", [
    ("extension_indicator", "B"),
    ("flags", "B"),
    (None, "30x"),
])
EXTENSION_ENTRY_ID = 0x44
#: Bit 5 of an extension entry's flags: another extension follows.
EXTENSION_MORE_FOLLOWS = 0x20
#: A no-emulation boot image's sector count is in 512-byte "virtual sectors".
VIRTUAL_SECTOR_SIZE = 512

PLATFORM_NAMES = {0x00: "bios", 0x01: "powerpc", 0x02: "mac", 0xEF: "uefi"}
MEDIA_TYPE_NAMES = {0: "no-emulation", 1: "floppy-1.2m", 2: "floppy-1.44m",
                    3: "floppy-2.88m", 4: "hard-disk"}
#: Bytes an emulated floppy's boot image occupies.
FLOPPY_SIZES = {1: 1200 * 1024, 2: 1440 * 1024, 3: 2880 * 1024}

"""The GUID Partition Table's header and partition entry, declared once.

UEFI Specification 2.10, chapter 5.3 "GUID Partition Table (GPT) Disk
Layout", tables 5.5 (GPT header) and 5.6 (GPT partition entry); field names
are the specification's, in snake case.
"""

from __future__ import annotations

from .cstruct import CStruct

SIGNATURE = b"EFI PART"
#: GPT logical sector sizes probed: classic 512e disks, then 4Kn.
SECTOR_SIZES = (512, 4096)
#: The LBA of the primary GPT header, where the protective MBR's 0xEE record starts.
PRIMARY_HEADER_LBA = 1

GPT_HEADER = CStruct("GPT header", "<", [
    ("signature", "8s"),
    ("revision", "I"),
    ("header_size", "I"),
    ("header_crc32", "I"),
    ("reserved", "4s"),
    ("my_lba", "Q"),
    ("alternate_lba", "Q"),
    ("first_usable_lba", "Q"),
    ("last_usable_lba", "Q"),
    ("disk_guid", "16s"),
    ("partition_entry_lba", "Q"),
    ("number_of_partition_entries", "I"),
    ("size_of_partition_entry", "I"),
    ("partition_entry_array_crc32", "I"),
])
#: The header's defined part; ``header_size`` may claim more, up to a sector.
HEADER_MIN_SIZE = GPT_HEADER.size

GPT_ENTRY = CStruct("GPT partition entry", "<", [
    ("partition_type_guid", "16s"),
    ("unique_partition_guid", "16s"),
    ("starting_lba", "Q"),
    ("ending_lba", "Q"),
    ("attributes", "Q"),
    ("partition_name", "72s"),
])
#: The smallest entry; an entry is 128 * 2^n bytes.
ENTRY_MIN_SIZE = 128

#: Attribute bit 2: legacy BIOS bootable (the spec's "LegacyBIOSBootable").
ATTR_LEGACY_BIOS_BOOTABLE = 1 << 2

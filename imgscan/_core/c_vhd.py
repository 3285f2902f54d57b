"""VHD on-disk structures and constants, declared once.

Names follow Microsoft's "Virtual Hard Disk Image Format Specification"
1.0 (October 2006): "Hard Disk Footer Format", "Dynamic Disk Header Format"
and its parent locator entries. Every field is big-endian; the logic that
reads them is in :mod:`imgscan._core.vhd`.
"""

from __future__ import annotations

from .cstruct import CStruct

SECTOR_SIZE = 512

#: The hard disk footer (and its copy at offset 0 of dynamic disks).
FOOTER = CStruct("VHD footer", ">", [
    ("cookie", "8s"),
    ("features", "I"),
    ("file_format_version", "I"),
    ("data_offset", "Q"),
    ("timestamp", "I"),
    ("creator_application", "4s"),
    ("creator_version", "I"),           # major in the high 16 bits, minor in the low
    ("creator_host_os", "4s"),
    ("original_size", "Q"),
    ("current_size", "Q"),
    ("disk_geometry", "I"),             # cylinders:16, heads:8, sectors per track:8
    ("disk_type", "I"),
    ("checksum", "I"),
    ("unique_id", "16s"),
    ("saved_state", "B"),
    (None, "427x"),
])
FOOTER_SIZE = FOOTER.size
#: Virtual PC before 2004 wrote a footer one byte shorter (the spec allows it).
FOOTER_SIZE_OLD = FOOTER_SIZE - 1
FOOTER_COOKIE = b"conectix"

FEATURE_TEMPORARY = 0x1
FEATURE_RESERVED = 0x2          # "must always be set"
KNOWN_FEATURES = FEATURE_TEMPORARY | FEATURE_RESERVED
FILE_FORMAT_VERSION = 0x00010000

DISK_TYPE_FIXED = 2
DISK_TYPE_DYNAMIC = 3
DISK_TYPE_DIFFERENCING = 4
DISK_TYPE_NAMES = {
    DISK_TYPE_FIXED: "fixed",
    DISK_TYPE_DYNAMIC: "dynamic",
    DISK_TYPE_DIFFERENCING: "differencing",
}

HOST_OS_NAMES = {b"Wi2k": "Windows", b"Mac ": "Macintosh"}

#: Timestamps count seconds from 2000-01-01 00:00:00 UTC.
VHD_EPOCH_UNIX = 946684800

#: CHS geometry meaning "the disk is larger than CHS can say" (spec appendix).
CHS_MAX = (65535, 16, 255)

#: One parent locator entry of the dynamic disk header.
PARENT_LOCATOR_ENTRY = CStruct("VHD parent locator entry", ">", [
    ("platform_code", "4s"),
    ("platform_data_space", "I"),
    ("platform_data_length", "I"),
    (None, "4x"),
    ("platform_data_offset", "Q"),
])
PARENT_LOCATOR_COUNT = 8

#: The dynamic disk header of dynamic and differencing disks.
DYNAMIC_HEADER = CStruct("VHD dynamic disk header", ">", [
    ("cookie", "8s"),
    ("data_offset", "Q"),
    ("table_offset", "Q"),
    ("header_version", "I"),
    ("max_table_entries", "I"),
    ("block_size", "I"),
    ("checksum", "I"),
    ("parent_unique_id", "16s"),
    ("parent_timestamp", "I"),
    (None, "4x"),
    ("parent_unicode_name", "512s"),
    ("parent_locator_entries", f"{PARENT_LOCATOR_COUNT * PARENT_LOCATOR_ENTRY.size}s"),
    (None, "256x"),
])
DYNAMIC_HEADER_SIZE = DYNAMIC_HEADER.size
DYNAMIC_HEADER_COOKIE = b"cxsparse"
DYNAMIC_HEADER_VERSION = 0x00010000

#: Platform codes of parent locators and how their data is encoded.
PLATFORM_W2RU = b"W2ru"     # Windows relative path, UTF-16LE
PLATFORM_W2KU = b"W2ku"     # Windows absolute path, UTF-16LE
PLATFORM_MAC = b"Mac "      # Mac OS alias blob
PLATFORM_MACX = b"MacX"     # file:// URL, UTF-8
PLATFORM_NONE = b"\x00\x00\x00\x00"

#: A BAT entry: the sector number of a block's bitmap, or BAT_UNUSED.
BAT_ENTRY_SIZE = 4
BAT_UNUSED = 0xFFFFFFFF

"""Windows registry hive (regf) constants, declared once.

Spec: Joachim Metz, libyal/libregf "Windows NT Registry File (REGF) format".
The record layouts (base block, hive bin, nk, vk, subkey lists, db, sk) are
the C enums of ``regf_layout.pxd``, which the reader's nogil lookups use;
this module holds what Python code needs: signatures, versions, the value
types with their names, and the transaction logs (base block, HvLE log entry,
dirty page reference) that :mod:`imgscan._core.regf_log` replays.
"""

from __future__ import annotations

from .cstruct import CStruct

REGF_SIGNATURE = b"regf"
HBIN_SIGNATURE = b"hbin"
#: File type 0 is a primary hive; 1, 2 and 6 are transaction logs.
FILE_TYPE_PRIMARY = 0
#: Major version of every known hive; minors 2 (NT 3.5) to 6 (Windows 10).
MAJOR_VERSION = 1
KNOWN_MINOR_VERSIONS = (2, 3, 4, 5, 6)

REG_NONE = 0
REG_SZ = 1
REG_EXPAND_SZ = 2
REG_BINARY = 3
REG_DWORD = 4
REG_DWORD_BIG_ENDIAN = 5
REG_LINK = 6
REG_MULTI_SZ = 7
REG_RESOURCE_LIST = 8
REG_FULL_RESOURCE_DESCRIPTOR = 9
REG_RESOURCE_REQUIREMENTS_LIST = 10
REG_QWORD = 11

TYPE_NAMES = {
    REG_NONE: "REG_NONE",
    REG_SZ: "REG_SZ",
    REG_EXPAND_SZ: "REG_EXPAND_SZ",
    REG_BINARY: "REG_BINARY",
    REG_DWORD: "REG_DWORD",
    REG_DWORD_BIG_ENDIAN: "REG_DWORD_BIG_ENDIAN",
    REG_LINK: "REG_LINK",
    REG_MULTI_SZ: "REG_MULTI_SZ",
    REG_RESOURCE_LIST: "REG_RESOURCE_LIST",
    REG_FULL_RESOURCE_DESCRIPTOR: "REG_FULL_RESOURCE_DESCRIPTOR",
    REG_RESOURCE_REQUIREMENTS_LIST: "REG_RESOURCE_REQUIREMENTS_LIST",
    REG_QWORD: "REG_QWORD",
}

# -- transaction logs (.LOG1 / .LOG2) --------------------------------------------------
# Suhanov, "Windows registry file format specification", "Format of transaction log
# files". A log starts with a partial copy of the hive's base block (one 512-byte
# sector, file type 1 or 2 for the old format, 6 for the new), then either a dirty
# vector and dirty pages (old) or log entries (new).

#: File types of a transaction log's base block: 1 (and 2, Vista to 8's .LOG1/.LOG2)
#: for the old format, 6 for the new format of Windows 8.1 and later.
FILE_TYPES_LOG_OLD = (1, 2)
FILE_TYPE_LOG_NEW = 6
#: The log's copy of the base block fills its first sector; what follows starts there.
LOG_SECTOR = 512
#: Pages of the hive bins a dirty vector bit stands for (old format).
DIRTY_PAGE_SIZE = 512
DIRT_SIGNATURE = b"DIRT"
HVLE_SIGNATURE = b"HvLE"
#: A hive's bins grow and are logged in 4096-byte steps.
HBIN_ALIGNMENT = 4096

BASE_BLOCK = CStruct("regf base block", "<", [
    ("signature", "4s"),
    ("primary_sequence", "I"),
    ("secondary_sequence", "I"),
    ("last_written", "Q"),
    ("major_version", "I"),
    ("minor_version", "I"),
    ("file_type", "I"),
    ("file_format", "I"),
    ("root_cell_offset", "I"),
    ("hive_bins_data_size", "I"),
    ("clustering_factor", "I"),
    ("file_name", "64s"),
    (None, "396x"),
    ("checksum", "I"),
])

#: A log entry of the new format; Hash-1 is Marvin32 of the bytes after this header
#: (the dirty page references and the pages), Hash-2 of the header's first 32 bytes.
LOG_ENTRY = CStruct("HvLE log entry", "<", [
    ("signature", "4s"),
    ("size", "I"),
    ("flags", "I"),
    ("sequence_number", "I"),
    ("hive_bins_data_size", "I"),
    ("dirty_pages_count", "I"),
    ("hash_1", "Q"),
    ("hash_2", "Q"),
])
#: Hash-2 covers the header up to (and without) itself.
LOG_ENTRY_HASH_2_SPAN = 32
DIRTY_PAGE_REFERENCE = CStruct("dirty page reference", "<", [
    ("offset", "I"),    # relative to the start of the hive bins
    ("size", "I"),
])

"""Windows registry hive (regf) constants, declared once.

Spec: Joachim Metz, libyal/libregf "Windows NT Registry File (REGF) format".
The record layouts (base block, hive bin, nk, vk, subkey lists, db, sk) are
the C enums of ``regf_layout.pxd``, which the reader's nogil lookups use;
this module holds what Python code needs: signatures, versions and the value
types with their names.
"""

from __future__ import annotations

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

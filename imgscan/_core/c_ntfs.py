"""NTFS structures read at Python level, declared once (libfsntfs "Volume header", "MFT entry").

The boot sector is a DOS boot sector: the FAT BPB (whose FAT-only fields NTFS keeps zero)
followed by NTFS's own fields. The volume reader and the filesystem probe
both read it from here, with the attribute types and well-known records; the
byte offsets the reader's nogil walks use are ``ntfs_layout.pxd``.
"""

from __future__ import annotations

from .c_fat import BPB_FIELDS
from .cstruct import CStruct

OEM_ID = b"NTFS    "
BOOT_SECTOR_SIZE = 512

NTFS_BOOT_SECTOR = CStruct("NTFS boot sector", "<", [
    *BPB_FIELDS,
    (None, "4x"),
    ("total_sectors", "Q"),
    ("mft_lcn", "Q"),
    ("mftmirr_lcn", "Q"),
    # Clusters per record when positive; as a signed byte -n, records of 2^n bytes.
    ("clusters_per_mft_record", "B"),
    (None, "3x"),
    ("clusters_per_index_record", "B"),
    (None, "3x"),
    ("volume_serial_number", "Q"),
    ("checksum", "I"),
])

#: The MFT record ("FILE" record) header, as far as the readers use it.
FILE_RECORD = CStruct("MFT record header", "<", [
    ("magic", "4s"),
    ("usa_offset", "H"),
    ("usa_count", "H"),
    ("lsn", "Q"),
    ("sequence_number", "H"),
    ("link_count", "H"),
    ("attrs_offset", "H"),
    ("flags", "H"),
    ("bytes_in_use", "I"),
    ("bytes_allocated", "I"),
    ("base_mft_record", "Q"),
    ("next_attr_instance", "H"),
])
FILE_RECORD_MAGIC = b"FILE"
#: The update sequence protects the last two bytes of every 512-byte stride.
FIXUP_STRIDE = 512

#: An attribute record's header, with the resident form's value fields.
RESIDENT_ATTR = CStruct("resident attribute header", "<", [
    ("type", "I"),
    ("length", "I"),
    ("non_resident", "B"),
    ("name_length", "B"),
    ("name_offset", "H"),
    ("flags", "H"),
    ("instance", "H"),
    ("value_length", "I"),
    ("value_offset", "H"),
    ("resident_flags", "B"),
    (None, "1x"),
])
#: $VOLUME_INFORMATION's value: 8 reserved bytes, then the version and flags.
VOLUME_INFORMATION = CStruct("$VOLUME_INFORMATION", "<", [
    (None, "8x"),
    ("major_version", "B"),
    ("minor_version", "B"),
    ("flags", "H"),
])

#: $STANDARD_INFORMATION's value, as far as the filesystem interface uses it: times
#: are FILETIMEs (100 ns units since 1601-01-01 UTC).
STANDARD_INFORMATION = CStruct("$STANDARD_INFORMATION", "<", [
    ("creation_time", "Q"),
    ("modification_time", "Q"),
    ("mft_modification_time", "Q"),
    ("access_time", "Q"),
    ("file_attributes", "I"),
])
#: $STANDARD_INFORMATION file attribute: the file is a reparse point (junction, symlink...).
FILE_ATTRIBUTE_REPARSE_POINT = 0x400
#: FILETIME of the Unix epoch, and FILETIME units per second.
FILETIME_UNIX_EPOCH = 116444736000000000
FILETIME_PER_SECOND = 10_000_000

#: Attribute types.
AT_STANDARD_INFORMATION = 0x10
AT_ATTRIBUTE_LIST = 0x20
AT_FILE_NAME = 0x30
AT_VOLUME_NAME = 0x60
AT_VOLUME_INFORMATION = 0x70
AT_DATA = 0x80
AT_INDEX_ROOT = 0x90
AT_INDEX_ALLOCATION = 0xA0
AT_BITMAP = 0xB0
AT_REPARSE_POINT = 0xC0
AT_END = 0xFFFFFFFF
#: $FILE_NAME namespaces.
NAMESPACE_POSIX = 0
NAMESPACE_WIN32 = 1
NAMESPACE_DOS = 2
NAMESPACE_WIN32_AND_DOS = 3
#: Well-known MFT records.
MFT_RECORD_MFT = 0
MFT_RECORD_VOLUME = 3
MFT_RECORD_ROOT = 5
MFT_RECORD_UPCASE = 10
#: The directory index is named $I30 and keyed on $FILE_NAME.
I30 = "$I30"
#: File references: 48-bit record number, 16-bit sequence number.
REFERENCE_MASK = 0xFFFFFFFFFFFF
#: $UpCase maps each of the 65536 UTF-16 code units.
UPCASE_UNITS = 65536
#: Index node VCNs count 512-byte blocks when index records are smaller than a cluster.
INDEX_BLOCK_SIZE = 512

# -- reparse points ([MS-FSCC] 2.1.2) -------------------------------------------------------
#: Every reparse point starts with its tag and the length of the data after this header.
REPARSE_HEADER = CStruct("reparse point header", "<", [
    ("reparse_tag", "I"),
    ("reparse_data_length", "H"),
    (None, "2x"),
])
#: A junction's (mount point's) data: the substitute and print names, in a path buffer.
MOUNT_POINT_REPARSE = CStruct("mount point reparse data", "<", [
    ("substitute_name_offset", "H"),
    ("substitute_name_length", "H"),
    ("print_name_offset", "H"),
    ("print_name_length", "H"),
])
#: A symbolic link's data: the same names, then flags, then the path buffer.
SYMLINK_REPARSE = CStruct("symbolic link reparse data", "<", [
    ("substitute_name_offset", "H"),
    ("substitute_name_length", "H"),
    ("print_name_offset", "H"),
    ("print_name_length", "H"),
    ("flags", "I"),
])
IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003
IO_REPARSE_TAG_SYMLINK = 0xA000000C
IO_REPARSE_TAG_WOF = 0x80000017
IO_REPARSE_TAG_DEDUP = 0x80000013
#: SYMLINK_REPARSE.flags: the target is relative to the link's directory.
SYMLINK_FLAG_RELATIVE = 1
#: The WOF reparse data (WOF_EXTERNAL_INFO, then the provider's own record): CompactOS
#: files name the file provider and its compression algorithm.
WOF_REPARSE = CStruct("WOF reparse data", "<", [
    ("wof_version", "I"),
    ("wof_provider", "I"),
    ("provider_version", "I"),
    ("algorithm", "I"),
])
WOF_PROVIDER_WIM = 1
WOF_PROVIDER_FILE = 2
#: WOF file provider algorithms: name and chunk size (XPRESS Huffman or LZX chunks).
WOF_ALGORITHMS = {0: ("XPRESS4K", 4096), 1: ("LZX", 32768), 2: ("XPRESS8K", 8192),
                  3: ("XPRESS16K", 16384)}
WOF_ALGORITHM_LZX = 1
#: The named $DATA stream holding a CompactOS file's chunk table and chunks.
WOF_STREAM = "WofCompressedData"

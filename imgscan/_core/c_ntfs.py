"""The NTFS boot sector, declared once (libfsntfs, "Volume header").

It is a DOS boot sector: the FAT BPB (whose FAT-only fields NTFS keeps zero)
followed by NTFS's own fields. The volume reader and the filesystem probe
both read it from here; the MFT record and attribute layouts the nogil walks
read stay with the reader.
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
AT_VOLUME_NAME = 0x60
AT_VOLUME_INFORMATION = 0x70
AT_END = 0xFFFFFFFF
#: $VOLUME_INFORMATION's value: 8 reserved bytes, then the version and flags.
VOLUME_INFORMATION = CStruct("$VOLUME_INFORMATION", "<", [
    (None, "8x"),
    ("major_version", "B"),
    ("minor_version", "B"),
    ("flags", "H"),
])
#: The $Volume file's MFT record number.
MFT_RECORD_VOLUME = 3

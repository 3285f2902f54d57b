"""FAT12/16/32 on-disk structures, declared once.

Microsoft "FAT: General Overview of On-Disk Format" 1.03 (fatgen103): the boot
sector with its BIOS parameter block (BPB), the FAT12/16 and FAT32 extended
BPBs that follow it at byte 36, the FSInfo sector, 32-byte directory entries
and long-name (LFN) entries. Field names are fatgen103's without their
``BS_``/``BPB_``/``DIR_``/``LDIR_`` prefixes, in snake case. The filesystem
probe, the FAT reader and the partition table reader (which must not take a
FAT boot sector for an MBR) all read these declarations.
"""

from __future__ import annotations

from . import c_mbr
from .cstruct import CStruct

#: The BPB every DOS boot sector opens with (FAT's; NTFS keeps its layout and zeroes
#: the FAT-only fields, see c_ntfs).
BPB_FIELDS: list[tuple[str | None, str]] = [
    ("jmp_boot", "3s"),
    ("oem_name", "8s"),
    ("bytes_per_sector", "H"),
    ("sectors_per_cluster", "B"),
    ("reserved_sector_count", "H"),
    ("num_fats", "B"),
    ("root_entry_count", "H"),
    ("total_sectors_16", "H"),
    ("media", "B"),
    ("fat_size_16", "H"),
    ("sectors_per_track", "H"),
    ("num_heads", "H"),
    ("hidden_sectors", "I"),
    ("total_sectors_32", "I"),
]
#: The tail shared by both extended BPBs: drive number to file system type string.
_EXTENDED_TAIL: list[tuple[str | None, str]] = [
    ("drive_number", "B"),
    ("reserved1", "B"),
    ("boot_signature", "B"),
    ("volume_id", "4s"),
    ("volume_label", "11s"),
    ("file_system_type", "8s"),
]

BPB = CStruct("FAT BPB", "<", BPB_FIELDS)
#: FAT12 and FAT16: the extended BPB right after the BPB.
FAT16_BOOT_SECTOR = CStruct("FAT12/16 boot sector", "<", BPB_FIELDS + _EXTENDED_TAIL)
#: FAT32: its own fields, then the same extended tail.
FAT32_BOOT_SECTOR = CStruct("FAT32 boot sector", "<", [
    *BPB_FIELDS,
    ("fat_size_32", "I"),
    ("ext_flags", "H"),
    ("fs_version", "H"),
    ("root_cluster", "I"),
    ("fs_info", "H"),
    ("backup_boot_sector", "H"),
    (None, "12x"),
    *_EXTENDED_TAIL,
])

BOOT_SECTOR_SIZE = 512
#: The boot signature 0x55 0xAA ends sector 0, where an MBR has it (c_mbr declares it).
BOOT_SIGNATURE_OFFSET = c_mbr.SIGNATURE_OFFSET
BOOT_SIGNATURE = c_mbr.SIGNATURE

FSINFO = CStruct("FAT32 FSInfo sector", "<", [
    ("lead_sig", "4s"),
    (None, "480x"),
    ("struc_sig", "4s"),
    ("free_count", "I"),
    ("next_free", "I"),
    (None, "12x"),
    ("trail_sig", "4s"),
])
FSINFO_LEAD_SIG = b"RRaA"
FSINFO_STRUC_SIG = b"rrAa"

DIR_ENTRY = CStruct("FAT directory entry", "<", [
    ("name", "8s"),
    ("extension", "3s"),
    ("attr", "B"),
    ("nt_res", "B"),
    ("crt_time_tenth", "B"),
    ("crt_time", "H"),
    ("crt_date", "H"),
    ("lst_acc_date", "H"),
    ("fst_clus_hi", "H"),
    ("wrt_time", "H"),
    ("wrt_date", "H"),
    ("fst_clus_lo", "H"),
    ("file_size", "I"),
])
LFN_ENTRY = CStruct("FAT long name entry", "<", [
    ("ord", "B"),
    ("name1", "10s"),
    ("attr", "B"),
    ("type", "B"),
    ("chksum", "B"),
    ("name2", "12s"),
    ("fst_clus_lo", "H"),
    ("name3", "4s"),
])
#: An entry's 8.3 name: ``name`` and ``extension``, 11 bytes padded with spaces.
SHORT_NAME_LENGTH = DIR_ENTRY.end("extension")
#: ``name[0]`` 0x05 stands for a name whose first byte is 0xE5 (a free entry's mark).
SHORT_NAME_E5 = 0x05
#: ``nt_res`` bits (Windows NT): the 8.3 base name, extension, is shown in lower case.
NT_RES_LOWER_BASE = 0x08
NT_RES_LOWER_EXT = 0x10
#: ``boot_signature`` values of an extended BPB holding ``volume_id`` (and, for 0x29,
#: ``volume_label`` and ``file_system_type``).
EXTENDED_BOOT_SIGNATURES = (0x28, 0x29)
#: The label of a volume that has none.
NO_NAME = b"NO NAME    "
#: The LFN entry's name parts, in order (5 + 6 + 2 UTF-16 units).
LFN_NAME_FIELDS = ("name1", "name2", "name3")
#: In ``ord``: this entry holds the last part of the name (and comes first).
LFN_LAST = 0x40

ATTR_READ_ONLY = 0x01
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
#: READ_ONLY | HIDDEN | SYSTEM | VOLUME_ID: the attribute byte of an LFN entry.
ATTR_LONG_NAME = 0x0F
#: The attribute bits fatgen103 defines; an LFN test masks the rest off.
ATTR_LONG_NAME_MASK = 0x3F
#: ``name[0]`` of a free entry, and of the entry that ends the directory.
ENTRY_FREE = 0xE5
ENTRY_END = 0x00

FIRST_CLUSTER = 2
#: ``wrt_date``: day (1-31) in bits 0-4, month (1-12) in 5-8, years since 1980 in 9-15;
#: ``wrt_time``: seconds / 2 in bits 0-4, minutes in 5-10, hours in 11-15 (local time).
FAT_EPOCH_YEAR = 1980
#: A FAT32 entry's cluster number is its low 28 bits.
FAT32_CLUSTER_MASK = 0x0FFFFFFF

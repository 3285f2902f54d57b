"""The IBM PC master boot record (and each extended boot record), declared once.

Every reader of sector 0 (the partition table reader, the format registry's
second-reading check) takes the layout from here: four 16-byte partition
entries after 440 bytes of boot code and the disk signature, the boot
signature 0x55 0xAA at byte 510. Names follow the Linux kernel's
``struct msdos_partition`` and the UEFI specification's "Legacy MBR" table.
"""

from __future__ import annotations

from .cstruct import CStruct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SECTOR_SIZE = 512
ENTRY_COUNT = 4

#: One partition entry; an EBR has the same layout, with LBAs relative to itself.
MBR_PARTITION = CStruct("MBR partition entry", "<", [
    ("boot_indicator", "B"),
    ("starting_chs", "3s"),
    ("os_type", "B"),
    ("ending_chs", "3s"),
    ("starting_lba", "I"),
    ("size_in_lba", "I"),
])

#: Sector 0 (or an EBR).
MBR = CStruct("MBR", "<", [
    ("boot_code", "440s"),
    ("unique_mbr_disk_signature", "I"),
    ("unknown", "2s"),
    ("partition_record", f"{ENTRY_COUNT * MBR_PARTITION.size}s"),
    ("signature", "2s"),
])

BOOT_CODE_SIZE = MBR.field_size("boot_code")
PARTITION_RECORD_OFFSET = MBR.offset("partition_record")
SIGNATURE_OFFSET = MBR.offset("signature")
SIGNATURE = b"\x55\xaa"

#: Boot indicator values; anything else means the sector is not a partition table.
STATUS_INACTIVE = 0x00
STATUS_ACTIVE = 0x80
BOOT_INDICATORS = (STATUS_INACTIVE, STATUS_ACTIVE)

#: Extended partition types whose first sector is an EBR (DOS, Win95 LBA, Linux).
EXTENDED_TYPES = frozenset((0x05, 0x0F, 0x85))
#: The protective (GPT) partition type.
TYPE_GPT_PROTECTIVE = 0xEE


def has_signature(sector: bytes) -> bool:
    """A whole sector ending in the boot signature 0x55 0xAA."""
    return len(sector) >= SECTOR_SIZE and \
        sector[SIGNATURE_OFFSET:SIGNATURE_OFFSET + len(SIGNATURE)] == SIGNATURE


def entry_offset(index: int) -> int:
    """Where entry ``index`` (0-3) of an MBR or EBR starts in its sector."""
    return PARTITION_RECORD_OFFSET + index * MBR_PARTITION.size


def partition_entry(sector: bytes, index: int) -> dict[str, Any]:
    """Entry ``index`` (0-3) of the MBR or EBR in ``sector`` (a whole sector), by field."""
    return MBR_PARTITION.unpack(sector, entry_offset(index))

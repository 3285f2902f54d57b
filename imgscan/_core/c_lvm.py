"""LVM2 on-disk structures, as lvm2's ``lib/format_text/layout.h`` declares them.

A physical volume carries, in one of its first four 512-byte sectors, a
``label_header`` ("LABELONE") followed at ``offset_xl`` by the ``pv_header``:
the PV's uuid, its size and two lists of ``disk_locn`` (data areas, then
metadata areas), each list ended by a zero entry. Each metadata area begins
with an ``mda_header`` whose ``raw_locn`` list points into the area's ring
buffer (the rest of the area after the header) at the committed copy of the
volume group's text metadata. All integers are little-endian; the checksums
are ``calc_crc`` (lvm2 ``lib/misc/crc.c``).
"""

from __future__ import annotations

from .cstruct import CStruct

#: Bytes of one LVM sector: labels, pv_header sizes and extents count in it.
SECTOR_SIZE = 512
#: The label is looked for in the first LABEL_SCAN_SECTORS sectors (``LABEL_SCAN_SECTORS``).
LABEL_SCAN_SECTORS = 4
LABEL_ID = b"LABELONE"
LVM2_LABEL = b"LVM2 001"
#: ``calc_crc`` is the reflected CRC-32 (polynomial 0xEDB88320) started at this value,
#: with no final xor (``INITIAL_CRC``).
INITIAL_CRC = 0xF597A6CF
ID_LEN = 32
#: How lvm prints a 32-character id: groups of these widths joined by "-".
UUID_GROUPS = (6, 4, 4, 4, 4, 4, 6)

LABEL_HEADER = CStruct("label_header", "<", [
    ("id", "8s"),            # LABELONE
    ("sector_xl", "Q"),      # the sector this label is in
    ("crc_xl", "I"),         # calc_crc from offset_xl to the end of the sector
    ("offset_xl", "I"),      # offset of the pv_header from the start of the label
    ("type", "8s"),          # LVM2 001
])

PV_HEADER = CStruct("pv_header", "<", [
    ("pv_uuid", f"{ID_LEN}s"),
    ("device_size_xl", "Q"),  # bytes
    # then disk_locn disk_areas_xl[]: data areas, a zero entry, metadata areas, a zero entry
])

DISK_LOCN = CStruct("disk_locn", "<", [
    ("offset", "Q"),  # bytes from the start of the PV
    ("size", "Q"),    # bytes
])

FMTT_MAGIC = b" LVM2 x[5A%r0N*>"
FMTT_VERSION = 1
#: The mda_header occupies the first MDA_HEADER_SIZE bytes of a metadata area; the
#: checksum covers everything after ``checksum_xl`` up to this size.
MDA_HEADER_SIZE = 512

MDA_HEADER = CStruct("mda_header", "<", [
    ("checksum_xl", "I"),
    ("magic", "16s"),
    ("version", "I"),
    ("start", "Q"),  # absolute start byte of the metadata area on the PV
    ("size", "Q"),   # bytes of the metadata area, header included
    # then raw_locn raw_locns[]: the committed copy, the precommitted one, a zero entry
])

RAW_LOCN = CStruct("raw_locn", "<", [
    ("offset", "Q"),    # bytes from the start of the metadata area
    ("size", "Q"),      # bytes of metadata text
    ("checksum", "I"),  # calc_crc of the text
    ("flags", "I"),
])

#: ``raw_locn.flags``: this metadata area is ignored (``pvchange --metadataignore``).
RAW_LOCN_IGNORED = 0x00000001

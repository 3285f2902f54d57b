"""LUKS1 and LUKS2 on-disk binary structures, as their specifications name them.

LUKS1: "LUKS On-Disk Format Specification" 1.2.3, section 2.4 (the
partition header ``phdr``) and 2.5 (key slots). LUKS2: "LUKS2 On-Disk
Format Specification" 1.1.x, section 2.1 (the binary header). All integers
are big-endian. The logic, and the JSON metadata of LUKS2, live in
:mod:`imgscan._core.luks`.
"""

from __future__ import annotations

from .cstruct import CStruct

LUKS_MAGIC = b"LUKS\xba\xbe"
#: LUKS2's secondary header: the primary magic with "LUKS" reversed.
LUKS2_MAGIC_2ND = b"SKUL\xba\xbe"
LUKS_SECTOR_SIZE = 512

#: The start both versions share: the magic and a big-endian u16 version.
LUKS_PREFIX = CStruct("luks_prefix", ">", [("magic", "6s"), ("version", "H")])

#: LUKS1 partition header (208 bytes), followed by the key slots.
LUKS1_PHDR = CStruct("luks_phdr", ">", [
    ("magic", "6s"),
    ("version", "H"),
    ("cipherName", "32s"),
    ("cipherMode", "32s"),
    ("hashSpec", "32s"),
    ("payloadOffset", "I"),         # sectors
    ("keyBytes", "I"),
    ("mkDigest", "20s"),
    ("mkDigestSalt", "32s"),
    ("mkDigestIterations", "I"),
    ("uuid", "40s"),
])
LUKS1_NUMKEYS = 8
#: One LUKS1 key slot.
LUKS1_KEYBLOCK = CStruct("luks_keyblock", ">", [
    ("active", "I"),
    ("passwordIterations", "I"),
    ("passwordSalt", "32s"),
    ("keyMaterialOffset", "I"),     # sectors
    ("stripes", "I"),
])
LUKS1_HEADER_SIZE = LUKS1_PHDR.size + LUKS1_NUMKEYS * LUKS1_KEYBLOCK.size   # 592
LUKS1_KEY_ENABLED = 0x00AC71F3
LUKS1_KEY_DISABLED = 0x0000DEAD

#: LUKS2 binary header (``luks2_hdr_disk``); it is padded to 4096 bytes, and the
#: JSON area follows up to ``hdr_size``.
LUKS2_HDR = CStruct("luks2_hdr_disk", ">", [
    ("magic", "6s"),
    ("version", "H"),
    ("hdr_size", "Q"),              # binary header + JSON area
    ("seqid", "Q"),
    ("label", "48s"),
    ("checksum_alg", "32s"),
    ("salt", "64s"),
    ("uuid", "40s"),
    ("subsystem", "48s"),
    ("hdr_offset", "Q"),
    (None, "184x"),
    ("csum", "64s"),
])
LUKS2_BINARY_HEADER_SIZE = 4096
#: Allowed ``hdr_size`` values (binary header + JSON area), and so the only
#: offsets where a secondary header can be: 16 KiB to 4 MiB, powers of two.
LUKS2_HDR_SIZES = tuple(16384 << i for i in range(9))
#: JSON sections cryptsetup requires in every header.
LUKS2_JSON_SECTIONS = ("keyslots", "tokens", "segments", "digests", "config")
#: Segment flags naming a segment that is not part of the active device.
LUKS2_BACKUP_FLAG_PREFIX = "backup-"

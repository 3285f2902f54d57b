"""Filesystem and volume identification: what a partition (or a whole disk) holds.

Specs, one per format, read from the structures each names below:
Microsoft "FAT: General Overview of On-Disk Format" 1.03 and the exFAT File
System Specification; the NTFS boot sector and MFT record layout (Linux-NTFS
documentation); the ext2/3/4 superblock (e2fsprogs ``lib/ext2fs/ext2_fs.h``);
the XFS superblock (XFS Algorithms & Data Structures); the Btrfs superblock
(btrfs-progs ``kernel-shared/ctree.h``); the Linux swap header
(``include/linux/swap.h``); LVM2's on-disk label (``lib/format_text/layout.h``);
the LUKS1 On-Disk Format Specification 1.2.3 and LUKS2 On-Disk Format 1.1.x;
BitLocker as documented by libbde ("BitLocker Drive Encryption (BDE) format");
ECMA-119 (ISO 9660) and the El Torito Bootable CD-ROM Format Specification 1.0;
the ReFS boot sector as documented by libfsrefs; the Linux MD superblock
(``include/uapi/linux/raid/md_p.h``, versions 0.90 and 1.x).

What is reported, and how it is spelled, follows ``blkid -p -o export``
(libblkid) so the two can be compared field by field: ``filesystem`` is
blkid's TYPE, ``uuid`` is formatted as blkid prints UUID, ``version`` is its
VERSION. The probes run in libblkid's order and accept what it accepts, because
several signatures overlap: an MD RAID member with metadata 1.0 or 0.90 holds a
mountable filesystem at offset 0 (blkid says linux_raid_member, and so does
this), a BitLocker To Go volume has a FAT-looking boot sector (it is BitLocker,
not vfat), NTFS and exFAT boot sectors begin with the same jump as FAT's.

Cost: every probe reads only the superblock region it needs, through the
caller's ``read`` (guest bytes of the whole disk), and the regions are shared:
the first 8 KiB of the volume once (FAT, NTFS, exFAT, BitLocker, ReFS, LUKS,
LVM2, XFS, ext, swap with 4 and 8 KiB pages, MD 1.1 and 1.2), the MD 0.90 and
1.0 superblocks near the end, and only where a probe needs it the ISO 9660
volume descriptors at 32 KiB, the Btrfs superblock at 64 KiB, an NTFS MFT
record or a FAT/exFAT root directory (read in small chunks up to the
end-of-directory mark, never whole). Nothing read is sized by a value from the
volume beyond the caps in :mod:`imgscan.limits`.

Garbage never raises: a field that is out of range means "not this format",
and a structure that is partly readable gives what is known. Errors raised by
``read`` itself (a corrupt container) propagate: they are the container's.
"""

cimport cython
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from imgscan import limits

from .binary cimport be16, be32, be64, le16, le32, le64
from .crc32c cimport crc32c_update
from .guid import guid_text, uuid_text

# --------------------------------------------------------------------------
# On-disk layout. Offsets are bytes from the start of the named structure;
# structures are placed at byte offsets from the start of the volume.
# --------------------------------------------------------------------------

#: The first region every volume is read for: boot sectors, LUKS/LVM2/XFS/ext
#: superblocks, the swap signature for 4 and 8 KiB pages, MD 1.1 and 1.2.
HEAD_BYTES = 8192

# DOS boot sector / BIOS parameter block (FAT, NTFS, exFAT, BitLocker) ------
BS_JUMP, BS_OEM = 0, 3
BPB_BYTES_PER_SECTOR = 0x0B
BPB_SECTORS_PER_CLUSTER = 0x0D
BPB_RESERVED_SECTORS = 0x0E
BPB_FATS = 0x10
BPB_ROOT_ENTRIES = 0x11
BPB_TOTAL_SECTORS_16 = 0x13
BPB_MEDIA = 0x15
BPB_FAT_LENGTH_16 = 0x16
BPB_TOTAL_SECTORS_32 = 0x20
BOOT_SIGNATURE_OFFSET = 0x1FE
BOOT_SIGNATURE = b"\x55\xaa"

# FAT12/16 extended BPB at 0x24, FAT32's at 0x40.
FAT16_MAGIC, FAT16_SERIAL, FAT16_LABEL = 0x36, 0x27, 0x2B
FAT32_FAT_LENGTH = 0x24
FAT32_ROOT_CLUSTER = 0x2C
FAT32_FSINFO_SECTOR = 0x30
FAT32_MAGIC, FAT32_SERIAL, FAT32_LABEL = 0x52, 0x43, 0x47
FAT_LABEL_LENGTH = 11
FAT_NO_NAME = b"NO NAME    "
#: Text signatures libblkid accepts, at the FAT32 (0x52) or FAT12/16 (0x36) position.
FAT_MAGICS = ((FAT32_MAGIC, b"MSWIN"), (FAT32_MAGIC, b"FAT32   "), (FAT16_MAGIC, b"MSDOS"),
              (FAT16_MAGIC, b"FAT16   "), (FAT16_MAGIC, b"FAT12   "), (FAT16_MAGIC, b"FAT     "))
#: x86 jumps a FAT boot sector may begin with (short and near jump).
FAT_JUMPS = (0xEB, 0xE9)
#: Largest cluster counts of FAT12 and FAT16 (Microsoft's limits as libblkid uses them).
FAT12_MAX, FAT16_MAX, FAT32_MAX = 0xFF4, 0xFFF4, 0x0FFFFFF6
FAT_DIR_ENTRY = 32
FAT_ATTR_VOLUME_ID, FAT_ATTR_DIR, FAT_ATTR_LONG_NAME, FAT_ATTR_MASK = 0x08, 0x10, 0x0F, 0x3F
FAT_ENTRY_FREE = 0xE5
FAT32_CLUSTER_MASK = 0x0FFFFFFF
#: FSInfo sector signatures ("RRaA" lead, "rrAa" structure); all zero is tolerated.
FSINFO_LEAD, FSINFO_LEAD_ALT, FSINFO_STRUCT, FSINFO_STRUCT_OFFSET = (
    b"RRaA", b"RRdA", b"rrAa", 484)

# NTFS ---------------------------------------------------------------------
NTFS_OEM = b"NTFS    "
NTFS_TOTAL_SECTORS = 0x28
NTFS_MFT_CLUSTER = 0x30
NTFS_MFTMIRR_CLUSTER = 0x38
NTFS_CLUSTERS_PER_MFT_RECORD = 0x40
NTFS_SERIAL = 0x48
NTFS_MAX_CLUSTER = 64 * 1024
MFT_RECORD_VOLUME = 3
MFT_MAGIC = b"FILE"
MFT_USA_OFFSET, MFT_USA_COUNT, MFT_ATTRS_OFFSET, MFT_BYTES_ALLOCATED = 4, 6, 20, 28
#: Update sequence stride: NTFS protects the last two bytes of every 512 bytes.
NTFS_FIXUP_STRIDE = 512
ATTR_TYPE, ATTR_LENGTH, ATTR_NON_RESIDENT, ATTR_VALUE_LENGTH, ATTR_VALUE_OFFSET = 0, 4, 8, 16, 20
ATTR_VOLUME_NAME, ATTR_VOLUME_INFORMATION, ATTR_END = 0x60, 0x70, 0xFFFFFFFF
VOLINFO_MAJOR, VOLINFO_MINOR = 8, 9

# exFAT --------------------------------------------------------------------
EXFAT_OEM = b"EXFAT   "
EXFAT_JUMP = b"\xeb\x76\x90"
EXFAT_MUST_BE_ZERO = (11, 64)
EXFAT_VOLUME_LENGTH = 0x48
EXFAT_FAT_OFFSET = 0x50
EXFAT_CLUSTER_HEAP_OFFSET = 0x58
EXFAT_CLUSTER_COUNT = 0x5C
EXFAT_ROOT_CLUSTER = 0x60
EXFAT_SERIAL = 0x64
EXFAT_REVISION = 0x68
EXFAT_VOLUME_FLAGS = 0x6A
EXFAT_BYTES_PER_SECTOR_SHIFT = 0x6C
EXFAT_SECTORS_PER_CLUSTER_SHIFT = 0x6D
EXFAT_NUMBER_OF_FATS = 0x6E
#: Boot checksum: sectors 0-10 summed (skipping VolumeFlags and PercentInUse),
#: repeated through sector 11.
EXFAT_CHECKSUM_SECTORS = 11
EXFAT_FIRST_CLUSTER, EXFAT_LAST_CLUSTER = 2, 0x0FFFFFF6
EXFAT_ENTRY_EOD, EXFAT_ENTRY_LABEL = 0x00, 0x83
EXFAT_LABEL_MAX_CHARS = 11

# BitLocker ----------------------------------------------------------------
#: The three boot sectors BitLocker writes: Vista, Windows 7+, and To Go
#: (a FAT32-looking sector for readers that cannot decrypt).
BDE_MAGIC_VISTA = b"\xeb\x52\x90-FVE-FS-"
BDE_MAGIC_WIN7 = b"\xeb\x58\x90-FVE-FS-"
BDE_MAGIC_TOGO = b"\xeb\x58\x90MSWIN4.1"
BDE_WIN7_SERIAL, BDE_WIN7_GUID, BDE_WIN7_FVE_OFFSET = 67, 160, 176
BDE_TOGO_GUID, BDE_TOGO_FVE_OFFSET = 424, 440
BDE_FVE_SIGNATURE = b"-FVE-FS-"
#: FVE metadata block header, then the metadata header at offset 64 of it.
FVE_VERSION, FVE_VOLUME_SIZE = 10, 16
FVE_HEADER = 64
FVE_VOLUME_GUID = FVE_HEADER + 16
FVE_ENCRYPTION_METHOD = FVE_HEADER + 36
FVE_BYTES = 112
#: Encryption methods as cryptsetup's bitlkDump names them: (cipher, key bits).
BDE_METHODS = {
    0x8000: ("aes-cbc-elephant", 256), 0x8001: ("aes-cbc-elephant", 512),
    0x8002: ("aes-cbc-eboiv", 128), 0x8003: ("aes-cbc-eboiv", 256),
    0x8004: ("aes-xts-plain64", 256), 0x8005: ("aes-xts-plain64", 512),
}

# ReFS ---------------------------------------------------------------------
REFS_MAGIC = b"\x00\x00\x00ReFS\x00"
REFS_SECTORS, REFS_BYTES_PER_SECTOR, REFS_SECTORS_PER_CLUSTER = 0x18, 0x20, 0x24
REFS_MAJOR, REFS_MINOR, REFS_SERIAL = 0x28, 0x29, 0x38

# LUKS ---------------------------------------------------------------------
LUKS_MAGIC = b"LUKS\xba\xbe"
LUKS_VERSION = 6
LUKS1_CIPHER_NAME, LUKS1_CIPHER_MODE, LUKS1_HASH = (8, 32), (40, 32), (72, 32)
LUKS1_PAYLOAD_OFFSET, LUKS1_KEY_BYTES = 104, 108
LUKS2_HDR_SIZE, LUKS2_LABEL, LUKS2_SUBSYSTEM, LUKS2_HDR_OFFSET = 8, (24, 48), (208, 48), 256
LUKS_UUID = (168, 40)

# LVM2 ---------------------------------------------------------------------
LVM_LABEL_ID, LVM_LABEL_TYPE = b"LABELONE", b"LVM2 001"
LVM_SECTOR = 512
LVM_LABEL_SCAN_SECTORS = 4
LVM_SECTOR_XL, LVM_CRC_XL, LVM_OFFSET_XL, LVM_TYPE = 8, 16, 20, 24
LVM_PV_UUID_LENGTH = 32
#: LVM's CRC32 is the reflected 0xEDB88320 CRC with this seed and no final xor.
LVM_CRC_SEED = 0xF597A6CF
LVM_UUID_GROUPS = (6, 4, 4, 4, 4, 4, 6)

# Linux swap ---------------------------------------------------------------
SWAP_MAGIC_V0, SWAP_MAGIC_V1 = b"SWAP-SPACE", b"SWAPSPACE2"
SWAP_MAGIC_LENGTH = 10
SWAP_PAGE_SIZES = (4096, 8192, 16384, 32768, 65536)
SWAP_HEADER = 1024
SWAP_VERSION, SWAP_LAST_PAGE, SWAP_UUID, SWAP_LABEL = 0, 4, 12, 28
SWAP_LABEL_LENGTH = 16

# XFS ----------------------------------------------------------------------
XFS_MAGIC = b"XFSB"
XFS_BLOCKSIZE, XFS_DBLOCKS, XFS_UUID, XFS_LOGSTART = 4, 8, 32, 48
XFS_REXTSIZE, XFS_AGBLOCKS, XFS_AGCOUNT, XFS_LOGBLOCKS = 80, 84, 88, 96
XFS_VERSIONNUM, XFS_SECTSIZE, XFS_INODESIZE, XFS_FNAME = 100, 102, 104, 108
XFS_BLOCKLOG, XFS_SECTLOG, XFS_INODELOG, XFS_INOPBLOG, XFS_IMAX_PCT = 120, 121, 122, 123, 127
XFS_SB_BYTES = 128
XFS_VERSION_MASK = 0x000F
XFS_MIN_AG_BLOCKS = 64
XFS_MIN_RTEXT, XFS_MAX_RTEXT = 4 * 1024, 1024 * 1024 * 1024

# ext2/3/4 -----------------------------------------------------------------
EXT_SB = 1024
EXT_SB_BYTES = 1024
EXT_BLOCKS_COUNT, EXT_LOG_BLOCK_SIZE, EXT_MAGIC_OFFSET, EXT_STATE = 0x04, 0x18, 0x38, 0x3A
EXT_MINOR_REV, EXT_REV, EXT_FEATURE_COMPAT, EXT_FEATURE_INCOMPAT = 0x3E, 0x4C, 0x5C, 0x60
EXT_FEATURE_RO_COMPAT, EXT_UUID, EXT_VOLUME_NAME = 0x64, 0x68, 0x78
EXT_BLOCKS_COUNT_HI, EXT_FLAGS, EXT_CHECKSUM = 0x150, 0x160, 0x3FC
EXT_MAGIC = 0xEF53
EXT_VALID_FS, EXT_ERROR_FS = 0x0001, 0x0002
EXT_COMPAT_HAS_JOURNAL = 0x0004
EXT_INCOMPAT_FILETYPE, EXT_INCOMPAT_RECOVER, EXT_INCOMPAT_JOURNAL_DEV = 0x0002, 0x0004, 0x0008
EXT_INCOMPAT_META_BG, EXT_INCOMPAT_64BIT = 0x0010, 0x0080
EXT_RO_COMPAT_METADATA_CSUM = 0x0400
EXT_FLAGS_TEST_FILESYS = 0x0004
#: Features ext2 and ext3 drivers understand; anything beyond makes it ext4.
EXT2_RO_COMPAT_SUPP = 0x0001 | 0x0002 | 0x0004  # sparse_super, large_file, btree_dir
EXT2_INCOMPAT_SUPP = EXT_INCOMPAT_FILETYPE | EXT_INCOMPAT_META_BG
EXT3_RO_COMPAT_SUPP = EXT2_RO_COMPAT_SUPP
EXT3_INCOMPAT_SUPP = EXT2_INCOMPAT_SUPP | EXT_INCOMPAT_RECOVER

# ISO 9660 / El Torito -----------------------------------------------------
ISO_SECTOR = 2048
ISO_PVD = 16 * ISO_SECTOR
ISO_MAGIC, ISO_MAGIC_OFFSET = b"CD001", 1
ISO_VD_BOOT, ISO_VD_PRIMARY, ISO_VD_SUPPLEMENTARY, ISO_VD_END = 0, 1, 2, 255
ISO_SYSTEM_ID, ISO_VOLUME_ID, ISO_SPACE_SIZE, ISO_ESCAPES = (8, 32), (40, 32), 80, 88
ISO_BLOCK_SIZE, ISO_APPLICATION_ID = 128, (574, 128)
ISO_CREATED, ISO_MODIFIED, ISO_DATE_LENGTH = 813, 830, 17
ISO_JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")
ELTORITO_ID = b"EL TORITO SPECIFICATION"
ELTORITO_ID_OFFSET, ELTORITO_CATALOG = 7, 0x47
ELTORITO_ENTRY = 32
ELTORITO_PLATFORMS = {0x00: "bios", 0x01: "ppc", 0x02: "mac", 0xEF: "uefi"}

# Btrfs --------------------------------------------------------------------
BTRFS_SB = 64 * 1024
BTRFS_SB_BYTES = 4096
BTRFS_FSID, BTRFS_BYTENR, BTRFS_MAGIC_OFFSET, BTRFS_TOTAL_BYTES = 0x20, 0x30, 0x40, 0x70
BTRFS_SECTORSIZE, BTRFS_NODESIZE, BTRFS_CSUM_TYPE = 0x90, 0x94, 0xC4
BTRFS_DEV_UUID, BTRFS_LABEL, BTRFS_LABEL_LENGTH = 0xC9 + 66, 0x12B, 256
BTRFS_MAGIC = b"_BHRfS_M"
BTRFS_CSUM_CRC32C = 0
BTRFS_CSUM_START = 32

# Linux MD RAID --------------------------------------------------------------
MD_MAGIC = 0xA92B4EFC
MD_RESERVED = 64 * 1024
MD0_MAJOR, MD0_MINOR, MD0_PATCH, MD0_UUID0, MD0_UUID123 = 4, 8, 12, 20, 52
MD1_MAJOR, MD1_SET_UUID, MD1_SET_NAME, MD1_SIZE = 4, 16, (32, 32), 80
MD1_SUPER_OFFSET, MD1_SB_CSUM, MD1_MAX_DEV, MD1_DEVICE_UUID = 144, 216, 220, 168
MD1_SB_BYTES = 256
MD1_SB_MAX_BYTES = 4096
#: Where each 1.x minor version keeps its superblock: 1.1 at 0, 1.2 at 4 KiB,
#: 1.0 near the end (computed).
MD1_MINOR_OFFSETS = ((1, 0), (2, 4096))

# --------------------------------------------------------------------------

USAGE_FILESYSTEM, USAGE_CRYPTO, USAGE_RAID, USAGE_OTHER = "filesystem", "crypto", "raid", "other"


class Volume:
    """What a volume holds, in blkid's words (``filesystem`` is its TYPE)."""

    __slots__ = ("filesystem", "label", "uuid", "size", "encrypted", "version", "usage",
                 "details")

    def __init__(self, filesystem, label=None, uuid=None, size=None, encrypted=False,
                 version=None, usage=USAGE_FILESYSTEM, details=None):
        self.filesystem = filesystem
        self.label = label
        self.uuid = uuid
        self.size = size
        self.encrypted = encrypted
        self.version = version
        self.usage = usage
        self.details = {} if details is None else details

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self):
        return f"Volume({self.as_dict()!r})"

    def __eq__(self, other):
        return isinstance(other, Volume) and self.as_dict() == other.as_dict()


# -- text helpers ------------------------------------------------------------

cdef str _rtrim(str text):
    """blkid's label rules: stop at the first NUL, drop trailing white space."""
    cdef Py_ssize_t nul = text.find("\x00")
    if nul >= 0:
        text = text[:nul]
    return text.rstrip(" \t\n\r\v\f")


cdef object _label8(bytes raw, str encoding="utf-8"):
    """A byte label as text, or None when empty."""
    cdef Py_ssize_t nul = raw.find(b"\x00")
    if nul >= 0:
        raw = raw[:nul]
    text = _rtrim(raw.decode(encoding, "replace"))
    return text or None


cdef object _label16(bytes raw, str encoding):
    """A UTF-16 label as text (decoded whole code units only), or None when empty."""
    text = _rtrim(raw[:len(raw) & ~1].decode(encoding, "replace"))
    return text or None


cdef object _uuid_or_none(bytes raw):
    """RFC 4122 text, or None for the all-zero UUID (blkid prints none)."""
    if len(raw) != 16 or not any(raw):
        return None
    return uuid_text(raw)


cdef inline bint _pow2(uint64_t v):
    return v != 0 and (v & (v - 1)) == 0


# Field readers: a field that lies (partly) outside the bytes read is 0, so a
# short read can only make a probe fail its checks, never read out of bounds.

cdef inline const uint8_t* _field(bytes buf, Py_ssize_t off, Py_ssize_t n):
    if off < 0 or off + n > len(buf):
        return NULL
    return (<const uint8_t*>buf) + off


cdef inline uint16_t _le16(bytes buf, Py_ssize_t off):
    cdef const uint8_t* f = _field(buf, off, 2)
    return le16(f) if f != NULL else 0


cdef inline uint32_t _le32(bytes buf, Py_ssize_t off):
    cdef const uint8_t* f = _field(buf, off, 4)
    return le32(f) if f != NULL else 0


cdef inline uint64_t _le64(bytes buf, Py_ssize_t off):
    cdef const uint8_t* f = _field(buf, off, 8)
    return le64(f) if f != NULL else 0


cdef inline uint16_t _be16(bytes buf, Py_ssize_t off):
    cdef const uint8_t* f = _field(buf, off, 2)
    return be16(f) if f != NULL else 0


cdef inline uint32_t _be32(bytes buf, Py_ssize_t off):
    cdef const uint8_t* f = _field(buf, off, 4)
    return be32(f) if f != NULL else 0


cdef inline uint64_t _be64(bytes buf, Py_ssize_t off):
    cdef const uint8_t* f = _field(buf, off, 8)
    return be64(f) if f != NULL else 0


# CRC-32C for the ext4 and Btrfs superblock checksums: the shared walk of
# crc32c.pyx, raw (the caller chooses seed and final xor: ext4 has none).

cdef uint32_t _crc32c_raw(uint32_t crc, bytes data) noexcept:
    return crc32c_update(crc, <const uint8_t*>data, len(data))


# -- the volume being probed ------------------------------------------------

cdef class _Probe:
    """One volume: bounded reads relative to its start, and the shared head region."""

    cdef object read
    cdef uint64_t base
    cdef uint64_t size
    cdef bytes head

    def __init__(self, read, uint64_t base, uint64_t size):
        self.read = read
        self.base = base
        self.size = size
        self.head = self.get(0, HEAD_BYTES)

    cpdef bytes get(self, uint64_t rel, uint64_t length):
        """Up to ``length`` bytes at ``rel``, never past the volume's end (short there)."""
        if rel >= self.size or length == 0:
            return b""
        if length > self.size - rel:
            length = self.size - rel
        data = self.read(self.base + rel, length)
        return bytes(data) if not isinstance(data, bytes) else data

    cdef bytes at(self, uint64_t rel, uint64_t length):
        """Bytes at ``rel``: from the head region when it covers them, else read."""
        if rel + length <= <uint64_t>len(self.head):
            return self.head[rel:rel + length]
        return self.get(rel, length)


# -- Linux MD RAID --------------------------------------------------------------

cdef object _md1(_Probe p, uint64_t off, int minor):
    cdef bytes sb = p.at(off, MD1_SB_BYTES)
    cdef uint64_t total = 0
    cdef uint32_t max_dev, n, i
    if len(sb) < MD1_SB_BYTES:
        return None
    if _le32(sb, 0) != MD_MAGIC or _le32(sb, MD1_MAJOR) != 1:
        return None
    if _le64(sb, MD1_SUPER_OFFSET) != off // 512:
        return None
    max_dev = _le32(sb, MD1_MAX_DEV)
    if max_dev > (MD1_SB_MAX_BYTES - MD1_SB_BYTES) // 2:
        return None
    n = MD1_SB_BYTES + 2 * max_dev
    full = p.at(off, n)
    if len(full) < n:
        return None
    for i in range(0, n - 3, 4):
        if i != MD1_SB_CSUM:
            total += _le32(full, i)
    if n & 2:
        total += _le16(full, n - 2)
    if <uint32_t>((total & 0xFFFFFFFF) + (total >> 32)) != _le32(full, MD1_SB_CSUM):
        return None
    start, length = MD1_SET_NAME
    return Volume("linux_raid_member", label=_label8(sb[start:start + length]),
                  uuid=_uuid_or_none(sb[MD1_SET_UUID:MD1_SET_UUID + 16]),
                  version=f"1.{minor}", usage=USAGE_RAID,
                  details={"uuid_sub": _uuid_or_none(sb[MD1_DEVICE_UUID:MD1_DEVICE_UUID + 16]),
                           "superblock_offset": off})


cdef object _md0(_Probe p, uint64_t off):
    cdef bytes sb = p.at(off, 64)
    if len(sb) < 64:
        return None
    if _le32(sb, 0) == MD_MAGIC:
        major, minor, patch = _le32(sb, MD0_MAJOR), _le32(sb, MD0_MINOR), _le32(sb, MD0_PATCH)
    elif _be32(sb, 0) == MD_MAGIC:
        major, minor, patch = _be32(sb, MD0_MAJOR), _be32(sb, MD0_MINOR), _be32(sb, MD0_PATCH)
    else:
        return None
    if major != 0:
        return None
    raw = sb[MD0_UUID0:MD0_UUID0 + 4] + sb[MD0_UUID123:MD0_UUID123 + 12]
    return Volume("linux_raid_member", uuid=_uuid_or_none(raw),
                  version=f"{major}.{minor}.{patch}", usage=USAGE_RAID,
                  details={"superblock_offset": off})


cdef object _probe_raid(_Probe p):
    cdef uint64_t off
    if p.size > MD_RESERVED:
        vol = _md0(p, (p.size & ~<uint64_t>(MD_RESERVED - 1)) - MD_RESERVED)
        if vol is not None:
            return vol
    if p.size >= 16 * 512:
        off = (((p.size >> 9) - 16) & ~<uint64_t>7) << 9
        vol = _md1(p, off, 0)
        if vol is not None:
            return vol
    for minor, off in MD1_MINOR_OFFSETS:
        vol = _md1(p, off, minor)
        if vol is not None:
            return vol
    return None


# -- LVM2 ---------------------------------------------------------------------

cdef object _probe_lvm2(_Probe p):
    cdef bytes head = p.head
    cdef uint32_t offset_xl
    import zlib
    for sector in range(LVM_LABEL_SCAN_SECTORS):
        start = sector * LVM_SECTOR
        if len(head) < start + LVM_SECTOR:
            return None
        if head[start:start + 8] != LVM_LABEL_ID:
            continue
        label = head[start:start + LVM_SECTOR]
        if label[LVM_TYPE:LVM_TYPE + 8] != LVM_LABEL_TYPE or _le64(label, LVM_SECTOR_XL) != sector:
            continue
        crc = zlib.crc32(label[LVM_OFFSET_XL:], LVM_CRC_SEED ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
        if crc != _le32(label, LVM_CRC_XL):
            continue
        offset_xl = _le32(label, LVM_OFFSET_XL)
        if offset_xl + LVM_PV_UUID_LENGTH + 8 > LVM_SECTOR:
            continue
        pv = label[offset_xl:offset_xl + LVM_PV_UUID_LENGTH].decode("ascii", "replace")
        parts, pos = [], 0
        for width in LVM_UUID_GROUPS:
            parts.append(pv[pos:pos + width])
            pos += width
        device_size = _le64(label, offset_xl + LVM_PV_UUID_LENGTH)
        return Volume("LVM2_member", uuid="-".join(parts), size=device_size or None,
                      version="LVM2 001", usage=USAGE_RAID,
                      details={"label_sector": sector})
    return None


# -- LUKS -----------------------------------------------------------------------

cdef str _cstr(bytes raw, tuple field):
    start, length = field
    return _label8(raw[start:start + length], "ascii") or ""


cdef object _probe_luks(_Probe p):
    cdef bytes h = p.head
    if len(h) < 512 or h[:6] != LUKS_MAGIC:
        return None
    version = _be16(h, LUKS_VERSION)
    uuid = _cstr(h, LUKS_UUID) or None
    if version == 1:
        key_bits = _be32(h, LUKS1_KEY_BYTES) * 8
        name, mode = _cstr(h, LUKS1_CIPHER_NAME), _cstr(h, LUKS1_CIPHER_MODE)
        return Volume("crypto_LUKS", uuid=uuid, encrypted=True, version="1",
                      usage=USAGE_CRYPTO,
                      details={"cipher": f"{name}-{mode}" if mode else name,
                               "key_bits": key_bits, "hash": _cstr(h, LUKS1_HASH),
                               "payload_offset": _be32(h, LUKS1_PAYLOAD_OFFSET) * 512})
    if version == 2:
        if _be64(h, LUKS2_HDR_OFFSET) != 0:
            return None
        details = {"header_size": _be64(h, LUKS2_HDR_SIZE)}
        subsystem = _cstr(h, LUKS2_SUBSYSTEM)
        if subsystem:
            details["subsystem"] = subsystem
        return Volume("crypto_LUKS", label=_cstr(h, LUKS2_LABEL) or None, uuid=uuid,
                      encrypted=True, version="2", usage=USAGE_CRYPTO, details=details)
    return None


# -- BitLocker ----------------------------------------------------------------

cdef object _probe_bitlocker(_Probe p):
    cdef bytes h = p.head
    cdef uint64_t fve_off
    if len(h) < 512:
        return None
    magic = h[:11]
    if magic == BDE_MAGIC_VISTA:
        return Volume("BitLocker", encrypted=True, usage=USAGE_CRYPTO,
                      details={"variant": "vista", "to_go": False})
    if magic == BDE_MAGIC_WIN7:
        fve_off, to_go, guid_at = _le64(h, BDE_WIN7_FVE_OFFSET), False, BDE_WIN7_GUID
    elif magic == BDE_MAGIC_TOGO:
        fve_off, to_go, guid_at = _le64(h, BDE_TOGO_FVE_OFFSET), True, BDE_TOGO_GUID
    else:
        return None
    if fve_off == 0:
        return None
    fve = p.at(fve_off, FVE_BYTES)
    if fve[:8] != BDE_FVE_SIGNATURE:
        return None
    details = {"to_go": to_go, "sector_size": _le16(h, BPB_BYTES_PER_SECTOR),
               "guid": guid_text(h[guid_at:guid_at + 16]), "metadata_offset": fve_off}
    version = None
    size = None
    if len(fve) >= FVE_BYTES:
        version = str(_le16(fve, FVE_VERSION))
        size = _le64(fve, FVE_VOLUME_SIZE) or None
        details["volume_guid"] = guid_text(fve[FVE_VOLUME_GUID:FVE_VOLUME_GUID + 16])
        method = _le16(fve, FVE_ENCRYPTION_METHOD)
        details["encryption_method"] = method
        if method in BDE_METHODS:
            details["cipher"], details["key_bits"] = BDE_METHODS[method]
    uuid = None
    if not to_go:
        serial = _le32(h, BDE_WIN7_SERIAL)
        uuid = f"{serial:016d}" if serial else None
    return Volume("BitLocker", uuid=uuid, size=size, encrypted=True, version=version,
                  usage=USAGE_CRYPTO, details=details)


# -- FAT ------------------------------------------------------------------------

cdef object _fat_magic_len(bytes h):
    """Length of the signature libblkid would match first (0: none)."""
    for off, magic in FAT_MAGICS:
        if h[off:off + len(magic)] == magic:
            return len(magic)
    if h[0] in FAT_JUMPS:
        return 1
    if h[BOOT_SIGNATURE_OFFSET:BOOT_SIGNATURE_OFFSET + 2] == BOOT_SIGNATURE:
        return 2
    return 0


cdef object _fat_root_label(_Probe p, uint64_t start, uint64_t entries):
    """The volume-label entry of a root directory read in small chunks, or None.

    Returns (label bytes or None, finished): finished is False when the scan
    ran to the end of ``entries`` without an end-of-directory mark.
    """
    cdef uint64_t pos = 0, chunk, total = entries * FAT_DIR_ENTRY
    cdef uint64_t cap = limits.FS_MAX_DIRECTORY_SCAN
    cdef const uint8_t* e
    cdef Py_ssize_t i
    if total > cap:
        total = cap
    while pos < total:
        chunk = min(<uint64_t>limits.FS_DIRECTORY_CHUNK, total - pos)
        data = p.get(start + pos, chunk)
        e = data
        for i in range(0, len(data) - FAT_DIR_ENTRY + 1, FAT_DIR_ENTRY):
            if e[i] == 0:
                return None, True
            attr = e[i + 11]
            if (e[i] == FAT_ENTRY_FREE or le16(e + i + 20) != 0 or le16(e + i + 26) != 0
                    or (attr & FAT_ATTR_MASK) == FAT_ATTR_LONG_NAME):
                continue
            if attr & (FAT_ATTR_VOLUME_ID | FAT_ATTR_DIR) == FAT_ATTR_VOLUME_ID:
                return data[i:i + FAT_LABEL_LENGTH], True
        if <uint64_t>len(data) < chunk:
            return None, True
        pos += chunk
    return None, False


cdef object _probe_vfat(_Probe p):
    cdef bytes h = p.head
    if len(h) < 512:
        return None
    mlen = _fat_magic_len(h)
    if not mlen:
        return None
    if mlen <= 2:
        if h[BOOT_SIGNATURE_OFFSET:BOOT_SIGNATURE_OFFSET + 2] != BOOT_SIGNATURE:
            return None
        if h[FAT16_MAGIC:FAT16_MAGIC + 8] in (b"JFS     ", b"HPFS    "):
            return None
    fats, reserved, media = h[BPB_FATS], _le16(h, BPB_RESERVED_SECTORS), h[BPB_MEDIA]
    spc = h[BPB_SECTORS_PER_CLUSTER]
    sector_size = _le16(h, BPB_BYTES_PER_SECTOR)
    if (not fats or not reserved or not (media >= 0xF8 or media == 0xF0) or not _pow2(spc)
            or not _pow2(sector_size) or sector_size < 512 or sector_size > 4096):
        return None
    dir_entries = _le16(h, BPB_ROOT_ENTRIES)
    sectors = _le16(h, BPB_TOTAL_SECTORS_16) or _le32(h, BPB_TOTAL_SECTORS_32)
    fat_length16 = _le16(h, BPB_FAT_LENGTH_16)
    fat32_length = _le32(h, FAT32_FAT_LENGTH)
    fat_size = (fat_length16 or fat32_length) * fats
    dir_sectors = (dir_entries * FAT_DIR_ENTRY + sector_size - 1) // sector_size
    data_sectors = sectors - (reserved + fat_size + dir_sectors)
    if data_sectors < 0:
        return None
    clusters = data_sectors // spc
    if not fat_length16 and fat32_length:
        max_count = FAT32_MAX
    else:
        max_count = FAT16_MAX if clusters > FAT12_MAX else FAT12_MAX
    if clusters > max_count:
        return None

    details = {"sector_size": sector_size, "cluster_size": spc * sector_size,
               "clusters": clusters}
    version = label = serial = boot_label = None
    if fat_length16:
        found, _ = _fat_root_label(p, (reserved + fat_size) * sector_size, dir_entries)
        label, boot_label = found, h[FAT16_LABEL:FAT16_LABEL + FAT_LABEL_LENGTH]
        serial = h[FAT16_SERIAL:FAT16_SERIAL + 4]
        details["sec_type"] = "msdos"
        if clusters < FAT12_MAX:
            version = "FAT12"
        elif clusters < FAT16_MAX:
            version = "FAT16"
    elif fat32_length:
        version = "FAT32"
        cluster_bytes = spc * sector_size
        data_start = reserved + fat_size
        fat_entries = fat32_length * sector_size // 4
        cluster = _le32(h, FAT32_ROOT_CLUSTER)
        hops = 0
        while 2 <= cluster < fat_entries and hops < limits.FS_MAX_FAT_CHAIN:
            hops += 1
            found, finished = _fat_root_label(
                p, (data_start + (cluster - 2) * spc) * sector_size,
                cluster_bytes // FAT_DIR_ENTRY)
            if found is not None or finished:
                label = found
                break
            entry = p.get(reserved * sector_size + cluster * 4, 4)
            if len(entry) < 4:
                break
            cluster = int.from_bytes(entry, "little") & FAT32_CLUSTER_MASK
        boot_label = h[FAT32_LABEL:FAT32_LABEL + FAT_LABEL_LENGTH]
        serial = h[FAT32_SERIAL:FAT32_SERIAL + 4]
        fsinfo = _le16(h, FAT32_FSINFO_SECTOR)
        if fsinfo:
            info = p.get(fsinfo * sector_size, 512)
            if len(info) < 512:
                return None
            if (info[:4] not in (FSINFO_LEAD, FSINFO_LEAD_ALT, b"\x00" * 4)
                    or info[FSINFO_STRUCT_OFFSET:FSINFO_STRUCT_OFFSET + 4]
                    not in (FSINFO_STRUCT, b"\x00" * 4)):
                return None
    if version is not None:
        details["fat_type"] = version
    if boot_label is not None and boot_label != FAT_NO_NAME:
        details["label_fatboot"] = _label8(boot_label, "cp850")
    if label is not None and label != FAT_NO_NAME:
        label = _label8(label, "cp850")
    else:
        label = None
    uuid = None
    if serial is not None and any(serial):
        uuid = f"{serial[3]:02X}{serial[2]:02X}-{serial[1]:02X}{serial[0]:02X}"
    return Volume("vfat", label=label, uuid=uuid, size=sectors * sector_size or None,
                  version=version, details=details)


# -- Linux swap -----------------------------------------------------------------

cdef object _swap_at(_Probe p, bytes magic, uint64_t page):
    if magic == SWAP_MAGIC_V0:
        return Volume("swap", version="0", usage=USAGE_OTHER, details={"page_size": page})
    if magic != SWAP_MAGIC_V1:
        return None
    hdr = p.at(SWAP_HEADER, SWAP_LABEL + SWAP_LABEL_LENGTH)
    if len(hdr) < SWAP_LABEL + SWAP_LABEL_LENGTH:
        return None
    if _le32(hdr, SWAP_VERSION) == 1:
        last_page = _le32(hdr, SWAP_LAST_PAGE)
        endian = "little"
    elif _be32(hdr, SWAP_VERSION) == 1:
        last_page = _be32(hdr, SWAP_LAST_PAGE)
        endian = "big"
    else:
        return None
    if last_page == 0:
        return None
    return Volume("swap", label=_label8(hdr[SWAP_LABEL:SWAP_LABEL + SWAP_LABEL_LENGTH]),
                  uuid=_uuid_or_none(hdr[SWAP_UUID:SWAP_UUID + 16]),
                  size=(last_page + 1) * page, version="1", usage=USAGE_OTHER,
                  details={"page_size": page, "endianness": endian})


cdef object _probe_swap(_Probe p, tuple pages):
    for page in pages:
        magic = p.at(page - SWAP_MAGIC_LENGTH, SWAP_MAGIC_LENGTH)
        if magic in (SWAP_MAGIC_V0, SWAP_MAGIC_V1):
            vol = _swap_at(p, magic, page)
            if vol is not None:
                return vol
    return None


# -- XFS --------------------------------------------------------------------------

cdef object _probe_xfs(_Probe p):
    cdef bytes h = p.head
    if len(h) < XFS_SB_BYTES or h[:4] != XFS_MAGIC:
        return None
    blocksize, dblocks = _be32(h, XFS_BLOCKSIZE), _be64(h, XFS_DBLOCKS)
    agblocks, agcount = _be32(h, XFS_AGBLOCKS), _be32(h, XFS_AGCOUNT)
    rextsize = _be32(h, XFS_REXTSIZE)
    sectsize, inodesize = _be16(h, XFS_SECTSIZE), _be16(h, XFS_INODESIZE)
    blocklog, sectlog, inodelog = h[XFS_BLOCKLOG], h[XFS_SECTLOG], h[XFS_INODELOG]
    if (agcount == 0 or not 9 <= sectlog <= 15 or sectsize != 1 << sectlog
            or not 9 <= blocklog <= 16 or blocksize != 1 << blocklog
            or not 8 <= inodelog <= 11 or inodesize != 1 << inodelog
            or blocklog - inodelog != h[XFS_INOPBLOG]
            or not XFS_MIN_RTEXT <= rextsize * blocksize <= XFS_MAX_RTEXT
            or h[XFS_IMAX_PCT] > 100 or dblocks == 0
            or dblocks > agcount * agblocks
            or dblocks < (agcount - 1) * agblocks + XFS_MIN_AG_BLOCKS):
        return None
    label = None
    if h[XFS_FNAME] != 0:
        label = _label8(h[XFS_FNAME:XFS_FNAME + 12])
    return Volume("xfs", label=label, uuid=_uuid_or_none(h[XFS_UUID:XFS_UUID + 16]),
                  size=dblocks * blocksize,
                  details={"block_size": blocksize, "sector_size": sectsize,
                           "sb_version": _be16(h, XFS_VERSIONNUM) & XFS_VERSION_MASK})


# -- ext2/3/4 ---------------------------------------------------------------------

cdef object _probe_ext(_Probe p):
    cdef bytes h = p.head
    if len(h) < EXT_SB + EXT_SB_BYTES:
        return None
    if _le16(h, EXT_SB + EXT_MAGIC_OFFSET) != EXT_MAGIC:
        return None
    compat = _le32(h, EXT_SB + EXT_FEATURE_COMPAT)
    incompat = _le32(h, EXT_SB + EXT_FEATURE_INCOMPAT)
    ro_compat = _le32(h, EXT_SB + EXT_FEATURE_RO_COMPAT)
    flags = _le32(h, EXT_SB + EXT_FLAGS)
    details = {}
    if ro_compat & EXT_RO_COMPAT_METADATA_CSUM:
        sb = h[EXT_SB:EXT_SB + EXT_CHECKSUM]
        ok = _crc32c_raw(0xFFFFFFFF, sb) == _le32(h, EXT_SB + EXT_CHECKSUM)
        details["checksum"] = "ok" if ok else "bad"
    journal = bool(compat & EXT_COMPAT_HAS_JOURNAL)
    if incompat & EXT_INCOMPAT_JOURNAL_DEV:
        fstype, usage = "jbd", USAGE_OTHER
    elif flags & EXT_FLAGS_TEST_FILESYS:
        fstype, usage = "ext4dev", USAGE_FILESYSTEM
    elif (ro_compat & ~EXT3_RO_COMPAT_SUPP) or (incompat & ~EXT3_INCOMPAT_SUPP):
        fstype, usage = "ext4", USAGE_FILESYSTEM
    elif journal:
        fstype, usage = "ext3", USAGE_FILESYSTEM
        details["sec_type"] = "ext2"
    elif (ro_compat & ~EXT2_RO_COMPAT_SUPP) or (incompat & ~EXT2_INCOMPAT_SUPP):
        # needs_recovery without a journal: ext3 refuses it, ext4 takes it.
        fstype, usage = "ext4", USAGE_FILESYSTEM
    else:
        fstype, usage = "ext2", USAGE_FILESYSTEM
    log_block = _le32(h, EXT_SB + EXT_LOG_BLOCK_SIZE)
    block_size = 1024 << log_block if log_block <= 6 else None
    blocks = _le32(h, EXT_SB + EXT_BLOCKS_COUNT)
    if incompat & EXT_INCOMPAT_64BIT:
        blocks |= <uint64_t>_le32(h, EXT_SB + EXT_BLOCKS_COUNT_HI) << 32
    state = _le16(h, EXT_SB + EXT_STATE)
    recovery = bool(incompat & EXT_INCOMPAT_RECOVER)
    # "state" is s_state as dumpe2fs words it; "clean" also weighs the journal:
    # a file system with needs_recovery was not unmounted cleanly whatever s_state says.
    text = "clean" if state & EXT_VALID_FS else "not clean"
    if state & EXT_ERROR_FS:
        text += " with errors"
    clean = bool(state & EXT_VALID_FS) and not (state & EXT_ERROR_FS) and not recovery
    details.update({"state": text, "clean": clean, "s_state": state,
                    "needs_recovery": recovery, "errors": bool(state & EXT_ERROR_FS),
                    "has_journal": journal, "block_size": block_size,
                    "feature_compat": compat, "feature_incompat": incompat,
                    "feature_ro_compat": ro_compat})
    return Volume(fstype, label=_label8(h[EXT_SB + EXT_VOLUME_NAME:EXT_SB + EXT_VOLUME_NAME + 16]),
                  uuid=_uuid_or_none(h[EXT_SB + EXT_UUID:EXT_SB + EXT_UUID + 16]),
                  size=blocks * block_size if block_size else None,
                  version=f"{_le32(h, EXT_SB + EXT_REV)}.{_le16(h, EXT_SB + EXT_MINOR_REV)}",
                  usage=usage,
                  details=details)


# -- ISO 9660 ---------------------------------------------------------------------

cdef object _iso_date_uuid(bytes date):
    """blkid's ISO "UUID": the 16 date digits as YYYY-MM-DD-HH-MM-SS-CC, None if unset."""
    digits = date[:16]
    if len(date) < ISO_DATE_LENGTH or (digits == b"0" * 16 and date[16] == 0):
        return None
    t = digits.decode("latin-1")
    return f"{t[0:4]}-{t[4:6]}-{t[6:8]}-{t[8:10]}-{t[10:12]}-{t[12:14]}-{t[14:16]}"


cdef list _eltorito_platforms(_Probe p, uint64_t catalog_lba):
    cdef bytes cat = p.get(catalog_lba * ISO_SECTOR, ISO_SECTOR)
    cdef list platforms = []
    if len(cat) < 2 * ELTORITO_ENTRY or cat[0] != 1 or cat[30:32] != BOOT_SIGNATURE:
        return platforms
    if cat[ELTORITO_ENTRY] == 0x88:
        platforms.append(ELTORITO_PLATFORMS.get(cat[1], f"0x{cat[1]:02x}"))
    pos = 2 * ELTORITO_ENTRY
    while pos + ELTORITO_ENTRY <= len(cat) and cat[pos] in (0x90, 0x91):
        name = ELTORITO_PLATFORMS.get(cat[pos + 1], f"0x{cat[pos + 1]:02x}")
        count = int.from_bytes(cat[pos + 2:pos + 4], "little")
        if name not in platforms and count:
            platforms.append(name)
        final = cat[pos] == 0x91
        pos += ELTORITO_ENTRY * (1 + count)
        if final:
            break
    return platforms


cdef object _probe_iso9660(_Probe p):
    cdef bytes vds = p.get(ISO_PVD, limits.FS_ISO_FIRST_DESCRIPTORS * ISO_SECTOR)
    if len(vds) < ISO_SECTOR or vds[ISO_MAGIC_OFFSET:ISO_MAGIC_OFFSET + 5] != ISO_MAGIC:
        return None
    pvd = vds[:ISO_SECTOR]
    volume_id = pvd[ISO_VOLUME_ID[0]:ISO_VOLUME_ID[0] + ISO_VOLUME_ID[1]]
    uuid = _iso_date_uuid(pvd[ISO_MODIFIED:ISO_MODIFIED + ISO_DATE_LENGTH])
    if uuid is None:
        uuid = _iso_date_uuid(pvd[ISO_CREATED:ISO_CREATED + ISO_DATE_LENGTH])
    block = int.from_bytes(pvd[ISO_BLOCK_SIZE:ISO_BLOCK_SIZE + 2], "little")
    space = int.from_bytes(pvd[ISO_SPACE_SIZE:ISO_SPACE_SIZE + 4], "little")
    details = {"system_id": _cstr(pvd, ISO_SYSTEM_ID) or None,
               "application_id": _cstr(pvd, ISO_APPLICATION_ID) or None,
               "block_size": block}
    label = _label8(volume_id, "latin-1")
    version = None
    joliet_seen = extended = False
    for i in range(1, limits.FS_ISO_MAX_DESCRIPTORS):
        if (i + 1) * ISO_SECTOR > len(vds):
            # The set is longer than the first read: fetch the rest once.
            if extended or len(vds) < limits.FS_ISO_FIRST_DESCRIPTORS * ISO_SECTOR:
                break
            extended = True
            vds += p.get(ISO_PVD + len(vds),
                         (limits.FS_ISO_MAX_DESCRIPTORS - i) * ISO_SECTOR)
            if (i + 1) * ISO_SECTOR > len(vds):
                break
        vd = vds[i * ISO_SECTOR:(i + 1) * ISO_SECTOR]
        kind = vd[0]
        if kind == ISO_VD_END or vd[1:6] != ISO_MAGIC:
            break
        if kind == ISO_VD_BOOT and vd[ELTORITO_ID_OFFSET:ELTORITO_ID_OFFSET + 23] == ELTORITO_ID:
            details["el_torito"] = _eltorito_platforms(
                p, int.from_bytes(vd[ELTORITO_CATALOG:ELTORITO_CATALOG + 4], "little"))
        elif (kind == ISO_VD_SUPPLEMENTARY and not joliet_seen
              and vd[ISO_ESCAPES:ISO_ESCAPES + 3] in ISO_JOLIET_ESCAPES):
            joliet_seen = True
            version = "Joliet Extension"
            joliet = vd[ISO_VOLUME_ID[0]:ISO_VOLUME_ID[0] + ISO_VOLUME_ID[1]]
            # blkid keeps the primary label when the Joliet one spells the same
            # text (Joliet's 16 UTF-16 characters may be a truncation of it).
            if joliet[0::2] != b"\x00" * 16 or joliet[1::2] != volume_id[:16]:
                label = _label16(joliet, "utf-16-be")
    return Volume("iso9660", label=label, uuid=uuid, size=space * block or None,
                  version=version, details=details)


# -- NTFS -------------------------------------------------------------------------

cdef object _probe_ntfs(_Probe p):
    cdef bytes h = p.head
    cdef bytearray rec
    if len(h) < 512 or h[BS_OEM:BS_OEM + 8] != NTFS_OEM:
        return None
    sector_size, spc = _le16(h, BPB_BYTES_PER_SECTOR), h[BPB_SECTORS_PER_CLUSTER]
    if sector_size < 256 or sector_size > 4096 or spc not in (1, 2, 4, 8, 16, 32, 64, 128):
        return None
    if sector_size * spc > NTFS_MAX_CLUSTER:
        return None
    if (_le16(h, BPB_RESERVED_SECTORS) or _le16(h, BPB_ROOT_ENTRIES)
            or _le16(h, BPB_TOTAL_SECTORS_16) or _le16(h, BPB_FAT_LENGTH_16)
            or _le32(h, BPB_TOTAL_SECTORS_32) or h[BPB_FATS]):
        return None
    cpr = h[NTFS_CLUSTERS_PER_MFT_RECORD]
    if 0xE1 <= cpr <= 0xF7:
        record_size = 1 << (256 - cpr)
    elif cpr in (1, 2, 4, 8, 16, 32, 64):
        record_size = cpr * spc * sector_size
    else:
        return None
    sectors = _le64(h, NTFS_TOTAL_SECTORS)
    clusters = sectors // spc
    mft, mftmirr = _le64(h, NTFS_MFT_CLUSTER), _le64(h, NTFS_MFTMIRR_CLUSTER)
    if mft > clusters or mftmirr > clusters:
        return None
    cluster = spc * sector_size
    details = {"sector_size": sector_size, "cluster_size": cluster,
               "mft_record_size": record_size}
    label = None
    if record_size <= limits.FS_MAX_MFT_RECORD:
        mft_off = mft * cluster
        if p.get(mft_off, 4) != MFT_MAGIC:
            return None
        rec = bytearray(p.get(mft_off + MFT_RECORD_VOLUME * record_size, record_size))
        if len(rec) < record_size or rec[:4] != MFT_MAGIC:
            return None
        _ntfs_fixup(rec, record_size)
        label, ntfs_version = _ntfs_volume_attrs(rec, record_size)
        if ntfs_version is not None:
            details["ntfs_version"] = ntfs_version
    serial = _le64(h, NTFS_SERIAL)
    return Volume("ntfs", label=label, uuid=f"{serial:016X}" if serial else None,
                  size=sectors * sector_size or None, details=details)


cdef void _ntfs_fixup(bytearray rec, Py_ssize_t size):
    """Put back the sector-end bytes the update sequence array protects."""
    usa = int.from_bytes(rec[MFT_USA_OFFSET:MFT_USA_OFFSET + 2], "little")
    count = int.from_bytes(rec[MFT_USA_COUNT:MFT_USA_COUNT + 2], "little")
    if count < 2 or usa + 2 * count > size or (count - 1) * NTFS_FIXUP_STRIDE > size:
        return
    usn = rec[usa:usa + 2]
    for i in range(1, count):
        end = i * NTFS_FIXUP_STRIDE
        if rec[end - 2:end] != usn:
            return
        rec[end - 2:end] = rec[usa + 2 * i:usa + 2 * i + 2]


cdef tuple _ntfs_volume_attrs(bytearray rec, Py_ssize_t size):
    """$VOLUME_NAME (label) and $VOLUME_INFORMATION (version) of the $Volume record."""
    label = version = None
    pos = int.from_bytes(rec[MFT_ATTRS_OFFSET:MFT_ATTRS_OFFSET + 2], "little")
    allocated = int.from_bytes(rec[MFT_BYTES_ALLOCATED:MFT_BYTES_ALLOCATED + 4], "little")
    for _ in range(size // 16):
        if pos + 24 > size or pos > allocated:
            break
        kind = int.from_bytes(rec[pos:pos + 4], "little")
        length = int.from_bytes(rec[pos + 4:pos + 8], "little")
        if kind == ATTR_END or length == 0:
            break
        if rec[pos + ATTR_NON_RESIDENT] == 0 and kind in (ATTR_VOLUME_NAME,
                                                          ATTR_VOLUME_INFORMATION):
            vlen = int.from_bytes(rec[pos + ATTR_VALUE_LENGTH:pos + ATTR_VALUE_LENGTH + 4],
                                  "little")
            voff = pos + int.from_bytes(
                rec[pos + ATTR_VALUE_OFFSET:pos + ATTR_VALUE_OFFSET + 2], "little")
            value = bytes(rec[voff:min(voff + vlen, size)])
            if kind == ATTR_VOLUME_NAME:
                label = _label16(value, "utf-16-le")
            elif len(value) >= VOLINFO_MINOR + 1:
                version = f"{value[VOLINFO_MAJOR]}.{value[VOLINFO_MINOR]}"
        pos += length
    return label, version


# -- ReFS -------------------------------------------------------------------------

cdef object _probe_refs(_Probe p):
    cdef bytes h = p.head
    if len(h) < 512 or h[:8] != REFS_MAGIC:
        return None
    sector_size = _le32(h, REFS_BYTES_PER_SECTOR)
    serial = _le64(h, REFS_SERIAL)
    return Volume("refs", uuid=f"{serial:016X}" if serial else None,
                  size=_le64(h, REFS_SECTORS) * sector_size or None,
                  version=f"{h[REFS_MAJOR]}.{h[REFS_MINOR]}",
                  details={"sector_size": sector_size,
                           "cluster_size": sector_size * _le32(h, REFS_SECTORS_PER_CLUSTER)})


# -- Btrfs ------------------------------------------------------------------------

cdef object _probe_btrfs(_Probe p, bytes sb):
    if len(sb) < BTRFS_SB_BYTES or sb[BTRFS_MAGIC_OFFSET:BTRFS_MAGIC_OFFSET + 8] != BTRFS_MAGIC:
        return None
    details = {"uuid_sub": _uuid_or_none(sb[BTRFS_DEV_UUID:BTRFS_DEV_UUID + 16]),
               "sector_size": _le32(sb, BTRFS_SECTORSIZE),
               "node_size": _le32(sb, BTRFS_NODESIZE)}
    if _le16(sb, BTRFS_CSUM_TYPE) == BTRFS_CSUM_CRC32C:
        crc = _crc32c_raw(0xFFFFFFFF, sb[BTRFS_CSUM_START:]) ^ 0xFFFFFFFF
        details["checksum"] = "ok" if crc == _le32(sb, 0) else "bad"
    return Volume("btrfs", label=_label8(sb[BTRFS_LABEL:BTRFS_LABEL + BTRFS_LABEL_LENGTH]),
                  uuid=_uuid_or_none(sb[BTRFS_FSID:BTRFS_FSID + 16]),
                  size=_le64(sb, BTRFS_TOTAL_BYTES) or None, details=details)


# -- exFAT ------------------------------------------------------------------------

@cython.boundscheck(False)
cdef uint32_t _exfat_checksum(const uint8_t[::1] sectors, Py_ssize_t n) noexcept nogil:
    """The boot checksum over ``n`` bytes (n <= len(sectors), checked by the caller)."""
    cdef uint32_t c = 0
    cdef Py_ssize_t i
    for i in range(n):
        # VolumeFlags (0x6A-0x6B) and PercentInUse (0x70) change in use: not summed.
        if i == 0x6A or i == 0x6B or i == 0x70:
            continue
        c = ((c >> 1) | ((c & 1) << 31)) + sectors[i]
    return c


cdef object _probe_exfat(_Probe p):
    cdef bytes h = p.head
    if len(h) < 512 or h[BS_OEM:BS_OEM + 8] != EXFAT_OEM:
        return None
    bps_shift, spc_shift = h[EXFAT_BYTES_PER_SECTOR_SHIFT], h[EXFAT_SECTORS_PER_CLUSTER_SHIFT]
    if (h[BOOT_SIGNATURE_OFFSET:BOOT_SIGNATURE_OFFSET + 2] != BOOT_SIGNATURE
            or bps_shift + spc_shift >= 32 or h[:3] != EXFAT_JUMP
            or any(h[EXFAT_MUST_BE_ZERO[0]:EXFAT_MUST_BE_ZERO[1]])):
        return None
    sector_size = 1 << bps_shift
    cluster_size = sector_size << spc_shift
    details = {"sector_size": sector_size, "cluster_size": cluster_size}
    region = (EXFAT_CHECKSUM_SECTORS + 1) * sector_size
    if region <= len(h):
        expected = _le32(h, EXFAT_CHECKSUM_SECTORS * sector_size)
        details["checksum"] = (
            "ok" if _exfat_checksum(h, EXFAT_CHECKSUM_SECTORS * sector_size) == expected
            else "bad")
    label = _exfat_label(p, h, sector_size, cluster_size, spc_shift)
    serial = h[EXFAT_SERIAL:EXFAT_SERIAL + 4]
    uuid = f"{serial[3]:02X}{serial[2]:02X}-{serial[1]:02X}{serial[0]:02X}" if any(serial) else None
    return Volume("exfat", label=label, uuid=uuid,
                  size=_le64(h, EXFAT_VOLUME_LENGTH) * sector_size or None,
                  version=f"{h[EXFAT_REVISION + 1]}.{h[EXFAT_REVISION]}", details=details)


cdef object _exfat_label(_Probe p, bytes h, uint64_t sector_size, uint64_t cluster_size,
                         int spc_shift):
    """The volume label entry of the root directory, following its FAT chain (capped)."""
    cdef uint64_t heap = _le32(h, EXFAT_CLUSTER_HEAP_OFFSET) * sector_size
    cdef uint64_t fat = _le32(h, EXFAT_FAT_OFFSET) * sector_size
    cdef uint64_t cluster = _le32(h, EXFAT_ROOT_CLUSTER)
    cdef uint64_t scanned = 0, pos, chunk
    cdef const uint8_t* e
    for _ in range(limits.FS_MAX_FAT_CHAIN):
        if not EXFAT_FIRST_CLUSTER <= cluster <= EXFAT_LAST_CLUSTER:
            return None
        start = heap + (cluster - EXFAT_FIRST_CLUSTER) * cluster_size
        pos = 0
        while pos < cluster_size:
            if scanned >= limits.FS_MAX_DIRECTORY_SCAN:
                return None
            chunk = min(<uint64_t>limits.FS_DIRECTORY_CHUNK, cluster_size - pos)
            data = p.get(start + pos, chunk)
            e = data
            for i in range(0, len(data) - 31, 32):
                if e[i] == EXFAT_ENTRY_EOD:
                    return None
                if e[i] == EXFAT_ENTRY_LABEL:
                    chars = min(e[i + 1], EXFAT_LABEL_MAX_CHARS)
                    return _label16(data[i + 2:i + 2 + 2 * chars], "utf-16-le")
            if <uint64_t>len(data) < chunk:
                return None
            pos += chunk
            scanned += chunk
        entry = p.get(fat + cluster * 4, 4)
        if len(entry) < 4:
            return None
        cluster = int.from_bytes(entry, "little")
    return None


# -- entry point --------------------------------------------------------------------

def probe_volume(read, offset, size):
    """Identify what the volume at guest bytes [offset, offset + size) holds.

    ``read(off, length)`` returns guest bytes of the whole disk (short at its
    end). Returns a :class:`Volume`, or None when nothing known is there.
    """
    cdef _Probe p
    if size <= 0 or offset < 0:
        return None
    p = _Probe(read, offset, size)
    vol = _probe_raid(p)
    if vol is None:
        vol = _probe_lvm2(p)
    if vol is None:
        vol = _probe_luks(p)
    if vol is None:
        vol = _probe_bitlocker(p)
    if vol is None:
        vol = _probe_vfat(p)
    if vol is None:
        vol = _probe_swap(p, SWAP_PAGE_SIZES[:2])
    if vol is None:
        vol = _probe_xfs(p)
    if vol is None:
        vol = _probe_ext(p)
    if vol is None:
        vol = _probe_iso9660(p)
    if vol is None:
        vol = _probe_ntfs(p)
    if vol is None:
        vol = _probe_refs(p)
    if vol is None:
        # One read covers the Btrfs superblock and the 64 KiB-page swap signature before it.
        tail = p.get(BTRFS_SB - SWAP_MAGIC_LENGTH, SWAP_MAGIC_LENGTH + BTRFS_SB_BYTES)
        vol = _probe_btrfs(p, tail[SWAP_MAGIC_LENGTH:])
        if vol is None:
            vol = _probe_exfat(p)
        if vol is None and tail[:SWAP_MAGIC_LENGTH] in (SWAP_MAGIC_V0, SWAP_MAGIC_V1):
            vol = _swap_at(p, tail[:SWAP_MAGIC_LENGTH], SWAP_PAGE_SIZES[4])
        if vol is None:
            vol = _probe_swap(p, SWAP_PAGE_SIZES[2:4])
    return vol

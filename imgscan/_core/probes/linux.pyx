"""Linux volume probes: MD RAID members, LVM2 physical volumes, LUKS, swap, XFS, ext2/3/4, Btrfs.

Specs: the Linux MD superblock (``include/uapi/linux/raid/md_p.h``, versions
0.90 and 1.x); LVM2's on-disk label (``lib/format_text/layout.h``); the LUKS1
On-Disk Format Specification 1.2.3 and LUKS2 On-Disk Format 1.1.x; the Linux
swap header (``include/linux/swap.h``); the XFS superblock (XFS Algorithms &
Data Structures); the ext2/3/4 superblock (e2fsprogs ``lib/ext2fs/ext2_fs.h``);
the Btrfs superblock (btrfs-progs ``kernel-shared/ctree.h``). Each probe
returns a :class:`~imgscan._core.probes.volume.Volume` or None, and never
raises on garbage (see :mod:`imgscan._core.filesystems`).
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from ..binary cimport be32, le32
from .volume cimport (
    Probe, be16_at, be32_at, be64_at, bytes_at, bytes_in, cstr, label8, le16_at, le32_at,
    le64_at, uuid_or_none,
)
from .volume import USAGE_CRYPTO, USAGE_FILESYSTEM, USAGE_OTHER, USAGE_RAID, Volume

# The offsets, sizes and magics of the LUKS, LVM2, XFS, ext2/3/4 and Btrfs headers, as
# c_luks, c_lvm, c_xfs, c_ext4 and c_btrfs declare them, rendered into C and Python
# constants at build time (compiled_layouts.py): every volume is probed for each of these
# formats, and a C value is a load where a module global or a declaration's method is a
# Python lookup; the probes import no declaration module at start-up.
include "linux_layout.pxi"

# Linux swap ---------------------------------------------------------------
# (SWAP_MAGIC_LENGTH and the MD superblock sizes are C constants: linux.pxd.)
cdef bytes SWAP_MAGIC_V0 = b"SWAP-SPACE"
cdef bytes SWAP_MAGIC_V1 = b"SWAPSPACE2"
SWAP_PAGE_SIZES = (4096, 8192, 16384, 32768, 65536)
cdef enum:
    SWAP_PAGE_COUNT = 5
#: SWAP_PAGE_SIZES for probe_swap's loop in C.
cdef uint64_t SWAP_PAGES[SWAP_PAGE_COUNT]
if len(SWAP_PAGE_SIZES) != SWAP_PAGE_COUNT:
    raise ImportError("SWAP_PAGE_COUNT is not the number of SWAP_PAGE_SIZES")
for _i, _page in enumerate(SWAP_PAGE_SIZES):
    SWAP_PAGES[_i] = _page
SWAP_HEADER = 1024
SWAP_VERSION, SWAP_LAST_PAGE, SWAP_UUID, SWAP_LABEL = 0, 4, 12, 28
SWAP_LABEL_LENGTH = 16

# Linux MD RAID --------------------------------------------------------------
cdef uint32_t MD_MAGIC = 0xA92B4EFC
MD0_MAJOR, MD0_MINOR, MD0_PATCH, MD0_UUID0, MD0_UUID123 = 4, 8, 12, 20, 52
MD1_MAJOR, MD1_SET_UUID, MD1_SET_NAME, MD1_SIZE = 4, 16, (32, 32), 80
MD1_SUPER_OFFSET, MD1_SB_CSUM, MD1_MAX_DEV, MD1_DEVICE_UUID = 144, 216, 220, 168
MD1_SB_MAX_BYTES = 4096
#: Where each 1.x minor version keeps its superblock: 1.1 at 0, 1.2 at 4 KiB,
#: 1.0 near the end (computed).
cdef uint64_t MD1_1_OFFSET = 0, MD1_2_OFFSET = 4096


# -- Linux MD RAID --------------------------------------------------------------

cdef object _md1(Probe p, uint64_t off, int minor):
    cdef uint8_t buf[MD1_SB_BYTES]
    cdef bytes sb
    cdef uint64_t total = 0
    cdef uint32_t max_dev, n, i
    # compared in the probe's own buffer: a bytes object only for an MD member
    if p.fill(off, buf, MD1_SB_BYTES) < MD1_SB_BYTES:
        return None
    if le32(buf) != MD_MAGIC or le32(buf + <Py_ssize_t>MD1_MAJOR) != 1:
        return None
    sb = PyBytes_FromStringAndSize(<const char*>buf, MD1_SB_BYTES)
    if le64_at(sb, MD1_SUPER_OFFSET) != off // 512:
        return None
    max_dev = le32_at(sb, MD1_MAX_DEV)
    if max_dev > (MD1_SB_MAX_BYTES - MD1_SB_BYTES) // 2:
        return None
    n = MD1_SB_BYTES + 2 * max_dev
    full = p.at(off, n)
    if len(full) < n:
        return None
    for i in range(0, n - 3, 4):
        if i != MD1_SB_CSUM:
            total += le32_at(full, i)
    if n & 2:
        total += le16_at(full, n - 2)
    if <uint32_t>((total & 0xFFFFFFFF) + (total >> 32)) != le32_at(full, MD1_SB_CSUM):
        return None
    start, length = MD1_SET_NAME
    return Volume("linux_raid_member", label=label8(sb[start:start + length]),
                  uuid=uuid_or_none(sb[MD1_SET_UUID:MD1_SET_UUID + 16]),
                  version=f"1.{minor}", usage=USAGE_RAID,
                  details={"uuid_sub": uuid_or_none(sb[MD1_DEVICE_UUID:MD1_DEVICE_UUID + 16]),
                           "superblock_offset": off})


cdef object _md0(Probe p, uint64_t off):
    cdef uint8_t buf[MD0_SB_BYTES]
    cdef bytes sb
    # compared in the probe's own buffer: a bytes object only for an MD member
    if p.fill(off, buf, MD0_SB_BYTES) < MD0_SB_BYTES:
        return None
    if le32(buf) != MD_MAGIC and be32(buf) != MD_MAGIC:
        return None
    sb = PyBytes_FromStringAndSize(<const char*>buf, MD0_SB_BYTES)
    if le32_at(sb, 0) == MD_MAGIC:
        major, minor, patch = le32_at(sb, MD0_MAJOR), le32_at(sb, MD0_MINOR), le32_at(sb, MD0_PATCH)
        little = True
    elif be32_at(sb, 0) == MD_MAGIC:
        major, minor, patch = be32_at(sb, MD0_MAJOR), be32_at(sb, MD0_MINOR), be32_at(sb, MD0_PATCH)
        little = False
    else:
        return None
    if major != 0:
        return None
    # The UUID is four 32-bit words in the superblock's byte order; blkid and mdadm
    # --examine print each word's value in hex, most significant byte first.
    raw = b"".join(sb[o:o + 4][::-1] if little else sb[o:o + 4]
                   for o in (MD0_UUID0, MD0_UUID123, MD0_UUID123 + 4, MD0_UUID123 + 8))
    return Volume("linux_raid_member", uuid=uuid_or_none(raw),
                  version=f"{major}.{minor}.{patch}", usage=USAGE_RAID,
                  details={"superblock_offset": off})


cpdef uint64_t md0_offset(uint64_t size):
    """Where an MD 0.90 superblock of a volume of ``size`` bytes (> MD_RESERVED) is."""
    return (size & ~<uint64_t>(MD_RESERVED - 1)) - MD_RESERVED


cpdef uint64_t md10_offset(uint64_t size):
    """Where an MD 1.0 superblock of a volume of ``size`` bytes (>= 8 KiB) is."""
    return (((size >> 9) - 16) & ~<uint64_t>7) << 9


cdef object probe_raid(Probe p):
    if p.size > MD_RESERVED:
        vol = _md0(p, md0_offset(p.size))
        if vol is not None:
            return vol
    if p.size >= 16 * 512:
        vol = _md1(p, md10_offset(p.size), 0)
        if vol is not None:
            return vol
    vol = _md1(p, MD1_1_OFFSET, 1)
    if vol is not None:
        return vol
    return _md1(p, MD1_2_OFFSET, 2)


# -- LVM2 ---------------------------------------------------------------------

cdef object probe_lvm2(Probe p):
    cdef bytes head = p.head
    cdef bytes label
    cdef uint32_t offset_xl
    cdef Py_ssize_t sector, start
    for sector in range(LVM_LABEL_SCAN_SECTORS):
        start = sector * LVM_SECTOR
        if len(head) < start + LVM_SECTOR:
            return None
        if not bytes_at(head, start, LVM_LABEL_ID):
            continue
        label = head[start:start + LVM_SECTOR]
        if (not bytes_at(label, LVM_TYPE, LVM_LABEL_TYPE)
                or le64_at(label, LVM_SECTOR_XL) != <uint64_t>sector):
            continue
        import zlib     # here: a volume with no LVM2 label does not load it (start-up)
        crc = zlib.crc32(label[LVM_OFFSET_XL:], LVM_CRC_SEED ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
        if crc != le32_at(label, LVM_CRC_XL):
            continue
        offset_xl = le32_at(label, LVM_OFFSET_XL)
        if offset_xl + LVM_PV_HEADER_BYTES > LVM_SECTOR:
            continue
        pv = label[offset_xl:offset_xl + LVM_PV_UUID_LENGTH].decode("ascii", "replace")
        parts, pos = [], 0
        for width in LVM_UUID_GROUPS:
            parts.append(pv[pos:pos + width])
            pos += width
        device_size = le64_at(label, offset_xl + LVM_PV_DEVICE_SIZE)
        return Volume("LVM2_member", uuid="-".join(parts), size=device_size or None,
                      version="LVM2 001", usage=USAGE_RAID,
                      details={"label_sector": sector})
    return None


# -- LUKS -----------------------------------------------------------------------

cdef object probe_luks(Probe p):
    cdef bytes h = p.head
    if len(h) < LUKS_SECTOR_SIZE or not bytes_at(h, 0, LUKS_MAGIC):
        return None
    version = be16_at(h, LUKS_VERSION)
    if version == 1:
        uuid = cstr(h, LUKS1_UUID) or None
        key_bits = be32_at(h, LUKS1_KEY_BYTES) * 8
        name, mode = cstr(h, LUKS1_CIPHER_NAME), cstr(h, LUKS1_CIPHER_MODE)
        payload = be32_at(h, LUKS1_PAYLOAD_OFFSET) * LUKS_SECTOR_SIZE
        return Volume("crypto_LUKS", uuid=uuid, encrypted=True, version="1",
                      usage=USAGE_CRYPTO,
                      details={"cipher": f"{name}-{mode}" if mode else name,
                               "key_bits": key_bits, "hash": cstr(h, LUKS1_HASH),
                               "payload_offset": payload})
    if version == 2:
        if be64_at(h, LUKS2_HDR_OFFSET) != 0:
            return None
        uuid = cstr(h, LUKS2_UUID) or None
        details = {"header_size": be64_at(h, LUKS2_HDR_SIZE)}
        subsystem = cstr(h, LUKS2_SUBSYSTEM)
        if subsystem:
            details["subsystem"] = subsystem
        return Volume("crypto_LUKS", label=cstr(h, LUKS2_LABEL) or None, uuid=uuid,
                      encrypted=True, version="2", usage=USAGE_CRYPTO, details=details)
    return None


# -- Linux swap -----------------------------------------------------------------

cdef object swap_at(Probe p, bytes magic, uint64_t page):
    if magic == SWAP_MAGIC_V0:
        return Volume("swap", version="0", usage=USAGE_OTHER, details={"page_size": page})
    if magic != SWAP_MAGIC_V1:
        return None
    hdr = p.at(SWAP_HEADER, SWAP_LABEL + SWAP_LABEL_LENGTH)
    if len(hdr) < SWAP_LABEL + SWAP_LABEL_LENGTH:
        return None
    if le32_at(hdr, SWAP_VERSION) == 1:
        last_page = le32_at(hdr, SWAP_LAST_PAGE)
        endian = "little"
    elif be32_at(hdr, SWAP_VERSION) == 1:
        last_page = be32_at(hdr, SWAP_LAST_PAGE)
        endian = "big"
    else:
        return None
    if last_page == 0:
        return None
    return Volume("swap", label=label8(hdr[SWAP_LABEL:SWAP_LABEL + SWAP_LABEL_LENGTH]),
                  uuid=uuid_or_none(hdr[SWAP_UUID:SWAP_UUID + 16]),
                  size=(last_page + 1) * page, version="1", usage=USAGE_OTHER,
                  details={"page_size": page, "endianness": endian})


cdef object swap_magic(const uint8_t* raw, Py_ssize_t size):
    """The swap signature ``raw`` (``size`` bytes) holds, or None."""
    if bytes_in(raw, size, 0, SWAP_MAGIC_V0):
        return SWAP_MAGIC_V0
    if bytes_in(raw, size, 0, SWAP_MAGIC_V1):
        return SWAP_MAGIC_V1
    return None


cdef object probe_swap(Probe p, int first, int stop):
    """Swap with the pages SWAP_PAGE_SIZES[first:stop], in that order."""
    cdef uint8_t buf[SWAP_MAGIC_LENGTH]
    cdef uint64_t page
    cdef int i
    for i in range(first, stop):
        page = SWAP_PAGES[i]
        magic = swap_magic(buf, p.fill(page - SWAP_MAGIC_LENGTH, buf, SWAP_MAGIC_LENGTH))
        if magic is not None:
            vol = swap_at(p, magic, page)
            if vol is not None:
                return vol
    return None


# -- XFS --------------------------------------------------------------------------

cdef object probe_xfs(Probe p):
    cdef bytes h = p.head
    cdef uint64_t blocksize, dblocks, agblocks, agcount, rextsize
    cdef int sectsize, inodesize, blocklog, sectlog, inodelog
    if len(h) < XFS_SB_BYTES or not bytes_at(h, 0, XFS_MAGIC):
        return None
    blocksize, dblocks = be32_at(h, XFS_BLOCKSIZE), be64_at(h, XFS_DBLOCKS)
    agblocks, agcount = be32_at(h, XFS_AGBLOCKS), be32_at(h, XFS_AGCOUNT)
    rextsize = be32_at(h, XFS_REXTSIZE)
    sectsize, inodesize = be16_at(h, XFS_SECTSIZE), be16_at(h, XFS_INODESIZE)
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
        label = label8(h[XFS_FNAME:XFS_FNAME + XFS_FNAME_LENGTH])
    return Volume("xfs", label=label, uuid=uuid_or_none(h[XFS_UUID:XFS_UUID + 16]),
                  size=<object>dblocks * blocksize,
                  details={"block_size": blocksize, "sector_size": sectsize,
                           "sb_version": be16_at(h, XFS_VERSIONNUM) & XFS_VERSION_MASK})


# -- ext2/3/4 ---------------------------------------------------------------------

cdef object probe_ext(Probe p):
    cdef bytes h = p.head
    if len(h) < EXT_SB + EXT_SB_BYTES:
        return None
    if le16_at(h, EXT_SB + EXT_MAGIC_OFFSET) != EXT_MAGIC:
        return None
    compat = le32_at(h, EXT_SB + EXT_FEATURE_COMPAT)
    incompat = le32_at(h, EXT_SB + EXT_FEATURE_INCOMPAT)
    ro_compat = le32_at(h, EXT_SB + EXT_FEATURE_RO_COMPAT)
    flags = le32_at(h, EXT_SB + EXT_FLAGS)
    details = {}
    if ro_compat & EXT_RO_COMPAT_METADATA_CSUM:
        # imported at the first superblock that carries a checksum: most disks hold none,
        # and `imgscan info` of them does not load the module (start-up, issue 18)
        from ..crc32c import crc32c
        sb = h[EXT_SB:EXT_SB + EXT_CHECKSUM]
        # ext4 stores the register without CRC-32C's final xor
        ok = (crc32c(sb) ^ 0xFFFFFFFF) == le32_at(h, EXT_SB + EXT_CHECKSUM)
        details["checksum"] = "ok" if ok else "bad"
    journal = bool(compat & EXT_COMPAT_HAS_JOURNAL)
    from ..c_ext4 import blkid_type  # once an ext superblock is found (start-up)
    fstype = blkid_type(compat, incompat, ro_compat, flags)
    usage = USAGE_OTHER if fstype == "jbd" else USAGE_FILESYSTEM
    if fstype == "ext3":
        details["sec_type"] = "ext2"
    log_block = le32_at(h, EXT_SB + EXT_LOG_BLOCK_SIZE)
    block_size = 1024 << log_block if log_block <= 6 else None
    blocks = le32_at(h, EXT_SB + EXT_BLOCKS_COUNT)
    if incompat & EXT_INCOMPAT_64BIT:
        blocks |= <uint64_t>le32_at(h, EXT_SB + EXT_BLOCKS_COUNT_HI) << 32
    state = le16_at(h, EXT_SB + EXT_STATE)
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
    return Volume(fstype, label=label8(h[EXT_SB + EXT_VOLUME_NAME:EXT_SB + EXT_VOLUME_NAME + 16]),
                  uuid=uuid_or_none(h[EXT_SB + EXT_UUID:EXT_SB + EXT_UUID + 16]),
                  size=blocks * block_size if block_size else None,
                  version=f"{le32_at(h, EXT_SB + EXT_REV)}.{le16_at(h, EXT_SB + EXT_MINOR_REV)}",
                  usage=usage,
                  details=details)


# -- Btrfs ------------------------------------------------------------------------

cdef object probe_btrfs(Probe p, const uint8_t* raw, Py_ssize_t size):
    """``raw``: the ``size`` bytes read at BTRFS_SB (probe_volume reads them with the 64
    KiB-page swap signature just before), made a bytes object only on a Btrfs volume."""
    if size < BTRFS_SB_SIZE or not bytes_in(raw, size, BTRFS_MAGIC_OFFSET, BTRFS_MAGIC):
        return None
    cdef bytes sb = PyBytes_FromStringAndSize(<const char*>raw, size)
    details = {"uuid_sub": uuid_or_none(sb[BTRFS_DEV_UUID:BTRFS_DEV_UUID + 16]),
               "sector_size": le32_at(sb, BTRFS_SECTORSIZE),
               "node_size": le32_at(sb, BTRFS_NODESIZE)}
    if le16_at(sb, BTRFS_CSUM_TYPE) == BTRFS_CSUM_CRC32C:
        from ..crc32c import crc32c     # at the first such superblock (as ext4's above)
        ok = crc32c(sb[BTRFS_CSUM_START:]) == le32_at(sb, 0)
        details["checksum"] = "ok" if ok else "bad"
    return Volume("btrfs", label=label8(sb[BTRFS_LABEL:BTRFS_LABEL + BTRFS_LABEL_LENGTH]),
                  uuid=uuid_or_none(sb[BTRFS_FSID:BTRFS_FSID + 16]),
                  size=le64_at(sb, BTRFS_TOTAL_BYTES) or None, details=details)

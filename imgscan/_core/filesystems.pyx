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
volume beyond the caps in :mod:`imgscan.limits`. Most volumes hold nothing a probe
knows (issue 18: a library's disks), so what every volume pays is kept in C: a
VirtualDisk's own ``read`` is read from C, and the far signatures (MD superblocks,
larger swap pages, the ISO 9660 identifier, the Btrfs superblock) are read into
buffers of the probes' own and compared there, a bytes object made only for a match.

The probes live in :mod:`imgscan._core.probes`, grouped by family (the DOS
boot sector formats, the Linux volumes, ISO 9660) over one shared
:class:`~imgscan._core.probes.volume.Probe`; this module is their one entry
point and owns their order.

Garbage never raises: a field that is out of range means "not this format",
and a structure that is partly readable gives what is known. Errors raised by
``read`` itself (a corrupt container) propagate: they are the container's.
"""

from libc.stdint cimport uint8_t, uint64_t

from .probes.dos cimport probe_bitlocker, probe_exfat, probe_ntfs, probe_refs, probe_vfat
from .probes.iso9660 cimport probe_iso9660
from .probes.linux cimport (
    MD0_SB_BYTES, MD1_SB_BYTES, MD_RESERVED, SWAP_MAGIC_LENGTH, probe_btrfs, probe_ext,
    probe_luks, probe_lvm2, probe_raid, probe_swap, probe_xfs, swap_at, swap_magic,
)
from .probes.volume cimport Probe

from .probes.linux import BTRFS_SB, BTRFS_SB_BYTES, SWAP_PAGE_SIZES, md0_offset, md10_offset
from .probes.iso9660 import ISO_ID_END, ISO_PVD
from .probes.volume import HEAD_BYTES, Volume

__all__ = ["HEAD_BYTES", "Volume", "probe_regions", "probe_volume"]

# The page sizes and read windows probe_volume uses on every volume, as C constants made
# once (slicing a tuple and adding Python ints on each call cost more than some probes).
cdef uint64_t PAGE_32K = SWAP_PAGE_SIZES[3]
cdef uint64_t PAGE_64K = SWAP_PAGE_SIZES[4]
cdef uint64_t MIDDLE_AT = ISO_PVD - SWAP_MAGIC_LENGTH
cdef Py_ssize_t MIDDLE_BYTES = SWAP_MAGIC_LENGTH + ISO_ID_END
cdef uint64_t TAIL_AT = BTRFS_SB - SWAP_MAGIC_LENGTH
cdef Py_ssize_t TAIL_BYTES = SWAP_MAGIC_LENGTH + BTRFS_SB_BYTES

cdef enum:
    # Room for those two reads in probe_volume's own buffers (on its stack: no bytes
    # object for signatures that are only compared); checked against them below.
    MIDDLE_ROOM = 16
    TAIL_ROOM = 4106

if MIDDLE_BYTES > MIDDLE_ROOM or TAIL_BYTES > TAIL_ROOM:
    raise ImportError("probe_volume's buffers are smaller than its reads")


def probe_regions(offset, size):
    """The guest ranges ``(offset, length)`` that :func:`probe_volume` of the volume at
    ``[offset, offset + size)`` reads first, whatever it holds, as ``(heads,
    superblocks)``: its first HEAD_BYTES, whose neighbourhood the filesystem's next
    reads usually fall in (an MFT, a superblock's tables), and the MD 0.90 and 1.0
    superblocks near its end, read alone. Announced for every partition at once
    (``Source.prefetch``, the heads as ``near``), so that a remote image fetches them
    in one round trip, not one per partition."""
    if size <= 0 or offset < 0:
        return [], []
    superblocks = []
    if size > MD_RESERVED:
        superblocks.append((offset + md0_offset(size), MD0_SB_BYTES))
    if size >= 16 * 512:
        superblocks.append((offset + md10_offset(size), MD1_SB_BYTES))
    return [(offset, min(HEAD_BYTES, size))], superblocks


def probe_volume(read, offset, size, head=None):
    """Identify what the volume at guest bytes [offset, offset + size) holds.

    ``read(off, length)`` returns guest bytes of the whole disk (short at its
    end). ``head``: the volume's first bytes (at least HEAD_BYTES, or all of a
    smaller volume) when the caller read them already. Returns a :class:`Volume`,
    or None when nothing known is there.
    """
    cdef Probe p
    cdef uint8_t middle[MIDDLE_ROOM]
    cdef uint8_t tail[TAIL_ROOM]
    cdef Py_ssize_t middle_n, tail_n
    if size <= 0 or offset < 0:
        return None
    p = Probe(read, offset, size, head)
    vol = probe_raid(p)
    if vol is None:
        vol = probe_lvm2(p)
    if vol is None:
        vol = probe_luks(p)
    if vol is None:
        vol = probe_bitlocker(p)
    if vol is None:
        vol = probe_vfat(p)
    if vol is None:
        vol = probe_swap(p, 0, 2)  # 4 and 8 KiB pages
    if vol is None:
        vol = probe_xfs(p)
    if vol is None:
        vol = probe_ext(p)
    if vol is not None:
        return vol
    # One read of a few bytes covers the 32 KiB-page swap signature and the ISO 9660
    # standard identifier just after it: the descriptors (8 KiB) are read only on an
    # ISO 9660 volume, and the swap signature is not read again at the end. This holds
    # because the primary volume descriptor (sector 16 of 2048 bytes) starts where a
    # 32 KiB page ends, the swap magic's last bytes (SWAP_PAGE_SIZES[3] == ISO_PVD;
    # tests/_core/test_filesystems.py checks it).
    middle_n = p.fill(MIDDLE_AT, middle, MIDDLE_BYTES)
    vol = probe_iso9660(p, middle + SWAP_MAGIC_LENGTH, max(middle_n - SWAP_MAGIC_LENGTH, 0))
    if vol is None:
        vol = probe_ntfs(p)
    if vol is None:
        vol = probe_refs(p)
    if vol is None:
        # One read covers the Btrfs superblock and the 64 KiB-page swap signature before it.
        tail_n = p.fill(TAIL_AT, tail, TAIL_BYTES)
        vol = probe_btrfs(p, tail + SWAP_MAGIC_LENGTH, max(tail_n - SWAP_MAGIC_LENGTH, 0))
        if vol is None:
            vol = probe_exfat(p)
        if vol is None:
            magic = swap_magic(tail, tail_n)
            if magic is not None:
                vol = swap_at(p, magic, PAGE_64K)
        if vol is None:
            vol = probe_swap(p, 2, 3)  # 16 KiB pages
        if vol is None:
            magic = swap_magic(middle, middle_n)
            if magic is not None:
                vol = swap_at(p, magic, PAGE_32K)
    return vol

"""Linux MD RAID member superblocks written into a plain file, for the image-based MD cases.

Spec: the kernel's ``include/uapi/linux/raid/md_p.h`` (``mdp_super_t`` for 0.90,
``struct mdp_superblock_1`` for 1.x) and ``drivers/md/md.c`` (where each version lives on the
device, and the checksums ``calc_sb_csum`` / ``calc_sb_1_csum``).

Why hand-made: ``mdadm --create`` and ``--build`` need the kernel's md driver and a block
device (on a plain file mdadm says "not a block device", and CI's kernel has no md driver),
so no tool writes an MD superblock into a file there. What is written here is then judged
by the tools that do read files: ``mdadm --examine FILE`` (which verifies the checksum and
prints every field) and ``blkid -p FILE``; the tests compare imgscan with those, never with
the values written.

The member describes a two-device RAID1 of which it is device 0 (the other missing), as
``mdadm --create --level=1 --raid-devices=2 DEV missing`` would.
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

MD_SB_MAGIC = 0xA92B4EFC
#: 0.90: the superblock is the last 64 KiB-aligned 64 KiB of the device (MD_RESERVED_BYTES).
MD_RESERVED_BYTES = 64 * 1024
MD_SB_BYTES = 4096
MD_SB_GENERIC_CONSTANT_WORDS, MD_SB_GENERIC_STATE_WORDS = 32, 32
MD_SB_PERSONALITY_WORDS, MD_SB_DESCRIPTOR_WORDS = 64, 32
MD_SB_DISKS_WORDS = 27 * MD_SB_DESCRIPTOR_WORDS
#: Word offsets of the 0.90 sections (md_p.h's MD_SB_*_OFFSET).
MD_SB_GENERIC_STATE_OFFSET = MD_SB_GENERIC_CONSTANT_WORDS
MD_SB_PERSONALITY_OFFSET = MD_SB_GENERIC_STATE_OFFSET + MD_SB_GENERIC_STATE_WORDS
MD_SB_DISKS_OFFSET = MD_SB_PERSONALITY_OFFSET + MD_SB_PERSONALITY_WORDS
MD_SB_DESCRIPTOR_OFFSET = MD_SB_DISKS_OFFSET + MD_SB_DISKS_WORDS
#: mdp_disk_t.state bits.
MD_DISK_FAULTY, MD_DISK_ACTIVE, MD_DISK_SYNC, MD_DISK_REMOVED = 0, 1, 2, 3
#: mdp_super_t.state bit: the array was stopped cleanly.
MD_SB_CLEAN = 0
#: 1.x: dev_roles[] values besides a slot number.
MD_DISK_ROLE_SPARE = 0xFFFF
MD1_MAX_DEV = 128
SECTOR = 512
#: The data of a 1.1 / 1.2 member starts 1 MiB in (mdadm's default), of a 1.0 member at 0.
MD1_DATA_OFFSET_SECTORS = 2048
CTIME = 1_700_000_000


def sb0_offset(size: int) -> int:
    """md.c's MD_NEW_SIZE_SECTORS: the 0.90 superblock's byte offset on a device of size."""
    return (size & ~(MD_RESERVED_BYTES - 1)) - MD_RESERVED_BYTES


def sb1_offset(size: int, minor: int) -> int:
    """md.c's super_1_load: 1.0 at the end (8 KiB back, 4 KiB aligned), 1.1 at 0, 1.2 at 4 KiB."""
    if minor == 0:
        return (((size // SECTOR) - 8 * 2) & ~(4 * 2 - 1)) * SECTOR
    return {1: 0, 2: 4096}[minor]


def fold_csum(total: int) -> int:
    """The checksums' 64-bit sum folded to 32 bits."""
    return ((total & 0xFFFFFFFF) + (total >> 32)) & 0xFFFFFFFF


def superblock_0_90(size: int, array_uuid: uuid.UUID) -> bytes:
    words = [0] * (MD_SB_BYTES // 4)
    u = array_uuid.bytes
    uuid0, uuid1, uuid2, uuid3 = struct.unpack("<4I", u)
    member_kib = sb0_offset(size) // 1024
    words[0:16] = [MD_SB_MAGIC, 0, 90, 0, 0, uuid0, CTIME, 1, member_kib, 2, 2, 0, 0,
                   uuid1, uuid2, uuid3]
    state = MD_SB_GENERIC_STATE_OFFSET
    # utime, state, active, working, failed, spare disks, sb_csum, events_lo, events_hi
    words[state:state + 9] = [CTIME, 1 << MD_SB_CLEAN, 1, 1, 1, 0, 0, 1, 0]
    words[MD_SB_PERSONALITY_OFFSET] = 0           # layout
    active = (1 << MD_DISK_ACTIVE) | (1 << MD_DISK_SYNC)
    missing = (1 << MD_DISK_FAULTY) | (1 << MD_DISK_REMOVED)
    for i, (number, raid_disk, disk_state) in enumerate([(0, 0, active), (1, 1, missing)]):
        base = MD_SB_DISKS_OFFSET + i * MD_SB_DESCRIPTOR_WORDS
        words[base:base + 5] = [number, 0, 0, raid_disk, disk_state]
    this = MD_SB_DESCRIPTOR_OFFSET
    words[this:this + 5] = [0, 0, 0, 0, active]
    words[state + 6] = fold_csum(sum(words))
    return struct.pack(f"<{len(words)}I", *words)


def superblock_1(size: int, minor: int, array_uuid: uuid.UUID, device_uuid: uuid.UUID,
                 name: str) -> bytes:
    offset = sb1_offset(size, minor) // SECTOR
    data_offset = 0 if minor == 0 else MD1_DATA_OFFSET_SECTORS
    data_size = (offset if minor == 0 else size // SECTOR - data_offset) & ~7
    head = struct.pack(
        "<IIII16s32sQIIQIIIIQIIIIQQQQII16sBBHIQQQII32x",
        MD_SB_MAGIC, 1, 0, 0, array_uuid.bytes, name.encode(), CTIME, 1, 0,
        data_size, 0, 2, 0, 0, 0, 0, 0, 0, 0,    # size .. new_offset
        data_offset, data_size, offset, 0,       # data_offset, data_size, super_offset, recovery
        0, 0, device_uuid.bytes, 0, 0, 0, 0,     # dev_number .. bblog_offset
        CTIME, 1, 2**64 - 1, 0, MD1_MAX_DEV)     # utime, events, resync_offset, csum, max_dev
    roles = struct.pack(f"<{MD1_MAX_DEV}H", 0, *[MD_DISK_ROLE_SPARE] * (MD1_MAX_DEV - 1))
    sb = head + roles
    total = sum(struct.unpack(f"<{len(sb) // 4}I", sb))   # sb_csum is 0 while summing
    return sb[:216] + struct.pack("<I", fold_csum(total)) + sb[220:]


def write_member(path: Path, size: int, metadata: str, array_uuid: uuid.UUID,
                 device_uuid: uuid.UUID, name: str) -> Path:
    """A sparse file of ``size`` bytes holding one member superblock of ``metadata``
    ("0.90", "1.0", "1.1" or "1.2"); 0.90 has no name and no device UUID."""
    if metadata == "0.90":
        offset, sb = sb0_offset(size), superblock_0_90(size, array_uuid)
    else:
        minor = int(metadata.split(".")[1])
        offset, sb = sb1_offset(size, minor), superblock_1(size, minor, array_uuid,
                                                           device_uuid, name)
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(offset)
        f.write(sb)
    return path

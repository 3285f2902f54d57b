"""Byte patchers for hand-edited copies of tool-made images, by format.

A test that corrupts one field of a VHD, VHDX, GPT or NTFS structure on purpose
reseals what protects it (checksum, CRC, update sequence), so that only the
corruption under test remains.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from helpers.regf_logs import xor_checksum

#: VHD (Hard Disk Footer / Dynamic Disk Header): checksum fields, header size.
VHD_FOOTER_CHECKSUM, VHD_HEADER_CHECKSUM, VHD_HEADER_SIZE = 64, 36, 1024


def vhd_checksum(buf: bytes | bytearray, cksum_off: int) -> int:
    """The VHD spec's checksum: the one's complement of the byte sum, the field excluded."""
    total = sum(buf) - sum(buf[cksum_off:cksum_off + 4])
    return ~total & 0xFFFFFFFF


def vhd_refresh_footer_checksums(buf: bytearray) -> None:
    """Recompute the checksums of both VHD footer copies (offset 0 and the last sector)."""
    for base in (0, len(buf) - 512):
        if buf[base:base + 8] == b"conectix":
            struct.pack_into(">I", buf, base + VHD_FOOTER_CHECKSUM,
                             vhd_checksum(buf[base:base + 512], VHD_FOOTER_CHECKSUM))


def vhd_refresh_header_checksum(buf: bytearray, hdr: int) -> None:
    """Recompute the checksum of the dynamic disk header at ``hdr``."""
    struct.pack_into(">I", buf, hdr + VHD_HEADER_CHECKSUM,
                     vhd_checksum(buf[hdr:hdr + VHD_HEADER_SIZE], VHD_HEADER_CHECKSUM))


def vhd_set_footers(buf: bytearray, off: int, fmt: str, value: int) -> None:
    """Set one field in both VHD footer copies, then their checksums."""
    for base in (0, len(buf) - 512):
        struct.pack_into(fmt, buf, base + off, value)
    vhd_refresh_footer_checksums(buf)


#: VHD footer fields (spec: Hard Disk Footer Format): creator application, geometry.
VHD_CREATOR_APPLICATION, VHD_DISK_GEOMETRY = 28, 56
#: VHD spec (Appendix: CHS calculation): the largest geometry, 65535 x 16 x 255.
VHD_CHS_MAX_SECTORS = 65535 * 16 * 255


def vhd_spec_geometry(total_sectors: int) -> tuple[int, int, int]:
    """(cylinders, heads, sectors per track) of a disk as the VHD spec's CHS
    calculation gives them: rounded down, so a size off the geometry's grid is not
    covered (Hyper-V writes this geometry with the exact current size)."""
    total_sectors = min(total_sectors, VHD_CHS_MAX_SECTORS)
    if total_sectors >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cyl_heads = total_sectors // spt
    else:
        spt = 17
        cyl_heads = total_sectors // spt
        heads = max((cyl_heads + 1023) // 1024, 4)
        if cyl_heads >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cyl_heads = total_sectors // spt
        if cyl_heads >= heads * 1024:
            spt, heads = 63, 16
            cyl_heads = total_sectors // spt
    return cyl_heads // heads, heads, spt


def vhd_as_hyperv(buf: bytearray) -> None:
    """A qemu ``force_size=on`` VHD (creator ``qem2``, the 65535/16/255 geometry,
    the exact current size) given the footer Hyper-V writes for that size: creator
    ``win `` and the spec's geometry, which falls short of the current size."""
    current = struct.unpack_from(">Q", buf, len(buf) - 512 + 48)[0]
    cyl, heads, spt = vhd_spec_geometry(current // 512)
    vhd_set_footers(buf, VHD_CREATOR_APPLICATION, ">I", int.from_bytes(b"win ", "big"))
    vhd_set_footers(buf, VHD_DISK_GEOMETRY, ">I", cyl << 16 | heads << 8 | spt)


#: MBR (sector 0): the partition entries and their fields (UEFI 2.10 table 5-2).
MBR_ENTRIES, MBR_ENTRY_SIZE = 446, 16
MBR_ENTRY_FIELDS = {"boot_indicator": (0, "<B"), "os_type": (4, "<B"),
                    "starting_lba": (8, "<I"), "size_in_lba": (12, "<I")}


def mbr_set_entry(path: Path, index: int, **fields: int) -> None:
    """Set fields of partition entry ``index`` (0-3) of the MBR in sector 0 of a raw
    disk (the MBR has no checksum to reseal)."""
    with open(path, "r+b") as f:
        for name, value in fields.items():
            rel, fmt = MBR_ENTRY_FIELDS[name]
            f.seek(MBR_ENTRIES + index * MBR_ENTRY_SIZE + rel)
            f.write(struct.pack(fmt, value))


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C (Castagnoli, RFC 3720), bit by bit: independent of imgscan's table code."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def vhdx_reseal(buf: bytearray, start: int, size: int) -> None:
    """Recompute a VHDX structure's CRC-32C at ``start + 4`` over ``size`` bytes (the
    field as zeros), as the spec defines it for headers, region tables and log entries."""
    struct.pack_into("<I", buf, start + 4, 0)
    struct.pack_into("<I", buf, start + 4, crc32c_bitwise(bytes(buf[start:start + size])))


def patch_gpt(path: Path, header_offset: int,
              header: Callable[[bytearray], None] | None = None,
              entries: Callable[[bytearray], None] | None = None,
              fix_crc: bool = True) -> None:
    """Edit one GPT copy of a real disk (512-byte sectors), then recompute its CRCs
    (unless told not to)."""
    with open(path, "r+b") as f:
        f.seek(header_offset)
        h = bytearray(f.read(512))
        lba, count, esize = struct.unpack_from("<QII", h, 72)
        f.seek(lba * 512)
        array = bytearray(f.read(count * esize))
        if entries is not None:
            entries(array)
            f.seek(lba * 512)
            f.write(array)
            if fix_crc:
                struct.pack_into("<I", h, 88, zlib.crc32(array))
        if header is not None:
            header(h)
        if fix_crc:
            struct.pack_into("<I", h, 16, 0)
            struct.pack_into("<I", h, 16, zlib.crc32(h[:92]))
        f.seek(header_offset)
        f.write(h)


def ntfs_poke(buf: bytearray, record: int, rel: int, value: bytes) -> None:
    """Write ``value`` at ``rel`` into an update-sequence protected NTFS record, putting
    the bytes that fall on a stride's check value into the array instead."""
    usa = struct.unpack_from("<H", buf, record + 4)[0]
    for i, byte in enumerate(value):
        at = rel + i
        if at % 512 >= 510:
            buf[record + usa + 2 * (at // 512 + 1) + at % 512 - 510] = byte
        else:
            buf[record + at] = byte


def lvm_calc_crc(data: bytes) -> int:
    """lvm2's ``calc_crc`` (lib/misc/crc.c): CRC-32 seeded 0xf597a6cf, no final xor;
    reseals a PV's mda_header or metadata text after an edit."""
    return zlib.crc32(data, 0xF597A6CF ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


#: VMDK hosted sparse extent header (VMDK spec 5.0, SparseExtentHeader): descriptorOffset
#: and descriptorSize, u64 little-endian, in sectors.
VMDK_DESCRIPTOR_OFFSET, VMDK_DESCRIPTOR_SIZE = 28, 36


def vmdk_move_descriptor(path: Path, sectors: int = 1) -> None:
    """Move a monolithicSparse VMDK's embedded descriptor ``sectors`` further into the
    space qemu-img reserved for it (its text is far shorter than the reserve), zero where
    it was, and set descriptorOffset / descriptorSize to say so: still a valid extent
    by the spec, but the descriptor is no longer at sector 1."""
    buf = bytearray(path.read_bytes())
    offset, size = struct.unpack_from("<QQ", buf, VMDK_DESCRIPTOR_OFFSET)
    text = bytes(buf[offset * 512:(offset + size) * 512])
    kept = size - sectors
    assert not text[kept * 512:].strip(b"\0"), "the descriptor text fills its reserve"
    buf[offset * 512:(offset + size) * 512] = bytes(sectors * 512) + text[:kept * 512]
    struct.pack_into("<QQ", buf, VMDK_DESCRIPTOR_OFFSET, offset + sectors, kept)
    path.write_bytes(bytes(buf))


#: regf base block (Suhanov, "Windows registry file format"): minor version, checksum.
REGF_MINOR_VERSION, REGF_CHECKSUM = 24, 508


def regf_set_minor_version(path: Path, minor: int) -> None:
    """Set a hive's minor version and reseal its base block checksum (XOR of the first
    508 bytes, helpers.regf_logs.xor_checksum)."""
    buf = bytearray(path.read_bytes())
    struct.pack_into("<I", buf, REGF_MINOR_VERSION, minor)
    struct.pack_into("<I", buf, REGF_CHECKSUM, xor_checksum(buf[:512]))
    path.write_bytes(bytes(buf))

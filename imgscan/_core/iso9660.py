"""ISO 9660 CD/DVD images, their El Torito boot catalog and hybrid MBR/GPT.

Specs: ECMA-119 (4th edition, 2019; = ISO 9660) for the volume descriptors,
and "El Torito Bootable CD-ROM Format Specification Version 1.0" (Phoenix /
IBM, 1995) for the boot record and boot catalog; the UEFI specification
(section 13.3.2.1) adds platform id 0xEF for EFI boot images.

An ISO file is a raw CD: the guest (a virtual CD drive) sees the file's bytes,
so the container is raw and only its facts are decoded here. The *system
area* (sectors 0-15, 32 KiB) is free for other uses; from sector 16 on, one
2048-byte *volume descriptor* per sector, each ``type`` + ``CD001`` +
``version``, up to a *set terminator* (type 255):

* type 1, the primary volume descriptor (PVD): system and volume identifiers,
  the volume space size in logical blocks and the logical block size (both
  stored twice, little- then big-endian), dates;
* type 0, a boot record; El Torito's says ``EL TORITO SPECIFICATION`` and
  points to the *boot catalog*: 32-byte entries, a validation entry (header
  id 1, platform id, a checksum making the sum of its sixteen 16-bit words
  zero, key bytes 0x55 0xAA), the initial/default entry, then section headers
  (0x90, the last 0x91) each naming a platform and followed by its entries;
* type 2, a supplementary volume descriptor; Joliet's carries a UCS-2 escape
  sequence (``%/@``, ``%/C``, ``%/E``: levels 1-3).

``virtual_size`` is the file size, rounded up to a whole 512-byte sector as
qemu does for raw, and the extent map is the file's (raw's host-hole rule);
the volume size the PVD claims is a detail, and a file shorter than it is a
``size-mismatch``. Boot entries go to ``details["el_torito"]``: one dict per
entry, ``platform`` ``bios`` (platform id 0, x86), ``uefi`` (0xEF), ``powerpc``
or ``mac``; a validation entry without its header id or key bytes makes firmware
ignore the catalog, so
it yields no entries and a ``corrupt`` finding; a bad checksum alone (which
UEFI firmware rejects and SeaBIOS does not check) keeps the entries, sets
``boot_catalog_checksum_ok`` false and is ``corrupt`` too.

An MBR (0x55AA with plausible partition entries) or a GPT header (``EFI
PART`` at 512) in the system area makes a hybrid ISO (isohybrid, xorriso
``-isohybrid-mbr``, ``-isohybrid-gpt-basdat``): reported as
``details["hybrid"]`` (``mbr``, ``gpt``, ``mbr+gpt``), never as a conflict of
formats. A file cut short before the first descriptor carries no ISO
signature at all and is read as raw.
"""

from __future__ import annotations

import struct
from typing import Any

from imgscan import limits
from imgscan.errors import CorruptImage
from imgscan.findings import CORRUPT, RESOURCE_EXHAUSTION, SIZE_MISMATCH, TRUNCATED

from . import c_gpt, c_mbr
from .c_iso9660 import (
    BOOT_ENTRY,
    BOOT_RECORD,
    BOOTABLE,
    CATALOG_ENTRY_SIZE,
    EL_TORITO_ID,
    EXTENSION_ENTRY_ID,
    EXTENSION_MORE_FOLLOWS,
    FLOPPY_SIZES,
    ISO_FIRST_VD_SECTOR,
    ISO_SECTOR_SIZE,
    ISO_STANDARD_ID,
    JOLIET_ESCAPES,
    MEDIA_EXTENSION_FOLLOWS,
    MEDIA_TYPE_MASK,
    MEDIA_TYPE_NAMES,
    NOT_BOOTABLE,
    PLATFORM_NAMES,
    SECTION_ENTRY_EXTENSION,
    SECTION_HEADER,
    SECTION_HEADER_FINAL,
    SECTION_HEADER_MORE,
    VALIDATION_ENTRY,
    VALIDATION_HEADER_ID,
    VALIDATION_KEY,
    VD_TYPE_BOOT_RECORD,
    VD_TYPE_NAMES,
    VD_TYPE_PRIMARY,
    VD_TYPE_SUPPLEMENTARY,
    VD_TYPE_TERMINATOR,
    VIRTUAL_SECTOR_SIZE,
    VOLUME_DESCRIPTOR,
    VOLUME_DESCRIPTOR_HEADER,
)
from .container import Format
from .raw import RawImage
from .source import Source


def _text(raw: bytes) -> str:
    """An a-/d-character field: ASCII padded with spaces (or NULs), trailing pad dropped."""
    return raw.decode("ascii", errors="backslashreplace").rstrip(" \x00")


def _ucs2(raw: bytes) -> str:
    """A Joliet (UCS-2, big-endian) field, trailing pad dropped."""
    return raw.decode("utf-16-be", errors="backslashreplace").rstrip(" \x00")


def _both_endian(vd: dict[str, Any], field: str) -> tuple[int, int]:
    """The little- and big-endian copies of a both-byte-order field (ECMA-119 7.2.3, 7.3.3)."""
    return vd[field], int.from_bytes(vd[f"{field}_msb"], "big")


def _dec_datetime(raw: bytes) -> str | None:
    """A dec-datetime as ISO 8601 text; None when unset (all digits zero)."""
    digits = raw[:16]
    if not digits.isdigit() or int(digits) == 0:
        return None
    d = digits.decode("ascii")
    # signed offset from GMT in 15-minute steps
    tz = int.from_bytes(raw[16:17], "big", signed=True) * 15
    sign = "+" if tz >= 0 else "-"
    return (f"{d[0:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}.{d[14:16]}"
            f"{sign}{abs(tz) // 60:02d}:{abs(tz) % 60:02d}")


def _validation_sum(entry: bytes) -> int:
    """Sum of the validation entry's sixteen little-endian 16-bit words, modulo 2**16."""
    words: tuple[int, ...] = struct.unpack(f"<{CATALOG_ENTRY_SIZE // 2}H", entry)
    return sum(words) & 0xFFFF


# --------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------

class IsoImage(RawImage):
    """An ISO 9660 image: a raw CD whose volume descriptors and boot catalog are decoded."""

    format = "iso"
    hybrid_signatures = ("mbr", "gpt")

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        d = self.details
        d["volume_descriptors"] = []
        d["joliet"] = None
        d["el_torito"] = None
        d["hybrid"] = self._hybrid()
        pvd, boot = self._walk_descriptors()
        if pvd is None:
            raise CorruptImage(source.path, "ISO 9660 volume descriptor set",
                               ISO_FIRST_VD_SECTOR * ISO_SECTOR_SIZE,
                               "no primary volume descriptor")
        self._read_primary(*pvd)
        if boot is not None:
            self._read_boot_catalog(*boot)

    # -- volume descriptors ---------------------------------------------------
    def _walk_descriptors(self) -> tuple[tuple[bytes, int] | None, tuple[int, int] | None]:
        """Walk from sector 16 to the terminator; the first PVD and El Torito record."""
        src = self.source
        d = self.details
        pvd: tuple[bytes, int] | None = None
        boot: tuple[int, int] | None = None
        cap = limits.ISO_MAX_VOLUME_DESCRIPTORS
        for i in range(cap):
            sector = ISO_FIRST_VD_SECTOR + i
            off = sector * ISO_SECTOR_SIZE
            if not src.contains(off, ISO_SECTOR_SIZE):
                if i == 0:
                    src.read(off, ISO_SECTOR_SIZE, "ISO 9660 volume descriptor")  # raises
                self.add_finding(
                    TRUNCATED, "error",
                    f"the ISO 9660 volume descriptor set runs into the end of the file "
                    f"({src.size}) at sector {sector} without a set terminator",
                )
                break
            vd = src.read(off, ISO_SECTOR_SIZE, "ISO 9660 volume descriptor")
            head = VOLUME_DESCRIPTOR_HEADER.unpack(vd)
            if head["standard_identifier"] != ISO_STANDARD_ID:
                self.add_finding(
                    CORRUPT, "warning",
                    f"sector {sector} (offset {off}) holds no volume descriptor: the ISO 9660 "
                    "volume descriptor set ends without a set terminator",
                )
                break
            vtype = head["volume_descriptor_type"]
            d["volume_descriptors"].append(
                {"sector": sector, "type": vtype, "name": VD_TYPE_NAMES.get(vtype, "unknown"),
                 "version": head["volume_descriptor_version"]})
            if vtype == VD_TYPE_TERMINATOR:
                break
            if vtype == VD_TYPE_PRIMARY and pvd is None:
                pvd = (vd, off)
            elif vtype == VD_TYPE_BOOT_RECORD:
                record = BOOT_RECORD.unpack(vd)
                system_id = _text(record["boot_system_identifier"])
                d["volume_descriptors"][-1]["boot_system_id"] = system_id
                if system_id == EL_TORITO_ID.decode() and boot is None:
                    boot = (record["boot_catalog_pointer"], off)
            elif vtype == VD_TYPE_SUPPLEMENTARY:
                svd = VOLUME_DESCRIPTOR.unpack(vd)
                for seq, level in JOLIET_ESCAPES.items():
                    if svd["escape_sequences"].startswith(seq) and d["joliet"] is None:
                        d["joliet"] = {"level": level, "sector": sector,
                                       "volume_id": _ucs2(svd["volume_identifier"])}
        else:
            self.add_finding(
                RESOURCE_EXHAUSTION, "warning",
                f"no ISO 9660 set terminator within {cap} volume descriptors "
                f"(limits.ISO_MAX_VOLUME_DESCRIPTORS); the walk stopped there",
            )
        return pvd, boot

    def _read_primary(self, raw: bytes, off: int) -> None:
        d = self.details
        vd = VOLUME_DESCRIPTOR.unpack(raw)
        for key, field in (("system_id", "system_identifier"),
                           ("volume_id", "volume_identifier"),
                           ("volume_set_id", "volume_set_identifier"),
                           ("publisher_id", "publisher_identifier"),
                           ("data_preparer_id", "data_preparer_identifier"),
                           ("application_id", "application_identifier")):
            d[key] = _text(vd[field])
        blocks_le, blocks_be = _both_endian(vd, "volume_space_size")
        bsize_le, bsize_be = _both_endian(vd, "logical_block_size")
        for name, le, be, field in (("volume space size", blocks_le, blocks_be,
                                     "volume_space_size"),
                                    ("logical block size", bsize_le, bsize_be,
                                     "logical_block_size")):
            if le != be:
                where = off + VOLUME_DESCRIPTOR.offset(field)
                self.add_finding(
                    CORRUPT, "warning",
                    f"ISO 9660 primary volume descriptor {name} (offset {where}): "
                    f"{le} little-endian, {be} big-endian; the little-endian value is used "
                    "(as Linux does)",
                )
        d["volume_space_size"] = blocks_le
        d["logical_block_size"] = bsize_le
        # ECMA-119 6.1.2: 2**(n+9) bytes, no larger than the 2048-byte sector.
        if bsize_le not in (512, 1024, 2048):
            self.add_finding(
                CORRUPT, "warning",
                f"ISO 9660 logical block size {bsize_le} (offset "
                f"{off + VOLUME_DESCRIPTOR.offset('logical_block_size')}) is not 512, 1024 or 2048",
            )
        d["volume_size"] = volume = blocks_le * bsize_le
        d["creation_date"] = _dec_datetime(vd["volume_creation_date"])
        d["modification_date"] = _dec_datetime(vd["volume_modification_date"])
        size = self.source.size
        if volume > size:
            self.add_finding(
                SIZE_MISMATCH, "warning",
                f"the ISO 9660 volume is {volume} bytes ({blocks_le} blocks of {bsize_le}) "
                f"but the file holds {size}: the image is truncated",
            )

    # -- El Torito ------------------------------------------------------------
    def _read_boot_catalog(self, sector: int, record_off: int) -> None:
        src = self.source
        d = self.details
        d["boot_catalog_sector"] = sector
        entries: list[dict[str, Any]] = []
        d["el_torito"] = entries
        off = sector * ISO_SECTOR_SIZE
        if not src.contains(off, 2 * CATALOG_ENTRY_SIZE):
            pointer_at = record_off + BOOT_RECORD.offset("boot_catalog_pointer")
            self.add_finding(
                TRUNCATED, "error",
                f"the El Torito boot catalog pointer (offset {pointer_at}) names sector "
                f"{sector} (offset {off}), "
                f"past the end of the file ({src.size}): no boot entries",
            )
            return
        cap = limits.ISO_MAX_BOOT_CATALOG_ENTRIES
        cat = src.read(off, min(cap * CATALOG_ENTRY_SIZE, src.size - off),
                       "El Torito boot catalog")
        ve = VALIDATION_ENTRY.unpack(cat)
        problems = []
        if ve["header_id"] != VALIDATION_HEADER_ID:
            problems.append(f"header id 0x{ve['header_id']:02x} is not 0x01")
        if ve["key"] != VALIDATION_KEY:
            problems.append(f"key bytes {ve['key'].hex()} are not 55aa")
        if problems:
            self.add_finding(
                CORRUPT, "error",
                f"El Torito validation entry at offset {off}: {'; '.join(problems)}; "
                "firmware ignores the boot catalog, so no boot entries are reported",
            )
            return
        d["boot_catalog_checksum_ok"] = _validation_sum(cat[:CATALOG_ENTRY_SIZE]) == 0
        if not d["boot_catalog_checksum_ok"]:
            # EDK2 (OVMF) verifies the sum and skips the catalog; SeaBIOS and
            # xorriso check only the header id and key bytes.
            self.add_finding(
                CORRUPT, "error",
                f"El Torito validation entry at offset {off}: checksum "
                f"0x{ve['checksum']:04x} does not make its words sum to zero; UEFI "
                "firmware ignores the boot catalog, BIOS firmware may not (the entries are "
                "reported)",
            )
        d["boot_catalog_id"] = _text(ve["id_string"])
        platform = ve["platform_id"]
        self._boot_entry(cat, CATALOG_ENTRY_SIZE, off, platform, 0)
        pos = 2 * CATALOG_ENTRY_SIZE
        section = 0
        while pos + CATALOG_ENTRY_SIZE <= len(cat):
            header = SECTION_HEADER.unpack(cat, pos)
            indicator = header["header_indicator"]
            if indicator not in (SECTION_HEADER_MORE, SECTION_HEADER_FINAL):
                break          # end of the catalog
            section += 1
            platform = header["platform_id"]
            count = header["section_entry_count"]
            pos += CATALOG_ENTRY_SIZE
            cut = False     # the section's entries run past what was read
            for _ in range(count):
                if pos + CATALOG_ENTRY_SIZE > len(cat):
                    cut = True
                    break
                media = BOOT_ENTRY.field(cat, "boot_media_type", pos)
                self._boot_entry(cat, pos, off, platform, section)
                pos += CATALOG_ENTRY_SIZE
                # skip the entry's extensions (section 2.5: id 0x44, a "more" bit)
                more = media & MEDIA_EXTENSION_FOLLOWS
                while more and pos + CATALOG_ENTRY_SIZE <= len(cat):
                    extension = SECTION_ENTRY_EXTENSION.unpack(cat, pos)
                    if extension["extension_indicator"] != EXTENSION_ENTRY_ID:
                        break
                    more = extension["flags"] & EXTENSION_MORE_FOLLOWS
                    pos += CATALOG_ENTRY_SIZE
            if indicator == SECTION_HEADER_FINAL and not cut:
                break
        else:
            if pos + CATALOG_ENTRY_SIZE > len(cat):
                full = len(cat) == cap * CATALOG_ENTRY_SIZE
                self.add_finding(
                    RESOURCE_EXHAUSTION if full else TRUNCATED, "warning",
                    f"the El Torito boot catalog at offset {off} does not end (final section "
                    "header and its entries) "
                    + (f"within {cap} entries (limits.ISO_MAX_BOOT_CATALOG_ENTRIES)" if full
                       else f"before the end of the file ({src.size})")
                    + "; the entries up to there are reported",
                )

    def _boot_entry(self, cat: bytes, pos: int, cat_off: int, platform: int,
                    section: int) -> None:
        """Append the boot entry at ``cat[pos]`` to ``details["el_torito"]``."""
        src = self.source
        e = BOOT_ENTRY.unpack(cat, pos)
        indicator, media, count, rba = (e["boot_indicator"], e["boot_media_type"],
                                        e["sector_count"], e["load_rba"])
        media_type = media & MEDIA_TYPE_MASK
        where = cat_off + pos
        if indicator not in (BOOTABLE, NOT_BOOTABLE):
            self.add_finding(
                CORRUPT, "warning",
                f"El Torito boot entry at offset {where}: boot indicator 0x{indicator:02x} "
                "is neither 0x88 (bootable) nor 0x00",
            )
        image_size = FLOPPY_SIZES.get(media_type, count * VIRTUAL_SECTOR_SIZE)
        entry: dict[str, Any] = {
            "platform": PLATFORM_NAMES.get(platform, f"0x{platform:02x}"),
            "platform_id": platform,
            "section": section,
            "bootable": indicator == BOOTABLE,
            "media_type": MEDIA_TYPE_NAMES.get(media_type, f"0x{media_type:x}"),
            "load_segment": e["load_segment"],
            "system_type": e["system_type"],
            "sector_count": count,
            "load_rba": rba,
            "image_offset": rba * ISO_SECTOR_SIZE,
            "image_size": image_size,
        }
        self.details["el_torito"].append(entry)
        if not src.contains(rba * ISO_SECTOR_SIZE, max(image_size, 1)):
            self.add_finding(
                TRUNCATED, "warning",
                f"El Torito boot entry at offset {where}: its {image_size}-byte boot image at "
                f"sector {rba} lies (partly) past the end of the file ({src.size})",
            )

    # -- system area ------------------------------------------------------------
    def _hybrid(self) -> str | None:
        """``mbr``, ``gpt`` or ``mbr+gpt`` when the system area holds a partition table.

        An MBR is the boot signature with at least one entry that has a valid
        boot indicator and a length; its type may be 0 (isohybrid ``-u`` and
        xorriso's ``-isohybrid-gpt-basdat`` write a type-0 entry over the whole
        ISO beside the EFI one). An MBR whose only entries are GPT-protective
        (0xEE) belongs to the GPT.
        """
        src = self.source
        if not src.contains(0, c_mbr.SECTOR_SIZE):
            return None
        sector0 = src.read(0, c_mbr.SECTOR_SIZE, "ISO 9660 system area")
        types: set[int] = set()
        if c_mbr.has_signature(sector0):
            for i in range(c_mbr.ENTRY_COUNT):
                entry = c_mbr.partition_entry(sector0, i)
                if entry["boot_indicator"] in c_mbr.BOOT_INDICATORS and entry["size_in_lba"]:
                    types.add(entry["os_type"])
        # The GPT header is at LBA 1 of the 512-byte sectors an ISO hybrid is made for.
        gpt_header = c_mbr.SECTOR_SIZE
        gpt = (src.contains(gpt_header, len(c_gpt.SIGNATURE)) and
               src.read(gpt_header, len(c_gpt.SIGNATURE), "ISO 9660 system area")
               == c_gpt.SIGNATURE)
        mbr = bool(types) and types != {c_mbr.TYPE_GPT_PROTECTIVE}
        if gpt:
            return "mbr+gpt" if mbr else "gpt"
        return "mbr" if mbr else None


def probe(source: Source) -> bool:
    """``CD001`` in the first volume descriptor, at sector 16."""
    off = (ISO_FIRST_VD_SECTOR * ISO_SECTOR_SIZE
           + VOLUME_DESCRIPTOR_HEADER.offset("standard_identifier"))
    return source.contains(off, len(ISO_STANDARD_ID)) and \
        source.read(off, len(ISO_STANDARD_ID), "ISO 9660 volume descriptor") == ISO_STANDARD_ID


FORMAT = Format("iso", probe, IsoImage)

"""ISO 9660 volume probe, with the boot platforms of its El Torito catalog.

Specs: ECMA-119 (ISO 9660) section 8 (volume descriptors) and the El Torito
Bootable CD-ROM Format Specification 1.0 (boot record volume descriptor,
validation entry, section headers), as declared in :mod:`~imgscan._core.c_iso9660`
and shared with the ISO 9660 reader. What is reported follows blkid: the
primary label unless a Joliet supplementary descriptor spells another, and
blkid's "UUID" made of the modification (else creation) date.
"""

from libc.stdint cimport uint8_t, uint64_t

from imgscan import limits

from .volume cimport Probe, bytes_at, bytes_in, label8, label16
from .volume import Volume

# Where the primary volume descriptor and its "CD001" are, rendered from c_iso9660 at
# build time (compiled_layouts.py): every volume is tested for them, and most are not
# ISO 9660, so the probe imports the declarations (shared with the ISO 9660 reader) only
# once the signature is found.
include "iso9660_layout.pxi"


cdef object _iso_date_uuid(bytes date):
    """blkid's ISO "UUID": the 16 date digits as YYYY-MM-DD-HH-MM-SS-CC, None if unset."""
    digits = date[:16]
    if digits == b"0" * 16 and date[16] == 0:
        return None
    t = digits.decode("latin-1")
    return f"{t[0:4]}-{t[4:6]}-{t[6:8]}-{t[8:10]}-{t[10:12]}-{t[12:14]}-{t[14:16]}"


cdef str _platform(int platform_id):
    from ..c_iso9660 import PLATFORM_NAMES
    if platform_id == 0x01:
        return "ppc"  # what the probe has always named it (the reader says "powerpc")
    return PLATFORM_NAMES.get(platform_id, f"0x{platform_id:02x}")


cdef list _eltorito_platforms(Probe p, uint64_t catalog_lba):
    cdef bytes cat = p.get(catalog_lba * ISO_SECTOR_SIZE, ISO_SECTOR_SIZE)
    cdef list platforms = []
    from ..c_iso9660 import (
        BOOTABLE, CATALOG_ENTRY_SIZE, SECTION_HEADER, SECTION_HEADER_FINAL, SECTION_HEADER_MORE,
        VALIDATION_ENTRY, VALIDATION_HEADER_ID, VALIDATION_KEY,
    )
    if len(cat) < 2 * CATALOG_ENTRY_SIZE:
        return platforms
    validation = VALIDATION_ENTRY.unpack(cat)
    if validation["header_id"] != VALIDATION_HEADER_ID or validation["key"] != VALIDATION_KEY:
        return platforms
    if cat[CATALOG_ENTRY_SIZE] == BOOTABLE:
        platforms.append(_platform(validation["platform_id"]))
    pos = 2 * CATALOG_ENTRY_SIZE
    while (pos + CATALOG_ENTRY_SIZE <= len(cat)
           and cat[pos] in (SECTION_HEADER_MORE, SECTION_HEADER_FINAL)):
        section = SECTION_HEADER.unpack(cat, pos)
        name = _platform(section["platform_id"])
        count = section["section_entry_count"]
        if name not in platforms and count:
            platforms.append(name)
        pos += CATALOG_ENTRY_SIZE * (1 + count)
        if section["header_indicator"] == SECTION_HEADER_FINAL:
            break
    return platforms


cdef object probe_iso9660(Probe p, const uint8_t* first, Py_ssize_t size):
    """``first``: the volume's ``size`` bytes at :data:`ISO_PVD` (:data:`ISO_ID_END`, fewer
    where the volume ends: ``filesystems.probe_volume`` reads them with the 32 KiB-page
    swap signature just before, into its own buffer); the descriptors are read only when
    they hold "CD001", so a volume that is not ISO 9660 costs a read of a few bytes."""
    if not bytes_in(first, size, STANDARD_ID_OFFSET, ISO_STANDARD_ID):
        return None
    cdef bytes vds = p.get(ISO_PVD, limits.FS_ISO_FIRST_DESCRIPTORS * ISO_SECTOR_SIZE)
    if len(vds) < ISO_SECTOR_SIZE or not bytes_at(vds, STANDARD_ID_OFFSET, ISO_STANDARD_ID):
        return None
    from ..c_iso9660 import (
        BOOT_RECORD, EL_TORITO_ID, JOLIET_ESCAPES, VD_TYPE_BOOT_RECORD, VD_TYPE_SUPPLEMENTARY,
        VD_TYPE_TERMINATOR, VOLUME_DESCRIPTOR,
    )
    pvd = VOLUME_DESCRIPTOR.unpack(vds)
    volume_id = pvd["volume_identifier"]
    uuid = _iso_date_uuid(pvd["volume_modification_date"])
    if uuid is None:
        uuid = _iso_date_uuid(pvd["volume_creation_date"])
    block = pvd["logical_block_size"]
    details = {"system_id": label8(pvd["system_identifier"], "ascii"),
               "application_id": label8(pvd["application_identifier"], "ascii"),
               "block_size": block}
    label = label8(volume_id, "latin-1")
    version = None
    joliet_seen = extended = False
    for i in range(1, limits.FS_ISO_MAX_DESCRIPTORS):
        if (i + 1) * ISO_SECTOR_SIZE > len(vds):
            # The set is longer than the first read: fetch the rest once.
            if extended or len(vds) < limits.FS_ISO_FIRST_DESCRIPTORS * ISO_SECTOR_SIZE:
                break
            extended = True
            vds += p.get(ISO_PVD + len(vds),
                         (limits.FS_ISO_MAX_DESCRIPTORS - i) * ISO_SECTOR_SIZE)
            if (i + 1) * ISO_SECTOR_SIZE > len(vds):
                break
        base = i * ISO_SECTOR_SIZE
        kind = vds[base]
        if kind == VD_TYPE_TERMINATOR or \
                VOLUME_DESCRIPTOR.field(vds, "standard_identifier", base) != ISO_STANDARD_ID:
            break
        if kind == VD_TYPE_BOOT_RECORD and BOOT_RECORD.field(
                vds, "boot_system_identifier", base)[:len(EL_TORITO_ID)] == EL_TORITO_ID:
            details["el_torito"] = _eltorito_platforms(
                p, BOOT_RECORD.field(vds, "boot_catalog_pointer", base))
        elif (kind == VD_TYPE_SUPPLEMENTARY and not joliet_seen
              and VOLUME_DESCRIPTOR.field(vds, "escape_sequences", base)[:3]
              in JOLIET_ESCAPES):
            joliet_seen = True
            version = "Joliet Extension"
            joliet = VOLUME_DESCRIPTOR.field(vds, "volume_identifier", base)
            # blkid keeps the primary label when the Joliet one spells the same
            # text (Joliet's 16 UTF-16 characters may be a truncation of it).
            if joliet[0::2] != b"\x00" * 16 or joliet[1::2] != volume_id[:16]:
                label = label16(joliet, "utf-16-be")
    return Volume("iso9660", label=label, uuid=uuid,
                  size=pvd["volume_space_size"] * block or None,
                  version=version, details=details)

"""ISO 9660 volume probe, with the boot platforms of its El Torito catalog.

Specs: ECMA-119 (ISO 9660) section 8 (volume descriptors) and the El Torito
Bootable CD-ROM Format Specification 1.0 (boot record volume descriptor,
validation entry, section headers). What is reported follows blkid: the
primary label unless a Joliet supplementary descriptor spells another, and
blkid's "UUID" made of the modification (else creation) date.
"""

from libc.stdint cimport uint64_t

from imgscan import limits

from ..cstruct import CStruct
from .volume cimport Probe, label8, label16
from .volume import Volume

ISO_SECTOR = 2048
#: The volume descriptor set starts at sector 16.
ISO_PVD = 16 * ISO_SECTOR
ISO_MAGIC = b"CD001"
ISO_VD_BOOT, ISO_VD_PRIMARY, ISO_VD_SUPPLEMENTARY, ISO_VD_END = 0, 1, 2, 255
ISO_JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")

#: ECMA-119 8.4 (primary) and 8.5 (supplementary: the same layout, with escape
#: sequences), up to the dates; both-endian numbers as their little-endian half.
VOLUME_DESCRIPTOR = CStruct("ISO 9660 volume descriptor", "<", [
    ("type", "B"),
    ("standard_identifier", "5s"),
    ("version", "B"),
    ("flags", "B"),
    ("system_identifier", "32s"),
    ("volume_identifier", "32s"),
    (None, "8x"),
    ("volume_space_size", "I"),
    (None, "4x"),
    ("escape_sequences", "32s"),
    ("volume_set_size", "H"),
    (None, "2x"),
    ("volume_sequence_number", "H"),
    (None, "2x"),
    ("logical_block_size", "H"),
    (None, "2x"),
    (None, "24x"),           # path table size and locations
    ("root_directory_record", "34s"),
    ("volume_set_identifier", "128s"),
    ("publisher_identifier", "128s"),
    ("data_preparer_identifier", "128s"),
    ("application_identifier", "128s"),
    ("copyright_file_identifier", "37s"),
    ("abstract_file_identifier", "37s"),
    ("bibliographic_file_identifier", "37s"),
    ("volume_creation_date", "17s"),
    ("volume_modification_date", "17s"),
])
#: El Torito 1.0, "Boot Record Volume Descriptor".
BOOT_RECORD = CStruct("El Torito boot record", "<", [
    ("type", "B"),
    ("standard_identifier", "5s"),
    ("version", "B"),
    ("boot_system_identifier", "32s"),
    ("boot_identifier", "32s"),
    ("boot_catalog", "I"),
])
ELTORITO_ID = b"EL TORITO SPECIFICATION"

#: Boot catalog entries, 32 bytes each: the validation entry opens the catalog,
#: the initial/default entry follows, then section headers with their entries.
CATALOG_ENTRY = 32
VALIDATION_ENTRY = CStruct("El Torito validation entry", "<", [
    ("header_id", "B"),
    ("platform_id", "B"),
    (None, "2x"),
    ("id_string", "24s"),
    ("checksum", "H"),
    ("key", "2s"),
])
VALIDATION_HEADER_ID = 1
VALIDATION_KEY = b"\x55\xaa"
SECTION_HEADER = CStruct("El Torito section header", "<", [
    ("header_indicator", "B"),
    ("platform_id", "B"),
    ("section_entries", "H"),
    ("id_string", "28s"),
])
BOOTABLE = 0x88
SECTION_MORE, SECTION_FINAL = 0x90, 0x91
ELTORITO_PLATFORMS = {0x00: "bios", 0x01: "ppc", 0x02: "mac", 0xEF: "uefi"}


cdef object _iso_date_uuid(bytes date):
    """blkid's ISO "UUID": the 16 date digits as YYYY-MM-DD-HH-MM-SS-CC, None if unset."""
    digits = date[:16]
    if digits == b"0" * 16 and date[16] == 0:
        return None
    t = digits.decode("latin-1")
    return f"{t[0:4]}-{t[4:6]}-{t[6:8]}-{t[8:10]}-{t[10:12]}-{t[12:14]}-{t[14:16]}"


cdef str _platform(int platform_id):
    return ELTORITO_PLATFORMS.get(platform_id, f"0x{platform_id:02x}")


cdef list _eltorito_platforms(Probe p, uint64_t catalog_lba):
    cdef bytes cat = p.get(catalog_lba * ISO_SECTOR, ISO_SECTOR)
    cdef list platforms = []
    if len(cat) < 2 * CATALOG_ENTRY:
        return platforms
    validation = VALIDATION_ENTRY.unpack(cat)
    if validation["header_id"] != VALIDATION_HEADER_ID or validation["key"] != VALIDATION_KEY:
        return platforms
    if cat[CATALOG_ENTRY] == BOOTABLE:
        platforms.append(_platform(validation["platform_id"]))
    pos = 2 * CATALOG_ENTRY
    while pos + CATALOG_ENTRY <= len(cat) and cat[pos] in (SECTION_MORE, SECTION_FINAL):
        section = SECTION_HEADER.unpack(cat, pos)
        name = _platform(section["platform_id"])
        count = section["section_entries"]
        if name not in platforms and count:
            platforms.append(name)
        pos += CATALOG_ENTRY * (1 + count)
        if section["header_indicator"] == SECTION_FINAL:
            break
    return platforms


cdef object probe_iso9660(Probe p):
    cdef bytes vds = p.get(ISO_PVD, limits.FS_ISO_FIRST_DESCRIPTORS * ISO_SECTOR)
    if len(vds) < ISO_SECTOR or \
            VOLUME_DESCRIPTOR.field(vds, "standard_identifier") != ISO_MAGIC:
        return None
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
        if (i + 1) * ISO_SECTOR > len(vds):
            # The set is longer than the first read: fetch the rest once.
            if extended or len(vds) < limits.FS_ISO_FIRST_DESCRIPTORS * ISO_SECTOR:
                break
            extended = True
            vds += p.get(ISO_PVD + len(vds),
                         (limits.FS_ISO_MAX_DESCRIPTORS - i) * ISO_SECTOR)
            if (i + 1) * ISO_SECTOR > len(vds):
                break
        base = i * ISO_SECTOR
        kind = vds[base]
        if kind == ISO_VD_END or \
                VOLUME_DESCRIPTOR.field(vds, "standard_identifier", base) != ISO_MAGIC:
            break
        if kind == ISO_VD_BOOT and BOOT_RECORD.field(
                vds, "boot_system_identifier", base)[:len(ELTORITO_ID)] == ELTORITO_ID:
            details["el_torito"] = _eltorito_platforms(
                p, BOOT_RECORD.field(vds, "boot_catalog", base))
        elif (kind == ISO_VD_SUPPLEMENTARY and not joliet_seen
              and VOLUME_DESCRIPTOR.field(vds, "escape_sequences", base)[:3]
              in ISO_JOLIET_ESCAPES):
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

"""Probes of volumes that open with a DOS boot sector: BitLocker, FAT, NTFS, ReFS, exFAT.

Specs: Microsoft "FAT: General Overview of On-Disk Format" 1.03 and the exFAT
File System Specification; the NTFS boot sector and MFT record layout
(Linux-NTFS documentation, libfsntfs); BitLocker as documented by libbde
("BitLocker Drive Encryption (BDE) format"); the ReFS boot sector as
documented by libfsrefs. The FAT and NTFS structures are declared in
:mod:`~imgscan._core.c_fat` and :mod:`~imgscan._core.c_ntfs`, shared with the
FAT and NTFS readers. These formats share the jump and OEM name at the start
of sector 0, so probe_volume runs them in libblkid's order (BitLocker before
FAT: a BitLocker To Go volume's boot sector looks like FAT32's).
"""

cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint32_t, uint64_t

from imgscan import limits

from ..binary cimport le16
from .volume cimport Probe, bytes_at, bytes_in, label8, label16, le16_at, le32_at, le64_at, pow2
from .volume import USAGE_CRYPTO, Volume

# The declared layouts' fields as C offsets (and a few as Python (offset, length) spans),
# for the bounded readers of volume.pxd: a CStruct.unpack costs microseconds, and every
# volume is probed (so are the signatures every probe compares: C values, not a module
# attribute per use). FAT's and NTFS's, rendered from c_fat and c_ntfs at build time
# (compiled_layouts.py): the probe imports no declaration at start-up.
include "fat_layout.pxi"
include "ntfs_layout.pxi"


cdef bytes _bytes(bytes raw, tuple span):
    """The raw field at ``span`` = (offset, length) of ``raw`` (which holds it)."""
    cdef Py_ssize_t start = span[0]
    return raw[start:start + <Py_ssize_t>span[1]]


# FAT ----------------------------------------------------------------------
#: Text signatures libblkid accepts, at the FAT32 or FAT12/16 file system type.
FAT_MAGICS = ((FAT32_TYPE_OFFSET, b"MSWIN"), (FAT32_TYPE_OFFSET, b"FAT32   "),
              (FAT16_TYPE_OFFSET, b"MSDOS"), (FAT16_TYPE_OFFSET, b"FAT16   "),
              (FAT16_TYPE_OFFSET, b"FAT12   "), (FAT16_TYPE_OFFSET, b"FAT     "))
cdef enum:
    FAT_MAGIC_COUNT = 6
#: FAT_MAGICS for _fat_magic_len's loop in C; the bytes are kept alive by _FAT_MAGICS_HELD,
#: which nothing rebinds (the module's FAT_MAGICS could be).
cdef Py_ssize_t FAT_MAGIC_AT[FAT_MAGIC_COUNT]
cdef PyObject* FAT_MAGIC_TEXT[FAT_MAGIC_COUNT]
cdef tuple _FAT_MAGICS_HELD = FAT_MAGICS
if len(FAT_MAGICS) != FAT_MAGIC_COUNT:
    raise ImportError("FAT_MAGIC_COUNT is not the number of FAT_MAGICS")
for _i, (_at, _text) in enumerate(_FAT_MAGICS_HELD):
    FAT_MAGIC_AT[_i], FAT_MAGIC_TEXT[_i] = _at, <PyObject*>_text
#: x86 jumps a FAT boot sector may begin with (short and near jump).
cdef uint8_t FAT_JUMP_SHORT = 0xEB, FAT_JUMP_NEAR = 0xE9
#: Largest cluster counts of FAT12 and FAT16 (Microsoft's limits as libblkid uses them).
FAT12_MAX, FAT16_MAX, FAT32_MAX = 0xFF4, 0xFFF4, 0x0FFFFFF6
#: Bytes of one FAT32 table entry.
FAT32_ENTRY = 4
#: FSInfo signatures libblkid accepts ("RRdA" is a known variant); all zero is tolerated.
FSINFO_LEAD_SIGS = (FSINFO_LEAD_SIGNATURE, b"RRdA", b"\x00" * 4)
FSINFO_STRUC_SIGS = (FSINFO_STRUC_SIGNATURE, b"\x00" * 4)

# NTFS ---------------------------------------------------------------------
#: The largest cluster libblkid accepts.
NTFS_MAX_CLUSTER = 64 * 1024

# exFAT --------------------------------------------------------------------
cdef bytes EXFAT_OEM = b"EXFAT   "
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
cdef bytes BDE_MAGIC_VISTA = b"\xeb\x52\x90-FVE-FS-"
cdef bytes BDE_MAGIC_WIN7 = b"\xeb\x58\x90-FVE-FS-"
cdef bytes BDE_MAGIC_TOGO = b"\xeb\x58\x90MSWIN4.1"
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
cdef bytes REFS_MAGIC = b"\x00\x00\x00ReFS\x00"
REFS_SECTORS, REFS_BYTES_PER_SECTOR, REFS_SECTORS_PER_CLUSTER = 0x18, 0x20, 0x24
REFS_MAJOR, REFS_MINOR, REFS_SERIAL = 0x28, 0x29, 0x38

cdef str _dos_serial(bytes serial):
    """A 4-byte volume serial number as blkid prints it: ``XXXX-XXXX``."""
    return f"{serial[3]:02X}{serial[2]:02X}-{serial[1]:02X}{serial[0]:02X}"


# -- BitLocker ----------------------------------------------------------------

cdef object probe_bitlocker(Probe p):
    cdef bytes h = p.head
    cdef uint64_t fve_off
    if len(h) < 512:
        return None
    # each boot sector's signature compared in place: no slice of the head made
    if bytes_at(h, 0, BDE_MAGIC_VISTA):
        return Volume("BitLocker", encrypted=True, usage=USAGE_CRYPTO,
                      details={"variant": "vista", "to_go": False})
    if bytes_at(h, 0, BDE_MAGIC_WIN7):
        fve_off, to_go, guid_at = le64_at(h, BDE_WIN7_FVE_OFFSET), False, BDE_WIN7_GUID
    elif bytes_at(h, 0, BDE_MAGIC_TOGO):
        fve_off, to_go, guid_at = le64_at(h, BDE_TOGO_FVE_OFFSET), True, BDE_TOGO_GUID
    else:
        return None
    if fve_off == 0:
        return None
    fve = p.at(fve_off, FVE_BYTES)
    if fve[:8] != BDE_FVE_SIGNATURE:
        return None
    from ..guid import guid_text  # here: only a BitLocker volume names GUIDs (start-up)
    details = {"to_go": to_go, "sector_size": le16_at(h, BYTES_PER_SECTOR),
               "guid": guid_text(h[guid_at:guid_at + 16]), "metadata_offset": fve_off}
    version = None
    size = None
    if len(fve) >= FVE_BYTES:
        version = str(le16_at(fve, FVE_VERSION))
        size = le64_at(fve, FVE_VOLUME_SIZE) or None
        details["volume_guid"] = guid_text(fve[FVE_VOLUME_GUID:FVE_VOLUME_GUID + 16])
        method = le16_at(fve, FVE_ENCRYPTION_METHOD)
        details["encryption_method"] = method
        if method in BDE_METHODS:
            details["cipher"], details["key_bits"] = BDE_METHODS[method]
    uuid = None
    if not to_go:
        serial = le32_at(h, BDE_WIN7_SERIAL)
        uuid = f"{serial:016d}" if serial else None
    return Volume("BitLocker", uuid=uuid, size=size, encrypted=True, version=version,
                  usage=USAGE_CRYPTO, details=details)


# -- FAT ------------------------------------------------------------------------

cdef Py_ssize_t _fat_magic_len(bytes h):
    """Length of the signature libblkid would match first (0: none); ``h`` holds at least
    a boot sector (the caller checks)."""
    cdef const uint8_t* b = h
    cdef Py_ssize_t i
    for i in range(FAT_MAGIC_COUNT):
        if bytes_in(b, len(h), FAT_MAGIC_AT[i], <bytes>FAT_MAGIC_TEXT[i]):
            return len(<bytes>FAT_MAGIC_TEXT[i])
    if b[0] == FAT_JUMP_SHORT or b[0] == FAT_JUMP_NEAR:
        return 1
    if bytes_at(h, MBR_SIGNATURE_OFFSET, MBR_SIGNATURE):
        return 2
    return 0


cdef object _fat_root_label(Probe p, uint64_t start, uint64_t entries):
    """The volume-label entry of a root directory read in small chunks, or None.

    Returns (label bytes or None, finished): finished is False when the scan
    ran to the end of ``entries`` without an end-of-directory mark.
    """
    cdef uint64_t pos = 0, chunk, total = entries * DIR_ENTRY_SIZE
    cdef uint64_t cap = limits.FS_MAX_DIRECTORY_SCAN
    cdef const uint8_t* e
    cdef Py_ssize_t i
    if total > cap:
        total = cap
    while pos < total:
        chunk = min(<uint64_t>limits.FS_DIRECTORY_CHUNK, total - pos)
        data = p.get(start + pos, chunk)
        e = data
        for i in range(0, len(data) - DIR_ENTRY_SIZE + 1, DIR_ENTRY_SIZE):
            if e[i] == ENTRY_END:
                return None, True
            attr = e[i + DIR_ATTR]
            if (e[i] == ENTRY_FREE or le16(e + i + DIR_FST_CLUS_HI) != 0
                    or le16(e + i + DIR_FST_CLUS_LO) != 0
                    or (attr & ATTR_LONG_NAME_MASK) == ATTR_LONG_NAME):
                continue
            if attr & (ATTR_VOLUME_ID | ATTR_DIRECTORY) == ATTR_VOLUME_ID:
                return data[i:i + FAT_LABEL_LENGTH], True
        if <uint64_t>len(data) < chunk:
            return None, True
        pos += chunk
    return None, False


cdef object probe_vfat(Probe p):
    cdef bytes h = p.head
    if len(h) < BOOT_SECTOR_SIZE:
        return None
    mlen = _fat_magic_len(h)
    if not mlen:
        return None
    if mlen <= 2:
        if not bytes_at(h, MBR_SIGNATURE_OFFSET, MBR_SIGNATURE):
            return None
        if _bytes(h, FAT16_FS_TYPE) in (b"JFS     ", b"HPFS    "):
            return None
    fats, reserved, media = h[NUM_FATS], le16_at(h, RESERVED_SECTORS), h[MEDIA]
    spc = h[SECTORS_PER_CLUSTER]
    sector_size = le16_at(h, BYTES_PER_SECTOR)
    if (not fats or not reserved or not (media >= 0xF8 or media == 0xF0) or not pow2(spc)
            or not pow2(sector_size) or sector_size < 512 or sector_size > 4096):
        return None
    dir_entries = le16_at(h, ROOT_ENTRIES)
    sectors = le16_at(h, TOTAL_SECTORS_16) or le32_at(h, TOTAL_SECTORS_32)
    fat_length16 = le16_at(h, FAT_SIZE_16)
    fat32_length = le32_at(h, FAT_SIZE_32)
    fat_size = (fat_length16 or fat32_length) * fats
    dir_sectors = (dir_entries * DIR_ENTRY_SIZE + sector_size - 1) // sector_size
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
        label = found
        boot_label = _bytes(h, FAT16_VOLUME_LABEL)
        serial = _bytes(h, FAT16_VOLUME_ID)
        details["sec_type"] = "msdos"
        if clusters < FAT12_MAX:
            version = "FAT12"
        elif clusters < FAT16_MAX:
            version = "FAT16"
    elif fat32_length:
        version = "FAT32"
        cluster_bytes = spc * sector_size
        data_start = reserved + fat_size
        fat_entries = fat32_length * sector_size // FAT32_ENTRY
        cluster = le32_at(h, ROOT_CLUSTER)
        hops = 0
        while FIRST_CLUSTER <= cluster < fat_entries and hops < limits.FS_MAX_FAT_CHAIN:
            hops += 1
            found, finished = _fat_root_label(
                p, (data_start + (cluster - FIRST_CLUSTER) * spc) * sector_size,
                cluster_bytes // DIR_ENTRY_SIZE)
            if found is not None or finished:
                label = found
                break
            entry = p.get(reserved * sector_size + cluster * FAT32_ENTRY, FAT32_ENTRY)
            if len(entry) < FAT32_ENTRY:
                break
            cluster = le32_at(entry, 0) & FAT32_CLUSTER_MASK
        boot_label = _bytes(h, FAT32_VOLUME_LABEL)
        serial = _bytes(h, FAT32_VOLUME_ID)
        fsinfo = le16_at(h, FS_INFO)
        if fsinfo:
            info = p.get(fsinfo * sector_size, FSINFO_SIZE)
            if len(info) < FSINFO_SIZE:
                return None
            if (_bytes(info, FSINFO_LEAD_SIG) not in FSINFO_LEAD_SIGS
                    or _bytes(info, FSINFO_STRUC_SIG) not in FSINFO_STRUC_SIGS):
                return None
    if version is not None:
        details["fat_type"] = version
    if boot_label is not None and boot_label != FAT_NO_NAME:
        details["label_fatboot"] = label8(boot_label, "cp850")
    if label is not None and label != FAT_NO_NAME:
        label = label8(label, "cp850")
    else:
        label = None
    uuid = None
    if serial is not None and any(serial):
        uuid = _dos_serial(serial)
    return Volume("vfat", label=label, uuid=uuid, size=sectors * sector_size or None,
                  version=version, details=details)


# -- NTFS -------------------------------------------------------------------------

cdef object probe_ntfs(Probe p):
    cdef bytes h = p.head
    if len(h) < NTFS_BOOT_SECTOR_SIZE or not bytes_at(h, NTFS_OEM_NAME, NTFS_OEM_ID):
        return None
    sector_size, spc = le16_at(h, BYTES_PER_SECTOR), h[SECTORS_PER_CLUSTER]
    if sector_size < 256 or sector_size > 4096 or spc not in (1, 2, 4, 8, 16, 32, 64, 128):
        return None
    if sector_size * spc > NTFS_MAX_CLUSTER:
        return None
    # The BPB fields only FAT uses are zero on NTFS.
    if (le16_at(h, RESERVED_SECTORS) or le16_at(h, ROOT_ENTRIES)
            or le16_at(h, TOTAL_SECTORS_16) or le16_at(h, FAT_SIZE_16)
            or le32_at(h, TOTAL_SECTORS_32) or h[NUM_FATS]):
        return None
    cpr = h[NTFS_CLUSTERS_PER_MFT_RECORD]
    if 0xE1 <= cpr <= 0xF7:
        record_size = 1 << (256 - cpr)
    elif cpr in (1, 2, 4, 8, 16, 32, 64):
        record_size = cpr * spc * sector_size
    else:
        return None
    sectors = le64_at(h, NTFS_TOTAL_SECTORS)
    clusters = sectors // spc
    mft, mftmirr = le64_at(h, NTFS_MFT_LCN), le64_at(h, NTFS_MFTMIRR_LCN)
    if mft > clusters or mftmirr > clusters:
        return None
    cluster = spc * sector_size
    details = {"sector_size": sector_size, "cluster_size": cluster,
               "mft_record_size": record_size}
    label = None
    if record_size <= limits.FS_MAX_MFT_RECORD:
        mft_off = mft * cluster
        if p.get(mft_off, len(MFT_MAGIC)) != MFT_MAGIC:
            return None
        raw = p.get(mft_off + MFT_RECORD_VOLUME * record_size, record_size)
        if len(raw) < record_size or raw[:len(MFT_MAGIC)] != MFT_MAGIC:
            return None
        label, ntfs_version = _ntfs_volume_attrs(_ntfs_fixup(raw, record_size), record_size)
        if ntfs_version is not None:
            details["ntfs_version"] = ntfs_version
    serial = le64_at(h, NTFS_SERIAL)
    return Volume("ntfs", label=label, uuid=f"{serial:016X}" if serial else None,
                  size=sectors * sector_size or None, details=details)


cdef bytes _ntfs_fixup(bytes raw, Py_ssize_t size):
    """The record with the sector-end bytes the update sequence array protects put back
    (as read when the array does not check out)."""
    usa, count = le16_at(raw, REC_USA_OFFSET), le16_at(raw, REC_USA_COUNT)
    if count < 2 or usa + 2 * count > size or (count - 1) * FIXUP_STRIDE > size:
        return raw
    rec = bytearray(raw)
    usn = rec[usa:usa + 2]
    for i in range(1, count):
        end = i * FIXUP_STRIDE
        if rec[end - 2:end] != usn:
            return bytes(rec)
        rec[end - 2:end] = rec[usa + 2 * i:usa + 2 * i + 2]
    return bytes(rec)


cdef tuple _ntfs_volume_attrs(bytes rec, Py_ssize_t size):
    """$VOLUME_NAME (label) and $VOLUME_INFORMATION (version) of the $Volume record."""
    cdef uint32_t kind
    label = version = None
    pos = le16_at(rec, REC_ATTRS_OFFSET)
    allocated = le32_at(rec, REC_BYTES_ALLOCATED)
    for _ in range(size // 16):
        if pos + ATTR_HEADER > size or pos > allocated:
            break
        kind = le32_at(rec, pos + ATTR_TYPE)
        length = le32_at(rec, pos + ATTR_LENGTH)
        if kind == AT_END or length == 0:
            break
        if rec[pos + ATTR_NON_RESIDENT] == 0 and (kind == AT_VOLUME_NAME
                                                  or kind == AT_VOLUME_INFORMATION):
            vlen = le32_at(rec, pos + ATTR_VALUE_LENGTH)
            voff = pos + le16_at(rec, pos + ATTR_VALUE_OFFSET)
            value = rec[voff:min(voff + vlen, size)]
            if kind == AT_VOLUME_NAME:
                label = label16(value, "utf-16-le")
            elif len(value) > VI_MINOR:
                version = f"{value[VI_MAJOR]}.{value[VI_MINOR]}"
        pos += length
    return label, version


# -- ReFS -------------------------------------------------------------------------

cdef object probe_refs(Probe p):
    """Named ``ReFS`` as blkid names it. blkid matches the signature alone and prints no
    UUID and no version, so the volume serial and the format version libfsrefs documents
    are details, not the uuid and version fields blkid's name for them would promise."""
    cdef bytes h = p.head
    if len(h) < 512 or not bytes_at(h, 0, REFS_MAGIC):
        return None
    sector_size = le32_at(h, REFS_BYTES_PER_SECTOR)
    return Volume("ReFS", size=le64_at(h, REFS_SECTORS) * sector_size or None,
                  details={"sector_size": sector_size,
                           "cluster_size": sector_size * le32_at(h, REFS_SECTORS_PER_CLUSTER),
                           "format_version": f"{h[REFS_MAJOR]}.{h[REFS_MINOR]}",
                           "volume_serial": f"{le64_at(h, REFS_SERIAL):016X}"})


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


cdef object probe_exfat(Probe p):
    cdef bytes h = p.head
    if len(h) < BOOT_SECTOR_SIZE or not bytes_at(h, OEM_NAME, EXFAT_OEM):
        return None
    bps_shift, spc_shift = h[EXFAT_BYTES_PER_SECTOR_SHIFT], h[EXFAT_SECTORS_PER_CLUSTER_SHIFT]
    if (not bytes_at(h, MBR_SIGNATURE_OFFSET, MBR_SIGNATURE)
            or bps_shift + spc_shift >= 32 or h[:3] != EXFAT_JUMP
            or any(h[EXFAT_MUST_BE_ZERO[0]:EXFAT_MUST_BE_ZERO[1]])):
        return None
    sector_size = 1 << bps_shift
    cluster_size = sector_size << spc_shift
    details = {"sector_size": sector_size, "cluster_size": cluster_size}
    region = (EXFAT_CHECKSUM_SECTORS + 1) * sector_size
    if region <= len(h):
        expected = le32_at(h, EXFAT_CHECKSUM_SECTORS * sector_size)
        details["checksum"] = (
            "ok" if _exfat_checksum(h, EXFAT_CHECKSUM_SECTORS * sector_size) == expected
            else "bad")
    label = _exfat_label(p, h, sector_size, cluster_size, spc_shift)
    serial = h[EXFAT_SERIAL:EXFAT_SERIAL + 4]
    uuid = _dos_serial(serial) if any(serial) else None
    return Volume("exfat", label=label, uuid=uuid,
                  size=le64_at(h, EXFAT_VOLUME_LENGTH) * sector_size or None,
                  version=f"{h[EXFAT_REVISION + 1]}.{h[EXFAT_REVISION]}", details=details)


cdef object _exfat_label(Probe p, bytes h, uint64_t sector_size, uint64_t cluster_size,
                         int spc_shift):
    """The volume label entry of the root directory, following its FAT chain (capped)."""
    cdef uint64_t heap = le32_at(h, EXFAT_CLUSTER_HEAP_OFFSET) * sector_size
    cdef uint64_t fat = le32_at(h, EXFAT_FAT_OFFSET) * sector_size
    cdef uint64_t cluster = le32_at(h, EXFAT_ROOT_CLUSTER)
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
                    return label16(data[i + 2:i + 2 + 2 * chars], "utf-16-le")
            if <uint64_t>len(data) < chunk:
                return None
            pos += chunk
            scanned += chunk
        entry = p.get(fat + cluster * 4, 4)
        if len(entry) < 4:
            return None
        cluster = le32_at(entry, 0)
    return None

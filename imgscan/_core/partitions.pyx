"""MBR and GPT partition tables, read from guest bytes.

Specs: UEFI Specification 2.10, chapter 5 "GUID Partition Table (GPT) Disk
Layout" (protective MBR, GPT header, GPT partition entry array), and the IBM
PC master boot record with its chain of extended boot records (EBRs) as the
Linux kernel (``block/partitions/msdos.c``) and util-linux's libblkid read
them.

Everything here reads through a ``read(offset, length)`` callable over the
*guest* disk, so a table inside a qcow2, VHD or VMDK is found exactly as in a
raw file. The reader is defensive where the formats invite loops and huge
allocations:

* the EBR chain is followed with a set of visited sectors (a loop ends it)
  and at most ``limits.MBR_MAX_EBR_CHAIN`` links;
* a GPT entry array is read only when ``entries * entry size`` is within
  ``limits.GPT_MAX_ENTRY_ARRAY_BYTES``, the entry size is 128 * 2^n bytes and
  the array lies on the disk: a header claiming 2^32 entries allocates
  nothing;
* damage is reported as findings (``corrupt``, ``truncated``,
  ``footer-mismatch``, ``resource-exhaustion``), not exceptions, so one bad
  table never hides the rest of an image's facts. Only the ``read`` callable
  may raise (an unreadable guest disk is the caller's to report).

Which table a disk holds follows libblkid and the kernel: sector 0 must end
in 0x55AA and every boot indicator must be 0x00 or 0x80, and a FAT, NTFS,
exFAT or BitLocker boot sector is a volume, not an MBR. An MBR with a 0xEE
entry sends the reader to the GPT, probed at 512- and 4096-byte logical
sectors (a 4Kn disk keeps ``EFI PART`` at byte 4096); a damaged primary GPT
falls back to the backup at the last LBA. A valid GPT behind an MBR without a
0xEE entry is stale (the MBR wins, as in Linux and Windows) and is reported.
So are the sectors OpenStack's format_inspector refuses: a boot indicator other
than 0x00 or 0x80 (no table is read), and a protective MBR whose 0xEE entry is
not entry 1 alone, starting at LBA 1 (the GPT is still read).
"""

cimport cython
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp

from imgscan import limits
from imgscan.findings import (
    CORRUPT, FOOTER_MISMATCH, RESOURCE_EXHAUSTION, SIZE_MISMATCH, TRUNCATED, Finding,
)

from .binary cimport le32, le64
from .guid_text cimport ms_guid_text

# --------------------------------------------------------------------------
# On-disk layout: declared in c_mbr, c_gpt and c_fat, rendered into partitions_layout.pxi
# at build time (probes/compiled_layouts.py), so that the reader, run on almost every
# image, imports none of them at start-up (a GPT header, unpacked whole, imports c_gpt
# once one is found). The type names are in parttypes (imported when a partition is
# named; the three types boot-mode evidence compares are rendered too). The MBR_ and
# GPT_ names are this module's public spelling of the declarations; the C offsets serve
# the typed entry decoders and the nogil scan of the GPT entry array (a CStruct.unpack
# per entry costs microseconds).
# --------------------------------------------------------------------------

include "partitions_layout.pxi"

# Volume boot records that end in 0x55AA like an MBR (libblkid rejects them too):
# their OEM names, and the FAT type strings of the FAT12/16 and FAT32 boot sectors.
VBR_OEM_IDS = (b"NTFS    ", b"EXFAT   ", b"-FVE-FS-", b"MSWIN4.1")
VBR_FAT_TYPES = ((VBR_FAT16_TYPE, b"FAT1"), (VBR_FAT32_TYPE, b"FAT32   "))
#: x86 jumps a boot sector begins with (short and near jump).
VBR_JUMPS = (0xEB, 0xE9)

# --------------------------------------------------------------------------
# MBR boot code: stable byte patterns of known loaders. Each is a prefix of
# the boot code area or a run of strings that the loader prints; sources:
# Microsoft's MBRs as written by Windows (NT 6+: Vista, 7, 8, 10, 11; NT 5:
# 2000, XP, 2003, same code as Windows 9x FDISK), GRUB 2 boot.img
# (grub-core/boot/i386/pc/boot.S) and GRUB legacy stage1 (stage1/stage1.S),
# SYSLINUX mbr.bin / altmbr.bin / gptmbr.bin and isohybrid's isohdpfx.bin.
# --------------------------------------------------------------------------

#: Windows Vista and later: xor ax,ax; mov ss,ax; mov sp,7C00h; ...; copy to
#: 0600h, far return into it (identical in the NT 6.0 and 6.1+ MBRs).
WINDOWS_NT6_PREFIX = bytes.fromhex("33c08ed0bc007c8ec08ed8be007cbf0006b90002fcf3a450681c06cb")
#: Windows 2000 / XP / 2003 (and Windows 95B-ME FDISK): sti, copy 1E5h bytes to 061Bh.
WINDOWS_NT5_PREFIX = bytes.fromhex("33c08ed0bc007cfb5007501ffcbe1b7cbf1b065057b9e501f3a4cb")
#: MS-DOS 3.30 through Windows 95A FDISK.
MSDOS_PREFIX = bytes.fromhex("fa33c08ed0bc007c8bf45007501ffbfcbf0006")
#: GRUB's messages, NUL-separated, in both GRUB 2 boot.img and GRUB legacy stage1.
GRUB_MESSAGES = b"GRUB \x00Geom\x00Hard Disk\x00Read\x00 Error"
#: The short jump over the BPB that opens GRUB's boot sector: its target tells the generation.
GRUB2_JUMPS = (b"\xeb\x63\x90", b"\xeb\x4c\x90")  # GRUB 2 since 1.97, GRUB 1.96
GRUB_LEGACY_JUMP = b"\xeb\x48\x90"
#: SYSLINUX's MBRs after their first three bytes (``33 c0 fa`` or ``fa 31 c0``).
SYSLINUX_BODY = bytes.fromhex("8ed88ed0bc007c89e606578ec0fbfcbf0006b90001f3a5")
SYSLINUX_HEADS = (bytes.fromhex("33c0fa"), bytes.fromhex("fa31c0"))
SYSLINUX_GPT_MARK = b"!GPT"
#: isohybrid MBR (isohdpfx.bin / isohdppx.bin): ``xor bp,bp`` then NOP padding.
ISOHYBRID_PREFIX = bytes.fromhex("33ed9090909090909090")

BOOT_CODE_NAMES = {
    "empty": "no boot code (all zero)",
    "windows-nt6": "Windows NT 6+ MBR (Vista and later)",
    "windows-nt5": "Windows NT 5 MBR (2000, XP, 2003; also Windows 9x)",
    "msdos": "MS-DOS 3.30 to Windows 95A MBR",
    "grub2": "GRUB 2 boot.img",
    "grub-legacy": "GRUB legacy stage1",
    "syslinux": "SYSLINUX mbr.bin / altmbr.bin",
    "syslinux-gpt": "SYSLINUX gptmbr.bin",
    "isohybrid": "SYSLINUX isohybrid MBR",
    "unknown": "boot code of an unknown loader",
}


cdef bint _all_zero(const uint8_t* p, Py_ssize_t n) noexcept:
    """Every byte of ``p[:n]`` is zero: a C loop, where ``bytes.strip(b"\\x00")`` made a
    ``memchr`` call per byte (the empty boot code area of most data disks, about 14 k
    instructions an image, issue 18)."""
    cdef Py_ssize_t i
    for i in range(n):
        if p[i]:
            return False
    return True


def classify_boot_code(code):
    """The loader whose code fills an MBR's boot code area (its first 440 bytes).

    Returns one of :data:`BOOT_CODE_NAMES`' keys: ``empty`` when the area is
    all zeros (a protective MBR, or a data disk), ``unknown`` when no known
    pattern matches.
    """
    code = bytes(code[:MBR_BOOT_CODE_SIZE])
    if _all_zero(<const uint8_t*><bytes>code, len(code)):
        return "empty"
    return _loader_of(code)


cdef str _loader_of(bytes code):
    """:func:`classify_boot_code` of a boot code area (``code``, its first 440 bytes at
    most) known not to be all zeros."""
    if code.startswith(WINDOWS_NT6_PREFIX):
        return "windows-nt6"
    if code.startswith(WINDOWS_NT5_PREFIX):
        return "windows-nt5"
    if code.startswith(MSDOS_PREFIX):
        return "msdos"
    if GRUB_MESSAGES in code:
        if code[:3] in GRUB2_JUMPS:
            return "grub2"
        if code[:3] == GRUB_LEGACY_JUMP:
            return "grub-legacy"
        return "unknown"
    if code[:3] in SYSLINUX_HEADS and code[3:3 + len(SYSLINUX_BODY)] == SYSLINUX_BODY:
        return "syslinux-gpt" if SYSLINUX_GPT_MARK in code else "syslinux"
    if code.startswith(ISOHYBRID_PREFIX):
        return "isohybrid"
    return "unknown"


#: Each MBR type byte as the contract spells it ("0x83"), made once: a format call per
#: entry was most of what an entry cost (issue 18).
cdef tuple MBR_TYPE_TEXT = tuple([f"0x{i:02x}" for i in range(256)])
#: parttypes.MBR_TYPE_NAMES, imported when the first MBR partition is named (start-up).
cdef dict _mbr_type_names = None


def mbr_type_name(int type_byte):
    global _mbr_type_names
    if _mbr_type_names is None:
        from .parttypes import MBR_TYPE_NAMES
        _mbr_type_names = MBR_TYPE_NAMES
    return _mbr_type_names.get(type_byte)


def gpt_type_name(str type_guid):
    from .parttypes import GPT_TYPE_NAMES
    return GPT_TYPE_NAMES.get(type_guid)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

class Partition:
    """One partition: where it is (bytes in the guest disk) and what its table says of it.

    ``first_lba`` / ``last_lba`` are in the table's logical sectors. GPT
    entries also carry ``guid`` (the unique partition GUID), ``attributes``
    and ``name``; MBR entries say whether they are ``logical`` (in the EBR
    chain) and carry ``None`` there.
    """

    __slots__ = ("attributes", "bootable", "first_lba", "guid", "last_lba", "logical", "name",
                 "number", "size", "start", "type", "type_name")

    def __init__(self, number, start, size, type, type_name, bootable, first_lba, last_lba,
                 guid=None, attributes=None, name=None, logical=False):
        self.number = number
        self.start = start
        self.size = size
        self.type = type
        self.type_name = type_name
        self.bootable = bootable
        self.first_lba = first_lba
        self.last_lba = last_lba
        self.guid = guid
        self.attributes = attributes
        self.name = name
        self.logical = logical

    @property
    def end(self):
        return self.start + self.size

    @property
    def is_extended(self):
        """An MBR extended partition (a container of logical ones, not a volume)."""
        return self.attributes is None and int(self.type, 16) in MBR_EXTENDED_TYPES

    @property
    def is_protective(self):
        return self.attributes is None and int(self.type, 16) == MBR_TYPE_GPT_PROTECTIVE

    def as_dict(self):
        out = {
            "number": self.number, "start": self.start, "size": self.size,
            "type": self.type, "type_name": self.type_name, "bootable": self.bootable,
            "first_lba": self.first_lba, "last_lba": self.last_lba,
        }
        if self.attributes is None:
            out["logical"] = self.logical
        else:
            out.update(guid=self.guid, attributes=self.attributes, name=self.name)
        return out

    def __repr__(self):
        return (f"Partition({self.number}, start={self.start}, size={self.size}, "
                f"type={self.type!r}, type_name={self.type_name!r})")


class PartitionTable:
    """A disk's partition table: its kind, partitions, raw facts and findings.

    ``kind`` is ``"mbr"``, ``"gpt"`` or ``"none"``; ``mbr`` holds the facts of
    sector 0 when it is an MBR (a GPT disk's protective MBR included), ``gpt``
    those of both GPT headers when a GPT was found.
    """

    __slots__ = ("findings", "gpt", "kind", "mbr", "partitions", "sector_size")

    def __init__(self, kind, sector_size, partitions, mbr, gpt, findings):
        self.kind = kind
        self.sector_size = sector_size
        self.partitions = partitions
        self.mbr = mbr
        self.gpt = gpt
        self.findings = findings

    def as_dict(self):
        return {
            "kind": self.kind, "sector_size": self.sector_size,
            "partitions": [p.as_dict() for p in self.partitions],
            "mbr": self.mbr, "gpt": self.gpt,
        }

    def __repr__(self):
        return f"PartitionTable({self.kind!r}, {len(self.partitions)} partitions)"


cdef class _Findings:
    """Findings with a per-kind cap (limits.PARTITION_MAX_FINDINGS) and a summary of the rest."""

    cdef list items
    cdef dict counts

    def __init__(self):
        self.items = []
        self.counts = {}

    def add(self, kind, id, severity, message):
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= limits.PARTITION_MAX_FINDINGS:
            self.items.append(Finding(id, severity, message))

    def done(self):
        for kind, n in self.counts.items():
            if n > limits.PARTITION_MAX_FINDINGS:
                self.items.append(Finding(
                    RESOURCE_EXHAUSTION, "warning",
                    f"{n - limits.PARTITION_MAX_FINDINGS} more partition table findings of "
                    f"the kind '{kind}' not listed (limits.PARTITION_MAX_FINDINGS)"))
        return self.items


# --------------------------------------------------------------------------
# MBR
# --------------------------------------------------------------------------

cdef list _mbr_entries(bytes sector):
    """(status, type, first LBA, sector count) of each entry of an MBR or EBR, read in
    place from the sector's bytes (a memoryview per entry cost more than the entry)."""
    if len(sector) < MBR_PARTITION_RECORD + MBR_ENTRY_COUNT * MBR_ENTRY_SIZE:
        raise ValueError("short MBR sector")
    cdef const uint8_t* p = <const uint8_t*>sector + MBR_PARTITION_RECORD
    cdef list entries = []
    cdef Py_ssize_t i
    for i in range(MBR_ENTRY_COUNT):
        entries.append((p[MBR_ENTRY_STATUS], p[MBR_ENTRY_TYPE], le32(p + MBR_ENTRY_FIRST_LBA),
                        le32(p + MBR_ENTRY_SECTORS)))
        p += MBR_ENTRY_SIZE
    return entries


cdef bint _has_mbr_signature(sector) except -1:
    """A whole sector (or more: the disk's head) whose first sector ends in the boot
    signature 0x55 0xAA (as c_mbr.has_signature). Compared in place for ``bytes``: the
    table's first test on every disk (:func:`_may_hold_table`)."""
    if len(sector) < MBR_SECTOR_SIZE:
        return False
    if isinstance(sector, bytes):
        return memcmp(<const char*><bytes>sector + MBR_SIGNATURE_OFFSET,
                      <const char*>MBR_SIGNATURE_BYTES, len(MBR_SIGNATURE_BYTES)) == 0
    return sector[MBR_SIGNATURE_OFFSET:MBR_SIGNATURE_OFFSET
                  + len(MBR_SIGNATURE_BYTES)] == MBR_SIGNATURE_BYTES


def _is_volume_boot_record(sector):
    """Sector 0 is a filesystem's boot sector (FAT, NTFS, exFAT, BitLocker), not an MBR.

    An NTFS or FAT volume without a partition table also ends in 0x55AA; its
    BPB then reads as nonsense partition entries (sfdisk lists them; blkid
    does not). Recognised by the OEM name or the FAT type string.
    """
    if sector[0] not in VBR_JUMPS:
        return False
    if _field(sector, VBR_OEM_NAME) in VBR_OEM_IDS:
        return True
    return any(_field(sector, span).startswith(label) for span, label in VBR_FAT_TYPES)


def _field(sector, span):
    """The raw field at ``span`` = (offset, length) of ``sector``."""
    start, length = span
    return bytes(sector[start:start + length])


cdef dict _mbr_details(bytes sector, list entries):
    """The contract's ``mbr`` object of sector 0 (a whole sector: read_partition_table
    checked), its entries in one loop."""
    cdef bint protective = False, other = False
    cdef list used = []
    cdef Py_ssize_t i
    for i in range(MBR_ENTRY_COUNT):
        status, type_byte, first, count = entries[i]
        if type_byte and count:
            if type_byte == MBR_TYPE_GPT_PROTECTIVE:
                protective = True
            else:
                other = True
            used.append({"number": i + 1, "status": status, "type": MBR_TYPE_TEXT[type_byte],
                         "first_lba": first, "sectors": count})
    # the empty area (most data disks) told in place, without the copy of the area
    code = ("empty" if _all_zero(<const uint8_t*>sector, MBR_BOOT_CODE_SIZE)
            else _loader_of(sector[:MBR_BOOT_CODE_SIZE]))
    return {
        "disk_signature": f"{le32(<const uint8_t*>sector + MBR_DISK_SIGNATURE):08x}",
        "boot_code": code,
        "boot_code_name": BOOT_CODE_NAMES[code],
        "protective": protective,
        "hybrid": protective and other,
        "entries": used,
    }


def _report_boot_indicators(entries, findings):
    """A sector 0 that ends in 0x55AA but whose entries carry a boot indicator other
    than 0x00 or 0x80.

    Linux, libblkid and OpenStack's format_inspector read no partition table there
    (the last refuses the image), yet a BIOS or another reader may still take the
    entries: the disk's layout is unknown, and that is reported rather than read as
    "no partition table".
    """
    bad = [f"{i + 1} (0x{status:02x})" for i, (status, _, _, _) in enumerate(entries)
           if status not in MBR_BOOT_INDICATORS]
    entries_have = "entry {} has".format if len(bad) == 1 else "entries {} have".format
    findings.add("mbr", CORRUPT, "error",
                 f"sector 0 ends in 0x55AA but MBR partition {entries_have(', '.join(bad))} "
                 "a boot indicator other than 0x00 or 0x80: Linux and libblkid read no "
                 "partition table there, so the disk's partitions are unknown")


def _check_protective_mbr(entries, findings):
    """The protective MBR as UEFI 2.10 section 5.2.3 defines it: partition record 1 of
    type 0xEE starting at LBA 1, the other three records zero.

    A 0xEE record elsewhere or starting at another LBA, or other records beside it (a
    hybrid MBR, as ``sgdisk -h`` writes), makes a BIOS-era reader see partitions the
    GPT does not describe; OpenStack's format_inspector refuses such a disk. The GPT
    is still read.
    """
    used = [i for i, (_, type_byte, _, _) in enumerate(entries) if type_byte]
    for i in used:
        _, type_byte, first, _ = entries[i]
        if type_byte == MBR_TYPE_GPT_PROTECTIVE and first != GPT_PRIMARY_HEADER_LBA:
            findings.add("pmbr", CORRUPT, "warning",
                         f"protective MBR entry {i + 1} (type 0xEE) starts at LBA {first}, "
                         f"not at LBA {GPT_PRIMARY_HEADER_LBA} (UEFI 2.10 section 5.2.3)")
    if used != [0]:
        others = ", ".join(f"{i + 1} (type 0x{entries[i][1]:02x})" for i in used)
        findings.add("pmbr", CORRUPT, "warning",
                     f"the protective MBR uses entries {others}: UEFI 2.10 section 5.2.3 "
                     "allows entry 1 alone, of type 0xEE (a hybrid MBR shows BIOS-era "
                     "readers partitions the GPT does not bound)")


cdef object _mbr_partition(int number, int status, int type_byte, uint64_t base_lba,
                           uint64_t first, uint64_t count, int sector_size, bint logical):
    start_lba = base_lba + first
    return Partition(number, start_lba * sector_size, count * sector_size,
                     MBR_TYPE_TEXT[type_byte], mbr_type_name(type_byte),
                     status == MBR_STATUS_ACTIVE, start_lba, start_lba + count - 1, None, None,
                     None, logical)


def _read_ebr_chain(read, uint64_t disk_size, int sector_size, extended, findings):
    """The logical partitions of one extended partition, numbered 5, 6, ... in chain order.

    Each EBR's data entries are relative to the EBR itself, its link entry
    (the next EBR) to the start of the extended partition. The chain ends at
    an empty link, a sector without 0x55AA, a sector already visited (a
    loop) or limits.MBR_MAX_EBR_CHAIN links.
    """
    logical = []
    cdef uint64_t ext_lba = extended.first_lba
    cdef uint64_t ebr_lba = ext_lba
    cdef uint64_t ext_end = extended.last_lba + 1
    cdef uint64_t disk_sectors = disk_size // sector_size
    visited = set()
    while True:
        if ebr_lba in visited:
            findings.add("ebr", CORRUPT, "error",
                         f"MBR extended partition: the EBR chain loops back to LBA {ebr_lba}; "
                         f"followed {len(visited)} links")
            break
        if len(visited) >= limits.MBR_MAX_EBR_CHAIN:
            findings.add("ebr", RESOURCE_EXHAUSTION, "error",
                         f"MBR extended partition: the EBR chain is longer than "
                         f"limits.MBR_MAX_EBR_CHAIN={limits.MBR_MAX_EBR_CHAIN} links; "
                         f"the rest is not read")
            break
        visited.add(ebr_lba)
        if ebr_lba >= disk_sectors:
            findings.add("ebr", TRUNCATED, "warning",
                         f"MBR extended partition: EBR at LBA {ebr_lba} lies past the end "
                         f"of the disk")
            break
        sector = read(ebr_lba * sector_size, MBR_SECTOR_SIZE)
        if not _has_mbr_signature(sector):
            if ebr_lba != ext_lba or any(sector):
                findings.add("ebr", CORRUPT, "warning",
                             f"MBR extended partition: no 0x55AA signature in the EBR at "
                             f"LBA {ebr_lba}; the chain ends there")
            break
        next_lba = None
        for status, type_byte, first, count in _mbr_entries(bytes(sector)):
            if not type_byte or not count:
                continue
            if type_byte in MBR_EXTENDED_TYPES:
                if next_lba is None:
                    next_lba = ext_lba + first
                continue
            part = _mbr_partition(5 + len(logical), status, type_byte, ebr_lba, first, count,
                                  sector_size, True)
            if part.first_lba < ext_lba or part.last_lba >= ext_end:
                findings.add("range", CORRUPT, "warning",
                             f"logical partition {part.number} (LBA {part.first_lba}-"
                             f"{part.last_lba}) lies outside its extended partition "
                             f"(LBA {ext_lba}-{ext_end - 1})")
            logical.append(part)
        if next_lba is None:
            break
        ebr_lba = next_lba
    return logical


cdef list _read_mbr(read, uint64_t disk_size, list entries, int sector_size, findings):
    partitions = []
    extended = None
    for i, (status, type_byte, first, count) in enumerate(entries):
        if not type_byte or not count:
            continue
        part = _mbr_partition(i + 1, status, type_byte, 0, first, count, sector_size, False)
        partitions.append(part)
        if type_byte in MBR_EXTENDED_TYPES:
            if extended is None:
                extended = part
            else:
                findings.add("ebr", CORRUPT, "warning",
                             f"MBR has more than one extended partition; only partition "
                             f"{extended.number}'s logical partitions are read")
    if extended is not None:
        partitions.extend(_read_ebr_chain(read, disk_size, sector_size, extended, findings))
    return partitions


# --------------------------------------------------------------------------
# GPT
# --------------------------------------------------------------------------

def _gpt_header(raw, uint64_t lba, int sector_size, uint64_t disk_size):
    """Decode one GPT header sector; return (fields, problem or None).

    ``problem`` says why the header cannot be used: bad signature, size,
    CRC32, MyLBA, usable range, entry geometry beyond the limits, or an
    entry array off the disk.
    """
    if len(raw) < GPT_HEADER_MIN_SIZE or raw[:len(GPT_SIGNATURE)] != GPT_SIGNATURE:
        return None, "no 'EFI PART' signature"
    from .c_gpt import GPT_HEADER  # here: only a disk with a GPT unpacks its header
    h = GPT_HEADER.unpack(raw)
    del h["reserved"]
    rev = h["revision"]
    h["signature"] = GPT_SIGNATURE.decode()
    h["revision"] = f"{rev >> 16}.{rev & 0xFFFF}"
    cdef const uint8_t[::1] disk_guid = h["disk_guid"]  # 16 bytes, as GPT_HEADER declares
    h["disk_guid"] = ms_guid_text(&disk_guid[0])
    h["lba"] = lba
    size = h["header_size"]
    if size < GPT_HEADER_MIN_SIZE or size > sector_size:
        h["header_crc32_valid"] = False
        return h, f"header size {size} is outside {GPT_HEADER_MIN_SIZE}..{sector_size}"
    body = bytearray(raw[:size])
    body[GPT_HEADER.offset("header_crc32"):GPT_HEADER.end("header_crc32")] = b"\0\0\0\0"
    import zlib     # here: a disk with no GPT does not load it (`imgscan info` start-up)
    crc = zlib.crc32(body)
    h["header_crc32_valid"] = crc == h["header_crc32"]
    if not h["header_crc32_valid"]:
        return h, f"header CRC32 is {h['header_crc32']:#010x}, computed {crc:#010x}"
    if h["my_lba"] != lba:
        return h, f"MyLBA is {h['my_lba']}, but the header is at LBA {lba}"
    if h["first_usable_lba"] > h["last_usable_lba"]:
        return h, (f"first usable LBA {h['first_usable_lba']} is after the last usable LBA "
                   f"{h['last_usable_lba']}")
    esize = h["size_of_partition_entry"]
    count = h["number_of_partition_entries"]
    if esize < GPT_ENTRY_MIN_SIZE or esize > limits.GPT_MAX_ENTRY_SIZE or \
            esize & (esize - 1):
        return h, (f"partition entry size {esize} is not 128 * 2^n bytes within "
                   f"limits.GPT_MAX_ENTRY_SIZE={limits.GPT_MAX_ENTRY_SIZE}")
    if count * esize > limits.GPT_MAX_ENTRY_ARRAY_BYTES:
        return h, (f"{count} entries of {esize} bytes exceed "
                   f"limits.GPT_MAX_ENTRY_ARRAY_BYTES={limits.GPT_MAX_ENTRY_ARRAY_BYTES}")
    array_start = h["partition_entry_lba"] * sector_size
    if array_start + count * esize > disk_size:
        return h, (f"the partition entry array (LBA {h['partition_entry_lba']}, "
                   f"{count * esize} bytes) lies past the end of the disk")
    return h, None


@cython.boundscheck(False)
cdef list _used_entries(const uint8_t[::1] array, uint32_t count, uint32_t esize):
    """Indexes of the entries whose type GUID is not all zero (the used ones).

    The scan is a nogil loop over the whole array; only used entries become
    Python objects. ``array`` holds at least ``count * esize`` bytes
    (checked by the caller), so the pointer arithmetic stays inside it.
    """
    cdef uint32_t i, n = 0
    cdef const uint8_t* p
    cdef uint32_t* found
    if count == 0 or <uint64_t>array.shape[0] < <uint64_t>count * esize:
        return []
    found = <uint32_t*>malloc(count * sizeof(uint32_t))
    if found == NULL:
        raise MemoryError()
    try:
        with nogil:
            for i in range(count):
                p = &array[0] + <uint64_t>i * esize
                if le64(p + TYPE_GUID_OFFSET) | le64(p + TYPE_GUID_OFFSET + 8):
                    found[n] = i
                    n += 1
        return [found[i] for i in range(n)]
    finally:
        free(found)


def _gpt_entries(array, h, int sector_size):
    cdef uint32_t esize = h["size_of_partition_entry"]
    cdef const uint8_t[::1] view = array
    partitions = []
    cdef Py_ssize_t off
    for index in _used_entries(view, h["number_of_partition_entries"], esize):
        off = index * esize
        first = le64(&view[off + STARTING_LBA])
        last = le64(&view[off + ENDING_LBA])
        attributes = le64(&view[off + ATTRIBUTES])
        # the entry lies in the array (_used_entries), its GUIDs at their declared offsets
        type_guid = ms_guid_text(&view[off + TYPE_GUID_OFFSET])
        name = array[off + NAME_OFFSET:off + NAME_OFFSET + NAME_SIZE].decode(
            "utf-16-le", "replace").split("\x00", 1)[0]
        size = (last - first + 1) * sector_size if last >= first else 0
        partitions.append(Partition(
            index + 1, first * sector_size, size, type_guid, gpt_type_name(type_guid),
            bool(attributes & GPT_ATTR_LEGACY_BIOS_BOOTABLE), first, last,
            guid=ms_guid_text(&view[off + UNIQUE_GUID_OFFSET]),
            attributes=attributes, name=name))
    return partitions


def _gpt_copy(read, uint64_t lba, int sector_size, uint64_t disk_size, header_bytes=None):
    """One GPT copy (header + entry array): (header, problem, entry array bytes or None)."""
    if header_bytes is None:
        if (lba + 1) * sector_size > disk_size:
            return None, f"LBA {lba} lies past the end of the disk", None
        header_bytes = read(lba * sector_size, sector_size)
    h, problem = _gpt_header(header_bytes, lba, sector_size, disk_size)
    if problem is not None:
        return h, problem, None
    nbytes = h["number_of_partition_entries"] * h["size_of_partition_entry"]
    array = read(h["partition_entry_lba"] * sector_size, nbytes)
    import zlib     # (as in _gpt_header)
    crc = zlib.crc32(array)
    h["partition_entry_array_crc32_valid"] = crc == h["partition_entry_array_crc32"]
    if len(array) < nbytes:
        return h, "the partition entry array is cut short by the end of the disk", array
    if not h["partition_entry_array_crc32_valid"]:
        return h, (f"partition entry array CRC32 is {h['partition_entry_array_crc32']:#010x}, "
                   f"computed {crc:#010x}"), array
    return h, None, array


#: Header fields the primary and backup GPT must agree on (the rest differ by design).
GPT_SHARED_FIELDS = ("revision", "first_usable_lba", "last_usable_lba", "disk_guid",
                     "number_of_partition_entries", "size_of_partition_entry",
                     "partition_entry_array_crc32")


def _read_gpt(read, uint64_t disk_size, head, int sector_size, findings, announce=None):
    """Both GPT copies at ``sector_size``; None when neither has a signature.

    Returns (header used, partitions, details). The primary is used when its
    header and entry array check out, else the backup, else whichever header
    is sound with its entries as read (the CRC mismatch is then a finding).
    ``announce(partitions, ranges)``, when given and the primary is sound, is told its
    partitions and where the backup's header and entries lie by the spec's layout
    (the entries right before the header, as large as the primary's) before the backup
    is read: a remote disk fetches them with the partitions' first sectors, one round
    trip rather than two.
    """
    cdef uint64_t last_lba = disk_size // sector_size - 1
    primary_raw = head[sector_size:2 * sector_size]
    if len(primary_raw) < sector_size:
        primary_raw = read(sector_size, sector_size)
    p_hdr, p_problem, p_array = _gpt_copy(read, 1, sector_size, disk_size, primary_raw)
    backup_lba = last_lba
    if p_hdr is not None and p_problem is None and 1 < p_hdr["alternate_lba"] <= last_lba:
        backup_lba = p_hdr["alternate_lba"]
    if announce is not None and p_problem is None:
        # the primary's entry array was read whole, so its size is within the limits
        nbytes = p_hdr["number_of_partition_entries"] * p_hdr["size_of_partition_entry"]
        start = max(0, backup_lba * sector_size - nbytes)
        announce(_gpt_entries(p_array, p_hdr, sector_size),
                 [(start, (backup_lba + 1) * sector_size - start)])
    b_hdr, b_problem, b_array = _gpt_copy(read, backup_lba, sector_size, disk_size)
    if p_hdr is None and b_hdr is None:
        return None
    details = {"sector_size": sector_size, "primary": p_hdr, "backup": b_hdr,
               "primary_problem": p_problem, "backup_problem": b_problem, "used": None}
    chosen = None
    if p_problem is None:
        chosen = ("primary", p_hdr, p_array)
    elif b_problem is None:
        chosen = ("backup", b_hdr, b_array)
        findings.add("gpt", RESOURCE_EXHAUSTION if "limits." in p_problem else CORRUPT, "error",
                     f"primary GPT at LBA 1 is damaged ({p_problem}); "
                     f"using the backup at LBA {backup_lba}")
    else:
        for label, h, problem, array in (("primary", p_hdr, p_problem, p_array),
                                         ("backup", b_hdr, b_problem, b_array)):
            if array is not None:
                chosen = (label, h, array)
                findings.add("gpt", CORRUPT, "error",
                             f"{label} GPT: {problem}; no sound copy exists, so its entries "
                             f"are reported as read")
                break
        if chosen is None:
            over_limit = "limits." in p_problem or "limits." in b_problem
            findings.add("gpt", RESOURCE_EXHAUSTION if over_limit else CORRUPT, "error",
                         f"GPT unreadable: primary at LBA 1: {p_problem}; backup at LBA "
                         f"{backup_lba}: {b_problem}")
            return (None, [], details)
    if chosen[0] == "primary" and b_problem is not None:
        sev = "warning"
        what = "missing" if b_hdr is None or b_problem == "no 'EFI PART' signature" else "damaged"
        findings.add("gpt", CORRUPT if what == "damaged" else TRUNCATED, sev,
                     f"backup GPT header at LBA {backup_lba} is {what} ({b_problem})")
    if p_problem is None and p_hdr["alternate_lba"] != last_lba:
        findings.add("size", SIZE_MISMATCH, "info",
                     f"the GPT's backup header belongs at LBA {p_hdr['alternate_lba']}, but the "
                     f"disk's last LBA is {last_lba}: the disk was resized after partitioning, "
                     f"or this is a partial copy")
    if p_problem is None and b_problem is None:
        differ = [f for f in GPT_SHARED_FIELDS if p_hdr[f] != b_hdr[f]]
        if p_hdr["alternate_lba"] != b_hdr["my_lba"] or b_hdr["alternate_lba"] != 1:
            differ.append("my_lba/alternate_lba")
        if p_array != b_array:
            differ.append("partition entries")
        if differ:
            findings.add("gpt", FOOTER_MISMATCH, "warning",
                         f"primary and backup GPT disagree ({', '.join(differ)}); "
                         f"the primary is used, another reader may use the backup")
    label, h, array = chosen
    details["used"] = label
    return (h, _gpt_entries(array, h, sector_size), details)


def _check_gpt_partitions(partitions, h, int sector_size, findings):
    usable_first, usable_last = h["first_usable_lba"], h["last_usable_lba"]
    for p in partitions:
        if p.last_lba < p.first_lba:
            findings.add("range", CORRUPT, "warning",
                         f"GPT partition {p.number}: last LBA {p.last_lba} is before its "
                         f"first LBA {p.first_lba}")
        elif p.first_lba < usable_first or p.last_lba > usable_last:
            findings.add("range", CORRUPT, "warning",
                         f"GPT partition {p.number} (LBA {p.first_lba}-{p.last_lba}) lies "
                         f"outside the usable range (LBA {usable_first}-{usable_last})")


def _check_overlaps_and_disk(partitions, uint64_t disk_size, findings):
    """Partitions past the end of the disk, and overlapping volumes (logical ones nest in
    their extended partition, which is therefore left out)."""
    for p in partitions:
        if p.size and p.end > disk_size:
            findings.add("past-end", TRUNCATED, "warning",
                         f"partition {p.number} (bytes {p.start}-{p.end}) extends past the "
                         f"end of the disk ({disk_size} bytes)")
    if len(partitions) < 2:
        return  # nothing to overlap (a disk of one partition: no sort)
    volumes = sorted((p for p in partitions if p.size and not p.is_extended),
                     key=lambda p: (p.start, p.number))
    reach = None
    for p in volumes:
        if reach is not None and p.start < reach.end:
            findings.add("overlap", CORRUPT, "warning",
                         f"partitions {reach.number} and {p.number} overlap "
                         f"(bytes {p.start}-{min(p.end, reach.end)})")
        if reach is None or p.end > reach.end:
            reach = p


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------

#: Bytes read up front: LBA 0 plus LBA 1 at both probed sector sizes.
HEAD_BYTES = 2 * 4096
cdef bytes GPT_SIGNATURE_BYTES = GPT_SIGNATURE


cdef bint _may_hold_table(head) except -1:
    """Whether the disk's first bytes can hold any table :func:`read_partition_table`
    reads or reports: sector 0 ends in 0x55AA, or LBA 1 at a probed sector size holds
    ``EFI PART``. Checked in place before any Python object is made for the table: most
    disks of a library answer here (no table, or a whole-disk volume), and every other
    path of the reader needs one of the two."""
    if len(head) < MBR_SECTOR_SIZE:
        return False
    if not isinstance(head, bytes):
        return True  # the full reader copes with any buffer
    if _has_mbr_signature(head):
        return True
    for ss in GPT_SECTOR_SIZES:
        if _gpt_at(head, ss):
            return True
    return False


cdef bint _gpt_at(head, Py_ssize_t ss) except -1:
    """Whether LBA 1 of ``head`` at sector size ``ss`` holds ``EFI PART`` (compared in
    place for ``bytes``)."""
    if isinstance(head, bytes):
        return ss + len(GPT_SIGNATURE_BYTES) <= len(head) and memcmp(
            <const char*><bytes>head + ss, <const char*>GPT_SIGNATURE_BYTES,
            len(GPT_SIGNATURE_BYTES)) == 0
    return head[ss:ss + len(GPT_SIGNATURE_BYTES)] == GPT_SIGNATURE_BYTES


cdef list _gpt_signatures(head, tuple sizes):
    """The sector sizes of ``sizes`` at which LBA 1 of ``head`` holds ``EFI PART``."""
    return [size for size in sizes if _gpt_at(head, size)]


def read_partition_table(read, disk_size, path, sector_size=None, head=None, announce=None):
    """The partition table of a guest disk.

    ``read(offset, length)`` returns guest bytes (short at the end of the
    disk); ``disk_size`` is the virtual size; ``path`` names the image in
    messages. ``sector_size`` is the disk's logical sector size when the
    container states it (VHDX does): an MBR's LBAs are counted in it (else
    512), and a GPT is probed at it first (then at the other size). ``head``: the
    disk's first bytes (at least :data:`HEAD_BYTES`, or all of a smaller disk) when
    the caller read them already (for the whole-disk filesystem probe too).
    ``announce(partitions, ranges)``: told a sound primary GPT's partitions and the
    backup GPT's ranges before the backup is read (:func:`_read_gpt`).
    """
    head = read(0, HEAD_BYTES) if head is None else head[:HEAD_BYTES]
    mbr_ss = sector_size or MBR_SECTOR_SIZE
    if not _may_hold_table(head):
        return PartitionTable("none", mbr_ss, [], None, None, [])
    findings = _Findings()
    sector = bytes(head[:MBR_SECTOR_SIZE])  # whole (_may_hold_table)
    signed = _has_mbr_signature(sector)
    entries = _mbr_entries(sector)
    statuses_ok = True
    for e in entries:
        if e[0] not in MBR_BOOT_INDICATORS:
            statuses_ok = False
    vbr = signed and _is_volume_boot_record(sector)
    is_mbr = signed and statuses_ok and not vbr
    if signed and not statuses_ok and not vbr:
        _report_boot_indicators(entries, findings)
    mbr = _mbr_details(sector, entries) if is_mbr else None
    if mbr is not None and mbr["protective"]:
        _check_protective_mbr(entries, findings)
    # A stated sector size is probed first, not alone: qemu-img writes VHDX files that say 512
    # around 4Kn guest disks.
    gpt_sizes = (GPT_SECTOR_SIZES if sector_size is None or sector_size == GPT_SECTOR_SIZES[0]
                 else tuple(sorted(GPT_SECTOR_SIZES, key=lambda ss: ss != sector_size)))
    signatures = _gpt_signatures(head, gpt_sizes)

    if (mbr is not None and mbr["protective"]) or (mbr is None and signatures):
        for ss in (signatures or gpt_sizes):
            found = _read_gpt(read, disk_size, head, ss, findings, announce)
            if found is None:
                continue
            h, partitions, details = found
            if mbr is None:
                findings.add("gpt", CORRUPT, "warning",
                             "GPT without a protective MBR in sector 0 (0x55AA and a 0xEE "
                             "entry); Linux and libblkid ignore such a GPT")
            if h is not None:
                _check_gpt_partitions(partitions, h, ss, findings)
                _check_overlaps_and_disk(partitions, disk_size, findings)
            return PartitionTable("gpt", ss, partitions, mbr, details, findings.done())
        if mbr is None:
            return PartitionTable("none", mbr_ss, [], None, None, findings.done())
        findings.add("gpt", CORRUPT, "error",
                     "protective MBR (type 0xEE) but no GPT header at LBA 1 or at the last "
                     "LBA (512- or 4096-byte sectors): the disk's partitions are unknown")
    if mbr is None:
        return PartitionTable("none", mbr_ss, [], None, None, findings.done())
    partitions = _read_mbr(read, disk_size, entries, mbr_ss, findings)
    if not mbr["protective"] and signatures:
        h, problem = _gpt_header(head[signatures[0]:2 * signatures[0]], 1, signatures[0],
                                 disk_size)
        if problem is None:
            findings.add("gpt", CORRUPT, "warning",
                         "a GPT header remains at LBA 1 but the MBR has no 0xEE entry: the "
                         "MBR is used, as Linux and Windows do; the GPT is stale")
    _check_overlaps_and_disk(partitions, disk_size, findings)
    return PartitionTable("mbr", mbr_ss, partitions, mbr, None, findings.done())

"""FAT12/16/32 volumes, read-only and minimal: enough to fetch a file by path.

Spec: Microsoft "FAT: General Overview of On-Disk Format" (fatgen103):
the BPB fields, the cluster-count rule that decides FAT12/16/32, directory
entries of 32 bytes and long-name (LFN) entries. An EFI system partition is
FAT (UEFI 2.x, section 13.3), and the UEFI Windows boot store lives there
(``\\EFI\\Microsoft\\Boot\\BCD``), so this is all Windows inspection needs.

Hostile volumes are bounded: cluster numbers are checked against the FAT,
chains keep a visited set and stop at the volume's cluster count, a file is
read only up to its directory size and :data:`imgscan.limits.FAT_MAX_FILE_BYTES`.
Problems raise :class:`~imgscan.errors.CorruptImage` naming the volume, the
structure and the disk offset.
"""

from __future__ import annotations

import calendar
from operator import attrgetter

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage

from . import c_fat
from .c_fat import (
    ATTR_DIRECTORY,
    ATTR_LONG_NAME,
    ATTR_LONG_NAME_MASK,
    ATTR_VOLUME_ID,
    BOOT_SECTOR_SIZE,
    BPB,
    DIR_ENTRY,
    ENTRY_END,
    ENTRY_FREE,
    EXTENDED_BOOT_SIGNATURES,
    FAT_EPOCH_YEAR,
    FIRST_CLUSTER,
    LFN_ENTRY,
    LFN_LAST,
    LFN_NAME_FIELDS,
    NO_NAME,
    NT_RES_LOWER_BASE,
    NT_RES_LOWER_EXT,
    SHORT_NAME_E5,
    SHORT_NAME_LENGTH,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

#: Below this many clusters a volume is FAT12, below the next FAT16, else FAT32
#: (fatgen103's rule; the filesystem probe uses libblkid's slightly different one).
FAT12_MAX_CLUSTERS = 4085
FAT16_MAX_CLUSTERS = 65525
#: Bytes per sector fatgen103 allows.
SECTOR_SIZES = (512, 1024, 2048, 4096)
#: Per FAT width: the value a chain entry reads past the FAT, and the first end-of-chain mark.
FAT_PAST_END = {12: 0xFFF, 16: 0xFFFF, 32: c_fat.FAT32_CLUSTER_MASK}
END_OF_CHAIN = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}
ATTR_OFFSET = DIR_ENTRY.offset("attr")
#: An LFN entry's name parts (named tuple fields), in order.
LFN_NAME = attrgetter(*LFN_NAME_FIELDS)
#: 8.3 names are in the OEM code page; Linux's and mtools' default is 437.
OEM_CODEPAGE = "cp437"


#: The most of the FAT :meth:`FatVolume.lookup_announcement` announces: a 512 MiB ESP's
#: FAT32 of 4 KiB clusters (a constant, never a size the volume claims).
FAT_ANNOUNCE_BYTES = 512 * 1024


class FatEntry:
    """One short directory entry with the long name before it: ``name`` (the long name,
    else the 8.3 one), ``short`` (the 8.3 name), attributes, first cluster, size, the
    raw modification date and time, and ``offset``, the entry's volume offset."""

    __slots__ = ("attr", "first_cluster", "name", "offset", "short", "size", "wrt_date",
                 "wrt_time")

    def __init__(self, name: str, short: str, attr: int, first_cluster: int, size: int,
                 wrt_date: int, wrt_time: int, offset: int) -> None:
        self.name = name
        self.short = short
        self.attr = attr
        self.first_cluster = first_cluster
        self.size = size
        self.wrt_date = wrt_date
        self.wrt_time = wrt_time
        self.offset = offset

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & ATTR_DIRECTORY)

    @property
    def mtime(self) -> int | None:
        """The modification time in seconds since the epoch (the stored local time read
        as UTC, as Linux's ``tz=UTC`` mount does), None when it is no valid date."""
        return fat_time(self.wrt_date, self.wrt_time)


#: The days of each month (1 to 12) of a common year: calendar.monthrange, which also
#: computes the month's first weekday, was half of what a directory entry's stat cost
#: (a deep FAT path's walk stats every directory on it).
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def fat_time(date: int, time: int) -> int | None:
    """A FAT date and time as seconds since the epoch, None when not a valid date."""
    day, month, year = date & 0x1F, (date >> 5) & 0xF, FAT_EPOCH_YEAR + (date >> 9)
    hour, minute, second = time >> 11, (time >> 5) & 0x3F, (time & 0x1F) * 2
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59 or not 1 <= day <= (
            _MONTH_DAYS[month] + (month == 2 and calendar.isleap(year))):
        return None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def short_name(raw: bytes, nt_res: int) -> str:
    """The 8.3 name of an entry's 11 name bytes: ``BASE.EXT``, in lower case where
    ``nt_res`` says so."""
    if raw[0] == SHORT_NAME_E5:
        raw = bytes((ENTRY_FREE,)) + raw[1:]
    # One decode for both parts: the code page has one character per byte.
    text = raw[:SHORT_NAME_LENGTH].decode(OEM_CODEPAGE)
    base = text[:8].rstrip(" ")
    ext = text[8:].rstrip(" ")
    if nt_res & NT_RES_LOWER_BASE:
        base = base.lower()
    if nt_res & NT_RES_LOWER_EXT:
        ext = ext.lower()
    return base + ("." + ext if ext else "")


def short_name_checksum(raw: bytes) -> int:
    """fatgen103's checksum of an 11-byte 8.3 name, which its LFN entries carry."""
    s = 0
    for b in raw[:SHORT_NAME_LENGTH]:
        s = (((s & 1) << 7) + (s >> 1) + b) & 0xFF
    return s


class FatVolume:
    """A FAT volume at ``offset`` of the disk that ``read(offset, length)`` reads."""

    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int,
                 name: str = "FAT volume") -> None:
        self._read = read
        self.offset = offset
        self.size = size
        self.name = name
        bs = read(offset, BOOT_SECTOR_SIZE)
        if len(bs) < BOOT_SECTOR_SIZE or \
                bs[c_fat.BOOT_SIGNATURE_OFFSET:BOOT_SECTOR_SIZE] != c_fat.BOOT_SIGNATURE:
            raise self._corrupt("boot sector", c_fat.BOOT_SIGNATURE_OFFSET,
                                "no 0x55AA boot signature")
        self._boot = bs
        bpb = BPB.unpack(bs)
        self.sector_size = bpb["bytes_per_sector"]
        spc = bpb["sectors_per_cluster"]
        if self.sector_size not in SECTOR_SIZES or spc == 0 or spc & (spc - 1):
            raise self._corrupt("boot sector", BPB.offset("bytes_per_sector"),
                                f"bytes/sector {self.sector_size}, sectors/cluster {spc}")
        self.cluster_size: int = self.sector_size * spc
        reserved = bpb["reserved_sector_count"]
        fats = bpb["num_fats"]
        root_entries = bpb["root_entry_count"]
        total = bpb["total_sectors_16"] or bpb["total_sectors_32"]
        fat_size = bpb["fat_size_16"] or c_fat.FAT32_BOOT_SECTOR.field(bs, "fat_size_32")
        root_sectors = (root_entries * DIR_ENTRY.size + self.sector_size - 1) // self.sector_size
        self.fat_offset = reserved * self.sector_size
        self.data_offset: int = (reserved + fats * fat_size + root_sectors) * self.sector_size
        if fats == 0 or fat_size == 0 or total * self.sector_size > size \
                or self.data_offset >= total * self.sector_size:
            raise self._corrupt("boot sector", BPB.offset("reserved_sector_count"),
                                f"{fats} FATs of {fat_size} sectors, {total} sectors in all "
                                f"do not fit the {size}-byte volume")
        self.clusters = (total * self.sector_size - self.data_offset) // self.cluster_size
        if self.clusters < FAT12_MAX_CLUSTERS:
            self.bits = 12
        elif self.clusters < FAT16_MAX_CLUSTERS:
            self.bits = 16
        else:
            self.bits = 32
        self.fat_bytes = fat_size * self.sector_size
        self.root_cluster = (c_fat.FAT32_BOOT_SECTOR.field(bs, "root_cluster")
                             if self.bits == 32 else 0)
        self._root_dir_offset = (reserved + fats * fat_size) * self.sector_size
        self._root_dir_bytes = root_entries * DIR_ENTRY.size
        self._fat: bytes | None = None

    def lookup_announcement(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """``(ranges, near)`` in ``read``'s coordinates: what the first lookup by path
        reads next, the FAT (read whole at the first cluster chain; at most
        FAT_ANNOUNCE_BYTES announced) and the root directory's first cluster, whose
        neighbourhood holds the path's next directories on a volume written in order
        (an ESP's EFI, Microsoft and Boot directories). Announced with the NTFS volumes'
        lookup tables by the Windows inspection: one round trip for the BCD's path."""
        if self.bits == 32:
            root = (self.cluster_offset(self.root_cluster), self.cluster_size)
        else:
            root = (self._root_dir_offset, self._root_dir_bytes)
        return ([(self.offset + self.fat_offset, min(self.fat_bytes, FAT_ANNOUNCE_BYTES))],
                [(self.offset + root[0], root[1])])

    def _corrupt(self, structure: str, vol_offset: int, problem: str) -> CorruptImage:
        return CorruptImage(self.name, structure, self.offset + vol_offset, problem)

    # -- clusters ------------------------------------------------------------
    def _next(self, cluster: int) -> int:
        """The FAT entry of ``cluster``; past the FAT's end, the end-of-chain value."""
        if self._fat is None:
            self._fat = self._read(self.offset + self.fat_offset, self.fat_bytes)
        fat = self._fat
        width = 2 if self.bits == 12 else self.bits // 8
        pos = cluster + cluster // 2 if self.bits == 12 else cluster * width
        if pos + width > len(fat):
            return FAT_PAST_END[self.bits]
        v = int.from_bytes(fat[pos:pos + width], "little")
        if self.bits == 32:
            return v & c_fat.FAT32_CLUSTER_MASK
        if self.bits == 16:
            return v
        return v >> 4 if cluster & 1 else v & 0xFFF

    def chain(self, first: int, limit: int) -> list[int]:
        """The clusters of the chain starting at ``first`` that hold its first ``limit``
        bytes. A chain is followed at most once round: a cluster reached twice (a loop)
        or outside the data area is a :class:`CorruptImage`, so the walk is bounded by
        ``limit`` and by the volume's cluster count."""
        out: list[int] = []
        seen: set[int] = set()
        cluster = first
        end = END_OF_CHAIN[self.bits]
        wanted = -(-limit // self.cluster_size)
        while len(out) < wanted:
            if cluster < FIRST_CLUSTER or cluster >= FIRST_CLUSTER + self.clusters:
                if cluster >= end and out:
                    break
                raise self._corrupt("FAT chain", self.fat_offset,
                                    f"cluster {cluster} is outside 2..{self.clusters + 1}")
            if cluster in seen:
                raise self._corrupt("FAT chain", self.fat_offset,
                                    f"cluster {cluster} is reached twice: the chain loops")
            seen.add(cluster)
            out.append(cluster)
            cluster = self._next(cluster)
            if cluster >= end:
                break
        return out

    def cluster_offset(self, cluster: int) -> int:
        """The volume offset of data cluster ``cluster``."""
        return self.data_offset + (cluster - FIRST_CLUSTER) * self.cluster_size

    def _read_clusters(self, clusters: list[int]) -> bytes:
        """The bytes of ``clusters``, adjacent ones read at once."""
        out = bytearray()
        i = 0
        while i < len(clusters):
            j = i + 1
            while j < len(clusters) and clusters[j] == clusters[j - 1] + 1:
                j += 1
            out += self._read(self.offset + self.cluster_offset(clusters[i]),
                              (j - i) * self.cluster_size)
            i = j
        return bytes(out)

    def _chain(self, first: int, limit: int) -> bytes:
        """The bytes of the cluster chain starting at ``first``, at most ``limit``."""
        return self._read_clusters(self.chain(first, limit))[:limit]

    def read_range(self, first: int, size: int, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` of the ``size``-byte file whose chain starts at
        ``first`` (both within its size); only the clusters holding them are read."""
        end = min(size, offset + length)
        if offset >= end:
            return b""
        chain = self.chain(first, end)
        skip = offset // self.cluster_size
        data = self._read_clusters(chain[skip:])
        start = offset - skip * self.cluster_size
        got = data[start:start + end - offset]
        if len(got) < end - offset:
            raise self._corrupt("FAT chain", self.fat_offset,
                                f"the chain from cluster {first} holds {len(chain)} clusters, "
                                f"short of the file's {size} bytes")
        return got

    # -- directories -----------------------------------------------------------
    def directory(self, cluster: int | None) -> list[FatEntry]:
        """Every entry of a directory (the root when ``cluster`` is None or 0), ``.``
        and ``..`` included, deleted entries and the volume label left out. A long name
        is taken only where its checksum matches the short entry it precedes."""
        data, where = self._directory_bytes(cluster)
        count = len(data) // DIR_ENTRY.size
        out = []
        lfn: list[str] = []
        lfn_sum = -1
        pos = -DIR_ENTRY.size
        # Every slot read both ways at C level: which one applies depends on its attr.
        for e, long_entry in zip(DIR_ENTRY.records(data, count),
                                 LFN_ENTRY.records(data, count), strict=True):
            pos += DIR_ENTRY.size
            first_byte = data[pos]
            if first_byte == ENTRY_END:
                break
            if first_byte == ENTRY_FREE:
                lfn = []
                continue
            attr = e.attr
            if attr & ATTR_LONG_NAME_MASK == ATTR_LONG_NAME:
                if first_byte & LFN_LAST:
                    lfn, lfn_sum = [], long_entry.chksum
                elif long_entry.chksum != lfn_sum:
                    lfn = []
                    continue
                part = b"".join(LFN_NAME(long_entry)).decode("utf-16-le", "replace")
                lfn.insert(0, part.split("\0", 1)[0].rstrip("\uffff"))
                continue
            if attr & ATTR_VOLUME_ID:
                lfn = []
                continue
            raw = e.name + e.extension
            short = short_name(raw, e.nt_res)
            name = "".join(lfn) if lfn and lfn_sum == short_name_checksum(raw) else short
            lfn = []
            first = (e.fst_clus_hi << 16 if self.bits == 32 else 0) | e.fst_clus_lo
            if where is None:
                at = self._root_dir_offset + pos
            else:
                at = self.cluster_offset(where[pos // self.cluster_size]) \
                    + pos % self.cluster_size
            out.append(FatEntry(name, short, attr, first, e.file_size, e.wrt_date,
                                e.wrt_time, at))
        return out

    def _directory_bytes(self, cluster: int | None) -> tuple[bytes, list[int] | None]:
        """A directory's bytes, at most ``limits.FAT_MAX_DIRECTORY_BYTES`` (entries past it
        are not listed), and the clusters holding them (None for the FAT12/16 root, which
        lies in its own area)."""
        if (cluster is None or cluster == 0) and self.bits != 32:
            return self._read(self.offset + self._root_dir_offset, self._root_dir_bytes), None
        cap = limits.FAT_MAX_DIRECTORY_BYTES
        chain = self.chain(cluster or self.root_cluster, cap)
        return self._read_clusters(chain)[:cap], chain

    def entry_at(self, vol_offset: int) -> FatEntry:
        """The short directory entry at ``vol_offset`` (its names left empty)."""
        data = self._read(self.offset + vol_offset, DIR_ENTRY.size)
        if len(data) < DIR_ENTRY.size:
            raise TruncatedImage(self.name, "FAT directory entry", self.offset + vol_offset,
                                 "the volume ends inside the entry")
        e = DIR_ENTRY.unpack(data)
        first = (e["fst_clus_hi"] << 16 if self.bits == 32 else 0) | e["fst_clus_lo"]
        return FatEntry("", "", e["attr"], first, e["file_size"], e["wrt_date"],
                        e["wrt_time"], vol_offset)

    def _entries(self, cluster: int | None) -> list[tuple[str, int, int, int]]:
        """(long or short name, attributes, first cluster, size) of a directory."""
        return [(e.name, e.attr, e.first_cluster, e.size) for e in self.directory(cluster)]

    # -- volume facts ----------------------------------------------------------
    @property
    def fat_type(self) -> str:
        """``FAT12``, ``FAT16`` or ``FAT32``."""
        return f"FAT{self.bits}"

    @property
    def serial(self) -> str | None:
        """The volume serial as blkid prints it (``XXXX-XXXX``), None without an
        extended BPB."""
        tail = c_fat.FAT32_BOOT_SECTOR if self.bits == 32 else c_fat.FAT16_BOOT_SECTOR
        fields = tail.unpack(self._boot)
        if fields["boot_signature"] not in EXTENDED_BOOT_SIGNATURES:
            return None
        s = fields["volume_id"]
        return f"{s[3]:02X}{s[2]:02X}-{s[1]:02X}{s[0]:02X}"

    @property
    def label(self) -> str | None:
        """The volume label: the root directory's label entry, else the extended BPB's
        (``NO NAME`` is none), as blkid takes it."""
        raw = self._root_label()
        if raw is None:
            tail = c_fat.FAT32_BOOT_SECTOR if self.bits == 32 else c_fat.FAT16_BOOT_SECTOR
            fields = tail.unpack(self._boot)
            if fields["boot_signature"] in EXTENDED_BOOT_SIGNATURES:
                raw = fields["volume_label"]
        if raw is None or raw == NO_NAME:
            return None
        return raw.decode("cp437").rstrip(" ") or None

    def _root_label(self) -> bytes | None:
        data, _ = self._directory_bytes(None)
        for pos in range(0, len(data) - DIR_ENTRY.size + 1, DIR_ENTRY.size):
            if data[pos] == ENTRY_END:
                break
            attr = data[pos + ATTR_OFFSET]
            if data[pos] != ENTRY_FREE and attr & ATTR_LONG_NAME_MASK != ATTR_LONG_NAME \
                    and attr & ATTR_VOLUME_ID:
                return bytes(data[pos:pos + SHORT_NAME_LENGTH])
        return None

    def _find(self, path: str) -> tuple[str, int, int, int] | None:
        parts = [p for p in path.replace("/", "\\").split("\\") if p]
        cluster: int | None = None
        found: tuple[str, int, int, int] | None = ("\\", ATTR_DIRECTORY, 0, 0)
        for i, part in enumerate(parts):
            want = part.casefold()
            found = next((e for e in self._entries(cluster) if e[0].casefold() == want), None)
            if found is None:
                return None
            if i < len(parts) - 1:
                if not found[1] & ATTR_DIRECTORY:
                    return None
                cluster = found[2]
        return found

    def exists(self, path: str) -> bool:
        return self._find(path) is not None

    def is_file(self, path: str) -> bool:
        e = self._find(path)
        return e is not None and not e[1] & ATTR_DIRECTORY

    def read_file(self, path: str) -> bytes | None:
        """The content of the file at ``path`` (case-insensitive), None if there is none."""
        e = self._find(path)
        if e is None or e[1] & ATTR_DIRECTORY:
            return None
        limits.enforce(e[3], "FAT_MAX_FILE_BYTES", self.name, f"file {path!r}", None,
                       "file size in bytes")
        return self._chain(e[2], e[3]) if e[3] else b""

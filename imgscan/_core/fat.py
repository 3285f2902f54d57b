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

from imgscan import limits
from imgscan.errors import CorruptImage

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
    FIRST_CLUSTER,
    LFN_ENTRY,
    LFN_LAST,
    LFN_NAME_FIELDS,
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
        bpb = BPB.unpack(bs)
        self.sector_size = bpb["bytes_per_sector"]
        spc = bpb["sectors_per_cluster"]
        if self.sector_size not in SECTOR_SIZES or spc == 0 or spc & (spc - 1):
            raise self._corrupt("boot sector", BPB.offset("bytes_per_sector"),
                                f"bytes/sector {self.sector_size}, sectors/cluster {spc}")
        self.cluster_size = self.sector_size * spc
        reserved = bpb["reserved_sector_count"]
        fats = bpb["num_fats"]
        root_entries = bpb["root_entry_count"]
        total = bpb["total_sectors_16"] or bpb["total_sectors_32"]
        fat_size = bpb["fat_size_16"] or c_fat.FAT32_BOOT_SECTOR.field(bs, "fat_size_32")
        root_sectors = (root_entries * DIR_ENTRY.size + self.sector_size - 1) // self.sector_size
        self.fat_offset = reserved * self.sector_size
        self.data_offset = (reserved + fats * fat_size + root_sectors) * self.sector_size
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

    def _chain(self, first: int, limit: int) -> bytes:
        """The bytes of the cluster chain starting at ``first``, at most ``limit``."""
        out = bytearray()
        seen: set[int] = set()
        cluster = first
        end = END_OF_CHAIN[self.bits]
        while len(out) < limit:
            if cluster < FIRST_CLUSTER or cluster >= FIRST_CLUSTER + self.clusters:
                if cluster >= end and out:
                    break
                raise self._corrupt("FAT chain", self.fat_offset,
                                    f"cluster {cluster} is outside 2..{self.clusters + 1}")
            if cluster in seen:
                raise self._corrupt("FAT chain", self.fat_offset,
                                    f"cluster {cluster} is reached twice: the chain loops")
            seen.add(cluster)
            pos = self.data_offset + (cluster - FIRST_CLUSTER) * self.cluster_size
            out += self._read(self.offset + pos, self.cluster_size)
            cluster = self._next(cluster)
            if cluster >= end:
                break
        return bytes(out[:limit])

    # -- directories -----------------------------------------------------------
    def _entries(self, cluster: int | None) -> list[tuple[str, int, int, int]]:
        """(long or short name, attributes, first cluster, size) of a directory."""
        if cluster is None or cluster == 0:
            if self.bits == 32:
                data = self._chain(self.root_cluster, limits.FAT_MAX_DIRECTORY_BYTES)
            else:
                data = self._read(self.offset + self._root_dir_offset, self._root_dir_bytes)
        else:
            data = self._chain(cluster, limits.FAT_MAX_DIRECTORY_BYTES)
        out = []
        lfn: list[str] = []
        for pos in range(0, len(data) - DIR_ENTRY.size + 1, DIR_ENTRY.size):
            e = DIR_ENTRY.unpack(data, pos)
            first_byte = data[pos]
            if first_byte == ENTRY_END:
                break
            if first_byte == ENTRY_FREE:
                lfn = []
                continue
            attr = e["attr"]
            if attr & ATTR_LONG_NAME_MASK == ATTR_LONG_NAME:
                if first_byte & LFN_LAST:
                    lfn = []
                long_entry = LFN_ENTRY.unpack(data, pos)
                part = b"".join(long_entry[f] for f in LFN_NAME_FIELDS).decode(
                    "utf-16-le", "replace")
                lfn.insert(0, part.split("\0", 1)[0].rstrip("\uffff"))
                continue
            if attr & ATTR_VOLUME_ID:
                lfn = []
                continue
            if lfn:
                name = "".join(lfn)
            else:
                base = e["name"].decode("latin-1").rstrip()
                ext = e["extension"].decode("latin-1").rstrip()
                name = base + ("." + ext if ext else "")
            lfn = []
            first = (e["fst_clus_hi"] << 16 if self.bits == 32 else 0) | e["fst_clus_lo"]
            out.append((name, attr, first, e["file_size"]))
        return out

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

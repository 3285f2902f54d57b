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
from imgscan.errors import CorruptImage, LimitExceeded

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# -- BIOS parameter block (fatgen103 "Boot Sector and BPB") ------------------
BPB_BYTES_PER_SECTOR = 11
BPB_SECTORS_PER_CLUSTER = 13
BPB_RESERVED_SECTORS = 14
BPB_NUM_FATS = 16
BPB_ROOT_ENTRIES = 17
BPB_TOTAL_SECTORS_16 = 19
BPB_FAT_SIZE_16 = 22
BPB_TOTAL_SECTORS_32 = 32
BPB_FAT_SIZE_32 = 36
BPB_ROOT_CLUSTER = 44
#: Below this many clusters a volume is FAT12, below the next FAT16, else FAT32.
FAT12_MAX_CLUSTERS = 4085
FAT16_MAX_CLUSTERS = 65525
FIRST_CLUSTER = 2

# -- directory entries ---------------------------------------------------------
DIR_ENTRY_SIZE = 32
DIR_ATTR = 11
DIR_CLUSTER_HI = 20
DIR_CLUSTER_LO = 26
DIR_FILE_SIZE = 28
ATTR_VOLUME_ID = 0x08
ATTR_DIRECTORY = 0x10
ATTR_LONG_NAME = 0x0F
ENTRY_FREE = 0xE5
ENTRY_END = 0x00
#: LFN entry: sequence number, then 5 + 6 + 2 UTF-16 units at these offsets.
LFN_LAST = 0x40
LFN_PARTS = ((1, 11), (14, 26), (28, 32))


class FatVolume:
    """A FAT volume at ``offset`` of the disk that ``read(offset, length)`` reads."""

    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int,
                 name: str = "FAT volume") -> None:
        self._read = read
        self.offset = offset
        self.size = size
        self.name = name
        bs = read(offset, 512)
        if len(bs) < 512 or bs[510:512] != b"\x55\xaa":
            raise self._corrupt("boot sector", 510, "no 0x55AA boot signature")
        le = int.from_bytes
        self.sector_size = le(bs[11:13], "little")
        spc = bs[BPB_SECTORS_PER_CLUSTER]
        if self.sector_size not in (512, 1024, 2048, 4096) or spc == 0 or spc & (spc - 1):
            raise self._corrupt("boot sector", BPB_BYTES_PER_SECTOR,
                                f"bytes/sector {self.sector_size}, sectors/cluster {spc}")
        self.cluster_size = self.sector_size * spc
        reserved = le(bs[14:16], "little")
        fats = bs[BPB_NUM_FATS]
        root_entries = le(bs[17:19], "little")
        total = le(bs[19:21], "little") or le(bs[32:36], "little")
        fat_size = le(bs[22:24], "little") or le(bs[36:40], "little")
        root_sectors = (root_entries * DIR_ENTRY_SIZE + self.sector_size - 1) // self.sector_size
        self.fat_offset = reserved * self.sector_size
        self.data_offset = (reserved + fats * fat_size + root_sectors) * self.sector_size
        if fats == 0 or fat_size == 0 or total * self.sector_size > size \
                or self.data_offset >= total * self.sector_size:
            raise self._corrupt("boot sector", BPB_RESERVED_SECTORS,
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
        self.root_cluster = le(bs[44:48], "little") if self.bits == 32 else 0
        self._root_dir_offset = (reserved + fats * fat_size) * self.sector_size
        self._root_dir_bytes = root_entries * DIR_ENTRY_SIZE
        self._fat: bytes | None = None

    def _corrupt(self, structure: str, vol_offset: int, problem: str) -> CorruptImage:
        return CorruptImage(self.name, structure, self.offset + vol_offset, problem)

    # -- clusters ------------------------------------------------------------
    def _next(self, cluster: int) -> int:
        if self._fat is None:
            self._fat = self._read(self.offset + self.fat_offset, self.fat_bytes)
        fat = self._fat
        if self.bits == 32:
            pos = cluster * 4
            return int.from_bytes(fat[pos:pos + 4], "little") & 0x0FFFFFFF \
                if pos + 4 <= len(fat) else 0x0FFFFFFF
        if self.bits == 16:
            pos = cluster * 2
            return int.from_bytes(fat[pos:pos + 2], "little") if pos + 2 <= len(fat) else 0xFFFF
        pos = cluster + cluster // 2
        if pos + 2 > len(fat):
            return 0xFFF
        v = int.from_bytes(fat[pos:pos + 2], "little")
        return v >> 4 if cluster & 1 else v & 0xFFF

    def _chain(self, first: int, limit: int) -> bytes:
        """The bytes of the cluster chain starting at ``first``, at most ``limit``."""
        out = bytearray()
        seen: set[int] = set()
        cluster = first
        end = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[self.bits]
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
        for pos in range(0, len(data) - DIR_ENTRY_SIZE + 1, DIR_ENTRY_SIZE):
            e = data[pos:pos + DIR_ENTRY_SIZE]
            if e[0] == ENTRY_END:
                break
            if e[0] == ENTRY_FREE:
                lfn = []
                continue
            attr = e[DIR_ATTR]
            if attr & 0x3F == ATTR_LONG_NAME:
                if e[0] & LFN_LAST:
                    lfn = []
                part = b"".join(e[a:b] for a, b in LFN_PARTS).decode("utf-16-le", "replace")
                lfn.insert(0, part.split("\0", 1)[0].rstrip("\uffff"))
                continue
            if attr & ATTR_VOLUME_ID:
                lfn = []
                continue
            if lfn:
                name = "".join(lfn)
            else:
                base = e[0:8].decode("latin-1").rstrip()
                ext = e[8:11].decode("latin-1").rstrip()
                name = base + ("." + ext if ext else "")
            lfn = []
            first = (int.from_bytes(e[DIR_CLUSTER_HI:DIR_CLUSTER_HI + 2], "little") << 16
                     if self.bits == 32 else 0) | int.from_bytes(e[26:28], "little")
            out.append((name, attr, first, int.from_bytes(e[28:32], "little")))
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
        if e[3] > limits.FAT_MAX_FILE_BYTES:
            raise LimitExceeded(self.name, f"file {path!r}", None,
                                f"{e[3]} bytes exceed limits.FAT_MAX_FILE_BYTES")
        return self._chain(e[2], e[3]) if e[3] else b""

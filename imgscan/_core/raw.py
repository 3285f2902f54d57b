"""Raw images: the file is the disk, byte for byte.

Raw is the fallback when no container signature matches. The extent map
follows the host file's holes (``SEEK_HOLE``), as qemu's file driver does, so
a sparse raw file maps as data where the filesystem stored blocks and zero
elsewhere.
"""

from __future__ import annotations

from imgscan.findings import TRUNCATED

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

#: qemu counts disks in 512-byte sectors; a partial last sector reads as zeros.
SECTOR = 512


def map_host_range(emap: ExtentMap, source: Source, guest_start: int, host_start: int,
                   length: int, file: int = 0) -> None:
    """Append a host range stored verbatim (raw, fixed VHD), split at its holes.

    ``file`` is the map's index of ``source`` (0: the image itself).
    """
    covered = 0
    for host, run, is_data in source.data_runs(host_start, host_start + length):
        emap._append(guest_start + host - host_start, run, "data" if is_data else "zero", host,
                     file)
        covered = host + run - host_start
    if covered < length:
        # Past the end of the file: qemu reads it as zeros.
        emap._append(guest_start + covered, length - covered, "zero")


class RawImage(Container):
    """The whole file as the disk, its size rounded up to a whole sector as qemu does."""

    format = "raw"

    def __init__(self, source: Source) -> None:
        super().__init__(source, -(-source.size // SECTOR) * SECTOR)
        if source.size == 0:
            # qemu opens an empty file as a 0-byte raw disk; there is nothing to import,
            # and a zero-length upload is how a failed copy usually looks.
            self.add_finding(TRUNCATED, "error",
                             "the file is empty (0 bytes): no container header and no disk")

    def build_extent_map(self) -> ExtentMap:
        emap = ExtentMap(self.virtual_size)
        map_host_range(emap, self.source, 0, 0, self.virtual_size)
        return emap


def probe(source: Source) -> bool:
    return True


FORMAT = Format("raw", probe, RawImage)

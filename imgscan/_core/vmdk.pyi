from typing import Any

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

SECTOR_SIZE: int
SPARSE_MAGIC: bytes
SPARSE_HEADER_SIZE: int
COWD_MAGIC: bytes
GD_AT_END: int
DESCRIPTOR_SIGNATURE: bytes

class SparseHeader:
    kind: str
    version: int
    flags: int
    capacity: int
    grain: int
    gtes: int
    gd_offset: int
    gd_entries: int
    compressed: bool
    markers: bool
    zeroed_gte: bool
    def as_dict(self) -> dict[str, Any]: ...

def read_sparse_header(container: Container, src: Source, label: str) -> SparseHeader: ...
def walk_sparse(container: Container, emap: ExtentMap, src: Source, h: SparseHeader,
                guest_base: int, length: int, file: int, label: str) -> None: ...

class VmdkImage(Container):
    details: dict[str, Any]
    map_reads_external: bool
    def __init__(self, source: Source) -> None: ...
    def build_extent_map(self) -> ExtentMap: ...
    def external_files(self) -> list[str]: ...
    def decompress(self, host: int, stored_length: int) -> bytes: ...

def probe(source: Source) -> bool: ...

FORMAT: Format

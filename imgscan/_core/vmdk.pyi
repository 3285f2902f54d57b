from typing import Any

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

SECTOR_SIZE: int
SPARSE_MAGIC: bytes
COWD_MAGIC: bytes
DESCRIPTOR_SIGNATURE: bytes

class VmdkImage(Container):
    details: dict[str, Any]
    map_reads_external: bool
    def __init__(self, source: Source) -> None: ...
    def build_extent_map(self) -> ExtentMap: ...
    def external_files(self) -> list[str]: ...
    def decompress(self, host: int, stored_length: int) -> bytes: ...

def probe(source: Source) -> bool: ...

FORMAT: Format

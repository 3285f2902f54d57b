from typing import Any

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

PRE_TEXT_SIZE: int
PRE_SIGNATURE: int
PRE_VERSION: int
PRE_HEADER_SIZE: int
VDI_SIGNATURE: int
VDI_VERSION_1_1: int
KNOWN_TEXTS: tuple[bytes, ...]
HEADER1_END: int
HEADER1_SIZE: int
HEADER1PLUS_SIZE: int
SUBFORMATS: dict[int, str]
SECTOR_SIZE: int
DEFAULT_BLOCK_SIZE: int
BMAP_ENTRY_SIZE: int
VDI_UNALLOCATED: int
VDI_DISCARDED: int

class VdiImage(Container):
    details: dict[str, Any]
    def __init__(self, source: Source) -> None: ...
    def build_extent_map(self) -> ExtentMap: ...

def probe(source: Source) -> bool: ...

FORMAT: Format

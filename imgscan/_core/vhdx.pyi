from typing import Any

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

FILE_ID_SIGNATURE: bytes
HEADER_OFFSETS: tuple[int, int]
HEADER_SIZE: int
REGION_TABLE_OFFSETS: tuple[int, int]
REGION_TABLE_SIZE: int
METADATA_TABLE_SIZE: int
BAT_REGION_GUID: bytes
METADATA_REGION_GUID: bytes

class VhdxImage(Container):
    details: dict[str, Any]
    def __init__(self, source: Source) -> None: ...
    def build_extent_map(self) -> ExtentMap: ...

def probe(source: Source) -> bool: ...

FORMAT: Format

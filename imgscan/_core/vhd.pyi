from typing import Any

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

SECTOR_SIZE: int
FOOTER_SIZE: int
FOOTER_SIZE_OLD: int
FOOTER_COOKIE: bytes
DYNAMIC_HEADER_SIZE: int
DYNAMIC_HEADER_COOKIE: bytes
CURRENT_SIZE_CREATORS: tuple[bytes, ...]

def vhd_checksum(data: bytes | bytearray | memoryview, checksum_offset: int) -> int: ...
def vhd_timestamp(seconds: int) -> str: ...

class VhdImage(Container):
    details: dict[str, Any]
    def __init__(self, source: Source) -> None: ...
    def build_extent_map(self) -> ExtentMap: ...

def probe(source: Source) -> bool: ...

FORMAT: Format

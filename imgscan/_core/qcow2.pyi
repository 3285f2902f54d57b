from typing import Any

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

CRYPT_NAMES: dict[int, str]
COMPRESSION_NAMES: dict[int, str]
FEATURE_KINDS: tuple[str, ...]

class Qcow2Image(Container):
    def __init__(self, source: Source) -> None: ...
    def build_extent_map(self) -> ExtentMap: ...
    def external_files(self) -> list[str]: ...
    def decompress(self, host: int, stored_length: int) -> bytes: ...
    details: dict[str, Any]

def probe(source: Source) -> bool: ...

FORMAT: Format

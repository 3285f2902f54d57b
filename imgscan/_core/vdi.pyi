from typing import Any

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

class VdiImage(Container):
    details: dict[str, Any]
    def __init__(self, source: Source) -> None: ...
    def build_extent_map(self) -> ExtentMap: ...

def probe(source: Source) -> bool: ...

FORMAT: Format

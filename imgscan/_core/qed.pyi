from .container import Container, Format
from .extents import ExtentMap
from .source import Source

class QedImage(Container):
    cluster_size: int
    table_size: int
    header_size: int
    l1_table_offset: int
    table_entries: int
    l1_size: int
    def __init__(self, source: Source) -> None: ...
    def build_extent_map(self) -> ExtentMap: ...

def probe(source: Source) -> bool: ...

FORMAT: Format

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

class QcowImage(Container):
    cluster_size: int
    cluster_bits: int
    l2_bits: int
    l1_size: int
    l1_table_offset: int
    def __init__(self, source: Source) -> None: ...
    def build_extent_map(self) -> ExtentMap: ...
    def decompress(self, host: int, stored_length: int) -> bytes: ...

def probe(source: Source) -> bool: ...

FORMAT: Format

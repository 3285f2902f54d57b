import struct

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

QED_MAGIC: bytes
QED_HEADER: struct.Struct
QED_HEADER_SIZE: int
OFF_CLUSTER_SIZE: int
OFF_TABLE_SIZE: int
OFF_HEADER_SIZE: int
OFF_FEATURES: int
OFF_COMPAT_FEATURES: int
OFF_AUTOCLEAR_FEATURES: int
OFF_L1_TABLE_OFFSET: int
OFF_IMAGE_SIZE: int
OFF_BACKING_FILENAME_OFFSET: int
OFF_BACKING_FILENAME_SIZE: int
QED_F_BACKING_FILE: int
QED_F_NEED_CHECK: int
QED_F_BACKING_FORMAT_NO_PROBE: int
QED_FEATURE_MASK: int
QED_COMPAT_FEATURE_MASK: int
QED_AUTOCLEAR_FEATURE_MASK: int
SECTOR_SIZE: int
QED_ENTRY_SIZE: int
QED_CLUSTER_UNALLOCATED: int
QED_CLUSTER_ZERO: int

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

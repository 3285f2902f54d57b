import struct

from .container import Container, Format
from .extents import ExtentMap
from .source import Source

QCOW_MAGIC: bytes
QCOW_VERSION: int
QCOW_HEADER: struct.Struct
QCOW_HEADER_SIZE: int
QCOW_VERSION_FIELD: bytes
OFF_VERSION: int
OFF_SIZE: int
OFF_CLUSTER_BITS: int
OFF_L2_BITS: int
OFF_CRYPT_METHOD: int
QCOW_ENTRY_SIZE: int
QCOW_CRYPT_NONE: int
QCOW_CRYPT_AES: int
DEFLATE_WBITS: int

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

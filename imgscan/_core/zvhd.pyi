from typing import Any

from .container import Container, Format
from .source import Source

HEADER_BLOCK_SIZE: int
STRUCT_SIZE: int
ZVHD_COOKIE: bytes
ZVHD2_COOKIE: bytes
H_COOKIE: int
H_FEATURES: int
H_FF_VERSION: int
H_DATA_OFFSET: int
H_TIMESTAMP: int
H_CRTR_APP: int
H_CRTR_VER: int
H_CRTR_OS: int
H_ORIG_SIZE: int
H_CURR_SIZE: int
H_GEOMETRY: int
H_TYPE: int
H_CHECKSUM: int
H_UUID: int
H_SAVED: int
H_HIDDEN: int
H_ALIGN_64: int
H_ZVHD2_VERSION: int
H_BLOCK_SIZE: int
H_MAX_BLK_NUM: int
H_INDEX_LBA: int
H_BITMAP_LBA: int
H_INDEX_SIZE: int
H_BITMAP_SIZE: int
H_INDEX_SEG_SIZE: int
H_BITMAP_SEG_SIZE: int
H_INDEX_SEG_NUM: int
H_BITMAP_SEG_NUM: int
H_NON_ZERO_BLK_NUM: int
H_INDEX_CONTAINS_ZERO_BLK: int
H_COMPRESS_METHOD: int
COMPRESS_ZLIB: int
COMPRESS_ZSTD: int
COMPRESS_NAMES: dict[int, str]
ZVHD2_VERSION_INDEXED: int
FEATURES_RESERVED: int
FF_VERSION: int
CRTR_VER_NEW: int
CRTR_VER_OLD: int
TAP_HIDDEN_QUIRK_VERSIONS: tuple[int, ...]
GUEST_BLOCK_SIZE: int
RECORD_HEADER_SIZE: int
RECORD_PREFIX: bytes
R_SIZE: int
R_CURR_BLK: int
R_COMPRESSED: int
R_ORIG_SIZE: int
RECORD_END: bytes
RECORD_ALIGN: int
INDEX_ENTRY_SIZE: int
IE_BLK_OFFSET: int
IE_BLK_NUM: int
IE_BLK_DISK_SIZE: int
INDEX_SEG_SIZE: int
BLOCKS_PER_SEG: int
BITMAP_SEG_SIZE: int
ZLIB_WBITS: int

def header_checksum(data: bytes | bytearray | memoryview) -> int: ...

class ZvhdImage(Container):
    details: dict[str, Any]
    def __init__(self, source: Source) -> None: ...
    def decompress(self, host: int, stored_length: int) -> bytes: ...

class Zvhd2Image(Container):
    details: dict[str, Any]
    def __init__(self, source: Source) -> None: ...
    def decompress(self, host: int, stored_length: int) -> bytes: ...

def probe_zvhd(source: Source) -> bool: ...
def probe_zvhd2(source: Source) -> bool: ...

FORMAT: Format
FORMAT2: Format
FORMATS: tuple[Format, Format]

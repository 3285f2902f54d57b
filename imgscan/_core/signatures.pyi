from collections.abc import Iterable

from .source import Source

PEEK_HEAD: int
PEEK_TAIL: int
MBR_SECTOR: int
MBR_SIGNATURE_AT: int
TAR_MAGIC_OFFSET: int
TAR_MAGIC_USTAR: bytes

class Peek:
    source: Source
    size: int
    head: bytes
    tail: bytes
    tail_start: int
    found: int
    def __init__(self, source: Source) -> None: ...

class SignatureTable:
    def __init__(self, rows: Iterable[tuple[int, int, tuple[bytes, ...]]
                                      | tuple[int, int, tuple[bytes, ...], bool]]) -> None: ...
    def read(self, source: Source) -> Peek: ...
    def match(self, peek: Peek) -> int: ...

def mbr_partitions(sector: bytes | bytearray | memoryview) -> int: ...

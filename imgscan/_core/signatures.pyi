from collections.abc import Callable, Iterable
from typing import TypeVar

from .source import Source

PEEK_HEAD: int
PEEK_TAIL: int
MBR_SECTOR: int
MBR_SIGNATURE_AT: int
TAR_MAGIC_OFFSET: int
TAR_MAGIC_USTAR: bytes

T = TypeVar("T")

class Peek:
    source: Source
    size: int
    head: bytes
    tail: bytes
    tail_start: int
    found: int
    unread: int
    def __init__(self, source: Source) -> None: ...

class SignatureTable:
    def __init__(self, rows: Iterable[tuple[int, int, tuple[bytes, ...]]
                                      | tuple[int, int, tuple[bytes, ...], bool]]) -> None: ...
    def read(self, source: Source, defer: int = 0) -> Peek: ...
    def read_far_after(self, peek: Peek, open: Callable[[Source], T]) -> T: ...
    def read_far(self, peek: Peek) -> None: ...

def mbr_partitions(sector: bytes | bytearray | memoryview) -> int: ...

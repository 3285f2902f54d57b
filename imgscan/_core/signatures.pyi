from collections.abc import Iterable

from .source import Source

PEEK_HEAD: int
PEEK_TAIL: int

class Peek:
    source: Source
    size: int
    head: bytes
    tail: bytes
    tail_start: int
    def __init__(self, source: Source) -> None: ...

class SignatureTable:
    def __init__(self, rows: Iterable[tuple[int, int, tuple[bytes, ...]]]) -> None: ...
    def match(self, peek: Peek) -> int: ...

from collections.abc import Iterable
from typing import Protocol

from .source import Source

class Reader(Protocol):
    url: str
    size: int
    round_trips: int
    requests: int
    def read(self, offset: int, length: int, structure: str) -> bytes: ...
    def prefetch(
        self, ranges: Iterable[tuple[int, int]], structure: str,
        near: Iterable[tuple[int, int]] = (),
    ) -> None: ...
    def close(self) -> None: ...

class RemoteSource(Source):
    reader: Reader
    def __init__(self, reader: Reader) -> None: ...

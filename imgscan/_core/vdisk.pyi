from collections.abc import Iterable

from .container import Container
from .source import Source

class VirtualDisk:
    size: int
    wants_prefetch: bool
    backing: VirtualDisk | None
    def __init__(
        self, container: Container, files: list[Source | None], backing: VirtualDisk | None = None
    ) -> None: ...
    def read(self, offset: int, length: int) -> bytes: ...
    def prefetch(
        self, ranges: Iterable[tuple[int, int]], structure: str,
        near: Iterable[tuple[int, int]] = (),
    ) -> None: ...
    def stored(self, offset: int, length: int) -> tuple[Source, int] | None: ...
    def readinto(
        self, offset: int, buffer: memoryview | bytearray, *, mapped: bool = True
    ) -> int: ...

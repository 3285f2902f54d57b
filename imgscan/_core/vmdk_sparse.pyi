from typing import Any

from .container import Container
from .extents import ExtentMap
from .source import Source

class SparseHeader:
    kind: str
    capacity: int
    grain: int
    gtes: int
    gd_offset: int
    gd_entries: int
    compressed: bool
    markers: bool
    zeroed_gte: bool
    def as_dict(self) -> dict[str, Any]: ...

def read_sparse_header(container: Container, src: Source, label: str) -> SparseHeader: ...
def walk_sparse(container: Container, emap: ExtentMap, src: Source, h: SparseHeader,
                guest_base: int, length: int, file: int, label: str) -> None: ...

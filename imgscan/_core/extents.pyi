from collections.abc import Iterator
from typing import Any, NamedTuple

KIND_NAMES: tuple[str, str, str, str]

class Extent(NamedTuple):
    start: int
    length: int
    kind: str
    host: int | None
    file: int
    stored_length: int

class ExtentMap:
    virtual_size: int
    cluster_size: int
    def __init__(self, virtual_size: int, cluster_size: int = 0) -> None: ...
    def _append(
        self,
        start: int,
        length: int,
        kind: str,
        host: int | None = None,
        file: int = 0,
        stored_length: int = 0,
    ) -> None: ...
    def check_complete(self) -> bool: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Extent: ...
    def __iter__(self) -> Iterator[Extent]: ...
    @property
    def allocated_size(self) -> int: ...
    def to_qemu(self, has_backing: bool = False) -> list[dict[str, Any]]: ...
    def to_qemu_json(self, has_backing: bool = False) -> str: ...
    def to_numpy(self) -> Any: ...

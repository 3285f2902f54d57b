from collections.abc import Callable
from typing import Any

HEAD_BYTES: int

class Volume:
    filesystem: str
    label: str | None
    uuid: str | None
    size: int | None
    encrypted: bool
    version: str | None
    usage: str
    details: dict[str, Any]
    def __init__(
        self,
        filesystem: str,
        label: str | None = ...,
        uuid: str | None = ...,
        size: int | None = ...,
        encrypted: bool = ...,
        version: str | None = ...,
        usage: str = ...,
        details: dict[str, Any] | None = ...,
    ) -> None: ...
    def as_dict(self) -> dict[str, Any]: ...

def probe_volume(read: Callable[[int, int], bytes], offset: int, size: int) -> Volume | None: ...

from collections.abc import Callable
from typing import Any

HEAD_BYTES: int
USAGE_FILESYSTEM: str
USAGE_CRYPTO: str
USAGE_RAID: str
USAGE_OTHER: str

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

class Probe:
    def __init__(
        self, read: Callable[[int, int], bytes], base: int, size: int, head: bytes | None = None,
    ) -> None: ...
    def get(self, rel: int, length: int) -> bytes: ...

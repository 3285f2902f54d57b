from collections.abc import Callable
from typing import Any

from .fsapi import FileSystem

MAX_KEY: int
MIN_BLOCK_SIZE: int
MAX_BLOCK_SIZE: int

def name_hash(name: bytes) -> int: ...
def block_checksum(csum_type: int, data: bytes | bytearray | memoryview) -> bytes: ...
def profile_name(flags: int) -> str: ...

class BtrfsFileSystem(FileSystem):
    offset: int
    size: int
    tree: int
    default_subvolume: int
    _s: Any
    _tree_root: tuple[int, int, int]
    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int,
                 name: str = ..., *, subvolume: int | str | None = ...,
                 _shared: Any = ...) -> None: ...
    def subvolumes(self) -> list[tuple[int, str]]: ...
    def open_subvolume(self, subvolume: int | str) -> BtrfsFileSystem: ...
    def _map(self, logical: int, structure: str) -> tuple[int, int]: ...
    def _node(self, bytenr: int, level: int, structure: str) -> tuple[bytes, int, int]: ...

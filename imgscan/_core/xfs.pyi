from collections.abc import Callable
from typing import Any

from .c_xfs import *  # noqa: F403 (the structures and constants are the reader's public names)
from .fsapi import FileSystem

class XfsFileSystem(FileSystem):
    offset: int
    size: int
    version: int
    block_size: int
    dirblock_size: int
    ftype: bool
    crc: bool
    sb: dict[str, Any]
    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int,
                 name: str = ...) -> None: ...

def be_u16(data: bytes | bytearray, pos: int) -> int: ...
def be_u32(data: bytes | bytearray, pos: int) -> int: ...
def be_u64(data: bytes | bytearray, pos: int) -> int: ...

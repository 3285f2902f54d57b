from collections.abc import Callable
from typing import Any

from .fsapi import FileSystem

INODE_CACHE: int
UNREADABLE_FLAGS: int

class _Inode:
    ino: int
    mode: int
    uid: int
    gid: int
    links: int
    flags: int
    size: int
    blocks: int
    file_acl: int
    mtime: int
    i_block: bytes
    raw: bytes
    disk: int

class Ext4Volume:
    name: str
    offset: int
    size: int
    block_size: int
    inode_size: int
    inodes_per_group: int
    blocks_per_group: int
    first_data_block: int
    desc_size: int
    groups: int
    first_meta_bg: int
    inodes_count: int
    blocks_count: int
    compat: int
    incompat: int
    ro_compat: int
    sb: dict[str, Any]
    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int,
                 name: str = "volume") -> None: ...
    def inode(self, ino: int) -> _Inode: ...
    def inline_data(self, i: _Inode) -> bytes: ...
    def read(self, i: _Inode, offset: int, length: int) -> bytes: ...
    def entries(self, d: _Inode) -> list[tuple[bytes, int, int]]: ...
    def find(self, d: _Inode, name: bytes) -> int | None: ...

class Ext4FileSystem(FileSystem):
    volume: Ext4Volume
    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int,
                 name: str = "volume") -> None: ...
    def journal(self) -> dict[str, Any] | None: ...

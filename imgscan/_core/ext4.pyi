from collections.abc import Callable, Iterator
from typing import Any

from .fsapi import DirEntry, FileSystem, Stat

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
    def _stat(self, ino: int) -> Stat: ...
    def _lookup(self, dir_ino: int, name: str) -> int | None: ...
    def _entries(self, dir_ino: int) -> Iterator[DirEntry]: ...
    def _readlink(self, ino: int) -> str: ...
    def _read(self, ino: int, offset: int, length: int) -> bytes: ...
    def journal(self) -> dict[str, Any] | None: ...
    def facts(self) -> dict[str, Any]: ...

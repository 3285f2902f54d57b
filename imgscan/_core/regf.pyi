from collections.abc import Iterator
from mmap import mmap

from imgscan.findings import Finding

REGF_SIGNATURE: bytes
HBIN_SIGNATURE: bytes
FILE_TYPE_PRIMARY: int
MAJOR_VERSION: int
KNOWN_MINOR_VERSIONS: tuple[int, ...]

REG_NONE: int
REG_SZ: int
REG_EXPAND_SZ: int
REG_BINARY: int
REG_DWORD: int
REG_DWORD_BIG_ENDIAN: int
REG_LINK: int
REG_MULTI_SZ: int
REG_RESOURCE_LIST: int
REG_FULL_RESOURCE_DESCRIPTOR: int
REG_RESOURCE_REQUIREMENTS_LIST: int
REG_QWORD: int
TYPE_NAMES: dict[int, str]

_Buffer = bytes | bytearray | memoryview | mmap

def regf_checksum(base_block: _Buffer) -> int: ...
def lh_hash(name: str) -> int: ...

class Hive:
    name: str
    dirty: bool
    details: dict[str, int | str | bool]
    findings: list[Finding]
    root: Key
    def __init__(self, data: _Buffer, name: str = "hive") -> None: ...
    def open_key(self, path: str) -> Key | None: ...
    def walk(self, top: Key | None = None) -> Iterator[tuple[str, Key]]: ...

class Key:
    offset: int
    flags: int
    last_written: int
    subkey_count: int
    value_count: int
    @property
    def name(self) -> str: ...
    @property
    def hive(self) -> Hive: ...
    @property
    def is_root(self) -> bool: ...
    @property
    def path(self) -> str: ...
    @property
    def class_name(self) -> str | None: ...
    def parent(self) -> Key | None: ...
    def security_descriptor(self) -> bytes | None: ...
    def subkeys(self) -> Iterator[Key]: ...
    def subkey(self, name: str) -> Key | None: ...
    def __getitem__(self, name: str) -> Key: ...
    def values(self) -> Iterator[Value]: ...
    def value(self, name: str) -> Value | None: ...

class Value:
    offset: int
    name: str
    type: int
    @property
    def type_name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def raw(self) -> bytes: ...
    @property
    def data(self) -> str | list[str] | int | bytes: ...

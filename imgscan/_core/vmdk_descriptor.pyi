ACCESS_MODES: tuple[str, ...]
EXTENT_FLAT: str
EXTENT_SPARSE: str
EXTENT_ZERO: str
EXTENT_VMFS: str
EXTENT_VMFSSPARSE: str
EXTENT_VMFSRDM: str
EXTENT_VMFSRAW: str
EXTENT_SESPARSE: str
EXTENT_TYPES: tuple[str, ...]
FLAT_TYPES: tuple[str, ...]
SPARSE_TYPES: tuple[str, ...]
QEMU_DESCRIPTOR_CREATE_TYPES: tuple[str, ...]
QEMU_CREATE_TYPE_MAX: int

class ExtentLine:
    access: str
    sectors: int
    type: str
    filename: str | None
    offset: int
    line: int
    def __init__(self, access: str, sectors: int, type: str, filename: str | None,
                 offset: int, line: int) -> None: ...
    def as_dict(self) -> dict[str, object]: ...

class Descriptor:
    text: str
    entries: list[tuple[str, str, int]]
    extents: list[ExtentLine]
    ambiguities: list[str]
    def __init__(self, text: str) -> None: ...
    def first(self, key: str) -> str | None: ...
    def qemu_value(self, key: str) -> str | None: ...
    def qemu_hex(self, key: str) -> int | None: ...
    def check_key(self, key: str) -> str | None: ...

def parse_descriptor(raw: bytes, path: str, offset: int, structure: str, begin: int = 0,
                     length: int = -1) -> Descriptor: ...

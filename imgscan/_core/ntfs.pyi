from collections.abc import Callable

from imgscan.errors import ImageError

NTFS_OEM: bytes
BOOT_SECTOR_SIZE: int
MIN_SECTOR_SIZE: int
MAX_SECTOR_SIZE: int
MAX_CLUSTER_SIZE: int
MIN_RECORD_SIZE: int
AT_STANDARD_INFORMATION: int
AT_ATTRIBUTE_LIST: int
AT_FILE_NAME: int
AT_VOLUME_NAME: int
AT_VOLUME_INFORMATION: int
AT_DATA: int
AT_INDEX_ROOT: int
AT_INDEX_ALLOCATION: int
AT_BITMAP: int
AT_END: int
NAMESPACE_POSIX: int
NAMESPACE_WIN32: int
NAMESPACE_DOS: int
NAMESPACE_WIN32_AND_DOS: int
MFT_RECORD_MFT: int
MFT_RECORD_VOLUME: int
MFT_RECORD_ROOT: int
MFT_RECORD_UPCASE: int
I30: str
REFERENCE_MASK: int
UPCASE_UNITS: int
INDEX_BLOCK_SIZE: int

class FileNotFound(ImageError): ...

def lznt1_decompress(data: bytes | bytearray | memoryview, size: int) -> bytes: ...

class NtfsVolume:
    offset: int
    size: int
    name: str
    sector_size: int
    cluster_size: int
    record_size: int
    index_record_size: int
    total_clusters: int
    mft_lcn: int
    mftmirr_lcn: int
    serial_number: int
    label: str | None
    version: str | None
    dirty: bool
    def __init__(self, read: Callable[[int, int], bytes], offset: int, size: int,
                 name: str = "volume") -> None: ...
    @property
    def serial(self) -> str: ...
    def lookup(self, path: str) -> NtfsFile | None: ...
    def open(self, path: str, stream: str = "") -> NtfsFile: ...
    def open_record(self, number: int, stream: str = "") -> NtfsFile: ...
    def exists(self, path: str) -> bool: ...
    def is_dir(self, path: str) -> bool: ...
    def listdir(self, path: str = "\\") -> list[str]: ...
    def entries(self, path: str = "\\") -> list[tuple[int, int, str]]: ...

class NtfsFile:
    volume: NtfsVolume
    path: str
    stream: str
    def __init__(self, volume: NtfsVolume, ino: object, stream: str = "",
                 path: str = "") -> None: ...
    @property
    def record_number(self) -> int: ...
    @property
    def is_dir(self) -> bool: ...
    @property
    def size(self) -> int: ...
    @property
    def compressed(self) -> bool: ...
    @property
    def sparse(self) -> bool: ...
    @property
    def names(self) -> list[tuple[int, int, str]]: ...
    def streams(self) -> list[str]: ...
    def runs(self) -> list[tuple[int, int, int]]: ...
    def read(self, offset: int = 0, length: int | None = None) -> bytes: ...

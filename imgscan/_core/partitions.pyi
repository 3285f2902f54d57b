from collections.abc import Callable
from typing import Any

from imgscan.findings import Finding

MBR_SECTOR_SIZE: int
MBR_BOOT_CODE_SIZE: int
MBR_ENTRY_COUNT: int
MBR_EXTENDED_TYPES: frozenset[int]
MBR_TYPE_GPT_PROTECTIVE: int
MBR_TYPE_EFI_SYSTEM: int
GPT_SIGNATURE: bytes
GPT_SECTOR_SIZES: tuple[int, ...]
GPT_ATTR_LEGACY_BIOS_BOOTABLE: int
GPT_TYPE_EFI_SYSTEM: str
GPT_TYPE_BIOS_BOOT: str
BOOT_CODE_NAMES: dict[str, str]
HEAD_BYTES: int

def classify_boot_code(code: bytes | bytearray | memoryview) -> str: ...
def mbr_type_name(type_byte: int) -> str | None: ...
def gpt_type_name(type_guid: str) -> str | None: ...

class Partition:
    number: int
    start: int
    size: int
    type: str
    type_name: str | None
    bootable: bool
    first_lba: int
    last_lba: int
    guid: str | None
    attributes: int | None
    name: str | None
    logical: bool
    def __init__(
        self, number: int, start: int, size: int, type: str, type_name: str | None,
        bootable: bool, first_lba: int, last_lba: int, guid: str | None = None,
        attributes: int | None = None, name: str | None = None, logical: bool = False,
    ) -> None: ...
    @property
    def end(self) -> int: ...
    @property
    def is_extended(self) -> bool: ...
    @property
    def is_protective(self) -> bool: ...
    def as_dict(self) -> dict[str, Any]: ...

class PartitionTable:
    kind: str
    sector_size: int
    partitions: list[Partition]
    mbr: dict[str, Any] | None
    gpt: dict[str, Any] | None
    findings: list[Finding]
    def __init__(
        self, kind: str, sector_size: int, partitions: list[Partition],
        mbr: dict[str, Any] | None, gpt: dict[str, Any] | None, findings: list[Finding],
    ) -> None: ...
    def as_dict(self) -> dict[str, Any]: ...

def read_partition_table(
    read: Callable[[int, int], bytes], disk_size: int, path: str, sector_size: int | None = None,
    head: bytes | None = None,
    announce: Callable[[list[Partition], list[tuple[int, int]]], None] | None = None,
) -> PartitionTable: ...

from typing import Any

from imgscan.findings import Finding

from .filesystems import Volume
from .partitions import Partition

def volume_facts(volume: Volume | None) -> dict[str, Any]: ...
def whole_disk_object(volume: Volume) -> dict[str, Any]: ...
def partition_object(p: Partition, volume: Volume | None) -> dict[str, Any]: ...
def disk_info(
    path: str, facts: Any, file_size: int, allocated: int | None, cluster_size: int | None,
    layout: Any, guests: dict[str, Any], source: dict[str, Any] | None,
    findings: list[Finding],
) -> dict[str, Any]: ...

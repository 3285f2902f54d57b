"""The ``imgscan info`` object of the JSON contract, built from each stage's results.

The stages run one way, each knowing only the one before it: the container
(:class:`~imgscan.disk_image.DiskImage`: facts, extent map, guest bytes or why
not) -> the layout (:mod:`imgscan.layout`: partition table, filesystems, boot
mode) -> the guest operating systems (:mod:`imgscan.guest`). This module runs
them in that order and names their results as ../shared/docs/json-contract.md
does; nothing else assembles the object.

Findings come in stage order, each filed under its stage. The stages are not
part of a finding's contract object (its keys are fixed); they travel in the
extension key ``finding_stages`` (one stage per finding, in the same order),
present only when there are findings, so that a later layer (the policy rules)
can tell what stopped where without reading message text.
"""

from __future__ import annotations

from . import guest
from .errors import ImageError
from .findings import Finding, finding_id
from .layout import of_guest
from .vocabulary import CONTAINER, DISK, SCHEMA_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .disk_image import DiskImage

__all__ = ["SCHEMA_VERSION", "info_object"]


def info_object(image: DiskImage) -> dict[str, Any]:
    """The ``imgscan info --json`` object of ``image`` (schema 1)."""
    map_failure: list[Finding] = []
    try:
        allocated: int | None = image.allocated_size
    except ImageError as exc:
        allocated = None
        map_failure.append(Finding(finding_id(exc), "error", str(exc), DISK))
    bytes_ = image.guest()
    layout = of_guest(bytes_)
    guests, guest_findings = guest.inspect(bytes_.read, layout, image.path)
    # Collected after the map and the layout: walking the tables may add findings
    # (truncated, ...).
    findings = [*(f.at(CONTAINER) for f in image.findings), *map_failure,
                *layout.findings, *guest_findings]
    info: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "path": image.path,
        "format": image.format,
        "subformat": image.subformat,
        "virtual_size": image.virtual_size,
        "file_size": image.file_size,
        "allocated_size": allocated,
        "cluster_size": image.cluster_size,
        "encrypted": image.encrypted,
        "encryption": image.encryption,
        "backing_file": image.backing_file,
        "backing_format": image.backing_format,
        "data_file": image.data_file,
        "snapshots": image.snapshots,
        "dirty": image.dirty,
        "partition_table": layout.partition_table,
        "partitions": layout.partitions,
        "filesystem": layout.filesystem,
        "boot_mode": layout.boot_mode,
        "windows": guests["windows"],
        "linux": guests["linux"],
        # Last of the image's reads: its requests and bytes fetched are all counted.
        "source": image.source,
        "findings": [f.as_dict() for f in findings],
        "format_specific": image.format_specific,
        "boot_evidence": layout.boot_evidence,
        "partition_table_details": layout.details,
        "volume": layout.volume,
    }
    info["finding_stages"] = [f.stage for f in findings]
    return info

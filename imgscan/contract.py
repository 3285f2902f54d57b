"""The ``imgscan info`` object of the JSON contract, built from each stage's results.

The stages run one way, each knowing only the one before it: the container
(:class:`~imgscan.disk_image.DiskImage`: facts, extent map, guest bytes or why
not) -> the layout (:mod:`imgscan.layout`: partition table, filesystems, boot
mode) -> the guest operating systems (:mod:`imgscan.guest`). This module runs
them in that order; :func:`imgscan._core.contract_objects.disk_info` names their
results as ../shared/docs/json-contract.md does (natively: no per-field Python cost), and
nothing else assembles the object.

Findings come in stage order, each filed under its stage. The stages are not
part of a finding's contract object (its keys are fixed); they travel in the
extension key ``finding_stages`` (one stage per finding, in the same order),
present only when there are findings, so that a later layer (the policy rules)
can tell what stopped where without reading message text.
"""

from __future__ import annotations

from . import guest
from ._core.contract_objects import disk_info
from .errors import ImageError
from .findings import FIRMWARE_MISMATCH, PACKAGE_MEMBER, SIZE_MISMATCH, Finding, finding_id
from .layout import of_guest
from .vocabulary import CONTAINER, DISK, SCHEMA_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .disk_image import DiskImage
    from .layout import Layout

__all__ = ["SCHEMA_VERSION", "info_object", "package_info"]


def info_object(image: DiskImage) -> dict[str, Any]:
    """The ``imgscan info --json`` object of ``image`` (schema 1)."""
    if image.package is not None:
        return package_info(image)
    return _disk_info(image, None)


def _disk_info(image: DiskImage, layout: Layout | None) -> dict[str, Any]:
    """The info object of one disk, its layout passed in when already read."""
    map_failure: list[Finding] = []
    try:
        allocated: int | None = image.allocated_size
    except ImageError as exc:
        allocated = None
        map_failure.append(Finding(finding_id(exc), "error", str(exc), DISK))
    bytes_ = image.guest()
    if layout is None:
        layout = of_guest(bytes_)
    guests, guest_findings = guest.inspect(bytes_.read, layout, image.path, bytes_.prefetch)
    # Collected after the map and the layout: walking the tables may add findings
    # (truncated, ...).
    findings = [f.at(CONTAINER) for f in image.findings]  # a comprehension: no generator
    findings += map_failure
    findings += layout.findings
    findings += guest_findings
    # The source last of the image's reads: its requests and bytes fetched are all counted.
    return disk_info(image.path, image.facts, image.file_size, allocated, image.cluster_size,
                     layout, guests, image.source, findings)


#: The OVF descriptor's firmware, as the contract's boot modes.
FIRMWARE_BOOT_MODES = {"efi": "uefi", "bios": "bios"}


def package_info(image: DiskImage) -> dict[str, Any]:
    """The info object of an OVF package (OVA or OVF): its system disk's, plus the package.

    Every disk is decoded and its layout read, in the first VirtualSystem's
    order; the system disk is the first whose layout shows a boot path, else
    the first that can be read. The whole inspection (guest OS facts) runs on
    the system disk only; its object is the package's, with the package's
    ``path`` and ``file_size``, the extension keys ``ova`` (the descriptor's
    facts, members, manifest, ``system_disk``) and ``disks`` (one summary per
    disk), and the package's findings first (with every error of the other disks,
    which the package carries too). Where the disk alone leaves the
    boot mode open (``hybrid``: both paths present) and the descriptor names
    the firmware, the VM boots by that firmware: ``boot_mode`` says so; a disk
    with no boot path stays ``unknown`` (the firmware does not make it
    bootable), and one with the other path only gets a ``firmware-mismatch``
    finding. ``boot_evidence`` names the descriptor.
    """
    package = image.package
    assert package is not None
    disks: list[dict[str, Any]] = []
    layouts: dict[int, tuple[DiskImage, Layout, list[Finding]]] = {}
    system: int | None = None
    #: What stops or damages a disk other than the system disk: the package's findings.
    others: list[Finding] = []
    for i, pdisk in enumerate(package.disks):
        entry: dict[str, Any] = {"index": i, **{k: pdisk.facts.get(k) for k in (
            "disk_id", "href", "capacity", "format_uri", "populated_size", "controller")}}
        entry["member"] = None if pdisk.member is None else {
            "name": pdisk.member.name, "offset": pdisk.member.offset, "size": pdisk.member.size}
        disks.append(entry)
        if pdisk.why_not is not None:
            entry["error"] = pdisk.why_not
            continue
        try:
            disk = image.package_disk(i)
            layout = of_guest(disk.guest())
        except ImageError as exc:
            entry["error"] = str(exc)
            others.append(Finding(finding_id(exc), "error", str(exc)))
            continue
        disagree = _package_disk_findings(pdisk.facts, disk)
        layouts[i] = (disk, layout, disagree)
        entry.update(format=disk.format, subformat=disk.subformat,
                     virtual_size=disk.virtual_size, file_size=disk.own_file_size,
                     partition_table=layout.partition_table, filesystem=layout.filesystem,
                     boot_mode=layout.boot_mode)
        entry["findings"] = [f.as_dict() for f in (*disk.findings, *layout.findings,
                                                   *disagree)]
        if system is None and layout.boot_mode != "unknown":
            system = i
    if system is None:
        system = image.disk_index
    for entry in disks:
        entry["system"] = entry["index"] == system
    disk, layout, disagree = layouts[system]
    info = _disk_info(disk, layout)
    stated = package.descriptor.firmware if package.descriptor else None
    firmware = FIRMWARE_BOOT_MODES.get(stated or "")
    if firmware is not None:
        info["boot_evidence"] = [*info["boot_evidence"], f"OVF descriptor: firmware {stated}"]
        if layout.boot_mode == "hybrid":
            info["boot_mode"] = firmware
        elif layout.boot_mode not in ("unknown", firmware):
            disagree.append(Finding(
                FIRMWARE_MISMATCH, "warning",
                f"{image.path}: the OVF descriptor's firmware is {stated}, but the system "
                f"disk boots only by {layout.boot_mode}"))
    for i, (other, other_layout, other_disagree) in layouts.items():
        if i != system:
            others.extend(Finding(f.id, f.severity, f"disk {i} ({other.own_path}): {f.message}")
                          for f in (*other.findings, *other_layout.findings, *other_disagree)
                          if f.severity == "error")
    findings = [f.at(CONTAINER) for f in (*package.findings, *disagree, *others)]
    info["findings"] = [*(f.as_dict() for f in findings), *info["findings"]]
    info["finding_stages"] = [*(f.stage for f in findings), *info["finding_stages"]]
    info["path"] = image.path
    info["file_size"] = image.file_size
    info["ova"] = {**package.as_dict(), "system_disk": system}
    info["disks"] = disks
    return info


def _package_disk_findings(facts: dict[str, Any], disk: DiskImage) -> list[Finding]:
    """Where the descriptor and the disk it names disagree (capacity, format)."""
    from ._core.ovf import format_name  # only for a package (xml.etree's import cost)

    out: list[Finding] = []
    name = facts.get("href") or facts.get("disk_id")
    capacity = facts.get("capacity")
    if capacity is not None and capacity != disk.virtual_size:
        out.append(Finding(SIZE_MISMATCH, "warning",
                           f"{disk.path}: disk {name!r}: the OVF descriptor's capacity is "
                           f"{capacity} bytes, the disk's virtual size {disk.virtual_size}"))
    fmt, sub = format_name(facts.get("format_uri"))
    if fmt is not None and (fmt != disk.format or (
            sub is not None and disk.subformat is not None
            and sub.lower() not in (disk.subformat.lower(), "sparse"))):
        out.append(Finding(PACKAGE_MEMBER, "warning",
                           f"{disk.path}: disk {name!r}: the OVF descriptor says "
                           f"{facts.get('format_uri')}, the file is {disk.format} "
                           f"{disk.subformat or ''}".rstrip()))
    return out

"""The guest disk's layout: partition table, filesystems and boot mode, as the contract states them.

Everything is read through the virtual disk reader, so the same facts come
out of a raw file, a qcow2, a VHD or a VMDK holding the same disk. The pieces
are :func:`imgscan._core.partitions.read_partition_table`, the filesystem
probes of :mod:`imgscan._core.filesystems` (``probe_volume(read, offset,
size)``) and :func:`imgscan.bootmode.decide`.

This stage sees only the guest bytes the container stage hands it
(:class:`imgscan.disk_image.GuestBytes`), never the image. When they cannot be
read (an encrypted container, a backing file or external data file the caller
did not allow imgscan to open, a damaged map) the table is ``unknown`` and a
finding says why.
"""

from __future__ import annotations

from . import bootmode, limits
from ._core import filesystems, partitions
from ._core.contract_objects import partition_object, volume_facts, whole_disk_object
from ._core.filesystems import probe_regions, probe_volume
from ._core.partitions import read_partition_table
from .errors import ImageError, LimitExceeded, UnsupportedFeature
from .findings import ENCRYPTED, Finding, finding_id
from .vocabulary import DISK, FILESYSTEM, PARTITIONS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from ._core import lvm
    from ._core.filesystems import Volume
    from ._core.partitions import Partition, PartitionTable
    from .disk_image import GuestBytes, Prefetch

    Read = Callable[[int, int], bytes]


class Layout:
    """The layout facts of one guest disk, named as in the JSON contract."""

    __slots__ = ("boot_evidence", "boot_mode", "details", "filesystem", "findings",
                 "logical_volumes", "partition_table", "partitions", "volume")

    def __init__(self, partition_table: str, partitions: list[dict[str, Any]],
                 filesystem: str | None, boot_mode: str, boot_evidence: list[str],
                 details: dict[str, Any] | None, volume: dict[str, Any] | None,
                 findings: list[Finding],
                 logical_volumes: dict[str, lvm.LogicalVolume] | None = None) -> None:
        self.partition_table = partition_table
        self.partitions = partitions
        self.filesystem = filesystem
        self.boot_mode = boot_mode
        self.boot_evidence = boot_evidence
        #: The table's own facts (MBR signature and boot code, both GPT headers).
        self.details = details
        #: The whole-disk volume when there is no partition table.
        self.volume = volume
        self.findings = findings
        #: The LVs of the VGs found on this disk, by "VG/LV".
        self.logical_volumes = logical_volumes or {}

    @property
    def volume_count(self) -> int | None:
        """The volumes an import tool would mount: partitions (or the whole disk) holding a
        filesystem other than swap, and each logical volume of the VGs found, once however
        many PVs carry them; None when the guest bytes could not be read.

        Counted here, from the layout read once, so that every rule and report agrees on
        the number (AWS VM Import reads at most 21 volumes).
        """
        if self.partition_table == "unknown":
            return None
        if not (self.partitions or self.volume):
            return 0
        count = 0
        vgs: set[str] = set()
        for volume in [*self.partitions, *([self.volume] if self.volume else [])]:
            lvm_ = volume.get("lvm") or {}
            if lvm_.get("vg") is not None:
                if lvm_["vg_uuid"] not in vgs:
                    vgs.add(lvm_["vg_uuid"])
                    count += len(lvm_["lvs"])
            elif volume.get("filesystem") not in (None, "LVM2_member", "swap"):
                count += 1
        return count

    def logical_volume(self, name: str) -> tuple[Read, int] | None:
        """``(read, size)`` over the bytes of the LV ``name`` ("VG/LV"), or None when this
        disk has no such LV; raises ``UnsupportedFeature`` naming why when it cannot be read
        (a segment type that is not read, a PV missing from the image)."""
        found = self.logical_volumes.get(name)
        if found is None:
            return None
        if found.reader is None:
            raise UnsupportedFeature(name, "LVM2 logical volume", None,
                                     found.why or "not readable")
        return found.reader, found.size


def unknown(finding: Finding) -> Layout:
    """The layout of a disk whose guest bytes cannot be read, and why."""
    return Layout("unknown", [], None, "unknown", [], None, None, [finding])


#: The disk's first bytes as the partition table and a whole-disk probe read them first.
HEAD_BYTES = max(partitions.HEAD_BYTES, filesystems.HEAD_BYTES)


def _probed(read: Read, offset: int, size: int, what: str,
            findings: list[Finding], head: bytes | None = None) -> Volume | None:
    if size <= 0:
        return None
    try:
        return probe_volume(read, offset, size, head)
    except ImageError as exc:
        findings.append(Finding(finding_id(exc), "warning",
                                f"{what}: filesystem not identified: {exc}", FILESYSTEM))
        return None


#: blkid's TYPE of an LVM2 physical volume.
LVM2_MEMBER = "LVM2_member"


def _lv_dict(lv: lvm.LogicalVolume, findings: list[Finding]) -> dict[str, Any]:
    volume = None
    if lv.reader is not None:
        volume = _probed(lv.reader, 0, lv.size, f"logical volume {lv.vg}/{lv.name}", findings)
    return {"name": lv.name, "size": lv.size, "segments": lv.segments,
            "readable": lv.reader is not None, "why": lv.why, **volume_facts(volume)}


def _logical_volumes(read: Read, pvs: list[tuple[dict[str, Any], int, int, str]],
                     disk: str, findings: list[Finding]) -> dict[str, lvm.LogicalVolume]:
    """Reads the LVM2 metadata on the PVs ``(contract object, offset, size, what)`` of the
    disk named ``disk``, adds each one's ``lvm`` object and returns the LVs by "VG/LV".

    Only the first limits.LVM_MAX_PHYSICAL_VOLUMES labels are read; the other PVs are
    listed without a VG, and one finding says where reading stopped."""
    from ._core import lvm  # only for a disk with an LVM2 PV (start-up: re, xxhash, bisect)
    for out, _, _, _ in pvs:
        out["lvm"] = {"vg": None, "vg_uuid": None, "pv_uuid": out["uuid"],
                      "extent_size": None, "seqno": None, "lvs": []}
    labels: list[tuple[dict[str, Any], lvm.PhysicalVolume]] = []
    for number, (out, offset, size, what) in enumerate(pvs, 1):
        try:
            limits.enforce(number, "LVM_MAX_PHYSICAL_VOLUMES", disk,
                           f"LVM2 PV label on {what}", offset, "physical volumes")
        except LimitExceeded as exc:
            findings.append(Finding(finding_id(exc), "warning",
                                    f"LVM2 physical volumes not read from {what} on: {exc}",
                                    FILESYSTEM))
            break
        try:
            pv = lvm.read_pv(read, offset, size, what)
        except ImageError as exc:
            findings.append(Finding(finding_id(exc), "warning",
                                    f"{what}: LVM2 physical volume not read: {exc}", FILESYSTEM))
            pv = None
        if pv is not None:
            labels.append((out, pv))
    groups, errors = lvm.volume_groups(read, [pv for _, pv in labels], disk)
    findings += [Finding(finding_id(exc), "warning", f"LVM2 metadata not read: {exc}",
                         FILESYSTEM) for exc in errors]
    by_name: dict[str, lvm.LogicalVolume] = {}
    for vg in groups:
        lvs = [_lv_dict(lv, findings) for lv in vg.lvs]
        by_name.update((f"{vg.name}/{lv.name}", lv) for lv in vg.lvs)
        for out, pv in labels:
            if pv.uuid in vg.pvs:
                out["lvm"] = {"vg": vg.name, "vg_uuid": vg.id, "pv_uuid": pv.uuid,
                              "extent_size": vg.extent_size, "seqno": vg.seqno, "lvs": lvs}
    return by_name


def encrypted_volumes(partitions: list[dict[str, Any]], whole: dict[str, Any] | None,
                      pvs: Sequence[dict[str, Any]] = ()) -> list[Finding]:
    """One ``encrypted`` finding per LUKS or BitLocker volume in the guest disk (a
    partition, the whole disk or a logical volume of the LVM2 physical volumes ``pvs``,
    the contract objects of partitions or whole disk whose ``lvm`` object lists them).

    Volume encryption hides the contents as container encryption does (threats.md),
    whether or not a Windows installation is found beside it.
    """
    found = [(f"partition {p['number']}", p["filesystem"]) for p in partitions
             if p.get("encrypted")]
    if whole is not None and whole.get("encrypted"):
        found.append(("the whole disk", whole["filesystem"]))
    if pvs:
        groups = {pv["vg_uuid"]: pv for pv in (v["lvm"] for v in pvs) if pv["vg"] is not None}
        found += [(f"logical volume {pv['vg']}/{lv['name']}", lv["filesystem"])
                  for pv in groups.values() for lv in pv["lvs"] if lv["encrypted"]]
    return [Finding(ENCRYPTED, "error",
                    f"{where} is a {fs} volume: its contents cannot be inspected", FILESYSTEM)
            for where, fs in found]


def _probed_sizes(found: Sequence[Partition], disk_size: int) -> list[int | None]:
    """The bytes of each partition that is probed (None: an extended or protective one,
    or one that starts past the end of the disk, is not)."""
    return [min(p.size, disk_size - p.start)
            if not (p.is_extended or p.is_protective) and p.start < disk_size else None
            for p in found]


def _probed_regions(found: Sequence[Partition], disk_size: int
                    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """What the probes of the partitions ``found`` read first, as ``(superblocks,
    heads)`` (:func:`~imgscan._core.filesystems.probe_regions`)."""
    heads: list[tuple[int, int]] = []
    superblocks: list[tuple[int, int]] = []
    for p, size in zip(found, _probed_sizes(found, disk_size), strict=True):
        if size is not None:
            first, more = probe_regions(p.start, size)
            heads += first
            superblocks += more
    return superblocks, heads


def _announce_with_backup_gpt(prefetch: Prefetch, disk_size: int, found: list[Partition],
                              backup_gpt: list[tuple[int, int]]) -> None:
    """Announce the probe regions of a GPT's partitions with its backup copy, which the
    partition table reader reads next (a remote disk: one round trip for both; the backup
    sits at the disk's end, away from anything else read)."""
    superblocks, heads = _probed_regions(found, disk_size)
    prefetch([*superblocks, *backup_gpt], "volume signatures and backup GPT", heads)


def describe(read: Read, disk_size: int, path: str, *, sector_size: int | None = None,
             el_torito: Sequence[Mapping[str, Any]] | None = None,
             prefetch: Prefetch | None = None) -> Layout:
    """The layout of the guest disk that ``read(offset, length)`` returns bytes of.

    ``prefetch(ranges, structure, near)``, when given, is told the regions every
    partition's probe reads first (and the neighbourhood the filesystem's reads
    follow in), all at once, before they are read.
    Raises only what ``read`` raises (an unreadable guest disk).
    """
    # read once for the table and, when there is none, the whole disk's probe
    head = read(0, HEAD_BYTES)
    table: PartitionTable = read_partition_table(
        read, disk_size, path, sector_size, head,
        None if prefetch is None else
        lambda found, backup_gpt: _announce_with_backup_gpt(prefetch, disk_size, found,
                                                            backup_gpt))
    findings = [f.at(PARTITIONS) for f in table.findings] if table.findings else []
    partitions: list[dict[str, Any]] = []
    filesystems: dict[int, str | None] = {}
    # Each step below runs only where it has something to do: a disk of a library is
    # mostly one with no table and nothing on it (issue 18: no overhead per image).
    if table.partitions:
        sizes = _probed_sizes(table.partitions, disk_size)
        if prefetch is not None:
            # nothing left to fetch when the GPT reader announced the same partitions
            superblocks, heads = _probed_regions(table.partitions, disk_size)
            prefetch(superblocks, "volume signatures", heads)
        for p, size in zip(table.partitions, sizes, strict=True):
            volume = None
            if size is not None:
                volume = _probed(read, p.start, size, f"partition {p.number}", findings)
            filesystems[p.number] = volume.filesystem if volume is not None else None
            partitions.append(partition_object(p, volume))
    filesystem = None
    whole: dict[str, Any] | None = None
    if table.kind == "none":
        volume = _probed(read, 0, disk_size, "whole disk", findings, head)
        if volume is not None:
            filesystem = volume.filesystem
            whole = whole_disk_object(volume)
    pvs: list[tuple[dict[str, Any], int, int, str]] = []
    if LVM2_MEMBER in filesystems.values():  # a C scan: most disks hold no PV
        pvs = [(part, p.start, min(p.size, disk_size - p.start), f"partition {p.number}")
               for part, p in zip(partitions, table.partitions, strict=True)
               if part["filesystem"] == LVM2_MEMBER]
    if whole is not None and whole["filesystem"] == LVM2_MEMBER:
        pvs.append((whole, 0, disk_size, "whole disk"))
    logical_volumes = _logical_volumes(read, pvs, path, findings) if pvs else {}
    if partitions or whole is not None:
        findings += encrypted_volumes(partitions, whole,
                                      [out for out, _, _, _ in pvs] if pvs else ())
    boot_mode, evidence = bootmode.decide(table if table.kind != "none" else None,
                                          filesystems, el_torito)
    return Layout(table.kind, partitions, filesystem, boot_mode, evidence, table.as_dict(),
                  whole, findings, logical_volumes)


def of_guest(guest: GuestBytes) -> Layout:
    """The layout of the guest disk, or ``unknown`` with a finding naming why it cannot
    be read."""
    why = guest.why_not
    if guest.read is not None:
        try:
            return describe(guest.read, guest.size, guest.path, sector_size=guest.sector_size,
                            el_torito=guest.el_torito, prefetch=guest.prefetch)
        except ImageError as exc:
            why = guest.failed(exc)
    assert why is not None, "GuestBytes without a reader names why"
    return unknown(Finding(why.id, why.severity, f"partition table not read: {why.message}",
                           DISK))

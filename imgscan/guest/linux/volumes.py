"""The volumes of this disk a Linux system could mount, and the names it may give them.

A Linux guest names its filesystems in ``/etc/fstab`` and on the kernel command
line by UUID, label, GPT PARTUUID or PARTLABEL, logical volume, or device node
(:mod:`.devices` reads those names). This module lists the volumes of the disk
from the layout stage's facts and answers "which volume is this?" in one place:
:meth:`DiskVolumes.find` (to mount ``/boot`` and ``/usr``) and
:attr:`DiskVolumes.ids` (for ``on_this_disk`` of each fstab line).
"""

from __future__ import annotations

from imgscan._core.fsopen import open_filesystem
from imgscan.guest.roots import LINUX_FILESYSTEMS

from .devices import DiskIds, kernel_partition, parse_spec

#: What a Linux guest mounts from this disk: its root, /boot and /usr filesystems, and
#: the EFI system partition (FAT) at /boot/efi or /efi.
MOUNTABLE = LINUX_FILESYSTEMS | {"vfat"}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from imgscan._core.fsapi import FileSystem
    from imgscan.layout import Layout

    Read = Callable[[int, int], bytes]


class Volume:
    """One volume of this disk holding a filesystem a Linux guest can mount."""

    __slots__ = ("filesystem", "label", "lvm", "offset", "partition", "partlabel",
                 "partuuid", "read", "size", "uuid")

    def __init__(self, read: Read, offset: int, size: int, filesystem: str,
                 partition: int, lvm: str | None = None, uuid: str | None = None,
                 label: str | None = None, partuuid: str | None = None,
                 partlabel: str | None = None) -> None:
        self.read = read
        self.offset = offset
        self.size = size
        self.filesystem = filesystem
        #: The partition number (0: the whole disk); for an LV, its first PV's.
        self.partition = partition
        #: ``VG/LV`` when the volume is a logical volume.
        self.lvm = lvm
        self.uuid = uuid
        self.label = label
        self.partuuid = partuuid
        self.partlabel = partlabel

    @property
    def source(self) -> str:
        """How evidence names the volume."""
        if self.lvm:
            return f"logical volume {self.lvm}"
        return f"partition {self.partition}" if self.partition else "whole disk"

    def open(self, name: str) -> FileSystem:
        """The volume's filesystem reader; ``name`` names the image in errors."""
        return open_filesystem(self.read, self.offset, self.size, f"{name} {self.source}",
                               self.filesystem)

    def named(self, kind: str, value: str) -> bool:
        """Whether the volume answers to the name ``value`` of kind ``kind``
        (:func:`~.devices.parse_spec`'s kinds; UUIDs in any case)."""
        if kind == "lvm":
            return self.lvm == value
        have = {"uuid": self.uuid, "label": self.label, "partuuid": self.partuuid,
                "partlabel": self.partlabel}.get(kind)
        if have is None:
            return False
        return have.lower() == value.lower() if kind in ("uuid", "partuuid") else have == value


class DiskVolumes:
    """Every volume of one disk a Linux guest mounts (:data:`MOUNTABLE`), and the names
    of all its volumes."""

    def __init__(self, volumes: list[Volume], ids: DiskIds) -> None:
        self.volumes = volumes
        #: The names every volume of the disk answers to, the ones no Linux reader opens
        #: too (swap, an ESP, a PV, an encrypted volume).
        self.ids = ids

    def find(self, spec: str) -> Volume | None:
        """The volume ``spec`` (an fstab spec or a ``root=`` value) names, if it is one
        of :attr:`volumes`; a kernel name as the first disk's (:mod:`.devices`)."""
        kind, value = parse_spec(spec)
        if kind == "device":
            node = kernel_partition(spec)
            if node is None or not node[0]:
                return None
            return next((v for v in self.volumes if v.lvm is None and
                         v.partition == node[1]), None)
        if value is None:
            return None
        return next((v for v in self.volumes if v.named(kind, value)), None)


def disk_volumes(read: Read, layout: Layout) -> DiskVolumes:
    """The Linux-mountable volumes of the disk ``layout`` describes, in disk order:
    partitions, the whole disk, then logical volumes."""
    volumes: list[Volume] = []
    names: list[dict[str, str | None]] = []
    pv_partition: dict[str, int] = {}
    for p in layout.partitions:
        own = {"uuid": p.get("uuid"), "label": p.get("label"), "partuuid": p.get("guid"),
               "partlabel": p.get("name")}
        vg = (p.get("lvm") or {}).get("vg")
        if vg is not None:
            pv_partition.setdefault(vg, p["number"])
        names.append(own)
        if p.get("filesystem") in MOUNTABLE and not p.get("encrypted"):
            volumes.append(Volume(read, p["start"], p["size"], p["filesystem"], p["number"],
                                  **own))
    whole = layout.volume
    if not layout.partitions and whole:
        names.append({"uuid": whole.get("uuid"), "label": whole.get("label")})
        if whole.get("filesystem") in LINUX_FILESYSTEMS and not whole.get("encrypted"):
            volumes.append(Volume(read, 0, whole.get("size") or 0, whole["filesystem"], 0,
                                  uuid=whole.get("uuid"), label=whole.get("label")))
    for name, lv in layout.logical_volumes.items():
        if lv.reader is None:
            continue
        facts = _lv_facts(layout, name)
        names.append({"uuid": facts.get("uuid"), "label": facts.get("label")})
        if facts.get("filesystem") in LINUX_FILESYSTEMS and not facts.get("encrypted"):
            volumes.append(Volume(lv.reader, 0, lv.size, facts["filesystem"],
                                  pv_partition.get(lv.vg, 0), lvm=name,
                                  uuid=facts.get("uuid"), label=facts.get("label")))

    def every(key: str) -> frozenset[str]:
        return frozenset(str(n[key]) for n in names if n.get(key))

    ids = DiskIds(uuids=every("uuid"), labels=every("label"), partuuids=every("partuuid"),
                  partlabels=every("partlabel"), lvs=frozenset(layout.logical_volumes),
                  partitions=frozenset(p["number"] for p in layout.partitions))
    return DiskVolumes(volumes, ids)


def _lv_facts(layout: Layout, name: str) -> dict[str, Any]:
    """The layout's contract object of the LV ``VG/LV`` (filesystem, uuid, label)."""
    vg, _, lv = name.partition("/")
    for holder in [*layout.partitions, layout.volume or {}]:
        pv = holder.get("lvm") or {}
        if pv.get("vg") == vg:
            for out in pv.get("lvs") or []:
                if out.get("name") == lv:
                    found: dict[str, Any] = out
                    return found
    return {}

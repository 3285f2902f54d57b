"""The volumes of this disk a Linux system could mount, and the names it may give them.

A Linux guest names its filesystems in ``/etc/fstab`` and on the kernel command
line by UUID, label, GPT PARTUUID or PARTLABEL, logical volume, or device node;
every fact that asks "is this on this disk?" (the root, ``/boot``, ``/usr``, an
fstab line) is answered here, from the layout stage's facts, in one place:
:meth:`DiskVolumes.find`.

Device nodes are judged as the first disk of the machine the image boots in
(``/dev/sda3``, ``/dev/vda3``, ``/dev/xvda3``, ``/dev/hda3``, ``/dev/nvme0n1p3``
name partition 3); any other disk's node (``/dev/sdb1``) is not on this disk.
A spec that names no disk at all (``tmpfs``, ``proc``, a swap file, a network
share) has no answer: ``None``.
"""

from __future__ import annotations

import re

from imgscan._core.fsopen import READERS, open_filesystem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from imgscan._core.fsapi import FileSystem
    from imgscan.layout import Layout

    Read = Callable[[int, int], bytes]

#: The filesystems a Linux root, /boot or /usr may be on (the readers of the core).
LINUX_FILESYSTEMS = frozenset(name for name in READERS if name not in ("ntfs",))

#: A partition of the first disk by its device node: sda3, vda3, xvda3, hda3, nvme0n1p3,
#: mmcblk0p3; group 1 is the disk letter or number, group 2 the partition number.
_FIRST_DISK_NODE = re.compile(
    r"/dev/(?:(?:s|v|xv|h)d([a-z]+)|nvme\d+n(\d+)p|mmcblk(\d+)p)(\d+)")
#: The whole first disk (a filesystem on the unpartitioned disk).
_WHOLE_DISK_NODE = re.compile(r"/dev/(?:(?:s|v|xv|h)d([a-z]+)|nvme\d+n(\d+)|mmcblk(\d+))")


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
        """The volume's filesystem reader; ``name`` names it in errors."""
        return open_filesystem(self.read, self.offset, self.size, f"{name} {self.source}",
                               self.filesystem)


class DiskVolumes:
    """Every Linux-mountable volume of one disk, and lookup by any name fstab may use."""

    def __init__(self, volumes: list[Volume], others: list[dict[str, str | None]],
                 partitions: set[int], lvs: set[str]) -> None:
        self.volumes = volumes
        #: The names (uuid, label, partuuid, partlabel) of every volume of the disk,
        #: those no Linux reader opens too (swap, an ESP, a PV, an encrypted volume).
        self.names = [{"uuid": v.uuid, "label": v.label, "partuuid": v.partuuid,
                       "partlabel": v.partlabel} for v in volumes] + others
        #: Every partition number of the disk, whatever it holds.
        self.partitions = partitions
        #: Every ``VG/LV`` of the disk, read or not.
        self.lvs = lvs

    def find(self, spec: str) -> Volume | None:
        """The volume ``spec`` (an fstab spec or a ``root=`` value) names, if it is one
        of :attr:`volumes`."""
        key, value = _split(spec)
        for v in self.volumes:
            if key == "lvm":
                if v.lvm == value:
                    return v
            elif key == "partition":
                if v.lvm is None and v.partition == int(value):
                    return v
            elif _named(getattr(v, key, None), key, value):
                return v
        return None

    def on_this_disk(self, spec: str) -> bool | None:
        """Whether ``spec`` names a volume of this disk (any volume, swap and PVs too);
        None when it names no disk at all (tmpfs, proc, a file, a share)."""
        key, value = _split(spec)
        if key == "other":
            return None
        if key == "device":
            return False            # a node of another disk
        if key == "partition":
            return int(value) in self.partitions or (value == "0" and not self.partitions)
        if key == "lvm":
            return value in self.lvs
        return any(_named(names.get(key), key, value) for names in self.names)


def _named(have: str | None, key: str, value: str) -> bool:
    """Whether a volume's ``key`` name ``have`` is ``value`` (UUIDs in any case)."""
    if have is None:
        return False
    return have.lower() == value.lower() if key in ("uuid", "partuuid") else have == value


def _split(spec: str) -> tuple[str, str]:
    """``(kind, value)`` of a volume spec: kind is ``uuid``, ``label``, ``partuuid``,
    ``partlabel``, ``lvm`` (value ``VG/LV``), ``partition`` (value its number on the
    first disk, ``0`` for the whole disk), ``device`` (another disk) or ``other``."""
    for prefix, kind in (("UUID=", "uuid"), ("LABEL=", "label"), ("PARTUUID=", "partuuid"),
                         ("PARTLABEL=", "partlabel"), ("/dev/disk/by-uuid/", "uuid"),
                         ("/dev/disk/by-label/", "label"),
                         ("/dev/disk/by-partuuid/", "partuuid"),
                         ("/dev/disk/by-partlabel/", "partlabel")):
        if spec.startswith(prefix):
            return kind, _unquote(spec[len(prefix):])
    lv = logical_volume_of(spec)
    if lv is not None:
        return "lvm", lv
    m = _FIRST_DISK_NODE.fullmatch(spec)
    if m:
        first = m.group(1) in ("a", None) and m.group(2) in ("1", None) \
            and m.group(3) in ("0", None)
        return ("partition", m.group(4)) if first else ("device", spec)
    m = _WHOLE_DISK_NODE.fullmatch(spec)
    if m:
        first = m.group(1) in ("a", None) and m.group(2) in ("1", None) \
            and m.group(3) in ("0", None)
        return ("partition", "0") if first else ("device", spec)
    if spec.startswith("/dev/"):
        return "device", spec
    return "other", spec


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def logical_volume_of(spec: str) -> str | None:
    """``VG/LV`` of a device-mapper or LVM node (``/dev/mapper/vg--x-root``,
    ``/dev/vg/root``), or None."""
    if spec.startswith("/dev/mapper/"):
        name = spec[len("/dev/mapper/"):]
        # device-mapper joins VG and LV with "-" and doubles the "-" inside each name.
        parts = re.split(r"(?<!-)-(?!-)", name)
        if len(parts) == 2 and all(parts):
            return "/".join(p.replace("--", "-") for p in parts)
        return None
    m = re.fullmatch(r"/dev/([^/]+)/([^/]+)", spec)
    if m and m.group(1) not in ("disk", "mapper", "md", "block", "char", "pts", "shm",
                                "net", "bus", "cpu", "input", "snd", "dri", "fd"):
        return f"{m.group(1)}/{m.group(2)}"
    return None


def disk_volumes(read: Read, layout: Layout) -> DiskVolumes:
    """The Linux-mountable volumes of the disk ``layout`` describes, in disk order:
    partitions, the whole disk, then logical volumes."""
    volumes: list[Volume] = []
    others: list[dict[str, str | None]] = []
    pv_partition: dict[str, int] = {}
    for p in layout.partitions:
        ids = {"uuid": p.get("uuid"), "label": p.get("label"), "partuuid": p.get("guid"),
               "partlabel": p.get("name")}
        vg = (p.get("lvm") or {}).get("vg")
        if vg is not None:
            pv_partition.setdefault(vg, p["number"])
        if p.get("filesystem") in LINUX_FILESYSTEMS and not p.get("encrypted"):
            volumes.append(Volume(read, p["start"], p["size"], p["filesystem"], p["number"],
                                  **ids))
        else:
            others.append(ids)
    whole = layout.volume
    if not layout.partitions and whole and whole.get("filesystem") in LINUX_FILESYSTEMS:
        volumes.append(Volume(read, 0, whole.get("size") or 0, whole["filesystem"], 0,
                              uuid=whole.get("uuid"), label=whole.get("label")))
    elif whole:
        others.append({"uuid": whole.get("uuid"), "label": whole.get("label")})
    for name, lv in layout.logical_volumes.items():
        if lv.reader is None:
            continue
        facts = _lv_facts(layout, name)
        if facts.get("filesystem") in LINUX_FILESYSTEMS and not facts.get("encrypted"):
            volumes.append(Volume(lv.reader, 0, lv.size, facts["filesystem"],
                                  pv_partition.get(lv.vg, 0), lvm=name,
                                  uuid=facts.get("uuid"), label=facts.get("label")))
        else:
            others.append({"uuid": facts.get("uuid"), "label": facts.get("label")})
    return DiskVolumes(volumes, others, {p["number"] for p in layout.partitions},
                       set(layout.logical_volumes))


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

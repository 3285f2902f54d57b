"""How a Linux configuration names a block device, and whether that device is on this disk.

Sources: fstab(5) and libmount's tag syntax (``UUID=``, ``LABEL=``, ``PARTUUID=``,
``PARTLABEL=``, ``ID=``, values optionally in double quotes); udev's
``/dev/disk/by-*`` links (``60-persistent-storage.rules``; labels escape
unsafe bytes as ``\\xHH``); device-mapper's LVM names (``/dev/mapper/VG-LV``, a
``-`` inside a VG or LV name doubled) and LVM's ``/dev/VG/LV`` links.

Kernel names (``/dev/sda3``, ``/dev/vda3``, ``/dev/xvda3``, ``/dev/nvme0n1p3``) are
judged as the machine the image is imported into sees them: the image is its
first disk, so ``/dev/sda3`` is partition 3 of this image and ``/dev/sdb1`` is on
another disk. ``/dev/disk/by-id`` and ``by-path`` names depend on the hypervisor's
bus and serial numbers: no answer.

Import-rules.md section 1.3 asks that GRUB and fstab name disks by UUID, not by
kernel names (``/dev/sdX``, ``/dev/xvdX``, ``/dev/disk/by-id/...``) that change
with the hypervisor's bus; the same classification serves ``/etc/fstab`` and
the kernel's ``root=``.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    By = Literal["uuid", "label", "partuuid", "lvm", "device", "other"]
    #: ``By`` with the partition label told apart, for :func:`on_this_disk`.
    Kind = Literal["uuid", "label", "partuuid", "partlabel", "lvm", "device", "other"]

#: libmount's tags and what each names (``ID=`` is a /dev/disk/by-id name).
TAGS: dict[str, Kind] = {"UUID": "uuid", "LABEL": "label", "PARTUUID": "partuuid",
                         "PARTLABEL": "partlabel", "ID": "device"}
#: udev's /dev/disk/by-* directories and what each names.
BY_DIRS: dict[str, Kind] = {"by-uuid": "uuid", "by-label": "label",
                            "by-partuuid": "partuuid", "by-partlabel": "partlabel",
                            "by-id": "device", "by-path": "device", "by-diskseq": "device"}
#: Directories of /dev that are not a volume group's (``/dev/VG/LV`` is LVM's link).
DEV_DIRS = frozenset({"disk", "mapper", "md", "block", "char", "bus", "pts", "shm", "fd",
                      "input", "net", "snd", "dri", "cpu", "hugepages", "mqueue"})
_HEX_ESCAPE = re.compile(rb"\\x([0-9A-Fa-f]{2})")
#: A kernel name of a disk or partition: sd/vd/xvd/hd letters, nvmeXnY, mmcblkX, and
#: the partition number (after a ``p`` for nvme and mmcblk).
_KERNEL_NAME = re.compile(r"/dev/(?:(?:s|v|xv|h)d([a-z]+)(\d*)|nvme(\d+)n(\d+)(?:p(\d+))?"
                          r"|mmcblk(\d+)(?:p(\d+))?)")


class DiskIds:
    """The names this disk's volumes answer to: filesystem UUIDs and labels, partition
    UUIDs and labels, and logical volumes as ``VG/LV``. UUIDs compare case-blind
    (blkid prints FAT serials upper case, ext4 UUIDs lower case)."""

    __slots__ = ("labels", "lvs", "partitions", "partlabels", "partuuids", "uuids")

    def __init__(self, uuids: frozenset[str] = frozenset(), labels: frozenset[str] = frozenset(),
                 partuuids: frozenset[str] = frozenset(),
                 partlabels: frozenset[str] = frozenset(),
                 lvs: frozenset[str] = frozenset(),
                 partitions: frozenset[int] = frozenset()) -> None:
        self.uuids = frozenset(u.lower() for u in uuids)
        self.labels = labels
        self.partuuids = frozenset(u.lower() for u in partuuids)
        self.partlabels = partlabels
        self.lvs = lvs
        #: The partition numbers of the disk (empty: a filesystem on the whole disk).
        self.partitions = partitions


def _unquote(value: str) -> str:
    """A tag value without the double quotes libmount allows around it."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _udev_unescape(name: str) -> str:
    """A /dev/disk/by-label name with udev's ``\\xHH`` escapes decoded."""
    raw = _HEX_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]),
                          name.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "replace")


def dm_lvm_name(name: str) -> str | None:
    """``VG/LV`` for a device-mapper name ``VG-LV`` (``--`` stands for ``-``), or None
    when the name has no single dash between two non-empty parts."""
    i = 0
    while i < len(name):
        if name[i] == "-":
            if name[i + 1:i + 2] == "-":
                i += 2
                continue
            vg, lv = name[:i].replace("--", "-"), name[i + 1:].replace("--", "-")
            return f"{vg}/{lv}" if vg and lv else None
        i += 1
    return None


def parse_spec(spec: str) -> tuple[Kind, str | None]:
    """What ``spec`` names and the name itself: ``("uuid", "1234-...")``,
    ``("lvm", "vg0/root")``; the value is None for ``device`` and ``other``."""
    tag, eq, value = spec.partition("=")
    if eq and tag in TAGS:
        kind = TAGS[tag]
        value = _unquote(value)
        if not value:
            return "other", None       # "UUID=" names nothing
        return kind, (value if kind != "device" else None)
    if not spec.startswith("/dev/"):
        return "other", None           # none, tmpfs, proc, host:/export, a swap file
    parts = spec[len("/dev/"):].split("/")
    if len(parts) == 3 and parts[0] == "disk" and parts[1] in BY_DIRS and parts[2]:
        kind = BY_DIRS[parts[1]]
        if kind == "device":
            return kind, None
        return kind, _udev_unescape(parts[2]) if kind in ("label", "partlabel") else parts[2]
    if len(parts) == 2 and parts[0] == "mapper":
        lv = dm_lvm_name(parts[1])
        return ("lvm", lv) if lv is not None else ("device", None)   # a LUKS mapping, ...
    if len(parts) == 2 and parts[0] not in DEV_DIRS and all(parts):
        return "lvm", f"{parts[0]}/{parts[1]}"
    return "device", None


def kernel_partition(spec: str) -> tuple[bool, int] | None:
    """``(on the first disk, partition number)`` of a kernel device name (0: the whole
    disk), or None when ``spec`` is not one."""
    m = _KERNEL_NAME.fullmatch(spec)
    if m is None:
        return None
    letters, sd_part, nvme_ctrl, nvme_ns, nvme_part, mmc, mmc_part = m.groups()
    if letters is not None:
        first, part = letters == "a", sd_part
    elif nvme_ctrl is not None:
        first, part = nvme_ctrl == "0" and nvme_ns == "1", nvme_part
    else:
        first, part = mmc == "0", mmc_part
    return first, int(part) if part else 0


def classify_spec(spec: str) -> By:
    """How ``spec`` names its device, in the contract's words (``by`` of an fstab entry,
    ``root_device_by``): a partition label counts as a ``label``."""
    kind = parse_spec(spec)[0]
    return "label" if kind == "partlabel" else kind


def on_this_disk(spec: str, ids: DiskIds) -> bool | None:
    """Whether ``spec`` names a volume of this disk; None when a name cannot say:
    ``/dev/disk/by-id`` and ``by-path`` names, pseudo and network filesystems, swap
    files and bind mounts (no device of any disk). A kernel name is judged as the
    first disk's (see the module)."""
    kind, value = parse_spec(spec)
    if kind == "device":
        node = kernel_partition(spec)
        if node is None:
            return None
        first, number = node
        return first and (number in ids.partitions if number else not ids.partitions)
    if value is None:
        return None
    if kind == "uuid":
        return value.lower() in ids.uuids
    if kind == "partuuid":
        return value.lower() in ids.partuuids
    if kind == "label":
        return value in ids.labels
    if kind == "partlabel":
        return value in ids.partlabels
    return value in ids.lvs


def lvm_from_cmdline(names: list[str]) -> bool:
    """Whether the kernel parameter ``names`` hold dracut's ``rd.lvm.lv`` (or the older
    ``rd_LVM_LV``), which names a logical volume to activate: with a ``/dev/dm-N`` root
    it is how the root is found."""
    return any(name in ("rd.lvm.lv", "rd_LVM_LV") for name in names)

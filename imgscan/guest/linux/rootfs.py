"""Find the Linux root filesystem of a disk and mount its ``/boot`` and ``/usr``.

As libguestfs's inspection does: every filesystem of the disk (a partition, the
whole disk, a logical volume, each Btrfs subvolume) is a candidate, and the root
is the first one holding ``etc/`` with ``os-release`` or a distribution release
file and ``usr/`` or ``bin/`` (the contract's definition,
:func:`imgscan.guest.linux.release.is_linux_root`). Its ``/etc/fstab`` then says
where ``/boot``, ``/usr`` and the ESP (``/boot/efi``, ``/efi``) are; each that names
a volume of this disk is mounted in the :class:`~.tree.GuestTree`, so the
collectors read ``/boot/grub/grub.cfg`` wherever it lives.

A Btrfs volume is tried at its default subvolume first, then at each subvolume
(``@``, ``root``, ``@/.snapshots/1/snapshot``...), at most
``limits.LINUX_MAX_ENTRIES`` of them.
"""

from __future__ import annotations

from imgscan import limits
from imgscan.errors import ImageError
from imgscan.findings import Finding, finding_id
from imgscan.guest.roots import LINUX_FILESYSTEMS

from .devices import on_this_disk
from .fstab import parse
from .release import is_linux_root
from .tree import GuestTree, Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from imgscan._core.fsapi import FileSystem

    from .volumes import DiskVolumes, Volume

#: The mount points read from fstab: what the collectors look in besides the root.
MOUNTED = ("/boot", "/usr", "/boot/efi", "/efi")
#: Btrfs's top-level subvolume id (BTRFS_FS_TREE_OBJECTID).
BTRFS_TOP_LEVEL = 5


class SeparateMount:
    """A volume of this disk mounted below the root: where, and which volume."""

    __slots__ = ("mount", "volume")

    def __init__(self, mount: Mount, volume: Volume) -> None:
        self.mount = mount
        self.volume = volume

    @property
    def source(self) -> str:
        return self.mount.source


class Root:
    """The root filesystem found: its volume, the subvolume used, the guest tree with
    the separate mounts, and the disk it was found on."""

    __slots__ = ("boot_elsewhere", "disk", "fs", "separate", "subvolume", "tree", "volume")

    def __init__(self, volume: Volume, fs: FileSystem, subvolume: str | None,
                 disk: DiskVolumes, separate: list[SeparateMount],
                 boot_elsewhere: bool) -> None:
        self.volume = volume
        self.fs = fs
        #: The Btrfs subvolume path (``@``), None when the root is not one.
        self.subvolume = subvolume
        self.disk = disk
        self.separate = separate
        #: fstab mounts /boot from a volume that is not on this disk.
        self.boot_elsewhere = boot_elsewhere
        self.tree = GuestTree([Mount("/", fs, volume.source), *(m.mount for m in separate)])

    def mount(self, mountpoint: str) -> SeparateMount | None:
        """The separate volume mounted at ``mountpoint``, if there is one."""
        return next((m for m in self.separate if m.mount.mountpoint == mountpoint), None)


def candidates(volume: Volume, name: str) -> Iterator[tuple[FileSystem, str | None]]:
    """The filesystems of ``volume`` a root may be in, with the subvolume path of each:
    the volume as it opens (a Btrfs one at its default subvolume), then, for Btrfs, each
    other subvolume, opened only when the ones before it were not the root."""
    fs = volume.open(name)
    if volume.filesystem != "btrfs":
        yield fs, None
        return
    default = fs.tree                                    # type: ignore[attr-defined]
    subvolumes = fs.subvolumes()                         # type: ignore[attr-defined]
    limits.enforce(len(subvolumes), "LINUX_MAX_ENTRIES", fs.name, "btrfs subvolumes", None,
                   "subvolumes tried as a root")
    paths = {sub: None if sub == BTRFS_TOP_LEVEL else str(path).lstrip("/")
             for sub, path in subvolumes}
    yield fs, paths.get(default)
    for sub, path in paths.items():
        if sub != default:
            yield fs.open_subvolume(sub), path           # type: ignore[attr-defined]


def find_root(disk: DiskVolumes, name: str, findings: list[Finding]) -> Root | None:
    """The first Linux root on ``disk``, in disk order, with its separate mounts; a
    volume that cannot be opened is a finding and the search goes on."""
    for volume in disk.volumes:
        if volume.filesystem not in LINUX_FILESYSTEMS:
            continue                    # an ESP: mounted below a root, never one
        try:
            for fs, subvolume in candidates(volume, name):
                if is_linux_root(fs):
                    separate, boot_elsewhere = mounts(fs, volume, disk, name, findings)
                    return Root(volume, fs, subvolume, disk, separate, boot_elsewhere)
        except ImageError as exc:
            findings.append(Finding(finding_id(exc), "warning",
                                    f"linux: {volume.source}: {volume.filesystem} not "
                                    f"readable, not searched for a Linux root: {exc}"))
    return None


def mounts(fs: FileSystem, volume: Volume, disk: DiskVolumes, name: str,
           findings: list[Finding]) -> tuple[list[SeparateMount], bool]:
    """The volumes of :data:`MOUNTED` that the root ``fs``'s fstab places on this disk
    (a Btrfs one at its ``subvol=``), and whether it puts /boot on another disk."""
    separate: list[SeparateMount] = []
    boot_elsewhere = False
    try:
        text = GuestTree([Mount("/", fs, volume.source)]).text("/etc/fstab")
    except ImageError as exc:
        findings.append(Finding(finding_id(exc), "warning",
                                f"linux: /etc/fstab not read for the mounts: {exc}"))
        text = None
    for spec, mountpoint, _, options in parse(text or ""):
        point = mountpoint.rstrip("/") or "/"
        if point not in MOUNTED or any(m.mount.mountpoint == point for m in separate):
            continue
        target = disk.find(spec)
        if target is None:
            boot_elsewhere |= point == "/boot" and on_this_disk(spec, disk.ids) is False
            continue
        try:
            opened = target.open(name)
            subvol = _option(options, "subvol") or _option(options, "subvolid")
            if subvol is not None and target.filesystem == "btrfs":
                opened = opened.open_subvolume(   # type: ignore[attr-defined]
                    int(subvol) if subvol.isdigit() else subvol)
        except ImageError as exc:
            findings.append(Finding(finding_id(exc), "warning",
                                    f"linux: {point} ({target.source}) not mounted: {exc}"))
            continue
        separate.append(SeparateMount(Mount(point, opened, target.source), target))
    return separate, boot_elsewhere


def _option(options: str, key: str) -> str | None:
    """The value of ``key=value`` in a comma-separated mount option list."""
    for opt in options.split(","):
        k, sep, v = opt.partition("=")
        if sep and k == key:
            return v
    return None

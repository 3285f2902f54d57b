"""Where guest operating system roots may be: the volumes of a layout, by filesystem.

The one pass every guest inspector starts from, whatever the OS: Windows looks
for its system root on NTFS volumes, Linux on ext2/3/4, XFS and Btrfs volumes. It
reads nothing: the layout stage already probed each volume.
"""

from __future__ import annotations

from imgscan import limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.layout import Layout

    #: (partition number, or None for the whole disk; start; size) in bytes.
    Volume = tuple[int | None, int, int]


def volumes(layout: Layout, filesystem: str) -> list[Volume]:
    """The volumes of ``layout`` holding ``filesystem``: every such partition, or the
    whole disk when it has no partition table."""
    # A partition's size is what its table claims, up to 2^64 sectors; no disk holds
    # more than limits.MAX_VIRTUAL_SIZE (the volume readers take 64-bit sizes).
    found: list[Volume] = [
        (p["number"], p["start"], min(p["size"], limits.MAX_VIRTUAL_SIZE))
        for p in layout.partitions if p.get("filesystem") == filesystem]
    if not layout.partitions and layout.filesystem == filesystem and layout.volume:
        found.append((None, 0, layout.volume.get("size") or 0))
    return found


def holds(layout: Layout, filesystem: str) -> bool:
    """Whether any volume of ``layout`` holds ``filesystem`` (checked before an
    inspector is even imported)."""
    return any(p.get("filesystem") == filesystem for p in layout.partitions) \
        or layout.filesystem == filesystem


#: The filesystems a Linux root, /boot or /usr may be on (those the core reads).
LINUX_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs"})


def holds_linux(layout: Layout) -> bool:
    """Whether any volume of ``layout`` (a partition, the whole disk or a logical volume)
    holds a filesystem a Linux root may be on."""
    if any(p.get("filesystem") in LINUX_FILESYSTEMS for p in layout.partitions) \
            or layout.filesystem in LINUX_FILESYSTEMS:
        return True
    return any(lv.get("filesystem") in LINUX_FILESYSTEMS
               for holder in [*layout.partitions, layout.volume or {}]
               for lv in (holder.get("lvm") or {}).get("lvs") or [])

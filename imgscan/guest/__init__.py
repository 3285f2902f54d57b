"""Guest operating system inspection: what is installed inside the disk, read offline.

The stage after the layout: it takes the guest-byte reader and the layout
(never the image), finds each OS's roots on the volumes (:mod:`.roots`) and
returns the contract's per-OS objects with the findings of the inspection,
each filed under its OS's stage: Windows (:mod:`imgscan.guest.windows`) on the
NTFS volumes, Linux (:mod:`imgscan.guest.linux`) on the ext2/3/4, XFS and Btrfs
volumes and logical volumes. Each inspector is imported only for a disk that has
a volume it reads, so ``imgscan info`` of other disks pays nothing for it.
"""

from __future__ import annotations

from imgscan.errors import ImageError
from imgscan.findings import Finding, finding_id
from imgscan.vocabulary import LINUX, WINDOWS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from imgscan.disk_image import Prefetch
    from imgscan.layout import Layout

    Read = Callable[[int, int], bytes]

def inspect(read: Read | None, layout: Layout, name: str = "guest disk",
            prefetch: Prefetch | None = None) -> tuple[dict[str, Any], list[Finding]]:
    """Each OS's contract object (None when not found) and the findings of the search;
    ``name`` names the image in errors; ``prefetch`` takes announcements of what is
    read next (``GuestBytes.prefetch``).

    ``read`` is None when the guest bytes cannot be read: nothing is searched.
    """
    found: dict[str, Any] = {"windows": None, "linux": None}
    findings: list[Finding] = []
    if read is None or not (layout.volume or layout.filesystem or (layout.partitions and any(
            p.get("filesystem") for p in layout.partitions))):
        return found, findings  # no volume to search (most disks of a library)
    # imported past that return: a disk with no volume (the blank disks of a library,
    # `imgscan info` of one) does not load the module (start-up)
    from .roots import holds, holds_linux
    if holds(layout, "ntfs"):
        # Imported only for a disk with an NTFS volume: `imgscan info` on other disks
        # pays nothing for the registry and NTFS readers (start-up time).
        from . import windows
        try:
            found["windows"], more = windows.inspect(read, layout, prefetch)
        except ImageError as exc:
            more = [Finding(finding_id(exc), "warning", f"windows: inspection stopped: {exc}")]
        findings += [f.at(WINDOWS) for f in more]
    if holds_linux(layout):
        from . import linux
        try:
            found["linux"], more = linux.inspect(read, layout, name)
        except ImageError as exc:
            more = [Finding(finding_id(exc), "warning", f"linux: inspection stopped: {exc}")]
        findings += [f.at(LINUX) for f in more]
    return found, findings

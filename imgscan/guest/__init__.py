"""Guest operating system inspection: what is installed inside the disk, read offline.

The stage after the layout: it takes the guest-byte reader and the layout
(never the image), finds each OS's roots on the volumes (:mod:`.roots`) and
returns the contract's per-OS objects with the findings of the inspection,
each filed under the ``guest`` stage. Only Windows so far
(:mod:`imgscan.guest.windows`); ``guest/linux/`` comes next, as one more
inspector called from :func:`inspect`.
"""

from __future__ import annotations

from imgscan.errors import ImageError
from imgscan.findings import Finding, finding_id
from imgscan.vocabulary import WINDOWS

from .roots import holds

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from imgscan.layout import Layout

    Read = Callable[[int, int], bytes]

def inspect(read: Read | None, layout: Layout) -> tuple[dict[str, Any], list[Finding]]:
    """Each OS's contract object (None when not found) and the findings of the search.

    ``read`` is None when the guest bytes cannot be read: nothing is searched.
    """
    found: dict[str, Any] = {"windows": None}
    findings: list[Finding] = []
    if read is None:
        return found, findings
    if holds(layout, "ntfs"):
        # Imported only for a disk with an NTFS volume: `imgscan info` on other disks
        # pays nothing for the registry and NTFS readers (start-up time).
        from . import windows
        try:
            found["windows"], more = windows.inspect(read, layout)
        except ImageError as exc:
            more = [Finding(finding_id(exc), "warning", f"windows: inspection stopped: {exc}")]
        findings += [f.at(WINDOWS) for f in more]
    return found, findings

"""The SELinux mode the guest boots in.

Sources: selinux_config(5) (``SELINUX=enforcing|permissive|disabled`` in
``/etc/selinux/config``) and the kernel parameters ``selinux=0`` (SELinux off
whatever the file says) and ``enforcing=0`` (permissive). Without the file the
guest has no SELinux policy set up and the fact is None, whatever the command line.
"""

from __future__ import annotations

from imgscan.guest.linux.cmdline import parameters
from imgscan.guest.linux.shellvars import assignments

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

CONFIG = "/etc/selinux/config"
MODES = ("enforcing", "permissive", "disabled")


def selinux(tree: GuestTree, cmdline: str | None = None) -> tuple[str | None, str | None]:
    """``enforcing``, ``permissive``, ``disabled`` or None, and the evidence."""
    text = tree.text(CONFIG)
    if text is None:
        return None, None
    value = assignments(text).get("SELINUX", "").strip().lower()
    mode = value if value in MODES else None
    evidence = tree.where(CONFIG)
    params = parameters(cmdline) if cmdline is not None else {}
    if params.get("selinux") == "0":
        return "disabled", f"{evidence}; kernel command line selinux=0"
    if params.get("enforcing") == "0" and mode == "enforcing":
        return "permissive", f"{evidence}; kernel command line enforcing=0"
    return mode, evidence

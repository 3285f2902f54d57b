"""Whether VMware Tools or open-vm-tools is installed.

Source: import-rules.md 1.3 (IMS deletes VMware Tools services at registration);
the files the packages install: ``vmtoolsd`` (open-vm-tools and VMware's own
tools), ``/etc/vmware-tools/`` (both), and their service units and init scripts.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

MARKERS = ("/usr/bin/vmtoolsd", "/usr/sbin/vmtoolsd", "/etc/vmware-tools",
           "/usr/lib/systemd/system/vmtoolsd.service", "/lib/systemd/system/vmtoolsd.service",
           "/usr/lib/systemd/system/open-vm-tools.service",
           "/lib/systemd/system/open-vm-tools.service", "/etc/init.d/vmware-tools",
           "/etc/init.d/open-vm-tools")


def vmware_tools(tree: GuestTree) -> tuple[bool, str | None]:
    """True and the first file found, or False and None."""
    for path in MARKERS:
        if tree.exists(path):
            return True, tree.where(path)
    return False, None

"""Whether a hypervisor's guest tools are installed: VMware Tools, the QEMU guest agent.

Sources: import-rules.md 1.3 (IMS deletes VMware Tools services at registration) and
2.1 (Alibaba ECS: no qemu-ga); the files the packages install: ``vmtoolsd``
(open-vm-tools and VMware's own tools), ``/etc/vmware-tools/`` (both), and their
service units and init scripts; ``qemu-ga`` (Debian's and Red Hat's qemu-guest-agent)
with its ``qemu-guest-agent.service`` unit or init script.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from imgscan.guest.linux.tree import GuestTree

MARKERS = ("/usr/bin/vmtoolsd", "/usr/sbin/vmtoolsd", "/etc/vmware-tools",
           "/usr/lib/systemd/system/vmtoolsd.service", "/lib/systemd/system/vmtoolsd.service",
           "/usr/lib/systemd/system/open-vm-tools.service",
           "/lib/systemd/system/open-vm-tools.service", "/etc/init.d/vmware-tools",
           "/etc/init.d/open-vm-tools")
QEMU_GA_MARKERS = ("/usr/bin/qemu-ga", "/usr/sbin/qemu-ga",
                   "/usr/lib/systemd/system/qemu-guest-agent.service",
                   "/lib/systemd/system/qemu-guest-agent.service",
                   "/etc/init.d/qemu-guest-agent")


def _first(tree: GuestTree, markers: Sequence[str]) -> tuple[bool, str | None]:
    """True and the first of ``markers`` found, or False and None."""
    for path in markers:
        if tree.exists(path):
            return True, tree.where(path)
    return False, None


def vmware_tools(tree: GuestTree) -> tuple[bool, str | None]:
    return _first(tree, MARKERS)


def qemu_guest_agent(tree: GuestTree) -> tuple[bool, str | None]:
    return _first(tree, QEMU_GA_MARKERS)

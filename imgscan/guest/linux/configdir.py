"""The configuration files of one guest directory, in the order their readers take them.

Every ``*.d`` style directory a collector reads (network configurations, udev
rules, cloud.cfg.d) goes through here, so the count a hostile image can make a
collector read is bounded once: ``limits.LINUX_MAX_ENTRIES`` files per
directory, refused beyond that rather than silently cut (a truncated list
would make a wrong fact look complete).
"""

from __future__ import annotations

import posixpath

from imgscan import limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from imgscan.guest.linux.tree import GuestTree


def config_files(tree: GuestTree, directory: str, accept: Callable[[str], bool]) -> list[str]:
    """The guest paths of the names in ``directory`` that ``accept`` takes, sorted by
    name (the order of run-parts, systemd, cloud-init and netplan)."""
    names = sorted(name for name in tree.listdir(directory) if accept(name))
    limits.enforce(len(names), "LINUX_MAX_ENTRIES", tree.where(directory),
                   f"directory {directory!r}", None, "configuration files")
    return [posixpath.join(directory, name) for name in names]

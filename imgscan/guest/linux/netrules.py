"""udev rules that pin network interface names to MAC addresses.

Source: import-rules.md 1.3 ("delete the udev persistent-net rules",
``/etc/udev/rules.d/*persistent*net*``; for CentOS 6 an empty
``75-persistent-net-generator.rules``) and udev(7) (only ``*.rules`` files are
read; ``NAME=`` assigns the interface name, ``ATTR{address}==`` matches the MAC).
A cloned image keeps the old NIC's MAC in such a rule, so its new NIC comes up
as ``eth1`` with no configuration.

A file counts when it is named like a persistent-net file and holds a rule, or
when any of its rules both matches ``ATTR{address}`` and assigns ``NAME``. An
empty or comments-only file is the generator's mask, the fix itself, and is left out.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re

from imgscan.guest.linux.configdir import config_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

RULES_DIR = "/etc/udev/rules.d"
NAME_PATTERN = "*persistent*net*"
_MATCHES_MAC = re.compile(r"ATTRS?\{address\}\s*==")
_ASSIGNS_NAME = re.compile(r"(?:^|[\s,])NAME\s*:?=(?!=)")


def pins_name(rule: str) -> bool:
    """Whether one udev rule line names an interface after its MAC address."""
    return _MATCHES_MAC.search(rule) is not None and _ASSIGNS_NAME.search(rule) is not None


def persistent_net_rules(tree: GuestTree) -> tuple[list[str], str | None]:
    """The guest paths of the rule files that pin names, and the directory read."""
    found: list[str] = []
    for path in config_files(tree, RULES_DIR, lambda n: n.endswith(".rules")):
        text = tree.text(path)
        if text is None:
            continue
        rules = [line for line in text.split("\n")
                 if line.strip() and not line.lstrip().startswith("#")]
        named = fnmatch.fnmatchcase(posixpath.basename(path), NAME_PATTERN)
        if (named and rules) or any(pins_name(rule) for rule in rules):
            found.append(path)
    return found, tree.where(RULES_DIR) if tree.kind(RULES_DIR) == "dir" else None

"""How each configured network interface gets its address, from every configuration
system a distribution may use.

Sources, one reader each:

* ifupdown, interfaces(5): ``/etc/network/interfaces``, ``iface NAME FAMILY METHOD``
  stanzas, ``source PATTERN`` (a shell glob, relative to the including file's
  directory) and ``source-directory DIR`` (names of ``[A-Za-z0-9_-]`` only, as
  run-parts takes them); a backslash continues a line.
* RHEL initscripts / NetworkManager ifcfg-rh, ``/etc/sysconfig/network-scripts/ifcfg-*``,
  and SUSE wicked, ``/etc/sysconfig/network/ifcfg-*`` (ifcfg(5)): shell variables,
  ``DEVICE`` (else the file's suffix), ``BOOTPROTO``, ``IPADDR*``. Backup names
  both ignore (``*~``, ``.bak``, ``.orig``, ``.old``, ``.rpm*``) are ignored.
* netplan(5), ``/etc/netplan/*.yaml``: ``network: {ethernets, bonds, ...: {ID: {dhcp4,
  addresses, set-name, match: {name}}}}``.
* NetworkManager keyfiles, nm-settings-keyfile(5), ``/etc/NetworkManager/system-connections/``:
  ``[connection] interface-name``, ``[ipv4] method`` (default ``auto``).
* systemd-networkd, systemd.network(5), ``/etc/systemd/network/*.network``:
  ``[Match] Name=``, ``[Network] DHCP=``, ``Address=`` (also in ``[Address]``).

``method`` is the interface's IPv4 configuration, the one IMS needs by DHCP
(import-rules.md 1.3): ``dhcp``, ``static`` (an IPv4 address), ``manual`` (link
up, no address: a bond slave, an unconfigured NIC) or ``other`` (IPv6 only,
PPP, link-local, ...). One entry per interface per configuration file, in the
order above; ``interface`` is ``*`` for a NetworkManager profile or networkd
file that matches devices by something other than a name. Loopback is left out.
Files of other directories (``/usr/lib/systemd/network``, ``/run``) are vendor
defaults or runtime state, not this image's configuration, and are not read.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re

from imgscan import limits
from imgscan.guest.linux import keyfile
from imgscan.guest.linux.configdir import config_files
from imgscan.guest.linux.shellvars import assignments
from imgscan.guest.linux.yamlsubset import load, truthy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Literal

    from imgscan.guest.linux.tree import GuestTree
    from imgscan.guest.linux.yamlsubset import Node

    Method = Literal["dhcp", "static", "manual", "other"]
    Entry = dict[str, str]

INTERFACES = "/etc/network/interfaces"
IFCFG_DIRS = ("/etc/sysconfig/network-scripts", "/etc/sysconfig/network")
NETPLAN_DIR = "/etc/netplan"
NM_DIR = "/etc/NetworkManager/system-connections"
NETWORKD_DIR = "/etc/systemd/network"
#: Backup and package-manager leftovers that ifcfg readers skip.
IGNORED_SUFFIXES = ("~", ".bak", ".orig", ".old", ".rpmnew", ".rpmorig", ".rpmsave",
                    ".dpkg-old", ".dpkg-dist", ".swp")
#: netplan's device kinds.
NETPLAN_KINDS = ("ethernets", "wifis", "bonds", "bridges", "vlans", "tunnels", "vrfs",
                 "modems", "dummy-devices", "virtual-ethernets")
_RUN_PARTS_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_GLOB_CHARS = frozenset("*?[")


def network(tree: GuestTree) -> tuple[list[Entry], str | None]:
    """The contract's ``network`` entries and the files they came from."""
    entries = [e for e in (*ifupdown(tree), *ifcfg(tree), *netplan(tree),
                           *networkmanager(tree), *networkd(tree))
               if e["interface"] != "lo"]
    sources = dict.fromkeys(e["source"] for e in entries)
    return entries, "; ".join(sources) or None


def _entry(interface: str, method: Method, source: str) -> Entry:
    return {"interface": interface, "method": method, "source": source}


# -- ifupdown -----------------------------------------------------------------------
#: ifupdown's IPv4 methods; loopback is left out, the rest are ``other``.
IFUPDOWN_METHODS: dict[str, Method] = {"dhcp": "dhcp", "static": "static", "manual": "manual"}


def ifupdown_lines(text: str) -> Iterator[list[str]]:
    """The words of each line of an interfaces file: comments dropped, a trailing
    backslash joining the next line."""
    pending: list[str] = []        # the pieces of a continued line, joined once at its end
    for raw in text.split("\n"):
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        pending.append(raw)
        words = " ".join(pending).split()
        pending = []
        if words and not words[0].startswith("#"):
            yield words


def ifupdown(tree: GuestTree) -> list[Entry]:
    """Entries of ``/etc/network/interfaces`` and what it sources: each file read once
    (a file sourcing itself or a loop of them ends there), at most
    ``LINUX_MAX_ENTRIES`` files in all."""
    found: list[Entry] = []
    stack, seen = [INTERFACES], set()       # the next file to read last
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        seen.add(path)
        limits.enforce(len(seen), "LINUX_MAX_ENTRIES", tree.where(INTERFACES),
                       "ifupdown source chain", None, "files sourced")
        text = tree.text(path)
        if text is None:
            continue
        families: dict[str, dict[str, str]] = {}
        included: dict[str, None] = {}    # in order, each file once
        patterns: set[tuple[str, str]] = set()
        for words in ifupdown_lines(text):
            if words[0] == "iface" and len(words) >= 4:
                families.setdefault(words[1], {})[words[2]] = words[3]
            elif words[0] in ("source", "source-directory") and len(words) >= 2 \
                    and (words[0], words[1]) not in patterns:
                patterns.add((words[0], words[1]))      # a repeated line is read once
                if words[0] == "source":
                    included.update(dict.fromkeys(_source(tree, path, words[1])))
                else:
                    directory = posixpath.normpath(posixpath.join(posixpath.dirname(path),
                                                                  words[1]))
                    included.update(dict.fromkeys(config_files(
                        tree, directory, lambda n: _RUN_PARTS_NAME.match(n) is not None)))
        for name, by_family in families.items():
            if by_family.get("inet") == "loopback":
                continue
            method = IFUPDOWN_METHODS.get(by_family.get("inet", ""), "other")
            found.append(_entry(name, method, path))
        stack.extend(reversed(included))
    return found


def _source(tree: GuestTree, including: str, pattern: str) -> list[str]:
    """The files a ``source PATTERN`` line names: a glob in the last component only
    (a wildcard in a directory name is not followed)."""
    pattern = posixpath.normpath(posixpath.join(posixpath.dirname(including), pattern))
    directory, name = posixpath.split(pattern)
    if _GLOB_CHARS & set(directory):
        return []
    if not _GLOB_CHARS & set(name):
        return [pattern]
    return config_files(tree, directory, lambda n: (not n.startswith(".") or name[:1] == ".")
                        and fnmatch.fnmatchcase(n, name))


# -- ifcfg (RHEL, SUSE) ---------------------------------------------------------------
def _ifcfg_name(name: str) -> bool:
    return name.startswith("ifcfg-") and name != "ifcfg-lo" and not name.endswith(
        IGNORED_SUFFIXES)


def ifcfg_method(values: dict[str, str]) -> Method:
    """``BOOTPROTO`` read as both initscripts and wicked do: ``dhcp``, ``dhcp4``,
    ``dhcp+autoip`` and ``bootp`` ask DHCP for IPv4; ``none``, ``static`` or nothing
    is static with an ``IPADDR*``, manual without."""
    proto = values.get("BOOTPROTO", "").strip().lower()
    if proto == "bootp" or (proto.startswith("dhcp") and proto != "dhcp6"):
        return "dhcp"
    if proto in ("", "none", "static"):
        has_address = any(k.startswith("IPADDR") and v for k, v in values.items())
        return "static" if has_address else "manual"
    return "other"


def ifcfg(tree: GuestTree) -> list[Entry]:
    found: list[Entry] = []
    for directory in IFCFG_DIRS:
        for path in config_files(tree, directory, _ifcfg_name):
            text = tree.text(path)
            if text is None:
                continue
            values = assignments(text)
            name = values.get("DEVICE") or posixpath.basename(path)[len("ifcfg-"):]
            found.append(_entry(name, ifcfg_method(values), path))
    return found


# -- netplan -----------------------------------------------------------------------------
def netplan_method(conf: Node) -> Method:
    if not isinstance(conf, dict):
        return "manual"
    if truthy(conf.get("dhcp4")):
        return "dhcp"
    addresses = conf.get("addresses")
    written: list[str] = []
    for item in addresses if isinstance(addresses, list) else []:
        written += [item] if isinstance(item, str) else list(item) if isinstance(item, dict) \
            else []
    if any(":" not in a for a in written):
        return "static"
    return "other" if written or truthy(conf.get("dhcp6")) else "manual"


def netplan_interfaces(doc: dict[str, Node]) -> Iterator[tuple[str, Method]]:
    """``(interface, method)`` of every device a netplan document defines; the
    interface is its ``set-name``, else its ``match: name``, else its ID."""
    net = doc.get("network")
    for kind in NETPLAN_KINDS:
        devices = net.get(kind) if isinstance(net, dict) else None
        for ident, conf in devices.items() if isinstance(devices, dict) else ():
            name = ident
            if isinstance(conf, dict):
                match = conf.get("match")
                matched = match.get("name") if isinstance(match, dict) else None
                set_name = conf.get("set-name")
                name = set_name if isinstance(set_name, str) and set_name else \
                    matched if isinstance(matched, str) and matched else ident
            yield name, netplan_method(conf)


def netplan(tree: GuestTree) -> list[Entry]:
    found: list[Entry] = []
    for path in config_files(tree, NETPLAN_DIR, lambda n: n.endswith(".yaml")):
        text = tree.text(path)
        if text is not None:
            found += [_entry(n, m, path) for n, m in netplan_interfaces(load(text))]
    return found


# -- NetworkManager keyfiles -------------------------------------------------------------
NM_METHODS: dict[str, Method] = {"auto": "dhcp", "manual": "static"}


def _nm_name(name: str) -> bool:
    """Keyfiles are ``*.nmconnection``, or (older) named after the connection, no dot."""
    return not name.startswith(".") and (name.endswith(".nmconnection") or "." not in name)


def networkmanager(tree: GuestTree) -> list[Entry]:
    found: list[Entry] = []
    for path in config_files(tree, NM_DIR, _nm_name):
        text = tree.text(path)
        if text is None:
            continue
        values = keyfile.entries(text)
        if keyfile.last(values, "connection", "type") == "loopback":
            continue
        name = keyfile.last(values, "connection", "interface-name") or "*"
        method = keyfile.last(values, "ipv4", "method") or "auto"
        found.append(_entry(name, NM_METHODS.get(method, "other"), path))
    return found


# -- systemd-networkd --------------------------------------------------------------------
#: ``DHCP=`` values that enable DHCPv4 (systemd's booleans, ``ipv4``, and the old ``both``).
NETWORKD_DHCP4 = frozenset({"yes", "true", "on", "1", "ipv4", "both"})


def networkd_method(values: list[tuple[str, str, str]]) -> Method:
    dhcp = (keyfile.last(values, "Network", "DHCP") or "").lower()
    if dhcp in NETWORKD_DHCP4:
        return "dhcp"
    addresses = [v for s, k, v in values if k == "Address" and s in ("Network", "Address")]
    if any(":" not in a for a in addresses):
        return "static"
    return "other" if addresses or dhcp == "ipv6" else "manual"


def networkd(tree: GuestTree) -> list[Entry]:
    found: list[Entry] = []
    for path in config_files(tree, NETWORKD_DIR, lambda n: n.endswith(".network")):
        text = tree.text(path)
        if text is None:
            continue
        values = keyfile.entries(text)
        names = " ".join(v for s, k, v in values if s == "Match" and k == "Name") or "*"
        found.append(_entry(names, networkd_method(values), path))
    return found

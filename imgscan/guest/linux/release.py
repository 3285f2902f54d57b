"""Which distribution a Linux root holds: os-release, else the older release files.

Sources: os-release(5) (``/etc/os-release``, else ``/usr/lib/os-release``; ``ID``,
``ID_LIKE`` a space-separated list, ``NAME``, ``VERSION_ID``, ``PRETTY_NAME``);
for guests older than os-release, the files their release packages install:
``/etc/redhat-release`` and its siblings (one line ``NAME release VERSION (CODENAME)``:
centos-release, redhat-release, fedora-release, oraclelinux-release,
euleros-release, openEuler-release), ``/etc/SuSE-release`` (a product line, then
``VERSION = 12`` / ``PATCHLEVEL = 3``), ``/etc/lsb-release`` (``DISTRIB_ID``,
``DISTRIB_RELEASE``, ``DISTRIB_DESCRIPTION``; Ubuntu) and ``/etc/debian_version``.
The contract's ``linux`` object says which is read (json-contract.md).

From an older file, ``distro`` is the ID that distribution's os-release uses
(``centos``, ``rhel``, ``ol``, ``sles``, ...), ``version_id`` the version as
the file writes it (``7.9.2009``, ``12.3``: the release file is more precise
than os-release's ``VERSION_ID``), ``distro_like`` is empty.
"""

from __future__ import annotations

import re

from imgscan.guest.linux.shellvars import assignments

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imgscan._core.fsapi import FileSystem
    from imgscan.guest.linux.tree import GuestTree

OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
#: The single-line ``NAME release VERSION`` files, most specific first: Oracle Linux
#: and CentOS also install a redhat-release naming Red Hat.
REDHAT_STYLE = ("/etc/oracle-release", "/etc/centos-release", "/etc/euleros-release",
                "/etc/openEuler-release", "/etc/fedora-release", "/etc/redhat-release")
SUSE_RELEASE = "/etc/SuSE-release"
LSB_RELEASE = "/etc/lsb-release"
DEBIAN_VERSION = "/etc/debian_version"
#: Every file that marks a Linux root (the contract's definition of one).
RELEASE_FILES = (*OS_RELEASE, *REDHAT_STYLE, SUSE_RELEASE, LSB_RELEASE, DEBIAN_VERSION)

#: Product names of the one-line release files -> os-release ID, longest match first.
REDHAT_IDS = (
    ("Red Hat Enterprise Linux", "rhel"), ("CentOS Stream", "centos"), ("CentOS", "centos"),
    ("Fedora", "fedora"), ("Oracle Linux", "ol"), ("EulerOS", "euleros"),
    ("openEuler", "openEuler"), ("Rocky Linux", "rocky"), ("AlmaLinux", "almalinux"),
    ("Scientific Linux", "scientific"), ("NeoKylin", "neokylin"),
)
# Linear patterns only: a release file may be one 4 MiB line (no nested or adjacent
# unbounded repeats that backtrack over the same blanks).
_VERSION = re.compile(r"[0-9][0-9.]*")
_SUSE_FIELD = re.compile(r"^[ \t]*(VERSION|PATCHLEVEL)[ \t]*=[ \t]*(\S+)", re.MULTILINE)


def empty() -> dict[str, Any]:
    """The facts when no file names the distribution."""
    return {"distro": None, "distro_like": [], "name": None, "version_id": None,
            "pretty_name": None}


def release(tree: GuestTree) -> tuple[dict[str, Any], str | None]:
    """``distro``, ``distro_like``, ``name``, ``version_id``, ``pretty_name`` and the
    file they came from (evidence), or empty facts and None."""
    for path in OS_RELEASE:
        text = tree.text(path)
        if text is not None:
            return from_os_release(text), tree.where(path)
    for path in REDHAT_STYLE:
        text = tree.text(path)
        if text is not None and (facts := from_redhat_release(text)) is not None:
            return facts, tree.where(path)
    readers = ((SUSE_RELEASE, from_suse_release), (LSB_RELEASE, from_lsb_release),
               (DEBIAN_VERSION, from_debian_version))
    for path, reader in readers:
        text = tree.text(path)
        if text is not None and (facts := reader(text)) is not None:
            return facts, tree.where(path)
    return empty(), None


def from_os_release(text: str) -> dict[str, Any]:
    values = assignments(text)
    return {"distro": values.get("ID") or None,
            "distro_like": values.get("ID_LIKE", "").split(),
            "name": values.get("NAME") or None,
            "version_id": values.get("VERSION_ID") or None,
            "pretty_name": values.get("PRETTY_NAME") or None}


def from_redhat_release(text: str) -> dict[str, Any] | None:
    """Facts of ``CentOS Linux release 7.9.2009 (Core)`` and alike; None when the first
    line is not ``NAME release VERSION``."""
    line = text.strip().split("\n", 1)[0].strip()
    words = line.split()
    at = next((i for i in range(1, len(words) - 1) if words[i] == "release"
               and _VERSION.match(words[i + 1])), None)
    if at is None:
        return None
    name = " ".join(words[:at])
    version = _VERSION.match(words[at + 1])
    assert version is not None
    distro = next((i for prefix, i in REDHAT_IDS if name.startswith(prefix)), None)
    return {**empty(), "distro": distro, "name": name, "version_id": version.group(0),
            "pretty_name": line}


def from_suse_release(text: str) -> dict[str, Any] | None:
    """Facts of ``SUSE Linux Enterprise Server 12 (x86_64)`` / ``VERSION = 12`` /
    ``PATCHLEVEL = 3`` (``12.3``, as SLES 12 SP3's os-release says ``VERSION_ID``)."""
    fields = dict(_SUSE_FIELD.findall(text))
    if "VERSION" not in fields:
        return None
    product = text.strip().split("\n", 1)[0].rstrip()
    if product.endswith(")") and "(" in product:          # "... 12 (x86_64)"
        product = product[:product.rfind("(")].rstrip()
    version = fields["VERSION"]
    if fields.get("PATCHLEVEL", "0") != "0":
        version = f"{version}.{fields['PATCHLEVEL']}"
    distro = "opensuse" if product.lower().startswith("opensuse") else \
        "sled" if "Desktop" in product else "sles"
    head, _, last = product.rpartition(" ")
    name = head.rstrip() if head and _VERSION.fullmatch(last) else product
    return {**empty(), "distro": distro, "name": name, "version_id": version,
            "pretty_name": product}


def from_lsb_release(text: str) -> dict[str, Any] | None:
    values = assignments(text)
    if not values.get("DISTRIB_ID"):
        return None
    return {**empty(), "distro": values["DISTRIB_ID"].lower(), "name": values["DISTRIB_ID"],
            "version_id": values.get("DISTRIB_RELEASE") or None,
            "pretty_name": values.get("DISTRIB_DESCRIPTION") or None}


def from_debian_version(text: str) -> dict[str, Any] | None:
    """Debian's ``12.15`` (a version) or ``bookworm/sid`` (a testing release: no version)."""
    value = text.strip().split("\n", 1)[0].strip()
    if not value:
        return None
    version = value if value[:1].isdigit() else None
    return {**empty(), "distro": "debian", "name": "Debian GNU/Linux", "version_id": version,
            "pretty_name": f"Debian GNU/Linux {value}"}


def is_linux_root(fs: FileSystem) -> bool:
    """Whether ``fs`` is a Linux root filesystem as the contract defines one: ``/etc``
    holding os-release or a release file, and ``/usr`` or ``/bin``. A few lookups,
    no reads; links are not followed (``/etc/os-release`` points into ``/usr``,
    ``/bin`` to ``usr/bin``, and ``/usr`` may be another volume)."""
    etc = fs.lookup("/etc", follow=False)
    if etc is None or etc.kind != "dir":
        return False
    if not any(fs.lookup(p, follow=False) is not None
               for p in RELEASE_FILES if p.startswith("/etc/")):
        return False
    return any(fs.lookup(p, follow=False) is not None for p in ("/usr", "/bin"))

"""Whether cloud-init is installed, whether it will run, and which datasources it tries.

Sources: cloud-init's documentation ("How to disable cloud-init": the file
``/etc/cloud/cloud-init.disabled`` or ``cloud-init=disabled`` on the kernel command
line; its systemd units masked, i.e. linked to ``/dev/null`` in
``/etc/systemd/system``), and its configuration reading (``/etc/cloud/cloud.cfg``,
then ``/etc/cloud/cloud.cfg.d/*.cfg`` in name order, a later ``datasource_list``
replacing an earlier one). Import-rules.md 1.3 recommends cloud-init for IMS.

``installed``: the ``cloud-init`` program, or ``cloud.cfg`` with the ``cloudinit``
Python package. ``enabled`` is None when it is not installed; ``datasources`` is
None when no file states a list.
"""

from __future__ import annotations

from imgscan.guest.linux.cmdline import parameters
from imgscan.guest.linux.configdir import config_files
from imgscan.guest.linux.yamlsubset import load

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imgscan.guest.linux.tree import GuestTree

PROGRAMS = ("/usr/bin/cloud-init", "/usr/local/bin/cloud-init")
CLOUD_CFG = "/etc/cloud/cloud.cfg"
CLOUD_CFG_D = "/etc/cloud/cloud.cfg.d"
DISABLED = "/etc/cloud/cloud-init.disabled"
#: cloud-init's systemd units (``cloud-init-network`` and ``cloud-init-main`` since 24.x).
UNITS = ("cloud-init.target", "cloud-init-local.service", "cloud-init.service",
         "cloud-init-network.service", "cloud-init-main.service", "cloud-config.service",
         "cloud-final.service")
SYSTEMD_ETC = "/etc/systemd/system"


def _python_package(tree: GuestTree) -> str | None:
    """The ``cloudinit`` package directory in ``/usr/lib/python*/{site,dist}-packages``."""
    for base in config_files(tree, "/usr/lib", lambda n: n.startswith("python")):
        for packages in ("site-packages", "dist-packages"):
            path = f"{base}/{packages}/cloudinit"
            if tree.kind(path) == "dir":
                return path
    return None


def datasources(tree: GuestTree) -> tuple[list[str] | None, str | None]:
    """The last ``datasource_list`` of the configuration files, and its file."""
    found: tuple[list[str] | None, str | None] = (None, None)
    for path in [CLOUD_CFG, *config_files(tree, CLOUD_CFG_D, lambda n: n.endswith(".cfg"))]:
        text = tree.text(path)
        if text is None:
            continue
        doc = load(text)
        if "datasource_list" in doc:
            value = doc["datasource_list"]
            names = [v for v in value if isinstance(v, str)] if isinstance(value, list) \
                else [value] if isinstance(value, str) and value else None
            found = (names, tree.where(path))
    return found


def cloud_init(tree: GuestTree, cmdline: str | None = None) -> tuple[dict[str, Any], str | None]:
    """The contract's ``cloud_init`` object and its evidence; ``cmdline`` is the default
    boot entry's kernel command line when the boot loader was read."""
    program = next((p for p in PROGRAMS if tree.kind(p) == "file"), None)
    if program is None and tree.kind(CLOUD_CFG) == "file":
        program = _python_package(tree)
    if program is None:
        return {"installed": False, "enabled": None, "datasources": None}, None
    disabled_by: list[str] = []
    if tree.kind(DISABLED, follow=False) is not None:
        disabled_by.append(tree.where(DISABLED))
    for unit in UNITS:
        path = f"{SYSTEMD_ETC}/{unit}"
        if tree.readlink(path) == "/dev/null":
            disabled_by.append(f"{tree.where(path)} -> /dev/null")
    if cmdline is not None and parameters(cmdline).get("cloud-init") == "disabled":
        disabled_by.append("kernel command line cloud-init=disabled")
    names, source = datasources(tree)
    evidence = [tree.where(program), *disabled_by, *([source] if source else [])]
    return ({"installed": True, "enabled": not disabled_by, "datasources": names},
            "; ".join(evidence))

"""Whether the OpenSSH server is installed and starts at boot.

Sources: import-rules.md section 2.1 (AWS VM Import: "SSH enabled"; Alibaba: SSH on
port 22); systemd.unit(5) (a unit is enabled by a symlink in a ``.wants``
directory under ``/etc/systemd/system``, disabled for good by a link to
``/dev/null``, a *mask*); the SysV init layout (``/etc/rcN.d/S??NAME`` links).
Debian names the unit ``ssh.service`` (alias ``sshd.service``), Red Hat and SUSE
``sshd.service``; socket activation uses ``ssh.socket`` / ``sshd.socket``.

``installed``: the ``sshd`` program exists. ``enabled``: a wants link or an rc
start link exists and no unit is masked; None when it is not installed.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imgscan.guest.linux.tree import GuestTree

PROGRAMS = ("/usr/sbin/sshd", "/sbin/sshd")
UNITS = ("ssh.service", "sshd.service", "ssh.socket", "sshd.socket")
SYSTEMD_ETC = "/etc/systemd/system"
WANTS = ("multi-user.target.wants", "sockets.target.wants", "graphical.target.wants")
RC_DIRS = ("/etc/rc3.d", "/etc/rc2.d", "/etc/rc.d/rc3.d")
SYSV_NAMES = ("ssh", "sshd")


def sshd(tree: GuestTree) -> tuple[dict[str, Any], str | None]:
    """``{"installed": bool, "enabled": bool or None}`` and where it was seen."""
    program = next((p for p in PROGRAMS if tree.kind(p) == "file"), None)
    if program is None:
        return {"installed": False, "enabled": None}, None
    masked = [f"{tree.where(f'{SYSTEMD_ETC}/{u}')} -> /dev/null" for u in UNITS
              if tree.readlink(f"{SYSTEMD_ETC}/{u}") == "/dev/null"]
    started = [tree.where(f"{SYSTEMD_ETC}/{w}/{u}") for w in WANTS for u in UNITS
               if tree.kind(f"{SYSTEMD_ETC}/{w}/{u}", follow=False) is not None]
    for rc in RC_DIRS:
        started += [tree.where(f"{rc}/{n}") for n in tree.listdir(rc)
                    if n.startswith("S") and n[3:] in SYSV_NAMES]
    evidence = [tree.where(program), *(masked or started)]
    if not masked and not started:
        evidence.append(f"no {'/'.join(UNITS)} link in {SYSTEMD_ETC}/*.wants, no rc start "
                        "link")
    return {"installed": True, "enabled": bool(started) and not masked}, "; ".join(evidence)

"""Whether a daemon (the OpenSSH server, the Azure Linux agent) is installed and starts
at boot.

Sources: import-rules.md section 2.1 (AWS VM Import: "SSH enabled"; Alibaba: SSH on
port 22; Azure: "waagent or cloud-init installed"); systemd.unit(5) (a unit is
enabled by a symlink in a ``.wants`` directory under ``/etc/systemd/system``, disabled
for good by a link to ``/dev/null``, a *mask*); the SysV init layout
(``/etc/rcN.d/S??NAME`` links). Debian names the OpenSSH unit ``ssh.service`` (alias
``sshd.service``), Red Hat and SUSE ``sshd.service``; socket activation uses
``ssh.socket`` / ``sshd.socket``. WALinuxAgent installs ``/usr/sbin/waagent`` with
the unit ``walinuxagent.service`` (Debian, Ubuntu) or ``waagent.service`` (Red Hat,
SUSE, upstream).

``installed``: the program exists. ``enabled``: a wants link or an rc start link
exists and no unit is masked; None when it is not installed.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from imgscan.guest.linux.tree import GuestTree

SYSTEMD_ETC = "/etc/systemd/system"
WANTS = ("multi-user.target.wants", "sockets.target.wants", "graphical.target.wants")
RC_DIRS = ("/etc/rc3.d", "/etc/rc2.d", "/etc/rc.d/rc3.d")


class Daemon:
    """A daemon's program paths, systemd units and SysV script names."""

    def __init__(self, programs: Sequence[str], units: Sequence[str],
                 sysv_names: Sequence[str]) -> None:
        self.programs = programs
        self.units = units
        self.sysv_names = sysv_names


SSHD = Daemon(("/usr/sbin/sshd", "/sbin/sshd"),
              ("ssh.service", "sshd.service", "ssh.socket", "sshd.socket"), ("ssh", "sshd"))
WAAGENT = Daemon(("/usr/sbin/waagent", "/usr/bin/waagent"),
                 ("walinuxagent.service", "waagent.service"), ("walinuxagent", "waagent"))


def daemon_state(tree: GuestTree, daemon: Daemon) -> tuple[dict[str, Any], str | None]:
    """``{"installed": bool, "enabled": bool or None}`` and where it was seen."""
    program = next((p for p in daemon.programs if tree.kind(p) == "file"), None)
    if program is None:
        return {"installed": False, "enabled": None}, None
    units = daemon.units
    masked = [f"{tree.where(f'{SYSTEMD_ETC}/{u}')} -> /dev/null" for u in units
              if tree.readlink(f"{SYSTEMD_ETC}/{u}") == "/dev/null"]
    started = [tree.where(f"{SYSTEMD_ETC}/{w}/{u}") for w in WANTS for u in units
               if tree.kind(f"{SYSTEMD_ETC}/{w}/{u}", follow=False) is not None]
    for rc in RC_DIRS:
        started += [tree.where(f"{rc}/{n}") for n in tree.listdir(rc)
                    if n.startswith("S") and n[3:] in daemon.sysv_names]
    evidence = [tree.where(program), *(masked or started)]
    if not masked and not started:
        evidence.append(f"no {'/'.join(units)} link in {SYSTEMD_ETC}/*.wants, no rc start "
                        "link")
    return {"installed": True, "enabled": bool(started) and not masked}, "; ".join(evidence)


def sshd(tree: GuestTree) -> tuple[dict[str, Any], str | None]:
    """The OpenSSH server's state (:func:`daemon_state`)."""
    return daemon_state(tree, SSHD)


def waagent(tree: GuestTree) -> tuple[dict[str, Any], str | None]:
    """The Azure Linux agent's state (:func:`daemon_state`)."""
    return daemon_state(tree, WAAGENT)

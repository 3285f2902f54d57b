"""The SELinux mode: /etc/selinux/config, overridden by selinux=0 / enforcing=0."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import linux_configs as real
from helpers.linux_tree import guest_tree

from imgscan.guest.linux.selinux import selinux

CONFIG = "/etc/selinux/config (root volume)"


@pytest.mark.parametrize(("text", "cmdline", "mode", "evidence"), [
    (real.RHEL_SELINUX_CONFIG, None, "enforcing", CONFIG),
    (real.RHEL_SELINUX_CONFIG, "ro crashkernel=auto rhgb quiet", "enforcing", CONFIG),
    (real.RHEL_SELINUX_CONFIG, "ro selinux=0", "disabled",
     f"{CONFIG}; kernel command line selinux=0"),
    (real.RHEL_SELINUX_CONFIG, "ro enforcing=0", "permissive",
     f"{CONFIG}; kernel command line enforcing=0"),
    ("SELINUX=permissive\n", "enforcing=0", "permissive", CONFIG),
    ("SELINUX=Disabled\n", None, "disabled", CONFIG),
    ("SELINUX=bogus\n", None, None, CONFIG),
])
def test_modes(tmp_path: Path, text: str, cmdline: str | None, mode: str | None,
               evidence: str) -> None:
    assert selinux(guest_tree(tmp_path, {"etc/selinux/config": text}), cmdline) == (mode, evidence)


def test_no_config_is_none_whatever_the_command_line(tmp_path: Path) -> None:
    assert selinux(guest_tree(tmp_path, {"etc/": ""}), "selinux=0") == (None, None)

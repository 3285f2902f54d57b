"""Shell assignments read as sh reads them: every case is compared with ``sh`` sourcing
the same file (os-release(5) says the format is shell-compatible)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import linux_configs as real

from imgscan.guest.linux.shellvars import assignments


def shell_values(shell: str, tmp_path: Path, text: str, names: list[str]) -> dict[str, str]:
    """What ``shell`` has in each of ``names`` after sourcing ``text`` (unset ones left out)."""
    path = tmp_path / "vars"
    path.write_text(text)
    script = ('. "$1" >/dev/null 2>&1; shift; for n; do eval "if [ -n \\"\\${$n+x}\\" ]; then '
              'printf \'%s=%s\\0\' \\"$n\\" \\"\\$$n\\"; fi"; done')
    out = subprocess.run(["env", "-i", shell, "-c", script, shell, str(path), *names],
                         check=True, capture_output=True).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if item)


CASES = [
    real.DEBIAN12_OS_RELEASE, real.UBUNTU2204_OS_RELEASE, real.RHEL75_OS_RELEASE,
    real.EULEROS_SP8_OS_RELEASE, real.CENTOS7_IFCFG_ETH0, real.SLES15_IFCFG_ETH0,
    real.UBUNTU1404_LSB_RELEASE, real.RHEL_SELINUX_CONFIG,
    # quoting, escapes, continuation, comments, several assignments on a line
    "A='single \"q\"'\nB=\"d \\\"q\\\" \\\\ \\x\"\nC=un\\ quoted\nD=x\\\ny\n",
    "  # comment\nA=1 B=2;C=3\nD=\"multi\nline\"\nE=a#b\nF=  \n",
    "A=1 cmd\nB=2\nC='x'\"y\"z\n",                 # A only prefixes a command
]


@pytest.mark.parametrize("text", CASES)
def test_agrees_with_sh(tmp_path: Path, text: str) -> None:
    ours = assignments(text)
    names = sorted(set(ours) | {"A", "B", "C", "D", "E", "F", "ID", "NAME"})
    assert ours == shell_values("sh", tmp_path, text, names)


def test_an_unterminated_quote_ends_the_file(tmp_path: Path) -> None:
    """bash keeps the assignments before the open quote (dash aborts the whole shell)."""
    text = "A=1\nB='unterminated\nC=3\n"
    assert assignments(text) == shell_values("bash", tmp_path, text, ["A", "B", "C"]) == {"A": "1"}


def test_garbage_is_not_an_error() -> None:
    assert assignments("\x00\xff=\n=\n'\n") == {}
    assert assignments("") == {}

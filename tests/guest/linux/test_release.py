"""Which distribution: os-release first, the older release files after; and what a
Linux root is."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import linux_configs as real
from helpers.linux_tree import Content, Link, ext4_volume, guest_tree, open_volume

from imgscan.guest.linux.release import is_linux_root, release


def facts(tmp_path: Path, files: dict[str, Content],
          mounts: dict[str, dict[str, Content]] | None = None,
          ) -> tuple[dict[str, object], str | None]:
    return release(guest_tree(tmp_path, {"usr/": "", **files}, mounts))


def test_debian_os_release_through_its_link_into_a_separate_usr(tmp_path: Path) -> None:
    got, evidence = facts(tmp_path, {"etc/os-release": Link("../usr/lib/os-release"),
                                     "etc/debian_version": real.DEBIAN12_VERSION},
                          {"/usr": {"lib/os-release": real.DEBIAN12_OS_RELEASE}})
    assert got == {"distro": "debian", "distro_like": [], "name": "Debian GNU/Linux",
                   "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)"}
    assert evidence == "/etc/os-release (root volume)"   # the path read, as the guest names it


def test_usr_lib_os_release_without_etc(tmp_path: Path) -> None:
    got, evidence = facts(tmp_path, {"etc/": "", "usr/lib/os-release": real.EULEROS_SP8_OS_RELEASE})
    assert got["distro"] == "euleros"
    assert got["distro_like"] == ["rhel", "fedora", "centos"]
    assert got["version_id"] == "2.0"
    assert got["pretty_name"] == "EulerOS 2.0 (SP8)"
    assert evidence == "/usr/lib/os-release (root volume)"


@pytest.mark.parametrize(("text", "distro", "like", "version"), [
    (real.UBUNTU2204_OS_RELEASE, "ubuntu", ["debian"], "22.04"),
    (real.RHEL75_OS_RELEASE, "rhel", ["fedora"], "7.5"),
    (real.OPENEULER2403_OS_RELEASE, "openEuler", [], "24.03"),
])
def test_os_release_of_each_family(tmp_path: Path, text: str, distro: str, like: list[str],
                                   version: str) -> None:
    got, _ = facts(tmp_path, {"etc/os-release": text})
    assert (got["distro"], got["distro_like"], got["version_id"]) == (distro, like, version)


@pytest.mark.parametrize(("files", "distro", "version", "name", "where"), [
    ({"etc/redhat-release": real.CENTOS7_RELEASE, "etc/centos-release": real.CENTOS7_RELEASE},
     "centos", "7.9.2009", "CentOS Linux", "/etc/centos-release"),
    ({"etc/redhat-release": real.CENTOS6_RELEASE}, "centos", "6.10", "CentOS", None),
    ({"etc/redhat-release": real.ORACLE6_REDHAT_RELEASE, "etc/oracle-release":
      real.ORACLE7_RELEASE}, "ol", "7.9", "Oracle Linux Server", "/etc/oracle-release"),
    ({"etc/euleros-release": real.EULEROS_SP8_RELEASE}, "euleros", "2.0", "EulerOS", None),
    ({"etc/openEuler-release": real.OPENEULER2403_RELEASE}, "openEuler", "24.03",
     "openEuler", None),
    ({"etc/SuSE-release": real.SLES12_SUSE_RELEASE}, "sles", "12",
     "SUSE Linux Enterprise Server", None),
    ({"etc/SuSE-release": real.SLES12SP3_SUSE_RELEASE}, "sles", "12.3",
     "SUSE Linux Enterprise Server", None),
    ({"etc/SuSE-release": "openSUSE 13.2 (x86_64)\nVERSION = 13.2\nCODENAME = Harlequin\n"},
     "opensuse", "13.2", "openSUSE", None),
    ({"etc/lsb-release": real.UBUNTU1404_LSB_RELEASE, "etc/debian_version": "jessie/sid\n"},
     "ubuntu", "14.04", "Ubuntu", "/etc/lsb-release"),
    ({"etc/debian_version": "8.11\n"}, "debian", "8.11", "Debian GNU/Linux", None),
    ({"etc/debian_version": "bookworm/sid\n"}, "debian", None, "Debian GNU/Linux", None),
])
def test_older_release_files(tmp_path: Path, files: dict[str, Content], distro: str,
                             version: str | None, name: str, where: str | None) -> None:
    got, evidence = facts(tmp_path, files)
    assert (got["distro"], got["version_id"], got["name"]) == (distro, version, name)
    assert got["distro_like"] == []
    assert evidence == f"{where or '/' + next(iter(files))} (root volume)"


def test_nothing_known(tmp_path: Path) -> None:
    got, evidence = facts(tmp_path, {"etc/redhat-release": "\x00\xff garbage\n",
                                     "etc/debian_version": "\n"})
    assert got == {"distro": None, "distro_like": [], "name": None, "version_id": None,
                   "pretty_name": None}
    assert evidence is None


@pytest.mark.parametrize(("files", "expected"), [
    ({"etc/os-release": Link("../usr/lib/os-release"), "bin": Link("usr/bin")}, True),
    ({"etc/redhat-release": real.CENTOS6_RELEASE, "usr/": ""}, True),
    ({"etc/debian_version": "12.15\n", "bin/": ""}, True),
    ({"etc/os-release": "ID=x\n"}, False),                 # no usr/ nor bin/
    ({"etc/passwd": "", "usr/": ""}, False),               # no release file
    ({"etc": Link("usr/etc"), "usr/etc/os-release": ""}, False),
    ({"boot/grub/grub.cfg": ""}, False),                   # a separate /boot
])
def test_is_linux_root(tmp_path: Path, files: dict[str, Content], expected: bool) -> None:
    assert is_linux_root(open_volume(ext4_volume(tmp_path, files))) is expected


@pytest.mark.parametrize("text", [
    "x" + " " * 200_000 + "1x",                                   # a trailing-version hunt
    "a" + " " * 200_000 + "b release 7",                          # a "release" hunt
    "SUSE" + "\n" * 200_000 + "VERSION = 12\n",                   # blank lines before a field
    "SUSE " + "(" * 200_000 + "\nVERSION = 12\n",                  # an architecture hunt
])
def test_long_hostile_release_lines_are_read_in_linear_time(text: str) -> None:
    """Each of these took minutes to hours with backtracking patterns (each 4x longer
    input 16x slower); the parse of a 200k-character line is now one pass."""
    from imgscan.guest.linux.release import from_redhat_release, from_suse_release
    from_redhat_release(text)
    from_suse_release(text)


def test_release_file_lines_as_before() -> None:
    from imgscan.guest.linux.release import from_redhat_release, from_suse_release
    assert from_redhat_release("CentOS  Linux release 7.9.2009 (Core)\n") == {
        "distro": "centos", "distro_like": [], "name": "CentOS Linux",
        "version_id": "7.9.2009", "pretty_name": "CentOS  Linux release 7.9.2009 (Core)"}
    assert from_redhat_release("release 7\n") is None
    sles = from_suse_release("SUSE Linux Enterprise Server 12 (x86_64)\nVERSION=12\n")
    assert sles is not None and (sles["name"], sles["pretty_name"]) == (
        "SUSE Linux Enterprise Server", "SUSE Linux Enterprise Server 12")

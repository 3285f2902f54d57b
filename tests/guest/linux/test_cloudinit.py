"""cloud-init: installed, enabled (not disabled by file, masked units or the command line),
and the datasource list the configuration files leave."""

from __future__ import annotations

from pathlib import Path

from helpers import linux_configs as real
from helpers.linux_tree import Content, Link, guest_tree

from imgscan.guest.linux.cloudinit import cloud_init

INSTALLED: dict[str, Content] = {"usr/bin/cloud-init": "#!/usr/bin/python3\n",
                                 "etc/cloud/cloud.cfg": "users:\n   - default\n"}


def test_ubuntu_cloud_image(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {**INSTALLED,
                                 "etc/cloud/cloud.cfg.d/90_dpkg.cfg": real.UBUNTU_CLOUD_90_DPKG})
    got, evidence = cloud_init(tree)
    assert got["installed"] is True and got["enabled"] is True
    assert got["datasources"] is not None
    assert got["datasources"][:3] == ["NoCloud", "ConfigDrive", "OpenNebula"]
    assert got["datasources"][-1] == "None" and len(got["datasources"]) == 30
    assert evidence == ("/usr/bin/cloud-init (root volume); "
                        "/etc/cloud/cloud.cfg.d/90_dpkg.cfg (root volume)")


def test_later_files_override_and_block_lists(tmp_path: Path) -> None:
    d = "etc/cloud/cloud.cfg.d"
    tree = guest_tree(tmp_path, {**INSTALLED,
                                 "etc/cloud/cloud.cfg": "datasource_list: [ Ec2 ]\n",
                                 f"{d}/10_a.cfg":
                                 "datasource_list:\n  - NoCloud\n  - 'ConfigDrive'\n",
                                 f"{d}/05_logging.cfg": "_log:\n - &log_base |\n   [loggers]\n",
                                 f"{d}/99_b.cfg.disabled": "datasource_list: [ X ]\n"})
    assert cloud_init(tree)[0]["datasources"] == ["NoCloud", "ConfigDrive"]


def test_no_list_stated(tmp_path: Path) -> None:
    assert cloud_init(guest_tree(tmp_path, INSTALLED))[0] == {
        "installed": True, "enabled": True, "datasources": None}


def test_disabled_by_file_masks_and_cmdline(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {**INSTALLED, "etc/cloud/cloud-init.disabled": "",
                                 "etc/systemd/system/cloud-init.service": Link("/dev/null"),
                                 "etc/systemd/system/cloud-final.service":
                                 Link("/usr/lib/systemd/system/cloud-final.service")})
    got, evidence = cloud_init(tree, "BOOT_IMAGE=/vmlinuz ro cloud-init=disabled")
    assert got["enabled"] is False
    assert evidence is not None
    assert "/etc/cloud/cloud-init.disabled (root volume)" in evidence
    assert "/etc/systemd/system/cloud-init.service (root volume) -> /dev/null" in evidence
    assert "cloud-final" not in evidence
    assert "kernel command line cloud-init=disabled" in evidence


def test_only_the_command_line(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, INSTALLED)
    assert cloud_init(tree, "ro quiet cloud-init=disabled")[0]["enabled"] is False
    assert cloud_init(tree, "ro quiet")[0]["enabled"] is True


def test_installed_by_its_python_package(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"etc/cloud/cloud.cfg": "",
                                 "usr/lib/python3.6/site-packages/cloudinit/__init__.py": ""})
    got, evidence = cloud_init(tree)
    assert got["installed"] is True
    assert evidence == "/usr/lib/python3.6/site-packages/cloudinit (root volume)"


def test_not_installed(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"etc/cloud/cloud.cfg": "datasource_list: [ NoCloud ]\n"})
    assert cloud_init(tree) == ({"installed": False, "enabled": None, "datasources": None}, None)

"""VMware Tools / open-vm-tools found by the files their packages install."""

from __future__ import annotations

from pathlib import Path

from helpers.linux_tree import Link, guest_tree

from imgscan.guest.linux.vmtools import vmware_tools


def test_open_vm_tools_unit_through_merged_usr(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"lib": Link("usr/lib"),
                                 "usr/lib/systemd/system/open-vm-tools.service": "[Unit]\n"})
    assert vmware_tools(tree) == (True, "/usr/lib/systemd/system/open-vm-tools.service "
                                        "(root volume)")


def test_vmtoolsd_and_none(tmp_path: Path) -> None:
    assert vmware_tools(guest_tree(tmp_path, {"usr/bin/vmtoolsd": "\x7fELF"}))[0] is True
    assert vmware_tools(guest_tree(tmp_path / "b", {"etc/vmware-tools/": ""}))[0] is True
    assert vmware_tools(guest_tree(tmp_path / "c", {"etc/": ""})) == (False, None)

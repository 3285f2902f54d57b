"""The pipeline's stages pass names, not message text.

Each finding of an ``info`` object is filed under the stage that made it
(``finding_stages``, an extension key beside the contract's ``findings``), a
failed read prints the one error object of :func:`imgscan.errors.error_object`,
and the rules that judge the Windows installation say so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import qemu_create, sparse_file, write_file
from oracles import needs_qemu

import imgscan
from imgscan.errors import error_object
from imgscan.policy.rules import RULES
from imgscan.vocabulary import CONTAINER, DISK


@needs_qemu
def test_each_finding_names_its_stage(tmp_path: Path) -> None:
    qemu_create(tmp_path / "base.qcow2", "1M", fmt="qcow2")
    child = qemu_create(tmp_path / "child.qcow2", None, "-b", "base.qcow2", "-F", "qcow2",
                        fmt="qcow2")
    with imgscan.open(child) as img:
        info = img.info()
    # the container names its backing file; the disk cannot be read without it
    assert [f["id"] for f in info["findings"]] == ["backing-file", "backing-file"]
    assert info["finding_stages"] == [CONTAINER, DISK]


def test_no_findings_no_stages(tmp_path: Path) -> None:
    with imgscan.open(sparse_file(tmp_path / "disk.img", 1 << 20)) as img:
        info = img.info()
    assert info["findings"] == []
    assert info["finding_stages"] == []


def test_the_error_object_is_what_info_json_prints(tmp_path: Path) -> None:
    bad = write_file(tmp_path, b"QFI\xfb" + b"\0" * 60, "broken.qcow2")
    # From the tests dir: the checkout's uncompiled imgscan/ must not shadow the install.
    proc = subprocess.run([sys.executable, "-m", "imgscan", "info", "--json", str(bad)],
                          capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parent)
    with pytest.raises(imgscan.ImageError) as excinfo:
        imgscan.open(bad)
    assert json.loads(proc.stdout) == error_object(str(bad), excinfo.value)


def test_rules_on_a_guest_installation_declare_it() -> None:
    def declared(os: str) -> set[str]:
        return {r.id for r in RULES.values() if r.func is not r.body and r.guest == os}

    assert declared("windows") == {
        "boot-system-same-disk", "administrator-account", "login-credentials", "ide-driver",
        "guest-os-driver", "rdp-enabled", "dhcp", "not-oem", "not-hardware-bound",
        "full-virtualization", "os-supported", "autologon-disabled", "firewall-off",
        "rdp-firewall", "real-time-is-universal", "services-absent", "windows-free-space",
        "winrm-firewall", "icmp-firewall", "san-policy", "winhttp-proxy", "rdp-nla",
        "pagefile-fixed", "dotnet-version", "no-pending-reboot", "required-update",
        "gpt-to-mbr"}
    assert declared("linux") == {
        "linux-os-supported", "linux-architecture", "linux-boot-mode", "linux-boot-same-disk",
        "virtio-drivers", "kernel-version", "no-xen-pv-drivers", "devices-by-uuid",
        "fstab-nofail", "persistent-net-rules", "linux-dhcp", "linux-login-credentials",
        "linux-clean-shutdown", "lvm-system-disk", "no-vmware-tools", "cloud-init-installed",
        "hyperv-drivers", "kernel-cmdline", "linux-bootloader", "linux-root-filesystem",
        "no-swap-on-os-disk", "root-fs-features", "selinux-disabled", "sshd-enabled",
        "uefi-fallback-loader", "provisioning-agent", "modules-not-blacklisted", "user-ssh-key",
        "linux-free-space", "single-root-partition", "no-qemu-guest-agent"}
    # Windows rules that judge the disk without the windows object still say their OS.
    assert {r.id for r in RULES.values() if r.func is r.body and r.guest} == {
        "bios-boot", "clean-shutdown"}

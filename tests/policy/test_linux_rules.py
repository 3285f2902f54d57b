"""The rules about Linux guests and the profiles that apply them, on real system disks.

Facts come from the real Debian 12 fixture disks (tests/fixtures/linux: mmdebstrap,
GRUB installed and configured by its own tools, one variant per rule). Where no
fixture has a variant (an unlisted release, another architecture, Xen PV drivers,
VMware Tools), the test takes a real disk's ``info`` and changes one fact, and says
so (``derived``). Each rule function is called alone with the parameters of
``huawei-ims-linux``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from helpers.rules import judge_pair

import imgscan
from imgscan.policy import check, load_profile
from imgscan.policy.rules import RULES, Facts, Outcome

Info = dict[str, Any]
PROFILE = load_profile("huawei-ims-linux")


@pytest.fixture(scope="module")
def infos(linux_disks: dict[str, Path]) -> dict[str, Info]:
    found = {}
    for name, path in linux_disks.items():
        with imgscan.open(path) as img:
            found[name] = img.info()
    return found


def outcome(info: Info, rule_id: str) -> Outcome:
    return RULES[rule_id].func(Facts(info), **PROFILE.rules[rule_id].params)


def derived(info: Info, **linux: Any) -> Info:
    """A real disk's info with linux facts changed (no fixture has the variant)."""
    new = copy.deepcopy(info)
    new["linux"].update(linux)
    return new


#: rule id, the fixture that passes, the fixture that fails it.
LINUX_CASES = [
    ("system-disk-present", "ext4-bios", None),
    ("linux-os-supported", "ext4-bios", None),
    ("linux-architecture", "ext4-bios", None),
    ("linux-boot-mode", "ext4-bios", None),
    ("linux-boot-mode", "btrfs-uefi", None),       # UEFI, and Debian 12 may boot by UEFI
    ("linux-boot-same-disk", "xfs-lvm-boot", None),
    ("virtio-drivers", "ext4-bios", "no-virtio-initramfs"),
    ("kernel-version", "ext4-bios", None),
    ("no-xen-pv-drivers", "ext4-bios", None),
    ("devices-by-uuid", "ext4-bios", "fstab-by-device"),
    ("devices-by-uuid", "xfs-lvm-boot", None),     # root by an LV name: stable too
    ("fstab-nofail", "ext4-bios", "fstab-missing-disk"),
    ("persistent-net-rules", "ext4-bios", "persistent-net"),
    ("linux-dhcp", "ext4-bios", "static-ip"),
    ("linux-login-credentials", "ext4-bios", "no-cloud-init"),
    ("linux-clean-shutdown", "ext4-bios", "dirty"),
    ("lvm-system-disk", "ext4-bios", "xfs-lvm-boot"),
    ("no-vmware-tools", "ext4-bios", None),
]


@pytest.mark.parametrize(("rule_id", "good", "bad"), LINUX_CASES)
def test_rule_on_linux_fixtures(infos: dict[str, Info], rule_id: str, good: str | None,
                                bad: str | None) -> None:
    judge_pair(outcome, infos, rule_id, good, bad)


DERIVED_CASES = [
    # rule id, facts changed on ext4-bios, status, words of the message
    ("linux-os-supported", {"version_id": "13"}, "fail", "Other_Linux"),
    ("linux-os-supported", {"distro": "alpine", "version_id": "3.19"}, "fail", "Other_Linux"),
    ("linux-os-supported", {"distro": None}, "unknown", "could not be identified"),
    ("linux-architecture", {"arch": "ppc64le"}, "fail", "ppc64le"),
    ("linux-architecture", {"arch": None}, "unknown", "ELF"),
    ("linux-boot-mode", {"arch": "aarch64"}, "fail", "must boot by UEFI"),
    ("kernel-version", {"default_kernel": "2.6.18-398.el5",
                        "kernels": [{"version": "2.6.18-398.el5"}]}, "fail", "2.6.24"),
    ("kernel-version", {"kernels": []}, "unknown", "no installed kernel"),
    ("no-xen-pv-drivers", {"kernels": [{"version": "6.1.0", "xen_pv": True}]}, "fail",
     "Xen PV"),
    ("no-vmware-tools", {"vmware_tools": True}, "fail", "vmtoolsd"),
    ("linux-login-credentials", {"cloud_init": {"installed": False}, "root_password": "set"},
     "warn", "root has a password"),
    ("linux-dhcp", {"network": [], "cloud_init": {"installed": False}}, "fail",
     "no network interface"),
    ("linux-dhcp", {"network": []}, "pass", "cloud-init configures"),
    ("linux-boot-same-disk", {"fstab": [{"mountpoint": "/boot", "spec": "UUID=x",
                                         "on_this_disk": False}], "boot_partition": None},
     "fail", "another disk"),
    ("linux-clean-shutdown", {"clean": None}, "unknown", "no clean state"),
]


@pytest.mark.parametrize(("rule_id", "changes", "expected", "words"), DERIVED_CASES)
def test_rule_on_derived_facts(infos: dict[str, Info], rule_id: str, changes: dict[str, Any],
                               expected: str, words: str) -> None:
    result = outcome(derived(infos["ext4-bios"], **changes), rule_id)
    assert result.status == expected, result
    assert words in result.message, result


def test_uefi_boot_of_a_release_not_on_the_uefi_list(infos: dict[str, Info]) -> None:
    info = derived(infos["btrfs-uefi"], distro="debian", version_id="9")     # derived
    result = outcome(info, "linux-boot-mode")
    assert result.status == "fail" and "not on the list" in result.message


def test_every_linux_rule_has_a_case() -> None:
    """Every Linux rule of huawei-ims-linux (the peer clouds' own Linux rules have
    theirs in test_peer_profiles.py)."""
    linux_rules = {r for r in load_profile("huawei-ims-linux").rules
                   if RULES[r].guest == "linux"}
    tested = {case[0] for case in LINUX_CASES} | {case[0] for case in DERIVED_CASES}
    assert linux_rules <= tested


def test_rules_need_the_linux_object(infos: dict[str, Info]) -> None:
    result = outcome(infos["data-disk"], "virtio-drivers")
    assert result.status == "unknown" and "no Linux installation" in result.message


def _ids(result: dict[str, Any]) -> list[str]:
    return [r["id"] for r in result["rules"]]


def test_the_default_profile_judges_the_os_it_finds(infos: dict[str, Info]) -> None:
    auto = load_profile()
    assert auto.name == "huawei-ims" and auto.guest == "auto"
    on_linux = check(infos["ext4-bios"], auto)
    assert _ids(on_linux) == [r for r in load_profile("huawei-ims-windows").rules
                              if RULES[r].guest is None] + \
        [r for r in PROFILE.rules if RULES[r].guest == "linux"]
    assert on_linux["verdict"] == "warn"          # the 2 GiB disk is below 40 GiB
    # No OS: the rules about every disk, and system-disk-present says what was searched.
    on_data = check(infos["data-disk"], auto)
    assert all(RULES[r].guest is None for r in _ids(on_data))
    present = next(r for r in on_data["rules"] if r["id"] == "system-disk-present")
    assert present["status"] == "fail"
    assert "no Windows or Linux installation" in present["message"]


def test_the_linux_profile_on_a_disk_without_linux(infos: dict[str, Info]) -> None:
    result = check(infos["data-disk"], PROFILE)
    statuses = {r["id"]: r["status"] for r in result["rules"]}
    assert statuses["system-disk-present"] == "fail"
    assert {statuses[r] for r in PROFILE.rules if RULES[r].guest == "linux"} == {"unknown"}


@pytest.mark.parametrize(("variant", "rule_id", "auto_fixed"), [
    ("fstab-by-device", "devices-by-uuid", True),      # IMS rewrites GRUB and fstab
    ("persistent-net", "persistent-net-rules", False),  # a warning the user must act on
])
def test_warnings_say_whether_the_cloud_fixes_them(infos: dict[str, Info], variant: str,
                                                   rule_id: str, auto_fixed: bool) -> None:
    result = check(infos[variant], load_profile())
    (rule,) = [r for r in result["rules"] if r["id"] == rule_id]
    assert (rule["status"], rule["auto_fixed"]) == ("warn", auto_fixed)
    assert result["verdict"] == "warn"


@pytest.mark.parametrize(("version", "newer"), [
    ("2.6.24", False), ("2.6.24-19-generic", False), ("2.6.18-419.el5", False),
    ("2.6.25", True), ("2.6.32-754.35.1.el6.x86_64", True), ("3.10.0-1160.el7.x86_64", True),
])
def test_kernel_version_compares_the_release_numbers(infos: dict[str, Info], version: str,
                                                     newer: bool) -> None:
    info = derived(infos["ext4-bios"], default_kernel=version,    # derived
                   kernels=[{"version": version}])
    assert outcome(info, "kernel-version").status == ("pass" if newer else "fail")


def test_xen_pv_unknown_when_an_initramfs_was_not_read(infos: dict[str, Info]) -> None:
    info = derived(infos["ext4-bios"], kernels=[                   # derived
        {"version": "6.1.0", "xen_pv": False,
         "initramfs_error": {"id": "truncated", "message": "cut short"}}])
    assert outcome(info, "no-xen-pv-drivers").status == "unknown"

"""The policy layer: every rule of the built-in profiles, alone and through profiles.

Facts come from real images read through ``imgscan.open``: the committed
Windows system disks of tests/fixtures/windows (built by make_windows.sh with
sfdisk, mkntfs, ntfs-3g and hivexregedit), non-Windows images made here by
qemu-img / qemu-io (format, size, encryption, backing file, dirty bit), one
fixture copy given real MBR boot code (SYSLINUX's mbr.bin) and one with its
Windows NTFS made unreadable. Where no fixture has a variant, the test takes a
real fixture's ``info`` and changes one fact, and says so (``derived``).
Each rule function is called alone with the parameters of the built-in profile.
"""

from __future__ import annotations

import copy
import struct
from pathlib import Path
from typing import Any

import pytest
from helpers import run_keyed, sparse_copy
from helpers.rules import judge_pair
from oracles import needs_qemu, run

import imgscan
from imgscan.policy import ProfileError, check, evaluate, load_profile, verdict
from imgscan.policy.engine import builtin_profiles
from imgscan.policy.rules import RULES, Facts, Outcome

SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
GiB = 1 << 30

Info = dict[str, Any]


def info_of(path: Path) -> Info:
    with imgscan.open(path) as img:
        return img.info()


@pytest.fixture(scope="session")
def images(windows_disks: dict[str, Path]) -> dict[str, Path]:
    return {name: windows_disks[name] for name in ("bios", "uefi", "nosysres", "bitlocker")}


@pytest.fixture(scope="session")
def infos(images: dict[str, Path]) -> dict[str, Info]:
    return {name: info_of(path) for name, path in images.items()}


@pytest.fixture(scope="session")
def qemu_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Info]:
    """Non-Windows images made by qemu-img / qemu-io, read by imgscan."""
    out = tmp_path_factory.mktemp("qemu")
    secret = "--object", "secret,id=sec0,data=correct-horse"
    made: dict[str, Path] = {}

    def create(name: str, *args: str) -> Path:
        path = out / name
        # LUKS key setup may need a retry with more PBKDF time (helpers.run_keyed).
        run_keyed(lambda i: ["qemu-img", "create", "-q", *args[:-1], path, args[-1]], cwd=out)
        made[name] = path
        return path

    create("plain.qcow2", "-f", "qcow2", "64M")
    create("big.qcow2", "-f", "qcow2", "2T")
    create("mid.qcow2", "-f", "qcow2", "100G")
    create("disk.luks", "-f", "luks", *secret, "-o", "key-secret=sec0,iter-time=200", "16M")
    create("enc.qcow2", "-f", "qcow2", *secret, "-o",
           "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=200", "16M")
    base = create("base.qcow2", "-f", "qcow2", "16M")
    create("overlay.qcow2", "-f", "qcow2", "-F", "qcow2", "-b", base.name, "16M")
    dirty = create("dirty.qcow2", "-f", "qcow2", "-o", "lazy_refcounts=on", "16M")
    # qemu-io's abort simulates a crash after a write: the dirty bit stays set.
    run("sh", "-c", f"qemu-io -c 'write -P 0x5a 0 64k' -c abort {dirty} 2>/dev/null; true")
    raw = out / "huge.raw"  # sparse: a 130 GiB apparent size costs nothing
    with raw.open("wb") as f:
        f.truncate(130 * GiB)
    made["huge.raw"] = raw
    return {name: info_of(path) for name, path in made.items()}


PROFILE = load_profile()
#: The peer clouds' profiles (tests/policy/test_peer_profiles.py).
PEERS = ("aws-vmimport", "azure", "gcp", "alibaba-ecs", "openstack", "otc-ims")


def outcome(info: Info, rule_id: str, storage_class: str | None = None) -> Outcome:
    """One rule function alone, with the default profile's parameters."""
    params = (PROFILE.rules.get(rule_id) or load_profile("safe").rules[rule_id]).params
    return RULES[rule_id].func(Facts(info, storage_class), **params)


def status(info: Info, rule_id: str, storage_class: str | None = None) -> str:
    return outcome(info, rule_id, storage_class).status


def derived(info: Info, **windows: Any) -> Info:
    """A real fixture's info with windows facts changed (no fixture has the variant)."""
    new = copy.deepcopy(info)
    new["windows"].update(windows)
    return new


# -- every rule: a passing and a failing case ------------------------------------------

FIXTURE_CASES = [
    # rule id, fixture that passes, fixture that fails
    ("system-disk-present", "bios", None),
    ("administrator-account", "bios", "nosysres"),
    ("administrator-account", "bios", "uefi"),
    ("administrator-account", "bios", "bitlocker"),
    ("ide-driver", "bios", "nosysres"),
    ("boot-system-same-disk", "bios", "nosysres"),
    ("bios-boot", None, "uefi"),
    ("bios-boot", None, "bios"),  # MBR boot code area empty: no BIOS path
    ("login-credentials", "bios", "nosysres"),
    ("login-credentials", "uefi", "bitlocker"),  # cloudbase-init service disabled
    ("not-oem", "bios", "uefi"),
    ("not-hardware-bound", None, "uefi"),
    ("guest-os-driver", "bios", "nosysres"),
    ("guest-os-driver", "bitlocker", None),  # Xen PV drivers
    ("rdp-enabled", "bios", "nosysres"),
    ("dhcp", "bios", "nosysres"),
    ("clean-shutdown", "bios", "uefi"),  # hibernated
    ("os-supported", "bios", "uefi"),  # Windows 10 x86: only 64-bit is listed
    ("full-virtualization", "uefi", None),
    ("no-disk-encryption", "bios", None),
    ("self-contained", "bios", None),
    ("consistent-headers", "bios", None),
    ("guest-findings", "bios", "uefi"),  # hibernated
    ("no-error-findings", "bios", None),
    ("format-supported", "bios", None),
    ("qcow2-not-encrypted", "bios", None),
    ("file-size", "bios", None),
]


@pytest.mark.parametrize(("rule_id", "good", "bad"), FIXTURE_CASES)
def test_rule_on_windows_fixtures(infos: dict[str, Info], rule_id: str, good: str | None,
                                  bad: str | None) -> None:
    judge_pair(outcome, infos, rule_id, good, bad)


def test_system_disk_size_warns_below_minimum(infos: dict[str, Info]) -> None:
    result = outcome(infos["bios"], "system-disk-size")
    assert result.status == "warn"
    assert "below 40 GiB" in result.message
    assert result.evidence["virtual_size"]["value"] == 50 * 1024 * 1024


@needs_qemu
def test_container_rules_on_qemu_images(qemu_images: dict[str, Info]) -> None:
    q = qemu_images
    assert status(q["mid.qcow2"], "system-disk-size") == "pass"
    assert status(q["big.qcow2"], "system-disk-size") == "fail"
    assert status(q["plain.qcow2"], "format-supported") == "pass"
    assert status(q["disk.luks"], "format-supported") == "fail"
    for name in ("disk.luks", "enc.qcow2"):
        assert status(q[name], "qcow2-not-encrypted") == "fail", name
        assert "decrypted.qcow2" in (outcome(q[name], "qcow2-not-encrypted").remedy or "")
    assert status(q["plain.qcow2"], "qcow2-not-encrypted") == "pass"
    assert status(q["overlay.qcow2"], "self-contained") == "fail"
    assert "base.qcow2" in outcome(q["overlay.qcow2"], "self-contained").message
    assert status(q["plain.qcow2"], "self-contained") == "pass"
    assert status(q["dirty.qcow2"], "clean-shutdown") == "fail"
    assert "qemu-img check -r all" in (outcome(q["dirty.qcow2"], "clean-shutdown").remedy or "")
    assert status(q["plain.qcow2"], "system-disk-present") == "fail"
    # a 130 GiB RAW file: too big for a normal import, fast import still takes RAW
    assert status(q["huge.raw"], "file-size") == "warn"
    assert status(q["plain.qcow2"], "file-size") == "pass"
    assert status(q["disk.luks"], "no-error-findings") == "fail"
    assert status(q["plain.qcow2"], "no-error-findings") == "pass"


def test_file_size_fails_for_a_large_qcow2(infos: dict[str, Info]) -> None:
    # derived: a 200 GiB QCOW2 file (fast import takes only RAW / ZVHD2)
    info = copy.deepcopy(infos["bios"])
    info.update(format="qcow2", file_size=200 * GiB)
    assert status(info, "file-size") == "fail"


def test_bios_boot_passes_with_real_mbr_boot_code(images: dict[str, Path],
                                                  tmp_path: Path) -> None:
    if not SYSLINUX_MBR.is_file():
        pytest.skip(f"{SYSLINUX_MBR} absent (apt-get install syslinux-common)")
    path = tmp_path / "bios-mbr.img"
    sparse_copy(images["bios"], path)
    with path.open("r+b") as f:
        f.write(SYSLINUX_MBR.read_bytes()[:440])  # boot code only: the table stays
    info = info_of(path)
    assert info["boot_mode"] == "bios"
    assert status(info, "bios-boot") == "pass"


def test_rules_on_derived_facts(infos: dict[str, Info]) -> None:
    bios, bitlocker = infos["bios"], infos["bitlocker"]
    # derived: an arm64 Windows
    assert status(derived(bios, arch="arm64"), "full-virtualization") == "fail"
    # derived: a product not on the list
    assert status(derived(bios, product_name="Windows Server 2003 Standard"),
                  "os-supported") == "fail"
    # derived: vendor OEMInformation without OEM activation
    vendor = derived(bios, oem={"Manufacturer": "Contoso Ltd"})
    assert status(vendor, "not-hardware-bound") == "warn"
    # derived: the bitlocker fixture's empty partition 2 holding a BitLocker volume
    info = copy.deepcopy(bitlocker)
    info["partitions"][1].update(filesystem="BitLocker", encrypted=True)
    result = outcome(info, "no-disk-encryption")
    assert result.status == "fail"
    assert "partition 2 (BitLocker)" in result.message
    assert "manage-bde -off" in (result.remedy or "")
    # derived: a footer-mismatch finding (the safe profile's consistency rule)
    info = copy.deepcopy(bios)
    info["findings"] = [{"id": "footer-mismatch", "severity": "error",
                         "message": "GPT primary and backup headers disagree"}]
    assert status(info, "consistent-headers") == "fail"
    assert status(info, "no-error-findings") == "fail"


def test_evidence_names_where_facts_came_from(infos: dict[str, Info]) -> None:
    ev = outcome(infos["uefi"], "not-oem").evidence
    assert ev["windows.license_channel"]["value"] == "OEM:SLP"
    assert "DigitalProductId4" in ev["windows.license_channel"]["from"]
    ev = outcome(infos["nosysres"], "rdp-enabled").evidence
    assert "fDenyTSConnections" in ev["windows.rdp_enabled"]["from"]


# -- unknown and manual ------------------------------------------------------------

WINDOWS_RULES = ("administrator-account", "ide-driver", "boot-system-same-disk",
                 "login-credentials", "not-oem", "not-hardware-bound", "full-virtualization",
                 "guest-os-driver", "rdp-enabled", "dhcp", "os-supported", "clean-shutdown")


@needs_qemu
def test_unknown_on_an_encrypted_image(qemu_images: dict[str, Info]) -> None:
    for name in ("disk.luks", "enc.qcow2"):
        info = qemu_images[name]
        for rule_id in (*WINDOWS_RULES, "system-disk-present", "no-disk-encryption",
                        "bios-boot"):
            result = outcome(info, rule_id)
            assert result.status == "unknown", (name, rule_id, result)
            assert "encrypted" in result.message


@needs_qemu
def test_unknown_without_windows(qemu_images: dict[str, Info]) -> None:
    for rule_id in WINDOWS_RULES:
        result = outcome(qemu_images["plain.qcow2"], rule_id)
        assert result.status == "unknown", rule_id
        assert "no Windows installation" in result.message


def test_unknown_when_ntfs_is_unreadable(images: dict[str, Path], tmp_path: Path) -> None:
    """The Windows partition's MFT record 5 (the root directory) loses its FILE
    signature: the volume is still recognised as NTFS, but cannot be searched."""
    path = tmp_path / "bad-ntfs.img"
    sparse_copy(images["bios"], path)
    part = 17 * 1024 * 1024  # partition 2 (windows_reg.VARIANTS["bios"]["windows_start"])
    with path.open("r+b") as f:
        f.seek(part)
        boot = f.read(512)
        bps, spc = struct.unpack_from("<HB", boot, 11)
        (mft_cluster,) = struct.unpack_from("<Q", boot, 0x30)
        root_record = part + mft_cluster * bps * spc + 5 * 1024  # 1 KiB MFT records
        f.seek(root_record)
        assert f.read(4) == b"FILE"
        f.seek(root_record)
        f.write(b"XXXX")
    info = info_of(path)
    assert info["windows"] is None
    assert status(info, "system-disk-present") == "unknown"
    for rule_id in WINDOWS_RULES:
        result = outcome(info, rule_id)
        assert result.status == "unknown", rule_id
        assert "NTFS not readable" in result.message


def test_manual_rules(infos: dict[str, Info]) -> None:
    for info in infos.values():
        assert status(info, "password-complexity") == "manual"
        assert status(info, "storage-class") == "manual"
    assert status(infos["bios"], "not-hardware-bound") == "manual"
    assert status(infos["bios"], "storage-class", "STANDARD") == "pass"
    assert status(infos["bios"], "storage-class", "standard") == "pass"
    assert status(infos["bios"], "storage-class", "WARM") == "fail"


# -- the engine and profiles -------------------------------------------------------

def test_every_rule_is_in_a_builtin_profile_and_tested() -> None:
    in_profiles = {r for name in builtin_profiles() for r in load_profile(name).rules}
    assert in_profiles == set(RULES)
    linux = {r.id for r in RULES.values() if r.guest == "linux"}   # test_linux_rules.py
    tested = {case[0] for case in FIXTURE_CASES} | {"system-disk-size", "storage-class",
                                                   "password-complexity"} | linux
    # the peer clouds' rules: test_peer_profiles.py checks each has its cases
    peers = {r for name in PEERS for r in load_profile(name).rules}
    assert tested | peers == set(RULES)


def test_evaluate_applies_severity_and_auto_fixed(infos: dict[str, Info]) -> None:
    results = {r["id"]: r for r in evaluate(PROFILE, infos["nosysres"])}
    assert results["ide-driver"]["status"] == "warn"  # severity warn: the cloud fixes it
    assert results["ide-driver"]["auto_fixed"] is True
    assert results["dhcp"]["auto_fixed"] is True
    assert results["rdp-enabled"]["auto_fixed"] is False
    assert results["rdp-enabled"]["status"] == "fail"
    assert all(r["remedy"] is None for r in results.values() if r["status"] == "pass")
    assert set(results["rdp-enabled"]) == {"id", "status", "message", "evidence", "remedy",
                                           "auto_fixed"}


def test_verdicts(infos: dict[str, Info]) -> None:
    assert check(infos["bios"], PROFILE)["verdict"] == "fail"
    assert check(infos["bios"], load_profile("safe"))["verdict"] == "pass"
    assert verdict([{"status": "pass"}, {"status": "manual"}, {"status": "unknown"}]) == "pass"
    assert verdict([{"status": "pass"}, {"status": "warn"}]) == "warn"
    assert verdict([{"status": "warn"}, {"status": "fail"}]) == "fail"


def test_a_rule_that_crashes_fails(infos: dict[str, Info]) -> None:
    info = derived(infos["bios"], drivers=5)  # derived: a malformed drivers fact
    results = {r["id"]: r for r in evaluate(PROFILE, info)}
    assert results["guest-os-driver"]["status"] == "fail"
    assert "could not be evaluated" in results["guest-os-driver"]["message"]


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_profile_extension(infos: dict[str, Info], tmp_path: Path) -> None:
    spec = write(tmp_path / "mine.toml", """
extends = "huawei-ims-windows"
[rules.system-disk-size]
min_gib = 0.01
[rules.bios-boot]
enabled = false
[rules.dhcp]
severity = "fail"
[rules.no-error-findings]
severities = ["error", "warning"]
""")
    profile = load_profile(spec)
    assert profile.name == "mine"
    assert "bios-boot" not in profile.rules
    assert profile.rules["system-disk-size"].params == {"min_gib": 0.01, "max_gib": 1024}
    assert list(profile.rules)[-1] == "no-error-findings"
    results = {r["id"]: r for r in evaluate(profile, infos["nosysres"])}
    assert results["dhcp"]["status"] == "fail"
    assert results["system-disk-size"]["status"] == "pass"
    assert "bios-boot" not in results
    assert check(infos["bios"], profile)["verdict"] == "pass"


@pytest.mark.parametrize(("text", "error"), [
    ('extends = "huawei-ims-windows"\n[rules.bios-bot]\n', "unknown rule 'bios-bot'"),
    ('extends = "huawei-ims-windows"\n[rules.system-disk-size]\nmax_gb = 1\n',
     "unknown parameter 'max_gb'"),
    ('extends = "huawei-ims-windows"\n[rules.system-disk-size]\nmax_gib = "big"\n',
     "max_gib must be a number"),
    ('extends = "huawei-ims-windows"\n[rules.dhcp]\nseverity = "error"\n',
     "severity 'error' is not one of fail, warn"),
    ('extends = "huawei-ims-windows"\n[rules.consistent-headers]\n',
     "missing parameter(s) finding_ids"),
    ('extends = "aws"\n', "no built-in profile 'aws'"),
    ('extend = "safe"\n', "unknown key 'extend'"),
    ("[rules\n", "not valid TOML"),
])
def test_profile_errors(tmp_path: Path, text: str, error: str) -> None:
    spec = write(tmp_path / "bad.toml", text)
    with pytest.raises(ProfileError, match=None) as exc:
        load_profile(spec)
    assert error in str(exc.value)
    assert spec in str(exc.value)


def test_unknown_builtin_profile() -> None:
    with pytest.raises(ProfileError, match="no built-in profile 'nope'"):
        load_profile("nope")
    assert builtin_profiles() == ["huawei-ims", "alibaba-ecs", "aws-vmimport", "azure", "gcp",
                                  "huawei-ims-linux", "huawei-ims-windows", "openstack",
                                  "otc-ims", "safe"]



def test_clean_shutdown_with_dirty_hives(infos: dict[str, Info]) -> None:
    """(derived: the real dirty hive is tested end to end in tests/guest/test_windows.py)
    A replayed hive warns and names its logs in the evidence; a dirty hive without a
    usable log fails; with another failure, the replay is still said."""
    replayed = {"dirty": True, "replayed": True, "logs": ["\\S.LOG1"], "pages": 7,
                "logs_replayed": ["\\S.LOG1"]}
    lost = {"dirty": True, "replayed": False, "logs": [], "unusable_logs": ["no log"]}
    got = outcome(derived(infos["bios"], hive_logs={"SYSTEM": replayed}), "clean-shutdown")
    assert got.status == "warn" and "7 dirty pages" in got.message
    assert "replayed: SYSTEM from \\S.LOG1" in got.evidence["windows.hive_logs"]["from"]
    got = outcome(derived(infos["bios"], hive_logs={"SAM": lost}), "clean-shutdown")
    assert got.status == "fail" and got.message.startswith("registry hive SAM not fully")
    got = outcome(derived(infos["uefi"], hive_logs={"SYSTEM": replayed}), "clean-shutdown")
    assert got.status == "fail" and "hibernated" in got.message and "replayed" in got.message

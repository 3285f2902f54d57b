"""Windows guest inspection (imgscan/guest/) against sleuthkit, hivex and the table tools.

System disks come from tests/fixtures/windows/*.img.xz, built by
tests/fixtures/make_windows.sh (sfdisk / sgdisk, mkntfs + ntfs-3g, mkfs.vfat +
mtools, hivexregedit --merge of windows_reg.py's .reg text onto hivex's
minimal hive, PE headers from Debian's GRUB EFI images); committed so the
tests need neither root nor FUSE. Oracles: ``fls`` / ``icat`` extract every
file imgscan reads, ``hivexget`` reads every value from those hives,
``sfdisk --json`` / ``sgdisk -i`` give partition numbers, offsets and GUIDs,
``file`` names the PE architecture. The real hives of
../shared/corpus/hives are fed to the hive-level fact functions directly and
compared with its MANIFEST.md and with hivexget.
"""

from __future__ import annotations

import json
import lzma
import re
import shutil
import struct
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import FIXTURES, sparse_copy
from helpers.regf_logs import CONFIG, DIRTY_SYSTEM, dirty_windows_disk
from helpers.windows_registry import VARIANTS as REGISTRY_VARIANTS
from helpers.windows_registry import edited_disk
from oracles import CORPUS, needs_qemu

import imgscan
from imgscan import limits
from imgscan._core.ntfs import NtfsVolume
from imgscan._core.regf import Hive
from imgscan.guest.windows import bcd, cloudbaseinit, pe, sam
from imgscan.guest.windows.hives import Facts, key_type, software_facts, system_facts

sys.path.insert(0, str(FIXTURES))
from windows_reg import VARIANTS

HIVES = CORPUS.parent / "hives"
BITLK = CORPUS / "cryptsetup" / "bitlk-images.tar.xz"
NAMES = tuple(VARIANTS)
HAVE_TSK = all(shutil.which(t) for t in ("fls", "icat"))
HAVE_HIVEX = shutil.which("hivexget") is not None
needs_tsk = pytest.mark.skipif(not HAVE_TSK, reason="sleuthkit (fls/icat) absent")
needs_hivex = pytest.mark.skipif(not HAVE_HIVEX, reason="hivex (hivexget) absent")
needs_file = pytest.mark.skipif(shutil.which("file") is None, reason="file absent")
needs_blkid = pytest.mark.skipif(shutil.which("blkid") is None, reason="blkid absent")
needs_regedit = pytest.mark.skipif(shutil.which("hivexregedit") is None,
                                   reason="hivexregedit (libwin-hivex-perl) absent")
needs_hives = pytest.mark.skipif(not HIVES.is_dir(), reason=f"{HIVES} is absent")
needs_bitlk = pytest.mark.skipif(not BITLK.is_file(), reason=f"{BITLK} is absent")


def sh(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True,
                          text=True).stdout


def sh_bytes(*args: str | Path) -> bytes:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True).stdout


@pytest.fixture(scope="session")
def disks(windows_disks: dict[str, Path]) -> dict[str, Path]:
    return {name: windows_disks[name] for name in NAMES}


@pytest.fixture(scope="session")
def infos(disks: dict[str, Path]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, path in disks.items():
        with imgscan.open(path) as img:
            out[name] = img.info()
    return out


def windows(infos: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    w = infos[name]["windows"]
    assert w is not None, f"{name}: no Windows found"
    return w  # type: ignore[no-any-return]


# -- oracles ---------------------------------------------------------------------

def sfdisk_parts(path: Path) -> list[dict[str, Any]]:
    return json.loads(sh("sfdisk", "--json", path))["partitiontable"]["partitions"]  # type: ignore[no-any-return]


def part_sector(path: Path, number: int) -> int:
    for p in sfdisk_parts(path):
        if p["node"].endswith(str(number)):
            return int(p["start"])
    raise AssertionError(f"no partition {number} in {path}")


def tsk_extract(path: Path, number: int, target: str, dest: Path) -> Path | None:
    """``target`` (\\-separated, case-insensitive) of partition ``number``, by fls + icat."""
    sector = str(part_sector(path, number))
    listing = sh("fls", "-r", "-p", "-o", sector, path)
    want = target.strip("\\").replace("\\", "/").lower()
    for line in listing.splitlines():
        m = re.match(r"\S+ \*?\s*(\d+)(?:-\d+-\d+)?:\t(.*)$", line)
        if m and m.group(2).lower() == want:
            dest.write_bytes(sh_bytes("icat", "-o", sector, path, m.group(1)))
            return dest
    return None


def hivexget(hive: Path, key: str, value: str) -> bytes | None:
    r = subprocess.run(["hivexget", str(hive), key, value], capture_output=True)
    return r.stdout if r.returncode == 0 else None


def hivex_text(hive: Path, key: str, value: str) -> str | None:
    raw = hivexget(hive, key, value)
    return None if raw is None else raw.decode().rstrip("\n")


# -- the contract object on every fixture --------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_root_partition_and_headline_facts(infos: dict[str, dict[str, Any]], name: str) -> None:
    w = windows(infos, name)
    v = VARIANTS[name]
    assert w["partition"] == v["windows_partition"]
    assert w["systemroot"] == "\\Windows"
    assert w["administrator"] == v["admin"]
    assert w["rdp_enabled"] is v["rdp"]
    assert w["dhcp_enabled"] is v["dhcp"]
    assert w["boot_partition"] == v["boot_partition"]
    assert w["hibernated"] is v["hibernated"]
    assert w["cloudbase_init"]["installed"] is bool(v["cloudbase"] or v["cloudbase_start"])
    assert w["cloudbase_init"]["service_start"] == v["cloudbase_start"]
    assert w["drivers"] == v["drivers"]
    for fact in ("product_name", "arch", "build", "license_channel", "administrator",
                 "drivers", "rdp_enabled", "boot_partition", "hibernated"):
        assert w["evidence"].get(fact), f"{name}: no evidence for {fact}"


@needs_tsk
@needs_hivex
@pytest.mark.parametrize("name", NAMES)
def test_registry_facts_equal_hivexget(disks: dict[str, Path], infos: dict[str, dict[str, Any]],
                                       name: str, tmp_path: Path) -> None:
    w = windows(infos, name)
    part = w["partition"]
    system = tsk_extract(disks[name], part, "Windows\\System32\\config\\SYSTEM", tmp_path / "S")
    software = tsk_extract(disks[name], part, "Windows\\System32\\config\\SOFTWARE",
                           tmp_path / "W")
    samf = tsk_extract(disks[name], part, "Windows\\System32\\config\\SAM", tmp_path / "A")
    assert system and software and samf
    cv = "Microsoft\\Windows NT\\CurrentVersion"
    assert w["product_name"] == hivex_text(software, cv, "ProductName")
    assert w["edition_id"] == hivex_text(software, cv, "EditionID")
    assert w["installation_type"] == hivex_text(software, cv, "InstallationType")
    assert str(w["build"]) == hivex_text(software, cv, "CurrentBuildNumber")
    ubr = hivex_text(software, cv, "UBR")
    assert w["ubr"] == (int(ubr) if ubr is not None else None)
    assert w["product_id"] == hivex_text(software, cv, "ProductId")
    dpid4 = hivexget(software, cv, "DigitalProductId4")
    assert w["license_channel"] == (
        dpid4[1016:1144].decode("utf-16-le").split("\0")[0] if dpid4 else None)
    major = hivex_text(software, cv, "CurrentMajorVersionNumber")
    if major is not None:
        assert w["major_version"] == int(major)
    else:
        assert f"{w['major_version']}.{w['minor_version']}" == \
            hivex_text(software, cv, "CurrentVersion")
    cs = f"ControlSet{int(hivex_text(system, 'Select', 'Current') or 0):03d}"
    assert w["control_set"] == cs
    assert w["hostname"] == hivex_text(system, f"{cs}\\Services\\Tcpip\\Parameters", "Hostname")
    for service in ("atapi", "intelide", "pciide", "msahci", "storahci", "viostor", "vioscsi",
                    "netkvm", "xenvbd", "xennet", "xenbus"):
        start = hivex_text(system, f"{cs}\\Services\\{service}", "Start")
        assert w["drivers"].get(service) == (int(start) if start is not None else None), service
    deny = hivex_text(system, f"{cs}\\Control\\Terminal Server", "fDenyTSConnections")
    term = hivex_text(system, f"{cs}\\Services\\TermService", "Start")
    assert w["rdp_enabled"] is (deny == "0" and term != "4")
    assert w["firmware_boot_device"] == hivex_text(system, f"{cs}\\Control", "FirmwareBootDevice")
    assert w["system_boot_device"] == hivex_text(system, f"{cs}\\Control", "SystemBootDevice")
    c_blob = hivexget(system, "MountedDevices", "\\DosDevices\\C:")
    assert c_blob is not None
    c = w["mounted_devices"]["C:"]
    if len(c_blob) == 12:
        assert c["disk_signature"] == f"{struct.unpack_from('<I', c_blob)[0]:08x}"
        assert c["offset"] == struct.unpack_from("<Q", c_blob, 4)[0]
    else:
        assert c_blob[:8] == b"DMIO:ID:"
    users = "SAM\\Domains\\Account\\Users\\000001F4"
    f = hivexget(samf, users, "F")
    v = hivexget(samf, users, "V")
    assert w["administrator"]["exists"] is (f is not None)
    if f is not None and v is not None:
        acb = struct.unpack_from("<H", f, 0x38)[0]
        assert w["administrator"]["enabled"] is not bool(acb & 0x0401)
        nt_len = struct.unpack_from("<I", v, 0xAC)[0]
        assert w["administrator"]["password_set"] is (nt_len in (20, 56) and not acb & 4)
        assert w["administrator_details"]["acb_flags"] == acb


@needs_tsk
@needs_file
@pytest.mark.parametrize("name", NAMES)
def test_arch_from_cmd_exe_equals_file(disks: dict[str, Path], infos: dict[str, dict[str, Any]],
                                       name: str, tmp_path: Path) -> None:
    w = windows(infos, name)
    cmd = tsk_extract(disks[name], w["partition"], "Windows\\System32\\cmd.exe", tmp_path / "c")
    assert cmd is not None
    data = cmd.read_bytes()
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    machine = struct.unpack_from("<H", data, lfanew + 4)[0]
    assert w["arch"] == {0x14C: "x86", 0x8664: "x86_64"}[machine] == VARIANTS[name]["arch"]
    kind = sh("file", "-b", cmd)
    assert ("x86-64" in kind) == (w["arch"] == "x86_64"), kind


@needs_tsk
@pytest.mark.parametrize("name", NAMES)
def test_cloudbase_init_conf_equals_icat(disks: dict[str, Path], infos: dict[str, dict[str, Any]],
                                         name: str, tmp_path: Path) -> None:
    w = windows(infos, name)
    cbi = w["cloudbase_init"]
    base = VARIANTS[name]["cloudbase"]
    if base is None:
        assert cbi["config_path"] is None and w["cloudbase_init_config"] is None
        return
    path = f"{base}\\Cloudbase Solutions\\Cloudbase-Init\\conf\\cloudbase-init.conf"
    assert cbi["config_path"] == "\\" + path
    conf = tsk_extract(disks[name], w["partition"], path, tmp_path / "conf")
    assert conf is not None
    text = conf.read_text()
    cfg = w["cloudbase_init_config"]
    assert re.search(r"^username=(.*)$", text, re.M)[1].strip() == cfg["username"]  # type: ignore[index]
    assert cfg["inject_user_password"] is True
    assert cfg["metadata_services"] == [re.search(r"^metadata_services=(.*)$", text, re.M)[1]  # type: ignore[index]
                                        .strip()]
    assert cfg["plugins"][-1].endswith("SetUserPasswordPlugin")
    assert len(cfg["plugins"]) == text.count("cloudbaseinit.plugins.")


@needs_tsk
@needs_hivex
@pytest.mark.parametrize("name", [n for n in NAMES if VARIANTS[n]["boot_partition"]])
def test_boot_store_equals_icat_hivexget_and_tables(disks: dict[str, Path],
                                                    infos: dict[str, dict[str, Any]], name: str,
                                                    tmp_path: Path) -> None:
    w = windows(infos, name)
    store = w["bcd"]
    path = disks[name]
    bcd_file = tsk_extract(path, w["boot_partition"], store["path"], tmp_path / "BCD")
    assert bcd_file is not None
    loader = store["default_loader"]
    bm = "Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\\Elements"
    assert hivex_text(bcd_file, f"{bm}\\23000003", "Element") == loader
    assert store["loader_path"] == hivex_text(
        bcd_file, f"Objects\\{loader}\\Elements\\12000002", "Element")
    assert store["loader"] == VARIANTS[name]["loader"]
    dev = hivexget(bcd_file, f"Objects\\{loader}\\Elements\\21000001", "Element")
    assert dev is not None
    parts = sfdisk_parts(path)
    if infos[name]["partition_table"] == "gpt":
        guid = dev[0x20:0x30]
        info = sh("sgdisk", "-i", str(store["loader_partition"]), path)
        unique = re.search(r"unique GUID: (\S+)", info)[1].lower()  # type: ignore[index]
        import uuid
        assert str(uuid.UUID(bytes_le=guid)) == unique
        assert store["path"] == "\\EFI\\Microsoft\\Boot\\BCD"
    else:
        offset = struct.unpack_from("<Q", dev, 0x20)[0]
        starts = {int(p["node"][len(str(path)):]): int(p["start"]) * 512 for p in parts}
        assert starts[store["loader_partition"]] == offset
        active = [int(p["node"][len(str(path)):]) for p in parts if p.get("bootable")]
        assert active == [w["boot_partition"]]
        label = json.loads(sh("sfdisk", "--json", path))["partitiontable"]["id"]
        assert store["os_device"]["disk_signature"] == label[2:].lower().rjust(8, "0")
    assert store["loader_partition"] == w["partition"]


def test_nosysres_has_no_boot_store(infos: dict[str, dict[str, Any]]) -> None:
    w = windows(infos, "nosysres")
    assert w["boot_partition"] is None and w["bcd"] is None
    assert "no \\Boot\\BCD" in w["evidence"]["boot_partition"]


def test_hibernation_is_a_dirty_finding(infos: dict[str, dict[str, Any]]) -> None:
    uefi = infos["uefi"]
    assert windows(infos, "uefi")["hiberboot_enabled"] == 1
    assert any(f["id"] == "dirty" and "hiberfil.sys" in f["message"] for f in uefi["findings"])
    assert not any("hiberfil" in f["message"] for f in infos["bios"]["findings"])


def test_oem_information_and_stale_control_set(infos: dict[str, dict[str, Any]]) -> None:
    w = windows(infos, "uefi")
    assert w["oem"] == VARIANTS["uefi"]["oem"]
    # ControlSet001 says atapi=4 and RDP denied; Select\Current=2 says otherwise.
    assert w["control_set"] == "ControlSet002"
    assert w["drivers"]["atapi"] == 0 and w["rdp_enabled"] is True


def test_ntfs_volumes_of_the_ntfs_fixtures(tmp_path: Path) -> None:
    """c512 has \\Windows\\System32\\config but no cmd.exe: not a Windows root (libguestfs);
    win has cmd.exe and "hives" of generated text: a root whose hives are findings."""
    ntfs = FIXTURES / "ntfs"
    for name in ("c512", "win"):
        (tmp_path / name).write_bytes(lzma.decompress((ntfs / f"{name}.img.xz").read_bytes()))
    with imgscan.open(tmp_path / "c512") as img:
        assert img.info()["windows"] is None
    with imgscan.open(tmp_path / "win") as img:
        info = img.info()
    w = info["windows"]
    assert w is not None and w["partition"] == 0 and w["product_name"] is None
    messages = [f["message"] for f in info["findings"]]
    for hive in ("SYSTEM", "SOFTWARE", "SAM"):
        assert any(m.startswith(f"windows: {hive} hive not read") for m in messages), messages
    assert any(m.startswith("windows: arch not read") for m in messages), messages


@needs_bitlk
@needs_tsk
@needs_blkid
def test_bitlocker_partition_named(disks: dict[str, Path], tmp_path: Path) -> None:
    """A real BitLocker volume (cryptsetup's test images) copied into partition 2."""
    disk = tmp_path / "bitlocker.img"
    sparse_copy(disks["bitlocker"], disk)
    with tarfile.open(BITLK) as tar:
        member = tar.extractfile("bitlk-images/bitlk-aes-xts-128.img")
        assert member is not None
        volume = member.read()
    v = VARIANTS["bitlocker"]
    assert len(volume) == v["bitlocker_size"]
    with disk.open("r+b") as f:
        f.seek(v["bitlocker_start"])
        f.write(volume)
    assert part_sector(disk, 2) * 512 == v["bitlocker_start"]
    with imgscan.open(disk) as img:
        info = img.info()
    assert info["partitions"][1]["filesystem"] == "BitLocker"
    w = info["windows"]
    assert w["bitlocker_partitions"] == [2]
    assert any(f["id"] == "encrypted" and "partition 2" in f["message"]
               for f in info["findings"])
    out = sh("blkid", "-p", "-o", "value", "-s", "TYPE", "-O", str(v["bitlocker_start"]), disk)
    assert out.strip() == "BitLocker"


@needs_qemu
def test_qcow2_wrapped_disk_same_facts(disks: dict[str, Path], infos: dict[str, dict[str, Any]],
                                       tmp_path: Path) -> None:
    for name in ("bios", "uefi"):
        q = tmp_path / f"{name}.qcow2"
        sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", disks[name], q)
        with imgscan.open(q) as img:
            info = img.info()
        assert info["format"] == "qcow2"
        a, b = dict(info["windows"]), dict(infos[name]["windows"])
        assert a == b


def test_text_summary_shows_windows_block(disks: dict[str, Path]) -> None:
    from imgscan.report.text import info_text
    with imgscan.open(disks["uefi"]) as img:
        text = info_text(img.info())
    assert "Windows 10 Pro (Professional, Client)" in text
    assert re.search(r"^\s+administrator\s+disabled, password stored$", text, re.M)
    assert re.search(r"^\s+boot store\s+partition 1 \(\\EFI\\Microsoft\\Boot\\BCD, "
                     r"winload\.efi\)$", text, re.M)


# -- the real hives of the corpus ----------------------------------------------------

def corpus_hive(name: str) -> Hive:
    data = (HIVES / name).read_bytes()
    if name.endswith(".xz"):
        data = lzma.decompress(data)
    return Hive(data, name)


SYSTEM_MANIFEST = {
    # hive: hostname(ComputerName), pciide, storahci, fDeny, dhcp, HiberbootEnabled, FW, SYS
    "regipy_SYSTEM.xz": ("WKS-WIN732BITA", 3, None, 0, False, None,
                         "multi(0)disk(0)rdisk(0)partition(1)",
                         "multi(0)disk(0)rdisk(0)partition(1)"),
    "regipy_SYSTEM_2.xz": ("SENSEI", 0, 0, 1, True, 1, "multi(0)disk(0)rdisk(0)partition(1)",
                           "multi(0)disk(0)rdisk(0)partition(2)"),
    "regipy_SYSTEM_B.xz": ("DESKTOP-PM6C56D", 0, 0, 1, True, 1,
                           "multi(0)disk(0)rdisk(1)partition(2)",
                           "multi(0)disk(0)rdisk(1)partition(4)"),
    "regipy_SYSTEM_WIN_10_1709.xz": ("DESKTOP-2KGM189", 0, 0, 1, True, 1,
                                     "multi(0)disk(0)rdisk(0)partition(1)",
                                     "multi(0)disk(0)rdisk(0)partition(2)"),
}


@needs_hives
@needs_hivex
@pytest.mark.parametrize("name", sorted(SYSTEM_MANIFEST))
def test_real_system_hives_equal_manifest(name: str, tmp_path: Path) -> None:
    host, pciide, storahci, deny, dhcp, hiberboot, fw, sysdev = SYSTEM_MANIFEST[name]
    facts = Facts()
    system_facts(corpus_hive(name), facts)
    v = facts.values
    assert v["control_set"] == "ControlSet001"
    assert v["drivers"]["atapi"] == 0 and v["drivers"]["intelide"] == 0
    assert v["drivers"]["pciide"] == pciide
    assert v["drivers"].get("storahci") == storahci
    assert not {"viostor", "vioscsi", "netkvm", "BALLOON", "xenvbd", "xenpci"} & set(v["drivers"])
    assert v["rdp_enabled"] is (deny == 0)
    assert v["dhcp_enabled"] is dhcp
    assert v.get("hiberboot_enabled") == hiberboot
    assert v["firmware_boot_device"] == fw and v["system_boot_device"] == sysdev
    assert v.get("cloudbase_init_service_start") is None
    assert not [f for f in facts.findings if "not read" in f.message]
    raw = tmp_path / "hive"
    raw.write_bytes(lzma.decompress((HIVES / name).read_bytes()))
    cc = "ControlSet001\\Control\\ComputerName\\ComputerName"
    assert hivex_text(raw, cc, "ComputerName") == host
    hostname = hivex_text(raw, "ControlSet001\\Services\\Tcpip\\Parameters", "Hostname")
    assert v["hostname"] == (hostname or host)
    assert str(pciide) == hivex_text(raw, "ControlSet001\\Services\\pciide", "Start")
    blob = hivexget(raw, "MountedDevices", "\\DosDevices\\C:")
    assert blob is not None
    c = v["mounted_devices"]["C:"]
    assert c["style"] == ("mbr" if len(blob) == 12 else "gpt")


SAM_MANIFEST = {  # hive: ACB, NT entry length
    "regipy_SAM.xz": (0x0211, 20),
    "plaso_regf_SAM.xz": (0x0211, 20),
    "turbinia_SAM.xz": (0x0011, 56),
}


@needs_hives
@needs_hivex
@pytest.mark.parametrize("name", sorted(SAM_MANIFEST))
def test_real_sam_hives_equal_manifest(name: str, tmp_path: Path) -> None:
    acb, nt_len = SAM_MANIFEST[name]
    facts = Facts()
    hive = corpus_hive(name)
    sam.administrator(hive, facts)
    sam.administrators_members(hive, facts)
    admin = facts.values["administrator"]
    assert admin["exists"] is True
    assert admin["enabled"] is False  # all three are disabled (Windows default)
    assert admin["password_set"] is True
    assert admin["acb_flags"] == acb and admin["nt_hash_length"] == nt_len
    assert admin["name"] == "Administrator"
    members = facts.values["administrators"]
    assert any(m.endswith("-500") for m in members)
    assert all(m.startswith("S-1-5-") for m in members)
    raw = tmp_path / "hive"
    raw.write_bytes(lzma.decompress((HIVES / name).read_bytes()))
    f = hivexget(raw, "SAM\\Domains\\Account\\Users\\000001F4", "F")
    v = hivexget(raw, "SAM\\Domains\\Account\\Users\\000001F4", "V")
    assert f is not None and v is not None
    assert struct.unpack_from("<H", f, 0x38)[0] == acb
    assert struct.unpack_from("<I", v, 0xAC)[0] == nt_len
    c = hivexget(raw, "SAM\\Domains\\Builtin\\Aliases\\00000220", "C")
    assert c is not None and len(members) == struct.unpack_from("<I", c, 0x30)[0]


@needs_hives
def test_real_bcd_equals_manifest() -> None:
    facts = Facts()
    bcd.store_facts(corpus_hive("regipy_BCD.xz"), facts)
    store = facts.values["bcd"]
    assert store["objects"] == 17
    assert store["bootmgr_path"] == "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
    assert store["default_loader"] == "{733b62e5-f608-11eb-825c-c112f60133ab}"
    assert store["loader_path"] == "\\Windows\\system32\\winload.efi"
    assert store["loader"] == "winload.efi"
    assert store["systemroot"] == "\\Windows"
    assert store["description"] == "Windows 10"
    disk = "0b2394a9-095e-487d-8d48-719ecd4d78ca"
    assert store["bootmgr_device"]["disk_guid"] == disk == store["os_device"]["disk_guid"]
    assert store["bootmgr_device"]["partition_guid"].startswith("36be3955")
    assert store["os_device"]["partition_guid"].startswith("8e0f2c38")


@needs_hives
def test_real_software_delta_is_a_negative_case() -> None:
    facts = Facts()
    software_facts(corpus_hive("scancode_Software_Delta.xz"), facts)
    for fact in ("product_name", "edition_id", "installation_type", "build", "product_id",
                 "license_channel", "oem"):
        assert facts.values.get(fact) is None, fact
    assert not facts.findings


@needs_hives
def test_corrupted_system_hive_reports_not_crashes() -> None:
    facts = Facts()
    system_facts(corpus_hive("regipy_corrupted_system_hive.xz"), facts)
    assert facts.findings, "damaged cells must be reported"
    assert all(f.message.startswith("windows: ") for f in facts.findings)


# -- malformed ----------------------------------------------------------------------

def corrupt_records(disk: Path, part_start: int, paths: list[str]) -> Path:
    """Overwrite the FILE signature of the MFT records of ``paths`` (torn records)."""
    with imgscan.open(disk) as img:
        vol = NtfsVolume(img.read, part_start, 32 << 20, "p")
        offsets = []
        for path in paths:
            f = vol.lookup(path)
            assert f is not None
            off = part_start + vol.mft_lcn * vol.cluster_size + f.record_number * vol.record_size
            assert img.read(off, 4) == b"FILE"
            offsets.append(off)
    with disk.open("r+b") as fh:
        for off in offsets:
            fh.seek(off)
            fh.write(b"BAAD")
    return disk


def test_windows_tree_without_readable_hives(disks: dict[str, Path], tmp_path: Path) -> None:
    disk = tmp_path / "nohives.img"
    sparse_copy(disks["nosysres"], disk)
    corrupt_records(disk, 1 << 20, [f"\\Windows\\System32\\config\\{h}"
                                    for h in ("SYSTEM", "SOFTWARE", "SAM")])
    with imgscan.open(disk) as img:
        info = img.info()
    w = info["windows"]
    assert w is not None and w["arch"] == "x86_64"
    assert w["product_name"] is None and w["hostname"] is None and w["drivers"] == {}
    messages = [f["message"] for f in w["findings"]]
    for hive in ("SYSTEM", "SOFTWARE", "SAM"):
        assert any(m.startswith(f"windows: {hive} hive not read") for m in messages), messages


def test_truncated_hive_is_a_finding(disks: dict[str, Path], tmp_path: Path) -> None:
    disk = tmp_path / "trunc.img"
    sparse_copy(disks["bios"], disk)
    start = 17 << 20
    with imgscan.open(disk) as img:
        vol = NtfsVolume(img.read, start, 32 << 20, "p")
        f = vol.open("\\Windows\\System32\\config\\SOFTWARE")
        runs = [r for r in f.runs() if r[1] >= 0]
        lcn = runs[0][1]
    with disk.open("r+b") as fh:
        # Keep the base block, zero the hive bins: the hbin chain is gone.
        fh.seek(start + lcn * vol.cluster_size + 4096)
        fh.write(b"\0" * (f.size - 4096))
    with imgscan.open(disk) as img:
        w = img.info()["windows"]
    assert w["product_name"] is None
    assert w["hostname"] == "ims-bios-01"  # SYSTEM still read
    assert any("SOFTWARE hive not read" in m["message"] for m in w["findings"])


def merged_hive(tmp_path: Path, reg: str, prefix: str) -> Hive:
    hive = tmp_path / "hive"
    hive.write_bytes((HIVES / "minimal").read_bytes())
    hive.chmod(0o644)
    text = tmp_path / "x.reg"
    text.write_text("Windows Registry Editor Version 5.00\r\n\r\n" + reg)
    sh("hivexregedit", "--merge", "--prefix", prefix, hive, text)
    return Hive(hive.read_bytes(), "test hive")


@needs_regedit
@needs_hives
def test_sam_with_garbage_f_and_v(tmp_path: Path) -> None:
    reg = "".join(f"[HKEY_LOCAL_MACHINE\\SAM\\{p}]\r\n\r\n" for p in (
        "SAM", "SAM\\Domains", "SAM\\Domains\\Account", "SAM\\Domains\\Account\\Users"))
    reg += ("[HKEY_LOCAL_MACHINE\\SAM\\SAM\\Domains\\Account\\Users\\000001F4]\r\n"
            '"F"=hex:01,02,03\r\n"V"=hex:ff,ff,ff,ff,ff,ff,ff,ff,ff,ff,ff,ff,ff,ff,ff,ff\r\n')
    hive = merged_hive(tmp_path, reg, "HKEY_LOCAL_MACHINE\\SAM")
    facts = Facts()
    sam.administrator(hive, facts)
    sam.administrators_members(hive, facts)
    assert facts.values["administrator"]["exists"] is True
    assert facts.values["administrator"]["enabled"] is False
    messages = [f.message for f in facts.findings]
    assert any("\\F: field at 0x38" in m for m in messages), messages
    assert any("\\V: field at 0xa8" in m for m in messages), messages
    assert any("administrators not read" in m for m in messages), messages


@needs_regedit
@needs_hives
def test_bcd_without_loader_objects(tmp_path: Path) -> None:
    g = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}"
    keys = ["Objects", f"Objects\\{g}", f"Objects\\{g}\\Description"]
    reg = "".join(f"[HKEY_LOCAL_MACHINE\\BCD\\{k}]\r\n" + (
        '"Type"=dword:10100002\r\n' if k.endswith("Description") else "") + "\r\n" for k in keys)
    hive = merged_hive(tmp_path, reg, "HKEY_LOCAL_MACHINE\\BCD")
    facts = Facts()
    bcd.store_facts(hive, facts)
    assert facts.values["bcd"] == {"objects": 1, "bootmgr_path": None, "bootmgr_device": None}
    assert any("no Windows OS loader object" in f.message for f in facts.findings)


def test_pieces_on_their_own() -> None:
    with pytest.raises(ValueError):
        pe.machine(b"MZ" + b"\0" * 58 + struct.pack("<I", 0x10000))
    assert key_type(b"\0" * 1272) is None
    with pytest.raises(ValueError):
        key_type(b"\0" * 100)
    with pytest.raises(ValueError):
        cloudbaseinit.parse_conf("no section header\n")
    assert sam.sid_text(bytes.fromhex("0102000000000005200000002002000000")[:16]) \
        == "S-1-5-32-544"


def iter_fixture_names() -> Iterator[str]:
    yield from NAMES


FIREWALL = "ControlSet001\\Services\\SharedAccess\\Parameters\\FirewallPolicy"


#: What an active inbound allow rule holds besides Action/Active/Dir, per fact.
ALLOWS = {"rdp_firewall_rules": [{"Protocol=6", "LPort=3389"}],
          "winrm_firewall_rules": [{"Protocol=6", "LPort=5985"}, {"Protocol=6", "LPort=5986"}],
          "icmp_firewall_rules": [{"Protocol=1", "ICMP4=8:*"}, {"Protocol=1", "ICMP4=8:0"}]}


def hivex_rdp_rules(raw: Path, fact: str = "rdp_firewall_rules") -> list[str]:
    """The names of the active inbound allow rules of ``fact`` (TCP 3389 by default),
    from ``hivexget KEY``'s listing of every FirewallRules value
    (``"name"="v2.x|Action=Allow|..."``)."""
    listing = sh("hivexget", raw, f"{FIREWALL}\\FirewallRules")
    out = []
    for line in listing.splitlines():
        m = re.match(r'"([^"]+)"="(.*)"$', line)
        if not m:
            continue
        fields = set(m.group(2).split("|"))
        if {"Action=Allow", "Active=TRUE", "Dir=In"} <= fields and \
                any(want <= fields for want in ALLOWS[fact]):
            out.append(m.group(1))
    return out


def hivex_dword(raw: Path, key: str, value: str) -> int | None:
    """A REG_DWORD as hivexget prints it (decimal), None when absent."""
    text = hivex_text(raw, key, value)
    return None if text is None else int(text)


def assert_system_peer_facts(v: dict[str, Any], raw: Path) -> None:
    """The SYSTEM facts the peers' rules read, against hivexget on the same hive."""
    cs = "ControlSet001"
    for fact in ALLOWS:
        assert sorted(v[fact]) == sorted(hivex_rdp_rules(raw, fact)), fact
    assert v["san_policy"] == hivex_dword(raw, f"{cs}\\Services\\partmgr\\Parameters",
                                          "SanPolicy")
    rdp = f"{cs}\\Control\\Terminal Server\\WinStations\\RDP-Tcp"
    assert v["rdp_port"] == hivex_dword(raw, rdp, "PortNumber")
    nla = hivex_dword(raw, rdp, "UserAuthentication")
    assert v["rdp_nla"] == (None if nla is None else nla != 0)
    sm = f"{cs}\\Control\\Session Manager"
    pages = hivex_text(raw, f"{sm}\\Memory Management", "PagingFiles")
    assert v["paging_files"] == [line for line in (pages or "").split("\n") if line]
    renames = hivex_text(raw, sm, "PendingFileRenameOperations")
    assert v["pending_file_renames"] == len([n for n in (renames or "").split("\n") if n])


@needs_hives
@needs_hivex
@pytest.mark.parametrize("name", sorted(SYSTEM_MANIFEST))
def test_firewall_and_clock_facts_equal_hivexget(name: str, tmp_path: Path) -> None:
    """``firewall_enabled``, the RDP / WinRM / ICMP allow rules, ``real_time_is_universal``,
    SanPolicy, the RDP-Tcp listener, the paging files and the pending renames of the
    real SYSTEM hives against hivexget (the Windows 10 1709 hive's RDP rule is inactive,
    as RDP is off there: windows-inspection.md C8)."""
    facts = Facts()
    system_facts(corpus_hive(name), facts)
    v = facts.values
    raw = tmp_path / "hive"
    raw.write_bytes(lzma.decompress((HIVES / name).read_bytes()))
    for key, profile in (("DomainProfile", "domain"), ("StandardProfile", "private"),
                         ("PublicProfile", "public")):
        want = hivex_text(raw, f"{FIREWALL}\\{key}", "EnableFirewall")
        assert v["firewall_enabled"].get(profile) == (None if want is None else want != "0")
    assert sorted(v["rdp_firewall_rules"]) == sorted(hivex_rdp_rules(raw))
    rtu = hivex_text(raw, "ControlSet001\\Control\\TimeZoneInformation", "RealTimeIsUniversal")
    assert v["real_time_is_universal"] is (rtu is not None and rtu != "0")
    assert_system_peer_facts(v, raw)
    assert not [f for f in facts.findings if "not read" in f.message]


@pytest.mark.skipif(shutil.which("ntfsinfo") is None, reason="ntfsinfo (ntfs-3g) absent")
@pytest.mark.parametrize("name", NAMES)
def test_free_space_equals_ntfsinfo(disks: dict[str, Path], infos: dict[str, dict[str, Any]],
                                    name: str, tmp_path: Path) -> None:
    """``free_bytes`` is ntfs-3g's ``ntfsinfo -m`` "Free Clusters" times the cluster size,
    on the Windows partition copied out of the fixture."""
    w = infos[name]["windows"]
    if w is None:
        pytest.skip(f"{name}: no Windows found (BitLocker)")
    part = next(p for p in infos[name]["partitions"] if p["number"] == w["partition"])
    vol = tmp_path / "ntfs.img"
    with disks[name].open("rb") as src, vol.open("wb") as dst:
        src.seek(part["start"])
        dst.write(src.read(part["size"]))
    text = sh("ntfsinfo", "-m", vol)
    free = int(re.search(r"Free Clusters: (\d+)", text).group(1))  # type: ignore[union-attr]
    size = int(re.search(r"Cluster Size: (\d+)", text).group(1))  # type: ignore[union-attr]
    assert w["free_bytes"] == free * size
    assert f": {free} of " in w["evidence"]["free_bytes"]

# -- a dirty SYSTEM hive with its transaction logs, end to end ---------------------------

needs_dirty_system = pytest.mark.skipif(
    not all((HIVES / n).is_file() for n in DIRTY_SYSTEM),
    reason=f"the dirty SYSTEM of {HIVES} (MANIFEST.md, 'Dirty hives') is absent")
needs_ntfscp = pytest.mark.skipif(shutil.which("ntfscp") is None,
                                  reason="ntfs-3g's ntfscp absent")


def dirty_system_disk(disks: dict[str, Path], tmp_path: Path, logs: tuple[str, ...]) -> Path:
    """The nosysres disk with the corpus's dirty SYSTEM and ``logs`` beside it
    (helpers.regf_logs), the files read back by sleuthkit."""
    disk = dirty_windows_disk(disks["nosysres"], HIVES, tmp_path, logs)
    if HAVE_TSK:
        for src, dst in zip(DIRTY_SYSTEM, ("SYSTEM", *logs), strict=False):
            got = tsk_extract(disk, 1, (CONFIG + dst).replace("/", "\\"), tmp_path / "icat")
            want = (tmp_path / src.removesuffix(".xz")).read_bytes()
            assert got is not None and got.read_bytes() == want, dst
    return disk


@needs_dirty_system
@needs_ntfscp
def test_dirty_system_hive_replayed_end_to_end(disks: dict[str, Path], tmp_path: Path) -> None:
    """``imgscan info`` reads the replayed SYSTEM (the F: drive only LOG2 holds) and says
    so in a ``hive-replayed`` finding; ``imgscan check``'s clean-shutdown warns and says
    in its evidence that the logs were replayed."""
    from helpers import run_cli

    disk = dirty_system_disk(disks, tmp_path, ("SYSTEM.LOG1", "system.log2"))
    proc = run_cli("info", "--json", str(disk))
    assert proc.returncode == 0, proc.stderr
    w = json.loads(proc.stdout)["windows"]
    system = "\\Windows\\System32\\config\\SYSTEM"
    assert w["hostname"] == "DESKTOP-PM6C56D"
    assert w["mounted_devices"]["F:"] == {"style": "mbr", "disk_signature": "76d45981",
                                          "offset": 0x100000}
    state = w["hive_logs"]["SYSTEM"]
    assert state["dirty"] and state["replayed"] and state["pages"] == 315
    assert state["logs_replayed"] == [f"{system}.LOG1", f"{system}.LOG2"]
    assert w["hive_logs"]["SOFTWARE"] == {"dirty": False, "replayed": False, "logs": []}
    replayed = [f for f in w["findings"] if f["id"] == "hive-replayed"]
    assert len(replayed) == 1 and replayed[0]["severity"] == "info"
    assert f"windows: {system}: dirty hive (sequence numbers 1622 != 1621) replayed" \
        in replayed[0]["message"] and "315 dirty pages" in replayed[0]["message"]
    assert not [f for f in w["findings"] if f["id"] == "dirty" and system in f["message"]]
    proc = run_cli("check", "--json", str(disk))
    rule = next(r for r in json.loads(proc.stdout)["rules"] if r["id"] == "clean-shutdown")
    assert rule["status"] == "warn", rule
    assert "transaction logs replayed: SYSTEM from" in rule["evidence"]["windows.hive_logs"]["from"]
    text = run_cli("info", str(disk)).stdout
    assert "hive-replayed" in text


@needs_dirty_system
@needs_ntfscp
def test_dirty_system_hive_without_logs_end_to_end(disks: dict[str, Path],
                                                   tmp_path: Path) -> None:
    """Without its logs the dirty SYSTEM is read alone (no F: drive), the ``dirty``
    warning says no usable log was found, and clean-shutdown fails."""
    from helpers import run_cli

    disk = dirty_system_disk(disks, tmp_path, ())
    w = json.loads(run_cli("info", "--json", str(disk)).stdout)["windows"]
    assert "F:" not in w["mounted_devices"]
    assert w["hive_logs"]["SYSTEM"] == {"dirty": True, "replayed": False, "logs": [],
                                        "unusable_logs": ["no .LOG1 or .LOG2 file"]}
    dirty = [f for f in w["findings"] if f["id"] == "dirty"]
    assert len(dirty) == 1 and "no usable transaction log" in dirty[0]["message"]
    rule = next(r for r in json.loads(run_cli("check", "--json", str(disk)).stdout)["rules"]
                if r["id"] == "clean-shutdown")
    assert rule["status"] == "fail" and "SYSTEM not fully written" in rule["message"]


# -- the peers' registry settings, written by hivexregedit (helpers.windows_registry) --------

@pytest.mark.parametrize("variant", sorted(REGISTRY_VARIANTS))
def test_peer_registry_facts_equal_hivexget(disks: dict[str, Path], variant: str,
                                            tmp_path: Path) -> None:
    """The nosysres disk with its SYSTEM and SOFTWARE edited by hivexregedit and written
    back by ntfscp: every fact the AWS, Azure and Google rules read equals hivexget's
    reading of the same hive files (WinHttpSettings decoded here from hivexget's bytes
    by the layout ``netsh winhttp`` writes)."""
    disk, hives = edited_disk(disks["nosysres"], tmp_path, REGISTRY_VARIANTS[variant])
    with imgscan.open(disk) as img:
        w = img.info()["windows"]
    assert not w["findings"], w["findings"]
    assert_system_peer_facts(w, hives["SYSTEM"])
    software = hives["SOFTWARE"]
    blob = hivexget(software, "Microsoft\\Windows\\CurrentVersion\\Internet Settings\\"
                    "Connections", "WinHttpSettings")
    assert blob is not None
    flags, length = struct.unpack_from("<II", blob, 8)
    assert w["winhttp_proxy"] == (blob[16:16 + length].decode() if flags & 2 else None)
    release = hivex_dword(software, "Microsoft\\NET Framework Setup\\NDP\\v4\\Full", "Release")
    assert w["dotnet_release"] == release
    cbs = "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
    pending = subprocess.run(["hivexget", software, f"{cbs}\\RebootPending"],
                             capture_output=True).returncode == 0
    assert w["reboot_pending"] == (["RebootPending"] if pending else [])
    listing = sh("hivexregedit", "--export", software, f"{cbs}\\Packages")
    kbs = sorted(set(re.findall(r"\\Package_for_(KB\d+)~", listing)))
    assert w["installed_kbs"] == kbs
    assert (w["major_version"], w["minor_version"]) == (6, 1)
    assert hivex_text(software, "Microsoft\\Windows NT\\CurrentVersion", "CurrentVersion") == "6.1"


def test_servicing_packages_past_the_cap_are_not_listed(disks: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """More servicing packages than ``limits.WINDOWS_MAX_ENTRIES``: ``installed_kbs`` is
    null (a list cut short would call an installed update missing) and the evidence
    says why; at the cap they are listed."""
    _, hives = edited_disk(disks["nosysres"], tmp_path, REGISTRY_VARIANTS["ready"])
    hive = Hive(hives["SOFTWARE"].read_bytes(), "SOFTWARE")
    monkeypatch.setattr(limits, "WINDOWS_MAX_ENTRIES", 2)   # the ready hive has two
    facts = Facts()
    software_facts(hive, facts)
    assert facts.values["installed_kbs"] == ["KB4474419", "KB976902"]
    monkeypatch.setattr(limits, "WINDOWS_MAX_ENTRIES", 1)
    facts = Facts()
    software_facts(hive, facts)
    assert facts.values["installed_kbs"] is None
    assert "2 packages, more than limits.WINDOWS_MAX_ENTRIES=1" in \
        facts.evidence["installed_kbs"]

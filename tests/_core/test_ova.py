"""OVF packages read in place: OVAs made by ``qemu-img convert`` (streamOptimized) and
``tar --format=ustar`` around ovftool-style descriptors, checked against the tools.

Oracles: ``qemu-img info --output=json`` on each disk extracted by ``tar -x`` (format,
create type, virtual size, file size) against imgscan's per-disk facts; ``xmllint
--xpath`` on the descriptor for the disks, firmware, OS type, NIC and controllers;
``sha256sum`` / ``sha1sum`` for the manifest. The guest facts read through the archive
equal those of the raw fixture disk, and ``imgscan ls`` / ``cat`` through the OVA print
what they print for the disk alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import TESTS, MiB, overwrite, run_cli, sparse_file
from helpers.ova_packages import BILLION_LAUGHS, build_ova, gpt_ext4_disk
from oracles import needs_qemu, qemu_info, run

import imgscan

pytestmark = needs_qemu
needs_xmllint = pytest.mark.skipif(shutil.which("xmllint") is None,
                                   reason="xmllint (libxml2-utils) not installed")


@pytest.fixture(scope="module")
def data_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gpt_ext4_disk(tmp_path_factory.mktemp("data") / "data.img")


@pytest.fixture(scope="module")
def ovas(tmp_path_factory: pytest.TempPathFactory, windows_disks: dict[str, Path],
         data_disk: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ova")
    return {
        "bios": build_ova(out / "bios", "bios", [("bios-disk1.vmdk", windows_disks["bios"])],
                          firmware="bios"),
        # the data disk first: the system disk is the one with a boot path, not the first
        "data-uefi": build_ova(out / "data-uefi", "vm",
                               [("vm-disk1.vmdk", data_disk),
                                ("vm-disk2.vmdk", windows_disks["uefi"])],
                               firmware="efi", controller=(20, "vmware.nvme")),
        "two-system": build_ova(out / "two", "two",
                                [("a.vmdk", windows_disks["uefi"]),
                                 ("b.vmdk", windows_disks["uefi"])], firmware="efi"),
    }


def _extract(ova: Path, dest: Path) -> Path:
    dest.mkdir()
    run("tar", "-xf", ova, "-C", dest)
    return dest


def _xpath(path: Path, expr: str) -> str:
    return run("xmllint", "--xpath", expr, path).strip()


@pytest.mark.parametrize("name", ["bios", "data-uefi", "two-system"])
def test_every_disk_agrees_with_qemu_img_on_the_extracted_file(
        ovas: dict[str, Path], tmp_path: Path, name: str) -> None:
    extracted = _extract(ovas[name], tmp_path / "x")
    with imgscan.open(ovas[name]) as img:
        info = img.info()
    assert info["file_size"] == ovas[name].stat().st_size
    members = {m["name"]: m for m in info["ova"]["members"]}
    assert list(members) == run("tar", "-tf", ovas[name]).split()
    for disk in info["disks"]:
        qemu = qemu_info(extracted / disk["href"])
        assert disk["format"] == qemu["format"] == "vmdk"
        assert disk["subformat"] == qemu["format-specific"]["data"]["create-type"]
        assert disk["virtual_size"] == qemu["virtual-size"] == disk["capacity"]
        assert disk["file_size"] == (extracted / disk["href"]).stat().st_size \
            == disk["member"]["size"]
        assert disk["findings"] == []
        # the same disk opened alone, from the extracted file: the same facts
        with imgscan.open(extracted / disk["href"]) as alone:
            assert alone.allocated_size == img.package_disk(disk["index"]).allocated_size
    package = [f for f, stage in zip(info["findings"], info["finding_stages"], strict=True)
               if stage == "container"]
    assert package == [], package


@needs_xmllint
@pytest.mark.parametrize("name", ["bios", "data-uefi"])
def test_descriptor_facts_agree_with_xmllint(ovas: dict[str, Path], tmp_path: Path,
                                             name: str) -> None:
    extracted = _extract(ovas[name], tmp_path / "x")
    ovf = next(extracted.glob("*.ovf"))
    run("xmllint", "--noout", ovf)
    with imgscan.open(ovas[name]) as img:
        info = img.info()
    ova = info["ova"]
    assert ova["descriptor"] == ovf.name
    assert len(info["disks"]) == int(float(_xpath(ovf, "count(//*[local-name()='Disk'])")))
    hrefs = _xpath(ovf, "//*[local-name()='File']/@*[local-name()='href']")
    assert [d["href"] for d in info["disks"]] == [h.split('"')[1] for h in hrefs.split()]
    assert ova["firmware"] == _xpath(
        ovf, "string(//*[local-name()='Config'][@*[local-name()='key']='firmware']"
             "/@*[local-name()='value'])")
    assert ova["os_type"] == _xpath(
        ovf, "string(//*[local-name()='OperatingSystemSection']/@*[local-name()='osType'])")
    assert [n["subtype"] for n in ova["nics"]] == _xpath(
        ovf, "//*[local-name()='Item'][*[local-name()='ResourceType']='10']"
             "/*[local-name()='ResourceSubType']/text()").split()
    assert [c["subtype"] for c in ova["controllers"]] == _xpath(
        ovf, "//*[local-name()='Item'][*[local-name()='ResourceType']='5' or "
             "*[local-name()='ResourceType']='6' or *[local-name()='ResourceType']='20']"
             "/*[local-name()='ResourceSubType']/text()").split()


def test_guest_facts_through_the_archive_equal_the_raw_disk(
        ovas: dict[str, Path], windows_disks: dict[str, Path]) -> None:
    with imgscan.open(ovas["bios"]) as img, imgscan.open(windows_disks["bios"]) as raw:
        packaged, alone = img.info(), raw.info()
    for key in ("partition_table", "partitions", "windows", "virtual_size"):
        assert packaged[key] == alone[key], key
    assert packaged["format"] == "vmdk" and packaged["subformat"] == "streamOptimized"
    assert packaged["ova"]["system_disk"] == 0


def test_multi_disk_names_the_disk_with_a_boot_path(ovas: dict[str, Path],
                                                    windows_disks: dict[str, Path]) -> None:
    with imgscan.open(ovas["data-uefi"]) as img:
        info = img.info()
    assert [d["system"] for d in info["disks"]] == [False, True]
    assert info["ova"]["system_disk"] == 1
    assert info["disks"][0]["partition_table"] == "gpt"
    assert info["disks"][0]["boot_mode"] == "unknown"
    assert info["disks"][1]["controller"] == "storage/vmware.nvme"
    with imgscan.open(windows_disks["uefi"]) as raw:
        alone = raw.info()
    assert info["windows"] == alone["windows"]
    assert info["boot_mode"] == alone["boot_mode"] == "uefi"
    assert "OVF descriptor: firmware efi" in info["boot_evidence"]
    # ls / cat read the first disk with bytes, as the issue says
    assert img.disk_index == 0


def test_two_bootable_disks_take_the_first_in_order(ovas: dict[str, Path]) -> None:
    with imgscan.open(ovas["two-system"]) as img:
        info = img.info()
    assert info["ova"]["system_disk"] == 0
    assert [d["boot_mode"] for d in info["disks"]] == ["uefi", "uefi"]


def test_firmware_the_disk_cannot_boot_is_a_finding(tmp_path: Path,
                                                    windows_disks: dict[str, Path]) -> None:
    ova = build_ova(tmp_path, "x", [("x.vmdk", windows_disks["uefi"])], firmware="bios")
    with imgscan.open(ova) as img:
        info = img.info()
    assert info["boot_mode"] == "uefi"
    assert [f["id"] for f, stage in zip(info["findings"], info["finding_stages"], strict=True)
            if stage == "container"] == ["firmware-mismatch"]


@pytest.mark.parametrize("algorithm", ["sha256", "sha1"])
def test_manifest_verified_as_sha_sum_computes_it(tmp_path: Path, algorithm: str,
                                                  windows_disks: dict[str, Path]) -> None:
    ova = build_ova(tmp_path, "m", [("m.vmdk", windows_disks["bios"])])
    mf = tmp_path / "m.mf"
    from helpers.ova_packages import manifest
    mf.write_text(manifest(tmp_path, ["m.ovf", "m.vmdk"], algorithm))
    run("tar", "--format=ustar", "-cf", ova, "m.ovf", "m.mf", "m.vmdk", cwd=tmp_path)
    with imgscan.open(ova) as img:
        assert img.info()["ova"]["manifest"]["verified"] is None    # not asked
    with imgscan.open(ova, verify_manifest=True) as img:
        info = img.info()
    assert info["ova"]["manifest"] == {"name": "m.mf", "entries": 2,
                                       "algorithms": [algorithm.upper()], "verified": True,
                                       "mismatches": []}
    # one byte of the disk member changed: sha*sum of the extracted member disagrees too
    member = next(m for m in info["ova"]["members"] if m["name"] == "m.vmdk")
    overwrite(ova, member["offset"] + member["size"] - 1, b"\x01")
    with imgscan.open(ova, verify_manifest=True) as img:
        bad = img.info()
    assert bad["ova"]["manifest"]["mismatches"] == ["m.vmdk"]
    ids = [f["id"] for f in bad["findings"]]
    assert ids == ["manifest-mismatch"], bad["findings"]
    digest = subprocess.run(f"tar -xOf {ova} m.vmdk | {algorithm}sum", shell=True,
                            capture_output=True, text=True, check=True).stdout.split()[0]
    assert digest in bad["findings"][0]["message"]


def test_standalone_ovf_reads_its_disks_beside_it(ovas: dict[str, Path],
                                                  tmp_path: Path) -> None:
    extracted = _extract(ovas["data-uefi"], tmp_path / "x")
    with imgscan.open(ovas["data-uefi"]) as img:
        packaged = img.info()
    with imgscan.open(extracted / "vm.ovf", verify_manifest=True) as img:
        info = img.info()
    assert info["ova"]["kind"] == "ovf"
    assert info["file_size"] == sum(p.stat().st_size for p in (
        extracted / "vm.ovf", extracted / "vm-disk1.vmdk", extracted / "vm-disk2.vmdk"))
    assert info["ova"]["manifest"]["verified"] is True
    for key in ("windows", "partitions", "boot_mode", "format", "virtual_size"):
        assert info[key] == packaged[key], key
    assert [d["virtual_size"] for d in info["disks"]] == \
        [d["virtual_size"] for d in packaged["disks"]]


def _cli_bytes(*args: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m imgscan ARGS`` as :func:`helpers.run_cli` runs it, output as bytes."""
    return subprocess.run([sys.executable, "-m", "imgscan", *args], capture_output=True,
                          check=False, cwd=TESTS)


def test_ls_and_cat_through_the_archive(ovas: dict[str, Path],
                                        windows_disks: dict[str, Path]) -> None:
    raw = windows_disks["bios"]
    for args in (("ls", "-l", "{}:2", "/Windows/System32"),
                 ("cat", "{}:2", "/Windows/System32/cmd.exe")):
        via_ova = _cli_bytes(*(a.format(ovas["bios"]) for a in args))
        alone = _cli_bytes(*(a.format(raw) for a in args))
        assert via_ova.returncode == alone.returncode == 0, via_ova.stderr
        assert via_ova.stdout == alone.stdout and via_ova.stdout


def test_info_json_and_check_on_an_ova(ovas: dict[str, Path]) -> None:
    proc = run_cli("info", "--json", "--verify-manifest", str(ovas["bios"]))
    assert proc.returncode == 0, proc.stderr
    info: dict[str, Any] = json.loads(proc.stdout)
    assert info["ova"]["manifest"]["verified"] is True
    assert info["disks"][0]["system"] is True
    proc = run_cli("check", "--json", str(ovas["bios"]))
    result = json.loads(proc.stdout)
    assert result["info"]["ova"]["system_disk"] == 0
    rules = {r["id"]: r["status"] for r in result["rules"]}
    assert rules["system-disk-present"] == "pass"
    assert rules["format-supported"] == "pass"


# -- hostile packages: each a finding, or an ImageError when no disk is left -------------
def _repack(d: Path, name: str, members: list[str]) -> Path:
    ova = d / f"{name}.ova"
    ova.unlink(missing_ok=True)
    run("tar", "--format=ustar", "-cf", ova, *members, cwd=d)
    return ova


def _container_ids(info: dict[str, Any]) -> list[str]:
    return [f["id"] for f, stage in zip(info["findings"], info["finding_stages"], strict=True)
            if stage == "container"]


@pytest.fixture
def package_dir(tmp_path: Path, windows_disks: dict[str, Path]) -> Path:
    """``p.ovf``, ``p.mf``, ``p.vmdk`` (the BIOS fixture) and ``p.ova`` in one directory."""
    build_ova(tmp_path, "p", [("p.vmdk", windows_disks["bios"])])
    return tmp_path


def test_entity_expansion_in_the_descriptor(package_dir: Path) -> None:
    """The billion laughs as an OVA's descriptor: refused unexpanded (a corrupt finding);
    the package is still read from its members."""
    (package_dir / "p.ovf").write_bytes(BILLION_LAUGHS)
    ova = _repack(package_dir, "p", ["p.ovf", "p.vmdk"])
    with imgscan.open(ova) as img:
        info = img.info()
    assert _container_ids(info) == ["corrupt"]
    assert "DOCTYPE or entities" in info["findings"][0]["message"]
    assert [d["href"] for d in info["disks"]] == ["p.vmdk"]
    assert info["windows"] is not None


@pytest.mark.parametrize("href", ["/etc/shadow", "../p.vmdk", "nbd:evil"])
def test_unsafe_hrefs_are_refused(package_dir: Path, href: str) -> None:
    ovf_text = (package_dir / "p.ovf").read_text()
    (package_dir / "p.ovf").write_text(ovf_text.replace('ovf:href="p.vmdk"',
                                                        f'ovf:href="{href}"'))
    ova = _repack(package_dir, "p", ["p.ovf", "p.vmdk"])
    with pytest.raises(imgscan.ImageError, match="no disk of the package can be read"):
        imgscan.open(ova)
    # the standalone descriptor refuses it too, even though the file is beside it
    with pytest.raises(imgscan.ImageError, match="never followed"):
        imgscan.open(package_dir / "p.ovf")


def test_a_symlink_out_of_the_descriptors_directory_is_refused(package_dir: Path,
                                                               tmp_path_factory:
                                                               pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "p.vmdk"
    (package_dir / "p.vmdk").rename(outside)
    (package_dir / "p.vmdk").symlink_to(outside)
    with pytest.raises(imgscan.ImageError, match="resolves outside"):
        imgscan.open(package_dir / "p.ovf")


def test_a_second_disk_that_is_missing_is_a_finding(tmp_path: Path,
                                                    windows_disks: dict[str, Path]) -> None:
    build_ova(tmp_path, "q", [("q1.vmdk", windows_disks["bios"]),
                              ("q2.vmdk", windows_disks["uefi"])])
    ova = _repack(tmp_path, "q", ["q.ovf", "q.mf", "q1.vmdk"])
    with imgscan.open(ova) as img:
        info = img.info()
    # the manifest still lists q2.vmdk, which is not there either
    assert _container_ids(info) == ["package-member", "manifest-mismatch"]
    assert "'q2.vmdk' is not in the archive" in info["findings"][0]["message"]
    assert info["disks"][1]["error"] and info["disks"][0]["system"]


def test_a_disk_cut_short_is_truncated(package_dir: Path) -> None:
    ova = package_dir / "p.ova"
    with open(ova, "r+b") as f:
        f.truncate(ova.stat().st_size // 2)
    with pytest.raises(imgscan.ImageError, match="is not in the archive"):
        imgscan.open(ova)


def test_the_same_disk_name_twice(package_dir: Path) -> None:
    """``tar -r`` appends a second p.vmdk: tar would extract the last, a reader that stops
    at the first sees the other; neither is read."""
    ova = package_dir / "p.ova"
    run("tar", "--format=ustar", "-rf", ova, "p.ovf", cwd=package_dir)
    run("tar", "--format=ustar", "-rf", ova, "p.vmdk", cwd=package_dir)
    with pytest.raises(imgscan.ImageError, match="several members of this name"):
        imgscan.open(ova)


def test_manifest_naming_a_file_that_is_not_there(package_dir: Path) -> None:
    mf = package_dir / "p.mf"
    mf.write_text(mf.read_text() + "SHA256(gone.vmdk)= " + "0" * 64 + "\nnot a line\n")
    ova = _repack(package_dir, "p", ["p.ovf", "p.mf", "p.vmdk"])
    with imgscan.open(ova, verify_manifest=True) as img:
        info = img.info()
    assert _container_ids(info) == ["corrupt", "manifest-mismatch"]
    assert info["ova"]["manifest"]["mismatches"] == ["gone.vmdk"]
    assert info["ova"]["manifest"]["verified"] is False


def test_manifest_bytes_cap(monkeypatch: pytest.MonkeyPatch, package_dir: Path) -> None:
    from test_limits import _finding_boundary, _findings
    size = (package_dir / "p.mf").stat().st_size
    _finding_boundary(monkeypatch, "OVA_MAX_MANIFEST_BYTES", size,
                      _findings(package_dir / "p.ova"))


def test_a_package_info_has_every_contract_key_with_its_type(ovas: dict[str, Path]) -> None:
    """The package's object is an info object first: every key of the contract with its
    type (tests/test_contract.py's table), then the two extension keys."""
    from test_contract import INFO_KEYS
    for path in ovas.values():
        with imgscan.open(path) as img:
            info = json.loads(json.dumps(img.info()))
        for key, types in INFO_KEYS.items():
            assert isinstance(info[key], types), (path, key, info[key])
        assert len(info["finding_stages"]) == len(info["findings"])
        assert isinstance(info["ova"], dict) and isinstance(info["disks"], list)
        assert info["disks"][info["ova"]["system_disk"]]["system"] is True


@pytest.mark.skipif(shutil.which("mkfs.vfat") is None, reason="dosfstools not installed")
@pytest.mark.parametrize(("firmware", "mode"), [("efi", "uefi"), ("bios", "bios"),
                                                (None, "hybrid")])
def test_the_descriptors_firmware_decides_a_hybrid_disk(tmp_path: Path, firmware: str | None,
                                                       mode: str) -> None:
    """A GPT disk with both a BIOS boot partition and a FAT ESP (sfdisk, mkfs.vfat) boots
    either way: the VM's firmware, from the descriptor, is the way it boots."""
    raw = sparse_file(tmp_path / "hybrid.img", 40 * MiB)
    subprocess.run(["sfdisk", "-q", str(raw)], text=True, check=True, capture_output=True,
                   input="label: gpt\nstart=2048, size=2048, "
                         "type=21686148-6449-6E6F-744E-656564454649\n"
                         "start=4096, size=65536, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n")
    run("mkfs.vfat", "--offset", "4096", raw, "32768")
    with imgscan.open(raw) as alone:
        assert alone.info()["boot_mode"] == "hybrid"
    ova = build_ova(tmp_path / "p", "h", [("h.vmdk", raw)], firmware=firmware)
    with imgscan.open(ova) as img:
        info = img.info()
    assert info["boot_mode"] == mode
    assert ("OVF descriptor: firmware " + str(firmware) in info["boot_evidence"]) \
        == (firmware is not None)
    assert _container_ids(info) == []


def test_a_damaged_second_disk_is_named_and_carried(tmp_path: Path,
                                                    windows_disks: dict[str, Path]) -> None:
    """The second disk's grain directory (the sparse header's ``gd_offset``, VMware's
    spec) points past its member: its error names the package and the member, and the
    package's findings carry it (the member's bytes after it are not read)."""
    ova = build_ova(tmp_path, "b", [("b1.vmdk", windows_disks["bios"]),
                                    ("b2.vmdk", windows_disks["bios"])])
    with imgscan.open(ova) as img:
        member = next(m for m in img.info()["ova"]["members"] if m["name"] == "b2.vmdk")
    overwrite(ova, member["offset"] + 56, (1 << 40).to_bytes(8, "little"))
    with imgscan.open(ova) as img:
        info = img.info()
    assert info["disks"][1]["error"].startswith(f"{ova} [b2.vmdk]: VMDK grain directory")
    assert _container_ids(info) == ["truncated"]
    assert info["windows"] is not None and info["ova"]["system_disk"] == 0


def test_package_condition_needs_the_whole_ustar_magic(tmp_path: Path) -> None:
    """The package's cheap condition, matched with the formats' signatures in one native
    pass, wants the whole ustar magic or XML start (no prefix rule as for a truncated
    header): a tar made by ``tar`` is a candidate, the same file cut inside its magic is
    not; nor is a file cut inside a byte order mark."""
    from imgscan._core import c_tar
    from imgscan._core.registry import may_be_package, read_ends
    from imgscan._core.source import Source

    (tmp_path / "m.bin").write_bytes(b"\x01" * 100)
    tar = tmp_path / "m.tar"
    run("tar", "--format=ustar", "-cf", tar, "m.bin", cwd=tmp_path)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(tar.read_bytes()[:c_tar.MAGIC_OFFSET + 3])
    xml = tmp_path / "m.ovf"
    xml.write_bytes(b'<?xml version="1.0"?>\n<Envelope/>\n')
    bom = tmp_path / "bom.ovf"
    bom.write_bytes(b"\xef\xbb\xbf<Envelope/>")
    cut_bom = tmp_path / "cut-bom.ovf"  # a byte order mark cut short is not XML's start
    cut_bom.write_bytes(b"\xef\xbb")
    for path, expected in ((tar, True), (cut, False), (xml, True), (bom, True),
                           (cut_bom, False)):
        with Source(str(path)) as source:
            assert may_be_package(read_ends(source)) is expected, path.name

"""The ``safe`` profile (an OpenStack-style gate) cell by cell against the README's table.

The README's table "What the `safe` profile does with each finding" decides, for
every finding id, severity and stage, whether the gate fails, warns or ignores it
(helpers.safe_gate reads it). Here:

* every finding id imgscan can emit (the ids of :mod:`imgscan.findings`) is a row;
* every cell the table says imgscan emits has an image made by the tool that
  normally leaves that state (a row of the threat matrix, tests/test_threats.py, or
  a builder here), or is listed in UNTESTED with the reason no tool makes one; the
  image gives a finding in that cell, and the profile does what the cell says with
  that cell's findings alone and with the whole image;
* no false alarms: VHDs made by Hyper-V and Disk2vhd (corpus), by qemu-img with and
  without ``force_size`` and as fixed disks, and the footer Hyper-V writes for a size
  off the CHS grid, pass with the ``info`` finding kept; imgscan's size is qemu's;
* no misses: an empty file, an MBR entry whose boot indicator is not 0x00 or 0x80,
  and a protective MBR whose 0xEE entry does not start at LBA 1 or is not alone
  (OpenStack's format_inspector refuses the last two) fail the gate with a finding.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_threats
from helpers import MiB, decompress, ntfs_images, overwrite, qemu_create, sparse_file, unmount
from helpers.ova_packages import build_ova, dated_signer, signer
from helpers.patchers import (
    mbr_set_entry,
    regf_set_minor_version,
    vhd_as_hyperv,
    vhd_set_footers,
    vhd_spec_geometry,
    vmdk_move_descriptor,
)
from helpers.regf_logs import CONFIG, DIRTY_SYSTEM, dirty_windows_disk, edit_windows_volume, ntfscp
from helpers.safe_gate import COLUMNS, IGNORE, NEVER, cells, column, expected_verdict, table
from oracles import CORPUS, HAVE_QEMU, qemu_info, qemu_io, run

import imgscan
from imgscan import findings, limits
from imgscan.policy import check, load_profile
from imgscan.vocabulary import FAIL, PASS, WINDOWS

Info = dict[str, Any]
SAFE = load_profile("safe")
ROWS = {row.id: row for row in test_threats.ROWS}
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-img / qemu-io not installed")
needs_sgdisk = pytest.mark.skipif(shutil.which("sgdisk") is None, reason="sgdisk not installed")


def info_of(path: Path) -> Info:
    """The info object, an OVF package's manifest and signature verified (as a gate
    is asked to: ``--verify-manifest``; nothing else reads differently)."""
    with imgscan.open(path, verify_manifest=True) as img:
        return img.info()


def finding_ids() -> set[str]:
    """Every finding id imgscan can emit: the id constants of imgscan.findings."""
    return {v for k, v in vars(findings).items() if k.isupper() and isinstance(v, str)}


# -- builders of the states the threat matrix has no row for ------------------------------

def sgdisk(path: Path, *args: str) -> None:
    run("sgdisk", *args, path)


def gpt_disk(d: Path) -> Path:
    """A 16 MiB GPT disk of one Linux partition, by sgdisk (protective MBR included)."""
    path = sparse_file(d / "gpt.raw", 16 * MiB)
    sgdisk(path, "-n1:2048:0", "-t1:8300")
    return path


def empty_file(d: Path) -> Path:
    """A zero-length file: how a failed upload or copy looks."""
    path = d / "empty.img"
    path.touch()
    return path


def mbr_boot_indicator(d: Path) -> Path:
    """sfdisk's MBR with partition 1's boot indicator 0x7f (only 0x00 and 0x80 exist)."""
    path = test_threats.mbr_disk(d)
    mbr_set_entry(path, 0, boot_indicator=0x7F)
    return path


def pmbr_not_at_lba1(d: Path) -> Path:
    """sgdisk's protective MBR with its 0xEE entry moved to start at LBA 2."""
    path = gpt_disk(d)
    mbr_set_entry(path, 0, starting_lba=2)
    return path


def pmbr_hybrid(d: Path) -> Path:
    """A hybrid MBR as ``sgdisk -h`` writes it: partition 1 in the MBR beside 0xEE."""
    path = gpt_disk(d)
    sgdisk(path, "-h", "1")
    return path


def qcow2_unknown_compatible_bit(d: Path) -> Path:
    """qemu-img's qcow2 v3 with compatible feature bit 5 set (no qemu defines it; the
    spec lets a reader ignore compatible bits)."""
    path = test_threats.qcow2(d)
    overwrite(path, 80, (1 << 5).to_bytes(8, "big"))  # spec: compatible_features
    return path


def vhd_format_version_2(d: Path) -> Path:
    """qemu-img's VHD with the footer's file format version 2.0 (spec: 0x00010000)."""
    path = test_threats.vhd(d)
    buf = bytearray(path.read_bytes())
    vhd_set_footers(buf, 12, ">I", 0x00020000)
    path.write_bytes(bytes(buf))
    return path


def windows_hibernated(d: Path) -> Path:
    return ROWS["dirty/windows-hibernated"].build(d)


#: The Windows partition of the bios fixture (sfdisk -d: start 34816, 65536 sectors).
WINDOWS_PARTITION = 2
SOFTWARE = "/Windows/System32/config/SOFTWARE"


def hive_cut_short(d: Path) -> Path:
    """The bios fixture whose SOFTWARE hive ``ntfstruncate`` (ntfs-3g) cut to 6000 bytes,
    as a copy interrupted mid-file leaves it: the hive bins run past its end."""
    for tool in ("ntfsinfo", "ntfstruncate", "sfdisk"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    path = test_threats._windows_fixture(d, "bios")
    table = json.loads(run("sfdisk", "--json", path))["partitiontable"]
    part = table["partitions"][WINDOWS_PARTITION - 1]
    offset, size = part["start"] * 512, part["size"] * 512
    volume = d / "volume.img"
    with open(path, "rb") as f:
        f.seek(offset)
        volume.write_bytes(f.read(size))
    inode = re.search(r"Dumping Inode (\d+)", run("ntfsinfo", "-F", SOFTWARE, volume))
    assert inode, "ntfsinfo found no SOFTWARE hive"
    run("ntfstruncate", volume, inode.group(1), "6000")
    overwrite(path, offset, volume.read_bytes())
    return path


def ova_second_disk_missing(d: Path) -> Path:
    """tar's two-disk OVA repacked without its second disk: the descriptor and the
    manifest still name it."""
    pkg = test_threats.ova_package(d, 2).parent
    ova = pkg / "pkg.ova"
    ova.unlink()
    run("tar", "--format=ustar", "-cf", ova, "pkg.ovf", "pkg.mf", "disk1.vmdk", cwd=pkg)
    return ova


def ova_format_not_the_descriptors(d: Path) -> Path:
    """tar's OVA whose descriptor calls its streamOptimized disk monolithicFlat."""
    pkg = test_threats.ova_package(d).parent
    ovf = pkg / "pkg.ovf"
    ovf.write_text(ovf.read_text().replace("#streamOptimized", "#monolithicFlat"))
    ova = pkg / "pkg.ova"
    ova.unlink()
    run("tar", "--format=ustar", "-cf", ova, "pkg.ovf", "disk1.vmdk", cwd=pkg)
    return ova


def ova_descriptor_last(d: Path) -> Path:
    """tar's OVA with the disk first and the descriptor last (as some third-party
    tools write them, DSP0243 §5.3 forbids)."""
    pkg = test_threats.ova_package(d).parent
    ova = pkg / "pkg.ova"
    ova.unlink()
    run("tar", "--format=ustar", "-cf", ova, "disk1.vmdk", "pkg.mf", "pkg.ovf", cwd=pkg)
    return ova


def ova_firmware_bios_for_uefi_disk(d: Path) -> Path:
    """The UEFI Windows fixture in an OVA whose descriptor says firmware bios."""
    raw = test_threats._windows_fixture(d, "uefi")
    return build_ova(d / "pkg", "pkg", [("disk1.vmdk", raw)], firmware="bios")


def _signed_ova(d: Path, signed_by: tuple[Path, Path] | None = None) -> Path:
    """tar's OVA signed as ovftool's ``--privateKey`` signs it (openssl's key and
    self-signed certificate, ``openssl dgst -sign``)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    raw = test_threats.mbr_disk(d)
    return build_ova(d / "pkg", "pkg", [("disk1.vmdk", raw)],
                     signed_by=signed_by or signer(d / "signer"))


def _repack_signed(pkg: Path) -> Path:
    """The signed package's files archived again by tar, in ovftool's order."""
    ova = pkg / "pkg.ova"
    ova.unlink()
    run("tar", "--format=ustar", "-cf", ova, "pkg.ovf", "pkg.mf", "pkg.cert", "disk1.vmdk",
        cwd=pkg)
    return ova


def ova_manifest_edited_after_signing(d: Path) -> Path:
    """The signed OVA repacked with its manifest's lines reordered (every digest still
    right): the signature no longer verifies (openssl dgst -verify agrees,
    tests/_core/test_ova_cert.py)."""
    pkg = _signed_ova(d).parent
    mf = pkg / "pkg.mf"
    mf.write_text("".join(reversed(mf.read_text().splitlines(keepends=True))))
    return _repack_signed(pkg)


def ova_certificate_garbled(d: Path) -> Path:
    """The signed OVA whose certificate's second base64 line is replaced by other bytes."""
    pkg = _signed_ova(d).parent
    cert = pkg / "pkg.cert"
    lines = cert.read_text().splitlines(keepends=True)
    lines[3] = "!" * 64 + "\n"
    cert.write_text("".join(lines))
    return _repack_signed(pkg)


def ova_signed_by_an_expired_certificate(d: Path) -> Path:
    """The OVA signed with a key whose certificate was valid only in 2020."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    return _signed_ova(d, dated_signer(d / "ca"))


def windows_dirty_hive_with_logs(d: Path) -> Path:
    """The nosysres fixture holding the corpus's dirty SYSTEM and its LOG1 / LOG2, written
    in by ntfs-3g's ntfscp (helpers.regf_logs)."""
    if shutil.which("ntfscp") is None:
        pytest.skip("ntfscp (ntfs-3g) not installed")
    hives = CORPUS.parent / "hives"
    if not all((hives / name).is_file() for name in DIRTY_SYSTEM):
        pytest.skip(f"{hives} is absent")
    return dirty_windows_disk(test_threats._windows_fixture(d, "nosysres"), hives, d)


def vmdk_descriptor_moved(d: Path) -> Path:
    """qemu-img's monolithicSparse VMDK with its embedded descriptor moved from sector 1
    to sector 2, descriptorOffset and descriptorSize patched to say so."""
    path = qemu_create(d / "moved.vmdk", 16 * MiB, fmt="vmdk")
    vmdk_move_descriptor(path)
    return path


def windows_volume_edited(d: Path, edit: Callable[[Path], None], *tools: str) -> Path:
    """The nosysres fixture with its NTFS volume changed by ``edit``."""
    if missing := [t for t in ("ntfscat", "ntfscp", *tools) if shutil.which(t) is None]:
        pytest.skip(f"{', '.join(missing)} (ntfs-3g) not installed")
    return edit_windows_volume(test_threats._windows_fixture(d, "nosysres"), d, edit)


def windows_hive_minor_version_7(d: Path) -> Path:
    """The nosysres fixture whose SYSTEM hive says regf 1.7 (no Windows writes one): the
    hive read by ntfscat, its minor version patched, written back by ntfscp."""
    def edit(volume: Path) -> None:
        hive = d / "SYSTEM"
        hive.write_bytes(subprocess.run(["ntfscat", volume, CONFIG + "SYSTEM"],
                                        check=True, capture_output=True).stdout)
        regf_set_minor_version(hive, 7)
        ntfscp(volume, hive, CONFIG + "SYSTEM")

    return windows_volume_edited(d, edit)


def windows_hive_past_the_cap(d: Path) -> Path:
    """The nosysres fixture whose SYSTEM hive file is one byte longer than
    limits.WINDOWS_MAX_HIVE_BYTES: extended through an ntfs-3g mount (sparse, so the
    32 MiB volume holds it), as a hive grown past 256 MiB is (the format allows 2 GiB)."""
    if reason := ntfs_images.can_build():
        pytest.skip(reason)

    def edit(volume: Path) -> None:
        mnt = d / "mnt"
        mnt.mkdir()
        run("ntfs-3g", volume, mnt)
        try:
            os.truncate(mnt / CONFIG.strip("/") / "SYSTEM", limits.WINDOWS_MAX_HIVE_BYTES + 1)
        finally:
            unmount(mnt)

    return windows_volume_edited(d, edit, "ntfs-3g")


Builder = Callable[[Path], Path]

#: One image per emitted cell of the table: a threat-matrix row id or a builder here.
CELL_IMAGES: dict[tuple[str, str], str | Builder] = {
    ("backing-file", "error"): "backing-file/qcow2-absolute",
    ("backing-file", "warning"): "backing-file/qcow2-relative",
    ("backing-file", "info"): "backing-file/qcow2-relative",
    ("data-file", "error"): "data-file/qcow2-bit-and-extension",
    ("data-file", "info"): "data-file/qcow2-bit-alone",
    ("external-extent", "error"): "external-extent/name-absolute",
    ("external-extent", "warning"): "external-extent/monolithicFlat",
    ("external-extent", "info"): "external-extent/monolithicFlat",
    ("descriptor-ambiguous", "error"): "descriptor-ambiguous/duplicate-createType",
    ("footer-mismatch", "error"): "footer-mismatch/vmdk-stream-grain-size",
    ("footer-mismatch", "warning"): "footer-mismatch/vhd-header-copy",
    ("multiple-formats", "error"): "multiple-formats/qcow2-beside-mbr",
    ("truncated", "error"): empty_file,
    ("truncated", "warning"): "truncated/gpt-disk-cut-short",
    ("size-mismatch", "error"): "size-mismatch/vmdk-stream-header-vs-footer-capacity",
    ("size-mismatch", "warning"): "size-mismatch/luks-payload-past-eof",
    ("size-mismatch", "info"): "size-mismatch/vhd-current-size-vs-chs",
    ("resource-exhaustion", "error"): "resource-exhaustion/gpt-entry-count",
    ("resource-exhaustion", "warning"): "resource-exhaustion/lvm-many-pvs",
    ("unknown-feature", "error"): "unknown-feature/qcow2-incompatible-bit",
    ("unknown-feature", "warning"): vhd_format_version_2,
    ("unknown-feature", "info"): qcow2_unknown_compatible_bit,
    ("encrypted", "error"): "encrypted/qcow2-luks",
    ("encrypted", "info"): "encrypted/qcow2-luks",
    ("dirty", "warning"): "dirty/qcow2-dirty-bit",
    ("dirty", "guest"): windows_hibernated,
    ("truncated", "guest"): hive_cut_short,
    ("corrupt", "guest"): hive_cut_short,
    ("compression-bomb", "error"): "compression-bomb/qcow2-zlib-cluster",
    ("corrupt", "error"): mbr_boot_indicator,
    ("corrupt", "warning"): pmbr_hybrid,
    ("corrupt", "info"): "dirty/vhdx-log-pending",
    ("package-member", "error"): ova_second_disk_missing,
    ("package-member", "warning"): ova_format_not_the_descriptors,
    ("manifest-mismatch", "error"): ova_second_disk_missing,
    ("firmware-mismatch", "warning"): ova_firmware_bios_for_uefi_disk,
    ("package-order", "warning"): ova_descriptor_last,
    ("signature-invalid", "error"): ova_manifest_edited_after_signing,
    ("certificate-invalid", "error"): ova_certificate_garbled,
    ("certificate-expired", "warning"): ova_signed_by_an_expired_certificate,
    ("hive-replayed", "info"): windows_dirty_hive_with_logs,
    ("descriptor-ambiguous", "warning"): vmdk_descriptor_moved,
    ("resource-exhaustion", "guest"): windows_hive_past_the_cap,
    ("unknown-feature", "guest"): windows_hive_minor_version_7,
}

#: Emitted cells no tool here leaves in an image of its own, with the reason (none now:
#: every cell has an image; a cell added to the table with none is listed here).
UNTESTED: dict[tuple[str, str], str] = {}


def build(d: Path, how: str | Builder) -> Path:
    if isinstance(how, str):
        row = ROWS[how]
        if missing := [t for t in row.tools if shutil.which(t) is None]:
            pytest.skip(f"{', '.join(missing)} not installed")
        return row.build(d)
    return how(d)


# -- the table ----------------------------------------------------------------------------

def test_table_has_every_finding_id() -> None:
    assert set(table()) == finding_ids()


def test_every_emitted_cell_has_an_image_or_a_reason() -> None:
    emitted = {(fid, col) for fid, row in table().items() for col in COLUMNS
               if row[col] != NEVER}
    assert set(CELL_IMAGES) | set(UNTESTED) == emitted
    assert not set(CELL_IMAGES) & set(UNTESTED)


def only(info: Info, cell: tuple[str, str]) -> Info:
    """``info`` with the findings of one table cell alone, its facts kept (derived: the
    profile's judgement of that cell)."""
    new = copy.deepcopy(info)
    kept = [(f, s) for f, s in zip(info["findings"], info["finding_stages"], strict=True)
            if (f["id"], column(f["severity"], s)) == cell]
    new["findings"] = [f for f, _ in kept]
    new["finding_stages"] = [s for _, s in kept]
    return new


@needs_qemu
@pytest.mark.parametrize("cell", sorted(CELL_IMAGES), ids=lambda c: "/".join(c))
def test_profile_does_what_the_table_says(tmp_path: Path, cell: tuple[str, str]) -> None:
    path = build(tmp_path, CELL_IMAGES[cell])
    info = info_of(path)
    assert cell in cells(info), info["findings"]
    decision = table()[cell[0]][cell[1]]
    result = check(info, SAFE)
    assert result["verdict"] == expected_verdict(info)
    if decision == IGNORE:
        # No rule that fails or warns cites the cell's findings (an ignored finding may
        # restate a fact another rule judges: the backing file the guest was not read
        # through).
        mine = only(info, cell)["findings"]
        citing = [r["id"] for r in result["rules"] if r["status"] != PASS
                  and any(f in mine for f in r["evidence"].get("findings", {}).get("value", []))]
        assert not citing, result["rules"]
    else:
        alone = check(only(info, cell), SAFE)
        assert alone["verdict"] == decision, alone["rules"]


# -- no false alarms: VHDs as Hyper-V, Disk2vhd and qemu-img write them ----------------------

CORPUS_VHDS = {
    # corpus file -> its creator application (both are sized by the current size)
    "qemu-iotests/hyperv2012r2-dynamic.vhd.bz2": "win ",
    "qemu-iotests/d2v-zerofilled.vhd.bz2": "d2v",
}


@needs_qemu
@pytest.mark.parametrize("rel", sorted(CORPUS_VHDS))
def test_corpus_hyperv_and_disk2vhd_vhds_pass(tmp_path: Path, rel: str) -> None:
    src = CORPUS / rel
    if not src.exists():
        pytest.skip(f"{src} is absent")
    path = decompress(src, tmp_path / "disk.vhd")
    info = info_of(path)
    assert info["virtual_size"] == qemu_info(path, "vpc")["virtual-size"]
    assert info["format_specific"]["creator_application"] == CORPUS_VHDS[rel]
    assert ("size-mismatch", "info") in [(f["id"], f["severity"]) for f in info["findings"]]
    result = check(info, SAFE)
    assert result["verdict"] == PASS, result["rules"]


#: qemu-img convert -O vpc options -> whether the footer's sizes disagree (an info).
QEMU_VHDS = {
    "subformat=dynamic,force_size=off": False,
    "subformat=dynamic,force_size=on": True,
    "subformat=fixed": False,
    "subformat=fixed,force_size=on": True,
}


@needs_qemu
@pytest.mark.parametrize("options", sorted(QEMU_VHDS))
def test_qemu_vhds_pass(tmp_path: Path, options: str) -> None:
    """qemu rounds the size up to a CHS geometry unless force_size keeps it (then the
    geometry is 65535/16/255 and the sizes disagree); a 16 MiB disk off the grid."""
    path = tmp_path / "disk.vhd"
    run("qemu-img", "convert", "-O", "vpc", "-o", options, test_threats.mbr_disk(tmp_path), path)
    info = info_of(path)
    assert info["virtual_size"] == qemu_info(path, "vpc")["virtual-size"]
    mismatch = [f for f in info["findings"] if f["id"] == "size-mismatch"]
    assert [f["severity"] for f in mismatch] == (["info"] if QEMU_VHDS[options] else [])
    result = check(info, SAFE)
    assert result["verdict"] == PASS, result["rules"]


@needs_qemu
@pytest.mark.parametrize("subformat", ["dynamic", "fixed"])
def test_hyperv_footer_with_geometry_short_of_the_size_passes(tmp_path: Path,
                                                              subformat: str) -> None:
    """The footer Hyper-V writes for a 64 MiB disk: creator ``win ``, the spec's CHS
    geometry (963/8/17, 130968 sectors) and the exact current size (131072 sectors).
    qemu, the oracle, sizes it by the current size; so must imgscan, and pass."""
    path = qemu_create(tmp_path / "disk.vhd", "64M", "-o",
                       f"subformat={subformat},force_size=on", fmt="vpc")
    qemu_io(path, "write -P 0x5a 0 64k", fmt="vpc")
    buf = bytearray(path.read_bytes())
    vhd_as_hyperv(buf)
    path.write_bytes(bytes(buf))
    cyl, heads, spt = vhd_spec_geometry(64 * MiB // 512)
    assert cyl * heads * spt * 512 < 64 * MiB
    info = info_of(path)
    assert info["virtual_size"] == qemu_info(path, "vpc")["virtual-size"] == 64 * MiB
    assert info["format_specific"]["disk_geometry"] == {
        "cylinders": cyl, "heads": heads, "sectors_per_track": spt}
    assert [(f["id"], f["severity"]) for f in info["findings"]] == [("size-mismatch", "info")]
    result = check(info, SAFE)
    assert result["verdict"] == PASS, result["rules"]
    rule = next(r for r in result["rules"] if r["id"] == "consistent-headers")
    assert rule["status"] == PASS


def test_vhd_spec_geometry_agrees_with_qemu(tmp_path: Path) -> None:
    """The patcher's CHS calculation is the one qemu writes (force_size off rounds the
    size up to the next geometry; on the grid both agree)."""
    if not HAVE_QEMU:
        pytest.skip("qemu-img not installed")
    for size in (8 * MiB, 64 * MiB, 1 << 30):
        path = qemu_create(tmp_path / f"{size}.vhd", size, fmt="vpc")
        info = info_of(path)
        g = info["format_specific"]["disk_geometry"]
        geometry = (g["cylinders"], g["heads"], g["sectors_per_track"])
        assert vhd_spec_geometry(info["virtual_size"] // 512) == geometry


# -- no misses: degenerate disks --------------------------------------------------------------

DEGENERATE: dict[str, tuple[Builder, str, str]] = {
    # name -> builder, the finding id, a word of its message
    "empty-file": (empty_file, "truncated", "empty"),
    "mbr-boot-indicator": (mbr_boot_indicator, "corrupt", "boot indicator"),
    "pmbr-not-at-lba-1": (pmbr_not_at_lba1, "corrupt", "not at LBA 1"),
    "pmbr-hybrid": (pmbr_hybrid, "corrupt", "entry 1 alone"),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_disks_fail(tmp_path: Path, name: str) -> None:
    builder, fid, words = DEGENERATE[name]
    if name != "empty-file" and (shutil.which("sgdisk") is None or shutil.which("sfdisk") is None):
        pytest.skip("sgdisk / sfdisk not installed")
    info = info_of(builder(tmp_path))
    assert any(f["id"] == fid and words in f["message"] for f in info["findings"]), \
        info["findings"]
    result = check(info, SAFE)
    assert result["verdict"] == FAIL, result["rules"]


@needs_sgdisk
def test_sgdisk_protective_mbr_passes(tmp_path: Path) -> None:
    """The twin of the protective MBR cases: sgdisk's own, 0xEE alone from LBA 1."""
    info = info_of(gpt_disk(tmp_path))
    assert info["partition_table"] == "gpt"
    assert info["findings"] == []
    assert check(info, SAFE)["verdict"] == PASS


@needs_sgdisk
def test_bad_boot_indicator_is_no_partition_table_for_sfdisk(tmp_path: Path) -> None:
    """The oracles agree the sector is no partition table: blkid reports no PTTYPE."""
    path = mbr_boot_indicator(tmp_path)
    proc = subprocess.run(["blkid", "-p", "-o", "export", str(path)], capture_output=True,
                          text=True, check=False)
    assert "PTTYPE=" not in proc.stdout
    assert info_of(path)["partition_table"] == "none"


def test_guest_warnings_warn_not_fail(windows_disks: dict[str, Path]) -> None:
    """A hibernated Windows (the uefi fixture): the guest's state is stale, the file is
    safe to open: the gate warns."""
    info = info_of(windows_disks["uefi"])
    assert ("dirty", "guest") in cells(info)
    assert all(s == WINDOWS for (fid, col), s in zip(cells(info), info["finding_stages"],
                                                     strict=True) if col == "guest")
    assert check(info, SAFE)["verdict"] == "warn"

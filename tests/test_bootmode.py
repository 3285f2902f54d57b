"""Boot mode (bios / uefi / hybrid / unknown) of disks made with real partitioners and loaders.

The facts each rule rests on are checked against the tools that made them:
sfdisk/sgdisk for the tables and flags, ``blkid -p -O`` for the ESP's FAT,
``xorriso -report_el_torito`` for an ISO's boot catalog; boot code comes
from installed loaders (GRUB 2 boot.img, SYSLINUX) and the corpus's real MBRs.
"""

from __future__ import annotations

import bz2
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import sparse_copy, sparse_file
from oracles import CORPUS, needs_corpus, needs_qemu, run

import imgscan
from imgscan import bootmode

pytestmark = pytest.mark.skipif(
    not (shutil.which("sfdisk") and shutil.which("sgdisk") and shutil.which("mkfs.fat")),
    reason="sfdisk / sgdisk / mkfs.fat not installed (apt-get install fdisk gdisk dosfstools)",
)

MIB = 1 << 20
GRUB_BOOT_IMG = Path("/usr/lib/grub/i386-pc/boot.img")  # grub-pc-bin
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")  # syslinux-common
ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")  # isolinux


def _need(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path} is absent (apt-get install grub-pc-bin syslinux-common isolinux)")


def _disk(path: Path, size: int = 64 * MIB) -> Path:
    return sparse_file(path, size)


def _boot_code(path: Path, loader: Path) -> None:
    """Install a loader's MBR code the way its docs say: the first 440 bytes of sector 0."""
    with open(path, "r+b") as f:
        f.write(loader.read_bytes()[:440])


def _fat(path: Path, start_lba: int, kib: int) -> None:
    run("mkfs.fat", "-F", "16", "--offset", str(start_lba), path, str(kib))
    out = run("blkid", "-p", "-o", "export", "-O", str(start_lba * 512), path)
    assert "TYPE=vfat" in out  # the oracle sees the FAT the ESP rule needs


def _sfdisk(path: Path, script: str) -> None:
    subprocess.run(["sfdisk", "-q", str(path)], input=script, text=True, check=True,
                   capture_output=True)


def _info(path: Path) -> dict[str, Any]:
    with imgscan.open(path) as img:
        info: dict[str, Any] = img.info()
    return info


def _mode(path: Path) -> str:
    mode: str = _info(path)["boot_mode"]
    return mode


def test_mbr_boot_code_and_active_partition_is_bios(tmp_path: Path) -> None:
    _need(SYSLINUX_MBR)
    disk = _disk(tmp_path / "d.raw")
    _sfdisk(disk, "label: dos\nstart=2048,size=20480,type=83,bootable\n")
    assert json.loads(run("sfdisk", "--json", disk))["partitiontable"]["partitions"][0][
        "bootable"]
    assert _mode(disk) == "unknown"  # an active partition, but no boot code
    _boot_code(disk, SYSLINUX_MBR)
    info = _info(disk)
    assert info["boot_mode"] == "bios"
    assert any("SYSLINUX" in e and "active partition 1" in e for e in info["boot_evidence"])


def test_grub_needs_no_active_partition(tmp_path: Path) -> None:
    _need(GRUB_BOOT_IMG)
    disk = _disk(tmp_path / "d.raw")
    _sfdisk(disk, "label: dos\nstart=2048,size=20480,type=83\n")
    _boot_code(disk, GRUB_BOOT_IMG)
    assert _mode(disk) == "bios"


def test_gpt_with_fat_esp_is_uefi(tmp_path: Path) -> None:
    disk = _disk(tmp_path / "d.raw")
    run("sgdisk", "-n1:2048:+16M", "-t1:ef00", "-n2:0:0", "-t2:0700", disk)
    assert _mode(disk) == "unknown"  # an ESP without a filesystem is no UEFI path
    _fat(disk, 2048, 16384)
    info = _info(disk)
    assert info["boot_mode"] == "uefi"
    assert info["partitions"][0]["filesystem"] == "vfat"


def test_gpt_with_bios_boot_partition_is_bios_and_with_esp_hybrid(tmp_path: Path) -> None:
    disk = _disk(tmp_path / "d.raw")
    run("sgdisk", "-n1:2048:+1M", "-t1:ef02", "-n2:0:+16M", "-t2:ef00", "-n3:0:0", "-t3:8300",
        disk)
    assert _mode(disk) == "bios"  # the ESP holds no FAT yet
    _fat(disk, 4096, 16384)
    info = _info(disk)
    assert info["boot_mode"] == "hybrid"
    assert "BIOS boot partition 1" in info["boot_evidence"]


def test_protective_mbr_boot_code_plus_esp_is_hybrid(tmp_path: Path) -> None:
    _need(GRUB_BOOT_IMG)
    disk = _disk(tmp_path / "d.raw")
    run("sgdisk", "-n1:2048:+16M", "-t1:ef00", "-n2:0:0", "-t2:8300", disk)
    _fat(disk, 2048, 16384)
    _boot_code(disk, GRUB_BOOT_IMG)
    assert _info(disk)["partition_table"] == "gpt"
    assert _mode(disk) == "hybrid"


def test_hybrid_mbr_is_hybrid(tmp_path: Path) -> None:
    disk = _disk(tmp_path / "d.raw")
    run("sgdisk", "-n1:2048:+16M", "-t1:ef00", "-n2:0:0", "-t2:8300", disk)
    run("sgdisk", "-h", "2", disk)
    assert _mode(disk) == "hybrid"


@needs_qemu
def test_boot_mode_through_qcow2(tmp_path: Path) -> None:
    disk = _disk(tmp_path / "d.raw")
    run("sgdisk", "-n1:2048:+16M", "-t1:ef00", "-n2:0:0", "-t2:8300", disk)
    _fat(disk, 2048, 16384)
    qcow2 = tmp_path / "d.qcow2"
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", disk, qcow2)
    assert _mode(qcow2) == _mode(disk) == "uefi"


def test_iso_with_bios_and_uefi_el_torito_entries_is_hybrid(tmp_path: Path) -> None:
    _need(ISOLINUX_BIN)
    if shutil.which("xorriso") is None:
        pytest.skip("xorriso not installed")
    tree = tmp_path / "tree"
    tree.mkdir()
    sparse_copy(ISOLINUX_BIN, tree / "isolinux.bin")
    run("mkfs.fat", "-C", tree / "efi.img", "1440")
    iso = tmp_path / "boot.iso"
    run("xorriso", "-as", "mkisofs", "-quiet", "-o", iso, "-b", "isolinux.bin", "-c", "boot.cat",
        "-no-emul-boot", "-boot-load-size", "4", "-eltorito-alt-boot", "-e", "efi.img",
        "-no-emul-boot", tree)
    report = subprocess.run(["xorriso", "-indev", str(iso), "-report_el_torito", "plain"],
                            capture_output=True, text=True, check=True).stdout
    platforms = re.findall(r"El Torito boot img :\s+\d+\s+(\w+)", report)
    assert sorted(platforms) == ["BIOS", "UEFI"]
    info = _info(iso)
    assert info["boot_mode"] == "hybrid"
    assert sum("El Torito" in e for e in info["boot_evidence"]) == 2


@needs_corpus
def test_corpus_windows_and_grub_mbrs_are_bios(tmp_path: Path) -> None:
    assert _mode(CORPUS / "dissect.volume" / "mbr.bin") == "bios"
    grub = tmp_path / "grub.raw"
    grub.write_bytes(bz2.decompress((CORPUS / "qemu-iotests" / "grub_mbr.raw.bz2").read_bytes()))
    info = _info(grub)
    assert info["boot_mode"] == "bios"
    assert info["partition_table_details"]["mbr"]["boot_code"] == "grub2"


def test_rules_on_el_torito_entries_alone() -> None:
    """decide() on catalog entries as the ISO container reports them."""
    bios = {"platform": "bios", "bootable": True}
    uefi = {"platform": "uefi", "bootable": True}
    assert bootmode.decide(None, {}, [bios])[0] == "bios"
    assert bootmode.decide(None, {}, [uefi])[0] == "uefi"
    assert bootmode.decide(None, {}, [bios, uefi])[0] == "hybrid"
    assert bootmode.decide(None, {}, [{**bios, "bootable": False}])[0] == "unknown"
    assert bootmode.decide(None, {}, None) == ("unknown", [])

"""ISO 9660 / El Torito / hybrid ISOs: imgscan against isoinfo, blkid, xorriso, gdisk, qemu-img.

Images are built by genisoimage and xorriso (plain, Joliet, BIOS no-emulation,
floppy emulation, UEFI, BIOS + UEFI) and made hybrid by isohybrid and
xorriso's ``-isohybrid-mbr`` / ``-isohybrid-gpt-basdat``. Expected values come
from ``isoinfo -d`` (volume descriptors, the default boot entry), ``xorriso
-report_el_torito plain`` (every boot entry), ``blkid -p`` (label, type,
UUID = the PVD's date), ``gdisk -l`` (which partition tables the system area
holds), and ``qemu-img`` (qemu reads an ISO as raw: size, map, bytes).
Hand-made bytes appear only in the malformed cases.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from helpers import open_promptly, sparse_copy, write_file
from oracles import (
    CORPUS,
    blkid_export,
    data_zero_runs,
    needs_corpus,
    needs_qemu,
    qemu_info,
    qemu_map,
    qemu_raw_sha256,
    run,
    sha256_file,
    sha256_stream,
)

import imgscan
from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage

SECTOR = 2048
ISOLINUX = Path("/usr/lib/ISOLINUX/isolinux.bin")
ISOHDPFX = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
HAVE_TOOLS = all(shutil.which(t) for t in ("genisoimage", "xorriso", "isoinfo", "isohybrid"))
needs_iso_tools = pytest.mark.skipif(
    not (HAVE_TOOLS and ISOLINUX.is_file() and ISOHDPFX.is_file()),
    reason="genisoimage / xorriso / isoinfo / isohybrid (syslinux-utils) / isolinux absent")
needs_blkid = pytest.mark.skipif(shutil.which("blkid") is None, reason="blkid absent")
needs_gdisk = pytest.mark.skipif(shutil.which("gdisk") is None, reason="gdisk absent")

_write = partial(write_file, name="bad.iso")

# El Torito / ECMA-119 offsets used to corrupt images
BR_CATALOG_POINTER = 71
PVD_VOLUME_SPACE_SIZE_BE = 84


# --------------------------------------------------------------------------
# Images made by genisoimage / xorriso / isohybrid
# --------------------------------------------------------------------------

def _tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "EFI").mkdir()
    (tree / "readme.txt").write_text("imgscan iso test\n")
    (tree / "data.bin").write_bytes(bytes(range(256)) * 512)
    sparse_copy(ISOLINUX, tree / "boot" / "isolinux.bin")
    (tree / "EFI" / "efi.img").write_bytes(b"\xeb\x3c\x90EFI" + bytes(40 * 1024 - 5))
    (tree / "boot" / "floppy.img").write_bytes(b"\xeb\x3c\x90FD" + bytes(1440 * 1024 - 5))
    return tree


BIOS = ["-b", "boot/isolinux.bin", "-c", "boot/boot.cat", "-no-emul-boot",
        "-boot-load-size", "4", "-boot-info-table"]
EFI = ["-e", "EFI/efi.img", "-no-emul-boot"]

#: name -> (tool, options); "isohybrid" variants post-process another image.
RECIPES: dict[str, tuple[str, list[str]]] = {
    "plain": ("genisoimage", ["-V", "PLAINVOL", "-sysid", "LINUX", "-m", "floppy.img"]),
    "joliet": ("genisoimage", ["-J", "-R", "-V", "JOLIETVOL", "-m", "floppy.img"]),
    "bios": ("genisoimage", ["-V", "BIOSVOL", *BIOS, "-m", "floppy.img"]),
    "floppy": ("genisoimage", ["-V", "FLOPVOL", "-b", "boot/floppy.img", "-c", "boot/boot.cat"]),
    "uefi": ("xorriso", ["-V", "UEFIVOL", *EFI, "-m", "floppy.img"]),
    "both": ("xorriso", ["-V", "BOTHVOL", *BIOS, "-eltorito-alt-boot", *EFI,
                         "-m", "floppy.img"]),
    "xorriso-mbr": ("xorriso", ["-V", "HYBMBR", "-isohybrid-mbr", str(ISOHDPFX), *BIOS,
                                "-m", "floppy.img"]),
    "xorriso-gpt": ("xorriso", ["-V", "HYBGPT", "-isohybrid-mbr", str(ISOHDPFX), *BIOS,
                                "-eltorito-alt-boot", *EFI, "-isohybrid-gpt-basdat",
                                "-m", "floppy.img"]),
}
MADE = [*RECIPES, "isohybrid", "isohybrid-uefi"]
#: what gdisk calls each image's system area, and what imgscan must say
HYBRID = {"xorriso-mbr": "mbr", "xorriso-gpt": "mbr+gpt", "isohybrid": "mbr",
          "isohybrid-uefi": "mbr+gpt"}


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not HAVE_TOOLS:
        pytest.skip("ISO tools absent")
    d = tmp_path_factory.mktemp("iso_made")
    tree = _tree(d)
    out: dict[str, Path] = {}
    for name, (tool, opts) in RECIPES.items():
        p = d / f"{name}.iso"
        if tool == "genisoimage":
            run("genisoimage", "-quiet", "-o", p, *opts, tree)
        else:
            run("xorriso", "-as", "mkisofs", "-quiet", "-o", p, *opts, tree)
        out[name] = p
    for name, base, extra in (("isohybrid", "bios", []), ("isohybrid-uefi", "both", ["-u"])):
        p = d / f"{name}.iso"
        sparse_copy(out[base], p)
        run("isohybrid", *extra, p)
        out[name] = p
    return out


#: isoinfo's El Torito lines have no colon: "Nsect 4", "Bootoff 22 34" (hex).
ISOINFO_BOOT_KEYS = ("Hid", "Arch", "ID", "Key", "Bootid", "Boot media", "Load segment",
                     "Sys type", "Nsect", "Bootoff")


def _isoinfo(path: Path) -> dict[str, str]:
    """``isoinfo -d``'s facts by name (the first of each)."""
    out: dict[str, str] = {}
    for line in run("isoinfo", "-d", "-i", path).splitlines():
        boot = re.match(rf"^\s+({'|'.join(ISOINFO_BOOT_KEYS)}) (.*)$", line)
        if boot:
            key, value = boot.group(1), boot.group(2)
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().removesuffix(" is")
        else:
            continue
        out.setdefault(key, value.strip())
    return out


def _xorriso_boot_images(path: Path) -> list[dict[str, Any]]:
    """``xorriso -report_el_torito plain``'s image table: one dict per boot image."""
    text = run("xorriso", "-indev", path, "-report_el_torito", "plain")
    out = []
    for line in text.splitlines():
        m = re.match(r"^El Torito boot img :\s+(\d+)\s+(\S+)\s+([yn])\s+(\S+)\s+(0x[0-9a-f]+)"
                     r"\s+(0x[0-9a-f]+)\s+(\d+)\s+(\d+)$", line)
        if m:
            out.append({"platform": m.group(2), "bootable": m.group(3) == "y",
                        "emul": m.group(4), "load_segment": int(m.group(5), 16),
                        "system_type": int(m.group(6), 16), "sector_count": int(m.group(7)),
                        "load_rba": int(m.group(8))})
    return out


#: xorriso's names for platforms and emulations
XORRISO_PLATFORM = {"BIOS": "bios", "UEFI": "uefi", "PPC": "powerpc", "Mac": "mac"}
XORRISO_EMUL = {"none": "no-emulation", "fd1.2": "floppy-1.2m", "fd1.4": "floppy-1.44m",
                "fd2.8": "floppy-2.88m", "hd": "hard-disk"}


def _gdisk_scan(path: Path) -> tuple[str, str]:
    """gdisk's "Partition table scan": (MBR: ..., GPT: ...).

    With both an MBR and a GPT gdisk asks which to list; the scan is printed first.
    """
    text = subprocess.run(["gdisk", "-l", str(path)], input="1\n", capture_output=True,
                          text=True, check=False).stdout
    mbr = re.search(r"^\s*MBR: (.+)$", text, re.M)
    gpt = re.search(r"^\s*GPT: (.+)$", text, re.M)
    assert mbr and gpt, text
    return mbr.group(1).strip(), gpt.group(1).strip()


@needs_iso_tools
@pytest.mark.parametrize("name", MADE)
def test_made_facts_match_isoinfo(made: dict[str, Path], name: str) -> None:
    path = made[name]
    info = _isoinfo(path)
    with imgscan.open(path) as im:
        fs = im.format_specific
        assert im.format == "iso" and im.subformat is None
        assert im.encrypted is False and im.cluster_size is None
        assert fs["volume_id"] == info["Volume id"]
        assert fs["system_id"] == info["System id"]
        assert fs["logical_block_size"] == int(info["Logical block size"])
        assert fs["volume_space_size"] == int(info["Volume size"])
        assert fs["volume_size"] == int(info["Volume size"]) * int(info["Logical block size"])
        joliet = re.search(r"Joliet with UCS level (\d) found", run("isoinfo", "-d", "-i", path))
        assert (fs["joliet"] or {}).get("level") == (int(joliet.group(1)) if joliet else None)
        el_torito = re.search(r"El Torito VD version 1 found, boot catalog is in sector (\d+)",
                              run("isoinfo", "-d", "-i", path))
        if el_torito is None:
            assert fs["el_torito"] is None
        else:
            assert fs["boot_catalog_sector"] == int(el_torito.group(1))
            first = fs["el_torito"][0]
            assert first["section"] == 0
            assert first["platform_id"] == int(info["Arch"].split()[0])
            assert first["bootable"] == (info["Bootid"].split()[0] == "88")
            assert first["load_segment"] == int(info["Load segment"], 16)
            assert first["sector_count"] == int(info["Nsect"], 16)
            assert first["load_rba"] == int(info["Bootoff"].split()[1])
        assert not im.findings, im.findings


@needs_iso_tools
@pytest.mark.parametrize("name", MADE)
def test_boot_entries_match_xorriso(made: dict[str, Path], name: str) -> None:
    path = made[name]
    theirs = _xorriso_boot_images(path)
    with imgscan.open(path) as im:
        ours = im.format_specific["el_torito"] or []
    assert [{"platform": e["platform"], "bootable": e["bootable"],
             "emul": e["media_type"], "load_segment": e["load_segment"],
             "system_type": e["system_type"], "sector_count": e["sector_count"],
             "load_rba": e["load_rba"]} for e in ours] == [
        {**t, "platform": XORRISO_PLATFORM.get(t["platform"], t["platform"]),
         "emul": XORRISO_EMUL[t["emul"]]} for t in theirs]
    platforms = {e["platform"] for e in ours}
    expected = {"plain": set(), "joliet": set(), "bios": {"bios"}, "floppy": {"bios"},
                "uefi": {"uefi"}, "both": {"bios", "uefi"}, "xorriso-mbr": {"bios"},
                "xorriso-gpt": {"bios", "uefi"}, "isohybrid": {"bios"},
                "isohybrid-uefi": {"bios", "uefi"}}[name]
    assert platforms == expected


@needs_iso_tools
@needs_blkid
@pytest.mark.parametrize("name", MADE)
def test_made_facts_matchblkid_export(made: dict[str, Path], name: str) -> None:
    blk = blkid_export(made[name])
    with imgscan.open(made[name]) as im:
        fs = im.format_specific
    assert blk["TYPE"] == "iso9660"
    # blkid prefers the Joliet label where the PVD's is a truncated form of it
    assert blk["LABEL"] in (fs["volume_id"], (fs["joliet"] or {}).get("volume_id"))
    # blkid's UUID is the PVD's modification date (else creation date), digits only
    date = fs["modification_date"] or fs["creation_date"]
    assert blk["UUID"] == "-".join(re.findall(r"\d+", date)[:7])
    assert ("BOOT_SYSTEM_ID" in blk) == (fs["el_torito"] is not None)


@needs_iso_tools
@needs_gdisk
@pytest.mark.parametrize("name", MADE)
def test_hybrid_matches_gdisk(made: dict[str, Path], name: str) -> None:
    mbr, gpt = _gdisk_scan(made[name])
    want = {("not present", "not present"): None, ("MBR only", "not present"): "mbr",
            ("MBR only", "present"): "mbr+gpt", ("hybrid", "present"): "mbr+gpt",
            ("protective", "present"): "gpt"}[(mbr, gpt)]
    with imgscan.open(made[name]) as im:
        assert im.format_specific["hybrid"] == want == HYBRID.get(name)
        # a hybrid ISO is one image seen two ways, not two formats fighting over a file
        assert not [f for f in im.findings if f.id == "multiple-formats"]


@needs_qemu
@needs_iso_tools
@pytest.mark.parametrize("name", MADE)
def test_made_size_map_bytes_match_qemu(made: dict[str, Path], name: str,
                                        tmp_path: Path) -> None:
    path = made[name]
    qi = qemu_info(path)
    assert qi["format"] == "raw"
    with imgscan.open(path) as im:
        assert im.virtual_size == qi["virtual-size"] == path.stat().st_size
        emap = im.extents()
        assert emap.check_complete()
        assert data_zero_runs(emap.to_qemu()) == data_zero_runs(qemu_map(path))
        ours = sha256_stream(im.read, im.virtual_size)
    assert ours == sha256_file(path) == qemu_raw_sha256(path, tmp_path)


# --------------------------------------------------------------------------
# The corpus ISO (genisoimage, from dfvfs)
# --------------------------------------------------------------------------

@needs_corpus
def test_corpus_iso_facts() -> None:
    import json

    rel = "dfvfs/iso9660.raw"
    fact = json.loads((CORPUS / "FACTS.json").read_text())[rel]
    blk = fact["whole_disk_blkid"]
    with imgscan.open(CORPUS / rel) as im:
        fs = im.format_specific
        assert im.format == "iso"
        assert blk["TYPE"] == "iso9660"
        assert fs["volume_id"] == blk["LABEL"]
        assert fs["system_id"] == blk["SYSTEM_ID"]
        assert fs["application_id"] == blk["APPLICATION_ID"].replace("\\ ", " ")
        assert fs["logical_block_size"] == int(blk["BLOCK_SIZE"])
        assert blk["UUID"] == "-".join(re.findall(r"\d+", fs["modification_date"])[:7])
        assert im.virtual_size == fact["qemu_img_info"]["json"]["virtual-size"]
        assert fs["volume_size"] == fact["size_bytes"]
        assert fs["el_torito"] is None and fs["hybrid"] is None
        assert not im.findings


# --------------------------------------------------------------------------
# Malformed images: made ones with sectors cut or fields corrupted
# --------------------------------------------------------------------------

def _catalog(buf: bytes | bytearray) -> int:
    """Byte offset of the boot catalog named by the boot record at sector 17."""
    assert buf[17 * SECTOR + 7:17 * SECTOR + 30] == b"EL TORITO SPECIFICATION"
    return int(struct.unpack_from("<I", buf, 17 * SECTOR + BR_CATALOG_POINTER)[0]) * SECTOR


@needs_iso_tools
def test_truncated_before_sector_16_is_raw(made: dict[str, Path], tmp_path: Path) -> None:
    # the system area alone carries no ISO signature: nothing says "iso"
    p = _write(tmp_path, made["plain"].read_bytes()[:16 * SECTOR])
    with open_promptly(p) as im:
        assert im.format == "raw"


@needs_iso_tools
def test_truncated_inside_the_first_descriptor(made: dict[str, Path], tmp_path: Path) -> None:
    p = _write(tmp_path, made["plain"].read_bytes()[:16 * SECTOR + 100])
    with pytest.raises(TruncatedImage, match="volume descriptor") as exc:
        imgscan.open(p)
    assert str(p) in str(exc.value) and str(16 * SECTOR) in str(exc.value)


@needs_iso_tools
def test_truncated_before_sector_17(made: dict[str, Path], tmp_path: Path) -> None:
    p = _write(tmp_path, made["plain"].read_bytes()[:17 * SECTOR])
    with open_promptly(p) as im:
        assert im.format == "iso" and im.format_specific["volume_id"] == "PLAINVOL"
        ids = {f.id for f in im.findings}
        assert {"truncated", "size-mismatch"} <= ids
        assert im.virtual_size == 17 * SECTOR


@needs_iso_tools
def test_no_terminator_walk_is_capped(made: dict[str, Path], tmp_path: Path) -> None:
    buf = bytearray(made["joliet"].read_bytes())
    svd = buf[17 * SECTOR:18 * SECTOR]
    assert svd[0] == 2
    cap = limits.ISO_MAX_VOLUME_DESCRIPTORS
    for i in range(cap + 5):                   # descriptors for ever, no terminator
        buf[(17 + i) * SECTOR:(18 + i) * SECTOR] = svd
    with open_promptly(_write(tmp_path, buf)) as im:
        assert len(im.format_specific["volume_descriptors"]) == cap
        assert any(f.id == "resource-exhaustion" for f in im.findings)


@needs_iso_tools
def test_missing_terminator(made: dict[str, Path], tmp_path: Path) -> None:
    buf = bytearray(made["plain"].read_bytes())
    assert buf[17 * SECTOR] == 255
    buf[17 * SECTOR:18 * SECTOR] = bytes(SECTOR)
    with open_promptly(_write(tmp_path, buf)) as im:
        assert any(f.id == "corrupt" and "terminator" in f.message for f in im.findings)


@needs_iso_tools
def test_no_primary_descriptor(made: dict[str, Path], tmp_path: Path) -> None:
    buf = bytearray(made["joliet"].read_bytes())
    buf[16 * SECTOR:17 * SECTOR] = buf[17 * SECTOR:18 * SECTOR]     # PVD -> a second SVD
    with pytest.raises(CorruptImage, match="no primary volume descriptor"):
        imgscan.open(_write(tmp_path, buf))


@needs_iso_tools
def test_boot_catalog_past_eof(made: dict[str, Path], tmp_path: Path) -> None:
    buf = bytearray(made["both"].read_bytes())
    struct.pack_into("<I", buf, 17 * SECTOR + BR_CATALOG_POINTER, 0xFFFFFFF0)
    with open_promptly(_write(tmp_path, buf)) as im:
        assert im.format_specific["el_torito"] == []
        assert any(f.id == "truncated" and "boot catalog" in f.message for f in im.findings)


@needs_iso_tools
def test_bad_validation_checksum(made: dict[str, Path], tmp_path: Path) -> None:
    buf = bytearray(made["both"].read_bytes())
    cat = _catalog(buf)
    buf[cat + 28] ^= 0x01
    p = _write(tmp_path, buf)
    # xorriso (like SeaBIOS) does not verify the sum and still lists both images;
    # UEFI firmware (EDK2) skips the catalog: reported as a corrupt finding.
    theirs = _xorriso_boot_images(p)
    with open_promptly(p) as im:
        fs = im.format_specific
        assert [e["load_rba"] for e in fs["el_torito"]] == [t["load_rba"] for t in theirs]
        assert len(theirs) == 2
        assert fs["boot_catalog_checksum_ok"] is False
        assert any(f.id == "corrupt" and "checksum" in f.message for f in im.findings)


@needs_iso_tools
def test_bad_validation_key(made: dict[str, Path], tmp_path: Path) -> None:
    buf = bytearray(made["both"].read_bytes())
    cat = _catalog(buf)
    buf[cat + 30:cat + 32] = b"\x00\x00"
    with open_promptly(_write(tmp_path, buf)) as im:
        assert im.format_specific["el_torito"] == []
        assert any(f.id == "corrupt" and "55aa" in f.message for f in im.findings)


@needs_iso_tools
def test_section_claiming_65535_entries(made: dict[str, Path], tmp_path: Path) -> None:
    buf = bytearray(made["both"].read_bytes())
    cat = _catalog(buf)
    assert buf[cat + 64] == 0x91                 # the EFI section header
    struct.pack_into("<H", buf, cat + 66, 0xFFFF)
    with open_promptly(_write(tmp_path, buf)) as im:
        entries = im.format_specific["el_torito"]
        assert len(entries) <= limits.ISO_MAX_BOOT_CATALOG_ENTRIES
        assert entries[1]["platform"] == "uefi"


@needs_iso_tools
def test_boot_image_past_eof(made: dict[str, Path], tmp_path: Path) -> None:
    buf = bytearray(made["bios"].read_bytes())
    cat = _catalog(buf)
    struct.pack_into("<I", buf, cat + 32 + 8, 0x7FFFFFFF)       # load RBA
    with open_promptly(_write(tmp_path, buf)) as im:
        assert im.format_specific["el_torito"][0]["load_rba"] == 0x7FFFFFFF
        assert any(f.id == "truncated" and "boot image" in f.message for f in im.findings)


@needs_iso_tools
def test_volume_size_copies_differ(made: dict[str, Path], tmp_path: Path) -> None:
    buf = bytearray(made["plain"].read_bytes())
    struct.pack_into(">I", buf, 16 * SECTOR + PVD_VOLUME_SPACE_SIZE_BE, 12345)
    p = _write(tmp_path, buf)
    info = _isoinfo(p)                          # isoinfo reads the little-endian copy too
    with open_promptly(p) as im:
        assert im.format_specific["volume_space_size"] == int(info["Volume size"])
        assert any(f.id == "corrupt" and "big-endian" in f.message for f in im.findings)

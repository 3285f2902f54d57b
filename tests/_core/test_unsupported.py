"""Recognised but unsupported containers: named, refused, never read as raw.

The oracles are the real images of the corpus with the format qemu-img 7.2
recorded for them in FACTS.json (Parallels, Bochs, cloop, DMG), qemu-img
itself for the Parallels images it writes, and for ASIF (which qemu does not
know: FACTS.json says raw) the corpus MANIFEST's description. Altered copies
(one byte of the signature changed, the trailer moved) must fall back to raw.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import decompress, unpacked_name
from oracles import CORPUS, corpus_facts, needs_corpus, needs_qemu, qemu_info, run

import imgscan
from imgscan.errors import UnsupportedFormat

TESTS_DIR = Path(__file__).resolve().parent

#: corpus file -> the format qemu-img reports for it (FACTS.json).
QEMU_KNOWS = {
    "qemu-iotests/parallels-v1.bz2": "parallels",
    "qemu-iotests/parallels-v2.bz2": "parallels",
    "qemu-iotests/empty.bochs.bz2": "bochs",
    "qemu-iotests/simple-dmg.dmg.bz2": "dmg",
    "qemu-iotests/simple-pattern.cloop.bz2": "cloop",
    "dissect.hypervisor/hdd/expanding.hdd/"
    "expanding.hdd.0.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds.gz": "parallels",
    "dissect.hypervisor/hdd/split.hdd/"
    "split.hdd.0.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds.gz": "parallels",
    "dissect.hypervisor/hdd/split.hdd/"
    "split.hdd.5.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds.gz": "parallels",
}
ASIF = "dissect.hypervisor/asif/basic.asif.gz"
PLAIN_HDS = ("dissect.hypervisor/hdd/plain.hdd/"
             "plain.hdd.0.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds.gz")


def _unpack(name: str, dest: Path, limit: int | None = None) -> Path:
    """The corpus file decompressed (its first ``limit`` bytes only, if given)."""
    src = CORPUS / name
    return decompress(src, dest / unpacked_name(src), limit)


def _facts_format(name: str) -> str:
    fmt: str = corpus_facts()[name]["qemu_img_info"]["json"]["format"]
    return fmt


def _refused_as(path: Path) -> str:
    with pytest.raises(UnsupportedFormat) as info:
        imgscan.open(path)
    assert str(path) in str(info.value)
    return info.value.format


@needs_corpus
@pytest.mark.parametrize("name", sorted(QEMU_KNOWS))
def test_corpus_images_are_named_as_qemu_names_them(name: str, tmp_path: Path) -> None:
    assert _facts_format(name) == QEMU_KNOWS[name]
    assert _refused_as(_unpack(name, tmp_path)) == QEMU_KNOWS[name]


@needs_corpus
def test_asif(tmp_path: Path) -> None:
    """qemu 7.2 does not know ASIF and calls it raw; imgscan names it."""
    assert _facts_format(ASIF) == "raw"
    assert "Apple Sparse Image Format" in (CORPUS / "MANIFEST.md").read_text()
    assert _refused_as(_unpack(ASIF, tmp_path)) == "asif"


@needs_corpus
def test_plain_parallels_storage_is_raw(tmp_path: Path) -> None:
    """A 'plain' .hds holds the guest bytes themselves: raw for qemu, raw here."""
    assert _facts_format(PLAIN_HDS) == "raw"
    with imgscan.open(_unpack(PLAIN_HDS, tmp_path)) as img:
        assert img.format == "raw"


@needs_qemu
@pytest.mark.parametrize("size", ["1M", "64M"])
def test_qemu_made_parallels(tmp_path: Path, size: str) -> None:
    path = tmp_path / "p.img"
    run("qemu-img", "create", "-q", "-f", "parallels", path, size)
    assert qemu_info(path)["format"] == "parallels"
    assert _refused_as(path) == "parallels"


@needs_corpus
def test_cli_error_object(tmp_path: Path) -> None:
    path = _unpack("qemu-iotests/simple-dmg.dmg.bz2", tmp_path)
    proc = subprocess.run([sys.executable, "-m", "imgscan", "info", "--json", str(path)],
                          capture_output=True, text=True, cwd=TESTS_DIR, check=False)
    assert proc.returncode == 2
    out = json.loads(proc.stdout)
    assert out["format"] == "dmg"
    assert out["error"]["type"] == "UnsupportedFormat"
    assert out["error"]["offset"] == path.stat().st_size - 512


# -- altered copies are not misdetected -----------------------------------------
def _altered(path: Path, tmp_path: Path, edit: int | None = None, append: bytes = b"",
             keep: int | None = None) -> Path:
    data = bytearray(path.read_bytes())
    if edit is not None:
        data[edit] ^= 0x20
    data = data[:keep] + append
    out = tmp_path / "altered.img"
    out.write_bytes(bytes(data))
    return out


@needs_corpus
@pytest.mark.parametrize(("name", "alter"), [
    ("qemu-iotests/parallels-v1.bz2", {"edit": 3}),
    ("qemu-iotests/parallels-v2.bz2", {"edit": 15}),
    ("qemu-iotests/parallels-v1.bz2", {"keep": 15}),
    ("qemu-iotests/empty.bochs.bz2", {"edit": 6}),
    ("qemu-iotests/empty.bochs.bz2", {"keep": 20}),
    ("qemu-iotests/simple-pattern.cloop.bz2", {"edit": 12}),
    ("qemu-iotests/simple-pattern.cloop.bz2", {"edit": 0}),
    ("qemu-iotests/simple-dmg.dmg.bz2", {"append": b"\0"}),
    ("qemu-iotests/simple-dmg.dmg.bz2", {"keep": -1}),
    (ASIF, {"edit": 7}),
    (ASIF, {"edit": 1}),
])
def test_altered_copies_are_raw(name: str, alter: dict[str, int | bytes],
                                tmp_path: Path) -> None:
    # The first MiB holds every signature checked here (ASIF unpacks to 261 MiB).
    path = _altered(_unpack(name, tmp_path, 1 << 20), tmp_path,
                    **alter)  # type: ignore[arg-type]
    with imgscan.open(path) as img:
        assert img.format == "raw"


def test_signature_inside_a_raw_disk_is_not_a_format(tmp_path: Path) -> None:
    """Signatures count only where the format puts them."""
    path = tmp_path / "raw.img"
    body = bytearray(1 << 16)
    body[512:528] = b"WithoutFreeSpace"
    body[4096:4100] = b"koly"
    body[8192:8196] = b"shdw"
    path.write_bytes(bytes(body))
    with imgscan.open(path) as img:
        assert img.format == "raw"

"""QCOW version 1 (imgscan/_core/qcow.pyx) against qemu-img and qemu-io.

Every well-formed image is made by qemu-img / qemu-io once per session;
facts, maps and guest bytes are compared with what qemu-img reports for the
same file. Malformed images are qemu-made images with one header or table
field patched (offsets from qemu's QCowHeader in block/qcow.c); where qemu
refuses the same file, the test checks that too.
"""

from __future__ import annotations

import json
import os
import random
import re
import struct
import subprocess
import zlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from helpers import GiB, MiB, TiB, patched, qemu_create
from oracles import (
    CORPUS,
    clip_map,
    data_zero_runs,
    needs_corpus,
    needs_qemu,
    qemu_info,
    qemu_io,
    qemu_map,
    qemu_raw_sha256,
    qemu_refuses,
    qemu_window,
    run,
    sha256_file,
    sha256_stream,
)

import imgscan
from imgscan import (
    CorruptImage,
    EncryptedImage,
    ImageError,
    LimitExceeded,
    TruncatedImage,
    UnsafePath,
    UnsupportedFeature,
)
from imgscan._core.extents import Extent
from imgscan.image import Image

# QCowHeader field offsets (big-endian), as qemu's block/qcow.c lays them out.
OFF_VERSION = 4
OFF_BACKING_FILE_OFFSET = 8
OFF_BACKING_FILE_SIZE = 16
OFF_SIZE = 24
OFF_CLUSTER_BITS = 32
OFF_L2_BITS = 33
OFF_CRYPT_METHOD = 36
OFF_L1_TABLE_OFFSET = 40
HEADER_SIZE = 48
OFLAG_COMPRESSED = 1 << 63

SECRET = "secret,id=sec0,data=imgscan-qcow-test"
PATTERN = 0x5A

pytestmark = needs_qemu


# -- images made by qemu -------------------------------------------------------------
_create = partial(qemu_create, fmt="qcow")


def _encrypted_opts(path: Path) -> str:
    return f"driver=qcow,file.filename={path},encrypt.format=aes,encrypt.key-secret=sec0"


def _compressible_raw(path: Path) -> Path:
    """4 MiB + 1536 bytes: a pattern, incompressible noise, text, zeros, a partial last cluster."""
    rng = random.Random(20240901)
    data = bytearray(4 * MiB + 1536)
    data[0:64 * 1024] = bytes([PATTERN]) * (64 * 1024)
    data[MiB:MiB + 512 * 1024] = rng.randbytes(512 * 1024)
    text = b"imgscan qcow test line\n" * 20000
    data[2 * MiB:2 * MiB + len(text)] = text
    data[-1536:] = b"\x6b" * 1536
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def qdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qcow")


@pytest.fixture(scope="session")
def images(qdir: Path) -> dict[str, Path]:
    """Every well-formed test image, by name."""
    out: dict[str, Path] = {}
    w = f"write -P {PATTERN:#x}"

    out["small"] = _create(qdir / "small.qcow", "1M")
    qemu_io(out["small"], f"{w} 4096 8192", f"{w} 700000 1000", f"{w} 1044480 4096", fmt="qcow")

    out["medium"] = _create(qdir / "medium.qcow", "100M")
    qemu_io(out["medium"], f"{w} 0 65536", f"{w} {3 * MiB + 512} 512",
            f"{w} {40 * MiB - 8192} 16384", f"{w} {99 * MiB + 12288} 8192",
            f"{w} {100 * MiB - 512} 512", fmt="qcow")

    # qemu-img rounds a size up to whole sectors; the header keeps that.
    out["odd"] = _create(qdir / "odd.qcow", "10000001")
    odd_size = int(qemu_info(out["odd"])["virtual-size"])
    qemu_io(out["odd"], f"{w} {odd_size - 1024} 1024", f"{w} 5000 3000", fmt="qcow")

    out["huge"] = _create(qdir / "huge.qcow", "1T")
    qemu_io(out["huge"], f"{w} 0 4096", f"write -P 0x11 {512 * GiB} 65536",
            f"write -P 0x22 {TiB - 8192} 8192", fmt="qcow")

    raw = _compressible_raw(qdir / "compressible.raw")
    out["compressed"] = qdir / "compressed.qcow"
    # qemu-img 7.2 exits 1, silently, after a compressed convert to qcow (its final
    # zero-length compressed write, which pads the file, fails); the clusters are all
    # written, which qemu-img compare confirms.
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow", "-c", raw,
                    out["compressed"]], check=False, capture_output=True)
    run("qemu-img", "compare", "-f", "raw", "-F", "qcow", raw, out["compressed"])

    out["base"] = _create(qdir / "base.qcow", "4M")
    qemu_io(out["base"], "write -P 0x11 0 65536", f"write -P 0x11 {MiB} 131072", fmt="qcow")
    out["top"] = _create(qdir / "top.qcow", "4M", "-b", "base.qcow", "-F", "qcow")
    qemu_io(out["top"], "write -P 0x22 32768 4096", f"write -P 0x22 {3 * MiB + 512} 1024",
            fmt="qcow")

    out["encrypted"] = _create(qdir / "encrypted.qcow", "1M", "--object", SECRET,
                               "-o", "encrypt.format=aes,encrypt.key-secret=sec0")
    run("qemu-io", "--object", SECRET, "--image-opts", "-c", f"{w} 8192 4096",
        "-c", f"{w} 600000 3000", _encrypted_opts(out["encrypted"]))
    return out


def _qemu_map_of(name: str, path: Path) -> list[dict[str, Any]]:
    """qemu's map of the image itself (a backing file hidden, an encrypted one keyed)."""
    if name == "encrypted":
        out = run("qemu-img", "map", "--output=json", "--object", SECRET, "--image-opts",
                  _encrypted_opts(path))
        result: list[dict[str, Any]] = json.loads(out)
        return result
    if name == "top":
        top: list[dict[str, Any]] = json.loads(
            run("qemu-img", "map", "--output=json", _without_backing(path)))
        return top
    return qemu_map(path)


def _without_backing(path: Path) -> str:
    return json.dumps({"driver": "qcow", "file": {"driver": "file", "filename": str(path)},
                       "backing": None}).join(["json:", ""])


def _assert_map_matches(img: Image, qmap: list[dict[str, Any]], *,
                        window: tuple[int, int] | None = None) -> None:
    """Same data/zero runs as qemu; same host offsets; compressed where qemu gives none."""
    emap = img.extents()
    assert emap.check_complete()
    start, end = window if window else (0, img.virtual_size)
    ours = clip_map([dict(e) for e in emap.to_qemu()], start, end)
    assert data_zero_runs(ours) == data_zero_runs(clip_map(qmap, start, end))
    extents = list(emap)
    for q in qmap:
        if not q["data"]:
            continue
        for x in _overlapping(extents, int(q["start"]), int(q["start"]) + int(q["length"])):
            if img.encrypted:
                assert x.kind == "data"
            elif "offset" in q:
                assert x.kind == "data"
                assert x.host is not None
                assert x.host - x.start == int(q["offset"]) - int(q["start"])
            else:
                # qemu reports no host offset only for compressed clusters.
                assert x.kind == "compressed"


def _overlapping(extents: list[Extent], start: int, end: int) -> Iterator[Extent]:
    return (x for x in extents if x.start < end and start < x.start + x.length)


# -- well-formed images: facts, map, bytes ----------------------------------------------
FACT_IMAGES = ["small", "medium", "odd", "huge", "compressed", "base", "top", "encrypted"]
READ_IMAGES = ["small", "medium", "odd", "compressed", "base"]


@pytest.mark.parametrize("name", FACT_IMAGES)
def test_facts_match_qemu_img_info(images: dict[str, Path], name: str) -> None:
    path = images[name]
    info = qemu_info(path)
    with imgscan.open(path) as img:
        assert img.format == info["format"] == "qcow"
        assert img.subformat is None
        assert img.virtual_size == info["virtual-size"]
        assert img.cluster_size == info["cluster-size"]
        assert img.backing_file == info.get("backing-filename")
        assert img.backing_format is None
        assert img.encrypted == info.get("encrypted", False)
        assert img.encryption == ("aes" if img.encrypted else None)
        assert img.file_size == path.stat().st_size
        details = img.format_specific
        assert 1 << details["cluster_bits"] == info["cluster-size"]
        assert set(details) == {"mtime", "cluster_bits", "l2_bits"}
        doc = img.info()
        assert doc["format"] == "qcow"
        ids = {f["id"] for f in doc["findings"]}
        assert ("encrypted" in ids) == img.encrypted
        assert ("backing-file" in ids) == (img.backing_file is not None)
        assert "truncated" not in ids and "corrupt" not in ids


@pytest.mark.parametrize("name", ["small", "medium", "odd", "compressed", "base", "top",
                                  "encrypted"])
def test_map_matches_qemu_img_map(images: dict[str, Path], name: str) -> None:
    path = images[name]
    with imgscan.open(path) as img:
        _assert_map_matches(img, _qemu_map_of(name, path))


def test_compressed_image_mixes_compressed_and_data_clusters(images: dict[str, Path]) -> None:
    """qemu stores incompressible clusters uncompressed: the fixture must hold both kinds."""
    qmap = qemu_map(images["compressed"])
    assert any(e["data"] and "offset" in e for e in qmap)
    assert any(e["data"] and "offset" not in e for e in qmap)


@pytest.mark.parametrize("name", READ_IMAGES)
def test_guest_bytes_match_qemu_convert(images: dict[str, Path], name: str,
                                        tmp_path: Path) -> None:
    path = images[name]
    with imgscan.open(path) as img:
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)


def test_huge_sparse_image_windows(images: dict[str, Path], tmp_path: Path) -> None:
    """1 TiB: qemu's map and bytes in windows around the data (a whole map takes qemu minutes)."""
    path = images["huge"]
    windows = [(0, 64 * MiB), (512 * GiB - 32 * MiB, 64 * MiB), (300 * GiB, 4 * MiB),
               (TiB - 64 * MiB, 64 * MiB)]
    with imgscan.open(path) as img:
        assert img.virtual_size == TiB
        # The whole map is tiny: the unallocated L1 entries merge.
        assert len(img.extents()) <= 8
        for start, size in windows:
            out = run("qemu-img", "map", "--output=json", f"--start-offset={start}",
                      f"--max-length={size}", path)
            _assert_map_matches(img, json.loads(out), window=(start, start + size))
        for start, size in [(0, MiB), (512 * GiB - MiB // 2, 2 * MiB), (300 * GiB, MiB),
                            (TiB - MiB, MiB)]:
            assert img.read(start, size) == qemu_window("qcow", path, start, size, tmp_path)
        assert img.allocated_size == 4096 + 65536 + 8192


def test_chain_read_through_backing_file(images: dict[str, Path], qdir: Path,
                                         tmp_path: Path) -> None:
    top = images["top"]
    with imgscan.open(top, external_dir=str(qdir)) as img:
        assert img.backing_file == "base.qcow"
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(top, tmp_path)


def test_chain_without_external_dir_reads_zeros_for_the_backing(
        images: dict[str, Path], tmp_path: Path) -> None:
    """The backing file is never opened unless asked: qemu with backing=null agrees."""
    top = images["top"]
    out = tmp_path / "top-alone.raw"
    run("qemu-img", "convert", "-O", "raw", _without_backing(top), out)
    with imgscan.open(top) as img:
        assert sha256_stream(img.read, img.virtual_size) == sha256_file(out)


def test_absolute_backing_name_is_refused(images: dict[str, Path], qdir: Path) -> None:
    top = _create(qdir / "abs-top.qcow", "4M", "-b", str(images["base"]), "-F", "qcow")
    with imgscan.open(top, external_dir=str(qdir)) as img:
        assert img.backing_file == str(images["base"]) == qemu_info(top)["backing-filename"]
        severities = {f["id"]: f["severity"] for f in img.info()["findings"]}
        assert severities["backing-file"] == "error"
        with pytest.raises(UnsafePath):
            img.read(0, 512)


def test_encrypted_image_refuses_reads(images: dict[str, Path]) -> None:
    with imgscan.open(images["encrypted"]) as img:
        assert img.encrypted and img.encryption == "aes"
        with pytest.raises(EncryptedImage):
            img.read(0, 512)


def test_stream_reads_compressed_clusters(images: dict[str, Path]) -> None:
    """Sequential reads through the stream across compressed cluster edges."""
    raw = (images["compressed"].parent / "compressible.raw").read_bytes()
    with imgscan.open(images["compressed"]) as img:
        stream = img.stream()
        stream.seek(2 * MiB - 100)
        assert stream.read(9000) == raw[2 * MiB - 100:2 * MiB + 8900]
        stream.seek(-1000, os.SEEK_END)
        assert stream.read(5000) == raw[-1000:]


# -- the real corpus -----------------------------------------------------------------------
@needs_corpus
def test_sleuthkit_qcow_corpus(tmp_path: Path) -> None:
    path = CORPUS / "sleuthkit" / "image.qcow"
    facts = json.loads((CORPUS / "FACTS.json").read_text())
    entry = next(v for k, v in facts.items() if "sleuthkit" in k and "image.qcow" in k)
    qinfo = entry["qemu_img_info"]["json"]
    with imgscan.open(path) as img:
        assert img.format == qinfo["format"] == "qcow"
        assert img.virtual_size == qinfo["virtual-size"]
        assert img.cluster_size == qinfo["cluster-size"]
        assert img.backing_file is None and not img.encrypted
        # blkid found ext2 on the whole disk: its superblock UUID (offset 1024 + 0x68).
        uuid = img.read(1024 + 0x68, 16).hex()
        expected = entry["whole_disk_blkid"]["UUID"].replace("-", "")
        assert uuid == expected
        assert img.read(1024 + 0x38, 2) == b"\x53\xef"   # ext2 magic
        _assert_map_matches(img, qemu_map(path))
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)


# -- malformed images ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pristine(images: dict[str, Path]) -> bytes:
    return images["small"].read_bytes()


def _patched(tmp_path: Path, data: bytes, *edits: tuple[int, str, int],
             append: bytes = b"", name: str = "bad.qcow") -> Path:
    """``data`` with big-endian fields ``(offset, struct format, value)`` overwritten."""
    return patched(tmp_path, name, data + append, ">", *edits)


def _l1_offset(data: bytes | bytearray) -> int:
    value: int = struct.unpack_from(">Q", data, OFF_L1_TABLE_OFFSET)[0]
    return value


def _l2_offset(data: bytes | bytearray, index: int = 0) -> int:
    value: int = struct.unpack_from(">Q", data, _l1_offset(data) + 8 * index)[0]
    return value


def _l2_entry_offset(data: bytes | bytearray, guest: int) -> int:
    """File offset of the L2 entry for guest offset ``guest`` (image with one L2 table)."""
    cluster_bits, l2_bits = data[OFF_CLUSTER_BITS], data[OFF_L2_BITS]
    index = (guest >> cluster_bits) & ((1 << l2_bits) - 1)
    return _l2_offset(data, guest >> (cluster_bits + l2_bits)) + 8 * index


@pytest.mark.parametrize("length", range(HEADER_SIZE))
def test_truncated_header(pristine: bytes, tmp_path: Path, length: int) -> None:
    path = tmp_path / "short.qcow"
    path.write_bytes(pristine[:length])
    if length < 4:
        # Not even the magic: nothing identifies the file as QCOW version 1 (a
        # qcow2 decoder may still refuse a cut magic).
        try:
            with imgscan.open(path) as img:
                assert img.format != "qcow"
        except ImageError as exc:
            assert "qcow header" not in str(exc)
    elif length < 8:
        # The magic is shared with qcow2 and the version is cut: never raw.
        with pytest.raises(ImageError):
            imgscan.open(path)
    else:
        with pytest.raises(TruncatedImage, match="qcow header"):
            imgscan.open(path)


@pytest.mark.parametrize("version", [0, 2, 3, 4, 0x100])
def test_other_versions_are_not_qcow1(pristine: bytes, tmp_path: Path, version: int) -> None:
    path = _patched(tmp_path, pristine, (OFF_VERSION, "I", version))
    try:
        with imgscan.open(path) as img:
            assert img.format != "qcow"
    except ImageError:
        pass   # another decoder (qcow2) claimed the magic and refused the header


@pytest.mark.usefixtures("prompt")
@pytest.mark.parametrize(("offset", "fmt", "value", "error"), [
    (OFF_CLUSTER_BITS, "B", 0, CorruptImage),
    (OFF_CLUSTER_BITS, "B", 8, CorruptImage),
    (OFF_CLUSTER_BITS, "B", 17, CorruptImage),
    (OFF_CLUSTER_BITS, "B", 40, CorruptImage),
    (OFF_L2_BITS, "B", 0, CorruptImage),
    (OFF_L2_BITS, "B", 5, CorruptImage),
    (OFF_L2_BITS, "B", 14, CorruptImage),
    (OFF_L2_BITS, "B", 255, CorruptImage),
    (OFF_SIZE, "Q", 0, CorruptImage),
    (OFF_SIZE, "Q", 1, CorruptImage),
    (OFF_SIZE, "Q", 1 << 50, LimitExceeded),          # L1 table of 4 GiB
    (OFF_SIZE, "Q", (1 << 64) - 1, LimitExceeded),
    (OFF_CRYPT_METHOD, "I", 2, UnsupportedFeature),
])
def test_bad_header_fields(pristine: bytes, tmp_path: Path, offset: int, fmt: str,
                           value: int, error: type[ImageError]) -> None:
    path = _patched(tmp_path, pristine, (offset, fmt, value))
    with pytest.raises(error, match=re.escape(str(path))):
        imgscan.open(path)
    assert qemu_refuses(path, "qcow")


def test_l1_cap_boundary(pristine: bytes, tmp_path: Path) -> None:
    """limits.QCOW_MAX_L1_BYTES: at the cap the header is accepted, one byte of size more is not."""
    from imgscan import limits

    span = 1 << (pristine[OFF_CLUSTER_BITS] + pristine[OFF_L2_BITS])
    at_cap = limits.QCOW_MAX_L1_BYTES // 8 * span
    with imgscan.open(_patched(tmp_path, pristine, (OFF_SIZE, "Q", at_cap))) as img:
        assert img.virtual_size == at_cap
        # The 32 MiB L1 table lies past the end of this small file.
        assert "truncated" in {f["id"] for f in img.info()["findings"]}
        with pytest.raises(TruncatedImage):
            img.extents()
    with pytest.raises(LimitExceeded, match="QCOW_MAX_L1_BYTES"):
        imgscan.open(_patched(tmp_path, pristine, (OFF_SIZE, "Q", at_cap + 1), name="b.qcow"))


def test_unaligned_size_is_cut_to_sectors(pristine: bytes, tmp_path: Path) -> None:
    """qemu keeps sizes in 512-byte sectors: an odd header size rounds down."""
    path = _patched(tmp_path, pristine, (OFF_SIZE, "Q", MiB + 1))
    with imgscan.open(path) as img:
        assert img.virtual_size == qemu_info(path)["virtual-size"] == MiB
        _assert_map_matches(img, qemu_map(path))


@pytest.mark.usefixtures("prompt")
@pytest.mark.parametrize("where", ["past", "straddling"])
def test_l1_table_outside_file(pristine: bytes, tmp_path: Path, where: str) -> None:
    offset = len(pristine) + 4096 if where == "past" else len(pristine) - 4
    path = _patched(tmp_path, pristine, (OFF_L1_TABLE_OFFSET, "Q", offset))
    with imgscan.open(path) as img:
        info = img.info()
        ids = {f["id"] for f in info["findings"]}
        assert "truncated" in ids
        assert info["allocated_size"] is None
        with pytest.raises(TruncatedImage, match="L1 table"):
            img.extents()
        with pytest.raises(TruncatedImage):
            img.read(0, 512)


@pytest.mark.usefixtures("prompt")
@pytest.mark.parametrize("where", ["past", "straddling"])
def test_l2_table_outside_file(pristine: bytes, tmp_path: Path, where: str) -> None:
    offset = len(pristine) + 4096 if where == "past" else len(pristine) - 8
    path = _patched(tmp_path, pristine, (_l1_offset(pristine), "Q", offset))
    with imgscan.open(path) as img:
        info = img.info()
        assert info["format"] == "qcow"
        assert "truncated" in {f["id"] for f in info["findings"]}
        with pytest.raises(TruncatedImage, match="L2 table"):
            img.extents()


@pytest.mark.usefixtures("prompt")
def test_l2_tables_shared_by_every_l1_entry(images: dict[str, Path], tmp_path: Path) -> None:
    """Aliased L2 tables would make the walk cost more than the file: refused."""
    data = images["medium"].read_bytes()
    l1, l1_entries = _l1_offset(data), -(-100 * MiB >> 21)
    l2_bytes = 8 << data[OFF_L2_BITS]
    assert l1_entries * l2_bytes > len(data)
    target = _l2_offset(data, 0)
    edits = [(l1 + 8 * i, "Q", target) for i in range(l1_entries)]
    path = _patched(tmp_path, data, *edits)
    with imgscan.open(path) as img, pytest.raises(CorruptImage, match="share"):
        img.extents()


def test_extent_limit(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from imgscan import limits

    monkeypatch.setattr(limits, "MAX_EXTENTS", 2)
    with imgscan.open(images["small"]) as img, pytest.raises(LimitExceeded, match="MAX_EXTENTS"):
        img.extents()


def test_data_cluster_wholly_past_eof_reads_zeros(pristine: bytes, tmp_path: Path) -> None:
    """qemu reads a cluster past the end of the file as zeros; imgscan agrees and reports it."""
    beyond = (len(pristine) // 512 + 2048) * 512
    path = _patched(tmp_path, pristine, (_l2_entry_offset(pristine, 4096), "Q", beyond))
    with imgscan.open(path) as img:
        findings = {f["id"]: f["message"] for f in img.info()["findings"]}
        assert "guest offset 4096" in findings["truncated"]
        assert img.read(4096, 4096) == bytes(4096)
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)


def test_data_cluster_partly_past_eof_reads_zeros(images: dict[str, Path],
                                                  tmp_path: Path) -> None:
    src = images["small"]
    last = max(int(e["offset"]) for e in qemu_map(src) if "offset" in e)
    path = tmp_path / "cut.qcow"
    path.write_bytes(src.read_bytes()[:last + 100])
    with imgscan.open(path) as img:
        assert "truncated" not in {f["id"] for f in img.info()["findings"]}
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)


@pytest.mark.usefixtures("prompt")
def test_misaligned_data_cluster(pristine: bytes, tmp_path: Path) -> None:
    entry = _l2_entry_offset(pristine, 4096)
    host: int = struct.unpack_from(">Q", pristine, entry)[0]
    path = _patched(tmp_path, pristine, (entry, "Q", host + 1))
    with imgscan.open(path) as img, pytest.raises(CorruptImage, match="512"):
        img.extents()
    with pytest.raises(AssertionError):   # qemu: EIO
        run("qemu-img", "convert", "-O", "raw", path, tmp_path / "out.raw")


@pytest.mark.usefixtures("prompt")
def test_backing_name_outside_file(pristine: bytes, tmp_path: Path) -> None:
    path = _patched(tmp_path, pristine, (OFF_BACKING_FILE_OFFSET, "Q", len(pristine) + 100),
                    (OFF_BACKING_FILE_SIZE, "I", 10))
    with pytest.raises(TruncatedImage, match="backing file name"):
        imgscan.open(path)


def test_backing_name_length_boundary(pristine: bytes, tmp_path: Path) -> None:
    """1023 bytes is qemu's longest name (limits.QCOW_MAX_BACKING_NAME); 1024 is refused."""
    name = b"b" * 1023
    path = _patched(tmp_path, pristine, (OFF_BACKING_FILE_OFFSET, "Q", len(pristine)),
                    (OFF_BACKING_FILE_SIZE, "I", 1023), append=name + b"b")
    with imgscan.open(path) as img:
        assert img.backing_file == name.decode() == qemu_info(path)["backing-filename"]
    path = _patched(tmp_path, pristine, (OFF_BACKING_FILE_OFFSET, "Q", len(pristine)),
                    (OFF_BACKING_FILE_SIZE, "I", 1024), append=name + b"b", name="long.qcow")
    with pytest.raises(LimitExceeded, match="backing file name"):
        imgscan.open(path)
    assert qemu_refuses(path, "qcow")


def test_backing_name_ends_at_nul(pristine: bytes, tmp_path: Path) -> None:
    path = _patched(tmp_path, pristine, (OFF_BACKING_FILE_OFFSET, "Q", len(pristine)),
                    (OFF_BACKING_FILE_SIZE, "I", 12), append=b"base\x00garbage")
    with imgscan.open(path) as img:
        assert img.backing_file == "base" == qemu_info(path)["backing-filename"]


def _first_compressed(data: bytes | bytearray) -> tuple[int, int, int, int]:
    """(guest offset, L2 entry file offset, host offset, stored bytes) of a compressed cluster."""
    cluster_bits = data[OFF_CLUSTER_BITS]
    for guest in range(0, 4 * MiB, 1 << cluster_bits):
        entry_at = _l2_entry_offset(data, guest)
        entry: int = struct.unpack_from(">Q", data, entry_at)[0]
        if entry & OFLAG_COMPRESSED:
            host = entry & ((1 << (63 - cluster_bits)) - 1)
            stored = (entry >> (63 - cluster_bits)) & ((1 << cluster_bits) - 1)
            return guest, entry_at, host, stored
    raise AssertionError("no compressed cluster")


@pytest.mark.usefixtures("prompt")
def test_garbage_compressed_stream(images: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(images["compressed"].read_bytes())
    guest, _, host, stored = _first_compressed(data)
    data[host:host + stored] = b"\xff" * stored
    path = tmp_path / "garbage.qcow"
    path.write_bytes(data)
    with imgscan.open(path) as img:
        img.extents()
        with pytest.raises(CorruptImage, match="compressed cluster"):
            img.read(guest, 512)
    with pytest.raises(AssertionError):   # qemu: EIO
        run("qemu-img", "convert", "-O", "raw", path, tmp_path / "out.raw")


def _compressed_entry(host: int, stored: int, cluster_bits: int) -> int:
    return OFLAG_COMPRESSED | stored << (63 - cluster_bits) | host


@pytest.mark.usefixtures("prompt")
def test_compression_bomb(images: dict[str, Path], tmp_path: Path) -> None:
    """A stream that expands past its cluster (qemu cuts it off silently) is refused."""
    data = images["compressed"].read_bytes()
    cluster_bits = data[OFF_CLUSTER_BITS]
    guest, entry_at, _, _ = _first_compressed(data)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -12)
    bomb = deflate.compress(bytes(64 << cluster_bits)) + deflate.flush()
    host = len(data)
    path = _patched(tmp_path, data,
                    (entry_at, "Q", _compressed_entry(host, len(bomb), cluster_bits)),
                    append=bomb)
    with imgscan.open(path) as img:
        with pytest.raises(CorruptImage, match="inflates beyond"):
            img.read(guest, 512)
        assert "compression-bomb" in {f.id for f in img.findings}


@pytest.mark.usefixtures("prompt")
def test_compressed_stream_short_of_a_cluster(images: dict[str, Path], tmp_path: Path) -> None:
    data = images["compressed"].read_bytes()
    cluster_bits = data[OFF_CLUSTER_BITS]
    guest, entry_at, _, _ = _first_compressed(data)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -12)
    short = deflate.compress(b"x" * ((1 << cluster_bits) // 2)) + deflate.flush()
    path = _patched(tmp_path, data,
                    (entry_at, "Q", _compressed_entry(len(data), len(short), cluster_bits)),
                    append=short)
    with imgscan.open(path) as img, pytest.raises(CorruptImage, match="not the"):
        img.read(guest, 512)
    with pytest.raises(AssertionError):   # qemu: EIO
        run("qemu-img", "convert", "-O", "raw", path, tmp_path / "out.raw")


@pytest.mark.usefixtures("prompt")
def test_compressed_cluster_past_eof(images: dict[str, Path], tmp_path: Path) -> None:
    data = images["compressed"].read_bytes()
    cluster_bits = data[OFF_CLUSTER_BITS]
    guest, entry_at, _, stored = _first_compressed(data)
    entry = _compressed_entry(len(data) + 4096, stored, cluster_bits)
    path = _patched(tmp_path, data, (entry_at, "Q", entry))
    with imgscan.open(path) as img:
        assert "truncated" in {f["id"] for f in img.info()["findings"]}
        with pytest.raises(TruncatedImage, match="compressed cluster"):
            img.read(guest, 512)


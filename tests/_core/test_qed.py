"""QED (imgscan/_core/qed.pyx) against qemu-img and qemu-io.

Well-formed images are made by qemu-img / qemu-io once per session; facts,
maps and guest bytes are compared with what qemu-img reports for the same
file, backing chains with ``qemu-img convert`` of the chain. Malformed
images are qemu-made images with one header or table field patched at the
offsets of qed_spec.txt; where qemu refuses the same file, the test checks
that too.
"""

from __future__ import annotations

import json
import struct
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from helpers import GiB, KiB, MiB, TiB, patched, qemu_create
from oracles import (
    clip_map,
    data_zero_runs,
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
    stored_not_zero,
)

import imgscan
from imgscan import (
    CorruptImage,
    ImageError,
    LimitExceeded,
    TruncatedImage,
    UnsafePath,
    UnsupportedFeature,
)
from imgscan.image import Image

# QEDHeader field offsets (little-endian), qed_spec.txt.
CLUSTER_SIZE = 4
TABLE_SIZE = 8
HEADER_SIZE_FIELD = 12
FEATURES = 16
COMPAT_FEATURES = 24
AUTOCLEAR_FEATURES = 32
L1_TABLE_OFFSET = 40
IMAGE_SIZE = 48
BACKING_FILENAME_OFFSET = 56
BACKING_FILENAME_SIZE = 60
HEADER_BYTES = 64
F_BACKING_FILE, F_NEED_CHECK, F_NO_PROBE = 1, 2, 4

pytestmark = needs_qemu

_create = partial(qemu_create, fmt="qed")


@pytest.fixture(scope="session")
def qdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qed")


@pytest.fixture(scope="session")
def images(qdir: Path) -> dict[str, Path]:
    """Every well-formed test image, by name."""
    out: dict[str, Path] = {}
    out["empty"] = _create(qdir / "empty.qed", "10M")

    out["small"] = _create(qdir / "small.qed", "10M")
    qemu_io(out["small"], "write -P 0x5a 4096 8192", f"write -z {MiB} {128 * KiB}",
            f"write -P 0x11 {3 * MiB + 512} 1024", f"write -P 0x22 {10 * MiB - 512} 512",
            fmt="qed")

    # 4 KiB clusters, 2-cluster tables: an L2 table maps 4 MiB, so 100 MiB need 25.
    out["c4k"] = _create(qdir / "c4k.qed", "100M", "-o", "cluster_size=4096,table_size=2")
    qemu_io(out["c4k"], "write -P 0x33 0 20000", f"write -P 0x34 {17 * MiB - 100 * 512} 70000",
            f"write -z {40 * MiB} {3 * MiB}", f"write -P 0x35 {99 * MiB} {MiB}", fmt="qed")

    out["c1m"] = _create(qdir / "c1m.qed", "64M", "-o", "cluster_size=1M,table_size=16")
    qemu_io(out["c1m"], "write -P 0x36 512 4096", f"write -P 0x37 {50 * MiB} {3 * MiB}",
            fmt="qed")

    out["odd"] = _create(qdir / "odd.qed", "10000001")
    odd_size = int(qemu_info(out["odd"])["virtual-size"])
    qemu_io(out["odd"], f"write -P 0x66 {odd_size - 1536} 1536", "write -P 0x67 5000 3000",
            fmt="qed")

    out["huge"] = _create(qdir / "huge.qed", "1T")
    qemu_io(out["huge"], "write -P 0x77 0 4096", f"write -P 0x78 {512 * GiB} 65536",
            f"write -z {600 * GiB} {MiB}", f"write -P 0x79 {TiB - 8192} 8192", fmt="qed")

    raw = qdir / "scattered.raw"
    with open(raw, "wb") as f:
        f.truncate(24 * MiB)
        for i, off in enumerate((0, 5 * MiB + 4096, 17 * MiB, 24 * MiB - 70000)):
            f.seek(off)
            f.write(bytes([0x80 + i]) * 70000)
    out["converted"] = qdir / "converted.qed"
    run("qemu-img", "convert", "-f", "raw", "-O", "qed", raw, out["converted"])

    out["base"] = _create(qdir / "base.qed", "8M")
    qemu_io(out["base"], "write -P 0x11 0 196608", f"write -P 0x12 {5 * MiB} {MiB}", fmt="qed")
    out["top"] = _create(qdir / "top.qed", None, "-b", "base.qed", "-F", "qed")
    qemu_io(out["top"], "write -P 0x22 65536 4096", f"write -z {5 * MiB + 65536} 65536",
            f"write -P 0x23 {7 * MiB} 512", fmt="qed")

    base_raw = qdir / "base.raw"
    with open(base_raw, "wb") as f:
        f.write(b"\x42" * (3 * MiB))        # shorter than the top: the rest reads as zeros
    out["top_raw"] = _create(qdir / "top-raw.qed", "6M", "-b", "base.raw", "-F", "raw")
    qemu_io(out["top_raw"], f"write -P 0x24 {MiB} 4096", fmt="qed")
    return out


def _without_backing(path: Path) -> str:
    return "json:" + json.dumps({"driver": "qed", "file": {"driver": "file",
                                                           "filename": str(path)},
                                 "backing": None})


def _assert_map_matches(img: Image, qmap: list[dict[str, Any]], *,
                        window: tuple[int, int] | None = None) -> None:
    emap = img.extents()
    assert emap.check_complete()
    start, end = window if window else (0, img.virtual_size)
    ours = clip_map([dict(e) for e in emap.to_qemu()], start, end)
    assert data_zero_runs(ours) == data_zero_runs(stored_not_zero(clip_map(qmap, start, end)))
    extents = list(emap)
    for q in qmap:
        if not q["data"]:
            continue
        s, t = int(q["start"]), int(q["start"]) + int(q["length"])
        for x in extents:
            if x.start < t and s < x.start + x.length:
                assert x.kind == "data" and x.host is not None
                assert x.host - x.start == int(q["offset"]) - s


# -- well-formed images: facts, map, bytes ----------------------------------------------
ALL = ["empty", "small", "c4k", "c1m", "odd", "huge", "converted", "base", "top", "top_raw"]


@pytest.mark.parametrize("name", ALL)
def test_facts_match_qemu_img_info(images: dict[str, Path], name: str) -> None:
    path = images[name]
    info = qemu_info(path)
    header = path.read_bytes()[:HEADER_BYTES]
    with imgscan.open(path) as img:
        assert img.format == info["format"] == "qed"
        assert img.subformat is None
        assert img.virtual_size == info["virtual-size"]
        assert img.cluster_size == info["cluster-size"]
        assert img.backing_file == info.get("backing-filename")
        assert img.backing_format == info.get("backing-filename-format")
        assert img.dirty is False
        assert not img.encrypted
        d = img.format_specific
        assert d["table_size"] == struct.unpack_from("<I", header, TABLE_SIZE)[0]
        assert d["features"] == (F_BACKING_FILE | (F_NO_PROBE if name == "top_raw" else 0)
                                 if name.startswith("top") else 0)
        ids = {f["id"] for f in img.info()["findings"]}
        assert ids == ({"backing-file"} if img.backing_file else set())


@pytest.mark.parametrize("name", [n for n in ALL if n != "huge"])
def test_map_matches_qemu_img_map(images: dict[str, Path], name: str) -> None:
    """The image's own map (a backing file hidden, as imgscan never opens it here)."""
    path = images[name]
    qmap: list[dict[str, Any]] = json.loads(
        run("qemu-img", "map", "--output=json", _without_backing(path)))
    with imgscan.open(path) as img:
        _assert_map_matches(img, qmap)


def test_map_of_top_with_its_backing_matches_qemu(images: dict[str, Path]) -> None:
    """With the chain, qemu calls unallocated clusters depth 1; zero clusters stay in the top."""
    path = images["top"]
    with imgscan.open(path) as img:
        ours = img.extents().to_qemu(has_backing=True)
        theirs = [e for e in qemu_map(path) if e["depth"] == 0]
        mine = [e for e in ours if e["depth"] == 0]
        assert data_zero_runs(mine) == data_zero_runs(stored_not_zero(theirs))


@pytest.mark.parametrize("name", ["empty", "small", "c4k", "c1m", "odd", "converted", "base"])
def test_guest_bytes_match_qemu_convert(images: dict[str, Path], name: str,
                                        tmp_path: Path) -> None:
    path = images[name]
    with imgscan.open(path) as img:
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)


def test_huge_sparse_image_windows(images: dict[str, Path], tmp_path: Path) -> None:
    """1 TiB: qemu's map and bytes in windows around the data."""
    path = images["huge"]
    with imgscan.open(path) as img:
        assert img.virtual_size == TiB
        for start, size in [(0, 64 * MiB), (512 * GiB - 32 * MiB, 64 * MiB),
                            (600 * GiB - MiB, 4 * MiB), (TiB - 64 * MiB, 64 * MiB)]:
            out = run("qemu-img", "map", "--output=json", f"--start-offset={start}",
                      f"--max-length={size}", path)
            _assert_map_matches(img, json.loads(out), window=(start, start + size))
        for start in (0, 512 * GiB - MiB // 2, 600 * GiB, TiB - MiB):
            assert img.read(start, MiB) == qemu_window("qed", path, start, MiB, tmp_path)
        assert img.allocated_size == 3 * 65536


@pytest.mark.parametrize("name", ["top", "top_raw"])
def test_chain_read_through_backing_file(images: dict[str, Path], qdir: Path, name: str,
                                         tmp_path: Path) -> None:
    top = images[name]
    with imgscan.open(top, external_dir=str(qdir)) as img:
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(top, tmp_path)


@pytest.mark.parametrize("name", ["top", "top_raw"])
def test_chain_without_external_dir_reads_zeros_for_the_backing(
        images: dict[str, Path], name: str, tmp_path: Path) -> None:
    """The backing file is never opened unless asked: qemu with backing=null agrees."""
    top = images[name]
    out = tmp_path / "top-alone.raw"
    run("qemu-img", "convert", "-O", "raw", _without_backing(top), out)
    with imgscan.open(top) as img:
        assert sha256_stream(img.read, img.virtual_size) == sha256_file(out)


def test_absolute_backing_name_is_refused(images: dict[str, Path], qdir: Path) -> None:
    top = _create(qdir / "abs-top.qed", None, "-b", str(images["base"]), "-F", "qed")
    with imgscan.open(top, external_dir=str(qdir)) as img:
        assert img.backing_file == str(images["base"]) == qemu_info(top)["backing-filename"]
        severities = {f["id"]: f["severity"] for f in img.info()["findings"]}
        assert severities["backing-file"] == "error"
        with pytest.raises(UnsafePath):
            img.read(0, 512)


def test_table_size_one_is_read(qdir: Path) -> None:
    """The spec allows 1-cluster tables; qemu-img writes them but cannot open them."""
    path = _create(qdir / "t1.qed", "10M", "-o", "table_size=1")
    with pytest.raises(AssertionError, match="table offset is invalid"):
        qemu_info(path)
    with imgscan.open(path) as img:
        assert img.format_specific["table_size"] == 1
        assert "unknown-feature" in {f["id"] for f in img.info()["findings"]}
        assert [x.kind for x in img.extents()] == ["unallocated"]


# -- flags and malformed images ------------------------------------------------------------
@pytest.fixture(scope="session")
def pristine(images: dict[str, Path]) -> bytes:
    return images["small"].read_bytes()


def _patched(tmp_path: Path, data: bytes | bytearray, *edits: tuple[int, str, int],
             append: bytes = b"", name: str = "bad.qed") -> Path:
    """``data`` with little-endian fields ``(offset, struct format, value)`` overwritten."""
    return patched(tmp_path, name, data + append, "<", *edits)


def _l1(data: bytes | bytearray) -> int:
    value: int = struct.unpack_from("<Q", data, L1_TABLE_OFFSET)[0]
    return value


def _l2(data: bytes | bytearray, index: int = 0) -> int:
    value: int = struct.unpack_from("<Q", data, _l1(data) + 8 * index)[0]
    return value


def _l2_entry(data: bytes | bytearray, guest: int) -> int:
    """File offset of the L2 entry for ``guest`` (an image whose first L2 table maps it)."""
    cluster: int = struct.unpack_from("<I", data, CLUSTER_SIZE)[0]
    return _l2(data, 0) + 8 * (guest // cluster)


def test_need_check_is_dirty(pristine: bytes, tmp_path: Path) -> None:
    """QED_F_NEED_CHECK: the spec's "not closed cleanly"; qemu-img info prints no dirty flag
    for QED (dirty-flag stays false), so the bit in the file is the oracle."""
    path = _patched(tmp_path, pristine, (FEATURES, "Q", F_NEED_CHECK))
    with imgscan.open(path) as img:
        assert img.dirty is True
        assert img.format_specific["need_check"] is True
        assert "dirty" in {f["id"] for f in img.info()["findings"]}
        _assert_map_matches(img, qemu_map(path))


def test_unknown_compat_and_autoclear_bits_are_reported(pristine: bytes, tmp_path: Path) -> None:
    path = _patched(tmp_path, pristine, (COMPAT_FEATURES, "Q", 1 << 5),
                    (AUTOCLEAR_FEATURES, "Q", 1 << 7))
    with imgscan.open(path) as img:
        messages = [f["message"] for f in img.info()["findings"] if f["id"] == "unknown-feature"]
        assert len(messages) == 2
        _assert_map_matches(img, qemu_map(path))


@pytest.mark.usefixtures("prompt")
def test_truncated_header_every_length(pristine: bytes, tmp_path: Path) -> None:
    path = tmp_path / "short.qed"
    for length in range(HEADER_BYTES):
        path.write_bytes(pristine[:length])
        if length < 4:
            # Not even the magic: never QED (qcow2's probe may still claim a cut "Q").
            try:
                with imgscan.open(path) as img:
                    assert img.format != "qed"
            except ImageError as exc:
                assert "QED" not in str(exc)
            continue
        with pytest.raises(TruncatedImage, match="QED header"):
            imgscan.open(path)


@pytest.mark.usefixtures("prompt")
@pytest.mark.parametrize(("offset", "fmt", "value", "error"), [
    (FEATURES, "Q", 1 << 3, UnsupportedFeature),
    (FEATURES, "Q", 1 << 63, UnsupportedFeature),
    (CLUSTER_SIZE, "I", 0, CorruptImage),
    (CLUSTER_SIZE, "I", 2048, CorruptImage),
    (CLUSTER_SIZE, "I", 65536 + 4096, CorruptImage),
    (CLUSTER_SIZE, "I", 128 * MiB, CorruptImage),
    (TABLE_SIZE, "I", 0, CorruptImage),
    (TABLE_SIZE, "I", 3, CorruptImage),
    (TABLE_SIZE, "I", 32, CorruptImage),
    (IMAGE_SIZE, "Q", 10 * MiB + 1, CorruptImage),
    (IMAGE_SIZE, "Q", 1 << 62, CorruptImage),        # more than two table levels map
])
def test_bad_header_fields(pristine: bytes, tmp_path: Path, offset: int, fmt: str,
                           value: int, error: type[ImageError]) -> None:
    path = _patched(tmp_path, pristine, (offset, fmt, value))
    with pytest.raises(error, match=str(path)):
        imgscan.open(path)
    assert qemu_refuses(path, "qed", "map")


def test_image_size_cap(qdir: Path, tmp_path: Path) -> None:
    """64 MiB clusters map far more than limits.MAX_VIRTUAL_SIZE: the cap refuses the rest."""
    from imgscan import limits

    data = (qdir / "c1m.qed").read_bytes()
    path = _patched(tmp_path, data, (IMAGE_SIZE, "Q", limits.MAX_VIRTUAL_SIZE + 512))
    with pytest.raises(LimitExceeded, match="MAX_VIRTUAL_SIZE"):
        imgscan.open(path)


@pytest.mark.usefixtures("prompt")
@pytest.mark.parametrize(("where", "error"), [
    ("past", TruncatedImage), ("straddling", TruncatedImage), ("misaligned", CorruptImage),
    ("header", CorruptImage)])
def test_l1_table_misplaced(pristine: bytes, tmp_path: Path, where: str,
                            error: type[ImageError]) -> None:
    offset = {"past": len(pristine) + 65536, "straddling": len(pristine) - 65536,
              "misaligned": _l1(pristine) + 512, "header": 0}[where]
    path = _patched(tmp_path, pristine, (L1_TABLE_OFFSET, "Q", offset))
    assert qemu_refuses(path, "qed", "map")
    with imgscan.open(path) as img:
        info = img.info()
        assert info["allocated_size"] is None
        assert {"truncated", "corrupt"} & {f["id"] for f in info["findings"]}
        with pytest.raises(error, match="L1 table"):
            img.extents()


@pytest.mark.usefixtures("prompt")
@pytest.mark.parametrize(("where", "error"), [
    ("past", TruncatedImage), ("straddling", TruncatedImage), ("misaligned", CorruptImage)])
def test_l2_table_misplaced(pristine: bytes, tmp_path: Path, where: str,
                            error: type[ImageError]) -> None:
    offset = {"past": len(pristine) + 65536, "straddling": len(pristine) - 65536,
              "misaligned": _l2(pristine) + 8}[where]
    path = _patched(tmp_path, pristine, (_l1(pristine), "Q", offset))
    assert qemu_refuses(path, "qed", "map")
    with imgscan.open(path) as img, pytest.raises(error, match="L2 table"):
        img.extents()


@pytest.mark.usefixtures("prompt")
@pytest.mark.parametrize(("where", "error"), [
    ("past", TruncatedImage), ("misaligned", CorruptImage), ("in-last-partial-cluster",
                                                             TruncatedImage)])
def test_data_cluster_misplaced(pristine: bytes, tmp_path: Path, where: str,
                                error: type[ImageError]) -> None:
    """qemu fails the read of such a cluster (EINVAL); imgscan refuses to map it."""
    entry = _l2_entry(pristine, 4096)
    host: int = struct.unpack_from("<Q", pristine, entry)[0]
    offset = {"past": len(pristine) + 65536, "misaligned": host + 512,
              "in-last-partial-cluster": len(pristine)}[where]
    # The last case appends half a cluster: qemu rounds the file size down to clusters.
    append = bytes(32768) if where == "in-last-partial-cluster" else b""
    path = _patched(tmp_path, pristine, (entry, "Q", offset), append=append)
    assert qemu_refuses(path, "qed", "map")
    with imgscan.open(path) as img, pytest.raises(error, match="L2 entry for guest offset 0"):
        img.extents()


@pytest.mark.usefixtures("prompt")
def test_l2_tables_shared_by_every_l1_entry(images: dict[str, Path], tmp_path: Path) -> None:
    """Aliased L2 tables would make the walk cost more than the file: refused."""
    data = images["huge"].read_bytes()
    l1, entries = _l1(data), TiB // (65536 * 32768)
    target = _l2(data, 0)
    assert entries * 4 * 65536 > len(data)
    path = _patched(tmp_path, data, *[(l1 + 8 * i, "Q", target) for i in range(entries)])
    with imgscan.open(path) as img, pytest.raises(CorruptImage, match="share"):
        img.extents()


def test_extent_limit(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from imgscan import limits

    monkeypatch.setattr(limits, "MAX_EXTENTS", 2)
    with imgscan.open(images["small"]) as img, pytest.raises(LimitExceeded, match="MAX_EXTENTS"):
        img.extents()


@pytest.mark.usefixtures("prompt")
def test_backing_name_outside_header(images: dict[str, Path], tmp_path: Path) -> None:
    data = images["top"].read_bytes()
    path = _patched(tmp_path, data, (BACKING_FILENAME_OFFSET, "I", 65536 - 4),
                    (BACKING_FILENAME_SIZE, "I", 8))
    assert qemu_refuses(path, "qed", "map")
    with pytest.raises(CorruptImage, match="backing file name"):
        imgscan.open(path)


@pytest.mark.usefixtures("prompt")
def test_backing_name_past_eof(images: dict[str, Path], tmp_path: Path) -> None:
    """A header of many clusters may claim a name the file does not hold."""
    data = images["top"].read_bytes()
    path = _patched(tmp_path, data, (HEADER_SIZE_FIELD, "I", 1 << 20),
                    (BACKING_FILENAME_OFFSET, "I", len(data) + 100),
                    (BACKING_FILENAME_SIZE, "I", 10))
    with pytest.raises(TruncatedImage, match="backing file name"):
        imgscan.open(path)


def test_backing_name_length_boundary(images: dict[str, Path], tmp_path: Path) -> None:
    """4095 bytes fit qemu's PATH_MAX buffer (limits.QED_MAX_BACKING_NAME); 4096 do not."""
    data = bytearray(images["top"].read_bytes())
    name = b"b" * 4096
    data[1024:1024 + 4096] = name
    path = _patched(tmp_path, data, (BACKING_FILENAME_OFFSET, "I", 1024),
                    (BACKING_FILENAME_SIZE, "I", 4095))
    with imgscan.open(path) as img:
        assert img.backing_file == "b" * 4095 == qemu_info(path)["backing-filename"]
    path = _patched(tmp_path, data, (BACKING_FILENAME_OFFSET, "I", 1024),
                    (BACKING_FILENAME_SIZE, "I", 4096), name="long.qed")
    with pytest.raises(LimitExceeded, match="backing file name"):
        imgscan.open(path)
    assert qemu_refuses(path, "qed", "map")


def test_backing_name_ends_at_nul(images: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(images["top"].read_bytes())
    data[1024:1024 + 13] = b"base\x00garbage"
    path = _patched(tmp_path, data, (BACKING_FILENAME_OFFSET, "I", 1024),
                    (BACKING_FILENAME_SIZE, "I", 12))
    with imgscan.open(path) as img:
        assert img.backing_file == "base" == qemu_info(path)["backing-filename"]

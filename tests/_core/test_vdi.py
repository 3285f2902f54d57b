"""VDI (imgscan/_core/vdi.pyx) against qemu-img and qemu-io.

Well-formed images are made by qemu-img / qemu-io once per session; facts,
maps and guest bytes are compared with what qemu-img reports for the same
file. Images qemu cannot make (discarded blocks, other block sizes, block
extra data, differencing) and malformed ones are qemu-made images with
header or block map fields patched at the offsets of VirtualBox's
VDICore.h; where qemu reads the patched file, its reading is the oracle, and
where it refuses, the test checks that too.
"""

from __future__ import annotations

import struct
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from helpers import GiB, MiB, decompress, patched, qemu_create
from oracles import (
    CORPUS,
    corpus_facts,
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
    sha256_stream,
    stored_not_zero,
)

import imgscan
from imgscan import (
    CorruptImage,
    ImageError,
    LimitExceeded,
    TruncatedImage,
    UnsupportedFeature,
)
from imgscan.image import Image

# VDIPREHEADER / VDIHEADER1 field offsets from the start of the file (little-endian).
SIGNATURE = 0x40
VERSION = 0x44
HEADER_SIZE = 0x48
IMAGE_TYPE = 0x4C
OFFSET_BMAP = 0x154
OFFSET_DATA = 0x158
SECTOR_SIZE_FIELD = 0x168
DISK_SIZE = 0x170
BLOCK_SIZE = 0x178
BLOCK_EXTRA = 0x17C
BLOCKS_IN_IMAGE = 0x180
BLOCKS_ALLOCATED = 0x184
UUID_IMAGE = 0x188
UUID_LINK = 0x1A8
UUID_PARENT = 0x1B8
HEADER1_END = 0x1C8
QEMU_TEXT = b"<<< QEMU VM Virtual Disk Image >>>\n"
UNALLOCATED = 0xFFFFFFFF
DISCARDED = 0xFFFFFFFE

pytestmark = needs_qemu

_create = partial(qemu_create, fmt="vdi")


@pytest.fixture(scope="session")
def vdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vdi")


@pytest.fixture(scope="session")
def images(vdir: Path) -> dict[str, Path]:
    """Every well-formed qemu-made test image, by name."""
    out: dict[str, Path] = {}
    out["empty"] = _create(vdir / "empty.vdi", "10M")

    out["dynamic"] = _create(vdir / "dynamic.vdi", "20M")
    qemu_io(out["dynamic"], "write -P 0x5a 4096 8192", f"write -P 0x11 {3 * MiB + 512} 1024",
            f"write -z {7 * MiB} {MiB}", f"write -P 0x22 {12 * MiB - 4096} 8192",
            f"write -P 0x33 {20 * MiB - 512} 512", fmt="vdi")

    out["static"] = _create(vdir / "static.vdi", "6M", "-o", "static=on")
    qemu_io(out["static"], "write -P 0x44 0 65536", f"write -P 0x55 {4 * MiB + 100 * 512} 4096",
            fmt="vdi")

    # qemu-img stores the size as given; qemu reads it rounded up to whole sectors.
    out["odd"] = _create(vdir / "odd.vdi", "10000001")
    qemu_io(out["odd"], "write -P 0x66 9998848 1536", "write -P 0x67 5000 3000", fmt="vdi")

    out["large"] = _create(vdir / "large.vdi", "64G")
    qemu_io(out["large"], "write -P 0x77 0 4096", f"write -P 0x78 {40 * GiB + 12345 * 512} 8192",
            f"write -P 0x79 {64 * GiB - 4096} 4096", fmt="vdi")

    raw = vdir / "scattered.raw"
    with open(raw, "wb") as f:
        f.truncate(48 * MiB)
        for i, off in enumerate((0, 5 * MiB + 4096, 17 * MiB, 33 * MiB - 512, 47 * MiB)):
            f.seek(off)
            f.write(bytes([0x80 + i]) * 70000)
    out["converted"] = vdir / "converted.vdi"
    run("qemu-img", "convert", "-f", "raw", "-O", "vdi", raw, out["converted"])
    out["converted_static"] = vdir / "converted-static.vdi"
    run("qemu-img", "convert", "-f", "raw", "-O", "vdi", "-o", "static=on", raw,
        out["converted_static"])
    return out


def _assert_map_matches(img: Image, qmap: list[dict[str, Any]]) -> None:
    emap = img.extents()
    assert emap.check_complete()
    ours = [dict(e) for e in emap.to_qemu()]
    assert data_zero_runs(ours) == data_zero_runs(stored_not_zero(qmap))
    extents = list(emap)
    for q in qmap:
        if not q["data"]:
            continue
        start, end = int(q["start"]), int(q["start"]) + int(q["length"])
        for x in extents:
            if x.start < end and start < x.start + x.length:
                assert x.kind == "data" and x.host is not None
                assert x.host - x.start == int(q["offset"]) - int(q["start"])


# -- well-formed images: facts, map, bytes ----------------------------------------------
NAMES = ["empty", "dynamic", "static", "odd", "large", "converted", "converted_static"]


@pytest.mark.parametrize("name", NAMES)
def test_facts_match_qemu_img_info(images: dict[str, Path], name: str) -> None:
    path = images[name]
    info = qemu_info(path)
    raw_header = path.read_bytes()[:512]
    with imgscan.open(path) as img:
        assert img.format == info["format"] == "vdi"
        assert img.subformat == ("static" if "static" in name else "dynamic")
        assert img.virtual_size == info["virtual-size"]
        assert img.cluster_size == info["cluster-size"] == MiB
        assert img.backing_file is None and img.backing_format is None
        assert not img.encrypted and not img.dirty
        assert img.file_size == path.stat().st_size
        d = img.format_specific
        assert d["text"] == QEMU_TEXT.decode().rstrip("\n")
        assert d["version"] == "1.1"
        # qemu prints no UUIDs for vdi; its vdi.c swaps the first three fields of the
        # stored (little-endian IPRT) UUID to RFC 4122 order, as done here by hand.
        u = raw_header[UUID_IMAGE:UUID_IMAGE + 16]
        swapped = u[3::-1] + u[5:3:-1] + u[7:5:-1] + u[8:]
        assert d["uuid_image"].replace("-", "") == swapped.hex()
        assert d["uuid_link"] == d["uuid_parent"] == "00000000-0000-0000-0000-000000000000"
        ids = {f["id"] for f in img.info()["findings"]}
        assert not ids, img.info()["findings"]


@pytest.mark.parametrize("name", NAMES)
def test_map_matches_qemu_img_map(images: dict[str, Path], name: str) -> None:
    path = images[name]
    with imgscan.open(path) as img:
        _assert_map_matches(img, qemu_map(path))


@pytest.mark.parametrize("name", [n for n in NAMES if n != "large"])
def test_guest_bytes_match_qemu_convert(images: dict[str, Path], name: str,
                                        tmp_path: Path) -> None:
    path = images[name]
    with imgscan.open(path) as img:
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)


def test_large_sparse_image_windows(images: dict[str, Path], tmp_path: Path) -> None:
    path = images["large"]
    with imgscan.open(path) as img:
        assert img.virtual_size == 64 * GiB
        assert img.allocated_size == 3 * MiB
        for start in (0, 40 * GiB + 12345 * 512 - MiB // 2, 64 * GiB - MiB):
            assert img.read(start, MiB) == qemu_window("vdi", path, start, MiB, tmp_path)


@needs_corpus
def test_corpus_basic_vdi(tmp_path: Path) -> None:
    """dissect.hypervisor's basic.vdi (qemu-made): the facts FACTS.json records, qemu's bytes."""
    facts = corpus_facts()["dissect.hypervisor/vdi/basic.vdi.gz"]
    path = decompress(CORPUS / "dissect.hypervisor/vdi/basic.vdi.gz",
                      tmp_path / facts["decompressed_name"])
    expected = facts["qemu_img_info"]["json"]
    with imgscan.open(path) as img:
        assert img.format == expected["format"] == "vdi"
        assert img.virtual_size == expected["virtual-size"]
        assert img.cluster_size == expected["cluster-size"]
        assert img.dirty == expected["dirty-flag"]
        assert img.file_size == facts["size_bytes"]
        assert img.subformat == "dynamic"
        assert img.format_specific["version"] == "1.1"      # file(1): major 1, minor 1
        assert img.format_specific["text"] in facts["file"]["out"]
        _assert_map_matches(img, qemu_map(path))
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)


# -- images VirtualBox can make and qemu cannot ------------------------------------------
def _patched(tmp_path: Path, data: bytes | bytearray, *edits: tuple[int, str, int],
             name: str = "patched.vdi") -> Path:
    """``data`` with little-endian fields ``(offset, struct format, value)`` overwritten."""
    return patched(tmp_path, name, data, "<", *edits)


def _bmap_entry(data: bytes | bytearray, index: int) -> int:
    bmap: int = struct.unpack_from("<I", data, OFFSET_BMAP)[0]
    return bmap + 4 * index


def test_discarded_block_reads_zeros(images: dict[str, Path], tmp_path: Path) -> None:
    """0xfffffffe (VDI_DISCARDED) reads as zeros: qemu's map and bytes agree."""
    data = images["dynamic"].read_bytes()
    path = _patched(tmp_path, data, (_bmap_entry(data, 3), "I", DISCARDED))
    with imgscan.open(path) as img:
        assert [x.kind for x in img.extents() if x.start == 3 * MiB] == ["zero"]
        _assert_map_matches(img, qemu_map(path))
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)


def test_two_mib_blocks(images: dict[str, Path], tmp_path: Path) -> None:
    """A static image re-described with 2 MiB blocks holds the same guest bytes (qemu refuses)."""
    data = bytearray(images["static"].read_bytes())
    bmap = _bmap_entry(data, 0)
    for i in range(3):
        struct.pack_into("<I", data, bmap + 4 * i, i)
    path = _patched(tmp_path, data, (BLOCK_SIZE, "I", 2 * MiB), (BLOCKS_IN_IMAGE, "I", 3),
                    (BLOCKS_ALLOCATED, "I", 3))
    assert qemu_refuses(path, "vdi")
    with imgscan.open(path) as img:
        assert img.cluster_size == 2 * MiB
        findings = {f["id"]: f["message"] for f in img.info()["findings"]}
        assert "block size 2097152" in findings["unknown-feature"]
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(
            images["static"], tmp_path)


def test_block_extra_data_is_skipped(images: dict[str, Path], tmp_path: Path) -> None:
    """cbBlockExtra bytes lead every block (VirtualBox); the guest bytes are the original's."""
    data = images["static"].read_bytes()
    offset_data: int = struct.unpack_from("<I", data, OFFSET_DATA)[0]
    extra = 4096
    blocks = [data[offset_data + i * MiB:offset_data + (i + 1) * MiB] for i in range(6)]
    body = b"".join(b"\xee" * extra + block for block in blocks)
    path = _patched(tmp_path, data[:offset_data] + body, (BLOCK_EXTRA, "I", extra))
    with imgscan.open(path) as img:
        assert img.format_specific["block_extra"] == extra
        assert "unknown-feature" in {f["id"] for f in img.info()["findings"]}
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(
            images["static"], tmp_path)


def test_differencing_image_names_its_parent_by_uuid(images: dict[str, Path],
                                                     tmp_path: Path) -> None:
    data = images["dynamic"].read_bytes()
    parent = bytes(range(1, 17))
    buf = bytearray(data)
    buf[UUID_LINK:UUID_LINK + 16] = parent
    path = _patched(tmp_path, buf, (IMAGE_TYPE, "I", 4))
    assert qemu_refuses(path, "vdi")   # "unsupported VDI image (non-NULL link UUID)"
    with imgscan.open(path) as img:
        assert img.subformat == "differencing"
        assert img.backing_file is None
        assert img.format_specific["uuid_link"] == "04030201-0605-0807-090a-0b0c0d0e0f10"
        findings = {f["id"]: f for f in img.info()["findings"]}
        assert findings["backing-file"]["severity"] == "warning"
        assert "04030201-0605-0807-090a-0b0c0d0e0f10" in findings["backing-file"]["message"]
        # Unallocated blocks belong to the parent: not zero in the qemu-style map.
        kinds = {x.kind for x in img.extents()}
        assert kinds == {"data", "unallocated"}
        qmap = img.extents().to_qemu(has_backing=True)
        assert any(not e["present"] and e["depth"] == 1 for e in qmap)
        # Without the parent they read as zeros: the same bytes as the dynamic image.
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(
            images["dynamic"], tmp_path)


# -- malformed images ------------------------------------------------------------------
@pytest.fixture(scope="session")
def pristine(images: dict[str, Path]) -> bytes:
    return images["dynamic"].read_bytes()


def test_truncated_header_every_length(pristine: bytes, tmp_path: Path) -> None:
    path = tmp_path / "short.vdi"
    for length in range(HEADER1_END):
        path.write_bytes(pristine[:length])
        if length < len(QEMU_TEXT):
            # Nothing identifies a VDI yet: never claimed as one.
            with imgscan.open(path) as img:
                assert img.format == "raw"
            continue
        with pytest.raises(TruncatedImage, match="VDI header"):
            imgscan.open(path)


def test_truncated_block_map(pristine: bytes, tmp_path: Path) -> None:
    bmap_end = _bmap_entry(pristine, 20)
    for length in (HEADER1_END, 512, bmap_end - 1):
        path = tmp_path / f"cut-{length}.vdi"
        path.write_bytes(pristine[:length])
        with imgscan.open(path) as img:
            assert "truncated" in {f["id"] for f in img.info()["findings"]}
            with pytest.raises(TruncatedImage, match="VDI block map"):
                img.extents()


def test_bad_signature(pristine: bytes, tmp_path: Path) -> None:
    """qemu takes the file for raw; its VirtualBox text still names it a damaged VDI."""
    path = _patched(tmp_path, pristine, (SIGNATURE, "I", 0xBEDA1070))
    with pytest.raises(CorruptImage, match="signature"):
        imgscan.open(path)
    assert qemu_info(path)["format"] == "raw"
    text_gone = bytearray(pristine)
    text_gone[0:64] = bytes(64)
    path = _patched(tmp_path, text_gone, (SIGNATURE, "I", 0), name="gone.vdi")
    with imgscan.open(path) as img:
        assert img.format == "raw"


@pytest.mark.usefixtures("prompt")
@pytest.mark.parametrize(("offset", "fmt", "value", "error", "refused"), [
    (VERSION, "I", 0x00000002, UnsupportedFeature, True),   # version 0.2: another layout
    (VERSION, "I", 0x00020001, UnsupportedFeature, True),
    (HEADER_SIZE, "I", 0x17F, CorruptImage, False),         # qemu never reads the field
    (IMAGE_TYPE, "I", 0, UnsupportedFeature, False),        # qemu: a dynamic image
    (IMAGE_TYPE, "I", 5, UnsupportedFeature, False),
    (BLOCK_SIZE, "I", 0, CorruptImage, True),
    (BLOCK_SIZE, "I", 1000, CorruptImage, True),
    (BLOCK_SIZE, "I", 1 << 31, LimitExceeded, True),
    (BLOCK_EXTRA, "I", 3, CorruptImage, False),             # qemu ignores block extra data
    (BLOCK_EXTRA, "I", 1 << 30, LimitExceeded, False),
    (BLOCKS_IN_IMAGE, "I", 19, CorruptImage, True),         # 20 MiB need 20 blocks
    (BLOCKS_IN_IMAGE, "I", 0xFFFFFFFF, LimitExceeded, True),
    (DISK_SIZE, "Q", 1 << 60, LimitExceeded, True),
    (DISK_SIZE, "Q", 21 * MiB, CorruptImage, True),
    (OFFSET_BMAP, "I", 0x100, CorruptImage, True),          # inside the header
    (OFFSET_DATA, "I", 0x200, CorruptImage, False),         # inside the block map
])
def test_bad_header_fields(pristine: bytes, tmp_path: Path, offset: int, fmt: str, value: int,
                           error: type[ImageError], refused: bool) -> None:
    path = _patched(tmp_path, pristine, (offset, fmt, value))
    with pytest.raises(error, match=str(path)):
        imgscan.open(path)
    assert qemu_refuses(path, "vdi") == refused


def test_minor_version_is_read_with_a_finding(pristine: bytes, tmp_path: Path) -> None:
    path = _patched(tmp_path, pristine, (VERSION, "I", 0x00010002))
    assert qemu_refuses(path, "vdi")
    with imgscan.open(path) as img:
        assert img.format_specific["version"] == "1.2"
        assert "unknown-feature" in {f["id"] for f in img.info()["findings"]}


def test_odd_disk_size_rounds_up_as_qemu(pristine: bytes, tmp_path: Path) -> None:
    path = _patched(tmp_path, pristine, (DISK_SIZE, "Q", 20 * MiB - 700))
    with imgscan.open(path) as img:
        assert img.virtual_size == qemu_info(path)["virtual-size"] == 20 * MiB - 512
        assert "size-mismatch" in {f["id"] for f in img.info()["findings"]}
        _assert_map_matches(img, qemu_map(path))


@pytest.mark.usefixtures("prompt")
def test_block_map_past_eof(pristine: bytes, tmp_path: Path) -> None:
    path = _patched(tmp_path, pristine, (OFFSET_BMAP, "I", len(pristine) + 4096),
                    (OFFSET_DATA, "I", len(pristine) + 8192))
    with imgscan.open(path) as img:
        assert "truncated" in {f["id"] for f in img.info()["findings"]}
        with pytest.raises(TruncatedImage, match="VDI block map"):
            img.extents()


@pytest.mark.usefixtures("prompt")
def test_block_index_out_of_range(pristine: bytes, tmp_path: Path) -> None:
    """qemu-img check calls it 'block index too large'; imgscan refuses to map it."""
    path = _patched(tmp_path, pristine, (_bmap_entry(pristine, 0), "I", 20))
    with imgscan.open(path) as img, pytest.raises(CorruptImage, match="block index 20"):
        img.extents()
    with pytest.raises(AssertionError):
        run("qemu-img", "check", path)


def test_duplicate_block_index(pristine: bytes, tmp_path: Path) -> None:
    """Two guest blocks sharing one data block: a finding; bytes read as qemu reads them."""
    used: int = struct.unpack_from("<I", pristine, _bmap_entry(pristine, 0))[0]
    assert used != UNALLOCATED
    path = _patched(tmp_path, pristine, (_bmap_entry(pristine, 9), "I", used))
    with imgscan.open(path) as img:
        corrupt = [f["message"] for f in img.info()["findings"] if f["id"] == "corrupt"]
        assert any("entry 9 (block" in m for m in corrupt)
        assert img.read(9 * MiB, MiB) == img.read(0, MiB)
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)
    with pytest.raises(AssertionError):
        run("qemu-img", "check", path)


def test_data_block_past_eof_reads_zeros(images: dict[str, Path], tmp_path: Path) -> None:
    data = images["static"].read_bytes()
    path = tmp_path / "cut.vdi"
    path.write_bytes(data[:len(data) - 3 * MiB - 1000])
    with imgscan.open(path) as img:
        findings = {f["id"]: f["message"] for f in img.info()["findings"]}
        assert "guest block 2" in findings["truncated"]
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, tmp_path)


def test_extent_limit(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from imgscan import limits

    monkeypatch.setattr(limits, "MAX_EXTENTS", 2)
    with imgscan.open(images["dynamic"]) as img, pytest.raises(LimitExceeded, match="MAX_EXTENTS"):
        img.extents()


def test_blocks_cap_boundary(pristine: bytes, tmp_path: Path) -> None:
    """limits.VDI_MAX_BLOCKS: at the cap the header is accepted, one more block is not."""
    from imgscan import limits

    cap = limits.VDI_MAX_BLOCKS
    path = _patched(tmp_path, pristine, (BLOCKS_IN_IMAGE, "I", cap),
                    (OFFSET_DATA, "I", 512 + 4 * cap))
    with imgscan.open(path) as img:
        assert "truncated" in {f["id"] for f in img.info()["findings"]}
    path = _patched(tmp_path, pristine, (BLOCKS_IN_IMAGE, "I", cap + 1),
                    (OFFSET_DATA, "I", 512 + 4 * cap + 4), name="over.vdi")
    with pytest.raises(LimitExceeded, match="VDI_MAX_BLOCKS"):
        imgscan.open(path)

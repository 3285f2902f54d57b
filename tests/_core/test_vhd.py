"""VHD (qemu "vpc"): imgscan against qemu-img on images qemu made and on real ones.

Every expected value comes from qemu-img / qemu-io run on the same file, from
the corpus facts (FACTS.json, recorded with qemu-img 7.2 and file(1)), or, for
the hand-corrupted images, from the spec: imgscan is never its own oracle.
"""

from __future__ import annotations

import calendar
import re
import shutil
import struct
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from helpers import GiB, MiB, decompress, open_promptly, promptly, unpacked_name, write_file
from helpers.patchers import (
    vhd_refresh_footer_checksums,
    vhd_refresh_header_checksum,
    vhd_set_footers,
)
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
    run,
    sha256_stream,
)

import imgscan
from imgscan.errors import (
    CorruptImage,
    ImageError,
    LimitExceeded,
    TruncatedImage,
    UnsupportedFeature,
)

_vhd_io = partial(qemu_io, fmt="vpc")
_write = partial(write_file, name="bad.vhd")

# Spec offsets used to corrupt images (Hard Disk Footer / Dynamic Disk Header).
F_DATA_OFFSET, F_TIMESTAMP, F_DISK_TYPE, F_CHECKSUM, F_UNIQUE_ID = 16, 24, 60, 64, 68
H_TABLE_OFFSET, H_MAX_ENTRIES, H_BLOCK_SIZE, H_CHECKSUM = 16, 28, 32, 36
H_PARENT_UNIQUE_ID = 40
H_PARENT_NAME = 64
H_LOCATORS = 576


def _put(buf: bytearray, off: int, fmt: str, value: int) -> None:
    struct.pack_into(fmt, buf, off, value)


# --------------------------------------------------------------------------
# Images made by qemu-img / qemu-io
# --------------------------------------------------------------------------

def _make_pattern_raw(path: Path) -> None:
    """A 3 MiB raw file with data, explicit zeros and holes."""
    with open(path, "wb") as f:
        f.truncate(3 * MiB)
        for off, byte, n in ((0, 0x5A, 4096), (1536 * 1024, 0xA5, 70000),
                             (2900 * 1024, 0x3C, 8192), (2 * MiB, 0x00, 65536)):
            f.seek(off)
            f.write(bytes([byte]) * n)


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    d = tmp_path_factory.mktemp("vhd_made")
    out: dict[str, Path] = {}

    def create(name: str, size: str, opts: str) -> Path:
        p = d / f"{name}.vhd"
        run("qemu-img", "create", "-q", "-f", "vpc", "-o", opts, p, size)
        out[name] = p
        return p

    for kind in ("dynamic", "fixed"):
        p = create(f"{kind}-1m", "1M", f"subformat={kind}")
        _vhd_io(p, "write -P 0x5a 0 4k", "write -P 0x5b 300k 64k", "write -z 700k 8k",
                "write -P 0x5c 1000k 24k")
        p = create(f"{kind}-odd", "10000000", f"subformat={kind}")
        vsize = int(qemu_info(p, "vpc")["virtual-size"])
        _vhd_io(p, "write -P 0x5a 512 1536", "write -P 0x5d 4M 100k",
                f"write -P 0x5e {vsize - 4096} 4096")
        p = create(f"{kind}-force", "5000000", f"subformat={kind},force_size=on")
        _vhd_io(p, "write -P 0x5a 2M 4k", "write -P 0x5f 4999680 320")
    p = create("dynamic-127g", "127G", "subformat=dynamic")
    vsize = int(qemu_info(p, "vpc")["virtual-size"])
    _vhd_io(p, "write -P 0x5a 0 4k", f"write -P 0x5a {64 * GiB + 512} 4k",
            f"write -P 0x5a {vsize - 8192} 8k")
    raw = d / "pattern.raw"
    _make_pattern_raw(raw)
    for kind in ("dynamic", "fixed"):
        p = d / f"convert-{kind}.vhd"
        run("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", f"subformat={kind}", raw, p)
        out[f"convert-{kind}"] = p
    return out


MADE = ["dynamic-1m", "fixed-1m", "dynamic-odd", "fixed-odd", "dynamic-force",
        "fixed-force", "dynamic-127g", "convert-dynamic", "convert-fixed"]


@needs_qemu
@pytest.mark.parametrize("name", MADE)
def test_made_facts_match_qemu(made: dict[str, Path], name: str) -> None:
    path = made[name]
    qi = qemu_info(path, "vpc")
    with imgscan.open(path) as im:
        assert im.format == "vhd"
        assert qi["format"] == "vpc"
        assert im.virtual_size == qi["virtual-size"]
        assert im.cluster_size == qi.get("cluster-size")
        assert im.subformat == ("fixed" if "fixed" in name else "dynamic")
        fs = im.format_specific
        assert fs["creator_application"] == ("qem2" if "force" in name else "qemu")
        assert fs["size_source"] == ("current_size" if "force" in name else "chs")
        assert im.backing_file is None
        assert not [f for f in im.findings if f.severity != "info"], im.findings


@needs_qemu
@pytest.mark.parametrize("name", MADE)
def test_made_map_matches_qemu(made: dict[str, Path], name: str) -> None:
    path = made[name]
    with imgscan.open(path) as im:
        emap = im.extents()
        assert emap.check_complete()
        assert data_zero_runs(emap.to_qemu()) == _qemu_runs(path, im.subformat)


def _qemu_runs(path: Path, subformat: str | None) -> list[tuple[int, int, bool, bool]]:
    """qemu's map as runs; for a fixed VHD qemu calls the host file's holes "data" and
    "zero" at once (allocated by the format, a hole in the file): imgscan calls them zero."""
    entries = qemu_map(path, "vpc")
    if subformat == "fixed":
        for e in entries:
            if e["zero"]:
                e["data"] = False
    return data_zero_runs(entries)


@needs_qemu
@pytest.mark.parametrize("name", [n for n in MADE if n != "dynamic-127g"])
def test_made_bytes_match_qemu_convert(made: dict[str, Path], name: str,
                                       tmp_path: Path) -> None:
    path = made[name]
    with imgscan.open(path) as im:
        ours = sha256_stream(im.read, im.virtual_size)
    assert ours == qemu_raw_sha256(path, tmp_path, "vpc")


@needs_qemu
def test_made_127g_reads_what_qemu_io_verifies(made: dict[str, Path]) -> None:
    path = made["dynamic-127g"]
    vsize = int(qemu_info(path, "vpc")["virtual-size"])
    checks = [(0, 4096, 0x5A), (64 * GiB + 512, 4096, 0x5A), (vsize - 8192, 8192, 0x5A),
              (4096, 4096, 0), (100 * GiB, 65536, 0)]
    with imgscan.open(path) as im:
        for off, n, byte in checks:
            out = subprocess.run(["qemu-io", "-f", "vpc", "-c", f"read -P {byte} {off} {n}",
                                  str(path)], capture_output=True, text=True, check=True)
            assert "failed" not in out.stdout + out.stderr
            assert im.read(off, n) == bytes([byte]) * n


@needs_qemu
def test_fixed_vhd_is_detected_by_its_footer(made: dict[str, Path]) -> None:
    # qemu probes a fixed VHD as raw; imgscan detects the footer at the end.
    path = made["fixed-1m"]
    assert qemu_info(path)["format"] == "raw"
    with imgscan.open(path) as im:
        assert im.format == "vhd"
        assert im.format_specific["footer_offset"] == path.stat().st_size - 512


# --------------------------------------------------------------------------
# Real images (corpus)
# --------------------------------------------------------------------------

CORPUS_VHDS = [
    "qemu-iotests/hyperv2012r2-dynamic.vhd.bz2",
    "qemu-iotests/virtualpc-dynamic.vhd.bz2",
    "qemu-iotests/d2v-zerofilled.vhd.bz2",
    "dissect.hypervisor/vhd/dynamic.vhd.gz",
    "dissect.hypervisor/vhd/fixed.vhd.gz",
    "dfvfs/fat-differential.vhd",
    "dfvfs/image.vhd",
    "dfvfs/image-differential.vhd",
]


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} is absent")
    d = tmp_path_factory.mktemp("vhd_corpus")
    for rel in [*CORPUS_VHDS, "qemu-iotests/afl5.img.bz2"]:
        decompress(CORPUS / rel, d / unpacked_name(CORPUS / rel))
    return d


def _expected(fact: dict[str, Any]) -> dict[str, Any]:
    """qemu's virtual size / cluster size (forced -f vpc when it probed raw), file's creator."""
    info = fact.get("qemu_img_info_forced") or fact["qemu_img_info"]
    out: dict[str, Any] = {}
    if "json" in info:
        out["virtual_size"] = info["json"]["virtual-size"]
        out["cluster_size"] = info["json"].get("cluster-size")
        out["qemu_reads"] = True
    else:
        out["qemu_reads"] = False
    desc = fact["file"]["out"]
    m = re.search(r"Creator (.{4}) ([0-9a-f]+)\.([0-9a-f]+) \((\w+)\)[^,]*, (\d+) bytes, "
                  r"CHS (\d+)/(\d+)/(\d+)(, type 0x(\d))?", desc)
    if m:
        out["creator"] = m.group(1)
        out["creator_version"] = f"{int(m.group(2), 16)}.{int(m.group(3), 16)}"
        out["current_size"] = int(m.group(5))
        out["chs"] = tuple(int(m.group(i)) for i in (6, 7, 8))
        out["subformat"] = "differencing" if m.group(10) == "4" else "dynamic"
    else:
        out["subformat"] = "fixed"   # no copy at offset 0: file(1) sees the guest's MBR
    return out


@needs_corpus
@pytest.mark.parametrize("rel", CORPUS_VHDS)
def test_corpus_facts(corpus_dir: Path, rel: str) -> None:
    fact = corpus_facts()[rel]
    exp = _expected(fact)
    path = corpus_dir / fact["decompressed_name"]
    with imgscan.open(path) as im:
        assert im.format == "vhd"
        assert im.subformat == exp["subformat"]
        fs = im.format_specific
        if "creator" in exp:
            # file(1) prints a NUL as a space (Disk2vhd writes "d2v\0")
            assert fs["creator_application"].rstrip() == exp["creator"].rstrip()
            assert fs["creator_version"] == exp["creator_version"]
            assert fs["current_size"] == exp["current_size"]
            geo = fs["disk_geometry"]
            assert (geo["cylinders"], geo["heads"], geo["sectors_per_track"]) == exp["chs"]
        if exp["qemu_reads"]:
            assert im.virtual_size == exp["virtual_size"]
            assert im.cluster_size == exp["cluster_size"]
            assert not [f for f in im.findings if f.id == "corrupt"]
        else:
            # qemu-img refuses these ("Incorrect header checksum"); imgscan flags and reads on.
            assert "Incorrect header checksum" in fact["qemu_img_info"]["err"]
            assert any(f.id == "corrupt" for f in im.findings)
            assert im.virtual_size == exp["current_size"]
        if im.subformat == "differencing":
            assert im.backing_file in fact["utf16_strings_naming_vhd"]["out"]
            assert any(f.id == "backing-file" for f in im.findings)
        else:
            assert im.backing_file is None


@needs_corpus
def test_corpus_size_rule_differs_by_creator(corpus_dir: Path) -> None:
    # Same footer sizes, different creators: qemu's CHS-vs-current_size rule.
    with imgscan.open(corpus_dir / "hyperv2012r2-dynamic.vhd") as hv, \
            imgscan.open(corpus_dir / "virtualpc-dynamic.vhd") as vpc:
        assert hv.format_specific["current_size"] == vpc.format_specific["current_size"]
        assert (hv.virtual_size, vpc.virtual_size) == (136365211648, 136363130880)
        assert hv.format_specific["size_source"] == "current_size"
        assert vpc.format_specific["size_source"] == "chs"
        for im in (hv, vpc):
            assert any(f.id == "size-mismatch" for f in im.findings)


@needs_qemu
@needs_corpus
@pytest.mark.parametrize("rel", [r for r in CORPUS_VHDS if "dfvfs/image" not in r])
def test_corpus_matches_qemu(corpus_dir: Path, rel: str, tmp_path: Path) -> None:
    path = corpus_dir / corpus_facts()[rel]["decompressed_name"]
    qi = qemu_info(path, "vpc")
    with imgscan.open(path) as im:
        assert im.virtual_size == qi["virtual-size"]
        assert im.cluster_size == qi.get("cluster-size")
        if im.subformat != "differencing":
            # qemu reads a differencing disk as a dynamic one and ignores the
            # sector bitmaps, so only its bytes (not its map) can agree.
            assert data_zero_runs(im.extents().to_qemu()) == _qemu_runs(path, im.subformat)
        if im.virtual_size <= GiB:
            ours = sha256_stream(im.read, im.virtual_size)
            assert ours == qemu_raw_sha256(path, tmp_path, "vpc")


def _fixed_checksums_copy(src: Path, dest: Path) -> Path:
    buf = bytearray(src.read_bytes())
    vhd_refresh_footer_checksums(buf)
    hdr = struct.unpack_from(">Q", buf, F_DATA_OFFSET)[0]
    vhd_refresh_header_checksum(buf, hdr)
    dest.write_bytes(bytes(buf))
    return dest


@needs_qemu
@needs_corpus
def test_corpus_differencing_reads_through_parent(corpus_dir: Path, tmp_path: Path) -> None:
    # image-differential.vhd names image.vhd as its parent; qemu refuses both
    # (bad checksums), so the oracle is qemu's convert of checksum-repaired copies.
    child = corpus_dir / "image-differential.vhd"
    parent = corpus_dir / "image.vhd"
    parent_sha = qemu_raw_sha256(_fixed_checksums_copy(parent, tmp_path / "p.vhd"),
                                 tmp_path, "vpc")
    child_sha = qemu_raw_sha256(_fixed_checksums_copy(child, tmp_path / "c.vhd"),
                                tmp_path, "vpc")
    with imgscan.open(child, external_dir=str(corpus_dir)) as im:
        assert im.backing_file == "image.vhd"
        got = sha256_stream(im.read, im.virtual_size)
    # every sector of its one block is marked present in the child, which holds
    # the parent's bytes: both oracles agree with it
    assert got == child_sha == parent_sha


@needs_corpus
def test_corpus_afl5_rejected(corpus_dir: Path) -> None:
    with promptly(2), pytest.raises(LimitExceeded, match="max table entries"):
        imgscan.open(corpus_dir / "afl5.img")


# --------------------------------------------------------------------------
# A differencing chain built from qemu-made images
# --------------------------------------------------------------------------

@needs_qemu
def test_differencing_bitmap_decides_per_sector(tmp_path: Path) -> None:
    parent = tmp_path / "parent.vhd"
    child = tmp_path / "child.vhd"
    for p in (parent, child):
        run("qemu-img", "create", "-q", "-f", "vpc", p, "4M")
    _vhd_io(parent, "write -P 0x11 0 4M")
    _vhd_io(child, "write -P 0x22 0 64k", "write -P 0x33 3M 8k")
    parent_raw = tmp_path / "parent.raw"
    child_raw = tmp_path / "child.raw"
    run("qemu-img", "convert", "-f", "vpc", "-O", "raw", parent, parent_raw)
    run("qemu-img", "convert", "-f", "vpc", "-O", "raw", child, child_raw)
    # Make the child a differencing disk (spec: disk type 4, parent name in
    # UTF-16BE) and clear bitmap bits: sectors 0-7 and 128.. of block 0 and
    # every other sector of 3M..3M+8k then come from the parent.
    buf = bytearray(child.read_bytes())
    hdr = struct.unpack_from(">Q", buf, F_DATA_OFFSET)[0]
    name = "parent.vhd".encode("utf-16-be")
    buf[hdr + H_PARENT_NAME:hdr + H_PARENT_NAME + len(name)] = name
    vhd_refresh_header_checksum(buf, hdr)
    vhd_set_footers(buf, F_DISK_TYPE, ">I", 4)
    bat = struct.unpack_from(">Q", buf, hdr + H_TABLE_OFFSET)[0]
    from_parent: set[int] = set()
    for block, sectors in ((0, list(range(8)) + list(range(128, 4096))),
                           (1, [2048 + 2 * i for i in range(8)])):
        bitmap = struct.unpack_from(">I", buf, bat + 4 * block)[0] * 512
        for s in sectors:
            buf[bitmap + s // 8] &= ~(0x80 >> (s % 8)) & 0xFF
            from_parent.add(block * 4096 + s)
    child.write_bytes(bytes(buf))

    praw, craw = parent_raw.read_bytes(), child_raw.read_bytes()
    with imgscan.open(child, external_dir=str(tmp_path)) as im:
        assert im.subformat == "differencing"
        assert im.backing_file == "parent.vhd"
        size = im.virtual_size
        got = im.read(0, size)
        runs = [(e.start, e.length, e.kind) for e in im.extents()]
    assert size == len(praw) == len(craw)
    # unallocated blocks of the child read from the parent, too
    bat_entries = [struct.unpack_from(">I", buf, bat + 4 * b)[0] for b in range(2)]
    assert bat_entries[0] != 0xFFFFFFFF and bat_entries[1] != 0xFFFFFFFF
    for sector in range(size // 512):
        own = sector not in from_parent
        want = (craw if own else praw)[sector * 512:(sector + 1) * 512]
        assert got[sector * 512:(sector + 1) * 512] == want, sector
    assert runs[:3] == [(0, 4096, "unallocated"), (4096, 61440, "data"),
                        (65536, 2 * MiB - 65536, "unallocated")]
    # without external_dir, the parent's sectors read as zeros
    with imgscan.open(child) as im:
        assert im.read(0, 4096) == bytes(4096)
        assert im.read(4096, 4096) == b"\x22" * 4096


# --------------------------------------------------------------------------
# Malformed images: a qemu-made VHD with fields corrupted
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def base_dynamic(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    p = tmp_path_factory.mktemp("vhd_bad") / "base.vhd"
    run("qemu-img", "create", "-q", "-f", "vpc", p, "8M")
    _vhd_io(p, "write -P 0x5a 0 64k", "write -P 0x5b 6M 64k")
    return p.read_bytes()


@pytest.fixture(scope="session")
def base_fixed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    p = tmp_path_factory.mktemp("vhd_bad") / "basefixed.vhd"
    run("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed", p, "1M")
    _vhd_io(p, "write -P 0x5a 0 1M")
    return p.read_bytes()


def _hdr(buf: bytes | bytearray) -> int:
    return int(struct.unpack_from(">Q", buf, F_DATA_OFFSET)[0])


def _edit_header(buf: bytearray, off: int, fmt: str, value: int) -> bytearray:
    hdr = _hdr(buf)
    _put(buf, hdr + off, fmt, value)
    vhd_refresh_header_checksum(buf, hdr)
    return buf


@needs_qemu
@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("short-footer-copy", TruncatedImage, "footer"),
        ("data-offset-past-eof", TruncatedImage, "dynamic disk header"),
        ("header-cookie", CorruptImage, "cxsparse"),
        ("table-offset-past-eof", TruncatedImage, "block allocation table"),
        ("block-size-0", CorruptImage, "block size"),
        ("block-size-3000", CorruptImage, "block size"),
        ("block-size-huge", LimitExceeded, "VHD_MAX_BLOCK_SIZE"),
        ("max-entries-huge", LimitExceeded, "VHD_MAX_BAT_ENTRIES"),
        ("max-entries-small", CorruptImage, "cannot hold"),
        ("disk-type-7", UnsupportedFeature, "disk type 7"),
        ("size-over-2040g", LimitExceeded, "VHD_MAX_VIRTUAL_SIZE"),
    ],
)
def test_malformed_raises(base_dynamic: bytes, tmp_path: Path, case: str,
                          error: type[ImageError], match: str) -> None:
    buf = bytearray(base_dynamic)
    if case == "short-footer-copy":
        buf = buf[:300]
    elif case == "data-offset-past-eof":
        vhd_set_footers(buf, F_DATA_OFFSET, ">Q", len(buf) + 4096)
    elif case == "header-cookie":
        buf[_hdr(buf):_hdr(buf) + 8] = b"cxspars3"
    elif case == "table-offset-past-eof":
        _edit_header(buf, H_TABLE_OFFSET, ">Q", len(buf) - 16)
    elif case == "block-size-0":
        _edit_header(buf, H_BLOCK_SIZE, ">I", 0)
    elif case == "block-size-3000":
        _edit_header(buf, H_BLOCK_SIZE, ">I", 3000)
    elif case == "block-size-huge":
        _edit_header(buf, H_BLOCK_SIZE, ">I", 1 << 31)
    elif case == "max-entries-huge":
        _edit_header(buf, H_MAX_ENTRIES, ">I", 0x40000001)
    elif case == "max-entries-small":
        _edit_header(buf, H_MAX_ENTRIES, ">I", 1)
    elif case == "disk-type-7":
        vhd_set_footers(buf, F_DISK_TYPE, ">I", 7)
    elif case == "size-over-2040g":
        vhd_set_footers(buf, 28, ">I", int.from_bytes(b"qem2", "big"))  # creator application
        vhd_set_footers(buf, 48, ">Q", 3 << 40)                          # current size
    path = _write(tmp_path, buf)
    with promptly(2), pytest.raises(error, match=match) as exc:
        imgscan.open(path).info()
    assert str(path) in str(exc.value)


@needs_qemu
def test_ids_read_as_rfc_4122_text(base_dynamic: bytes, tmp_path: Path) -> None:
    """The footer's unique id (qemu's, random) and a parent unique id written into the
    dynamic header, formatted in C, read as Python's uuid module reads the same bytes."""
    import uuid

    buf = bytearray(base_dynamic)
    parent = bytes(range(0xF0, 0x100))          # every byte's both hex digits differ
    hdr = _hdr(buf)
    buf[hdr + H_PARENT_UNIQUE_ID:hdr + H_PARENT_UNIQUE_ID + 16] = parent
    vhd_refresh_header_checksum(buf, hdr)
    with open_promptly(_write(tmp_path, buf)) as im:
        details = im.format_specific
    assert details["unique_id"] == str(uuid.UUID(bytes=bytes(buf[F_UNIQUE_ID:F_UNIQUE_ID + 16])))
    assert details["parent_unique_id"] == str(uuid.UUID(bytes=parent))
    assert not im.findings


@needs_qemu
def test_utf16_names_odd_lengths_and_nul(base_dynamic: bytes, tmp_path: Path) -> None:
    """The parent name (UTF-16BE) and a W2ku locator path (UTF-16LE) read up to their NUL;
    a locator whose data length is odd (hostile: no writer makes one) loses its last byte
    rather than failing the decode."""
    buf = bytearray(base_dynamic)
    hdr = _hdr(buf)
    name = "Päränt.vhd".encode("utf-16-be")
    buf[hdr + H_PARENT_NAME:hdr + H_PARENT_NAME + len(name)] = name
    data_at = hdr + 800                          # the header's reserved tail
    buf[data_at:data_at + 7] = "C:\\".encode("utf-16-le") + b"x"
    struct.pack_into(">4sIIIQ", buf, hdr + H_LOCATORS, b"W2ku", 512, 7, 0, data_at)
    vhd_refresh_header_checksum(buf, hdr)
    with open_promptly(_write(tmp_path, buf)) as im:
        details = im.format_specific
    assert details["parent_unicode_name"] == "Päränt.vhd"
    [locator] = details["parent_locators"]
    assert (locator["platform"], locator["data_length"], locator["path"]) == ("W2ku", 7, "C:\\")


@needs_qemu
def test_bad_checksums_are_findings(base_dynamic: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_dynamic)
    for base in (0, len(buf) - 512):
        buf[base + F_CHECKSUM + 3] ^= 0x01
    buf[_hdr(buf) + H_CHECKSUM + 3] ^= 0x01
    path = _write(tmp_path, buf)
    # qemu 7.2 refuses the image; imgscan reports and reads on
    proc = subprocess.run(["qemu-img", "info", "-f", "vpc", str(path)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0 and "checksum" in proc.stderr
    with open_promptly(path) as im:
        corrupt = [f for f in im.findings if f.id == "corrupt"]
        assert len(corrupt) == 3
        # the footer checksums make qemu refuse the image: errors; the dynamic
        # header's is not checked by qemu: a warning
        assert sorted(f.severity for f in corrupt) == ["error", "error", "warning"]
        assert im.read(0, 65536) == b"\x5a" * 65536


@needs_qemu
def test_footer_copies_differ(base_dynamic: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_dynamic)
    tail = len(buf) - 512
    _put(buf, tail + F_TIMESTAMP, ">I", 12345)
    vhd_refresh_footer_checksums(buf)
    with open_promptly(_write(tmp_path, buf)) as im:
        mism = [f for f in im.findings if f.id == "footer-mismatch"]
        assert len(mism) == 1 and "timestamp" in mism[0].message
        assert mism[0].severity == "warning"
        assert im.format_specific["footer_offset"] == 0


@needs_qemu
def test_missing_end_footer_uses_copy(base_dynamic: bytes, tmp_path: Path) -> None:
    path = _write(tmp_path, base_dynamic[:-512])
    qi = qemu_info(path, "vpc")       # qemu opens it from the copy at offset 0 too
    with open_promptly(path) as im:
        assert im.virtual_size == qi["virtual-size"]
        assert any(f.id == "truncated" for f in im.findings)
        assert im.read(6 * MiB, 65536) == b"\x5b" * 65536


@needs_qemu
def test_missing_footer_copy_uses_end_footer(base_dynamic: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_dynamic)
    buf[0:512] = bytes(512)
    with open_promptly(_write(tmp_path, buf)) as im:
        assert im.format == "vhd" and im.subformat == "dynamic"
        assert any(f.id == "footer-mismatch" for f in im.findings)
        assert im.read(0, 65536) == b"\x5a" * 65536


@needs_qemu
def test_block_past_eof_reads_zeros(base_dynamic: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_dynamic)
    bat = int(struct.unpack_from(">Q", buf, _hdr(buf) + H_TABLE_OFFSET)[0])
    _put(buf, bat + 4 * 3, ">I", 0x7FFFFFF0)     # block 3 (6M..8M) far past EOF
    path = _write(tmp_path, buf)
    proc = subprocess.run(["qemu-img", "info", "-f", "vpc", str(path)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0 and "truncated" in proc.stderr
    with open_promptly(path) as im:
        trunc = [f for f in im.findings if f.id == "truncated"]
        assert len(trunc) == 1 and "block 3" in trunc[0].message
        assert im.read(6 * MiB, 65536) == bytes(65536)
        assert im.read(0, 65536) == b"\x5a" * 65536


@needs_qemu
def test_fixed_shorter_than_its_size(base_fixed: bytes, tmp_path: Path) -> None:
    data, footer = base_fixed[:-512], base_fixed[-512:]
    path = _write(tmp_path, data[:-8192] + footer)
    qi = qemu_info(path, "vpc")
    with open_promptly(path) as im:
        assert im.virtual_size == qi["virtual-size"]
        assert any(f.id == "truncated" for f in im.findings)
        # qemu reads a fixed VHD as raw: the footer, then zeros, past the data
        assert sha256_stream(im.read, im.virtual_size) == qemu_raw_sha256(path, tmp_path, "vpc")


@needs_qemu
def test_old_511_byte_footer(base_fixed: bytes, tmp_path: Path) -> None:
    # Virtual PC before 2004 wrote a 511-byte footer (spec); the data area ends
    # where it starts.
    path = _write(tmp_path, base_fixed[:-1])
    with open_promptly(path) as im:
        assert im.format == "vhd" and im.subformat == "fixed"
        assert im.format_specific["footer_length"] == 511
        assert im.read(0, 4096) == b"\x5a" * 4096


def test_not_vhd_is_raw(tmp_path: Path) -> None:
    p = tmp_path / "plain.img"
    p.write_bytes(b"connectix" + bytes(2048))
    with imgscan.open(p) as im:
        assert im.format == "raw"


def test_timestamp_matches_gmtime() -> None:
    """The footer's and dynamic header's times, computed in C, read as time.strftime of
    time.gmtime reads them: the epoch, both ends of the 32-bit range, leap days (2000,
    2004; not 2100) and the turn of every month and year in between, sampled."""
    import time

    from imgscan._core.c_vhd import VHD_EPOCH_UNIX
    from imgscan._core.vhd import vhd_timestamp

    def reference(seconds: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(VHD_EPOCH_UNIX + seconds))

    def at(*date: int) -> int:
        return calendar.timegm((*date, 0, 0, 0)) - VHD_EPOCH_UNIX

    samples = {0, 1, 59, 60, 3599, 3600, 86399, 86400, 2**31 - 1, 2**31, 2**32 - 1,
               at(2000, 2, 29), at(2004, 2, 29), at(2100, 2, 28), at(2100, 3, 1)}
    samples.update(range(0, 2**32, 2**32 // 50000))
    samples.update(s + d for s in range(0, 2**32 - 86400, 86400 * 27) for d in (0, 86399))
    for seconds in samples:
        assert vhd_timestamp(seconds) == reference(seconds), seconds

"""qcow2: facts, maps and guest bytes against qemu-img, plus hostile headers.

Every image is made by qemu-img / qemu-io (session-scoped, small and sparse);
malformed ones start from such an image with single fields overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard
from helpers import (
    GiB,
    KiB,
    MiB,
    TiB,
    copy_of,
    decompress,
    overwrite,
    promptly,
    run_keyed,
    sparse_copy,
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
    sha256_file,
    sha256_stream,
    stored_not_zero,
)

import imgscan

SECRET = "secret,id=sec0,data=pw"


def scattered(size: int) -> list[str]:
    """qemu-io commands leaving data, zeros and holes at unaligned places."""
    q = size // 8 // 512 * 512
    return [
        "write -P 0x11 0 4k",
        f"write -P 0x22 {q + 512} {q // 2}",
        f"write -z {3 * q} {q}",
        f"write -P 0x33 {3 * q + 4096} 4096",
        f"write -z {5 * q} {q // 4}",
        f"write -P 0x44 {size - 3072} 3072",
    ]


@dataclass
class Made:
    path: Path
    encrypted: bool = False


def _create(path: Path, size: int | str, *opts: str, objects: tuple[str, ...] = ()) -> None:
    args: list[str] = ["qemu-img", "create", "-q", "-f", "qcow2"]
    for obj in objects:
        args += ["--object", obj]
    if opts:
        args += ["-o", ",".join(opts)]
    run_keyed(lambda _: [*args, path, str(size)], cwd=path.parent)


def _build(root: Path) -> dict[str, Made]:
    made: dict[str, Made] = {}

    def plain(name: str, size: int, *opts: str) -> Path:
        path = root / f"{name}.qcow2"
        _create(path, size, *opts)
        qemu_io(path, *scattered(size))
        made[name] = Made(path)
        return path

    plain("v2", 4 * MiB, "compat=0.10")
    plain("v3", 4 * MiB, "compat=1.1")
    plain("c512", 1 * MiB, "cluster_size=512")
    plain("c4k", 4 * MiB, "cluster_size=4096")
    plain("c2m", 16 * MiB, "cluster_size=2M")
    plain("extl2", 4 * MiB, "extended_l2=on")
    plain("extl2_32k", 2 * MiB, "extended_l2=on", "cluster_size=32k")
    plain("lazy", 4 * MiB, "lazy_refcounts=on")
    plain("odd", MiB + 512)
    plain("prealloc_metadata", 4 * MiB, "preallocation=metadata")
    plain("prealloc_full", 4 * MiB, "preallocation=full")
    plain("prealloc_v2_metadata", 4 * MiB, "compat=0.10", "preallocation=metadata")

    # Not closed cleanly: lazy refcounts keep the dirty bit until a clean close.
    dirty = root / "dirty.qcow2"
    _create(dirty, 4 * MiB, "lazy_refcounts=on")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 64k 64k",
                    "-c", "sigraise 9", str(dirty)], capture_output=True, check=False)
    made["dirty"] = Made(dirty)

    # Compressed clusters (zlib, zstd) from the v3 image.
    compressions: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("zlib", ()), ("zstd", ("-o", "compression_type=zstd")))
    for name, extra in compressions:
        path = root / f"{name}.qcow2"
        run("qemu-img", "convert", "-c", "-O", "qcow2", *extra, made["v3"].path, path)
        made[name] = Made(path)

    # Internal snapshots.
    snap = plain("snapshots", 4 * MiB)
    run("qemu-img", "snapshot", "-c", "first", snap)
    qemu_io(snap, "write -P 0x66 1M 128k")
    run("qemu-img", "snapshot", "-c", "second one", snap)

    # Persistent dirty bitmaps.
    bm = plain("bitmaps", 4 * MiB)
    run("qemu-img", "bitmap", "--add", bm, "b0")
    run("qemu-img", "bitmap", "--add", "-g", "128k", "--disable", bm, "b1")

    # External data files.
    for name, opts in (("datafile", ("data_file=datafile.data",)),
                       ("datafile_raw", ("data_file=datafile_raw.data", "data_file_raw=on"))):
        path = root / f"{name}.qcow2"
        _create(path, 4 * MiB, *opts)
        args = [a for c in scattered(4 * MiB) for a in ("-c", c)]
        run("qemu-io", "-f", "qcow2", *args, path.name, cwd=root)
        made[name] = Made(path)

    # Encryption: facts and map only (no key is ever given to imgscan).
    encryptions: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("luks", ("encrypt.format=luks", "encrypt.key-secret=sec0", "encrypt.iter-time=200")),
        ("aes", ("compat=0.10", "encrypt.format=aes", "encrypt.key-secret=sec0")),
    )
    for name, crypt_opts in encryptions:
        path = root / f"{name}.qcow2"
        _create(path, 1 * MiB, *crypt_opts, objects=(SECRET,))
        run("qemu-io", "--object", SECRET, "--image-opts",
            f"driver=qcow2,file.filename={path},encrypt.key-secret=sec0",
            "-c", "write -P 0x77 64k 4k", "-c", "write -P 0x78 700k 70k")
        made[name] = Made(path, encrypted=True)

    # A backing chain base <- top.
    base = plain("base", 4 * MiB)
    top = root / "top.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.name, "-F", "qcow2", top,
        cwd=root)
    qemu_io(top, "write -P 0x99 64k 8k", "write -z 1M 64k", "write -P 0x9a 3M 4k")
    made["top"] = Made(top)

    # 2 TiB, sparse: compare maps and a few ranges only.
    big = root / "big.qcow2"
    _create(big, 2 * TiB)
    qemu_io(big, "write -P 0x12 0 4k", "write -P 0x34 1T 64k", "write -z 1536G 1M",
            f"write -P 0x56 {2 * TiB - 4096} 4k")
    made["big"] = Made(big)
    return made


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Made]:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    return _build(tmp_path_factory.mktemp("qcow2"))


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qcow2-scratch")


ALL = ["v2", "v3", "c512", "c4k", "c2m", "extl2", "extl2_32k", "lazy", "odd",
       "prealloc_metadata", "prealloc_full", "prealloc_v2_metadata", "dirty", "zlib", "zstd",
       "snapshots", "bitmaps", "datafile", "datafile_raw", "luks", "aes", "base", "top", "big"]


def _qemu_facts(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": info["format"],
        "virtual_size": info["virtual-size"],
        "encrypted": bool(info.get("encrypted", False)),
        "backing_file": info.get("backing-filename"),
        "backing_format": info.get("backing-filename-format"),
        "cluster_size": info.get("cluster-size"),
        "snapshots": len(info.get("snapshots", [])),
        "dirty": info.get("dirty-flag", False),
    }


def _our_facts(img: imgscan.Image) -> dict[str, Any]:
    return {
        "format": img.format,
        "virtual_size": img.virtual_size,
        "encrypted": img.encrypted,
        "backing_file": img.backing_file,
        "backing_format": img.backing_format,
        "cluster_size": img.cluster_size,
        "snapshots": img.snapshots,
        "dirty": img.dirty,
    }


def _check_format_specific(ours: dict[str, Any], qemu: dict[str, Any]) -> None:
    for key, value in qemu.items():
        if key == "encrypt":
            assert ours["encrypt"]["format"] == value["format"]
        else:
            assert ours.get(key) == value, key


def _check_snapshots(ours: list[dict[str, Any]], qemu: list[dict[str, Any]]) -> None:
    assert [{k: s.get(k) for k in q} for s, q in zip(ours, qemu, strict=True)] == qemu


def _qemu_map(made: Made) -> list[dict[str, Any]]:
    if not made.encrypted:
        return qemu_map(made.path)
    out = run("qemu-img", "map", "--output=json", "--object", SECRET, "--image-opts",
              f"driver=qcow2,file.filename={made.path},encrypt.key-secret=sec0")
    result: list[dict[str, Any]] = json.loads(out)
    return result


@needs_qemu
@pytest.mark.parametrize("name", ALL)
def test_facts_match_qemu_info(images: dict[str, Made], name: str) -> None:
    made = images[name]
    info = qemu_info(made.path)
    with imgscan.open(made.path) as img:
        assert _our_facts(img) == _qemu_facts(info)
        assert img.subformat == ("v2" if info["format-specific"]["data"]["compat"] == "0.10"
                                 else "v3")
        _check_format_specific(img.format_specific, info["format-specific"]["data"])
        if "snapshots" in info:
            _check_snapshots(img.format_specific["snapshots"], info["snapshots"])
        assert img.encryption == (info["format-specific"]["data"].get("encrypt") or {}).get(
            "format")
        ids = {f["id"] for f in img.info()["findings"]}
        assert ("encrypted" in ids) == made.encrypted
        assert "corrupt" not in ids


@needs_qemu
@pytest.mark.parametrize("name", [n for n in ALL if n != "top"])
def test_map_matches_qemu_map(images: dict[str, Made], name: str) -> None:
    made = images[name]
    with imgscan.open(made.path) as img:
        emap = img.extents()
        assert emap.check_complete()
        theirs = _qemu_map(made)
        if name.startswith("prealloc_") and name.endswith("metadata"):
            assert any(e["data"] and e["zero"] for e in theirs)  # qemu looked at the holes
        # qemu's metadata-preallocation guess compares refcounted clusters with the host
        # file's allocated blocks, which the filesystem may not have settled yet: it can
        # fire on any image (snapshots and bitmaps here, now and then). Where it does,
        # qemu calls host-file holes in data clusters "data and zero"; imgscan reports
        # what the L2 table says, data.
        theirs = stored_not_zero(theirs)
        assert data_zero_runs(emap.to_qemu()) == data_zero_runs(theirs)


@needs_qemu
def test_unallocated_runs_at_table_and_disk_ends(tmp_path: Path) -> None:
    """The L2 walk takes a run of unallocated entries at once (issue 18): runs that end
    at an L2 table's end, at data clusters and at a partial last cluster, with a data
    cluster as the last one, read as qemu-img map reads them."""
    path = tmp_path / "runs.qcow2"
    # 4 KiB clusters: an L2 table maps 2 MiB; the size ends 512 bytes into a cluster
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", str(path),
        str(5 * MiB + 4096 + 512))
    qemu_io(path, "write -P 0x11 8k 4k", f"write -P 0x22 {2 * MiB - 4096} 8k",
            "write -z 3M 64k", f"write -P 0x33 {5 * MiB + 4096} 512")
    with imgscan.open(path) as img:
        emap = img.extents()
        assert emap.check_complete()
        assert (data_zero_runs(emap.to_qemu())
                == data_zero_runs(stored_not_zero(qemu_map(path))))


@needs_qemu
@pytest.mark.parametrize("name", [
    "v2", "v3", "c512", "c4k", "c2m", "extl2", "extl2_32k", "lazy", "odd", "prealloc_metadata",
    "prealloc_full", "prealloc_v2_metadata", "dirty", "zlib", "zstd", "snapshots", "bitmaps",
    "base"])
def test_guest_bytes_match_qemu_convert(images: dict[str, Made], scratch: Path,
                                        name: str) -> None:
    made = images[name]
    with imgscan.open(made.path) as img:
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(made.path, scratch)


def _merge(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, length in runs:
        if out and out[-1][0] + out[-1][1] == start:
            out[-1] = (out[-1][0], out[-1][1] + length)
        else:
            out.append((start, length))
    return out


def _convert(path: Path, scratch: Path, *opts: str) -> Path:
    out = scratch / (path.name + ".raw")
    run("qemu-img", "convert", *opts, "-O", "raw", path, out, cwd=path.parent)
    return out


@needs_qemu
def test_2tib_sparse_ranges(images: dict[str, Made], scratch: Path) -> None:
    path = images["big"].path
    with imgscan.open(path) as img:
        assert img.virtual_size == 2 * TiB
        for start, length in ((0, 8192), (TiB - 4096, 72 * KiB), (1536 * GiB, 4096),
                              (2 * TiB - 8192, 8192)):
            out = subprocess.run(
                ["qemu-io", "-f", "qcow2", "-r", "-c", f"read -v {start} {length}", str(path)],
                capture_output=True, text=True, check=True).stdout
            expected = bytearray()
            for line in out.splitlines():
                if line[:8].isalnum() and ":" in line:
                    hexpart = line.split(":", 1)[1][:49]
                    expected += bytes.fromhex(hexpart.replace(" ", ""))
            assert img.read(start, length) == bytes(expected)


@needs_qemu
def test_backing_chain(images: dict[str, Made], scratch: Path) -> None:
    top = images["top"].path
    with imgscan.open(top, external_dir=str(top.parent)) as img:
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(top, scratch)
        # What the top image itself stores, against qemu's depth-0 entries.
        ours = [(e.start, e.length) for e in img.extents() if e.kind != "unallocated"]
        theirs = [(e["start"], e["length"]) for e in qemu_map(top) if e["depth"] == 0]
        assert _merge(ours) == _merge(theirs)
    # Without external_dir: readable, holes as zeros, and the backing file untouched.
    base = images["base"].path
    before = os.stat(base).st_atime_ns
    with imgscan.open(top) as img:
        assert img.backing_file == "base.qcow2"
        assert img.read(64 * KiB, 8) == b"\x99" * 8
        assert img.read(0, 4096) == b"\0" * 4096  # base has 0x11 here
        assert img._opened == []
    assert os.stat(base).st_atime_ns == before
    ids = [f["id"] for f in imgscan.open(top).info()["findings"]]
    assert "backing-file" in ids


@needs_qemu
@pytest.mark.parametrize("name", ["datafile", "datafile_raw"])
def test_data_file(images: dict[str, Made], scratch: Path, name: str) -> None:
    path = images[name].path
    with imgscan.open(path) as img:
        assert img.data_file == f"{name}.data"
        assert img.format_specific["data-file-raw"] == (name == "datafile_raw")
        assert "data-file" in {f["id"] for f in img.info()["findings"]}
        with pytest.raises(imgscan.UnsafePath):
            img.read(0, 4096)
    with imgscan.open(path, external_dir=str(path.parent)) as img:
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(path, scratch)


@needs_qemu
@pytest.mark.parametrize("name", ["luks", "aes"])
def test_encrypted_reads_refused(images: dict[str, Made], name: str) -> None:
    with imgscan.open(images[name].path) as img:
        assert img.encrypted and img.encryption == name
        with pytest.raises(imgscan.EncryptedImage):
            img.read(0, 512)


@needs_qemu
def test_dirty_image(images: dict[str, Made]) -> None:
    with imgscan.open(images["dirty"].path) as img:
        assert img.dirty
        assert "dirty" in {f["id"] for f in img.info()["findings"]}


@needs_qemu
def test_odd_header_size_rounds_down_like_qemu(images: dict[str, Made], tmp_path: Path) -> None:
    path = tmp_path / "odd.qcow2"
    # written dense: qemu-img map reports the host file's holes as zero, imgscan the
    # qcow2 tables only, and the comparison is of the tables (a 1 MiB image)
    path.write_bytes(images["odd"].path.read_bytes())
    overwrite(path, 24, struct.pack(">Q", MiB + 300))
    with imgscan.open(path) as img:
        assert img.virtual_size == qemu_info(path)["virtual-size"] == MiB
        assert data_zero_runs(img.extents().to_qemu()) == data_zero_runs(qemu_map(path))


# -- corpus -----------------------------------------------------------------------

def _corpus_qcow2() -> list[str]:
    if not CORPUS.is_dir():
        return []
    facts = corpus_facts()
    return sorted(k for k, v in facts.items()
                  if v.get("qemu_img_info", {}).get("json", {}).get("format") == "qcow2")


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus qcow2 files, decompressed (sparse enough) into one scratch dir."""
    out = tmp_path_factory.mktemp("qcow2-corpus")
    for rel in [*_corpus_qcow2(), "dissect.hypervisor/qcow2/data-file.bin.gz"]:
        src = CORPUS / rel
        dst = out / src.name.removesuffix(".gz")
        if src.suffix == ".gz":
            decompress(src, dst)
        else:
            sparse_copy(src, dst)
    return out


@needs_corpus
@needs_qemu
@pytest.mark.parametrize("rel", _corpus_qcow2())
def test_corpus_facts(corpus_dir: Path, scratch: Path, rel: str) -> None:
    facts = corpus_facts()[rel]
    expected = facts["qemu_img_info"]["json"]
    path = corpus_dir / Path(rel).name.removesuffix(".gz")
    with imgscan.open(path) as img:
        assert _our_facts(img) == _qemu_facts(expected)
        _check_format_specific(img.format_specific, expected["format-specific"]["data"])
        if "snapshots" in expected:
            _check_snapshots(img.format_specific["snapshots"], expected["snapshots"])
        if path.stat().st_size < (img.cluster_size or 0):
            # libyal's header fragment: qemu reads its L1 table past EOF as zeros; we refuse.
            with pytest.raises(imgscan.TruncatedImage):
                img.extents()
            assert "truncated" in {f["id"] for f in img.info()["findings"]}
            return
    # Guest bytes: compare every range qemu calls data with qemu's own conversion. An image
    # with a backing file is compared whole with the conversion of its chain (corpus_dir
    # holds every layer): qemu maps the merged chain, extents() this layer only.
    raw = _convert(path, scratch)
    try:
        if expected.get("backing-filename"):
            with imgscan.open(path, external_dir=str(corpus_dir)) as img:
                assert img.backing_file == expected["backing-filename"]
                assert (sha256_stream(img.read, img.virtual_size, chunk=8 * MiB)
                        == sha256_file(raw))
            return
        with imgscan.open(path, external_dir=str(corpus_dir)) as img, open(raw, "rb") as f:
            theirs = stored_not_zero(qemu_map(path))  # the sparse copy has holes
            assert data_zero_runs(img.extents().to_qemu()) == data_zero_runs(theirs)
            for start, end, data, _zero in data_zero_runs(theirs):
                pos = start
                while data and pos < end:
                    n = min(MiB, end - pos)
                    f.seek(pos)
                    assert img.read(pos, n) == f.read(n), pos
                    pos += n
    finally:
        raw.unlink()


@needs_corpus
def test_corpus_backing_chain(corpus_dir: Path, scratch: Path) -> None:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    top = corpus_dir / "backing-chain-1.qcow2"
    raw = _convert(top, scratch)
    try:
        with imgscan.open(top, external_dir=str(corpus_dir)) as img:
            assert img.backing_file == "backing-chain-2.qcow2"
            assert sha256_stream(img.read, img.virtual_size, chunk=8 * MiB) == sha256_file(raw)
    finally:
        raw.unlink()


# -- malformed images ---------------------------------------------------------------

@pytest.fixture
def v3_copy(images: dict[str, Made], tmp_path: Path) -> Path:
    return copy_of(images["v3"].path, tmp_path, "bad.qcow2")


@needs_qemu
@pytest.mark.parametrize("source", ["v2", "v3"])
def test_truncated_header_is_never_raw(images: dict[str, Made], tmp_path: Path,
                                       source: str) -> None:
    data = images[source].path.read_bytes()
    header = 72 if source == "v2" else struct.unpack(">I", data[100:104])[0]
    data = data[:header]
    path = tmp_path / "short.qcow2"
    path.write_bytes(b"")
    with imgscan.open(path) as img:  # an empty file has no signature at all
        assert img.format == "raw"
    for n in range(1, header):
        path.write_bytes(data[:n])
        with pytest.raises(imgscan.TruncatedImage) as exc:
            imgscan.open(path)
        assert str(path) in str(exc.value)
    path.write_bytes(data)  # the whole header: facts, but the tables are missing
    with imgscan.open(path) as img:
        assert img.format == "qcow2"
        assert "truncated" in {f["id"] for f in img.info()["findings"]}


@needs_qemu
def test_version_4_and_1(v3_copy: Path) -> None:
    overwrite(v3_copy, 4, struct.pack(">I", 4))
    with pytest.raises(imgscan.UnsupportedFeature, match="version 4 is not defined"):
        imgscan.open(v3_copy)
    overwrite(v3_copy, 4, struct.pack(">I", 1))
    try:
        with imgscan.open(v3_copy) as img:
            assert img.format != "qcow2"
    except imgscan.ImageError:
        pass  # QCOW v1's decoder may reject a qcow2 body; it just must not be qcow2


@needs_qemu
def test_unknown_incompatible_bit(v3_copy: Path) -> None:
    overwrite(v3_copy, 72, struct.pack(">Q", 1 << 5))
    with imgscan.open(v3_copy) as img:
        found = [f for f in img.info()["findings"] if f["id"] == "unknown-feature"]
        assert found and found[0]["severity"] == "error"
        with pytest.raises(imgscan.UnsupportedFeature):
            img.read(0, 512)


@needs_qemu
def test_unknown_compatible_and_autoclear_bits_are_info(v3_copy: Path) -> None:
    overwrite(v3_copy, 80, struct.pack(">QQ", 1 << 7, 1 << 9))
    with imgscan.open(v3_copy) as img:
        found = [f for f in img.info()["findings"] if f["id"] == "unknown-feature"]
        assert [f["severity"] for f in found] == ["info", "info"]
        assert img.read(0, 4) == b"\x11" * 4


@needs_qemu
def test_l1_too_large_and_past_eof(v3_copy: Path) -> None:
    original = v3_copy.read_bytes()
    overwrite(v3_copy, 36, struct.pack(">I", 0x7FFFFFFF))
    with pytest.raises(imgscan.LimitExceeded):
        imgscan.open(v3_copy)
    v3_copy.write_bytes(original)
    overwrite(v3_copy, 40, struct.pack(">Q", 1 << 40))
    with imgscan.open(v3_copy) as img:
        with pytest.raises(imgscan.TruncatedImage, match="L1 table"):
            img.extents()
        assert "truncated" in {f["id"] for f in img.info()["findings"]}


@needs_qemu
def test_backing_name_past_eof(v3_copy: Path) -> None:
    overwrite(v3_copy, 8, struct.pack(">QI", 1 << 40, 10))
    with pytest.raises(imgscan.TruncatedImage, match="backing file name"):
        imgscan.open(v3_copy)


@needs_qemu
def test_l2_past_eof(v3_copy: Path) -> None:
    l1_offset = struct.unpack(">Q", v3_copy.read_bytes()[40:48])[0]
    overwrite(v3_copy, l1_offset, struct.pack(">Q", (1 << 63) | (1 << 40)))
    with imgscan.open(v3_copy) as img:
        with pytest.raises(imgscan.TruncatedImage, match="L2 table"):
            img.extents()
        info = img.info()
        assert info["format"] == "qcow2"
        assert "truncated" in {f["id"] for f in info["findings"]}


@needs_qemu
@pytest.mark.parametrize("bits,error", [(0, imgscan.CorruptImage), (8, imgscan.CorruptImage),
                                        (22, imgscan.LimitExceeded),
                                        (63, imgscan.LimitExceeded)])
def test_cluster_bits(v3_copy: Path, bits: int, error: type[Exception]) -> None:
    overwrite(v3_copy, 20, struct.pack(">I", bits))
    with pytest.raises(error):
        imgscan.open(v3_copy)


@needs_qemu
def test_data_cluster_past_eof_reads_zero(v3_copy: Path) -> None:
    data = v3_copy.read_bytes()
    l1_offset = struct.unpack(">Q", data[40:48])[0]
    l2_offset = struct.unpack(">Q", data[l1_offset:l1_offset + 8])[0] & 0x00FFFFFFFFFFFE00
    overwrite(v3_copy, l2_offset, struct.pack(">Q", (1 << 63) | (1 << 30)))
    with imgscan.open(v3_copy) as img:
        assert img.read(0, 4096) == b"\0" * 4096
        assert "truncated" in {f.id for f in img.findings}


def _first_compressed(path: Path) -> tuple[int, int]:
    """(file offset of the first compressed L2 entry, cluster_bits)."""
    data = path.read_bytes()
    cluster_bits = struct.unpack(">I", data[20:24])[0]
    l1_offset = struct.unpack(">Q", data[40:48])[0]
    l2_offset = struct.unpack(">Q", data[l1_offset:l1_offset + 8])[0] & 0x00FFFFFFFFFFFE00
    for i in range(1 << (cluster_bits - 3)):
        entry = struct.unpack(">Q", data[l2_offset + 8 * i:l2_offset + 8 * i + 8])[0]
        if entry & (1 << 62):
            return l2_offset + 8 * i, cluster_bits
    raise AssertionError("no compressed cluster")


def _repoint_compressed(path: Path, stream: bytes) -> None:
    """Append ``stream`` at a sector boundary and aim guest cluster 0 at it."""
    entry_at, cluster_bits = _first_compressed(path)
    size = path.stat().st_size
    host = (size + 511) // 512 * 512
    with open(path, "r+b") as f:
        f.seek(host)
        f.write(stream)
    sectors = (len(stream) + 511) // 512
    shift = 62 - (cluster_bits - 8)
    overwrite(path, entry_at, struct.pack(">Q", (1 << 62) | ((sectors - 1) << shift) | host))


@pytest.fixture
def zlib_copy(images: dict[str, Made], tmp_path: Path) -> Path:
    return copy_of(images["zlib"].path, tmp_path, "bad-zlib.qcow2")


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -12)
    return c.compress(data) + c.flush()


@needs_qemu
@pytest.mark.parametrize("kind", ["garbage", "bomb", "short"])
def test_bad_zlib_cluster(zlib_copy: Path, kind: str) -> None:
    stream = {
        "garbage": bytes(range(256)) * 8,
        "bomb": _raw_deflate(b"\0" * (64 * MiB)),
        "short": _raw_deflate(b"\1" * 1000),
    }[kind]
    _repoint_compressed(zlib_copy, stream)
    with imgscan.open(zlib_copy) as img:
        assert img.extents()[0].kind == "compressed"
        with promptly(2), pytest.raises(imgscan.CorruptImage):
            img.read(0, 512)
        if kind == "bomb":
            assert "compression-bomb" in {f.id for f in img.findings}


@needs_qemu
@pytest.mark.parametrize("kind", ["garbage", "bomb"])
def test_bad_zstd_cluster(images: dict[str, Made], tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad-zstd.qcow2"
    sparse_copy(images["zstd"].path, path)
    stream = (b"\x28\xb5\x2f\xfd" + bytes(range(200)) if kind == "garbage"
              else zstandard.ZstdCompressor().compress(b"\0" * (64 * MiB)))
    _repoint_compressed(path, stream)
    with imgscan.open(path) as img, pytest.raises(imgscan.CorruptImage):
        img.read(0, 512)


@needs_qemu
def test_unknown_header_extension_is_listed(v3_copy: Path) -> None:
    data = v3_copy.read_bytes()
    header_length = struct.unpack(">I", data[100:104])[0]
    ext_type, ext_len = struct.unpack(">II", data[header_length:header_length + 8])
    assert ext_type != 0  # qemu writes its feature name table there
    overwrite(v3_copy, header_length, struct.pack(">I", 0x12345678))
    assert qemu_info(v3_copy)["format"] == "qcow2"  # qemu ignores it too
    with imgscan.open(v3_copy) as img:
        assert img.format_specific["unknown-header-extensions"] == [
            {"type": "0x12345678", "length": ext_len}]
        assert img.read(0, 4) == b"\x11" * 4


@needs_qemu
def test_unaligned_l2_entry_is_corrupt(v3_copy: Path) -> None:
    data = v3_copy.read_bytes()
    l1_offset = struct.unpack(">Q", data[40:48])[0]
    l2_offset = struct.unpack(">Q", data[l1_offset:l1_offset + 8])[0] & 0x00FFFFFFFFFFFE00
    overwrite(v3_copy, l2_offset, struct.pack(">Q", (1 << 63) | 0x10200))
    with imgscan.open(v3_copy) as img, pytest.raises(imgscan.CorruptImage, match="aligned"):
        img.extents()

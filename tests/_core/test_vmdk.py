"""VMDK: imgscan against qemu-img on images qemu made and on real ones.

Every expected value comes from qemu-img / qemu-io run on the same file, from
the options the image was made with (qemu wrote them into the descriptor),
from the corpus facts (FACTS.json, recorded with qemu-img 7.2), or, for the
hand-corrupted images, from the spec: imgscan is never its own oracle.
"""

from __future__ import annotations

import bz2
import re
import shutil
import struct
import zlib
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from helpers import GiB, MiB, decompress, promptly, sparse_copy
from hypothesis import given, settings
from hypothesis import strategies as st
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
    run,
    sha256_stream,
)

import imgscan
from imgscan.errors import (
    CorruptImage,
    ImageError,
    LimitExceeded,
    TruncatedImage,
    UnsafePath,
    UnsupportedFeature,
)

_io = partial(qemu_io, fmt="vmdk")

# Spec offsets (SparseExtentHeader) used to corrupt images.
H_CAPACITY, H_GRAIN, H_DESC_OFFSET, H_GTES, H_GD = 12, 20, 28, 44, 56


class Made:
    def __init__(self, path: Path, opts: dict[str, str], multi: bool = False,
                 backing: bool = False) -> None:
        self.path = path
        self.opts = opts
        self.multi = multi          # extents in other files: too big to hash whole
        self.backing = backing


WRITES = ("write -P 0x5a 0 4k", "write -P 0x5b 300k 64k", "write -z 700k 8k",
          "write -P 0x5c 1000k 24k")


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Made]:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    d = tmp_path_factory.mktemp("vmdk_made")
    out: dict[str, Made] = {}

    def create(name: str, size: str, **opts: str) -> Path:
        p = d / f"{name}.vmdk"
        o = ",".join(f"{k}={v}" for k, v in opts.items())
        run("qemu-img", "create", "-q", "-f", "vmdk", *(["-o", o] if o else []), p, size)
        out[name] = Made(p, opts)
        return p

    p = create("sparse", "3M")
    _io(p, *WRITES)
    p = create("sparse-odd", "10000384")          # not a whole number of grains
    _io(p, "write -P 0x5a 512 1536", "write -P 0x5d 4M 100k", "write -P 0x5e 9999360 1024")
    for adapter in ("ide", "lsilogic", "buslogic", "legacyESX"):
        p = create(f"adapter-{adapter}", "2M", adapter_type=adapter)
        _io(p, "write -P 0x11 64k 4k")
    p = create("hw7-zeroed", "4M", hwversion="7", zeroed_grain="on")
    _io(p, *WRITES, "write -z 2M 1M")
    p = create("compat6", "2M", compat6="on")
    _io(p, "write -P 0x22 1M 512")
    p = create("large-sparse", "1T")
    _io(p, "write -P 0x33 0 64k", "write -P 0x34 500G 4k", "write -P 0x35 1023G 64k")
    p = create("flat", "3M", subformat="monolithicFlat")
    _io(p, *WRITES)
    p = create("2g-sparse", "5G", subformat="twoGbMaxExtentSparse")
    out["2g-sparse"].multi = True
    _io(p, "write -P 0x41 0 4k", "write -P 0x42 2047M 2M", "write -P 0x43 5119M 64k")
    p = create("2g-flat", "3G", subformat="twoGbMaxExtentFlat")
    out["2g-flat"].multi = True
    _io(p, "write -P 0x51 4k 4k", "write -P 0x52 2047M 2M")
    stream = d / "stream.vmdk"
    run("qemu-img", "convert", "-q", "-f", "vmdk", "-O", "vmdk", "-o",
        "subformat=streamOptimized", out["sparse"].path, stream)
    out["stream"] = Made(stream, {"subformat": "streamOptimized"})
    delta = d / "delta.vmdk"
    run("qemu-img", "create", "-q", "-f", "vmdk", "-b", "sparse.vmdk", "-F", "vmdk", delta,
        cwd=d)
    _io(delta, "write -P 0x66 1M 64k", "write -P 0x67 0 512")
    out["delta"] = Made(delta, {}, backing=True)
    return out


ALL = ["sparse", "sparse-odd", "adapter-ide", "adapter-lsilogic", "adapter-buslogic",
       "adapter-legacyESX", "hw7-zeroed", "compat6", "large-sparse", "flat", "2g-sparse",
       "2g-flat", "stream", "delta"]


@needs_qemu
@pytest.mark.parametrize("name", ALL)
def test_facts_match_qemu_info(made: dict[str, Made], name: str) -> None:
    m = made[name]
    info = qemu_info(m.path)
    spec = info["format-specific"]["data"]
    with imgscan.open(m.path) as img:
        assert img.format == info["format"] == "vmdk"
        assert img.virtual_size == info["virtual-size"]
        assert img.subformat == spec["create-type"]
        assert img.backing_file == info.get("backing-filename")
        assert img.format_specific["cid"] == spec["cid"]
        assert img.format_specific["parent_cid"] == spec["parent-cid"]
        if "cluster-size" in info and not m.multi:
            assert img.cluster_size == info["cluster-size"]
        ids = {f.id for f in img.findings}
        assert ("external-extent" in ids) == (name in ("flat", "2g-sparse", "2g-flat"))
        assert "descriptor-ambiguous" not in ids
        # ddb entries as qemu-img create wrote them from its options
        fs = img.format_specific
        assert fs["adapter_type"] == m.opts.get("adapter_type", "ide")
        hw = "6" if m.opts.get("compat6") else m.opts.get("hwversion", "4")
        assert fs["hw_version"] == hw
        assert "cylinders" in fs["geometry"]


@needs_qemu
@pytest.mark.parametrize("name", ALL)
def test_cluster_size_matches_qemu_info(made: dict[str, Made], name: str) -> None:
    """qemu's cluster size: the grain size when every extent is sparse with one grain
    size, none for flat extents. A split sparse disk's grains are in its extent files,
    read (as qemu opens them) inside external_dir; without it they are never opened
    and the size is not known."""
    m = made[name]
    expected = qemu_info(m.path).get("cluster-size")
    with imgscan.open(m.path, external_dir=str(m.path.parent)) as img:
        assert img.cluster_size == expected
    with imgscan.open(m.path, external_dir=str(m.path.parent)) as img:
        assert img.info()["cluster_size"] == expected
    with imgscan.open(m.path) as img:
        assert img.cluster_size == (None if m.multi else expected)


def _qemu_runs(m: Made) -> list[tuple[int, int, bool, bool]]:
    """qemu's map as runs: host holes of flat extents are zero (qemu: data and zero), stored
    grains are data (qemu may call a grain in a host hole both)."""
    entries = qemu_map(m.path)
    flat = m.opts.get("subformat", "").endswith("Flat")
    for e in entries:
        if e["data"] and e["zero"]:
            e["data" if flat else "zero"] = False
    return data_zero_runs(entries)


@needs_qemu
@pytest.mark.parametrize("name", [n for n in ALL if n != "delta"])
def test_map_matches_qemu_map(made: dict[str, Made], name: str) -> None:
    m = made[name]
    with imgscan.open(m.path, external_dir=str(m.path.parent)) as img:
        ours = data_zero_runs(img.extents().to_qemu())
    assert ours == _qemu_runs(m)


@needs_qemu
def test_delta_map_and_bytes_over_base(made: dict[str, Made], tmp_path: Path) -> None:
    """Only what the delta itself stores is depth 0 in qemu's map; the rest is the base's."""
    m = made["delta"]
    own = [e for e in qemu_map(m.path) if e["depth"] == 0]
    with imgscan.open(m.path, external_dir=str(m.path.parent)) as img:
        assert img.backing_file == "sparse.vmdk"
        stored = [(e.start, e.start + e.length) for e in img.extents() if e.kind != "unallocated"]
        assert stored == [(r[0], r[1]) for r in data_zero_runs(own)]
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(m.path, tmp_path)
    with imgscan.open(m.path) as img:
        # without external_dir the base is never opened: what it holds reads as zeros
        assert img.read(300 * 1024, 4096) == bytes(4096)
        assert img.read(MiB, 4096) == b"\x66" * 4096


def made_multi(name: str) -> bool:
    return name in ("2g-sparse", "2g-flat", "large-sparse")


@needs_qemu
@pytest.mark.parametrize("name", [n for n in ALL if not made_multi(n) and n != "delta"])
def test_bytes_match_qemu_convert(made: dict[str, Made], name: str, tmp_path: Path) -> None:
    m = made[name]
    with imgscan.open(m.path, external_dir=str(m.path.parent)) as img:
        assert sha256_stream(img.read, img.virtual_size) == qemu_raw_sha256(m.path, tmp_path)


@needs_qemu
@pytest.mark.parametrize("name", ["2g-sparse", "2g-flat", "large-sparse"])
def test_big_bytes_match_qemu_compare(made: dict[str, Made], name: str, tmp_path: Path) -> None:
    """Write imgscan's stored ranges into a sparse raw file; ``qemu-img compare`` checks it all."""
    m = made[name]
    out = tmp_path / "ours.raw"
    with imgscan.open(m.path, external_dir=str(m.path.parent)) as img, open(out, "wb") as f:
        f.truncate(img.virtual_size)
        for e in img.extents():
            if e.kind in ("data", "compressed"):
                for pos in range(e.start, e.start + e.length, 4 * MiB):
                    f.seek(pos)
                    f.write(img.read(pos, min(4 * MiB, e.start + e.length - pos)))
    run("qemu-img", "compare", "-q", "-f", "raw", "-F", "vmdk", out, m.path,
        cwd=m.path.parent)


@needs_qemu
def test_multi_extent_without_external_dir(made: dict[str, Made]) -> None:
    """Facts from the descriptor alone; reads of extent files refused."""
    m = made["2g-sparse"]
    with imgscan.open(m.path) as img:
        assert img.virtual_size == 5 * GiB
        assert [e.file for e in img.extents()] == [1, 2, 3]
        assert img.format_specific["extents"][0]["filename"] == "2g-sparse-s001.vmdk"
        with pytest.raises(UnsafePath):
            img.read(0, 512)


# --------------------------------------------------------------------------
# Real images
# --------------------------------------------------------------------------

@needs_corpus
@needs_qemu
def test_corpus_stream_version3(tmp_path: Path) -> None:
    p = tmp_path / "iotest-version3.vmdk"
    decompress(CORPUS / "qemu-iotests/iotest-version3.vmdk.bz2", p)
    q = corpus_facts()["qemu-iotests/iotest-version3.vmdk.bz2"]["qemu_img_info"]["json"]
    with imgscan.open(p) as img:
        assert img.format == q["format"]
        assert img.virtual_size == q["virtual-size"]
        assert img.cluster_size == q["cluster-size"]
        assert img.subformat == q["format-specific"]["data"]["create-type"]
        assert img.format_specific["cid"] == q["format-specific"]["data"]["cid"]
        assert img.format_specific["header"]["version"] == 3
        assert img.format_specific["hw_version"] == "8"
        assert img.format_specific["adapter_type"] == "lsilogic"
        assert not [f for f in img.findings if f.severity == "error"]
        assert all(e.kind in ("compressed", "unallocated") for e in img.extents())
        assert data_zero_runs(img.extents().to_qemu()) == data_zero_runs(qemu_map(p))
        assert (sha256_stream(img.read, 128 * MiB)
                == _qemu_prefix_sha(p, tmp_path, 128 * MiB))


def _qemu_prefix_sha(p: Path, tmp_path: Path, n: int) -> str:
    import hashlib

    out = tmp_path / "prefix.raw"
    run("qemu-img", "dd", "-f", "vmdk", "-O", "raw", f"if={p}", f"of={out}", "bs=1M",
        f"count={n // MiB}")
    return hashlib.sha256(out.read_bytes()).hexdigest()


@needs_corpus
def test_corpus_afl9_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "afl9.vmdk"
    decompress(CORPUS / "qemu-iotests/afl9.vmdk.bz2", p)
    assert "err" in corpus_facts()["qemu-iotests/afl9.vmdk.bz2"]["qemu_img_info"]
    with promptly(2), pytest.raises(ImageError):
        imgscan.open(p).info()


@needs_corpus
def test_corpus_sesparse_named(tmp_path: Path) -> None:
    """qemu probes it as raw (it opens seSparse only through a descriptor); its header names it."""
    p = tmp_path / "sesparse.vmdk"
    decompress(CORPUS / "dissect.hypervisor/vmdk/sesparse.vmdk.gz", p)
    raw = p.read_bytes()[:512]
    _magic, _version, capacity, grain = struct.unpack_from("<4Q", raw)
    with imgscan.open(p) as img:
        assert (img.format, img.subformat) == ("vmdk", "seSparse")
        assert img.virtual_size == capacity * 512
        assert img.cluster_size == grain * 512
        info = img.info()
        assert info["allocated_size"] is None
        assert any(f["id"] == "unknown-feature" for f in info["findings"])


@needs_corpus
def test_corpus_libvmdk_descriptor() -> None:
    p = CORPUS / "libyal/libvmdk/descriptor_file.1"
    text = p.read_text()
    with imgscan.open(p) as img:
        assert img.format == "vmdk"
        assert img.subformat == "monolithicSparse"     # qemu refuses this type in a descriptor
        assert img.virtual_size == 16777216 * 512
        fs = img.format_specific
        assert fs["hw_version"] == "9" and fs["adapter_type"] == "ide"
        assert fs["encoding"] == "windows-1252"
        assert 'ddb.uuid = "60 00 C2 99' in text and fs["uuid"].startswith("60 00 C2 99")
        ids = {(f.id, f.severity) for f in img.findings}
        assert ("external-extent", "warning") in ids
        assert ("unknown-feature", "warning") in ids
    # a lone extent line is not a descriptor (qemu: raw)
    with imgscan.open(CORPUS / "libyal/libvmdk/extent_values.1") as img:
        facts = corpus_facts()["libyal/libvmdk/extent_values.1"]
        assert img.format == facts["qemu_img_info"]["json"]["format"]


# --------------------------------------------------------------------------
# Malformed images (hand-corrupted copies of qemu-made ones)
# --------------------------------------------------------------------------

def _copy(src: Path, dst: Path) -> bytearray:
    sparse_copy(src, dst)
    return bytearray(dst.read_bytes())


def _header(buf: bytearray) -> dict[str, int]:
    cap, grain, _desc, _dsize, gtes, _rgd, gd = struct.unpack_from("<QQQQIQQ", buf, 12)
    return {"capacity": cap, "grain": grain, "gtes": gtes, "gd": gd * 512}


def _open_error(p: Path) -> ImageError:
    with promptly(2), pytest.raises(ImageError) as exc, imgscan.open(p) as img:
        img.extents()
        img.read(0, img.virtual_size if img.virtual_size < 8 * MiB else 8 * MiB)
    assert str(p) in str(exc.value)
    return exc.value


@needs_qemu
def test_truncated_header_every_length(made: dict[str, Made], tmp_path: Path) -> None:
    data = made["sparse"].path.read_bytes()
    p = tmp_path / "t.vmdk"
    for n in range(4, 80):
        p.write_bytes(data[:n])
        assert isinstance(_open_error(p), TruncatedImage), n


@needs_qemu
def test_gd_and_gt_past_eof(made: dict[str, Made], tmp_path: Path) -> None:
    p = tmp_path / "g.vmdk"
    buf = _copy(made["sparse"].path, p)
    struct.pack_into("<Q", buf, H_GD, len(buf) // 512)
    p.write_bytes(buf)
    assert isinstance(_open_error(p), TruncatedImage)
    buf = _copy(made["sparse"].path, p)
    gd = _header(buf)["gd"]
    struct.pack_into("<I", buf, gd, len(buf) // 512 + 10)
    p.write_bytes(buf)
    assert isinstance(_open_error(p), TruncatedImage)


@needs_qemu
def test_gt_pointing_at_gd_or_shared(made: dict[str, Made], tmp_path: Path) -> None:
    p = tmp_path / "o.vmdk"
    buf = _copy(made["large-sparse"].path, p)
    gd = _header(buf)["gd"]
    struct.pack_into("<I", buf, gd + 4, gd // 512)          # a GT inside the GD: a loop
    p.write_bytes(buf)
    assert isinstance(_open_error(p), CorruptImage)
    buf = _copy(made["large-sparse"].path, p)
    first = struct.unpack_from("<I", buf, gd)[0]
    struct.pack_into("<I", buf, gd + 8, first)               # two GD entries, one GT
    p.write_bytes(buf)
    assert isinstance(_open_error(p), CorruptImage)


@needs_qemu
def test_grain_past_eof_reads_zeros_with_finding(made: dict[str, Made], tmp_path: Path) -> None:
    p = tmp_path / "e.vmdk"
    buf = _copy(made["sparse"].path, p)
    gd = _header(buf)["gd"]
    gt = struct.unpack_from("<I", buf, gd)[0] * 512
    struct.pack_into("<I", buf, gt, len(buf) // 512 + 1000)
    p.write_bytes(buf)
    with imgscan.open(p) as img:
        assert img.read(0, 4096) == bytes(4096)
        assert any(f["id"] == "truncated" for f in img.info()["findings"])


@needs_qemu
def test_huge_capacity_and_bad_geometry(made: dict[str, Made], tmp_path: Path) -> None:
    p = tmp_path / "h.vmdk"
    for off, fmt, value, exc in ((H_CAPACITY, "<Q", 1 << 60, LimitExceeded),
                                 (H_GTES, "<I", 4096, CorruptImage),
                                 (H_GRAIN, "<Q", 0, CorruptImage),
                                 (4, "<I", 4, UnsupportedFeature)):
        buf = _copy(made["sparse"].path, p)
        struct.pack_into(fmt, buf, off, value)
        p.write_bytes(buf)
        assert isinstance(_open_error(p), exc), (off, value)


def _descriptor(made: dict[str, Made], tmp_path: Path, edit: Any) -> Path:
    d = tmp_path / "desc"
    d.mkdir(exist_ok=True)
    src = made["flat"].path
    sparse_copy(src.parent / "flat-flat.vmdk", d / "flat-flat.vmdk")
    p = d / "flat.vmdk"
    # qemu ends the file with a NUL byte, after which nothing is read
    p.write_text(edit(src.read_text().rstrip("\x00")))
    return p


@needs_qemu
def test_descriptor_limits(made: dict[str, Made], tmp_path: Path) -> None:
    p = _descriptor(made, tmp_path, lambda t: t + "ddb.x = \"" + "a" * 70000 + "\"\n")
    assert isinstance(_open_error(p), LimitExceeded)
    p = _descriptor(made, tmp_path, lambda t: t + "#\n" * 30000)
    assert isinstance(_open_error(p), LimitExceeded)


@needs_qemu
@pytest.mark.parametrize("number", ["9" * 5000, "\u0661\u0666\u0663\u0668\u0664"],
                         ids=["5000-digits", "arabic-indic-digits"])
def test_extent_line_numbers_are_ascii_and_bounded(made: dict[str, Made], tmp_path: Path,
                                                   number: str) -> None:
    """An extent's size is read as qemu reads it (``%SCNd64``: ASCII digits, 64 bits): a
    number of 5000 digits, which Python's int() refuses with a ValueError, or one in
    another script's digits is an invalid extent line, and qemu refuses both files."""
    p = _descriptor(made, tmp_path, lambda t: re.sub(r"^RW \d+ FLAT", f"RW {number} FLAT", t,
                                                     flags=re.M))
    assert qemu_refuses(p, "vmdk")
    with pytest.raises(CorruptImage, match="invalid extent line"):
        imgscan.open(p).info()


#: The extent line as a regular expression: the oracle of the parser's reading in place
#: (vmdk_descriptor._match_extent), which replaced it (issue 18).
_EXTENT_LINE = re.compile(
    r'(?P<access>RW|RDONLY|NOACCESS)\s+(?P<sectors>[0-9]{1,20})\s+(?P<type>[A-Za-z]+)'
    r'(?:\s+"(?P<name>[^"]*)"(?:\s+(?P<offset>[0-9]{1,20}))?)?\s*\Z')

#: Pieces an extent line is made of, near misses included: blank space of several kinds
#: (\x1c is str.isspace's too), digits of other scripts, quotes, 20 and 21 digits.
_EXTENT_PIECES = ["RW", "RDONLY", "NOACCESS", "RWX", "R", "N", " ", "  ", "\t", "\x0b",
                  "\x1c", "\u00a0", "\u3000", "0", "7", "9" * 19, "1" * 20, "1" * 21,
                  "\u0661", "FLAT", "SPARSE", "ZERO", "vmfs", "x_y", '"', '"a b.vmdk"',
                  '""', "\u00e9", "#", "="]


@given(st.lists(st.sampled_from(_EXTENT_PIECES), min_size=1, max_size=9))
@settings(max_examples=3000, deadline=None)
def test_extent_line_read_as_the_expression(pieces: list[str]) -> None:
    """A line is an extent line, and its fields are read, as the regular expression says:
    the first word (str.split's) an access mode, then the whole stripped line matched."""
    from imgscan._core.vmdk_descriptor import ACCESS_MODES, parse_descriptor

    line = "".join(pieces)
    stripped = line.strip()
    m = _EXTENT_LINE.match(stripped) if stripped else None
    is_extent = (stripped[:1] in ("R", "N") and stripped.split(None, 1)[0] in ACCESS_MODES)
    raw = ("version=1\n" + line + "\n").encode()
    if is_extent and m is None:
        with pytest.raises(CorruptImage, match="invalid extent line"):
            parse_descriptor(raw, "t.vmdk", 0, "VMDK descriptor file")
        return
    if m is None or (m["type"] != "ZERO" and m["name"] is None) or (
            m["type"] == "FLAT" and m["offset"] is None):
        try:
            desc = parse_descriptor(raw, "t.vmdk", 0, "VMDK descriptor file")
        except CorruptImage as exc:
            assert m is not None and ("names no file" in str(exc) or "no offset" in str(exc))
            return
        assert m is None and desc.extents == []
        return
    desc = parse_descriptor(raw, "t.vmdk", 0, "VMDK descriptor file")
    (e,) = desc.extents
    assert (e.access, e.sectors, e.type, e.filename, e.offset, e.line) == (
        m["access"], int(m["sectors"]), m["type"], m["name"], int(m["offset"] or 0), 2)


@needs_qemu
@pytest.mark.parametrize(("edit", "qemu_reads"), [
    (lambda t: t.replace('createType="monolithicFlat"',
                         'createType="monolithicFlat"\ncreateType="twoGbMaxExtentFlat"'),
     "monolithicFlat"),
    (lambda t: t.replace('createType="monolithicFlat"',
                         'CreateType="vmfs"\ncreateType="monolithicFlat"'), "monolithicFlat"),
    (lambda t: t.replace('createType="monolithicFlat"',
                         '# createType="vmfs"\ncreateType="monolithicFlat"'), "vmfs"),
    (lambda t: t.replace('createType="monolithicFlat"', 'createType = "monolithicFlat"'), None),
], ids=["duplicate", "other-case", "in-comment", "spaces"])
def test_descriptor_ambiguous(made: dict[str, Made], tmp_path: Path, edit: Any,
                              qemu_reads: str | None) -> None:
    """A descriptor two readers may read differently: imgscan reads what qemu reads and
    flags it as an error. Where qemu refuses the file (``createType = "..."``: qemu's
    parser skips two characters after the name and reads up to the next quote, a lone
    space, which is no create type it opens), imgscan reads the same space and also says
    that qemu does not open that create type."""
    p = _descriptor(made, tmp_path, edit)
    if qemu_reads is None:
        assert qemu_refuses(p, "vmdk")
    else:
        assert qemu_info(p)["format-specific"]["data"]["create-type"] == qemu_reads
    with imgscan.open(p) as img:
        assert any(f.id == "descriptor-ambiguous" and f.severity == "error"
                   for f in img.findings)
        if qemu_reads is None:
            assert img.subformat == " "
            assert any(f.id == "unknown-feature" and "qemu opens" in f.message
                       for f in img.findings)
        else:
            assert img.subformat == qemu_reads


@pytest.mark.parametrize(("key", "others"), [
    ("createType", ["CREATETYPE", "createtype"]),
    ("myKey", ["mykey", "my\u212aey"]),              # KELVIN SIGN lowers to "k"
    ("\u0130d", ["i\u0307d"]),                        # "İ" lowers to two characters
    ("parentCID", []),
], ids=["ascii", "kelvin-sign", "longer-lower-case", "none"])
def test_other_case_spellings(key: str, others: list[str]) -> None:
    """The keys a case-insensitive reader takes for ``key`` are those whose str.lower()
    equals key's, whatever their length or alphabet (check_key lowers only the keys
    that can match)."""
    from imgscan._core.vmdk_descriptor import parse_descriptor

    lines = [f'{k}="{i}"' for i, k in enumerate(
        ["createType", "CREATETYPE", "createtype", "my\u212aey", "mykey", "i\u0307d",
         "\u0130d", "parentCID", "parentCIDx"])]
    desc = parse_descriptor("\n".join(lines).encode(), "t.vmdk", 0, "VMDK descriptor file")
    desc.check_key(key)
    spelt = [m for m in desc.ambiguities if "also spelt" in m]
    if others:
        assert spelt == [f"{key} is also spelt {', '.join(map(repr, others))}: a "
                         "case-insensitive reader may take that value; qemu matches the "
                         "exact case only"]
    else:
        assert spelt == []


def test_descriptor_parsed_in_place() -> None:
    """An embedded descriptor is parsed inside the file's head (``begin``, ``length``), not
    from a copy: the same text, entries, extents and ambiguities as its bytes alone,
    text hidden after the NUL included; a range outside the buffer is refused."""
    from imgscan._core.vmdk_descriptor import parse_descriptor

    text = (b'# Disk DescriptorFile\nversion=1\nCID=fffffffe\ncreateType="monolithicSparse"\n'
            b'RW 2048 SPARSE "x.vmdk"\nddb.adapterType = "ide"\n')
    for area in (text + bytes(512 - len(text)),
                 text + b"\0" + b'createType="vmfs"' + bytes(512 - len(text) - 18)):
        alone = parse_descriptor(area, "t.vmdk", 512, "VMDK embedded descriptor")
        placed = parse_descriptor(b"KDMV" + bytes(508) + area + b"\x01" * 64, "t.vmdk", 512,
                                  "VMDK embedded descriptor", 512, len(area))
        assert (placed.text, placed.entries, placed.ambiguities) == (
            alone.text, alone.entries, alone.ambiguities)
        assert [e.as_dict() for e in placed.extents] == [e.as_dict() for e in alone.extents]
    assert any("follow a NUL byte" in m for m in alone.ambiguities)
    for begin, length in ((-1, 2), (0, 99), (2, 2)):
        with pytest.raises(ValueError):
            parse_descriptor(b"abc", "t.vmdk", 0, "VMDK descriptor file", begin, length)

@pytest.mark.parametrize("text, cid", [
    ("CID=fffffffe\n", 0xFFFFFFFE),
    # blank space skipped; more than 8 digits: their low 32 bits
    ("CID= \t123456789abcdefABCDEF0123\n", 0xCDEF0123),
    ("CID=" + "f" * 60, 0xFFFFFFFF),      # only 39 characters after "CID" and one more
    ("CID=12x34\n", 0x12),                # up to the first character not a hex digit
    ("CID=\u00e9ab\n", None), ("CID=\n", None), ("CID=", None), ("version=1\n", None),
])
def test_qemu_cid_reading(text: str, cid: int | None) -> None:
    """qemu's reading of CID (hex digits after blank space, in the 39 characters after the
    name and its "="), computed in C: malformed values made by hand."""
    from imgscan._core.vmdk_descriptor import parse_descriptor

    desc = parse_descriptor(text.encode(), "t.vmdk", 0, "VMDK descriptor file")
    assert desc.qemu_hex("CID") == cid


@needs_qemu
@pytest.mark.parametrize("name", ["../flat-flat.vmdk", "/etc/passwd", "json:{}",
                                  "sub/flat-flat.vmdk"])
def test_external_extent_names(made: dict[str, Made], tmp_path: Path, name: str) -> None:
    p = _descriptor(made, tmp_path, lambda t: t.replace('"flat-flat.vmdk"', f'"{name}"'))
    with imgscan.open(p, external_dir=str(p.parent)) as img:
        f = [f for f in img.findings if f.id == "external-extent"]
        assert f and f[0].severity == "error" and name in f[0].message
        if name != "sub/flat-flat.vmdk":
            with pytest.raises(UnsafePath):
                img.read(0, 512)


@needs_corpus
@pytest.mark.parametrize(("field", "finding"), [(H_CAPACITY, "size-mismatch"),
                                                (H_GRAIN, "footer-mismatch"),
                                                (H_DESC_OFFSET, "footer-mismatch")])
def test_stream_footer_mismatch(tmp_path: Path, field: int, finding: str) -> None:
    p = tmp_path / "v3.vmdk"
    buf = bytearray(bz2.decompress((CORPUS / "qemu-iotests/iotest-version3.vmdk.bz2")
                                   .read_bytes()))
    assert struct.unpack_from("<Q", buf, H_GD)[0] == 0xFFFFFFFFFFFFFFFF   # GD at the end
    old = struct.unpack_from("<Q", buf, field)[0]
    struct.pack_into("<Q", buf, field, old * 2)
    p.write_bytes(buf)
    with imgscan.open(p) as img:
        assert any(f.id == finding and f.severity == "error" for f in img.findings)
        assert img.virtual_size == 16 * GiB          # the footer decides, as in qemu
    # no footer at all: qemu's "Invalid footer"
    p.write_bytes(buf[:-1024])
    assert isinstance(_open_error(p), (CorruptImage, TruncatedImage))


@needs_qemu
def test_compression_bomb(made: dict[str, Made], tmp_path: Path) -> None:
    p = tmp_path / "b.vmdk"
    buf = _copy(made["stream"].path, p)
    with imgscan.open(p) as img:
        first = next(e for e in img.extents() if e.kind == "compressed")
    assert first.host is not None
    bomb = zlib.compress(bytes(4 * 65536), 9)
    assert len(bomb) <= 512 - 12          # fits the grain marker's own sector
    struct.pack_into("<I", buf, first.host - 4, len(bomb))
    buf[first.host:first.host + len(bomb)] = bomb
    p.write_bytes(buf)
    with imgscan.open(p) as img:
        with pytest.raises(CorruptImage, match="inflates beyond"):
            img.read(first.start, 512)
        assert any(f.id == "compression-bomb" for f in img.findings)


@needs_qemu
@pytest.mark.parametrize(("text", "fmt"), [
    ("version=1\n", "vmdk"),                # no comment first: the text probe's line alone
    ("  \nversion=2\r\n", "vmdk"),          # a blank line, then a CRLF line
    ("versio=1\n", "raw"),                  # a "v" but not "version=": not a descriptor
    ("version=4\n", "raw"),                 # "version=", but not a version qemu knows
], ids=["version-first", "blank-line-crlf", "not-version", "unknown-version"])
def test_descriptor_text_probe_matches_qemu(tmp_path: Path, text: str, fmt: str) -> None:
    # The registry's cheap condition for descriptor text is the whole "version=" (not
    # its "v"), so the VMDK probe no longer runs on every VHDX: what qemu-img's probe
    # calls a VMDK is still one.
    eol = "\r\n" if "\r\n" in text else "\n"
    (tmp_path / "flat.img").write_bytes(bytes(1 << 20))
    path = tmp_path / "desc.vmdk"
    path.write_text(text + eol.join(['CID=fffffffe', 'parentCID=ffffffff',
                                     'createType="monolithicFlat"',
                                     'RW 2048 FLAT "flat.img" 0', '']), newline="")
    assert qemu_info(path)["format"] == fmt
    with imgscan.open(path, external_dir=str(tmp_path)) as img:
        assert img.format == fmt
        assert img.virtual_size == qemu_info(path)["virtual-size"]


#: Keys added to a qemu-made descriptor: case mixed, a KELVIN SIGN (lower case "k"), keys
#: as long as the prefixes or shorter, "keysafe" inside a key.
DDB_KEYS = ["DDB.Encryption.x", "Encryption.foo", "xKeySafe", "\u212aeysafe", "DdB.uuid",
            "ddb", "ddb.", "ddb.encryptio", "encryption", "ddb.KEYSAFE.y", "ddb.adapterType",
            "d\u0130b.x", "ENCRYPTION.bar"]


def _ddb_reference(keys: list[str], cap: int, before: dict[str, str]
                   ) -> tuple[dict[str, str], list[str]]:
    """What the disk database and the encryption keys are by the rule, in Python's own
    str.lower(): ``before`` the ddb entries qemu wrote (first in the file)."""
    ddb = dict(before)
    encryption = []
    for i, key in enumerate(keys):
        low = key.lower()
        is_ddb = low.startswith("ddb.")
        if is_ddb and len(ddb) < cap:
            ddb.setdefault(key, f"v{i}")
        if (low.startswith("ddb.encryption") if is_ddb else low.startswith("encryption.")) \
                or "keysafe" in low:
            encryption.append(key)
    return ddb, encryption


@needs_qemu
@pytest.mark.parametrize("room", [1000, 2], ids=["uncapped", "capped"])
def test_disk_database_and_encryption_keys_by_the_rule(
        made: dict[str, Made], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        room: int) -> None:
    """The keys compared in place (ASCII) or by str.lower() (not ASCII) give what
    Python's str.lower() rule gives, the VMDK_MAX_DDB_ENTRIES cap included (room for
    two of the added keys after qemu's own)."""
    from imgscan import limits
    lines = "".join(f'{key} = "v{i}"\n' for i, key in enumerate(DDB_KEYS))
    with imgscan.open(made["flat"].path) as img:
        qemu_ddb = img.format_specific["ddb"]
    cap = len(qemu_ddb) + room
    monkeypatch.setattr(limits, "VMDK_MAX_DDB_ENTRIES", cap)
    assert not any("keysafe" in k.lower() or "encryption" in k.lower() for k in qemu_ddb)
    p = _descriptor(made, tmp_path, lambda t: t + lines)
    ddb, encryption = _ddb_reference(DDB_KEYS, cap, qemu_ddb)
    with imgscan.open(p) as img:
        fs = img.format_specific
        assert fs["ddb"] == ddb
        assert fs.get("encryption_keys", []) == encryption
        assert img.encrypted == bool(encryption)

"""VHDX: imgscan against qemu-img on images qemu made and on real ones.

Every expected value comes from qemu-img / qemu-io run on the same file, from
the corpus facts (FACTS.json, recorded with qemu-img 7.2), or, for the
hand-corrupted images, from the MS-VHDX spec: imgscan is never its own
oracle. The CRC-32C used to re-seal corrupted structures is a bitwise
implementation written here, independent of imgscan's table-driven one.

qemu-img 7.2 has no block-status callback for VHDX: its ``map`` is a single
"data" run. The map is therefore checked against what qemu does say: every
range imgscan calls zero or unallocated reads as zeros in ``qemu-img convert
-O raw``, every range imgscan calls data holds, at its host offset in the
file, exactly the guest bytes qemu reads there, and every range written with
``qemu-io write -P`` is data.
"""

from __future__ import annotations

import platform
import struct
import subprocess
from functools import partial
from pathlib import Path

import pytest
from helpers import KiB, MiB, TiB, decompress, promptly, sparse_copy, write_file
from helpers.patchers import crc32c_bitwise, vhdx_reseal
from oracles import (
    CORPUS,
    corpus_facts,
    needs_corpus,
    needs_qemu,
    qemu_info,
    qemu_io,
    qemu_map,
    qemu_raw_sha256,
    run,
    sha256_file,
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

# Spec layout (MS-VHDX 2.2-2.6), used only to corrupt qemu-made images.
_vhdx_io = partial(qemu_io, fmt="vhdx")

HEADER_OFFSETS = (64 * KiB, 128 * KiB)
HEADER_SIZE = 4 * KiB
REGION_OFFSETS = (192 * KiB, 256 * KiB)
REGION_SIZE = 64 * KiB
BAT_GUID = bytes.fromhex("6677c22d23f600429d64115e9bfd4a08")
METADATA_GUID = bytes.fromhex("06a27c8b90479a4bb8fe575f050f886e")
FILE_PARAMETERS_GUID = bytes.fromhex("3767a1ca36fa434db3b633f0aa44e76b")
VIRTUAL_SIZE_GUID = bytes.fromhex("2442a52f1bcd7648b2115dbed83bf4b8")


def _current_header(buf: bytes | bytearray) -> int:
    seqs = [struct.unpack_from("<Q", buf, h + 8)[0] for h in HEADER_OFFSETS]
    return HEADER_OFFSETS[0] if seqs[0] > seqs[1] else HEADER_OFFSETS[1]


def _regions(buf: bytes | bytearray) -> dict[bytes, tuple[int, int, int]]:
    """guid -> (file offset, length, entry offset) from the first region table."""
    count = struct.unpack_from("<I", buf, REGION_OFFSETS[0] + 8)[0]
    out = {}
    for i in range(count):
        e = REGION_OFFSETS[0] + 16 + 32 * i
        guid = bytes(buf[e:e + 16])
        off, length = struct.unpack_from("<QI", buf, e + 16)
        out[guid] = (off, length, e)
    return out


def _metadata_item(buf: bytes | bytearray, guid: bytes) -> int:
    """File offset of a metadata item."""
    moff = _regions(buf)[METADATA_GUID][0]
    count = struct.unpack_from("<H", buf, moff + 10)[0]
    for i in range(count):
        e = moff + 32 + 32 * i
        if buf[e:e + 16] == guid:
            item: int = struct.unpack_from("<I", buf, e + 16)[0]
            return moff + item
    raise AssertionError("metadata item not found")


# -- helpers ---------------------------------------------------------------------
def _create(path: Path, size: str, **opts: str) -> Path:
    o = ",".join(f"{k}={v}" for k, v in opts.items())
    run("qemu-img", "create", "-q", "-f", "vhdx", *(["-o", o] if o else []), path, size)
    return path


def _raw(path: Path, scratch: Path, limit: int | None = None) -> Path:
    """qemu's guest bytes: ``qemu-img convert -O raw``, or the first ``limit`` bytes
    by ``qemu-img dd`` (a 10 GiB disk would take a minute to convert whole)."""
    out = scratch / (path.name + ".raw")
    if limit is None:
        run("qemu-img", "convert", "-f", "vhdx", "-O", "raw", path, out)
    else:
        run("qemu-img", "dd", "-f", "vhdx", "-O", "raw", "bs=1M", f"count={limit // MiB}",
            f"if={path}", f"of={out}")
    return out


def _read_all(img: imgscan.Image, limit: int | None = None) -> str:
    return sha256_stream(img.read, img.virtual_size if limit is None else limit)


def _check_against_qemu(path: Path, scratch: Path,
                        written: list[tuple[int, int]] | None = None,
                        limit: int | None = None) -> imgscan.Image:
    """Facts, map and guest bytes of ``path`` against qemu-img on the same file.

    With ``limit``, bytes are compared over the first ``limit`` bytes; past it
    imgscan's map must hold no data, and qemu must read zeros at the start of
    each run there.
    """
    info = qemu_info(path, "vhdx")
    img = imgscan.open(path)
    assert img.format == "vhdx"
    assert img.virtual_size == info["virtual-size"]
    assert img.cluster_size == info["cluster-size"]
    assert img.dirty is False
    emap = img.extents()
    assert emap.check_complete()
    # where qemu's map says "not data", so must imgscan's (qemu 7.2 says data everywhere)
    for e in qemu_map(path, "vhdx"):
        if not e["data"]:
            for x in emap:
                if x.start < e["start"] + e["length"] and e["start"] < x.start + x.length:
                    assert x.kind != "data", (e, x)
    end = img.virtual_size if limit is None else limit
    raw = _raw(path, scratch, limit)
    try:
        with open(raw, "rb") as guest, open(path, "rb") as host:
            for x in emap:
                if x.start >= end:
                    assert x.kind != "data", x
                    n = min(x.length, 4 * MiB)
                    _vhdx_io(path, f"read -P 0 {x.start} {n}")
                    continue
                guest.seek(x.start)
                want = guest.read(min(x.length, 8 * MiB, end - x.start))
                if x.kind == "data":
                    assert x.host is not None
                    host.seek(x.host)
                    got = host.read(len(want))
                    got += bytes(len(want) - len(got))      # past EOF reads zeros
                    assert got == want, f"host bytes of {x} differ from qemu's guest bytes"
                else:
                    assert want == bytes(len(want)), f"{x} is not zeros in qemu's raw"
        for start, length in written or []:
            for x in emap:
                if x.start < start + length and start < x.start + x.length:
                    assert x.kind == "data", (start, length, x)
        assert _read_all(img, limit) == sha256_file(raw)
    finally:
        raw.unlink()
    return img


# -- CRC-32C -----------------------------------------------------------------------
def test_crc32c_known_vectors() -> None:
    from imgscan._core.crc32c import crc32c, crc32c_with_zeroed_field

    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c_bitwise(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA          # RFC 3720 B.4
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283
    data = bytes(range(256)) * 9
    assert crc32c(data) == crc32c_bitwise(data)
    assert crc32c_with_zeroed_field(b"abcdWXYZefgh", 4) == crc32c_bitwise(b"abcd\0\0\0\0efgh")


def test_crc32c_instruction_and_tables_agree() -> None:
    """The processor's crc32 instruction (where present) and the slicing-by-8 tables give
    the bitwise reference's result for every length and alignment around a word."""
    from imgscan._core.crc32c import HARDWARE, crc32c, table_crc32c

    # the instruction is used exactly where the kernel reports SSE 4.2, so this test
    # compares it wherever it can run (CI's x86-64 included)
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() == "x86_64" and cpuinfo.exists():
        assert (" sse4_2" in cpuinfo.read_text()) == HARDWARE
    data = bytes((i * 131 + 7) & 0xFF for i in range(200))
    for start in range(9):
        for length in range(0, 70):
            piece = data[start:start + length]
            expected = crc32c_bitwise(piece)
            assert crc32c(piece) == expected
            assert table_crc32c(piece) == expected
    assert crc32c(data[100:], crc32c(data[:100])) == table_crc32c(data)



#: Around each step of the zero scan (4096, 256, 16 bytes, then one): the scan runs only on
#: a buffer of at least 8192 bytes (the core's ``ZERO_RUN_MIN``), so these runs are that
#: much longer.
ZERO_SCAN_STEPS = (1, 15, 16, 17, 255, 256, 257, 4095, 4096, 4097)


@pytest.mark.parametrize("zeros", sorted({0, 8191, 8192, *(8192 + k for k in ZERO_SCAN_STEPS),
                                          65456, 200_000}))
def test_crc32c_zero_runs(zeros: int) -> None:
    """A run of zeros at the end is carried over by multiplication (x^8 per zero byte),
    not checksummed byte by byte: the result is the tables' (held to the bitwise reference
    above) for runs around the threshold and every step of the zero scan, after data and
    after nothing, with a previous result continued, and with a non-zero byte after the
    run."""
    from imgscan._core.crc32c import crc32c, crc32c_with_zeroed_field, table_crc32c

    lead = bytes((i * 37 + 11) & 0xFF or 1 for i in range(80))
    for data in (bytes(zeros), lead + bytes(zeros), lead + bytes(zeros) + b"\x01",
                 b"\x80" + bytes(zeros)):
        assert crc32c(data) == table_crc32c(data)
        assert crc32c(data, 0x12345678) == table_crc32c(data, 0x12345678)
    if zeros >= 8:
        field = lead + bytes(zeros)
        assert crc32c_with_zeroed_field(field, 4) == table_crc32c(
            field[:4] + bytes(4) + field[8:])
    if zeros == 65456:      # a VHDX region table's shape, against the bitwise reference
        assert crc32c(lead + bytes(zeros)) == crc32c_bitwise(lead + bytes(zeros))

def test_crc32c_zero_runs_from_threads() -> None:
    """Threads carrying zero runs of different lengths at once each get their own run's
    result (the tables' one): the kept last power is its length and x^(8n) in one word."""
    from concurrent.futures import ThreadPoolExecutor

    from imgscan._core.crc32c import crc32c, table_crc32c

    datas = [b"\x01" * 80 + bytes(n) for n in (65456, 65424, 9000, 200_000)]
    expected = [table_crc32c(d) for d in datas]

    def check(i: int) -> bool:
        return all(crc32c(datas[i % 4]) == expected[i % 4] for _ in range(200))

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(check, range(16)))


@needs_qemu
def test_crc32c_matches_qemu_headers(tmp_path: Path) -> None:
    from imgscan._core.crc32c import crc32c_with_zeroed_field

    path = _create(tmp_path / "h.vhdx", "64M")
    buf = path.read_bytes()
    for off, size in [(h, HEADER_SIZE) for h in HEADER_OFFSETS] + [(REGION_OFFSETS[0],
                                                                      REGION_SIZE)]:
        stored = struct.unpack_from("<I", buf, off + 4)[0]
        assert crc32c_with_zeroed_field(buf[off:off + size], 4) == stored


# -- images made by qemu-img ---------------------------------------------------------
WRITES = [(0, 4 * KiB, "0x55"), (5 * MiB, 3 * MiB, "0xaa"), (37 * MiB + 512, 1536, "0x11"),
          (99 * MiB, 1 * MiB, "0x77")]


def _written(img: Path, writes: list[tuple[int, int, str]], zeros: list[tuple[int, int]]) -> None:
    cmds = [f"write -P {p} {o} {n}" for o, n, p in writes]
    cmds += [f"write -z {o} {n}" for o, n in zeros]
    _vhdx_io(img, *cmds)


QEMU_CASES: dict[str, tuple[str, dict[str, str]]] = {
    "dynamic-1M": ("100M", {"subformat": "dynamic", "block_size": "1M"}),
    "dynamic-default": ("100M", {}),
    "dynamic-8M-nozero": ("100M", {"block_size": "8M", "block_state_zero": "off"}),
    "dynamic-32M-log4M": ("100M", {"block_size": "32M", "log_size": "4M"}),
    "fixed-1M": ("100M", {"subformat": "fixed", "block_size": "1M"}),
    "fixed-32M-nozero": ("100M", {"subformat": "fixed", "block_size": "32M",
                                  "block_state_zero": "off"}),
    "odd-size": ("104858113", {"block_size": "8M"}),     # not a whole MiB, odd sectors
}


@pytest.fixture(scope="session")
def qemu_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vhdx")
    out = {}
    for name, (size, opts) in QEMU_CASES.items():
        path = _create(d / f"{name}.vhdx", size, **opts)
        _written(path, WRITES, [(50 * MiB, 2 * MiB), (70 * MiB + 4096, 8192)])
        out[name] = path
    # qemu-img convert of a sparse raw with data at scattered offsets
    raw = d / "src.raw"
    with open(raw, "wb") as f:
        f.truncate(300 * MiB)
        for i, off in enumerate((0, 17 * MiB + 512, 123 * MiB, 299 * MiB)):
            f.seek(off)
            f.write(bytes([i + 1]) * 70000)
    out["converted"] = d / "converted.vhdx"
    run("qemu-img", "convert", "-f", "raw", "-O", "vhdx", raw, out["converted"])
    raw.unlink()
    return out


@needs_qemu
@pytest.mark.parametrize("name", [*QEMU_CASES, "converted"])
def test_qemu_made(qemu_images: dict[str, Path], name: str, tmp_path: Path) -> None:
    written = [(o, n) for o, n, _ in WRITES] if name != "converted" else []
    with _check_against_qemu(qemu_images[name], tmp_path, written) as img:
        opts = QEMU_CASES.get(name, ("", {}))[1]
        assert img.subformat == ("fixed" if opts.get("subformat") == "fixed" else "dynamic")
        assert img.backing_file is None
        assert not [f for f in img.findings if f.severity == "error"]
        assert img.format_specific["log"]["entries_replayed"] == 0


@needs_qemu
def test_two_tib_sparse(tmp_path: Path) -> None:
    """A 2 TiB dynamic image: facts and map cheaply, bytes where they were written.

    ``qemu-img convert`` would read 2 TiB (VHDX has no block status in qemu),
    so the bytes are checked with ``qemu-io read -P`` at the written places.
    """
    path = _create(tmp_path / "big.vhdx", "2T")
    _vhdx_io(path, "write -P 0x5a 1T 64k", "write -P 0xa5 2199023190016 65536")
    info = qemu_info(path, "vhdx")
    with promptly(5), imgscan.open(path) as img:
        assert (img.virtual_size, img.cluster_size) == (info["virtual-size"],
                                                        info["cluster-size"])
        emap = img.extents()
        assert emap.check_complete()
        data = [x for x in emap if x.kind == "data"]
        assert img.cluster_size is not None
        assert sum(x.length for x in data) == 2 * img.cluster_size
        assert img.read(TiB, 65536) == b"\x5a" * 65536
        assert img.read(2199023190016, 65536) == b"\xa5" * 65536
        assert img.read(TiB + 65536, 4096) == bytes(4096)
    _vhdx_io(path, "read -P 0x5a 1T 64k", "read -P 0 1099511693312 4096",
             "read -P 0xa5 2199023190016 65536")


# -- the corpus --------------------------------------------------------------------------
def _unpack(name: str, dest: Path) -> Path:
    return decompress(CORPUS / name, dest / corpus_facts()[name]["decompressed_name"])


CORPUS_VHDX = [
    "qemu-iotests/iotest-dynamic-1G.vhdx.bz2",
    "qemu-iotests/test-disk2vhd.vhdx.bz2",
    "dissect.hypervisor/vhdx/fixed.vhdx.gz",
    "dissect.hypervisor/vhdx/dynamic.vhdx.gz",
]


@needs_corpus
@pytest.mark.parametrize("name", CORPUS_VHDX)
def test_corpus_facts(name: str, tmp_path: Path) -> None:
    facts = corpus_facts()[name]["qemu_img_info"]["json"]
    path = _unpack(name, tmp_path)
    with imgscan.open(path) as img:
        assert img.format == facts["format"] == "vhdx"
        assert img.virtual_size == facts["virtual-size"]
        assert img.cluster_size == facts["cluster-size"]
        assert img.dirty is facts["dirty-flag"]
        assert img.extents().check_complete()
        expected = "fixed" if "fixed" in name else "dynamic"
        assert img.subformat == expected


@needs_corpus
@needs_qemu
@pytest.mark.parametrize("name", CORPUS_VHDX)
def test_corpus_against_live_qemu(name: str, tmp_path: Path) -> None:
    limit = 128 * MiB if "1G" in name else None       # its data lies in the first 66 MB
    _check_against_qemu(_unpack(name, tmp_path), tmp_path, limit=limit).close()


@needs_corpus
def test_corpus_disk2vhd_identical_headers(tmp_path: Path) -> None:
    """Disk2vhd writes both headers alike with one sequence number: valid (as qemu)."""
    path = _unpack("qemu-iotests/test-disk2vhd.vhdx.bz2", tmp_path)
    with imgscan.open(path) as img:
        seqs = img.format_specific["header_sequence_numbers"]
        assert seqs[0] == seqs[1]
        assert img.format_specific["creator"] == "d2v"
        assert not img.findings


@needs_corpus
def test_corpus_dirty_log_facts(tmp_path: Path) -> None:
    name = "qemu-iotests/iotest-dirtylog-10G-4M.vhdx.bz2"
    facts = corpus_facts()[name]
    path = _unpack(name, tmp_path)
    before = sha256_file(path)
    with imgscan.open(path) as img:
        assert img.dirty is True
        assert any(f.id == "dirty" for f in img.findings)
        # FACTS.json: what qemu-img said after `qemu-img check -r all` on a copy
        assert img.virtual_size == facts["qemu_img_info"]["json"]["virtual-size"]
        assert img.cluster_size == facts["qemu_img_info"]["json"]["cluster-size"]
        assert img.format_specific["log"]["entries_replayed"] >= 1
        _read_all(img, 32 * MiB)
    assert sha256_file(path) == before, "the log must be replayed in memory only"


@needs_corpus
@needs_qemu
def test_corpus_dirty_log_bytes_after_replay(tmp_path: Path) -> None:
    """Guest bytes and map equal qemu's after qemu replays the log on a scratch copy."""
    path = _unpack("qemu-iotests/iotest-dirtylog-10G-4M.vhdx.bz2", tmp_path)
    proc = subprocess.run(["qemu-img", "info", "-f", "vhdx", str(path)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode != 0 and "log" in proc.stderr    # qemu refuses read-only
    replayed = tmp_path / "replayed.vhdx"
    sparse_copy(path, replayed)
    run("qemu-img", "check", "-r", "all", "-f", "vhdx", replayed)
    with imgscan.open(path) as img, imgscan.open(replayed) as ref:
        assert ref.dirty is False
        assert [(x.start, x.length, x.kind) for x in img.extents()] == \
            [(x.start, x.length, x.kind) for x in ref.extents()]
        # the data lies in the first 19 MiB; a whole convert of 10 GiB takes a minute
        data_end = max(x.start + x.length for x in img.extents() if x.kind == "data")
        assert data_end <= 32 * MiB
        raw = _raw(replayed, tmp_path, 32 * MiB)
        assert _read_all(img, 32 * MiB) == sha256_file(raw)
    _check_against_qemu(replayed, tmp_path, limit=32 * MiB).close()


@needs_corpus
def test_corpus_differencing(tmp_path: Path) -> None:
    """qemu 7.2 cannot open it (FACTS.json); the parent locator names the parent."""
    name = "dissect.hypervisor/vhdx/differencing.avhdx.gz"
    assert corpus_facts()[name]["qemu_img_info"]["rc"] != 0
    path = _unpack(name, tmp_path)
    with imgscan.open(path) as img:
        assert img.subformat == "differencing"
        assert img.backing_file == ".\\Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx"
        loc = img.format_specific["parent_locator"]["entries"]
        assert loc["absolute_win32_path"].endswith(
            "Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx")
        assert loc["parent_linkage"] == "{ff34003b-11ed-4cf8-a166-b2be05e20b80}"
        assert any(f.id == "backing-file" for f in img.findings)
        emap = img.extents()
        assert emap.check_complete()
        kinds = {x.kind for x in emap}
        assert {"data", "unallocated"} <= kinds          # sector bitmaps decide
        img.read(0, 1 * MiB)                              # no parent: zeros where absent


# -- a log left unreplayed on purpose (from a qemu-made image) --------------------------
def _unreplay(path: Path) -> None:
    """Make qemu's last log entry pending again: the log GUID back in the current
    header, and the sector the entry wrote zeroed in place (replay restores it)."""
    buf = bytearray(path.read_bytes())
    hdr = _current_header(buf)
    log_offset = struct.unpack_from("<Q", buf, hdr + 72)[0]
    assert buf[log_offset:log_offset + 4] == b"loge"
    guid = bytes(buf[log_offset + 32:log_offset + 48])
    buf[hdr + 48:hdr + 64] = guid
    vhdx_reseal(buf, hdr, HEADER_SIZE)
    desc = log_offset + 64
    assert buf[desc:desc + 4] == b"desc"
    target = struct.unpack_from("<Q", buf, desc + 16)[0]
    buf[target:target + 4096] = bytes(4096)
    path.write_bytes(bytes(buf))


@pytest.fixture(scope="session")
def pending_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("vhdx-log")
    path = _create(d / "pending.vhdx", "64M", block_size="1M")
    # one write, one log entry (qemu logs each BAT update as its own entry)
    _vhdx_io(path, "write -P 0x4d 40M 64k")
    _unreplay(path)
    return path


@needs_qemu
def test_pending_log_replayed_in_memory(pending_log: Path, tmp_path: Path) -> None:
    before = sha256_file(pending_log)
    replayed = tmp_path / "replayed.vhdx"
    sparse_copy(pending_log, replayed)
    run("qemu-img", "check", "-r", "all", "-f", "vhdx", replayed)
    with imgscan.open(pending_log) as img:
        assert img.dirty is True
        assert img.format_specific["log"]["entries_replayed"] == 1
        assert img.read(40 * MiB, 65536) == b"\x4d" * 65536
        assert _read_all(img) == qemu_raw_sha256(replayed, tmp_path, "vhdx")
        with imgscan.open(replayed) as ref:
            assert [(x.start, x.length, x.kind) for x in img.extents()] == \
                [(x.start, x.length, x.kind) for x in ref.extents()]
    assert sha256_file(pending_log) == before


@needs_qemu
def test_looping_log_refused(pending_log: Path, tmp_path: Path) -> None:
    """An entry spanning all but one log sector sends qemu's search round forever."""
    buf = bytearray(pending_log.read_bytes())
    hdr = _current_header(buf)
    log_offset, log_length = struct.unpack_from("<Q", buf, hdr + 72)[0], \
        struct.unpack_from("<I", buf, hdr + 68)[0]
    struct.pack_into("<I", buf, log_offset + 8, log_length - 4096)
    vhdx_reseal(buf, log_offset, log_length - 4096)
    buf[log_offset + log_length - 4096:log_offset + log_length] = bytes(4096)
    path = tmp_path / "loop.vhdx"
    path.write_bytes(bytes(buf))
    with promptly(2), pytest.raises(CorruptImage, match="circle"):
        imgscan.open(path)


# -- malformed images --------------------------------------------------------------------
@pytest.fixture(scope="session")
def base_image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    d = tmp_path_factory.mktemp("vhdx-bad")
    path = _create(d / "base.vhdx", "16M", block_size="1M")
    _vhdx_io(path, "write -P 0x61 0 1M", "write -P 0x62 9M 512k")
    return path.read_bytes()


def _open_bytes(tmp_path: Path, data: bytes | bytearray, name: str = "bad.vhdx") -> imgscan.Image:
    img = imgscan.open(write_file(tmp_path, data, name))
    img.extents()
    return img


@needs_qemu
def test_truncated_everywhere(base_image: bytes, tmp_path: Path) -> None:
    lengths = sorted(set(range(8, 64 * KiB, 509)) | set(range(0, 320 * KiB + 1, 4 * KiB))
                     | {520, 64 * KiB + 4095, 128 * KiB + 4095, 256 * KiB - 1})
    with promptly(10):
        for n in lengths:
            if n < 8:
                continue
            with pytest.raises(ImageError) as exc:
                _open_bytes(tmp_path, base_image[:n])
            assert isinstance(exc.value, (TruncatedImage, CorruptImage)), (n, exc.value)
            assert "bad.vhdx" in str(exc.value)


@needs_qemu
@pytest.mark.parametrize("which", [0, 1])
def test_one_bad_header_is_a_finding(base_image: bytes, tmp_path: Path, which: int) -> None:
    buf = bytearray(base_image)
    buf[HEADER_OFFSETS[which] + 100] ^= 0xFF            # breaks its CRC-32C
    with _open_bytes(tmp_path, buf) as img:
        assert any(f.id == "corrupt" and "CRC-32C" in f.message for f in img.findings)
        assert img.virtual_size == 16 * MiB
        assert img.read(0, 4) == b"aaaa"


@needs_qemu
def test_both_headers_bad(base_image: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_image)
    for h in HEADER_OFFSETS:
        buf[h + 100] ^= 0xFF
    with pytest.raises(CorruptImage, match="no valid header"):
        _open_bytes(tmp_path, buf)


@needs_qemu
def test_equal_sequence_different_headers(base_image: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_image)
    seq = struct.unpack_from("<Q", buf, HEADER_OFFSETS[0] + 8)[0]
    struct.pack_into("<Q", buf, HEADER_OFFSETS[1] + 8, seq)
    vhdx_reseal(buf, HEADER_OFFSETS[1], HEADER_SIZE)
    with pytest.raises(CorruptImage, match="differ"):
        _open_bytes(tmp_path, buf)


@needs_qemu
def test_region_tables(base_image: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_image)
    buf[REGION_OFFSETS[0] + 200] ^= 0xFF                # first copy: CRC mismatch
    with _open_bytes(tmp_path, buf, "r1.vhdx") as img:
        assert any("region table" in f.message for f in img.findings)
        assert img.read(0, 4) == b"aaaa"
    buf[REGION_OFFSETS[1] + 200] ^= 0xFF                # both
    with pytest.raises(CorruptImage, match="no valid region table"):
        _open_bytes(tmp_path, buf, "r2.vhdx")


@needs_qemu
@pytest.mark.parametrize(("reseal", "finding"), [
    (False, "the first copy is used"),                   # second copy: CRC mismatch
    (True, "the two VHDX region table copies differ"),   # both valid, not the same bytes
])
def test_second_region_table_copy(base_image: bytes, tmp_path: Path, reseal: bool,
                                  finding: str) -> None:
    """A damaged or differing second copy is a warning, the first is used: qemu-img, which
    reads only the first, opens the file and gives the same virtual size."""
    buf = bytearray(base_image)
    buf[REGION_OFFSETS[1] + REGION_SIZE - 1] ^= 0xFF    # past every entry
    if reseal:
        vhdx_reseal(buf, REGION_OFFSETS[1], REGION_SIZE)
    path = write_file(tmp_path, buf, "second.vhdx")
    with imgscan.open(path) as img:
        assert [f.message for f in img.findings if finding in f.message]
        assert img.virtual_size == qemu_info(path, "vhdx")["virtual-size"]
        assert img.read(0, 4) == b"aaaa"


@needs_qemu
@pytest.mark.parametrize("end", [REGION_OFFSETS[1], REGION_OFFSETS[1] + 44 * KiB,
                                 REGION_OFFSETS[1] + REGION_SIZE - 1])
@pytest.mark.parametrize("damaged", [False, True])
def test_only_the_first_region_table_fits(base_image: bytes, tmp_path: Path, end: int,
                                          damaged: bool) -> None:
    """A file ending after the first region table copy but before the second's end: the
    first copy is read whole and used (the metadata table it locates is the structure
    named, at its offset) or, damaged, refused with the second copy past the end; qemu-img
    refuses the same file."""
    buf = bytearray(base_image[:end])
    if damaged:
        buf[REGION_OFFSETS[0] + 200] ^= 0xFF            # the first copy's CRC-32C
    path = write_file(tmp_path, buf, "short.vhdx")
    with pytest.raises(AssertionError, match="qemu-img"):
        qemu_info(path, "vhdx")
    with pytest.raises(ImageError) as exc:
        imgscan.open(path)
    if damaged:
        assert type(exc.value) is CorruptImage
        assert (exc.value.structure, exc.value.offset) == ("VHDX region tables",
                                                           REGION_OFFSETS[0])
        assert exc.value.problem == (
            f"no valid region table: region table at {REGION_OFFSETS[0]}: CRC-32C mismatch; "
            f"region table at {REGION_OFFSETS[1]} lies past the end of the file")
    else:
        assert type(exc.value) is TruncatedImage
        moff = _regions(base_image)[METADATA_GUID][0]
        assert (exc.value.structure, exc.value.offset) == ("VHDX metadata table", moff)
        assert exc.value.problem == f"{64 * KiB} bytes needed but the file ends at {end}"


@needs_qemu
def test_no_region_table_fits(base_image: bytes, tmp_path: Path) -> None:
    """A file ending inside the first region table copy: neither copy is read, both lie past
    the end; qemu-img refuses the same file."""
    end = REGION_OFFSETS[1] - 1
    path = write_file(tmp_path, base_image[:end], "short.vhdx")
    with pytest.raises(AssertionError, match="qemu-img"):
        qemu_info(path, "vhdx")
    with pytest.raises(TruncatedImage) as exc:
        imgscan.open(path)
    assert (exc.value.structure, exc.value.offset) == ("VHDX region tables", REGION_OFFSETS[0])
    assert exc.value.problem == (
        f"no valid region table: region table at {REGION_OFFSETS[0]} lies past the end of "
        f"the file; region table at {REGION_OFFSETS[1]} lies past the end of the file")


def _edit_region(base: bytes, guid: bytes, offset: int | None = None,
                 required: int | None = None, new_guid: bytes | None = None) -> bytearray:
    buf = bytearray(base)
    for table in REGION_OFFSETS:
        count = struct.unpack_from("<I", buf, table + 8)[0]
        for i in range(count):
            e = table + 16 + 32 * i
            if buf[e:e + 16] == guid:
                if offset is not None:
                    struct.pack_into("<Q", buf, e + 16, offset)
                if required is not None:
                    struct.pack_into("<I", buf, e + 28, required)
                if new_guid is not None:
                    buf[e:e + 16] = new_guid
        vhdx_reseal(buf, table, REGION_SIZE)
    return buf


@needs_qemu
def test_bat_and_metadata_past_eof(base_image: bytes, tmp_path: Path) -> None:
    far = (len(base_image) // MiB + 64) * MiB
    with pytest.raises(TruncatedImage, match="BAT"):
        _open_bytes(tmp_path, _edit_region(base_image, BAT_GUID, offset=far))
    with pytest.raises(TruncatedImage, match="metadata"):
        _open_bytes(tmp_path, _edit_region(base_image, METADATA_GUID, offset=far))


@needs_qemu
def test_unknown_required_region(base_image: bytes, tmp_path: Path) -> None:
    buf = _edit_region(base_image, BAT_GUID, required=1)     # known: fine
    _open_bytes(tmp_path, buf).close()
    other = bytes(range(16))
    # a third, unknown region marked required (the spec says: refuse to open)
    buf = bytearray(base_image)
    for table in REGION_OFFSETS:
        count = struct.unpack_from("<I", buf, table + 8)[0]
        e = table + 16 + 32 * count
        buf[e:e + 16] = other
        struct.pack_into("<QII", buf, e + 16, 100 * MiB, MiB, 1)
        struct.pack_into("<I", buf, table + 8, count + 1)
        vhdx_reseal(buf, table, REGION_SIZE)
    with pytest.raises(UnsupportedFeature, match="required"):
        _open_bytes(tmp_path, buf)


@needs_qemu
@pytest.mark.parametrize("block_size", [3 * MiB, 512 * KiB, 512 * MiB, 0])
def test_bad_block_size(base_image: bytes, tmp_path: Path, block_size: int) -> None:
    buf = bytearray(base_image)
    struct.pack_into("<I", buf, _metadata_item(buf, FILE_PARAMETERS_GUID), block_size)
    with pytest.raises(CorruptImage, match="block size"):
        _open_bytes(tmp_path, buf)


@needs_qemu
def test_huge_virtual_size(base_image: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_image)
    struct.pack_into("<Q", buf, _metadata_item(buf, VIRTUAL_SIZE_GUID), 1 << 60)
    with promptly(2):
        with pytest.raises(LimitExceeded, match="virtual size"):
            _open_bytes(tmp_path, buf)
        # large but legal: the BAT the region holds is too small for it
        struct.pack_into("<Q", buf, _metadata_item(buf, VIRTUAL_SIZE_GUID), 64 * TiB)
        with pytest.raises(CorruptImage, match="BAT"):
            _open_bytes(tmp_path, buf, "b2.vhdx")


@needs_qemu
def test_unknown_required_metadata(base_image: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_image)
    moff = _regions(buf)[METADATA_GUID][0]
    count = struct.unpack_from("<H", buf, moff + 10)[0]
    e = moff + 32 + 32 * count
    buf[e:e + 16] = bytes(range(16, 32))
    struct.pack_into("<III", buf, e + 16, 64 * KiB, 8, 0x4)     # IsRequired
    struct.pack_into("<H", buf, moff + 10, count + 1)
    with pytest.raises(UnsupportedFeature, match="required"):
        _open_bytes(tmp_path, buf)


@needs_qemu
def test_bat_entries_past_eof_and_overlapping(base_image: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_image)
    bat = _regions(buf)[BAT_GUID][0]
    struct.pack_into("<Q", buf, bat + 8 * 3, (4096 * MiB) | 6)     # FULLY_PRESENT far away
    struct.pack_into("<Q", buf, bat + 8 * 4, bat | 6)               # on top of the BAT
    with _open_bytes(tmp_path, buf) as img:
        ids = {(f.id, f.severity) for f in img.findings}
        assert ("truncated", "error") in ids
        assert ("corrupt", "error") in ids
        assert img.read(3 * MiB, 4096) == bytes(4096)


@needs_qemu
def test_oversized_log(base_image: bytes, tmp_path: Path) -> None:
    buf = bytearray(base_image)
    hdr = _current_header(buf)
    buf[hdr + 48:hdr + 64] = bytes(range(1, 17))                    # a log GUID: log present
    struct.pack_into("<I", buf, hdr + 68, 0xFFF00000)               # ~4 GiB of log
    vhdx_reseal(buf, hdr, HEADER_SIZE)
    with pytest.raises(LimitExceeded, match="log"):
        _open_bytes(tmp_path, buf)
    struct.pack_into("<I", buf, hdr + 68, MiB + 4096)               # not whole MiB
    vhdx_reseal(buf, hdr, HEADER_SIZE)
    with pytest.raises(CorruptImage, match="log length"):
        _open_bytes(tmp_path, buf, "b2.vhdx")


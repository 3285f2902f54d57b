"""Every cap of imgscan/limits.py at its boundary: a value at the cap is accepted, one past it
is refused (``LimitExceeded``, or a ``resource-exhaustion`` finding where the README says the
cap cuts a walk short instead of failing it).

Inputs come from real tools (qemu-img, qemu-io, sfdisk, sgdisk, hivexregedit, xorriso,
cryptsetup, mkfs.vfat, the NTFS fixtures made by mkntfs + ntfs-3g); the value each structure
holds is read from an oracle (qemu-img info / map, sfdisk --json, hivexget, sleuthkit) or from
the tool's documented output, never from imgscan. Where reaching a cap for real would take
gigabytes or minutes, the cap is moved to the value the real input holds: every decoder reads
``limits.X`` at call time (none copies a cap at import, the Cython modules included), so
``monkeypatch`` reaches them all.
Moving the cap to ``value`` and then ``value - 1`` tests the same comparison as feeding
``value`` and ``value + 1`` against the real cap.

``BOUNDARY_TESTS`` names the test of each cap; ``test_every_cap_has_a_boundary_test``
fails when limits.py gains a cap without one, and the session's check
(tests/helpers/session_checks.py) fails a full run in which any of them was skipped,
deselected or failed: a boundary test that exists but never runs proves nothing.
"""

from __future__ import annotations

import ast
import functools
import itertools
import json
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    GiB,
    KiB,
    MiB,
    copy_of,
    decompress,
    overwrite,
    qemu_create,
    sparse_file,
    unpacked_name,
    write_file,
)
from oracles import needs_qemu, qemu_info, qemu_io, qemu_map, run

import imgscan
from imgscan import limits
from imgscan.errors import CorruptImage, ImageError, LimitExceeded

HERE = Path(__file__).resolve().parent

Attempt = Callable[[], object]


# -- the two shapes of a boundary test ----------------------------------------------------
def _cap_boundary(monkeypatch: pytest.MonkeyPatch, name: str, value: int, attempt: Attempt,
                  refused: type[Exception] = LimitExceeded, *, lower: bool = False,
                  located: bool = True) -> Exception:
    """``attempt()`` passes with ``limits.NAME == value`` and fails one step past it.

    ``value`` is what the input holds (a minimum cap is passed ``lower=True``: one step past
    it is ``value + 1``). The refusal must be ``refused`` naming the structure, and its byte
    offset unless ``located`` is False (a cap on the reader's own work, not on one field).
    The cap is put back afterwards, so one test may cross several.
    """
    real = getattr(limits, name)
    monkeypatch.setattr(limits, name, value)
    attempt()
    monkeypatch.setattr(limits, name, value + 1 if lower else value - 1)
    with pytest.raises(refused) as excinfo:
        attempt()
    monkeypatch.setattr(limits, name, real)
    exc = excinfo.value
    if isinstance(exc, ImageError):
        assert exc.structure, exc
        assert isinstance(exc.offset, int) or not located, f"{name}: no offset in {exc}"
    return exc


def _ids(findings: list[dict[str, Any]] | list[imgscan.Finding]) -> list[str]:
    return [f["id"] if isinstance(f, dict) else f.id for f in findings]


def _finding_boundary(monkeypatch: pytest.MonkeyPatch, name: str, value: int,
                      findings: Callable[[], list[dict[str, Any]] | list[imgscan.Finding]]
                      ) -> None:
    """No ``resource-exhaustion`` finding with ``limits.NAME == value``, one naming NAME past it."""
    real = getattr(limits, name)
    monkeypatch.setattr(limits, name, value)
    assert "resource-exhaustion" not in _ids(findings())
    monkeypatch.setattr(limits, name, value - 1)
    got = findings()
    monkeypatch.setattr(limits, name, real)
    messages = [f["message"] if isinstance(f, dict) else f.message for f in got]
    assert any(i == "resource-exhaustion" and name in m
               for i, m in zip(_ids(got), messages, strict=True)), messages


def _findings(path: Path) -> Callable[[], list[dict[str, Any]]]:
    """The findings of a fresh ``imgscan.open(path).info()`` on every call (a cap is read
    while decoding)."""
    def findings() -> list[dict[str, Any]]:
        with imgscan.open(path) as img:
            found: list[dict[str, Any]] = img.info()["findings"]
            return found
    return findings


def _opens(path: Path, then: Callable[[imgscan.Image], object] | None = None) -> Attempt:
    """An attempt that opens ``path`` and optionally uses the image."""
    def attempt() -> None:
        with imgscan.open(path) as img:
            if then is not None:
                then(img)
    return attempt


def run_bytes(*args: str | Path) -> bytes:
    """A tool's raw stdout (hivexget and icat print file contents)."""
    return subprocess.run([str(a) for a in args], capture_output=True, check=True).stdout


def _head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of a file (the images here are sparse and large)."""
    with open(path, "rb") as f:
        return f.read(size)


def _be(data: bytes, offset: int, fmt: str) -> int:
    return int(struct.unpack_from(">" + fmt, data, offset)[0])


def _le(data: bytes, offset: int, fmt: str) -> int:
    return int(struct.unpack_from("<" + fmt, data, offset)[0])


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("limits")


# -- qcow2 ---------------------------------------------------------------------------------
# Header fields (qcow2 spec, "Header").
Q2_CLUSTER_BITS, Q2_L1_SIZE, Q2_REFTABLE_CLUSTERS = 20, 36, 56
Q2_SNAPSHOTS_OFFSET, Q2_HEADER_LENGTH = 64, 100
Q2_EXT_BITMAPS = 0x23852875


def _q2_extensions(data: bytes) -> list[tuple[int, bytes]]:
    """(type, data) of each header extension, walked as the spec lays them out."""
    pos, out = _be(data, Q2_HEADER_LENGTH, "I"), []
    while (kind := _be(data, pos, "I")) != 0:
        length = _be(data, pos + 4, "I")
        out.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 8 + (length + 7) // 8 * 8
    return out


@pytest.fixture(scope="module")
def qcow2s(work: Path) -> dict[str, Path]:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    out = {
        # 2 PiB of 64 KiB clusters: an L1 table of 4 Mi entries, exactly QCOW2_MAX_L1_BYTES.
        "l1": qemu_create(work / "l1.qcow2", "2P", "-q", fmt="qcow2"),
        # 64 PiB (MAX_VIRTUAL_SIZE) of 2 MiB clusters (QCOW2_MAX_CLUSTER_BITS).
        "huge": qemu_create(work / "huge.qcow2", 1 << 56, "-q", "-o", "cluster_size=2M",
                            fmt="qcow2"),
        "c512": qemu_create(work / "c512.qcow2", "1M", "-q", "-o", "cluster_size=512",
                            fmt="qcow2"),
        "snap": qemu_create(work / "snap.qcow2", "4M", "-q", fmt="qcow2"),
        # A backing name of qemu's longest length (QCOW2_MAX_BACKING_NAME), and with it a
        # backing format extension next to the feature name table.
        "child": qemu_create(work / "child.qcow2", "4M", "-q", "-u", "-F", "raw", "-b",
                             "b" * 1023, fmt="qcow2"),
    }
    qemu_io(out["snap"], "write -P 1 0 64k", "write -P 2 1M 64k", "write -z 2M 64k")
    for i in range(3):
        run("qemu-img", "snapshot", "-c", f"snapshot-{i}", out["snap"])
    for i in range(2):
        run("qemu-img", "bitmap", "--add", out["snap"], f"b{i}")
    raw = sparse_file(work / "data.raw", 4 * MiB)
    qemu_io(raw, "write -P 0x5a 0 3M", fmt="raw")
    out["compressed"] = work / "compressed.qcow2"
    run("qemu-img", "convert", "-c", "-O", "qcow2", "-o", "cluster_size=2M", raw,
        out["compressed"])
    return out


@needs_qemu
def test_qcow2_l1_bytes(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = qcow2s["l1"]
    assert qemu_info(path)["virtual-size"] == 2 << 50
    l1_bytes = _be(_head(path, 104), Q2_L1_SIZE, "I") * 8
    assert l1_bytes == limits.QCOW2_MAX_L1_BYTES                    # the real cap, by qemu-img
    _cap_boundary(monkeypatch, "QCOW2_MAX_L1_BYTES", l1_bytes, _opens(path))


@needs_qemu
def test_qcow2_reftable_bytes(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = qcow2s["l1"]
    head = _head(path, 104)
    size = _be(head, Q2_REFTABLE_CLUSTERS, "I") << _be(head, Q2_CLUSTER_BITS, "I")
    _cap_boundary(monkeypatch, "QCOW2_MAX_REFTABLE_BYTES", size, _opens(path))


@needs_qemu
def test_qcow2_snapshots(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = qcow2s["snap"]
    count = len(qemu_info(path)["snapshots"])
    assert count == 3
    _cap_boundary(monkeypatch, "QCOW2_MAX_SNAPSHOTS", count, _opens(path))


def _snapshot_entries(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(entry offset, extra data size, entry length unpadded) of each snapshot table entry."""
    pos = _be(data, Q2_SNAPSHOTS_OFFSET, "Q")
    for _ in range(_be(data, 60, "I")):
        extra = _be(data, pos + 36, "I")
        length = 40 + extra + _be(data, pos + 12, "H") + _be(data, pos + 14, "H")
        yield pos, extra, length
        pos += (length + 7) // 8 * 8


@needs_qemu
def test_qcow2_snapshot_table_bytes(qcow2s: dict[str, Path],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data = qcow2s["snap"].read_bytes()
    start = _be(data, Q2_SNAPSHOTS_OFFSET, "Q")
    end = max(pos + length for pos, _, length in _snapshot_entries(data))
    _cap_boundary(monkeypatch, "QCOW2_MAX_SNAPSHOT_TABLE_BYTES", end - start,
                  _opens(qcow2s["snap"]))


@needs_qemu
def test_qcow2_snapshot_extra_data(qcow2s: dict[str, Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {e for _, e, _ in _snapshot_entries(qcow2s["snap"].read_bytes())}
    assert len(extra) == 1                          # qemu writes the same extra data to each
    _cap_boundary(monkeypatch, "QCOW2_MAX_SNAPSHOT_EXTRA_DATA", extra.pop(),
                  _opens(qcow2s["snap"]))


@needs_qemu
def test_qcow2_header_extensions(qcow2s: dict[str, Path],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = qcow2s["child"]
    count = len(_q2_extensions(_head(path, 65536)))
    assert count == 2                            # backing format and feature name table
    _cap_boundary(monkeypatch, "QCOW2_MAX_HEADER_EXTENSIONS", count, _opens(path))


@needs_qemu
def test_qcow2_backing_name(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = qcow2s["child"]
    name = qemu_info(path)["backing-filename"]
    assert len(name) == limits.QCOW2_MAX_BACKING_NAME               # the real cap
    _cap_boundary(monkeypatch, "QCOW2_MAX_BACKING_NAME", len(name), _opens(path))


@needs_qemu
def test_qcow2_cluster_bits(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """qemu's smallest and largest clusters are both the real caps; below is corrupt."""
    assert qemu_info(qcow2s["c512"])["cluster-size"] == 1 << limits.QCOW2_MIN_CLUSTER_BITS
    _cap_boundary(monkeypatch, "QCOW2_MIN_CLUSTER_BITS", 9, _opens(qcow2s["c512"]),
                  CorruptImage, lower=True)
    assert qemu_info(qcow2s["huge"])["cluster-size"] == 1 << limits.QCOW2_MAX_CLUSTER_BITS
    _cap_boundary(monkeypatch, "QCOW2_MAX_CLUSTER_BITS", 21, _opens(qcow2s["huge"]))


def _bitmaps_extension(data: bytes) -> bytes:
    return next(d for kind, d in _q2_extensions(data) if kind == Q2_EXT_BITMAPS)


@needs_qemu
def test_qcow2_bitmaps(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = qcow2s["snap"]
    count = len(qemu_info(path)["format-specific"]["data"]["bitmaps"])
    assert count == _be(_bitmaps_extension(_head(path, 65536)), 0, "I") == 2
    _cap_boundary(monkeypatch, "QCOW2_MAX_BITMAPS", count, _opens(path))


@needs_qemu
def test_qcow2_bitmap_directory_bytes(qcow2s: dict[str, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = qcow2s["snap"]
    size = _be(_bitmaps_extension(_head(path, 65536)), 8, "Q")
    assert size == 2 * 32            # qemu: each entry 24 bytes + a 2-byte name, 8-aligned
    _cap_boundary(monkeypatch, "QCOW2_MAX_BITMAP_DIRECTORY_BYTES", size, _opens(path))


@needs_qemu
def test_max_virtual_size(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = qcow2s["huge"]
    assert qemu_info(path)["virtual-size"] == limits.MAX_VIRTUAL_SIZE   # the real cap
    _cap_boundary(monkeypatch, "MAX_VIRTUAL_SIZE", 1 << 56, _opens(path))


@needs_qemu
def test_max_extents(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """An extent map of exactly the cap's runs is built; one run more is refused."""
    path = qcow2s["snap"]
    runs = len(qemu_map(path))
    assert runs == 6
    _cap_boundary(monkeypatch, "MAX_EXTENTS", runs, _opens(path, lambda img: img.extents()),
                  located=False)


@needs_qemu
def test_max_read(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A read argument, not a value of the file: refused with ValueError before any I/O."""
    with imgscan.open(qcow2s["snap"]) as img:
        def read() -> None:
            assert img.read(0, 4096) == b"\x01" * 4096
        _cap_boundary(monkeypatch, "MAX_READ", 4096, read, ValueError)


@needs_qemu
def test_max_decompressed_cluster(qcow2s: dict[str, Path],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = qcow2s["compressed"]
    assert qemu_info(path)["cluster-size"] == limits.MAX_DECOMPRESSED_CLUSTER    # real cap

    def read(img: imgscan.Image) -> None:
        assert img.read(0, 4096) == b"\x5a" * 4096
    _cap_boundary(monkeypatch, "MAX_DECOMPRESSED_CLUSTER", 2 * MiB, _opens(path, read))


@needs_qemu
def test_max_backing_depth(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain of 16 backing files below the top image (the real cap) reads through."""
    chain = work / "chain"
    chain.mkdir()
    qemu_create(chain / "0.qcow2", "1M", "-q", fmt="qcow2")
    qemu_io(chain / "0.qcow2", "write -P 0x42 0 4k")
    depth = limits.MAX_BACKING_DEPTH
    for i in range(1, depth + 1):
        qemu_create(chain / f"{i}.qcow2", None, "-q", "-F", "qcow2", "-b", f"{i - 1}.qcow2",
                    fmt="qcow2")
    top = chain / f"{depth}.qcow2"
    assert len(json.loads(run("qemu-img", "info", "--backing-chain", "--output=json",
                              top))) == depth + 1

    def read() -> None:
        with imgscan.open(top, external_dir=str(chain)) as img:
            assert img.read(0, 4096) == b"\x42" * 4096
    _cap_boundary(monkeypatch, "MAX_BACKING_DEPTH", depth, read, located=False)


# -- QCOW version 1 and QED: spec ranges, hand-set at the real caps --------------------------
QCOW_CLUSTER_BITS, QCOW_L2_BITS = 32, 33
QED_CLUSTER_SIZE, QED_TABLE_SIZE = 4, 8


@needs_qemu
@pytest.mark.parametrize(("name", "field", "lower"), [
    ("QCOW_MIN_CLUSTER_BITS", QCOW_CLUSTER_BITS, True),
    ("QCOW_MAX_CLUSTER_BITS", QCOW_CLUSTER_BITS, False),
    ("QCOW_MIN_L2_BITS", QCOW_L2_BITS, True),
    ("QCOW_MAX_L2_BITS", QCOW_L2_BITS, False),
])
def test_qcow_geometry(work: Path, monkeypatch: pytest.MonkeyPatch, name: str, field: int,
                       lower: bool) -> None:
    """qemu-img writes 4 KiB clusters and 512-entry tables; the field is set to the cap."""
    path = qemu_create(work / f"{name}.qcow", "1M", "-q", fmt="qcow")
    cap = getattr(limits, name)
    overwrite(path, field, bytes([cap]))
    _cap_boundary(monkeypatch, name, cap, _opens(path), CorruptImage, lower=lower)


@needs_qemu
def test_qed_smallest_geometry(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """qemu-img creates 4 KiB clusters with 1-cluster tables (though it cannot open them)."""
    path = qemu_create(work / "small.qed", "1M", "-q", "-o", "cluster_size=4K,table_size=1",
                       fmt="qed")
    head = _head(path, 64)
    assert _le(head, QED_CLUSTER_SIZE, "I") == limits.QED_MIN_CLUSTER_SIZE
    assert _le(head, QED_TABLE_SIZE, "I") == limits.QED_MIN_TABLE_SIZE
    for name, value in (("QED_MIN_CLUSTER_SIZE", 4096), ("QED_MIN_TABLE_SIZE", 1)):
        _cap_boundary(monkeypatch, name, value, _opens(path), CorruptImage, lower=True)


@needs_qemu
def test_qed_largest_geometry(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """64 MiB clusters and 16-cluster tables (qemu-img's size arithmetic overflows on them)."""
    path = qemu_create(work / "large.qed", "1M", "-q", fmt="qed")
    overwrite(path, QED_CLUSTER_SIZE, struct.pack("<II", limits.QED_MAX_CLUSTER_SIZE,
                                                  limits.QED_MAX_TABLE_SIZE))
    for name in ("QED_MAX_CLUSTER_SIZE", "QED_MAX_TABLE_SIZE"):
        _cap_boundary(monkeypatch, name, getattr(limits, name), _opens(path), CorruptImage)


# -- VHD -----------------------------------------------------------------------------------
VHD_DATA_OFFSET, VHD_LOCATORS = 16, 576


@pytest.fixture(scope="module")
def vhd_2040g(work: Path) -> Path:
    """qemu's largest VHD (2040 GiB, its VHD_MAX_SECTORS), dynamic with 2 MiB blocks."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img not installed")
    return qemu_create(work / "2040g.vhd", "2040G", "-q", "-o", "subformat=dynamic", fmt="vpc")


@needs_qemu
def test_vhd_virtual_size(vhd_2040g: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    size = qemu_info(vhd_2040g)["virtual-size"]
    assert size == limits.VHD_MAX_VIRTUAL_SIZE                      # the real cap
    _cap_boundary(monkeypatch, "VHD_MAX_VIRTUAL_SIZE", size, _opens(vhd_2040g))


@needs_qemu
def test_vhd_bat_entries(vhd_2040g: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = -(-qemu_info(vhd_2040g)["virtual-size"] // (2 * MiB))
    _cap_boundary(monkeypatch, "VHD_MAX_BAT_ENTRIES", entries, _opens(vhd_2040g))


@needs_qemu
def test_vhd_block_size(vhd_2040g: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """qemu writes 2 MiB blocks (its only size)."""
    _cap_boundary(monkeypatch, "VHD_MAX_BLOCK_SIZE", 2 * MiB, _opens(vhd_2040g))


@needs_qemu
def test_vhd_locator_bytes(vhd_2040g: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parent locator of the real cap's bytes is read; past the cap it is skipped with a
    finding (qemu-img cannot write locators: the entry is set by hand)."""
    path = copy_of(vhd_2040g, work, "locator.vhd")
    header = _be(_head(path, 512), VHD_DATA_OFFSET, "Q")
    length = limits.VHD_MAX_LOCATOR_BYTES
    overwrite(path, header + VHD_LOCATORS, b"W2ku" + struct.pack(">IIIQ", length // 512,
                                                                   length, 0, 0))
    _finding_boundary(monkeypatch, "VHD_MAX_LOCATOR_BYTES", length, _findings(path))


# -- VDI -----------------------------------------------------------------------------------
VDI_BLOCK_EXTRA = 0x17C


@needs_qemu
def test_vdi_block_size_and_extra(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """qemu writes 1 MiB blocks; the block extra data is set by hand to the real cap."""
    path = qemu_create(work / "extra.vdi", "4M", "-q", fmt="vdi")
    assert qemu_info(path)["cluster-size"] == MiB
    _cap_boundary(monkeypatch, "VDI_MAX_BLOCK_SIZE", MiB, _opens(path))
    overwrite(path, VDI_BLOCK_EXTRA, struct.pack("<I", limits.VDI_MAX_BLOCK_EXTRA))
    _cap_boundary(monkeypatch, "VDI_MAX_BLOCK_EXTRA", limits.VDI_MAX_BLOCK_EXTRA, _opens(path))


# -- VHDX ----------------------------------------------------------------------------------
VHDX_REGION_TABLE, VHDX_METADATA_GUID = 192 * KiB, bytes.fromhex("06a27c8b90479a4bb8fe575f050f886e")
VHDX_PARENT_LOCATOR_GUID = bytes.fromhex("2d5fd3a80bb34d45abf7d3d84834ab0c")
VHDX_HEADER, VHDX_LOG_LENGTH = 64 * KiB, 68
CORPUS_REAL = HERE.parent.parent / "shared" / "corpus" / "real"


def _corpus(work: Path, name: str) -> Path:
    """A corpus file decompressed (bz2 / gz) into the work dir."""
    src = CORPUS_REAL / name
    if not src.exists():
        pytest.skip(f"{src} is absent")
    return decompress(src, work / unpacked_name(src))


def _vhdx_metadata(data: bytes) -> tuple[int, list[tuple[bytes, int, int]]]:
    """(metadata region offset, [(item GUID, offset in region, length)]) by the spec."""
    count = _le(data, VHDX_REGION_TABLE + 8, "I")
    entries = [VHDX_REGION_TABLE + 16 + 32 * i for i in range(count)]
    meta = next(_le(data, e + 16, "Q") for e in entries
                if data[e:e + 16] == VHDX_METADATA_GUID)
    items = [(data[e:e + 16], _le(data, e + 16, "I"), _le(data, e + 20, "I"))
             for e in (meta + 32 + 32 * i for i in range(_le(data, meta + 10, "H")))]
    return meta, items


@needs_qemu
def test_vhdx_tables_and_size(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """qemu's largest VHDX (64 TiB, the spec's and the real cap) and its two tables."""
    path = qemu_create(work / "64t.vhdx", "64T", "-q", fmt="vhdx")
    assert qemu_info(path)["virtual-size"] == limits.VHDX_MAX_VIRTUAL_SIZE
    _cap_boundary(monkeypatch, "VHDX_MAX_VIRTUAL_SIZE", 64 << 40, _opens(path))
    data = _head(path, 16 * MiB)
    regions = _le(data, VHDX_REGION_TABLE + 8, "I")
    assert regions == 2                                        # BAT and metadata
    exc = _cap_boundary(monkeypatch, "VHDX_MAX_REGION_ENTRIES", regions, _opens(path))
    assert "VHDX_MAX_REGION_ENTRIES" in str(exc)
    _, items = _vhdx_metadata(data)
    _cap_boundary(monkeypatch, "VHDX_MAX_METADATA_ENTRIES", len(items), _opens(path))


@pytest.fixture(scope="module")
def dirty_vhdx(work: Path) -> Path:
    """qemu-iotests' VHDX with one unreplayed log entry (a 1 MiB log)."""
    return _corpus(work, "qemu-iotests/iotest-dirtylog-10G-4M.vhdx.bz2")


def test_vhdx_log_bytes(dirty_vhdx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    length = _le(_head(dirty_vhdx, VHDX_HEADER + 80), VHDX_HEADER + VHDX_LOG_LENGTH, "I")
    assert length == MiB
    _cap_boundary(monkeypatch, "VHDX_MAX_LOG_BYTES", length, _opens(dirty_vhdx))


def _least_accepted(monkeypatch: pytest.MonkeyPatch, name: str, attempt: Attempt,
                    high: int) -> int:
    """The smallest value of a work budget with which ``attempt()`` passes (bisected).

    A budget on the reader's own steps has no field to read it from: its boundary is the
    work the input really takes, found here and then tested by ``_cap_boundary``.
    """
    low = 0
    while low < high:
        mid = (low + high) // 2
        monkeypatch.setattr(limits, name, mid)
        try:
            attempt()
        except LimitExceeded:
            low = mid + 1
        else:
            high = mid
    return low


@pytest.mark.parametrize("name", ["VHDX_MAX_LOG_SCAN_STEPS", "VHDX_MAX_LOG_SCAN_BYTES"])
def test_vhdx_log_scan(dirty_vhdx: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The search for the active log sequence within its step and checksum budgets."""
    attempt = _opens(dirty_vhdx)
    need = _least_accepted(monkeypatch, name, attempt, getattr(limits, name))
    assert need > 0
    if name.endswith("BYTES"):
        assert need % 4096 == 0                          # whole 4 KiB log sectors
    _cap_boundary(monkeypatch, name, need, attempt)


def test_vhdx_parent_locator(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hyper-V's differencing disk: a 5-entry parent locator (dissect.hypervisor's corpus)."""
    path = _corpus(work, "dissect.hypervisor/vhdx/differencing.avhdx.gz")
    data = _head(path, 16 * MiB)
    meta, items = _vhdx_metadata(data)
    offset, length = next((o, n) for g, o, n in items if g == VHDX_PARENT_LOCATOR_GUID)
    entries = _le(data, meta + offset + 18, "H")
    assert (length, entries) == (1014, 5)
    _cap_boundary(monkeypatch, "VHDX_MAX_PARENT_LOCATOR_BYTES", length, _opens(path))
    _cap_boundary(monkeypatch, "VHDX_MAX_PARENT_LOCATOR_ENTRIES", entries, _opens(path))


# -- VMDK ----------------------------------------------------------------------------------
def _descriptor(extents: int = 1, ddb: int = 1, filler: list[str] | None = None) -> str:
    """A monolithicFlat descriptor as VMware writes it, with ``extents`` extent lines,
    ``ddb`` ddb.* keys and ``filler`` comment lines (one text line each)."""
    lines = ["# Disk DescriptorFile", "version=1", "CID=fffffffe", "parentCID=ffffffff",
             'createType="monolithicFlat"', "", "# Extent description",
             *[f'RW 2048 FLAT "flat-{i}.img" 0' for i in range(extents)], "",
             "# The Disk Data Base", "#DDB", 'ddb.virtualHWVersion = "4"',
             *[f'ddb.key{i} = "{i}"' for i in range(ddb - 1)], *(filler or [])]
    return "\n".join(lines)


def test_vmdk_descriptor_size_and_lines(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Descriptors of exactly the real caps: 1 MiB - 1 bytes, 20000 lines, a 65536-char line."""
    base = _descriptor()
    lines = limits.VMDK_MAX_DESCRIPTOR_LINES
    text = _descriptor(filler=["#"] * (lines - base.count("\n") - 1))
    assert len(text.split("\n")) == lines
    path = write_file(work, text.encode(), "lines.vmdk")
    _cap_boundary(monkeypatch, "VMDK_MAX_DESCRIPTOR_LINES", lines, _opens(path))

    longest = "#" * limits.VMDK_MAX_DESCRIPTOR_LINE
    path = write_file(work, _descriptor(filler=[longest]).encode(), "line.vmdk")
    _cap_boundary(monkeypatch, "VMDK_MAX_DESCRIPTOR_LINE", len(longest), _opens(path))

    size = limits.VMDK_MAX_DESCRIPTOR_BYTES
    chunk = "#" * 999
    count, rest = divmod(size - len(base) - 1, len(chunk) + 1)
    text = _descriptor(filler=[chunk] * count + ["#" * rest])
    assert len(text) == size
    path = write_file(work, text.encode(), "bytes.vmdk")
    _cap_boundary(monkeypatch, "VMDK_MAX_DESCRIPTOR_BYTES", size, _opens(path))


def test_vmdk_extents(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    count = limits.VMDK_MAX_EXTENTS
    path = write_file(work, _descriptor(extents=count).encode(), "extents.vmdk")
    _cap_boundary(monkeypatch, "VMDK_MAX_EXTENTS", count, _opens(path))


def test_vmdk_ddb_entries(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ddb.* keys past the cap are dropped from ``details``, not refused (they are only shown)."""
    count = limits.VMDK_MAX_DDB_ENTRIES
    path = write_file(work, _descriptor(ddb=count).encode(), "ddb.vmdk")
    for cap in (count, count - 1):
        monkeypatch.setattr(limits, "VMDK_MAX_DDB_ENTRIES", cap)
        with imgscan.open(path) as img:
            assert len(img.format_specific["ddb"]) == cap


@needs_qemu
def test_vmdk_sparse_geometry(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """qemu's monolithicSparse: 512 grain table entries (the real cap), 64 KiB grains, and a
    grain directory of one entry per 32 MiB of disk."""
    path = qemu_create(work / "sparse.vmdk", "1G", "-q", fmt="vmdk")
    cluster = qemu_info(path)["cluster-size"]
    _cap_boundary(monkeypatch, "VMDK_MAX_GTES_PER_GT", 512, _opens(path), CorruptImage)
    _cap_boundary(monkeypatch, "VMDK_MAX_GRAIN_SECTORS", cluster // 512, _opens(path),
                  CorruptImage)
    _cap_boundary(monkeypatch, "VMDK_MAX_GD_ENTRIES", GiB // (512 * cluster), _opens(path))


# -- LUKS2 ---------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="cryptsetup not installed")
def test_luks2_header_bytes(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cryptsetup's largest metadata area (4 MiB, the spec's and the real cap)."""
    path = sparse_file(work / "luks2.img", 16 * MiB)
    key = write_file(work, b"imgscan", "key")
    run("cryptsetup", "luksFormat", "--batch-mode", "--pbkdf", "pbkdf2",
        "--pbkdf-force-iterations", "1000", "--key-file", key, "--type", "luks2",
        "--luks2-metadata-size", "4096k", "--luks2-keyslots-size", "1m", "--offset", "20480",
        path)
    dump = run("cryptsetup", "luksDump", path)
    size = int(dump.split("Metadata area:", 1)[1].split()[0])
    assert size == limits.LUKS2_MAX_HEADER_BYTES
    _cap_boundary(monkeypatch, "LUKS2_MAX_HEADER_BYTES", size, _opens(path))


# -- ISO 9660 ------------------------------------------------------------------------------
ISO_SECTOR = 2048


@pytest.fixture(scope="module")
def iso(work: Path) -> Path:
    """xorriso's BIOS + UEFI bootable ISO with Joliet: primary, boot record, Joliet and
    terminator descriptors; a boot catalog of validation, default, section header and
    section entry (4 entries)."""
    if shutil.which("xorriso") is None:
        pytest.skip("xorriso not installed")
    tree = work / "isotree"
    tree.mkdir()
    (tree / "boot.img").write_bytes(b"\xeb\x3c\x90" + bytes(2045))
    (tree / "efi.img").write_bytes(b"\xeb\x3c\x90EFI" + bytes(40 * KiB - 6))
    path = work / "limits.iso"
    run("xorriso", "-as", "mkisofs", "-quiet", "-J", "-V", "LIMITS", "-o", path,
        "-b", "boot.img", "-no-emul-boot", "-c", "boot.cat", "-eltorito-alt-boot",
        "-e", "efi.img", "-no-emul-boot", tree)
    return path


def _iso_descriptor_types(path: Path) -> list[int]:
    """Type bytes of the volume descriptors from sector 16 to the terminator (ECMA-119)."""
    data, types = path.read_bytes(), list[int]()
    while not types or types[-1] != 255:
        types.append(data[(16 + len(types)) * ISO_SECTOR])
    return types


def test_iso_volume_descriptors(iso: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    types = _iso_descriptor_types(iso)
    assert types == [1, 0, 2, 255]
    _finding_boundary(monkeypatch, "ISO_MAX_VOLUME_DESCRIPTORS", len(types), _findings(iso))


def test_iso_boot_catalog_entries(iso: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = run("xorriso", "-indev", iso, "-report_el_torito", "plain")
    assert report.count("El Torito boot img :") == 2        # default entry + one section entry
    # validation entry, default entry, section header, section entry
    _finding_boundary(monkeypatch, "ISO_MAX_BOOT_CATALOG_ENTRIES", 4, _findings(iso))


def test_fs_iso_descriptors(iso: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The filesystem probe finds Joliet at descriptor index 2 when it may look that far, in
    one read when the first read covers the whole set, in two when it does not."""
    from imgscan._core.filesystems import probe_volume

    data = iso.read_bytes()
    types = _iso_descriptor_types(iso)
    reads: list[tuple[int, int]] = []

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return data[offset:offset + length]

    def joliet() -> bool:
        reads.clear()
        volume = probe_volume(read, 0, len(data))
        assert volume is not None and volume.filesystem == "iso9660"
        return volume.version == "Joliet Extension"

    at = types.index(2)
    monkeypatch.setattr(limits, "FS_ISO_MAX_DESCRIPTORS", at + 1)
    assert joliet()
    monkeypatch.setattr(limits, "FS_ISO_MAX_DESCRIPTORS", at)
    assert not joliet()
    monkeypatch.undo()

    def descriptor_reads() -> int:
        return sum(16 * ISO_SECTOR <= offset < (16 + len(types)) * ISO_SECTOR
                   for offset, _ in reads)

    monkeypatch.setattr(limits, "FS_ISO_FIRST_DESCRIPTORS", len(types))
    assert joliet() and descriptor_reads() == 1
    monkeypatch.setattr(limits, "FS_ISO_FIRST_DESCRIPTORS", len(types) - 1)
    assert joliet() and descriptor_reads() == 2


# -- ZVHD / ZVHD2 (no public writer: the documented layout, as test_zvhd.py writes it) -------
def _zvhd_file(work: Path, name: str, raw: bytes, v2: bool = False) -> Path:
    from _core.test_zvhd import _zvhd, _zvhd2

    return write_file(work, _zvhd2(raw) if v2 else _zvhd(raw), name)


def _guest(blocks: int) -> bytes:
    """``blocks`` 2 MiB blocks, each a different byte pattern (so each is one record)."""
    return b"".join(bytes([i + 1]) * 65536 + bytes(2 * MiB - 65536) for i in range(blocks))


def test_zvhd_record_bytes(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _guest(1)
    path = _zvhd_file(work, "one.zvhd", raw)
    record = path.stat().st_size - 2 * 4096             # between the header and tail pages
    _cap_boundary(monkeypatch, "ZVHD_MAX_RECORD_BYTES", record,
                  _opens(path, lambda img: _read_all(img, raw)))


def _read_all(img: imgscan.Image, raw: bytes) -> None:
    assert img.read(0, len(raw)) == raw


@pytest.mark.parametrize(("spacing", "most", "kept"), [(2, 3, [0, 2, 4]), (2, 2, [0, 2]),
                                                       (5, 1, [0]), (1, 5, [0, 1, 2, 3, 4])])
def test_zvhd_checkpoints(work: Path, monkeypatch: pytest.MonkeyPatch, spacing: int, most: int,
                          kept: list[int]) -> None:
    """A copy of the inflater every ZVHD_CHECKPOINT_SPACING records, at most
    ZVHD_MAX_CHECKPOINTS of them (5 records: with spacing 2 three are due, one cap keeps
    them all, one less drops the last); reads backwards are right whatever is kept."""
    raw = _guest(5)
    path = _zvhd_file(work, "five.zvhd", raw)
    monkeypatch.setattr(limits, "ZVHD_CHECKPOINT_SPACING", spacing)
    monkeypatch.setattr(limits, "ZVHD_MAX_CHECKPOINTS", most)
    with imgscan.open(path) as img:
        for block in reversed(range(5)):
            assert img.read(block * 2 * MiB, 2 * MiB) == raw[block * 2 * MiB:(block + 1) * 2 * MiB]
        _read_all(img, raw)
        assert sorted(vars(img._container)["_checkpoints"]) == kept


def test_zvhd2_table_bytes(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index is one 512 KiB segment (the bitmap, 4 KiB, is the smaller table)."""
    path = _zvhd_file(work, "one.zvhd2", _guest(1), v2=True)
    _cap_boundary(monkeypatch, "ZVHD2_MAX_TABLE_BYTES", 512 * KiB,
                  _opens(path, lambda img: img.extents()))


# -- partition tables: caps that cut the walk and say so in a finding -----------------------
needs_sfdisk = pytest.mark.skipif(shutil.which("sfdisk") is None or shutil.which("sgdisk") is None,
                                  reason="sfdisk / sgdisk not installed")


def _sfdisk(disk: Path, script: str) -> list[dict[str, Any]]:
    """Partition ``disk`` with sfdisk; its own JSON listing of the result."""
    subprocess.run(["sfdisk", "-q", disk], input=script, text=True, capture_output=True,
                   check=True)
    table: list[dict[str, Any]] = json.loads(run("sfdisk", "--json", disk))[
        "partitiontable"]["partitions"]
    return table


@needs_sfdisk
def test_mbr_ebr_chain(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sfdisk writes at most 56 logical partitions (libfdisk's limit), so the real cap of 256
    EBRs is out of its reach (test_partitions.py cuts a hand-made chain of 5000 there)."""
    disk = sparse_file(work / "ebr.raw", 64 * MiB)
    table = _sfdisk(disk, "label: dos\nstart=2048,type=5\n" + "size=8,type=83\n" * 8)
    logical = len(table) - 1
    assert logical == 8
    _finding_boundary(monkeypatch, "MBR_MAX_EBR_CHAIN", logical, _findings(disk))


GPT_HEADER_CRC, GPT_ENTRY_COUNT = 16, 80


@pytest.fixture(scope="module")
def gpt_4m(work: Path) -> Path:
    """sfdisk's GPT with an entry array of the real cap (32768 entries of 128 bytes; sfdisk
    writes it in a second where sgdisk --resize-table takes a quarter of a minute)."""
    if shutil.which("sgdisk") is None or shutil.which("sfdisk") is None:
        pytest.skip("sfdisk / sgdisk not installed")
    disk = sparse_file(work / "gpt.raw", 64 * MiB)
    _sfdisk(disk, "label: gpt\ntable-length: 32768\nsize=2048\n")
    assert "holds up to 32768 entries" in run("sgdisk", "-p", disk)
    return disk


@needs_sfdisk
def test_gpt_entry_array_bytes(gpt_4m: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert limits.GPT_MAX_ENTRY_ARRAY_BYTES == 32768 * 128
    with imgscan.open(gpt_4m) as img:
        assert len(img.info()["partitions"]) == 1
    _finding_boundary(monkeypatch, "GPT_MAX_ENTRY_ARRAY_BYTES", 32768 * 128, _findings(gpt_4m))


@needs_sfdisk
def test_gpt_entry_size(gpt_4m: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries of the real cap (4096 bytes, no tool writes them): the same 4 MiB array read
    as 1024 entries, in both headers, their CRC32 recomputed."""
    import zlib

    disk = copy_of(gpt_4m, work, "gpt4096.raw")
    with open(disk, "r+b") as f:
        for header in (512, disk.stat().st_size - 512):
            f.seek(header)
            fields = bytearray(f.read(92))
            struct.pack_into("<II", fields, GPT_ENTRY_COUNT, 1024, limits.GPT_MAX_ENTRY_SIZE)
            struct.pack_into("<I", fields, GPT_HEADER_CRC, 0)
            struct.pack_into("<I", fields, GPT_HEADER_CRC, zlib.crc32(fields))
            f.seek(header)
            f.write(fields)
    with imgscan.open(disk) as img:
        assert len(img.info()["partitions"]) == 1
    _finding_boundary(monkeypatch, "GPT_MAX_ENTRY_SIZE", 4096, _findings(disk))


@needs_sfdisk
def test_partition_findings(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four partitions past the end of a disk cut short: four findings of one kind are all
    listed at a cap of 4; at 3 the fourth becomes one summary finding."""
    disk = sparse_file(work / "past-end.raw", 100 * MiB)
    table = _sfdisk(disk, "label: dos\n" + "".join(
        f"start={40960 + 2048 * i},size=2048\n" for i in range(4)))
    with open(disk, "r+b") as f:
        f.truncate(10 * MiB)
    assert all(p["start"] * 512 >= 10 * MiB for p in table)

    def past_end() -> list[dict[str, Any]]:
        found = _findings(disk)()
        return [f for f in found if "past the end" in f["message"]]

    monkeypatch.setattr(limits, "PARTITION_MAX_FINDINGS", 4)
    assert len(past_end()) == 4
    _finding_boundary(monkeypatch, "PARTITION_MAX_FINDINGS", 4, _findings(disk))
    monkeypatch.setattr(limits, "PARTITION_MAX_FINDINGS", 3)
    assert len(past_end()) == 3


# -- LVM2: caps on one disk's PVs that cut the reading short ----------------------------------
def test_lvm_physical_volumes_and_metadata_bytes(lvm_disk: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """helpers.lvm_disk's disk: two partitions made PVs by pvcreate, one metadata area each
    (pvck lists one mda_header). Both labels are read at a cap of 2 PVs, the second not at
    1; both mda_headers (512 bytes each, as layout.h declares) and both committed texts
    (pvck's raw_locn[0].size) are read on a budget of exactly their sum, not one byte less."""
    from helpers.lvm_disk import PARTS, partition_file, pvck, raw_locn

    disk: Path = lvm_disk["disk"]
    parts = [partition_file(disk, lvm_disk["work"], n) for n in range(1, len(PARTS) + 1)]
    assert all("mda_header_2" not in pvck(p, "--dump", "headers") for p in parts)
    _finding_boundary(monkeypatch, "LVM_MAX_PHYSICAL_VOLUMES", len(PARTS), _findings(disk))
    spent = sum(512 + raw_locn(p)["raw_locn[0].size"] for p in parts)
    _finding_boundary(monkeypatch, "LVM_MAX_METADATA_BYTES_PER_DISK", spent, _findings(disk))


# -- registry hives ------------------------------------------------------------------------
HIVES = HERE.parent.parent / "shared" / "corpus" / "hives"
needs_hivex = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("hivexregedit", "hivexsh", "hivexget"))
    or not HIVES.is_dir(), reason="hivex tools or the hive corpus absent")
DEPTH_KEY = "D"
WIDE_SUBKEYS, WIDE_VALUES = 5, 3


@pytest.fixture(scope="module")
def hive(work: Path) -> Path:
    """hivexregedit's merge onto hivex's minimal hive: a chain of keys 512 deep (the real
    REGF_MAX_DEPTH) and a key "Wide" of 5 subkeys and 3 values."""
    chain = [DEPTH_KEY * 1] * limits.REGF_MAX_DEPTH
    lines = ["Windows Registry Editor Version 5.00", ""]
    for depth in range(1, len(chain) + 1):
        lines += ["[HKEY_LOCAL_MACHINE\\SYSTEM\\" + "\\".join(chain[:depth]) + "]", ""]
    lines += ["[HKEY_LOCAL_MACHINE\\SYSTEM\\Wide]",
              *[f'"v{i}"="{i}"' for i in range(WIDE_VALUES)], ""]
    for i in range(WIDE_SUBKEYS):
        lines += [f"[HKEY_LOCAL_MACHINE\\SYSTEM\\Wide\\s{i}]", ""]
    reg = write_file(work, ("\r\n".join(lines) + "\r\n").encode(), "limits.reg")
    path = copy_of(HIVES / "minimal", work, "limits.hive")
    path.chmod(0o644)
    run("hivexregedit", "--merge", "--prefix", "HKEY_LOCAL_MACHINE\\SYSTEM", path, reg)
    return path


def _hivexsh(path: Path, *commands: str) -> list[str]:
    out = subprocess.run(["hivexsh", path], input="\n".join(commands) + "\n", text=True,
                         capture_output=True, check=True).stdout
    return out.splitlines()


def _open_hive(path: Path) -> Any:
    from imgscan._core.regf import Hive

    return Hive(path.read_bytes(), path.name)


@needs_hivex
def test_regf_subkeys_and_values(hive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    subkeys = _hivexsh(hive, "cd Wide", "ls")
    values = _hivexsh(hive, "cd Wide", "lsval")
    assert (len(subkeys), len(values)) == (WIDE_SUBKEYS, WIDE_VALUES)

    def wide() -> None:
        key = _open_hive(hive).open_key("Wide")
        assert len(list(key.subkeys())) == WIDE_SUBKEYS
        assert len(list(key.values())) == WIDE_VALUES
    _cap_boundary(monkeypatch, "REGF_MAX_SUBKEYS", len(subkeys), wide)
    _cap_boundary(monkeypatch, "REGF_MAX_VALUES", len(values), wide)


@needs_hivex
def test_regf_depth(hive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys exactly REGF_MAX_DEPTH deep are walked and named; one level less of cap fails
    both the walk and the parent-link path of the deepest key."""
    deepest = "\\".join([DEPTH_KEY] * limits.REGF_MAX_DEPTH)
    assert _hivexsh(hive, "cd " + deepest, "ls") == []          # it exists, with no subkeys

    def walk() -> None:
        assert sum(1 for path, _ in _open_hive(hive).walk() if path.startswith(DEPTH_KEY)) \
            == limits.REGF_MAX_DEPTH
    _cap_boundary(monkeypatch, "REGF_MAX_DEPTH", 512, walk)

    def path() -> None:
        assert _open_hive(hive).open_key(deepest).path == deepest
    _cap_boundary(monkeypatch, "REGF_MAX_DEPTH", 512, path)


@needs_hivex
def test_regf_big_data(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real Windows value stored in big-data segments: ProductPolicy, 23748 bytes in two
    16344-byte db segments."""
    path = decompress(HIVES / "regipy_SYSTEM_2.xz", work / "SYSTEM_2")
    key, name = r"ControlSet001\Control\ProductOptions", "ProductPolicy"
    expected = run_bytes("hivexget", path, key, name)
    assert len(expected) == 23748

    def read() -> None:
        value = _open_hive(path).open_key(key).value(name)
        assert value.raw == expected
    _cap_boundary(monkeypatch, "REGF_MAX_VALUE_DATA", len(expected), read)
    _cap_boundary(monkeypatch, "REGF_MAX_DB_SEGMENTS", -(-len(expected) // 16344), read)


@pytest.mark.skipif(not (HIVES / "regipy_SYSTEM_B.LOG2.xz").is_file(),
                    reason="the dirty SYSTEM hive of the corpus is absent")
def test_regf_log_hive_bins(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real dirty SYSTEM's logs: the largest hive bins size a log entry claims, as
    regipy's HvLE structure reads them, is replayed; one byte of cap below, refused."""
    from regipy.structs import TRANSACTION_LOG

    from imgscan._core.regf_log import replay

    names = ("regipy_SYSTEM_B", "regipy_SYSTEM_B.LOG1", "regipy_SYSTEM_B.LOG2")
    primary, *logs = (decompress(HIVES / f"{n}.xz", work / n).read_bytes() for n in names)
    claims = []                                 # (hive bins size, log, offset of the field)
    for name, log in zip(names[1:], logs, strict=True):
        off = 512
        while log[off:off + 4] == b"HvLE":
            entry = TRANSACTION_LOG.parse(log[off:])
            claims.append((entry.hive_bin_size, name, off + 16))
            off += entry.log_size
    largest = max(c[0] for c in claims)
    _, log_name, offset = next(c for c in claims if c[0] == largest)  # the first refused

    def attempt() -> None:
        done, problems = replay(primary, list(zip(names[1:], logs, strict=True)))
        assert done is not None and done.entries == 24, problems
    exc = _cap_boundary(monkeypatch, "REGF_LOG_MAX_HIVE_BINS", largest, attempt)
    assert isinstance(exc, ImageError) and (exc.path, exc.offset) == (log_name, offset)



# -- NTFS (tests/fixtures/ntfs/win.img, made by mkntfs + ntfs-3g; oracles: sleuthkit) -------
needs_tsk = pytest.mark.skipif(not all(shutil.which(t) for t in ("fsstat", "istat", "icat",
                                                                  "fls")),
                               reason="sleuthkit absent")
FRAGMENTED = r"\Windows\Temp\fragmented.bin"


@pytest.fixture(scope="module")
def ntfs(work: Path) -> Path:
    return decompress(HERE / "fixtures" / "ntfs" / "win.img.xz", work / "win.img")


def _volume(path: Path, reads: list[int] | None = None) -> Any:
    """A fresh NtfsVolume over the file's bytes (``reads`` collects each read's offset)."""
    from imgscan._core.ntfs import NtfsVolume

    data = _bytes_of(path)

    def read(offset: int, length: int) -> bytes:
        if reads is not None:
            reads.append(offset)
        return data[offset:offset + length]
    return NtfsVolume(read, 0, len(data), path.name)


@functools.cache
def _bytes_of(path: Path) -> bytes:
    """The bytes of the NTFS fixture, read once (per module: see ``_forget_bytes``)."""
    return path.read_bytes()


@pytest.fixture(scope="module", autouse=True)
def _forget_bytes() -> Iterator[None]:
    """The 48 MiB NTFS fixture is not kept for the rest of the suite."""
    yield
    _bytes_of.cache_clear()


def _istat(path: Path, inode: int) -> str:
    return run("istat", path, str(inode))


def _record(ntfs: Path, path: str) -> int:
    return int(_volume(ntfs).open(path).record_number)


@needs_tsk
def test_ntfs_record_size(ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap covers MFT records (1 KiB here) and index records (4 KiB)."""
    facts = run("fsstat", ntfs)
    sizes = [int(facts.split(what, 1)[1].split()[0])
             for what in ("Size of MFT Entries:", "Size of Index Records:")]
    assert sizes == [1024, 4096]
    size = max(sizes)
    _cap_boundary(monkeypatch, "NTFS_MAX_RECORD_SIZE", size, lambda: _volume(ntfs),
                  CorruptImage)


def _run_count(istat: str) -> int:
    """Runs of the first $DATA attribute: maximal stretches of consecutive clusters."""
    body = istat.split("Type: $DATA", 1)[1].split("\n", 1)[1]
    clusters: list[int] = []
    for line in body.splitlines():
        if not line.strip() or not line.replace(" ", "").isdigit():
            break
        clusters += [int(c) for c in line.split()]
    return 1 + sum(b != a + 1 for a, b in itertools.pairwise(clusters))


@needs_tsk
def test_ntfs_runs_and_attribute_list(ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fragmented.bin: 353 runs, in extension records behind a non-resident attribute list
    of 5 entries (160 bytes)."""
    inode = _record(ntfs, FRAGMENTED)
    istat = _istat(ntfs, inode)
    runs = _run_count(istat)
    assert runs == 353
    attribute_list = run_bytes("icat", ntfs, f"{inode}-32")
    entries, pos = 0, 0
    while pos < len(attribute_list):             # entry length at byte 4 of each entry
        pos += _le(attribute_list, pos + 4, "H")
        entries += 1
    assert (entries, len(attribute_list)) == (5, 160)
    assert "$ATTRIBUTE_LIST (32-4)   Name: N/A   Non-Resident" in istat

    def runs_of() -> None:
        assert len(_volume(ntfs).open(FRAGMENTED).runs()) == runs
    _cap_boundary(monkeypatch, "NTFS_MAX_RUNS", runs, runs_of)
    _cap_boundary(monkeypatch, "NTFS_MAX_ATTRIBUTE_LIST_ENTRIES", entries, runs_of)
    _cap_boundary(monkeypatch, "NTFS_MAX_ATTRIBUTE_LIST_BYTES", len(attribute_list), runs_of)


def test_ntfs_lookup_steps_and_components(ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def lookup() -> None:
        assert _volume(ntfs).open(FRAGMENTED).size == 1600000
    steps = _least_accepted(monkeypatch, "NTFS_MAX_LOOKUP_STEPS", lookup, 1000)
    # at least the root and one record per component
    assert steps >= 1 + FRAGMENTED.count("\\")
    _cap_boundary(monkeypatch, "NTFS_MAX_LOOKUP_STEPS", steps, lookup)
    _cap_boundary(monkeypatch, "NTFS_MAX_PATH_COMPONENTS", FRAGMENTED.count("\\"), lookup)


@needs_tsk
def test_ntfs_index(ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """\\many: 300 names (fls) in 22 index nodes (the $I30 bitmap); its $INDEX_ROOT holds one
    entry (56 bytes: headers and a bare sub-node link), so the tree is 2 levels below it."""
    inode = _record(ntfs, "many")
    names = run("fls", ntfs, str(inode)).splitlines()
    nodes = sum(bin(b).count("1") for b in run_bytes("icat", ntfs, f"{inode}-176"))
    assert (len(names), nodes) == (300, 22)
    assert "$INDEX_ROOT (144-2)   Name: $I30   Resident   size: 56" in _istat(ntfs, inode)

    def listing() -> None:
        assert len(_volume(ntfs).listdir("many")) == len(names)

    def lookup() -> None:
        assert _volume(ntfs).lookup(r"many\File_With_A_Longish_Name_0299.txt") is not None
    _cap_boundary(monkeypatch, "NTFS_MAX_DIRECTORY_ENTRIES", len(names), listing)
    _cap_boundary(monkeypatch, "NTFS_MAX_INDEX_NODES", nodes, listing)
    _cap_boundary(monkeypatch, "NTFS_MAX_INDEX_DEPTH", 2, listing)
    _cap_boundary(monkeypatch, "NTFS_MAX_INDEX_DEPTH", 2, lookup)


@needs_tsk
def test_ntfs_compression_unit_and_read(ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """text.log is compressed in units of 16 clusters of 4 KiB (64 KiB)."""
    inode = _record(ntfs, r"\Compressed\text.log")
    expected = run_bytes("icat", ntfs, str(inode))

    def read() -> None:
        assert _volume(ntfs).open(r"\Compressed\text.log").read() == expected
    _cap_boundary(monkeypatch, "NTFS_MAX_COMPRESSION_UNIT_BYTES", 16 * 4096, read)
    _cap_boundary(monkeypatch, "NTFS_MAX_FILE_READ", len(expected), read, located=False)


def test_ntfs_inode_cache(ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for N parsed records, opening N records and then the first again reads
    nothing; with room for N - 1 the cache is emptied on the N-th and the first is re-read."""
    numbers = [_record(ntfs, p) for p in (r"\bootmgr", r"\ads.txt", r"\Boot\BCD")]

    def reopen_reads(cache: int) -> int:
        monkeypatch.setattr(limits, "NTFS_INODE_CACHE", cache)
        reads: list[int] = []
        vol = _volume(ntfs, reads)
        for n in numbers:
            vol.open_record(n)
        before = len(reads)
        vol.open_record(numbers[0])
        return len(reads) - before

    # The volume caches a few records of its own ($MFT, the root ...): the smallest cache
    # that keeps ours is found by growing it, then one less must lose the first of ours.
    size = len(numbers)
    while reopen_reads(size) != 0:
        size += 1
    assert reopen_reads(size - 1) > 0


@needs_tsk
def test_ntfs_entry_cache(ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The (directory, name) -> record entries path lookups keep share the record cache's
    cap: kept, the second round of the same lookups reads nothing; emptied at every
    insert (a cap of 1), it reads again. Either way the paths name the records
    sleuthkit's ``ifind -n`` finds."""
    paths = [r"\bootmgr", r"\ads.txt", r"\Boot\BCD", r"\Boot", r"\Boot\BCD"]
    expected = [int(run("ifind", "-n", p.replace("\\", "/"), ntfs).strip()) for p in paths]

    def second_round_reads(cache: int) -> int:
        monkeypatch.setattr(limits, "NTFS_INODE_CACHE", cache)
        reads: list[int] = []
        vol = _volume(ntfs, reads)
        first = [vol.lookup(p) for p in paths]
        before = len(reads)
        again = [vol.lookup(p) for p in paths]
        for found in (first, again):
            assert [f.record_number for f in found if f is not None] == expected
        return len(reads) - before

    assert second_round_reads(1024) == 0
    assert second_round_reads(1) > 0


# -- filesystem probes ---------------------------------------------------------------------
needs_mtools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("mkfs.vfat", "mcopy", "mlabel", "blkid")),
    reason="mkfs.vfat / mtools / blkid absent")
FILES_BEFORE_LABEL = 40


def _fat_with_deep_label(work: Path, name: str, *mkfs: str) -> Path:
    """mkfs.vfat with no label, 40 files of 8.3 names (one directory entry each) copied into
    the root by mcopy, then mlabel: the label entry takes the first free slot, entry 40."""
    files = work / f"{name}-files"
    files.mkdir()
    for i in range(FILES_BEFORE_LABEL):
        (files / f"F{i:02d}.TXT").write_text(f"{i}\n")
    disk = sparse_file(work / f"{name}.img", 40 * MiB)
    run("mkfs.vfat", *mkfs, disk)
    run("mcopy", "-i", disk, *sorted(files.iterdir()), "::/")
    run("mlabel", "-i", disk, "::DEEPLABEL")
    assert "LABEL=DEEPLABEL" in run("blkid", "-p", "-o", "export", disk).splitlines()
    return disk


def _probe_label(disk: Path, reads: list[int] | None = None) -> str | None:
    from imgscan._core.filesystems import probe_volume

    def read(offset: int, length: int) -> bytes:     # a probe reads a few small pieces
        if reads is not None:
            reads.append(offset)
        with open(disk, "rb") as f:
            f.seek(offset)
            return f.read(length)
    volume = probe_volume(read, 0, disk.stat().st_size)
    assert volume is not None
    label: str | None = volume.label
    return label


@needs_mtools
def test_fs_fat_directory_scan_and_chunk(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAT16: the label entry ends 41 entries (1312 bytes) into the root directory."""
    disk = _fat_with_deep_label(work, "fat16", "-F", "16")
    needed = 32 * (FILES_BEFORE_LABEL + 1)
    monkeypatch.setattr(limits, "FS_MAX_DIRECTORY_SCAN", needed)
    assert _probe_label(disk) == "DEEPLABEL"
    monkeypatch.setattr(limits, "FS_MAX_DIRECTORY_SCAN", needed - 1)
    assert _probe_label(disk) is None
    monkeypatch.undo()
    # Chunks of whole entries: one read when the first chunk holds the label, two when it
    # falls one entry short.
    boot = _head(disk, 512)                 # the root directory follows the reserved sectors
    root = (_le(boot, 14, "H") + boot[16] * _le(boot, 22, "H")) * _le(boot, 11, "H")  # and FATs
    for chunk, chunks in ((needed, 1), (needed - 32, 2)):
        monkeypatch.setattr(limits, "FS_DIRECTORY_CHUNK", chunk)
        reads: list[int] = []
        assert _probe_label(disk, reads) == "DEEPLABEL"
        assert len([r for r in reads if root <= r < root + needed]) == chunks


@needs_mtools
def test_fs_fat_chain(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAT32 with 512-byte clusters (16 entries): the label entry (41st) is in the root
    directory's third cluster."""
    disk = _fat_with_deep_label(work, "fat32", "-F", "32", "-s", "1")
    clusters = FILES_BEFORE_LABEL // 16 + 1
    monkeypatch.setattr(limits, "FS_MAX_FAT_CHAIN", clusters)
    assert _probe_label(disk) == "DEEPLABEL"
    monkeypatch.setattr(limits, "FS_MAX_FAT_CHAIN", clusters - 1)
    assert _probe_label(disk) is None


@needs_tsk
def test_fs_mft_record(ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The NTFS label comes from $Volume's 1 KiB record; past the cap it is not read."""
    facts = run("fsstat", ntfs)
    label = facts.split("Volume Name:", 1)[1].splitlines()[0].strip()
    size = int(facts.split("Size of MFT Entries:", 1)[1].split()[0])
    monkeypatch.setattr(limits, "FS_MAX_MFT_RECORD", size)
    assert _probe_label(ntfs) == label == "WinSys"
    monkeypatch.setattr(limits, "FS_MAX_MFT_RECORD", size - 1)
    assert _probe_label(ntfs) is None


# -- Windows inspection (tests/fixtures/windows/uefi.img; oracles: sleuthkit, mtools, hivex) -
WIN_ROOT, ESP = 104448, 2048            # partition 3 (NTFS) and 1 (the ESP), in sectors


def _windows_fixture(work: Path, name: str) -> Path:
    return decompress(HERE / "fixtures" / "windows" / f"{name}.img.xz", work / f"{name}.img")


@pytest.fixture(scope="module")
def uefi(work: Path) -> Path:
    path = _windows_fixture(work, "uefi")
    starts = [p["start"] for p in json.loads(run("sfdisk", "--json", path))[
        "partitiontable"]["partitions"]]
    assert starts[0] == ESP and starts[2] == WIN_ROOT
    return path


def _windows(disk: Path) -> tuple[dict[str, Any] | None, list[imgscan.Finding]]:
    from imgscan.guest.windows import inspect
    from imgscan.layout import of_guest

    with imgscan.open(disk) as img:
        return inspect(img.disk().read, of_guest(img.guest()))


def _windows_findings(disk: Path) -> Callable[[], list[imgscan.Finding]]:
    return lambda: _windows(disk)[1]


def _ntfs_size(disk: Path, path: str, start: int = WIN_ROOT) -> int:
    """The size of the file's $DATA in the NTFS at sector ``start``, by sleuthkit."""
    inode = run("ifind", "-o", str(start), "-n", path, disk).strip()
    data = run("istat", "-o", str(start), disk, inode).split("Type: $DATA", 1)[1]
    return int(data.split("size: ", 1)[1].split()[0])


@needs_tsk
def test_windows_hive_and_config_bytes(uefi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hive = max(_ntfs_size(uefi, f"/Windows/System32/config/{name}")
               for name in ("SYSTEM", "SOFTWARE", "SAM"))
    _finding_boundary(monkeypatch, "WINDOWS_MAX_HIVE_BYTES", hive, _windows_findings(uefi))
    conf = _ntfs_size(uefi, "/Program Files/Cloudbase Solutions/Cloudbase-Init/conf/"
                      "cloudbase-init.conf")
    _finding_boundary(monkeypatch, "WINDOWS_MAX_CONFIG_BYTES", conf, _windows_findings(uefi))


@needs_tsk
def test_windows_bitmap_bytes(uefi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bitmap = _ntfs_size(uefi, "/$Bitmap")
    _finding_boundary(monkeypatch, "WINDOWS_MAX_BITMAP_BYTES", bitmap, _windows_findings(uefi))
    assert _windows(uefi)[0]["free_bytes"] is not None  # type: ignore[index]


def _esp_file(uefi: Path, work: Path, path: str) -> Path:
    out = work / Path(path).name
    run("mcopy", "-n", "-i", f"{uefi}@@{ESP * 512}", f"::{path}", out)
    return out


@needs_mtools
@needs_hivex
def test_windows_entries(uefi: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries past the cap are not looked at: 3 BCD objects (hivexsh) all counted at a cap
    of 3, 2 at a cap of 2 (the Tcpip interfaces and MountedDevices share the cap)."""
    bcd = _esp_file(uefi, work, "/EFI/Microsoft/Boot/BCD")
    objects = len(_hivexsh(bcd, "cd Objects", "ls"))
    assert objects == 3
    for cap in (objects, objects - 1):
        monkeypatch.setattr(limits, "WINDOWS_MAX_ENTRIES", cap)
        windows = _windows(uefi)[0]
        assert windows is not None and windows["bcd"]["objects"] == cap


@needs_mtools
def test_windows_fat_file_and_directory(uefi: Path, work: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The BCD store on the ESP: 16 KiB (mcopy), in directories of a few entries; on a BIOS
    disk's NTFS system partition (sleuthkit) the same cap applies."""
    size = len(_esp_file(uefi, work, "/EFI/Microsoft/Boot/BCD").read_bytes())
    assert size == 16 * KiB
    _finding_boundary(monkeypatch, "FAT_MAX_FILE_BYTES", size, _windows_findings(uefi))
    bios = _windows_fixture(work, "bios")
    size = _ntfs_size(bios, "/Boot/BCD", start=2048)
    _finding_boundary(monkeypatch, "FAT_MAX_FILE_BYTES", size, _windows_findings(bios))

    def bcd_found() -> None:
        windows = _windows(uefi)[0]
        if windows is None or windows["bcd"] is None:
            raise LimitExceeded("uefi.img", "ESP directory", 0, "BCD not found")
    need = _least_accepted(monkeypatch, "FAT_MAX_DIRECTORY_BYTES", bcd_found, 4096)
    assert need % 32 == 0                                # whole directory entries
    _cap_boundary(monkeypatch, "FAT_MAX_DIRECTORY_BYTES", need, bcd_found)


# -- fingerprints --------------------------------------------------------------------------
@needs_qemu
def test_fingerprint_chunks(qcow2s: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A 4 MiB disk is 4 chunks of 1 MiB (test_fingerprint.py checks the digests)."""
    path = qcow2s["snap"]
    chunks = -(-qemu_info(path)["virtual-size"] // MiB)
    assert chunks == 4
    _cap_boundary(monkeypatch, "MAX_FINGERPRINT_CHUNKS", chunks,
                  lambda: imgscan.fingerprint(path, "xxh3-64-stream"), located=False)


# -- every cap has its test ----------------------------------------------------------------
#: Each public name of imgscan/limits.py -> the test of its boundary: a test of this file, or
#: "file::test" for a boundary test that lives with its decoder's tests.
BOUNDARY_TESTS: dict[str, str] = {
    "REMOTE_MAX_FETCH_BYTES": "remote/test_remote.py::test_fetch_cap",
    "OVA_MAX_MEMBERS": "_core/test_tar.py::test_members_cap",
    "OVA_MAX_PAX_BYTES": "_core/test_tar.py::test_pax_bytes_cap",
    "OVF_MAX_DESCRIPTOR_BYTES": "_core/test_ovf.py::test_descriptor_bytes_cap",
    "OVF_MAX_DEPTH": "_core/test_ovf.py::test_depth_cap",
    "OVF_MAX_ELEMENTS": "_core/test_ovf.py::test_elements_cap",
    "OVF_MAX_DISKS": "_core/test_ovf.py::test_disks_cap",
    "OVA_MAX_MANIFEST_BYTES": "_core/test_ova.py::test_manifest_bytes_cap",
    "OVA_MAX_CERT_BYTES": "_core/test_ova_cert.py::test_cert_bytes_cap",
    "NTFS_MAX_REPARSE_FOLLOWS": "_core/test_ntfs_windows.py::test_link_follows_cap",
    "NTFS_MAX_REPARSE_BYTES": "_core/test_ntfs_windows.py::test_reparse_bytes_cap",
    "WOF_MAX_CHUNK_BYTES": "_core/test_ntfs_windows.py::test_wof_chunk_cap",
    "FS_MAX_SYMLINK_FOLLOWS": "_core/test_ext4.py::test_symlink_follows_cap",
    "FS_MAX_PATH_COMPONENTS": "_core/test_ext4.py::test_path_components_cap",
    "FS_MAX_FILE_READ": "_core/test_ext4.py::test_file_read_cap",
    "EXT4_MAX_EXTENT_DEPTH": "_core/test_ext4.py::test_extent_depth_cap",
    "EXT4_MAX_MAP_BLOCKS": "_core/test_ext4.py::test_map_blocks_cap",
    "EXT4_MAX_DIRECTORY_BYTES": "_core/test_ext4.py::test_directory_bytes_cap",
    "XFS_MAX_FORK_EXTENTS": "_core/test_xfs.py::test_fork_extents_cap",
    "XFS_MAX_BMBT_DEPTH": "_core/test_xfs.py::test_bmbt_depth_cap",
    "XFS_MAX_DIRECTORY_BYTES": "_core/test_xfs.py::test_directory_bytes_cap",
    "LVM_MAX_METADATA_AREA_BYTES": "_core/test_lvm.py::test_metadata_caps",
    "LVM_MAX_METADATA_BYTES": "_core/test_lvm.py::test_metadata_caps",
    "LVM_MAX_NESTING": "_core/test_lvm.py::test_structure_caps",
    "LVM_MAX_ITEMS": "_core/test_lvm.py::test_structure_caps",
    "LVM_MAX_LVS": "_core/test_lvm.py::test_structure_caps",
    "LVM_MAX_SEGMENTS": "_core/test_lvm.py::test_structure_caps",
    "LVM_MAX_STRIPES": "_core/test_lvm.py::test_structure_caps",
    "LVM_MAX_PHYSICAL_VOLUMES": "test_lvm_physical_volumes_and_metadata_bytes",
    "LVM_MAX_METADATA_BYTES_PER_DISK": "test_lvm_physical_volumes_and_metadata_bytes",
    "BTRFS_MAX_TREE_LEVEL": "_core/test_btrfs.py::test_tree_level_cap",
    "BTRFS_MAX_NODES_VISITED": "_core/test_btrfs.py::test_nodes_visited_cap",
    "BTRFS_MAX_CHUNKS": "_core/test_btrfs.py::test_chunks_cap",
    "BTRFS_MAX_INLINE_EXTENT": "_core/test_btrfs.py::test_inline_extent_cap",
    "BTRFS_MAX_DECOMPRESSED_EXTENT": "_core/test_btrfs.py::test_decompressed_extent_cap",
    "BTRFS_MAX_SUBVOLUMES": "_core/test_btrfs.py::test_subvolumes_cap",
    "QCOW2_MAX_L1_BYTES": "test_qcow2_l1_bytes",
    "QCOW2_MAX_REFTABLE_BYTES": "test_qcow2_reftable_bytes",
    "QCOW2_MAX_SNAPSHOTS": "test_qcow2_snapshots",
    "QCOW2_MAX_SNAPSHOT_TABLE_BYTES": "test_qcow2_snapshot_table_bytes",
    "QCOW2_MAX_HEADER_EXTENSIONS": "test_qcow2_header_extensions",
    "QCOW2_MAX_BACKING_NAME": "test_qcow2_backing_name",
    "QCOW2_MIN_CLUSTER_BITS": "test_qcow2_cluster_bits",
    "QCOW2_MAX_CLUSTER_BITS": "test_qcow2_cluster_bits",
    "QCOW2_MAX_SNAPSHOT_EXTRA_DATA": "test_qcow2_snapshot_extra_data",
    "QCOW2_MAX_BITMAPS": "test_qcow2_bitmaps",
    "QCOW2_MAX_BITMAP_DIRECTORY_BYTES": "test_qcow2_bitmap_directory_bytes",
    "MAX_VIRTUAL_SIZE": "test_max_virtual_size",
    "QCOW_MIN_CLUSTER_BITS": "test_qcow_geometry",
    "QCOW_MAX_CLUSTER_BITS": "test_qcow_geometry",
    "QCOW_MIN_L2_BITS": "test_qcow_geometry",
    "QCOW_MAX_L2_BITS": "test_qcow_geometry",
    "QCOW_MAX_L1_BYTES": "_core/test_qcow.py::test_l1_cap_boundary",
    "QCOW_MAX_BACKING_NAME": "_core/test_qcow.py::test_backing_name_length_boundary",
    "VHD_MAX_BAT_ENTRIES": "test_vhd_bat_entries",
    "VHD_MAX_BLOCK_SIZE": "test_vhd_block_size",
    "VHD_MAX_VIRTUAL_SIZE": "test_vhd_virtual_size",
    "VHD_MAX_LOCATOR_BYTES": "test_vhd_locator_bytes",
    "VDI_MAX_BLOCKS": "_core/test_vdi.py::test_blocks_cap_boundary",
    "VDI_MAX_BLOCK_SIZE": "test_vdi_block_size_and_extra",
    "VDI_MAX_BLOCK_EXTRA": "test_vdi_block_size_and_extra",
    "QED_MIN_CLUSTER_SIZE": "test_qed_smallest_geometry",
    "QED_MAX_CLUSTER_SIZE": "test_qed_largest_geometry",
    "QED_MIN_TABLE_SIZE": "test_qed_smallest_geometry",
    "QED_MAX_TABLE_SIZE": "test_qed_largest_geometry",
    "QED_MAX_BACKING_NAME": "_core/test_qed.py::test_backing_name_length_boundary",
    "LUKS2_MAX_HEADER_BYTES": "test_luks2_header_bytes",
    "ISO_MAX_VOLUME_DESCRIPTORS": "test_iso_volume_descriptors",
    "ISO_MAX_BOOT_CATALOG_ENTRIES": "test_iso_boot_catalog_entries",
    "ZVHD_MAX_RECORD_BYTES": "test_zvhd_record_bytes",
    "ZVHD_CHECKPOINT_SPACING": "test_zvhd_checkpoints",
    "ZVHD_MAX_CHECKPOINTS": "test_zvhd_checkpoints",
    "ZVHD2_MAX_TABLE_BYTES": "test_zvhd2_table_bytes",
    "MAX_EXTENTS": "test_max_extents",
    "MAX_READ": "test_max_read",
    "MAX_DECOMPRESSED_CLUSTER": "test_max_decompressed_cluster",
    "MAX_BACKING_DEPTH": "test_max_backing_depth",
    "MAX_FINGERPRINT_CHUNKS": "test_fingerprint_chunks",
    "VMDK_MAX_DESCRIPTOR_BYTES": "test_vmdk_descriptor_size_and_lines",
    "VMDK_MAX_DESCRIPTOR_LINES": "test_vmdk_descriptor_size_and_lines",
    "VMDK_MAX_DESCRIPTOR_LINE": "test_vmdk_descriptor_size_and_lines",
    "VMDK_MAX_EXTENTS": "test_vmdk_extents",
    "VMDK_MAX_GD_ENTRIES": "test_vmdk_sparse_geometry",
    "VMDK_MAX_GTES_PER_GT": "test_vmdk_sparse_geometry",
    "VMDK_MAX_GRAIN_SECTORS": "test_vmdk_sparse_geometry",
    "VMDK_MAX_DDB_ENTRIES": "test_vmdk_ddb_entries",
    "MBR_MAX_EBR_CHAIN": "test_mbr_ebr_chain",
    "GPT_MAX_ENTRY_ARRAY_BYTES": "test_gpt_entry_array_bytes",
    "GPT_MAX_ENTRY_SIZE": "test_gpt_entry_size",
    "PARTITION_MAX_FINDINGS": "test_partition_findings",
    "VHDX_MAX_VIRTUAL_SIZE": "test_vhdx_tables_and_size",
    "VHDX_MAX_REGION_ENTRIES": "test_vhdx_tables_and_size",
    "VHDX_MAX_METADATA_ENTRIES": "test_vhdx_tables_and_size",
    "VHDX_MAX_LOG_BYTES": "test_vhdx_log_bytes",
    "VHDX_MAX_LOG_SCAN_STEPS": "test_vhdx_log_scan",
    "VHDX_MAX_LOG_SCAN_BYTES": "test_vhdx_log_scan",
    "VHDX_MAX_PARENT_LOCATOR_BYTES": "test_vhdx_parent_locator",
    "VHDX_MAX_PARENT_LOCATOR_ENTRIES": "test_vhdx_parent_locator",
    "REGF_MAX_SUBKEYS": "test_regf_subkeys_and_values",
    "REGF_MAX_VALUES": "test_regf_subkeys_and_values",
    "REGF_MAX_VALUE_DATA": "test_regf_big_data",
    "REGF_MAX_DB_SEGMENTS": "test_regf_big_data",
    "REGF_MAX_DEPTH": "test_regf_depth",
    "REGF_LOG_MAX_HIVE_BINS": "test_regf_log_hive_bins",
    "FS_MAX_DIRECTORY_SCAN": "test_fs_fat_directory_scan_and_chunk",
    "FS_DIRECTORY_CHUNK": "test_fs_fat_directory_scan_and_chunk",
    "FS_MAX_FAT_CHAIN": "test_fs_fat_chain",
    "FS_MAX_MFT_RECORD": "test_fs_mft_record",
    "FS_ISO_FIRST_DESCRIPTORS": "test_fs_iso_descriptors",
    "FS_ISO_MAX_DESCRIPTORS": "test_fs_iso_descriptors",
    "NTFS_MAX_RECORD_SIZE": "test_ntfs_record_size",
    "NTFS_MAX_RUNS": "test_ntfs_runs_and_attribute_list",
    "NTFS_MAX_ATTRIBUTE_LIST_ENTRIES": "test_ntfs_runs_and_attribute_list",
    "NTFS_MAX_ATTRIBUTE_LIST_BYTES": "test_ntfs_runs_and_attribute_list",
    "NTFS_MAX_LOOKUP_STEPS": "test_ntfs_lookup_steps_and_components",
    "NTFS_MAX_PATH_COMPONENTS": "test_ntfs_lookup_steps_and_components",
    "NTFS_MAX_INDEX_DEPTH": "test_ntfs_index",
    "NTFS_MAX_INDEX_NODES": "test_ntfs_index",
    "NTFS_MAX_DIRECTORY_ENTRIES": "test_ntfs_index",
    "NTFS_MAX_COMPRESSION_UNIT_BYTES": "test_ntfs_compression_unit_and_read",
    "NTFS_MAX_FILE_READ": "test_ntfs_compression_unit_and_read",
    "NTFS_INODE_CACHE": "test_ntfs_inode_cache",
    "WINDOWS_MAX_HIVE_BYTES": "test_windows_hive_and_config_bytes",
    "WINDOWS_MAX_CONFIG_BYTES": "test_windows_hive_and_config_bytes",
    "WINDOWS_MAX_BITMAP_BYTES": "test_windows_bitmap_bytes",
    "WINDOWS_MAX_ENTRIES": "test_windows_entries",
    "FAT_MAX_FILE_BYTES": "test_windows_fat_file_and_directory",
    "FAT_MAX_DIRECTORY_BYTES": "test_windows_fat_file_and_directory",
    "FAT_ENTRY_CACHE": "_core/test_fat_fs.py::test_entry_cache_boundary",
    "LINUX_MAX_CONFIG_BYTES": "guest/linux/test_tree.py::test_config_cap_boundary",
    "LINUX_MAX_ENTRIES":
        "guest/linux/test_network.py::test_entries_cap_on_a_configuration_directory",
    "BOOT_MAX_CONFIG_FILES": "test_boot_config",
    "BOOT_MAX_MENU_ENTRIES": "test_boot_config",
    "BOOT_MAX_NESTING": "test_boot_config",
    "BOOT_MAX_WORD_BYTES": "test_boot_config",
    "BOOT_MAX_SCRIPT_ERRORS": "test_boot_config",
    "BOOT_MAX_COMMANDS": "test_boot_commands",
    "LINUX_INITRAMFS_MAX_BYTES": "guest/linux/test_initramfs.py::test_decompressed_bytes_cap",
    "LINUX_INITRAMFS_MAX_MEMBERS": "_core/test_cpio.py::test_members_cap",
    "LINUX_INITRAMFS_MAX_NAME": "_core/test_cpio.py::test_name_cap",
    "LINUX_INITRAMFS_MAX_SEGMENTS": "guest/linux/test_initramfs.py::test_segments_cap",
    "LINUX_INITRAMFS_MAX_BLOCKS": "guest/linux/test_initramfs.py::test_blocks_cap",
    "LINUX_INITRAMFS_MAX_WINDOW": "guest/linux/test_initramfs.py::test_window_cap",
}

# -- boot loader configuration (imgscan/guest/linux/boot/) --------------------------------
#: A menu whose counts can be read off it: an EFI-style stub that ``configfile``s the
#: real file (2 files), 5 menu items (4 entries and a submenu), blocks nested 3 deep
#: (submenu > menuentry > if), a 60-byte longest word, 3 stray ``}`` lines.
_BOOT_STUB = "configfile /boot/grub/real.cfg\n"
_BOOT_MENU = ("menuentry 'one' { linux /boot/vmlinuz-1 }\n}\n"
              "submenu 'sub' {\n menuentry 'two' {\n"
              "  if [ x = x ]; then linux /boot/vmlinuz-2; fi\n }\n"
              " menuentry 'three' { linux /boot/vmlinuz-3 }\n}\n}\n"
              "menuentry 'four' { linux /boot/vmlinuz-4 root=UUID=" + "0" * 46 + " }\n}\n")


def _boot_attempt(tmp_path: Path) -> Attempt:
    from helpers.linux_tree import guest_tree

    from imgscan.guest.linux.boot import grub2
    tree = guest_tree(tmp_path, {"boot/grub/grub.cfg": _BOOT_STUB,
                                 "boot/grub/real.cfg": _BOOT_MENU})

    def attempt() -> None:
        menu, entries, default = grub2.entries(tree, "/boot/grub/grub.cfg")
        assert len(entries) == 4 and default == 0 and len(menu.problems) == 3
    return attempt


@pytest.mark.parametrize(("name", "value", "located"), [
    ("BOOT_MAX_CONFIG_FILES", 2, False), ("BOOT_MAX_MENU_ENTRIES", 5, True),
    ("BOOT_MAX_NESTING", 3, True), ("BOOT_MAX_WORD_BYTES", len("root=UUID=") + 46, True),
    ("BOOT_MAX_SCRIPT_ERRORS", 3, True)])
def test_boot_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: int,
                     located: bool) -> None:
    """Each count of the menu above, accepted at the cap and refused one below."""
    exc = _cap_boundary(monkeypatch, name, value, _boot_attempt(tmp_path), located=located)
    assert isinstance(exc, ImageError) and "grub" in exc.path


def test_boot_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command budget: the menu above runs at least its 7 config commands and 4
    entry bodies; the least budget it passes with is its boundary."""
    attempt = _boot_attempt(tmp_path)
    need = _least_accepted(monkeypatch, "BOOT_MAX_COMMANDS", attempt, 1000)
    assert 11 <= need < 40
    _cap_boundary(monkeypatch, "BOOT_MAX_COMMANDS", need, attempt)


def test_linux_config_and_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A grub.cfg, the largest file read, read whole up to LINUX_MAX_CONFIG_BYTES (its size
    as written), and a directory of 3 BLS entries listed up to LINUX_MAX_ENTRIES."""
    from helpers.linux_tree import Content, guest_tree

    from imgscan.guest.linux.boot import bootloader
    entry = "title t\nversion {v}\nlinux /vmlinuz-{v}\noptions root=UUID=u\n"
    boot: dict[str, Content] = {f"loader/entries/m-{v}.conf": entry.format(v=v)
                                for v in ("1.0", "2.0", "3.0")}
    cfg = "# " + "x" * 100 + "\nblscfg\n"
    boot["grub2/grub.cfg"] = cfg
    tree = guest_tree(tmp_path, {"etc/fstab": ""}, mounts={"/boot": boot})

    def attempt() -> None:
        assert bootloader(tree)["default_kernel"] == "3.0"
    _cap_boundary(monkeypatch, "LINUX_MAX_CONFIG_BYTES", len(cfg), attempt,
                  located=False)
    _cap_boundary(monkeypatch, "LINUX_MAX_ENTRIES", 3, attempt, located=False)


#: The budgets of the bulk scan's worker processes: limits on the reader from outside, not on
#: a value of the file, so they have no boundary in an input; the scan's tests enforce them.
SCAN_BUDGET_TESTS: dict[str, str] = {
    "SCAN_TIME_LIMIT": "bulk/test_scan.py::test_worker_failures_cost_one_image",
    "SCAN_FINGERPRINT_MIN_RATE": "bulk/test_scan.py::test_profile_and_fingerprint",
    "SCAN_MEMORY_LIMIT": "bulk/test_scan.py::test_worker_failures_cost_one_image",
}


@functools.cache
def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_cap_has_a_boundary_test() -> None:
    """Each cap names a boundary test that exists; that each one then ran and passed is
    checked at the end of a full session (helpers.session_checks.check_caps reads the two
    tables from this module)."""
    caps = {name for name in vars(limits) if name.isupper() and not name.startswith("_")}
    tests = BOUNDARY_TESTS | SCAN_BUDGET_TESTS
    assert set(tests) == caps, (
        f"caps without a boundary test: {sorted(caps - set(tests))}; "
        f"tests of caps that are gone: {sorted(set(tests) - caps)}")
    for cap, test in tests.items():
        where, _, name = test.rpartition("::")
        assert name.startswith("test_") and name in _test_functions(
            HERE / where if where else Path(__file__)), f"{cap}: {test} does not exist"


def test_readme_names_every_cap_group() -> None:
    """The README's limits section points to limits.py and names each group of caps."""
    text = (HERE.parent / "README.md").read_text()
    section = text.split("## Limits for untrusted input", 1)[1].split("\n## ", 1)[0]
    section = " ".join(section.split())
    for words in README_GROUPS:
        assert words in section, words


#: A phrase of the README's "Limits for untrusted input" section for each section of
#: limits.py, so a new group of caps is documented there too.
README_GROUPS = (
    "imgscan/limits.py", "virtual size of any image", "L1", "refcount table", "cluster bits",
    "snapshot count", "header extensions", "persistent bitmaps", "backing name", "BAT",
    "block extra data", "parent-locator", "region", "VHDX log", "VMDK descriptor",
    "grain-directory", "LUKS2 header", "ISO descriptors", "boot-catalog", "ZVHD",
    "extents in one map", "largest single read", "decompressed cluster", "backing chain depth",
    "fingerprint", "EBR chain", "GPT entry", "findings listed per kind", "filesystem probes",
    "NTFS record size", "registry subkeys", "Windows inspection", "FAT file", "LimitExceeded",
    "CorruptImage", "resource-exhaustion", "SCAN_TIME_LIMIT", "filesystem readers",
    "ext4 extent-tree depth", "XFS fork extents", "LVM2 metadata", "Linux inspection",
    "boot loader configuration", "initramfs", "OVA / OVF packages",
)

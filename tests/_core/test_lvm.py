"""LVM2 PVs, VGs and LVs read offline, against lvm2's own tools.

The disk is made once per session by :mod:`helpers.lvm_disk` with the real tools
(pvcreate, vgcreate, lvcreate linear and striped, vgcfgrestore for a thin pool, a thin
volume and a snapshot, lvcreate/lvremove churn until the metadata ring wraps, mkfs.ext4
on two LVs). Oracles: ``vgs``/``lvs``/``pvs --reportformat json``, ``pvck --dump
headers`` (raw_locn), ``pvck --dump metadata`` (the text) and ``blkid -p`` on each LV's
bytes extracted with dd at the oracle's offsets; never imgscan itself.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import sparse_copy
from helpers.lvm_disk import (
    PARTS,
    SECTOR,
    STRIPE,
    TOOLS,
    MiB,
    partition_file,
    pvck,
    raw_locn,
    wraps,
)
from oracles import blkid_export, corpus_facts, needs_corpus

import imgscan
from imgscan import limits
from imgscan._core import lvm
from imgscan.errors import CorruptImage, UnsupportedFeature
from imgscan.layout import describe

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS),
    reason="lvm2, util-linux or e2fsprogs not installed")

def _info(path: Path) -> dict[str, Any]:
    with imgscan.open(path) as img:
        return img.info()


def _problems(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The findings but the ``encrypted`` one the LUKS LV always gives."""
    return [f for f in info["findings"] if f["id"] != "encrypted"]


def _layout(path: Path) -> Any:
    size = path.stat().st_size
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller's garbage collection

    def read(offset: int, length: int) -> bytes:
        f.seek(offset)
        return f.read(length)
    return describe(read, size, str(path))


def test_ring_wrapped(lvm_disk: dict[str, Any]) -> None:
    """The churn went on until the committed copy wraps round the end of the ring buffer,
    which then holds several older copies (the seqno read is checked against vgs in
    test_vg_and_lvs_match_lvm, the checksum of the joined text by every read)."""
    assert wraps(partition_file(lvm_disk["disk"], lvm_disk["work"], 1))
    assert int(lvm_disk["vg"]["vg_seqno"]) > 10


def test_vg_and_lvs_match_lvm(lvm_disk: dict[str, Any]) -> None:
    info = _info(lvm_disk["disk"])
    vg = lvm_disk["vg"]
    parts = info["partitions"]
    assert [p["lvm"]["pv_uuid"] for p in parts] == [p["pv_uuid"] for p in lvm_disk["pvs"]]
    for p in parts:
        assert p["lvm"]["vg"] == vg["vg_name"] == "vg0"
        assert p["lvm"]["vg_uuid"] == vg["vg_uuid"]
        assert p["lvm"]["seqno"] == int(vg["vg_seqno"])
        assert p["lvm"]["extent_size"] == int(vg["vg_extent_size"])
    lvs = {lv["name"]: lv for lv in parts[0]["lvm"]["lvs"]}
    oracle = {s["lv_name"]: s for s in lvm_disk["segs"] if not s["lv_name"].startswith("[")}
    assert set(lvs) == set(oracle)
    uuid_of = {p["pv_name"]: p["pv_uuid"] for p in lvm_disk["pvs"]}
    for name, want in oracle.items():
        lv = lvs[name]
        assert lv["size"] == int(want["lv_size"]), name
        (seg,) = lv["segments"]
        assert seg["extents"] == int(want["seg_size_pe"])
        assert seg["start_extent"] == int(want["seg_start_pe"])
        kind = want["segtype"]
        assert seg["type"] == kind, name
        if kind in ("linear", "striped"):
            ranges = [re.fullmatch(r"(.+):(\d+)-\d+", r).groups()  # type: ignore[union-attr]
                      for r in want["seg_pe_ranges"].split()]
            assert seg["areas"] == [{"pv": uuid_of[d], "start_extent": int(e)}
                                    for d, e in ranges]
        if kind == "striped":
            assert seg["stripes"] == int(want["stripes"])
            assert seg["stripe_size"] == int(want["stripe_size"])
    assert _problems(info) == []


def test_volume_count_counts_each_lv_once(lvm_disk: dict[str, Any]) -> None:
    """``volume_count``: the VG's visible LVs as ``lvs`` lists them, once although two PVs
    (both partitions) carry the VG, the PVs themselves not counted."""
    oracle = {s["lv_name"] for s in lvm_disk["segs"] if not s["lv_name"].startswith("[")}
    assert _info(lvm_disk["disk"])["volume_count"] == len(oracle) > 1


def test_lv_filesystems_match_blkid(lvm_disk: dict[str, Any]) -> None:
    lvs = {lv["name"]: lv for lv in _info(lvm_disk["disk"])["partitions"][0]["lvm"]["lvs"]}
    for name in ("root", "data"):
        want = blkid_export(lvm_disk["files"][name])
        assert lvs[name]["readable"] and lvs[name]["why"] is None
        assert lvs[name]["filesystem"] == want["TYPE"] == "ext4"
        assert lvs[name]["label"] == want["LABEL"]
        assert lvs[name]["uuid"] == want["UUID"]


def test_luks_on_a_logical_volume_is_an_encrypted_finding(lvm_disk: dict[str, Any]) -> None:
    info = _info(lvm_disk["disk"])
    lv = next(lv for lv in info["partitions"][0]["lvm"]["lvs"] if lv["name"] == "secret")
    want = blkid_export(lvm_disk["files"]["secret"])
    assert lv["encrypted"] and lv["filesystem"] == want["TYPE"] == "crypto_LUKS"
    assert lv["uuid"] == want["UUID"]
    assert [(f["id"], f["message"]) for f in info["findings"]] == [
        ("encrypted", "logical volume vg0/secret is a crypto_LUKS volume: its contents "
                      "cannot be inspected")]


def test_logical_volume_reads_the_lv_bytes(lvm_disk: dict[str, Any]) -> None:
    layout = _layout(lvm_disk["disk"])
    for name, path in lvm_disk["files"].items():
        got = layout.logical_volume(f"vg0/{name}")
        if name == "secret":
            assert got is not None and got[0](0, got[1]) == path.read_bytes()
            continue
        assert got is not None
        read, size = got
        assert size == 8 * MiB
        assert read(0, size) == path.read_bytes(), name
        assert read(size - 10, 100) == path.read_bytes()[-10:]
        assert read(3 * STRIPE - 7, 20) == path.read_bytes()[3 * STRIPE - 7:3 * STRIPE + 13]
    assert layout.logical_volume("vg0/nope") is None


@pytest.mark.parametrize(("name", "why"), [
    ("pool", "thin-pool segment"), ("thin", "thin segment"), ("snap", "snapshot of root")])
def test_unread_segment_types(lvm_disk: dict[str, Any], name: str, why: str) -> None:
    layout = _layout(lvm_disk["disk"])
    with pytest.raises(UnsupportedFeature, match=why):
        layout.logical_volume(f"vg0/{name}")
    lv = next(lv for lv in layout.partitions[0]["lvm"]["lvs"] if lv["name"] == name)
    assert not lv["readable"] and why in lv["why"] and lv["filesystem"] is None


def test_text_report_lists_the_lvs(lvm_disk: dict[str, Any]) -> None:
    from imgscan.report.text import info_text
    text = info_text(_info(lvm_disk["disk"]))
    assert "VG vg0" in text and "root" in text and "ext4 'rootfs'" in text
    assert "not read: a thin segment is not read" in text
    assert "LVs under partition 1)" in text and text.count("ext4 'rootfs'") == 1


def _copy(lvm_disk: dict[str, Any], name: str) -> Path:
    out: Path = lvm_disk["work"] / name
    sparse_copy(lvm_disk["disk"], out)
    return out


def test_lv_on_a_missing_pv_is_reported(lvm_disk: dict[str, Any]) -> None:
    """Partition 2's label wiped: the striped LV needs it and is not read; root is."""
    disk = _copy(lvm_disk, "missing.img")
    with open(disk, "r+b") as f:
        f.seek(PARTS[1][0] * SECTOR)
        f.write(bytes(4 * SECTOR))
    layout = _layout(disk)
    missing = lvm_disk["pvs"][1]["pv_uuid"]
    with pytest.raises(UnsupportedFeature, match=f"needs PV {missing}"):
        layout.logical_volume("vg0/data")
    assert layout.logical_volume("vg0/root") is not None


def test_newest_copy_wins_over_a_stale_pv(lvm_disk: dict[str, Any]) -> None:
    """Partition 2 put back as it was before the churn: its copy is older (vgs' seqno at
    that time), and the newest one, on partition 1, is the one read, on both PVs."""
    disk = _copy(lvm_disk, "stale.img")
    with open(disk, "r+b") as f:
        f.seek(PARTS[1][0] * SECTOR)
        f.write(lvm_disk["stale"].read_bytes())
    assert lvm_disk["stale_seqno"] < int(lvm_disk["vg"]["vg_seqno"])
    info = _info(disk)
    for part in info["partitions"]:
        assert part["lvm"]["seqno"] == int(lvm_disk["vg"]["vg_seqno"])
        names = {lv["name"] for lv in part["lvm"]["lvs"]}
        assert names == {s["lv_name"] for s in lvm_disk["segs"] if s["lv_name"][0] != "["}
    assert _problems(info) == []


def test_bad_metadata_checksum_falls_back_then_reports(lvm_disk: dict[str, Any]) -> None:
    """One PV's text damaged: the other copy is used; both damaged: a finding, no VG."""
    disk = _copy(lvm_disk, "badsum.img")
    part1 = partition_file(lvm_disk["disk"], lvm_disk["work"], 1)
    locn = raw_locn(part1)
    mda_start = 4096
    for number, (start, _) in enumerate(PARTS, 1):
        with open(disk, "r+b") as f:
            f.seek(start * SECTOR + mda_start + locn["raw_locn[0].offset"] + 4)
            f.write(b"#")
        info = _info(disk)
        if number == 1:
            assert info["partitions"][0]["lvm"]["vg"] == "vg0"
            assert [f["id"] for f in _problems(info)] == ["corrupt"]
        else:
            assert info["partitions"][0]["lvm"]["vg"] is None
            assert all("checksum mismatch" in f["message"] for f in info["findings"])


@needs_corpus
def test_real_corpus_sample(tmp_path: Path) -> None:
    """dissect.volume's whole-disk PV reads without error and with the facts given."""
    from helpers import decompress
    facts = corpus_facts()["dissect.volume/lvm.bin.gz"]
    path = decompress(Path(__file__).resolve().parents[2] / "../shared/corpus/real"
                      / "dissect.volume/lvm.bin.gz", tmp_path / "lvm.bin")
    info = _info(path)
    assert _problems(info) == []
    assert info["volume"]["filesystem"] == facts["whole_disk_blkid"]["TYPE"]
    assert info["volume"]["lvm"]["pv_uuid"] == facts["whole_disk_blkid"]["UUID"]
    assert info["volume"]["lvm"]["vg"] is not None


# -- caps ----------------------------------------------------------------------------------
def _scan(disk: Path) -> Callable[[], None]:
    """An attempt that reads every PV and VG of the disk, raising the first error."""
    def attempt() -> None:
        f = open(disk, "rb")  # noqa: SIM115

        def read(offset: int, length: int) -> bytes:
            f.seek(offset)
            return f.read(length)
        with f:
            pvs = [lvm.read_pv(read, s * SECTOR, n * SECTOR, f"p{i}")
                   for i, (s, n) in enumerate(PARTS)]
            _, errors = lvm.volume_groups(read, [pv for pv in pvs if pv is not None], str(disk))
            if errors:
                raise errors[0]
    return attempt


def _dumped_text(lvm_disk: dict[str, Any]) -> str:
    out: Path = lvm_disk["work"] / "meta.txt"
    pvck(partition_file(lvm_disk["disk"], lvm_disk["work"], 1), "--dump", "metadata",
          "-f", str(out))
    return out.read_text()


def test_metadata_caps(lvm_disk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from test_limits import _cap_boundary
    locn = raw_locn(partition_file(lvm_disk["disk"], lvm_disk["work"], 1))
    attempt = _scan(lvm_disk["disk"])
    _cap_boundary(monkeypatch, "LVM_MAX_METADATA_AREA_BYTES", locn["size"], attempt)
    _cap_boundary(monkeypatch, "LVM_MAX_METADATA_BYTES", locn["raw_locn[0].size"], attempt)


def test_structure_caps(lvm_disk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from test_limits import _cap_boundary
    text = _dumped_text(lvm_disk)
    attempt = _scan(lvm_disk["disk"])
    # The file, the VG, logical_volumes, an LV, a segment: five levels of sections.
    _cap_boundary(monkeypatch, "LVM_MAX_NESTING", 5, attempt)
    # Every key, every section and every list item (an empty list has none).
    items = (len(re.findall(r"^\s*[\w.+-]+\s*(=|\{)", text, re.M))
             + sum(len(re.findall(r'"[^"]*"|-?\d+', body))
                   for body in re.findall(r"\[([^\]]*)\]", text)))
    _cap_boundary(monkeypatch, "LVM_MAX_ITEMS", items, attempt)
    lv_sections = re.search(r"logical_volumes \{(.*)\n\}", text, re.S)
    assert lv_sections is not None
    # lvs -a shows every LV but the snapshot's hidden snapshot0.
    lv_count = len([s for s in lvm_disk["segs"]]) + 1
    _cap_boundary(monkeypatch, "LVM_MAX_LVS", lv_count, attempt)
    _cap_boundary(monkeypatch, "LVM_MAX_SEGMENTS",
                  max(sum(1 for s in lvm_disk["segs"] if s["lv_name"] == lv["lv_name"])
                      for lv in lvm_disk["segs"]), attempt)
    _cap_boundary(monkeypatch, "LVM_MAX_STRIPES",
                  max(int(s["stripes"]) for s in lvm_disk["segs"]), attempt)


def test_many_pvs_are_cut_at_the_real_caps(tmp_path: Path) -> None:
    """257 GPT partitions (sfdisk) each a copy of one PV (pvcreate --metadatasize 17m,
    vgcreate) whose committed text is grown to 16 MiB: the 257th label is not read, and
    of the copies only the first three (3 x (512 + 16 MiB) of the 64 MiB budget) are; the
    partitions and the VG found are all still reported."""
    from helpers.lvm_disk import cloned_pvs, pad_metadata, single_pv
    pv = single_pv(tmp_path, 20 * MiB, "--metadatasize", "17m")
    pad_metadata(pv, 16 * MiB)
    info = _info(cloned_pvs(tmp_path, pv, limits.LVM_MAX_PHYSICAL_VOLUMES + 1))
    parts = info["partitions"]
    assert len(parts) == 257 and all(p["filesystem"] == "LVM2_member" for p in parts)
    assert [p["lvm"]["vg"] for p in parts] == ["vg1"] * 256 + [None]
    cut = [f["message"] for f in info["findings"] if f["id"] == "resource-exhaustion"]
    assert len(cut) == len(info["findings"]) == 2, info["findings"]
    assert (f"LVM2 PV label on partition 257 at offset {parts[256]['start']}: physical "
            "volumes 257 exceeds limits.LVM_MAX_PHYSICAL_VOLUMES=256") in cut[0]
    mda_text = parts[3]["start"] + 4096 + raw_locn(pv)["raw_locn[0].offset"]  # mda at 4096
    assert (f"metadata text of the PV on partition 4 at offset {mda_text}: metadata-area "
            f"bytes read on the disk {4 * (512 + 16 * MiB)} exceeds "
            f"limits.LVM_MAX_METADATA_BYTES_PER_DISK={64 * MiB}") in cut[1]


def test_parser_refuses_malformed_text() -> None:
    for bad, problem in ((b"vg {", "unterminated section"), (b'a = "x', "unterminated string"),
                         (b"a = [1 2]", "expected ','"), (b"}", "without a section"),
                         (b"a b", "expected '='"),
                         (b"a =", "unexpected end")):
        with pytest.raises(CorruptImage, match=problem):
            lvm.parse_metadata(bad, "t", 100)
    assert lvm.parse_metadata(b'# c\na = "q\\"x" # t\nb = [1, "y"]\ns { c = -2 }\0junk',
                              "t") == {"a": 'q"x', "b": [1, "y"], "s": {"c": -2}}
    assert limits.LVM_MAX_NESTING > 5



def _patched_mda(lvm_disk: dict[str, Any], name: str, field_at: int, fmt: str,
                 value: int) -> Path:
    """The disk with one field of both PVs' mda_header (or raw_locn) set to ``value``,
    the header checksum recomputed (lvm's calc_crc) so that the field itself is judged."""
    import struct

    from helpers.patchers import lvm_calc_crc
    disk = _copy(lvm_disk, name)
    with open(disk, "r+b") as f:
        for start, _ in PARTS:
            at = start * SECTOR + 4096
            f.seek(at)
            header = bytearray(f.read(512))
            struct.pack_into("<" + fmt, header, field_at, value)
            struct.pack_into("<I", header, 0, lvm_calc_crc(bytes(header[4:])))
            f.seek(at)
            f.write(header)
    return disk


@pytest.mark.parametrize(("field_at", "fmt", "value", "problem"), [
    (40, "Q", 512 + 61440, "outside the metadata area"),   # raw_locn[0].offset past the area
    (48, "Q", 1 << 40, "exceeds limits.LVM_MAX_METADATA_BYTES"),  # raw_locn[0].size
    (48, "Q", 61440, "outside the metadata area"),          # bigger than the ring
    (20, "I", 2, "metadata format version 2"),              # mda_header.version
    (24, "Q", 8192, "disagree with the pv_header"),          # mda_header.start
])
def test_hostile_mda_fields(lvm_disk: dict[str, Any], field_at: int, fmt: str, value: int,
                            problem: str) -> None:
    disk = _patched_mda(lvm_disk, f"mda{field_at}-{value}.img", field_at, fmt, value)
    info = _info(disk)
    assert info["partitions"][0]["lvm"]["vg"] is None
    messages = [f["message"] for f in _problems(info)]
    assert messages and all(problem in m for m in messages), messages
    layout = _layout(disk)
    assert layout.logical_volume("vg0/root") is None

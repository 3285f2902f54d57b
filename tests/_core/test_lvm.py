"""LVM2 PVs, VGs and LVs read offline, against lvm2's own tools.

One disk image with two LVM partitions is made once per session with the real
tools on loop devices (``losetup -o``), under a private ``LVM_SYSTEM_DIR`` whose
lvm.conf accepts only those two devices, so the host's LVM is never touched.
The sandbox has no device-mapper, so nothing is activated (``--driverloaded n
-an --zero n``): the filesystems are written into the LVs' extents with the
offsets ``lvs`` and ``pvs`` report (a striped LV stripe by stripe), and the
thin pool, thin volume and snapshot, which lvcreate cannot make without
device-mapper, are added to the VG by ``vgcfgrestore --force`` from the VG's
own ``vgcfgbackup``. Churn (lvcreate/lvremove) then leaves several copies in
the metadata ring buffer until the committed one wraps round its end.

Oracles: ``vgs``/``lvs``/``pvs --reportformat json``, ``pvck --dump headers``
(raw_locn), ``pvck --dump metadata`` (the text) and ``blkid -p`` on each LV's
bytes extracted with dd at the oracle's offsets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oracles import blkid_export, corpus_facts, needs_corpus

import imgscan
from imgscan import limits
from imgscan._core import lvm
from imgscan.errors import CorruptImage, UnsupportedFeature
from imgscan.layout import describe

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("lvm", "losetup", "sfdisk", "mkfs.ext4", "pvck")),
    reason="lvm2, util-linux or e2fsprogs not installed")

MiB = 1024 * 1024
SECTOR = 512
#: The two partitions (start, size) in sectors; both are PVs of vg0.
PARTS = ((2048, 40960), (43008, 86000))
STRIPE = 64 * 1024
#: lvcreate + lvremove rounds after the VG is made: with a 60 KiB metadata area and ~3 KiB
#: copies, 2 * 12 new copies go round the ring buffer.
CHURN = 12
NOISE = ("leaked on lvm invocation", "WARNING", "device-mapper", "mapper/control",
         "Failure to communicate", "Check that", "Incompatible libdevmapper")


def _lvm(conf: Path, *args: str) -> str:
    env = {**os.environ, "LVM_SYSTEM_DIR": str(conf)}
    done = subprocess.run(["lvm", args[0], "--driverloaded", "n", *args[1:]], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"lvm {' '.join(args)}: {done.stderr}")
    return done.stdout


def _report(conf: Path, cmd: str, *args: str) -> list[dict[str, str]]:
    out = json.loads(_lvm(conf, cmd, "--reportformat", "json", "--units", "b", "--nosuffix",
                          *args))
    rows: list[dict[str, str]] = next(iter(out["report"][0].values()))
    return rows


def _pvck(partition: Path, *args: str) -> str:
    return subprocess.run(["pvck", "--driverloaded", "n", *args, str(partition)],
                          capture_output=True, text=True, check=False).stdout


def _raw_locn(partition: Path) -> dict[str, int]:
    """mda_header_1's size and raw_locn[0] offset and size, as pvck prints them."""
    text = _pvck(partition, "--dump", "headers")
    got = dict(re.findall(r"mda_header_1\.(size|raw_locn\[0\]\.offset|raw_locn\[0\]\.size) "
                          r"(\d+)", text))
    return {k: int(v) for k, v in got.items()}


def _partition_file(disk: Path, work: Path, number: int) -> Path:
    start, size = PARTS[number - 1]
    out = work / f"part{number}.img"
    subprocess.run(["dd", f"if={disk}", f"of={out}", "bs=512", f"skip={start}",
                    f"count={size}", "conv=sparse", "status=none"], check=True)
    return out


THIN_AND_SNAPSHOT = """
\t\tsnap {{
\t\t\tid = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000003"
\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]
\t\t\tflags = []
\t\t\tsegment_count = 1
\t\t\tsegment1 {{
\t\t\t\tstart_extent = 0
\t\t\t\textent_count = 1
\t\t\t\ttype = "striped"
\t\t\t\tstripe_count = 1
\t\t\t\tstripes = ["pv1", 3]
\t\t\t}}
\t\t}}
\t\tsnapshot0 {{
\t\t\tid = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000004"
\t\t\tstatus = ["READ"]
\t\t\tflags = []
\t\t\tsegment_count = 1
\t\t\tsegment1 {{
\t\t\t\tstart_extent = 0
\t\t\t\textent_count = 2
\t\t\t\ttype = "snapshot"
\t\t\t\tchunk_size = 8
\t\t\t\torigin = "root"
\t\t\t\tcow_store = "snap"
\t\t\t}}
\t\t}}
\t\tpool {{
\t\t\tid = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000001"
\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]
\t\t\tflags = []
\t\t\tsegment_count = 1
\t\t\tsegment1 {{
\t\t\t\tstart_extent = 0
\t\t\t\textent_count = 1
\t\t\t\ttype = "thin-pool"
\t\t\t\tmetadata = "pool_tmeta"
\t\t\t\tpool = "pool_tdata"
\t\t\t\ttransaction_id = 1
\t\t\t\tchunk_size = 128
\t\t\t\tdiscards = "passdown"
\t\t\t\tzero_new_blocks = 1
\t\t\t}}
\t\t}}
\t\tthin {{
\t\t\tid = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-000002"
\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]
\t\t\tflags = []
\t\t\tsegment_count = 1
\t\t\tsegment1 {{
\t\t\t\tstart_extent = 0
\t\t\t\textent_count = 4
\t\t\t\ttype = "thin"
\t\t\t\tthin_pool = "pool"
\t\t\t\ttransaction_id = 0
\t\t\t\tdevice_id = 1
\t\t\t}}
\t\t}}
{hidden}
"""


def _hidden(name: str, pv: str, extent: int) -> str:
    return (f'\t\t{name} {{\n\t\t\tid = "aaaaaa-bbbb-cccc-dddd-eeee-ffff-{name[-4:]}00"\n'
            '\t\t\tstatus = ["READ", "WRITE"]\n\t\t\tflags = []\n\t\t\tsegment_count = 1\n'
            '\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 1\n'
            '\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 1\n'
            f'\t\t\t\tstripes = ["{pv}", {extent}]\n\t\t\t}}\n\t\t}}\n')


def _add_thin_and_snapshot(conf: Path, work: Path) -> None:
    backup = work / "vg0.txt"
    _lvm(conf, "vgcfgbackup", "-f", str(backup), "vg0")
    text = backup.read_text()
    extra = THIN_AND_SNAPSHOT.format(hidden=_hidden("pool_tdata", "pv1", 4)
                                     + _hidden("pool_tmeta", "pv1", 5))
    head, sep, tail = text.partition("\tlogical_volumes {\n")
    backup.write_text(head + sep + extra + tail)
    _lvm(conf, "vgcfgrestore", "--force", "-f", str(backup), "vg0")


def _write_lv(disk: Path, image: Path, pieces: Callable[[int], int], length: int,
              chunk: int) -> None:
    """Writes ``image`` into the disk, chunk ``i`` at disk offset ``pieces(i)``."""
    with open(image, "rb") as src, open(disk, "r+b") as dst:
        for i in range(length // chunk):
            dst.seek(pieces(i))
            dst.write(src.read(chunk))


@pytest.fixture(scope="session")
def lvm_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("lvm")
    disk = work / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(64 * MiB)
    script = "label: dos\n" + "".join(f"start={s},size={n},type=8e\n" for s, n in PARTS)
    subprocess.run(["sfdisk", "-q", str(disk)], input=script, text=True, check=True)
    loops: list[str] = []
    conf = work / "etc"
    conf.mkdir()
    try:
        for start, size in PARTS:
            loops.append(subprocess.run(
                ["losetup", "-f", "--show", "-o", str(start * SECTOR), "--sizelimit",
                 str(size * SECTOR), str(disk)], capture_output=True, text=True,
                check=True).stdout.strip())
        accept = ", ".join(f'"a|^{dev}$|"' for dev in loops)
        (conf / "lvm.conf").write_text(
            f'devices {{ filter = [ {accept}, "r|.*|" ] obtain_device_list_from_udev = 0 '
            "use_devicesfile = 0 scan_lvs = 0 }\n"
            "activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }\n"
            "backup { backup = 0 archive = 0 }\n"
            f'global {{ locking_dir = "{work}/lock" use_lvmpolld = 0 event_activation = 0 }}\n')
        _lvm(conf, "pvcreate", "-y", "--metadatasize", "16k", "--dataalignment", "64k",
             *loops)
        _lvm(conf, "vgcreate", "-s", "4m", "vg0", *loops)
        _lvm(conf, "lvcreate", "-an", "-Zn", "-L", "8m", "-n", "root", "vg0", loops[0])
        _lvm(conf, "lvcreate", "-an", "-Zn", "-i", "2", "-I", "64k", "-L", "8m", "-n", "data",
             "vg0")
        _add_thin_and_snapshot(conf, work)
        for churn in range(CHURN):
            _lvm(conf, "lvcreate", "-an", "-Zn", "-L", "4m", "-n", f"tmp{churn}", "vg0")
            _lvm(conf, "lvremove", "-f", f"vg0/tmp{churn}")
        pvs = _report(conf, "pvs", "-o", "pv_name,pv_uuid,pe_start")
        vgs = _report(conf, "vgs", "-o", "vg_name,vg_uuid,vg_seqno,vg_extent_size")
        segs = _report(conf, "lvs", "-a", "--segments", "-o",
                       "lv_name,segtype,stripes,stripe_size,seg_pe_ranges,seg_size_pe,"
                       "seg_start_pe,lv_size")
        _lvm(conf, "vgchange", "-an", "vg0")
    finally:
        for dev in loops:
            subprocess.run(["losetup", "-d", dev], check=False)
    pv_start = {p["pv_name"]: (PARTS[loops.index(p["pv_name"])][0] * SECTOR
                               + int(p["pe_start"])) for p in pvs}
    extent = int(vgs[0]["vg_extent_size"])

    def pe_offset(rng: str) -> int:  # "/dev/loop1:2-2" -> the extent's disk offset
        dev, first = re.fullmatch(r"(.+):(\d+)-\d+", rng).groups()  # type: ignore[union-attr]
        return pv_start[dev] + int(first) * extent

    by_lv = {s["lv_name"]: s for s in segs}
    files: dict[str, Path] = {}
    for lv, label in (("root", "rootfs"), ("data", "datafs")):
        fs = work / f"{lv}.ext4"
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(fs), "8M"], check=True)
        files[lv] = fs
    ranges = [pe_offset(r) for r in by_lv["data"]["seg_pe_ranges"].split()]
    _write_lv(disk, files["root"], lambda i: pe_offset(by_lv["root"]["seg_pe_ranges"]) + i * MiB,
              8 * MiB, MiB)
    _write_lv(disk, files["data"],
              lambda i: ranges[i % len(ranges)] + (i // len(ranges)) * STRIPE, 8 * MiB, STRIPE)
    yield {"disk": disk, "work": work, "pvs": pvs, "vg": vgs[0], "segs": segs,
           "files": files}


def _info(path: Path) -> dict[str, Any]:
    with imgscan.open(path) as img:
        return img.info()


def _layout(path: Path) -> Any:
    size = path.stat().st_size
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller's garbage collection

    def read(offset: int, length: int) -> bytes:
        f.seek(offset)
        return f.read(length)
    return describe(read, size, str(path))


def test_ring_went_round(lvm_disk: dict[str, Any]) -> None:
    """The churn wrote more copies than the ring holds, so the committed one is not the
    first written (the VG's seqno is checked against vgs in the next test)."""
    locn = _raw_locn(_partition_file(lvm_disk["disk"], lvm_disk["work"], 1))
    assert 2 * CHURN * locn["raw_locn[0].size"] > locn["size"], locn
    assert int(lvm_disk["vg"]["vg_seqno"]) > 2 * CHURN


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
    assert info["findings"] == []


def test_lv_filesystems_match_blkid(lvm_disk: dict[str, Any]) -> None:
    lvs = {lv["name"]: lv for lv in _info(lvm_disk["disk"])["partitions"][0]["lvm"]["lvs"]}
    for name, path in lvm_disk["files"].items():
        want = blkid_export(path)
        assert lvs[name]["readable"] and lvs[name]["why"] is None
        assert lvs[name]["filesystem"] == want["TYPE"] == "ext4"
        assert lvs[name]["label"] == want["LABEL"]
        assert lvs[name]["uuid"] == want["UUID"]


def test_logical_volume_reads_the_lv_bytes(lvm_disk: dict[str, Any]) -> None:
    layout = _layout(lvm_disk["disk"])
    for name, path in lvm_disk["files"].items():
        got = layout.logical_volume(f"vg0/{name}")
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


def _copy(lvm_disk: dict[str, Any], name: str) -> Path:
    out: Path = lvm_disk["work"] / name
    shutil.copyfile(lvm_disk["disk"], out)
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


def test_bad_metadata_checksum_falls_back_then_reports(lvm_disk: dict[str, Any]) -> None:
    """One PV's text damaged: the other copy is used; both damaged: a finding, no VG."""
    disk = _copy(lvm_disk, "badsum.img")
    part1 = _partition_file(lvm_disk["disk"], lvm_disk["work"], 1)
    locn = _raw_locn(part1)
    mda_start = 4096
    for number, (start, _) in enumerate(PARTS, 1):
        with open(disk, "r+b") as f:
            f.seek(start * SECTOR + mda_start + locn["raw_locn[0].offset"] + 4)
            f.write(b"#")
        info = _info(disk)
        if number == 1:
            assert info["partitions"][0]["lvm"]["vg"] == "vg0"
            assert [f["id"] for f in info["findings"]] == ["corrupt"]
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
    assert info["findings"] == []
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
            _, errors = lvm.volume_groups(read, [pv for pv in pvs if pv is not None])
            if errors:
                raise errors[0]
    return attempt


def _dumped_text(lvm_disk: dict[str, Any]) -> str:
    out: Path = lvm_disk["work"] / "meta.txt"
    _pvck(_partition_file(lvm_disk["disk"], lvm_disk["work"], 1), "--dump", "metadata",
          "-f", str(out))
    return out.read_text()


def test_metadata_caps(lvm_disk: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from test_limits import _cap_boundary
    locn = _raw_locn(_partition_file(lvm_disk["disk"], lvm_disk["work"], 1))
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


"""The scan catalog (imgscan/bulk/catalog.py) and ``imgscan catalog``.

Results are built from real images made with qemu-img / qemu-io (their info
and check from imgscan, fingerprints from imgscan.fingerprints) and recorded
the way the runner records them. The ``sqlite3`` command-line tool reads the
catalog back independently; ``qemu-img info`` and ``qemu-img compare`` say what
each image is and which ones hold the same disk; Python's csv and json modules
parse the exports.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import xxhash
from helpers import MiB, qemu_create, sparse_copy, sparse_file
from helpers.scans import identity, scan_result
from oracles import needs_qemu, needs_sqlite3, qemu_info, qemu_io, run

from imgscan.bulk.catalog import SCHEMA_VERSION, Catalog, CatalogError
from imgscan.bulk.result import ScanResult
from imgscan.cli import main

pytestmark = [needs_qemu]

CHUNK = MiB
#: The base disk: 8 MiB, chunks 0-5 filled with distinct patterns, 6-7 holes.
BASE_PATTERNS = (0x11, 0x12, 0x13, 0x14, 0x15, 0x16)
DISK = 8 * MiB
#: qemu-img's format names for imgscan's.
QEMU_FORMAT = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc"}


def sql(db: Path, *statements: str) -> list[list[str]]:
    """Rows the sqlite3 CLI prints for the statements (``|``-separated columns)."""
    out = run("sqlite3", db, *statements)
    return [line.split("|") for line in out.splitlines()]


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """base.raw and its conversions (one disk), near.qcow2 (base with chunk 0
    changed), other.vhd (other content) and broken.qcow2 (a cut qcow2 header)."""
    lib = tmp_path_factory.mktemp("library")
    base = sparse_file(lib / "base.raw", DISK)
    qemu_io(base, *(f"write -P {p:#x} {i * CHUNK} {CHUNK}"
                    for i, p in enumerate(BASE_PATTERNS)), fmt="raw")
    paths = {"base.raw": base}
    for fmt in ("qcow2", "vmdk"):
        paths[f"base.{fmt}"] = lib / f"base.{fmt}"
        run("qemu-img", "convert", "-O", fmt, base, paths[f"base.{fmt}"])
    near = paths["near.qcow2"] = lib / "near.qcow2"
    run("qemu-img", "convert", "-O", "qcow2", base, near)
    qemu_io(near, "write -P 0x77 0 4k")
    other = paths["other.vhd"] = qemu_create(lib / "other.vhd", DISK, "-o", "force_size=on",
                                             fmt="vpc")
    qemu_io(other, f"write -P 0x21 0 {CHUNK}", f"write -P 0x22 {CHUNK} {CHUNK}", fmt="vpc")
    broken = paths["broken.qcow2"] = lib / "broken.qcow2"
    broken.write_bytes(paths["base.qcow2"].read_bytes()[:100])
    return paths


@pytest.fixture(scope="session")
def results(library: dict[str, Path]) -> dict[str, ScanResult]:
    return {name: scan_result(path) for name, path in library.items()}


def record_all(db: Path, results: dict[str, ScanResult], root: Path) -> int:
    with Catalog(db) as catalog:
        scan_id = catalog.begin_scan([str(root)], "huawei-ims")
        for result in results.values():
            catalog.record(result, scan_id)
        catalog.finish_scan(scan_id, interrupted=False)
    return scan_id


@pytest.fixture
def db(tmp_path: Path, library: dict[str, Path], results: dict[str, ScanResult]) -> Path:
    path = tmp_path / "imgscan.db"
    record_all(path, results, library["base.raw"].parent)
    return path


@needs_sqlite3
def test_sqlite3_reads_what_was_recorded(db: Path, library: dict[str, Path],
                                         results: dict[str, ScanResult]) -> None:
    assert sql(db, "PRAGMA integrity_check") == [["ok"]]
    assert sql(db, "PRAGMA journal_mode") == [["wal"]]
    assert sql(db, "PRAGMA user_version") == [[str(SCHEMA_VERSION)]]
    assert sql(db, "SELECT count(*) FROM images") == [[str(len(library))]]
    for name, path in library.items():
        rows = sql(db, "SELECT id, status, format, virtual_size, size, inode, "
                   "json_extract(info_json, '$.virtual_size'), fingerprint, nonzero_chunks "
                   f"FROM images WHERE path = '{path}'")
        assert len(rows) == 1, name
        image_id, status, fmt, vsize, size, inode, info_vsize, fp, nonzero = rows[0]
        assert int(size) == path.stat().st_size
        assert int(inode) == path.stat().st_ino
        if name == "broken.qcow2":
            assert status == "error"
            assert sql(db, f"SELECT error_type FROM images WHERE id = {image_id}") \
                == [[results[name].error["type"]]]  # type: ignore[index]
            continue
        qemu = qemu_info(path)
        assert status == "scanned"
        assert QEMU_FORMAT[fmt] == qemu["format"]
        assert int(vsize) == int(info_vsize) == qemu["virtual-size"]
        assert fp == results[name].fingerprint.digest  # type: ignore[union-attr]
        # One rule row per rule of the check, with its status.
        rules = results[name].check["rules"]  # type: ignore[index]
        assert sorted(sql(db, f"SELECT rule_id, status FROM rules WHERE image_id = {image_id}")
                      ) == sorted([r["id"], r["status"]] for r in rules)
        expected_chunks = {"other.vhd": 2}.get(name, len(BASE_PATTERNS))
        assert int(nonzero) == expected_chunks
        assert sql(db, f"SELECT count(*) FROM chunks WHERE image_id = {image_id}") \
            == [[str(expected_chunks)]]
    # The chunk digests are XXH3-128 of the pattern-filled MiBs; zero chunks are left out.
    base_id = sql(db, f"SELECT id FROM images WHERE path = '{library['base.raw']}'")[0][0]
    assert {r[0] for r in sql(db, f"SELECT hex(digest) FROM chunks WHERE image_id = {base_id}")
            } == {xxhash.xxh3_128(bytes([p]) * CHUNK).hexdigest().upper()
                  for p in BASE_PATTERNS}


@needs_sqlite3
def test_rescan_touches_replaces_and_marks_missing(tmp_path: Path, library: dict[str, Path],
                                                   results: dict[str, ScanResult]) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("base.qcow2", "near.qcow2", "other.vhd"):
        sparse_copy(library[name], lib / name)
    sub = lib / "sub"
    sub.mkdir()
    sparse_copy(library["base.raw"], sub / "base.raw")
    first = {p.name: scan_result(p) for p in (*lib.glob("*.*"), sub / "base.raw")}
    db = tmp_path / "c.db"
    record_all(db, first, lib)

    # Rescan: other.vhd unchanged, near.qcow2 rewritten, base.qcow2 deleted.
    qemu_io(lib / "near.qcow2", f"write -P 0x78 {CHUNK} 4k")
    (lib / "base.qcow2").unlink()
    with Catalog(db) as catalog:
        scan_id = catalog.begin_scan([str(lib)], "huawei-ims")
        assert catalog.lookup(str(lib / "other.vhd")) == identity(lib / "other.vhd")
        assert catalog.lookup(str(lib / "near.qcow2")) != identity(lib / "near.qcow2")
        catalog.touch(str(lib / "other.vhd"), scan_id)
        catalog.record(ScanResult(str(sub / "base.raw"), "unchanged", None), scan_id)
        changed = scan_result(lib / "near.qcow2")
        catalog.record(changed, scan_id)
        assert catalog.finish_scan(scan_id, interrupted=False) == 1
        assert catalog.lookup(str(lib / "base.qcow2")) is None
        # A scan by another profile, or asking for fingerprints of another
        # algorithm, reads every file again.
        catalog.begin_scan([str(lib)], "safe")
        assert catalog.lookup(str(lib / "other.vhd")) is None
        catalog.begin_scan([str(lib)], "huawei-ims", "xxh3-64-stream")
        assert catalog.lookup(str(lib / "other.vhd")) is None

    rows = {path: state for path, state in sql(
        db, "SELECT path, status || ',' || last_seen_scan || ',' || scanned_in_scan "
        "FROM images")}
    assert rows == {str(lib / "base.qcow2"): "missing,1,1",
                    str(lib / "near.qcow2"): f"scanned,{scan_id},{scan_id}",
                    str(lib / "other.vhd"): f"scanned,{scan_id},1",
                    str(sub / "base.raw"): f"scanned,{scan_id},1"}
    near_id = sql(db, f"SELECT id FROM images WHERE path = '{lib / 'near.qcow2'}'")[0][0]
    # The changed file's rules and chunks were replaced, not added to.
    assert sql(db, f"SELECT count(*) FROM rules WHERE image_id = {near_id}") \
        == [[str(len(changed.check["rules"]))]]  # type: ignore[index]
    assert changed.fingerprint is not None
    changed_digests = {changed.fingerprint.chunks[i:i + 16].hex().upper()
                       for i in range(0, 16 * len(BASE_PATTERNS), 16)}
    assert {r[0] for r in sql(db, f"SELECT hex(digest) FROM chunks WHERE image_id = {near_id}")
            } == changed_digests
    assert sql(db, "SELECT scanned, unchanged, errors, missing, interrupted FROM scans "
               f"WHERE id = {scan_id}") == [["1", "2", "0", "1", "0"]]

    # A scan of the subdirectory only, interrupted, marks nothing; completed, it
    # marks only what lies under its root.
    with Catalog(db) as catalog:
        partial = catalog.begin_scan([str(sub)], "huawei-ims")
        assert catalog.finish_scan(partial, interrupted=True) == 0
        assert sql(db, "SELECT count(*) FROM images WHERE status = 'missing'") == [["1"]]
        complete = catalog.begin_scan([str(sub)], "huawei-ims")
        assert catalog.finish_scan(complete, interrupted=False) == 1
    assert sql(db, "SELECT path FROM images WHERE status = 'missing' ORDER BY path") \
        == [[str(lib / "base.qcow2")], [str(sub / "base.raw")]]

    # Seen again, a missing file comes back (read again: lookup refuses it).
    with Catalog(db) as catalog:
        again = catalog.begin_scan([str(sub)], "huawei-ims")
        assert catalog.lookup(str(sub / "base.raw")) is None
        catalog.record(first["base.raw"], again)
        catalog.finish_scan(again, interrupted=False)
    assert sql(db, f"SELECT status, first_seen_scan FROM images WHERE path = "
               f"'{sub / 'base.raw'}'") == [["scanned", "1"]]


def _writer(db: str, root: str, results: list[ScanResult], start: Any, kill: bool) -> None:
    """One scan process: record every result, committing every 10."""
    start.wait()
    catalog = Catalog(db)
    scan_id = catalog.begin_scan([root], "huawei-ims")
    for i, result in enumerate(results, 1):
        catalog.record(result, scan_id)
        if i % 10 == 0:
            catalog.commit()
    if kill:                      # a scan killed with its last batch open
        os.kill(os.getpid(), signal.SIGKILL)
    catalog.finish_scan(scan_id, interrupted=False)
    catalog.close()


@needs_sqlite3
def test_an_older_scan_never_hides_a_newer_sighting(tmp_path: Path,
                                                    results: dict[str, ScanResult]) -> None:
    """Scans A and B overlap on one tree; B sees X first, then A records or touches it.
    B's finish must not take X for missing (the newer sighting stands)."""
    db = tmp_path / "c.db"
    result = results["base.raw"].replace(path=str(tmp_path / "x.raw"))
    with Catalog(db) as a_side, Catalog(db) as b_side:
        scan_a = a_side.begin_scan([str(tmp_path)], None)
        a_side.commit()
        scan_b = b_side.begin_scan([str(tmp_path)], None)
        b_side.record(result, scan_b)
        b_side.commit()
        a_side.record(result, scan_a)
        a_side.touch(result.path, scan_a)
        a_side.commit()
        assert b_side.finish_scan(scan_b, interrupted=False) == 0
        b_side.commit()
    out = run("sqlite3", db, "SELECT status, last_seen_scan FROM images")
    assert out.split() == [f"scanned|{scan_b}"]


@needs_sqlite3
def test_an_unreadable_directory_hides_nothing(tmp_path: Path,
                                               results: dict[str, ScanResult]) -> None:
    """Files under a directory the walk could not list this time are not missing."""
    db = tmp_path / "c.db"
    inside = results["base.raw"].replace(path=str(tmp_path / "sub" / "x.raw"))
    outside = results["base.raw"].replace(path=str(tmp_path / "gone.raw"))
    with Catalog(db) as catalog:
        first = catalog.begin_scan([str(tmp_path)], None)
        catalog.record(inside, first)
        catalog.record(outside, first)
        catalog.finish_scan(first, interrupted=False)
        second = catalog.begin_scan([str(tmp_path)], None)
        assert catalog.finish_scan(second, False, [str(tmp_path / "sub")]) == 1
    out = run("sqlite3", db, "SELECT path, status FROM images ORDER BY path")
    assert out.split() == [f"{outside.path}|missing", f"{inside.path}|scanned"]


@needs_sqlite3
def test_two_processes_write_one_catalog(tmp_path: Path, results: dict[str, ScanResult]
                                         ) -> None:
    db = tmp_path / "shared.db"
    template = results["base.qcow2"]
    rules = len(template.check["rules"])  # type: ignore[index]

    def batch(root: str, n: int) -> list[ScanResult]:
        # Each writer's own files, then 20 both scans see.
        own = [template.replace(path=f"{root}/img{i:04d}.qcow2") for i in range(n)]
        return own + [template.replace(path=f"/lib/shared/img{i:02d}.qcow2")
                      for i in range(20)]

    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(db), root, batch(root, 300), start, False))
             for root in ("/lib/a", "/lib/b")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert sql(db, "PRAGMA integrity_check") == [["ok"]]
    assert sql(db, "SELECT count(*), count(DISTINCT path) FROM images") == [["620", "620"]]
    assert sql(db, "SELECT count(*) FROM rules") == [[str(620 * rules)]]
    assert sql(db, "SELECT count(*) FROM chunks") == [[str(620 * len(BASE_PATTERNS))]]
    assert sql(db, "SELECT sum(scanned), count(finished_at) FROM scans") == [["640", "2"]]

    # A writer killed mid-batch: its committed batches stay, the open one is gone,
    # and the catalog still opens and checks clean.
    start = ctx.Event()
    killed = ctx.Process(target=_writer,
                         args=(str(db), "/lib/c", batch("/lib/c", 25)[:25], start, True))
    killed.start()
    start.set()
    killed.join(60)
    assert killed.exitcode == -signal.SIGKILL
    assert sql(db, "PRAGMA integrity_check") == [["ok"]]
    assert sql(db, "SELECT count(*) FROM images WHERE path LIKE '/lib/c/%'") == [["20"]]
    assert sql(db, "SELECT finished_at IS NULL FROM scans ORDER BY id DESC LIMIT 1") == [["1"]]
    with Catalog(db) as catalog:
        assert catalog.stats()["images"] == 640


@needs_sqlite3
def test_scans_creating_one_catalog_at_once(tmp_path: Path, results: dict[str, ScanResult]
                                            ) -> None:
    """Whoever comes first creates the schema; the others wait and use it (found
    racing: a half-seen creation, a WAL switch that failed without waiting)."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(5):
        db = tmp_path / f"new{attempt}.db"
        start = ctx.Event()
        procs = [ctx.Process(target=_writer, args=(
            str(db), f"/lib/{i}", [results["base.raw"].replace(path=f"/lib/{i}/{n}.raw")
                                   for n in range(10)], start, False)) for i in range(4)]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 4
        assert sql(db, "SELECT count(*) FROM images") == [["40"]]


@needs_sqlite3
def test_catalog_refuses_what_it_cannot_use(tmp_path: Path, db: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    run("sqlite3", db, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(CatalogError, match="newer"):
        Catalog(db)
    status, _, err = cli(capsys, "list", "--catalog", str(db))
    assert status == 2 and f"schema version {SCHEMA_VERSION + 1} is newer" in err
    assert sql(db, "PRAGMA user_version") == [[str(SCHEMA_VERSION + 1)]]   # left alone
    other = tmp_path / "other.db"
    run("sqlite3", other, "CREATE TABLE t (x)")
    with pytest.raises(CatalogError, match="not an imgscan catalog"):
        Catalog(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CatalogError, match="file is not a database"):
        Catalog(junk)
    absent = tmp_path / "absent.db"
    with pytest.raises(CatalogError, match="no such catalog"):
        Catalog(absent, create=False)
    assert not absent.exists()


def test_duplicates_finds_one_disk_and_a_changed_copy(db: Path, library: dict[str, Path]
                                                      ) -> None:
    # qemu-img compare: the conversions hold base.raw's disk, near.qcow2 does not.
    for name in ("base.qcow2", "base.vmdk"):
        run("qemu-img", "compare", library["base.raw"], library[name])
    with pytest.raises(AssertionError):
        run("qemu-img", "compare", library["base.raw"], library["near.qcow2"])
    with Catalog(db, create=False) as catalog:
        dups = catalog.duplicates()
    base = sorted(str(library[n]) for n in ("base.raw", "base.qcow2", "base.vmdk"))
    assert [sorted(m["path"] for m in g["images"]) for g in dups["groups"]] == [base]
    assert dups["groups"][0]["virtual_size"] == DISK
    # near.qcow2 shares 5 of its 6 non-zero chunks with each copy of base; other.vhd
    # shares none with anything.
    near = str(library["near.qcow2"])
    assert sorted((p["a"], p["b"]) for p in dups["pairs"]) == sorted(
        (min(b, near), max(b, near)) for b in base)
    assert {(p["shared"], p["fraction"]) for p in dups["pairs"]} == {(5, 5 / 6)}
    with Catalog(db, create=False) as catalog:
        assert catalog.duplicates(min_shared=0.9)["pairs"] == []


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["catalog", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_stats_list_and_filters(db: Path, library: dict[str, Path],
                                    results: dict[str, ScanResult],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "stats", "--catalog", str(db), "--json")
    assert status == 0
    stats = json.loads(out)
    assert stats["images"] == len(library)
    assert stats["by_status"] == {"scanned": 5, "error": 1}
    assert stats["by_format"] == {"qcow2": 2, "raw": 1, "vhd": 1, "vmdk": 1}
    assert stats["rules"]["system-disk-present"]["fail"] == 5
    assert stats["file_size"] == sum(p.stat().st_size for p in library.values())
    status, out, _ = cli(capsys, "stats", "--catalog", str(db))
    assert status == 0 and "system-disk-present" in out

    def listed(*filters: str) -> list[str]:
        status, out, _ = cli(capsys, "list", "--catalog", str(db), "--json", *filters)
        assert status == 0
        return [json.loads(line)["path"] for line in out.splitlines()]

    qcow2 = [str(p) for n, p in sorted(library.items())
             if n != "broken.qcow2" and qemu_info(p)["format"] == "qcow2"]
    assert listed("--format", "qcow2") == qcow2
    assert listed("--status", "error") == [str(library["broken.qcow2"])]
    error = results["broken.qcow2"].error
    assert error is not None
    assert listed("--error-type", error["type"]) == [str(library["broken.qcow2"])]
    assert listed("--error-type", "Timeout") == []
    assert len(listed("--rule", "system-disk-present")) == 5
    assert listed("--rule", "system-disk-present:pass") == []
    assert len(listed("--verdict", "fail", "--boot-mode", "unknown")) == 5
    status, out, _ = cli(capsys, "list", "--catalog", str(db), "--format", "vhd")
    assert status == 0
    assert out.splitlines()[0].split() == ["path", "format", "virtual", "size", "boot",
                                           "verdict", "/", "error"]
    assert str(library["other.vhd"]) in out and out.rstrip().endswith("1 image")


def test_cli_export(db: Path, library: dict[str, Path], results: dict[str, ScanResult],
                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_csv = tmp_path / "images.csv"
    assert cli(capsys, "export", "--catalog", str(db), "--to", "csv", "-o", str(out_csv))[0] == 0
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in library.values())
    for row in rows:
        name = Path(row["path"]).name
        if name == "broken.qcow2":
            assert row["status"] == "error" and row["virtual_size"] == ""
            continue
        assert int(row["virtual_size"]) == qemu_info(library[name])["virtual-size"]
        assert "system-disk-present" in row["failed_rules"].split()
        assert row["fingerprint"] == results[name].fingerprint.digest  # type: ignore[union-attr]

    status, out, _ = cli(capsys, "export", "--catalog", str(db), "--to", "jsonl",
                         "--format", "qcow2")
    assert status == 0
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 2
    for doc in docs:
        result = results[Path(doc["path"]).name]
        assert doc["info"] == result.info
        assert doc["check"]["verdict"] == result.check["verdict"]  # type: ignore[index]
        assert [r["id"] for r in doc["rules"]] == sorted(
            r["id"] for r in result.check["rules"])  # type: ignore[index]

    status, out, _ = cli(capsys, "export", "--catalog", str(db), "--to", "csv",
                         "--status", "missing")
    assert status == 0 and list(csv.reader(io.StringIO(out)))[1:] == []


@needs_sqlite3
def test_cli_duplicates_and_exit_codes(db: Path, tmp_path: Path, library: dict[str, Path],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "duplicates", "--catalog", str(db))
    assert status == 0
    assert "1 group" in out and "83.3%" in out and str(library["near.qcow2"]) in out
    status, out, _ = cli(capsys, "duplicates", "--catalog", str(db), "--json",
                         "--min-shared", "0.9")
    assert status == 0 and json.loads(out)["pairs"] == []

    absent = tmp_path / "nothing.db"
    status, _, err = cli(capsys, "stats", "--catalog", str(absent))
    assert status == 2 and "no such catalog" in err and not absent.exists()
    status, _, err = cli(capsys, "list", "--catalog", str(db), "--rule", "no-such-rule")
    assert status == 2 and "unknown rule" in err
    for bad in (["list", "--rule", "bios-boot:nope"], ["duplicates", "--min-shared", "2"],
                ["export"]):
        with pytest.raises(SystemExit) as exc:
            main(["catalog", *bad, "--catalog", str(db)])
        assert exc.value.code == 2
    status, _, err = cli(capsys, "export", "--catalog", str(db), "--to", "csv",
                         "-o", str(tmp_path / "no" / "dir.csv"))
    assert status == 2 and "cannot write" in err
    # A catalog being written by a scan can be queried meanwhile (WAL readers).
    with Catalog(db) as writer:
        writer.begin_scan([str(tmp_path)], None)
        writer.record(ScanResult(str(tmp_path / "x.raw"), "error", None,
                                 error={"type": "OSError", "structure": "file",
                                        "offset": None, "message": "denied"}), 1)
        status, out, _ = cli(capsys, "stats", "--catalog", str(db), "--json")
        assert status == 0 and json.loads(out)["images"] == len(library)
    assert sql(db, "SELECT count(*) FROM images") == [[str(len(library) + 1)]]


@needs_sqlite3
def test_report_rows_detail_is_the_objects_without_path(db: Path) -> None:
    """``report_rows``' detail (the path cut out of the stored text) holds what the
    sqlite3 tool's ``json_remove(..., '$.path')`` of the stored objects holds; so do
    paths with quotes, backslashes and non-ASCII, and objects of another shape."""
    from imgscan.bulk.catalog.queries import _without_path

    with Catalog(db) as catalog:
        details = {row["path"]: row["detail"] for row in catalog.report_rows()}
    removed = sql(db, "SELECT path, json_remove(info_json, '$.path'), "
                  "coalesce(json_remove(check_json, '$.path'), 'null') FROM images "
                  "WHERE info_json IS NOT NULL")
    assert len(removed) == len(details) - 1          # broken.qcow2: no info, no detail
    for path, info, check in removed:
        assert json.loads(details[path]) == [json.loads(info), json.loads(check)]
    for obj in ({"schema_version": 1, "path": 'a"\\, "path": "\u00e9', "x": {"path": 1}},
                {"schema_version": 1, "path": "last"}, {"path": "first", "y": 2}):
        text = json.dumps(obj)
        quoted = text.replace("'", "''")
        [[oracle]] = sql(Path(":memory:"), f"SELECT json_remove('{quoted}', '$.path')")
        assert json.loads(_without_path(text)) == json.loads(oracle)

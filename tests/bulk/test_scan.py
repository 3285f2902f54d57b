"""Bulk scanning (issue 7): discovery, the worker pool, rescans, kills and the CLI.

A library of a few hundred images made by qemu-img (every format it writes,
some damaged), non-image files and unreadable entries is scanned with one and
two workers; ``qemu-img info`` on each template is the oracle for what every
copy of it is (format and virtual size), and qemu-img refusing a damaged file
is the oracle for an error. The catalog's state after rescans and kills is read
with the ``sqlite3`` command-line tool.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import MiB, overwrite, qemu_create, sparse_copy
from helpers.ova_packages import descriptor
from helpers.scan_library import SCAN_IMAGE, Library, misbehave, troublemakers
from helpers.scans import Watched, batch_sizes
from oracles import needs_qemu, needs_sqlite3, run

import imgscan
from imgscan import limits
from imgscan.bulk import pipe, runner, worker
from imgscan.bulk.result import FileIdentity, ScanResult
from imgscan.cli import main
from imgscan.report.scan import CLEAR_LINE, ScanReport, scan_line

pytestmark = needs_qemu

#: The imgscan the tests import, for the subprocesses too (a checkout or an install).
IMGSCAN_ROOT = str(Path(imgscan.__file__).resolve().parent.parent)
#: Where child pythons start: `python -m` and `-c` put their working directory first on
#: sys.path, and the checkout's root holds the unbuilt source package, which would
#: shadow the installed imgscan in CI.
CHILD_CWD = Path(__file__).resolve().parent


def identity_of(path: str, digest: str) -> FileIdentity:
    st = os.stat(path)
    return FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, digest)


def scan_all(paths: list[str], **kwargs: Any) -> tuple[dict[str, ScanResult], int]:
    """Every result of a scan by path, and the number of files skipped."""
    with imgscan.scan(paths, **kwargs) as scan:
        results = {r.path: r for r in scan}
        assert not scan.interrupted
        return results, scan.skipped


@pytest.fixture(scope="session")
def one_job(library: Library) -> tuple[dict[str, ScanResult], int]:
    return scan_all([str(library.root)], jobs=1, info_only=True)


def test_library_scan_matches_qemu(library: Library,
                                   one_job: tuple[dict[str, ScanResult], int]) -> None:
    results, skipped = one_job
    assert len(library.images) > 250
    scanned = {p: (r.info["format"], r.info["virtual_size"])
               for p, r in results.items() if r.status == "scanned" and r.info}
    assert scanned == library.images
    errors = {p: r.error["type"] for p, r in results.items() if r.error}
    assert errors == {**library.damaged, **{p: "OSError" for p in library.unreadable}}
    # text, random bytes, the FIFO and the directory symlink
    assert skipped == len(library.not_images) + 2
    for path in library.images:
        identity = results[path].identity
        assert identity is not None
        assert identity == identity_of(path, identity.header_digest)
    some = next(iter(library.images))
    with open(some, "rb") as f:
        head = f.read(64 * 1024)
    oracle = subprocess.run(["xxhsum", "-H3", "-"], input=head, capture_output=True,
                            check=True).stdout.split()[-1].decode()
    assert results[some].identity == identity_of(some, oracle)


def test_two_jobs_give_the_same_results(library: Library,
                                        one_job: tuple[dict[str, ScanResult], int]) -> None:
    results, skipped = scan_all([str(library.root)], jobs=2, info_only=True)
    assert skipped == one_job[1]

    def same(r: ScanResult) -> tuple[Any, ...]:
        return r.status, r.identity, r.info, r.error

    assert {p: same(r) for p, r in results.items()} == {
        p: same(r) for p, r in one_job[0].items()}


def test_profile_and_fingerprint(library: Library, monkeypatch: pytest.MonkeyPatch,
                                 tmp_path: Path) -> None:
    """A check object per image, one fingerprint for one disk in any container (none,
    but facts and verdict, when the guest bytes cannot be read), and a time limit that
    grows with the bytes a fingerprint reads."""
    picked = [p for p in library.images if "/0-" in p and "random" not in p
              and "blank" not in p]
    results, _ = scan_all(picked, jobs=2, profile="safe", fingerprint=True)
    assert {r.status for r in results.values()} == {"scanned"}
    assert {r.check["profile"] if r.check else None for r in results.values()} == {"safe"}
    # The MBR disk as raw, qcow2, VHDX, VMDK, ... (VHD rounds its size up to a geometry)
    same_disk = [r.fingerprint for p, r in results.items() if "gpt" not in p
                 and r.info and r.info["virtual_size"] == 2 * MiB]
    assert len(same_disk) >= 9
    assert len({fp.digest if fp else None for fp in same_disk}) == 1, same_disk
    encrypted = qemu_create(tmp_path / "aes.qcow2", "1M", "--object", "secret,id=s,data=k",
                            "-o", "compat=0.10,encrypt.format=aes,encrypt.key-secret=s",
                            fmt="qcow2")
    (result,) = scan_all([str(encrypted)], jobs=1, profile="safe",
                         fingerprint=True)[0].values()
    assert result.status == "scanned" and result.fingerprint is None
    assert result.info and result.info["encrypted"]
    assert result.check and result.check["verdict"] == "fail"

    # 0.05 s is too short for a (slowed) image, unless its stored bytes read at the
    # fingerprint's minimum rate (1 KiB/s here) add their time.
    monkeypatch.setattr(worker, "scan_image", slowly)
    monkeypatch.setattr(limits, "SCAN_FINGERPRINT_MIN_RATE", 1024)
    one = picked[:1]
    assert os.stat(one[0]).st_blocks * 512 >= 1024
    timed, _ = scan_all(one, jobs=1, info_only=True, time_limit=0.05)
    assert (timed[one[0]].error or {}).get("type") == "Timeout"
    fingerprinted, _ = scan_all(one, jobs=1, info_only=True, time_limit=0.05,
                                fingerprint=True)
    assert fingerprinted[one[0]].status == "scanned"


# -- worker failures ----------------------------------------------------------------
def slowly(path: str, options: worker.Options,
           identity: tuple[int, int] | None = None) -> tuple[Any, Any, Any] | None:
    time.sleep(0.1)
    return SCAN_IMAGE(path, options, identity)


@pytest.fixture
def trouble(library: Library, tmp_path: Path) -> Path:
    return troublemakers(library, tmp_path)


def test_worker_failures_cost_one_image(trouble: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "scan_image", misbehave)
    start = time.monotonic()
    results, _ = scan_all([str(trouble)], jobs=2, info_only=True, time_limit=1.5,
                          memory_limit=256 * MiB)
    assert time.monotonic() - start < 20     # the hang was cut off, not waited out
    by_name = {os.path.basename(p): r for p, r in results.items()}
    assert len(by_name) == 17
    errors = {n: r.error for n, r in by_name.items() if r.error is not None}
    assert {n: e["type"] for n, e in errors.items()} == {
        "hang.raw": "Timeout", "exit.raw": "WorkerCrashed", "segv.raw": "WorkerCrashed",
        "hog.raw": "MemoryLimit", "bug.raw": "ValueError"}
    assert "signal 11 (SIGSEGV)" in errors["segv.raw"]["message"]
    assert "status 3" in errors["exit.raw"]["message"]
    assert "1.5 s" in errors["hang.raw"]["message"]
    assert all(r.status == "scanned" for n, r in by_name.items() if n.startswith("ok"))


def test_batches_hold_a_few_ms_of_reading(library: Library, trouble: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Images read fast go in batches that hold about BATCH_WORK of reading (up to
    MAX_BATCH tasks), so a worker never runs dry while the parent naps; slow ones stay
    in batches of BATCH, so that few wait behind a slow image."""
    sizes = batch_sizes(monkeypatch)
    # every library image fast enough to grow on, however loaded the machine (no timed
    # test); the slow images below take 0.1 s each, 25 times the real threshold's share
    work = runner.BATCH_WORK
    monkeypatch.setattr(runner, "BATCH_WORK", 1.0)
    scan_all([str(library.root)], jobs=1, info_only=True)
    assert sizes[0] == runner.BATCH
    assert max(sizes) > runner.BATCH and max(sizes) <= runner.MAX_BATCH
    sizes.clear()
    monkeypatch.setattr(runner, "BATCH_WORK", work)
    monkeypatch.setattr(runner, "BATCH", 2)     # batches of 2 images of 0.1 s each
    monkeypatch.setattr(worker, "scan_image", slowly)
    scan_all([str(p) for p in sorted(trouble.glob("ok*"))[:8]], jobs=1, info_only=True)
    assert max(sizes) == 2


def test_nothing_waits_behind_a_hung_image(library: Library, trouble: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The tasks a worker holds behind an image it hangs on (up to 2 * MAX_BATCH - 1 of
    fast images) are moved to the other worker once it stalls: every other image is
    answered before the hung one's time limit, each once (the hung worker's copies are
    dropped)."""
    monkeypatch.setattr(worker, "scan_image", misbehave)
    fast = sorted(p for p in library.images if os.path.isfile(p) and not os.path.islink(p))
    paths = [*fast[:40], str(trouble / "hang.raw"), *fast[40:]]
    with imgscan.scan(paths, jobs=2, info_only=True, time_limit=6.0) as scan:
        results = list(scan)
    assert len({r.path for r in results}) == len(results) > 100
    assert [r.path for r in results if r.error and r.error["type"] == "Timeout"] == [
        results[-1].path] == [str(trouble / "hang.raw")]


def test_long_paths_never_block_the_parent(trouble: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths near PATH_MAX that are not UTF-8 (3 bytes each per byte in a task frame):
    eight of them would not fit the pipe, and the parent, blocked writing, could not
    cut off the hanging image at its time limit."""
    monkeypatch.setattr(worker, "scan_image", misbehave)
    deep = tmp_path / "deep"
    for i in range(15):     # about 3.8 KB of path, 11 KB in a frame
        deep = deep / (os.fsdecode(bytes([0xFF]) * 248) + f"{i:02d}")
    deep.mkdir(parents=True)
    sparse_copy(trouble / "hang.raw", deep / "hang.raw")
    for i in range(40):     # enough for full batches of 8 behind the hanging one
        sparse_copy(trouble / "ok0.raw", deep / f"ok{i:02d}.raw")
    start = time.monotonic()
    results, _ = scan_all([str(tmp_path / "deep")], jobs=1, info_only=True, time_limit=1.0)
    assert time.monotonic() - start < 15
    types = sorted(r.error["type"] if r.error else r.status for r in results.values())
    assert types == ["Timeout"] + ["scanned"] * 40


def test_a_slow_consumer_is_not_a_timeout(trouble: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Time the caller spends between results is not charged to the images: answers
    that arrived meanwhile are read before any worker is judged late."""
    monkeypatch.setattr(worker, "scan_image", slowly)
    oks = [str(p) for p in sorted(trouble.glob("ok*"))[:4]]
    statuses = []
    with imgscan.scan(oks, jobs=1, info_only=True, time_limit=0.3) as scan:
        for result in scan:
            statuses.append(result.status)
            time.sleep(0.5)
    assert statuses == ["scanned"] * 4


def test_waiting_follows_the_results_it_lets_out(trouble: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``ScanRun.waiting`` is called before the scan waits for its workers, every result
    so far yielded: ``imgscan scan``'s report writes its kept lines then, never behind
    a slow image."""
    monkeypatch.setattr(worker, "scan_image", slowly)
    oks = [str(p) for p in sorted(trouble.glob("ok*"))[:3]]
    seen: list[str] = []
    at_wait: list[int] = []
    with imgscan.scan(oks, jobs=1, info_only=True) as scan:
        scan.waiting = lambda: at_wait.append(len(seen))
        for result in scan:
            seen.append(result.path)
    assert len(seen) == 3
    # the first wait before any result; a later one after some (0.1 s apart: a loaded
    # machine may still deliver two in one read)
    assert at_wait[0] == 0 and at_wait == sorted(at_wait) and max(at_wait) >= 1


@pytest.mark.parametrize("as_json", [False, True])
def test_scan_writes_lines_while_a_slow_image_is_read(trouble: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      as_json: bool) -> None:
    """``imgscan scan`` writes the lines it holds when the scan waits for a worker (the
    CLI sets ``ScanRun.waiting``): the images read before a slow one are on standard
    output while it is still being read, not at the end."""
    oks = [str(p) for p in sorted(trouble.glob("ok*"))[:4]]
    watched = Watched(tmp_path, oks[-1], oks[:-1])

    def held(path: str, options: worker.Options,
             identity: tuple[int, int] | None = None) -> tuple[Any, Any, Any] | None:
        watched.hold(path)
        return SCAN_IMAGE(path, options, identity)

    monkeypatch.setattr(worker, "scan_image", held)
    monkeypatch.setattr(sys, "stdout", watched)
    args = ["scan", "--info-only", *(["--json"] if as_json else []), "--jobs", "1"]
    assert main([*args, *oks]) == 0
    assert watched.early
    assert all(p in watched.text for p in oks)


def test_kept_lines_are_written_every_kept_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report holds at most KEPT_LINES lines: a rescan whose files are all unchanged
    never waits for a worker, and must not print only at its end."""
    from imgscan import report

    results = [ScanResult(f"{i}.qcow2", "unchanged", None) for i in range(5)]
    out = io.StringIO()
    monkeypatch.setattr(report, "KEPT_LINES", 2)
    scan_report = ScanReport(out, io.StringIO(), as_json=False)
    for result in results:
        scan_report.add(result)
    assert out.getvalue().splitlines() == [scan_line(r) for r in results[:4]]


def test_an_unchanged_rescan_writes_as_it_goes(small_library: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A catalog rescan where nothing changed (no image goes to a worker) writes its
    lines every KEPT_LINES, not all at the end."""
    db = str(tmp_path / "c.db")
    args = ["scan", "--info-only", str(small_library), "--catalog", db]
    status = main(args)
    capsys.readouterr()
    writes: list[str] = []

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return super().write(text)

    monkeypatch.setattr("imgscan.report.KEPT_LINES", 2)
    monkeypatch.setattr(sys, "stdout", Out())
    assert main(args) == status
    lines = [w for w in writes if "(unchanged)" in w]
    assert len(lines) > 2 and all(w.count("\n") <= 2 for w in lines)


def test_a_failing_catalog_keeps_the_lines_before_it(small_library: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    """The lines of the images recorded before the catalog failed are written (a
    rescan's unchanged files are yielded without a wait, so they are all still kept)."""
    import sqlite3

    from imgscan.bulk.catalog import Catalog

    db = str(tmp_path / "c.db")
    args = ["scan", "--info-only", str(small_library), "--catalog", db]
    main(args)
    capsys.readouterr()
    real = Catalog.record
    recorded: list[object] = []

    def fails_third(self: Catalog, *args: Any) -> None:
        recorded.append(args)
        if len(recorded) == 3:
            raise sqlite3.OperationalError("disk I/O error")
        real(self, *args)

    monkeypatch.setattr(Catalog, "record", fails_third)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert err.strip().endswith(f"{db}: the catalog failed: disk I/O error")
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.endswith("(unchanged)") for line in lines)


def test_an_ova_holding_a_raw_disk_is_one_image_with_or_without_a_catalog(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Whether a raw image is one is told by its guest's first bytes, read from the
    image: an OVA whose disk is raw (MBR written by sfdisk) starts with a tar header,
    and a catalog's scan (which reads the file's head for its digest) skipped it as
    not an image while the report's found it."""
    disk = tmp_path / "disk1.img"
    run("truncate", "-s", str(8 * MiB), disk)
    subprocess.run(["sfdisk", "-q", str(disk)], input="label: dos\n,,L\n", text=True,
                   check=True, capture_output=True)
    (tmp_path / "pkg.ovf").write_text(descriptor([("disk1.img", disk, 8 * MiB)]))
    run("tar", "--format=ustar", "-cf", "pkg.ova", "pkg.ovf", "disk1.img", cwd=tmp_path)
    ova = str(tmp_path / "pkg.ova")
    assert "dos" in run("sfdisk", "-d", disk)      # the oracle: a partition table
    assert main(["scan", "--info-only", ova]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert main(["scan", "--info-only", "--catalog", str(tmp_path / "c.db"), ova]) == 0
    cataloged = capsys.readouterr().out.splitlines()
    assert plain[0] == cataloged[0] == f"{ova}  raw  8 MiB  boot unknown"
    assert all(", 0 errors, " in out[1] for out in (plain, cataloged))


# -- catalog: rescans, kills, Ctrl-C -----------------------------------------------------
def sqlite(db: Path, sql: str) -> str:
    return run("sqlite3", db, sql).strip()


@pytest.fixture
def small_library(library: Library, tmp_path: Path) -> Path:
    """Two copies of each template (a directory of the library), in a tree of its own."""
    lib = tmp_path / "lib"
    shutil.copytree(library.root / "d0" / "e0", lib / "a")
    return lib


@needs_sqlite3
def test_rescan_touches_only_changed_files(small_library: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "catalog.db")
    first, _ = scan_all([str(small_library)], jobs=2, catalog=db, info_only=True)
    assert {r.status for r in first.values()} == {"scanned"}
    raws = sorted(p for p in first if p.endswith("mbr.raw"))
    changed, deleted = raws[0], raws[1]
    # Same size and mtime, a new disk signature: only the header digest tells.
    st = os.stat(changed)
    overwrite(Path(changed), 440, b"\x12\x34\x56\x78")
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.unlink(deleted)
    added = str(small_library / "added.raw")
    sparse_copy(next(p for p in first if p.endswith("gpt.raw")), added)
    second, _ = scan_all([str(small_library)], jobs=2, catalog=db, info_only=True)
    status = {p: r.status for p, r in second.items()}
    assert {p for p, s in status.items() if s == "scanned"} == {changed, added}
    assert set(status) == set(first) - {deleted} | {added}
    assert all(s == "unchanged" for p, s in status.items() if p not in (changed, added))
    # An unchanged file reports what was recorded for it, so a rescan still shows
    # (and its exit status still counts) every verdict and error.
    assert all(second[p].info == first[p].info
               for p, s in status.items() if s == "unchanged")
    assert sqlite(Path(db), "SELECT path FROM images WHERE status = 'missing'") == deleted
    assert sqlite(Path(db), "SELECT count(*) FROM images WHERE status = 'scanned'") == str(
        len(first))


def cli(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """``python -m imgscan ARGS`` on the imgscan the tests import."""
    env = {**os.environ, "PYTHONPATH": IMGSCAN_ROOT, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "imgscan", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=CHILD_CWD,
                            **kwargs)


def lines_then(proc: subprocess.Popen[str], count: int) -> Iterator[str]:
    assert proc.stdout is not None
    for _ in range(count):
        yield proc.stdout.readline()


@needs_sqlite3
def test_killed_scan_leaves_a_usable_catalog(library: Library, tmp_path: Path) -> None:
    db = tmp_path / "killed.db"
    proc = cli("scan", str(library.root), "--jobs", "1", "--catalog", str(db))
    assert all(line for line in lines_then(proc, 30))
    proc.kill()
    proc.communicate()
    assert sqlite(db, "PRAGMA integrity_check") == "ok"
    proc = cli("scan", str(library.root), "--catalog", str(db))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err        # the damaged files are errors
    assert f"scanned {len(library.images) + len(library.damaged) + 1} images" in out
    assert sqlite(db, "SELECT count(*) FROM images WHERE status != 'missing'") == str(
        len(library.images) + len(library.damaged) + 1)
    assert sqlite(db, "SELECT count(*) FROM scans WHERE finished_at IS NOT NULL") == "1"


#: ``imgscan`` whose workers hang on any file named hang*: a scan that runs until it is
#: stopped (the fork inherits the patched function, as in the in-process tests).
HANGING_CLI = """
import sys, time
from imgscan.bulk import worker
real = worker.scan_image
def hang(path, *args):
    if "/hang" in path:
        time.sleep(3600)
    return real(path, *args)
worker.scan_image = hang
from imgscan.cli import main
sys.exit(main(sys.argv[1:]))
"""


def recorded_rows(db: Path) -> int:
    """Rows in the catalog's images table; 0 while it is not created yet."""
    proc = subprocess.run(["sqlite3", db, "SELECT count(*) FROM images"],
                          capture_output=True, text=True, check=False)
    return int(proc.stdout) if proc.returncode == 0 else 0


@needs_sqlite3
def test_ctrl_c_stops_cleanly(trouble: Path, tmp_path: Path) -> None:
    """Results are committed while one image holds a worker, and Ctrl-C then stops
    the scan: workers killed, what was recorded kept, the scan closed as interrupted."""
    db = tmp_path / "interrupted.db"
    env = {**os.environ, "PYTHONPATH": IMGSCAN_ROOT}
    proc = subprocess.Popen([sys.executable, "-c", HANGING_CLI, "scan", str(trouble),
                             "--catalog", str(db), "--info-only", "--jobs", "2"], env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, cwd=CHILD_CWD)
    # The images the other worker reads (those queued behind the hang in its worker
    # wait for the time limit) reach the catalog while the scan runs.
    deadline = time.monotonic() + 20
    while recorded_rows(db) < 8:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)     # as a terminal's Ctrl-C: the workers get it too
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = out.splitlines()
    recorded = [line for line in lines if "  raw  2 MiB  " in line]
    assert f"interrupted after {len(recorded)} images" in lines[len(recorded)]
    assert sqlite(db, "PRAGMA integrity_check") == "ok"
    assert sqlite(db, "SELECT interrupted FROM scans") == "1"
    assert sqlite(db, "SELECT count(*) FROM images WHERE status = 'scanned'") == str(
        len(recorded))


# -- the command line ------------------------------------------------------------------
def test_cli_json_lines_and_no_progress_in_a_pipe(library: Library) -> None:
    bad = str(library.root / "bad")
    proc = cli("scan", "--json", "--jobs", "2", bad, next(iter(library.images)))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "\r" not in err and "\033" not in err
    objects = [json.loads(line) for line in out.splitlines()]
    assert len(objects) == len(library.damaged) + 2
    by_path = {o["path"]: o for o in objects}
    for path, error in library.damaged.items():
        assert by_path[path]["error"]["type"] == error
        assert by_path[path]["scan"]["status"] == "error"
    good = by_path[next(iter(library.images))]
    assert good["verdict"] in ("pass", "warn", "fail") and "rules" in good
    assert good["scan"]["status"] == "scanned"
    assert "errors: " in err and "skipped" in err     # the summary, kept off stdout


def _without_elapsed(line: str) -> str:
    obj = json.loads(line)
    del obj["scan"]["elapsed"]
    return json.dumps(obj, sort_keys=True)


@pytest.mark.parametrize("args", [("--info-only",), ("--fingerprint",),
                                  ("--profile", "all")])
def test_cli_report_lines_are_the_whole_results(library: Library,
                                                args: tuple[str, ...]) -> None:
    """``imgscan scan`` asks its workers for what its report prints (``for_report``: the
    info object cut to the line's members, the check object to its verdicts and the
    rules that failed or warned, the JSON line written by the worker): every line and
    the summary's counts are those its report makes of the whole results of
    ``imgscan.scan`` (no elapsed time compared: the runs differ), with the default
    profile and with several."""
    whole, _ = scan_all([str(library.root)], jobs=2, info_only="--info-only" in args,
                        fingerprint="--fingerprint" in args,
                        profile="all" if "all" in args else None)
    for as_json in (False, True):
        proc = cli("scan", *args, *(["--json"] if as_json else []), "--jobs", "2",
                   str(library.root))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (1, 2), err
        report = ScanReport(io.StringIO(), io.StringIO(), as_json)
        for result in whole.values():
            report.add(result)
        report.finish(0, False)
        expected = report.out.getvalue().splitlines()  # type: ignore[attr-defined]
        got = out.splitlines()
        summary = (err if as_json else out).splitlines()
        if as_json:
            assert sorted(map(_without_elapsed, got)) == sorted(map(_without_elapsed,
                                                                    expected))
            summary_of_whole = report.err.getvalue().splitlines()  # type: ignore[attr-defined]
        else:
            n = len(whole)
            assert sorted(got[:n]) == sorted(expected[:n])
            summary, summary_of_whole = got[n + 1:], expected[n + 1:]
        assert summary[1:] == summary_of_whole[1:]   # the counts, after the timing line


def test_rescan_keeps_the_exit_status(small_library: Path, tmp_path: Path) -> None:
    """A rule that failed, or an image that could not be read, still decides the exit
    status when nothing changed since the scan that found it."""
    (small_library / "broken.qcow2").write_bytes(b"QFI\xfb\0\0\0\3" + bytes(64))
    db = str(tmp_path / "c.db")
    for expected_unchanged in (False, True):
        proc = cli("scan", str(small_library), "--catalog", db)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, err
        broken = next(line for line in out.splitlines() if "broken.qcow2" in line)
        assert " error " in broken and broken.endswith("(unchanged)") == expected_unchanged
        assert "failed rules: " in out


def test_cli_text_summary_and_exit_status(library: Library) -> None:
    good = sorted(p for p in library.images if p.endswith("disk2.qcow2"))
    proc = cli("scan", "--info-only", *good)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[:len(good)] and all(" qcow2  2 MiB  boot " in line for line in lines[:len(good)])
    assert f"scanned {len(good)} images" in out and "formats: qcow2 20" in out
    proc = cli("scan", "--profile", "no-such-profile", good[0])
    assert proc.communicate(timeout=60)[1].startswith("imgscan: ")
    assert proc.returncode == 2


def test_a_failing_catalog_is_an_error_not_a_traceback(
        small_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A catalog that fails mid-scan (disk full, locked past the busy timeout) stops
    the scan with exit 2 and one line naming the catalog."""
    import sqlite3

    from imgscan.bulk.catalog import Catalog
    from imgscan.cli import main

    def locked(*args: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Catalog, "record", locked)
    db = str(tmp_path / "c.db")
    assert main(["scan", "--info-only", str(small_library), "--catalog", db]) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"{db}: the catalog failed: database is locked")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_only_on_a_terminal() -> None:
    result = ScanResult("x.qcow2", "error", None, error={
        "type": "CorruptImage", "structure": "header", "offset": 0, "message": "x.qcow2: bad"})
    for err, shown in ((_Terminal(), True), (io.StringIO(), False)):
        report = ScanReport(io.StringIO(), err, as_json=False)
        report.add(result)
        report.progress(skipped=0)
        report.finish(skipped=0, interrupted=False)
        assert (CLEAR_LINE in err.getvalue()) is shown


def test_summary_counts_formats_and_boot_modes_each() -> None:
    """The summary's formats and boot modes are each image's, counted apart although the
    report counts their pairs: a format seen with two boot modes and a boot mode with
    two formats, an unchanged image's recorded facts, an error with no facts."""
    facts = [("qcow2", "uefi"), ("qcow2", "bios"), ("raw", "bios"), ("qcow2", "uefi"),
             ("vhd", None)]
    out = io.StringIO()
    report = ScanReport(out, io.StringIO(), as_json=False)
    for i, (fmt, boot) in enumerate(facts):
        report.add(ScanResult(f"{i}.img", "unchanged" if i == 2 else "scanned", None,
                              info={"format": fmt, "virtual_size": 1 << 20,
                                    "boot_mode": boot}))
    report.add(ScanResult("x.qcow2", "error", None, error={
        "type": "CorruptImage", "structure": "header", "offset": 0, "message": "x: bad"}))
    report.finish(skipped=0, interrupted=False)
    shown = out.getvalue()
    assert "  formats: qcow2 3, raw 1, vhd 1\n" in shown
    assert "  boot modes: bios 2, uefi 2, None 1\n" in shown
    assert "scanned 6 images" in shown and "4 read, 1 errors, 1 unchanged" in shown


def test_report_scan_reads_as_a_digest_scan(library: Library,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A report's scan, which checks a file by its open image and reads a raw image's head
    from the image, answers as the head's read did (a scan that keeps digests): the same kind
    and payload for images of each format, damaged ones, raw ones and files that are not
    images; and for a file this process may not read, whose image's open fails, the
    head's OSError, read again for the few files that fail."""
    digests = worker.Options([], False, 1, None, None)
    options = worker.Options([], False, 1, None, None)
    options.report = "text"
    paths = [*library.images, *library.damaged, *library.not_images]
    stats = {p: os.stat(p) for p in paths if os.path.isfile(p) and not os.path.islink(p)}
    assert any(p.endswith(".raw") for p in stats) and len(stats) > 10
    assert any(p in stats for p in library.damaged)

    def answers(options: worker.Options) -> list[tuple[Any, ...]]:
        return [(kind, None, *rest) for kind, _, *rest in (
            worker._one(p, st.st_dev, st.st_ino, options) for p, st in stats.items())]

    assert answers(options) == answers(digests)
    # as root no mode bit keeps a file from being read: both opens are refused instead
    refused = next(iter(library.images))
    stats = {refused: stats[refused]}
    real_open = os.open

    def denied(path: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == refused:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    def no_source(path: str, *args: Any) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "open", denied)
    monkeypatch.setattr("imgscan.disk_image.Source", no_source)
    assert answers(options) == answers(digests) == [(pipe.ERROR, None, {
        "type": "OSError", "structure": "file", "offset": None,
        "message": f"{refused}: Permission denied"})]


def test_report_scan_of_a_file_replaced_since_the_walk(library: Library,
                                                      tmp_path: Path) -> None:
    """A report's scan checks the file by its open image's descriptor, not by a stat or
    the head's read: a file replaced since the walk answers as the head's read does (a
    scan that keeps digests). Another file in its place (a copy: another inode), a FIFO
    or a directory is not an image; a file gone is its OSError."""
    digests = worker.Options([], False, 1, None, None)
    options = worker.Options([], False, 1, None, None)
    options.report = "text"
    source = next(p for p in library.images if p.endswith("disk2.qcow2"))
    walked = tmp_path / "walked.qcow2"
    sparse_copy(source, walked)
    st = os.stat(walked)

    def answer(options: worker.Options) -> tuple[Any, ...]:
        kind, _, *rest = worker._one(str(walked), st.st_dev, st.st_ino, options)
        return (kind, *rest)

    assert answer(options)[0] == pipe.SCANNED
    sparse_copy(source, tmp_path / "copy.qcow2")
    os.replace(tmp_path / "copy.qcow2", walked)     # made before the walked one went
    assert os.stat(walked).st_ino != st.st_ino
    assert answer(options) == answer(digests) == (pipe.NOT_IMAGE,)
    walked.unlink()
    os.mkfifo(walked)
    assert answer(options) == answer(digests) == (pipe.NOT_IMAGE,)
    walked.unlink()
    walked.mkdir()
    assert answer(options) == answer(digests) == (pipe.NOT_IMAGE,)
    walked.rmdir()
    gone = answer(options)
    assert gone == answer(digests) == (pipe.ERROR, {
        "type": "OSError", "structure": "file", "offset": None,
        "message": f"{walked}: No such file or directory"})


def test_report_lines_kept_until_flushed() -> None:
    """Without the progress bar the lines are written together, at :meth:`flush` (the
    scan waiting for results) or :meth:`finish`, in the order they came."""
    results = [ScanResult(f"{i}.qcow2", "error", None, error={
        "type": "CorruptImage", "structure": "header", "offset": 0,
        "message": f"{i}.qcow2: bad"}) for i in range(3)]
    out = io.StringIO()
    report = ScanReport(out, io.StringIO(), as_json=False)
    report.add(results[0])
    report.add(results[1])
    assert out.getvalue() == ""
    report.flush()
    assert out.getvalue().splitlines() == [scan_line(r) for r in results[:2]]
    report.add(results[2])
    report.finish(skipped=0, interrupted=False)
    assert out.getvalue().splitlines()[:3] == [scan_line(r) for r in results]


@needs_sqlite3
def test_several_profiles_as_check_gives_them(small_library: Path, tmp_path: Path) -> None:
    """``scan --profile A,B``: each image's JSON line is what ``check --json --profile
    A,B`` prints for it (plus ``scan``); the catalog records the profiles, the worst
    verdict and each rule's worst status, and the HTML report has a row per profile."""
    from imgscan.bulk.catalog import Catalog

    profiles = "aws-vmimport,azure"
    db = tmp_path / "c.db"
    proc = cli("scan", "--json", "--jobs", "2", "--profile", profiles, str(small_library),
               "--catalog", str(db))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 1), err
    scanned = {o["path"]: o for o in map(json.loads, out.splitlines())}
    assert scanned and all(o.pop("scan")["status"] == "scanned" for o in scanned.values())
    proc = cli("check", "--json", "--profile", profiles, *sorted(scanned))
    out, err = proc.communicate(timeout=120)
    checked = {o["path"]: o for o in map(json.loads, out.splitlines())}
    assert scanned == checked
    some = next(iter(checked.values()))
    assert some["profiles"] == profiles.split(",") and len(some["checks"]) == 2

    rows = sqlite(db, "SELECT path, profile, verdict FROM images ORDER BY path")
    assert rows.splitlines() == [f"{p}|{profiles}|{checked[p]['verdict']}"
                                 for p in sorted(checked)]
    for path, obj in checked.items():
        statuses: dict[str, list[str]] = {}
        for one in obj["checks"]:
            for rule in one["rules"]:
                statuses.setdefault(rule["id"], []).append(rule["status"])
        failed = sorted(r for r, s in statuses.items() if "fail" in s)
        assert sqlite(db, "SELECT group_concat(rule_id, ' ') FROM (SELECT rule_id FROM rules "
                      "JOIN images ON images.id = image_id WHERE path = '" + path +
                      "' AND rules.status = 'fail' ORDER BY rule_id)") == " ".join(failed)
    with Catalog(str(db)) as catalog:
        report = [(r["path"], r["verdict"]) for r in catalog.report_rows()]
    assert sorted(report) == sorted((p, c["verdict"]) for p, o in checked.items()
                                    for c in o["checks"])
    stats = cli("catalog", "stats", "--json", "--catalog", str(db))
    out, err = stats.communicate(timeout=60)
    assert stats.returncode == 0, err
    verdicts = {o["verdict"] for o in checked.values()}
    assert set(json.loads(out)["by_verdict"]) == verdicts
    html = cli("report", "--catalog", str(db), "-o", str(tmp_path / "r.html"))
    assert html.communicate(timeout=60)[0] is not None and html.returncode == 0
    page = (tmp_path / "r.html").read_text()
    assert "aws-vmimport" in page and "azure" in page
    # A rescan by the same profiles reads nothing again; by others, everything.
    again = cli("scan", "--json", "--profile", profiles, str(small_library), "--catalog",
                str(db))
    lines = [json.loads(line) for line in again.communicate(timeout=120)[0].splitlines()]
    assert {o.pop("scan")["status"] for o in lines} == {"unchanged"}
    assert {o["path"]: o for o in lines} == checked


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_verify_manifest_reaches_every_package_and_the_catalog(tmp_path: Path) -> None:
    """``scan --verify-manifest``: each OVA's manifest and signature are verified in its
    worker, as ``info --verify-manifest`` does; a catalog row read without verifying is
    read again by a scan that verifies, then reused."""
    from helpers import sparse_file
    from helpers.ova_packages import build_ova, signer

    lib = tmp_path / "lib"
    lib.mkdir()
    disk = sparse_file(tmp_path / "disk.img", 4 * MiB)
    key = signer(tmp_path / "key")
    good = build_ova(tmp_path / "good", "good", [("good.vmdk", disk)], signed_by=key)
    sparse_copy(good, lib / "good.ova")
    pkg = tmp_path / "bad"
    build_ova(pkg, "bad", [("bad.vmdk", disk)], signed_by=key)
    mf = pkg / "bad.mf"
    mf.write_text("".join(reversed(mf.read_text().splitlines(keepends=True))))
    run("tar", "--format=ustar", "-cf", lib / "bad.ova", "bad.ovf", "bad.mf", "bad.cert",
        "bad.vmdk", cwd=pkg)
    db = str(tmp_path / "c.db")

    def scanned(*args: str) -> dict[str, dict[str, Any]]:
        proc = cli("scan", "--json", "--info-only", *args, str(lib), "--catalog", db)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        return {Path(o["path"]).name: o for o in map(json.loads, out.splitlines())}

    plain = scanned()
    assert {n: o["ova"]["signature"]["verified"] for n, o in plain.items()} == \
        {"good.ova": None, "bad.ova": None}
    verified = scanned("--verify-manifest")
    assert {n: o["scan"]["status"] for n, o in verified.items()} == \
        {"good.ova": "scanned", "bad.ova": "scanned"}
    for name, expected in (("good.ova", True), ("bad.ova", False)):
        with imgscan.open(lib / name, verify_manifest=True) as img:
            alone = img.info()
        assert verified[name]["ova"] == alone["ova"]
        assert alone["ova"]["signature"]["verified"] is expected
    assert [f["id"] for f in verified["bad.ova"]["findings"]] == ["signature-invalid"]
    again = scanned("--verify-manifest")
    assert {n: o["scan"]["status"] for n, o in again.items()} == \
        {"good.ova": "unchanged", "bad.ova": "unchanged"}
    assert again["good.ova"]["ova"]["signature"]["verified"] is True


def test_the_pool_starts_without_enums_or_threads() -> None:
    """Starting the pool imports neither the signal module's Python half (its enums of
    every signal), nor enum, contextlib or threading: about 20 M instructions, more than
    the rest of the pool's start (issue 18). A child ``python -S``, so that no site hook
    of this environment imports them first."""
    import site
    sample = str(Path(imgscan.__file__).resolve().parent / "samples" / "demo.qcow2")
    code = ("import sys, imgscan\n"
            f"with imgscan.scan([{sample!r}], jobs=2, info_only=True) as run:\n"
            "    assert [r.status for r in run] == ['scanned']\n"
            "print(sorted(sys.modules))\n")
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True,
                          text=True, check=True, cwd=CHILD_CWD, env={
                              "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": ":".join([IMGSCAN_ROOT, *site.getsitepackages()])})
    loaded = set(proc.stdout.strip().strip("[]").replace("'", "").split(", "))
    assert "imgscan.bulk.runner" in loaded
    assert not loaded & {"signal", "enum", "contextlib", "threading"}


@pytest.mark.parametrize("args", [("--info-only",), ("--json", "--info-only", "--jobs", "2")])
def test_a_plain_scan_starts_without_argparse(args: tuple[str, ...]) -> None:
    """``imgscan scan [--info-only] [--json] [--jobs N] PATH...`` is read without
    argparse, and so without re, enum, gettext and locale (a third of a small scan's
    start-up, issue 18); the report is the same (the CLI tests)."""
    import site
    sample = str(Path(imgscan.__file__).resolve().parent / "samples" / "demo.qcow2")
    code = ("import sys\nfrom imgscan.cli import main\n"
            f"assert main(['scan', *{args!r}, {sample!r}]) == 0\n"
            "print(sorted(sys.modules), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True,
                          text=True, check=True, cwd=CHILD_CWD, env={
                              "PATH": "/usr/bin:/bin",
                              "PYTHONPATH": ":".join([IMGSCAN_ROOT, *site.getsitepackages()])})
    loaded = set(proc.stderr.strip().splitlines()[-1].strip("[]").replace("'", "").split(", "))
    assert "imgscan.bulk.runner" in loaded
    assert not loaded & {"argparse", "imgscan.arguments", "re", "enum", "gettext", "locale"}

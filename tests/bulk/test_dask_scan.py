"""The scan on a Dask cluster (issue 17): a real ``distributed.LocalCluster`` of two
worker processes on 127.0.0.1 (tests/bulk/conftest.py), and ``dask scheduler`` /
``dask worker`` processes.

The oracle of a distributed scan is the local scan of the same library (itself
checked against qemu-img in test_scan.py): the same results per image and the same
catalog rows. Workers are made to misbehave by the hooks the local-pool tests use
(tests/helpers/scan_library.py), installed in the Dask workers by a plugin (which a
worker restarted after a death gets again).
"""

from __future__ import annotations

import logging
import marshal
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from distributed import Client, LocalCluster
from helpers import MiB, sparse_copy
from helpers.dask_plugins import Environ, Hook, idle_readers, periodic_callbacks, set_reader_idle
from helpers.scan_library import Library, troublemakers
from helpers.scans import batch_sizes
from helpers.stores import free_port
from oracles import needs_qemu

import imgscan
from imgscan.bulk.result import ScanResult
from imgscan.bulk.runner import ClusterError

pytestmark = needs_qemu

#: The imgscan the tests import, for the subprocesses too (a checkout or an install).
IMGSCAN_ROOT = str(Path(imgscan.__file__).resolve().parent.parent)
#: A working directory without an ``imgscan`` folder, so that a child started with ``-c`` or
#: ``-m`` (which put its working directory first on sys.path) imports the installed
#: package, not a checkout's sources without their extensions.
NEUTRAL_CWD = Path(__file__).resolve().parent
#: Catalog columns that say when or in which scan, not what: left out of comparisons.
WHEN = ("id", "scanned_at", "elapsed", "first_seen_scan", "last_seen_scan",
        "scanned_in_scan")


@contextmanager
def hooked(client: Client, name: str) -> Iterator[None]:
    client.register_plugin(Hook(name))
    try:
        yield
    finally:
        client.unregister_worker_plugin(f"imgscan-hook-{name}")


def scan_list(paths: list[str], **kwargs: Any) -> tuple[list[ScanResult], int]:
    with imgscan.scan(paths, **kwargs) as run:
        results = list(run)
        assert not run.interrupted
        return results, run.skipped


def by_path(results: list[ScanResult]) -> dict[str, ScanResult]:
    paths = [r.path for r in results]
    assert len(paths) == len(set(paths)), "an image reported twice"
    return {r.path: r for r in results}


def rows(db: Path) -> dict[str, Any]:
    """Every catalog row (images with their rules, chunk counts) less when it was written."""
    with sqlite3.connect(db) as con:
        cur = con.execute("SELECT * FROM images")
        columns = [d[0] for d in cur.description]
        images = {row[columns.index("path")]: {k: v for k, v in zip(columns, row, strict=True)
                                                if k not in WHEN} for row in cur}
        for path, rule_id, status, message in con.execute(
                "SELECT path, rule_id, rules.status, message FROM rules "
                "JOIN images ON images.id = image_id"):
            images[path].setdefault("rules", {})[rule_id] = (status, message)
        for path, count in con.execute("SELECT path, count(*) FROM chunks "
                                       "JOIN images ON images.id = image_id GROUP BY path"):
            images[path]["chunks"] = count
        scans = [tuple(r) for r in con.execute(
            "SELECT interrupted, scanned, unchanged, errors, missing FROM scans ORDER BY id")]
    return {"images": images, "scans": scans}


def same(r: ScanResult) -> tuple[Any, ...]:
    return r.status, r.identity, r.info, r.check, r.error, r.fingerprint


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the batches the client submits during the test, in order."""
    from imgscan.bulk import dask_pool
    sizes: list[int] = []
    submit = dask_pool.DaskScanRun._submit

    def counted(run: dask_pool.DaskScanRun, *batches: list[Any]) -> Any:
        sizes.extend(len(batch) for batch in batches)
        return submit(run, *batches)

    monkeypatch.setattr(dask_pool.DaskScanRun, "_submit", counted)
    return sizes


def assert_dask_scan_is_local(library: Library, dask_client: Client) -> None:
    """The library's info-only scan on the cluster answers each file as the local one."""
    local = by_path(scan_list([str(library.root)], jobs=2, info_only=True)[0])
    dask = by_path(scan_list([str(library.root)], cluster=dask_client, info_only=True)[0])
    assert {p: same(r) for p, r in dask.items()} == {p: same(r) for p, r in local.items()}


def test_results_and_catalog_equal_the_local_scan(library: Library, dask_client: Client,
                                                  tmp_path: Path) -> None:
    """Every format, damaged files, non-images, unreadable entries and links: per image
    the same format, sizes, verdict, rule results, errors and fingerprint as a local
    scan, the same skipped count, the same catalog rows; a rescan on the cluster finds
    every image unchanged and reports what the catalog recorded, as a local one."""
    local_db, dask_db = tmp_path / "local.db", tmp_path / "dask.db"
    options: dict[str, Any] = {"fingerprint": True, "profile": "all"}
    local, local_skipped = scan_list([str(library.root)], jobs=2, catalog=str(local_db),
                                     **options)
    dask, dask_skipped = scan_list([str(library.root)], cluster=dask_client,
                                   catalog=str(dask_db), **options)
    assert dask_skipped == local_skipped
    local_by, dask_by = by_path(local), by_path(dask)
    assert dask_by.keys() == local_by.keys()
    assert {p: same(r) for p, r in dask_by.items()} == {p: same(r) for p, r in local_by.items()}
    assert {r.error["type"] for r in dask if r.error} >= set(library.damaged.values())
    assert rows(dask_db) == rows(local_db)

    again, _ = scan_list([str(library.root)], cluster=dask_client, catalog=str(dask_db),
                         **options)
    local_again, _ = scan_list([str(library.root)], jobs=2, catalog=str(local_db), **options)
    assert {r.status for r in again} == {"unchanged", "error"}     # error: unreadable entries
    assert ({p: same(r) for p, r in by_path(again).items()}
            == {p: same(r) for p, r in by_path(local_again).items()})
    assert rows(dask_db) == rows(local_db)


def test_a_library_listed_whole_is_shared_out_at_once(
        library: Library, dask_client: Client, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, submitted: list[int]) -> None:
    """A library the listing gives whole before any batch has ended goes in one task per
    place of the window (WINDOW per worker thread), not in BATCH-sized ones: each
    thread's first batch holds BATCH images (results come as soon as before), the rest
    is shared evenly between the other places (a task costs about 7 ms of CPU, which
    a small cluster's readers share). BATCH is made a quarter of the library's images,
    so the library is more than the first batches and fits the scan's queue. With a
    catalog, so that the client sends every batch (no first batches from the listing)."""
    from imgscan.bulk import dask_pool
    files = len(library.images) + len(library.damaged) + len(library.not_images)
    monkeypatch.setattr(dask_pool, "BATCH", files // 4)
    sizes = submitted
    claim = dask_pool.DaskScanRun._claim

    def claimed(run: dask_pool.DaskScanRun, queue: Any) -> None:
        before = set(run._inflight)
        claim(run, queue)
        sizes.extend(len(batch) for f, batch in run._inflight.items() if f not in before)

    monkeypatch.setattr(dask_pool.DaskScanRun, "_claim", claimed)
    results, _ = scan_list([str(library.root)], cluster=dask_client, info_only=True,
                           catalog=str(tmp_path / "c.db"))
    assert by_path(results).keys() >= library.images.keys()
    threads = 2
    assert len(sizes) == dask_pool.WINDOW * threads, sizes
    assert sizes[:threads] == [files // 4] * threads
    assert max(sizes[threads:]) - min(sizes[threads:]) <= 1


def test_a_first_batch_the_client_does_not_expect_is_sent_again(
        library: Library, dask_client: Client, monkeypatch: pytest.MonkeyPatch,
        submitted: list[int]) -> None:
    """The first batch taken from the listing on a worker (``scan_listed``) that answers
    other images than the client took off its queue for it (the listing was made
    again after its worker died, and the root had changed) is sent again as a batch:
    each image is still answered once, as the local scan answers it. The client's
    first claim is made one image shorter than the worker's share here, so the second
    worker thread's share begins one image later on the worker than on the client;
    each first batch reads its head of BATCH images only (FIRST_WORK 0), so the first
    one's head is what the client expects (the rest of its share is put back)."""
    from imgscan.bulk import dask_pool
    monkeypatch.setattr(dask_pool, "FIRST_WORK", 0.0)
    size = dask_pool._first_size

    def shorter(queued: int, threads: int, sent: int, most: int) -> int:
        return size(queued, threads, sent, most) - (sent == 0)

    monkeypatch.setattr(dask_pool, "_first_size", shorter)
    assert_dask_scan_is_local(library, dask_client)
    files = len(library.images) + len(library.damaged) + len(library.not_images)
    second = files - shorter(files, 2, 0, dask_pool.MAX_BATCH)
    assert second in submitted, submitted     # sent again


@pytest.mark.parametrize("work", [1000.0, 0.0], ids=["grown", "head-only"])
def test_first_batches_from_the_listing_grow_on_fast_images(
        library: Library, dask_client: Client, monkeypatch: pytest.MonkeyPatch,
        work: float, submitted: list[int]) -> None:
    """Each worker thread's first batch, taken from the listing on the cluster
    (``scan_listed``), reads BATCH images of its share, then the rest of it when those
    took less than FIRST_WORK: the whole share when the images are read fast enough
    (FIRST_WORK made huge here: nothing is left for the client to send), the head
    alone otherwise (FIRST_WORK 0: the rest of both shares is put back and sent by the
    client). Either way each image is answered once, as the local scan answers it.
    BATCH is made an eighth of the library's images, so each share is more than it."""
    from imgscan.bulk import dask_pool
    files = len(library.images) + len(library.damaged) + len(library.not_images)
    monkeypatch.setattr(dask_pool, "BATCH", files // 8)
    monkeypatch.setattr(dask_pool, "FIRST_WORK", work)
    assert_dask_scan_is_local(library, dask_client)
    assert sum(submitted) == (0 if work else files - 2 * (files // 8)), submitted


def test_a_batch_task_s_reader_gets_batches_that_grow_on_fast_images(
        library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch task's reader (:func:`scan_batch`, run here without a cluster) is sent
    batches that grow past BATCH on fast images, as the local pool's are: at BATCH it
    answered within its parent's nap and idled, half of a small library's scan."""
    from imgscan.bulk import dask_pool, runner
    from imgscan.bulk.worker import Options

    sizes = batch_sizes(monkeypatch)
    counted: list[float] = []
    count_answer = runner.ScanRun._count_answer

    def spied(run: runner.ScanRun, seconds: float) -> None:
        counted.append(seconds)
        count_answer(run, seconds)

    monkeypatch.setattr(runner.ScanRun, "_count_answer", spied)
    # every image fast enough to grow on, however loaded the machine (no timed test)
    monkeypatch.setattr(runner, "BATCH_WORK", 1.0)
    files = sorted(p for p in library.images if os.path.isfile(p) and not os.path.islink(p))
    items = [(p, dask_pool._compact(os.stat(p)), None) for p in files] * 4
    try:
        answers = marshal.loads(dask_pool.scan_batch(
            marshal.dumps(items), pickle.dumps(Options([], False, 1, None, None)), 60.0))
    finally:
        dask_pool.release_readers()
    assert len(answers[1]) == len(items)
    assert sizes[0] == runner.BATCH
    assert runner.BATCH < max(sizes) <= runner.MAX_BATCH
    # each answer counted by the reader's own time for it, as the answer holds it (not
    # the time between answers, which holds the reader's idle time)
    assert counted == [marshal.loads(body)[0] for _, _, body in answers[1]]


@pytest.mark.parametrize(("images", "threads"), [(1000, 2), (5, 3), (0, 4), (10**7, 10**5)])
def test_first_sizes_share_out_the_listing_in_one_pass(images: int, threads: int) -> None:
    """Each worker thread's first batch (``scan_listed`` on the workers, ``_claim`` on
    the client): BATCH images at most, no thread without any while another has more
    than one; computed with a running count, so a cluster of 100,000 threads costs
    100,000 steps (the list was summed again for each thread: 5e9 additions)."""
    from imgscan.bulk import dask_pool
    sizes = dask_pool.first_sizes(images, threads, dask_pool.BATCH)
    assert len(sizes) == threads and sum(sizes) == min(images, threads * dask_pool.BATCH)
    assert max(sizes) <= dask_pool.BATCH and max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize(("paths", "count", "runs"), [
    (["a", "b", "c", "d"], 1, [["a", "b", "c", "d"]]),
    (["a", "b", "c", "d", "e"], 2, [["a", "b", "c"], ["d", "e"]]),
    (["a", "b"], 8, [["a"], ["b"]]),
    ([], 3, []),
    # ROOTS_PER_LISTING (4) in the first run at most: the first batch waits for it;
    # then runs twice as long each, up to an even share of the rest over the other
    # threads: listings that arrive one after the other, in few tasks (1,000 roots in
    # runs of 4 were 250 tasks; in two runs, the scan waited for a 996-root listing)
    (list("abcdefghi"), 1, [["a", "b", "c", "d"], ["e", "f", "g", "h", "i"]]),
    (list("abcdefghi"), 3, [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"]]),
    ([str(i) for i in range(100)], 2, [[str(i) for i in range(j, k)] for j, k in
                                       ((0, 4), (4, 12), (12, 28), (28, 60), (60, 100))]),
    ([str(i) for i in range(1000)], 4, [[str(i) for i in range(j, k)] for j, k in
                                        ((0, 4), (4, 12), (12, 28), (28, 60), (60, 124),
                                         (124, 252), (252, 508), (508, 840), (840, 1000))]),
])
def test_groups_of_roots(paths: list[str], count: int, runs: list[list[str]]) -> None:
    from imgscan.bulk import dask_pool
    assert dask_pool.groups(paths, count) == runs


def test_a_scan_of_no_paths_yields_nothing(dask_client: Client) -> None:
    """The library's ``imgscan.scan([])`` (the CLI needs a path, the library does not):
    no listing task, no result, nothing skipped, as the local scan of no paths."""
    assert scan_list([], cluster=dask_client, info_only=True) \
        == scan_list([], jobs=1, info_only=True) == ([], 0)


@pytest.mark.parametrize(("threads", "per_listing", "listings"),
                         [(2, 4, 2), (1, 7, 1), (1, 4, 2)])
def test_several_roots_are_listed_by_a_task_per_worker_thread(
        library: Library, dask_client: Client, monkeypatch: pytest.MonkeyPatch,
        threads: int, per_listing: int, listings: int) -> None:
    """Several roots (directories, a file, links to a file listed already, a missing
    path, a root named twice) are listed in as many tasks as the cluster has worker
    threads, each of consecutive roots: 2 here; or in one when the threads are
    counted 1 and a task may list the 7 roots, and then the first batches take their
    images from that listing as for one root; or in 2 on 1 thread, ROOTS_PER_LISTING
    (4) roots in the first task at most. Either way the results and the skipped count are the
    local scan's, each image once."""
    from imgscan.bulk import dask_pool
    root = library.root
    roots = [str(root / "d0"), str(root / "d1" / "e0"), next(iter(library.images)),
             str(root / "zlinks"), str(root / "missing"), str(root / "d0"), str(root / "bad")]
    monkeypatch.setattr(dask_pool, "_threads_of", lambda info: threads)
    monkeypatch.setattr(dask_pool, "ROOTS_PER_LISTING", per_listing)
    tasks: list[int] = []
    walk = dask_pool.ClusterWalk.__init__

    def counted(self: dask_pool.ClusterWalk, *args: Any) -> None:
        walk(self, *args)
        tasks.append(len(self.pending))

    monkeypatch.setattr(dask_pool.ClusterWalk, "__init__", counted)
    local, local_skipped = scan_list(roots, jobs=2, info_only=True)
    with imgscan.scan(roots, cluster=dask_client, info_only=True) as run:
        first = len(run._first)     # type: ignore[attr-defined]
        dask = list(run)
        dask_skipped = run.skipped
    assert tasks == [listings]
    assert first == (2 if listings == 1 else 0)
    assert dask_skipped == local_skipped
    assert ({p: same(r) for p, r in by_path(dask).items()}
            == {p: same(r) for p, r in by_path(local).items()})


def test_a_directory_listed_by_two_tasks_reports_its_bad_entries_once(
        library: Library, dask_client: Client, tmp_path: Path) -> None:
    """Roots ``X/sub`` and ``X``, listed by two tasks (2 worker threads): both list
    ``X/sub``, whose dangling link is reported once and whose FIFO is counted skipped
    once, as the local walk (which lists a directory once) does, and its image is
    scanned once."""
    sub = tmp_path / "X" / "sub"
    sub.mkdir(parents=True)
    sparse_copy(Path(next(iter(library.images))), sub / "disk.qcow2")
    os.symlink("nowhere", sub / "dangling.qcow2")
    os.mkfifo(sub / "pipe.qcow2")
    roots = [str(sub), str(tmp_path / "X")]
    local, local_skipped = scan_list(roots, jobs=2, info_only=True)
    dask, dask_skipped = scan_list(roots, cluster=dask_client, info_only=True)
    assert {p: same(r) for p, r in by_path(dask).items()} == {
        p: same(r) for p, r in by_path(local).items()}
    assert by_path(local)[str(sub / "dangling.qcow2")].error is not None
    assert dask_skipped == local_skipped == 1


def test_a_local_scan_never_imports_dask(library: Library) -> None:
    code = ("import sys, imgscan\n"
            f"with imgscan.scan([{str(library.root)!r}], jobs=1, info_only=True) as run:\n"
            "    list(run)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed', 'imgscan.bulk.dask_pool')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=NEUTRAL_CWD,
                          env={**os.environ, "PYTHONPATH": IMGSCAN_ROOT})
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("catalog", [True, False], ids=["catalog", "first-batches"])
def test_each_failure_costs_one_image(library: Library, dask_client: Client,
                                      tmp_path: Path, catalog: bool) -> None:
    """An image that kills its Dask worker every time is WorkerCrashed once its batch
    is split down to it, and the rest of its batch is scanned; one that hangs is a
    Timeout; the local pool's isolation on the worker does the rest. Each image is
    reported once and recorded once. Without a catalog the first batch is the task
    that takes the listing (``scan_listed``)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    troublemakers(library, lib, names=("killer", "hang", "exit", "segv", "hog", "bug"),
                  fine=10)
    db = tmp_path / "c.db"
    with hooked(dask_client, "misbehave"):
        results, _ = scan_list([str(lib)], cluster=dask_client, info_only=True,
                               catalog=str(db) if catalog else None, time_limit=1.5,
                               memory_limit=256 * MiB)
    found = {os.path.basename(p): r for p, r in by_path(results).items()}
    assert len(found) == 16
    errors = {n: r.error["type"] for n, r in found.items() if r.error}
    assert errors == {"killer.raw": "WorkerCrashed", "hang.raw": "Timeout",
                      "exit.raw": "WorkerCrashed", "segv.raw": "WorkerCrashed",
                      "hog.raw": "MemoryLimit", "bug.raw": "ValueError"}
    assert "Dask worker" in found["killer.raw"].error["message"]      # type: ignore[index]
    assert all(r.status == "scanned" for n, r in found.items() if n.startswith("ok"))
    if not catalog:
        return
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*), count(DISTINCT path) FROM images").fetchone() \
            == (16, 16)
        assert con.execute("SELECT interrupted, scanned, errors FROM scans").fetchone() \
            == (0, 10, 6)


@pytest.mark.parametrize("catalog", [True, False], ids=["catalog", "first-batches"])
def test_a_worker_killed_mid_scan_loses_nothing(library: Library, dask_client: Client,
                                                tmp_path: Path, catalog: bool) -> None:
    """SIGKILL to a Dask worker in the middle of a scan: the scheduler and the split
    retries answer every image exactly once, as the local scan does (without a
    catalog, the first batch taking the listing included)."""
    db = tmp_path / "c.db"
    local = by_path(scan_list([str(library.root)], jobs=2, info_only=True)[0])
    # both workers up: one the test before killed may still be restarting
    dask_client.wait_for_workers(2, timeout=60)
    pids = list(dask_client.run(os.getpid).values())
    seen = []
    with hooked(dask_client, "slowly"), imgscan.scan(
            [str(library.root)], cluster=dask_client, info_only=True,
            catalog=str(db) if catalog else None) as run:
        for result in run:
            seen.append(result)
            if len(seen) == 40:
                os.kill(pids[0], signal.SIGKILL)
        assert not run.interrupted
    dask = by_path(seen)
    assert {p: same(r) for p, r in dask.items()} == {p: same(r) for p, r in local.items()}
    if not catalog:
        return
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM images").fetchone() == (len(local),)


def test_a_killed_worker_in_the_gather_of_finished_batches_is_retried(
        library: Library, dask_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """The results of the batches a wait finds finished are gathered together, and one
    task's KilledWorker fails that gather (a worker died holding a finished result and
    the task run again killed its worker too): the results are then fetched one by
    one (a batch failing so is retried as a lost one) and the scan ends with the
    local scan's results, not a ClusterError. The gather's failure is made here (the
    first gather of batches raises KilledWorker, as Dask's gather raises it, and the
    fetches one by one find every result): a worker killed between a batch's end and
    the client's fetch is a race a test cannot time."""
    from distributed.scheduler import KilledWorker

    from imgscan.bulk import dask_pool
    gathered = dask_pool._gathered
    failed: list[int] = []

    def failing(futures: list[Any], client: Client) -> list[Any]:
        if not failed and any(str(f.key).startswith("scan_batch") for f in futures):
            failed.append(len(futures))
            gone = SimpleNamespace(address="tcp://127.0.0.1:1")
            raise KilledWorker(futures[0].key, gone, 0)     # type: ignore[arg-type]
        return gathered(futures, client)

    monkeypatch.setattr(dask_pool, "_gathered", failing)
    assert_dask_scan_is_local(library, dask_client)
    assert failed


def test_leaving_early_cancels_and_closes_the_scan(library: Library, dask_client: Client,
                                                   tmp_path: Path) -> None:
    """As Ctrl-C does: the futures in flight are cancelled, the catalog's scan is closed
    as interrupted with what was recorded."""
    db = tmp_path / "c.db"
    with hooked(dask_client, "slowly"), imgscan.scan(
            [str(library.root)], cluster=dask_client, info_only=True,
            catalog=str(db)) as run:
        got = [next(run) for _ in range(10)]
    assert run.interrupted and len(got) == 10
    deadline = time.monotonic() + 10    # the scheduler hears of the cancel asynchronously
    while any(dask_client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(dask_client.processing().values())
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT interrupted FROM scans").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] >= 10


def test_a_scan_closed_before_it_is_iterated_cancels_its_tasks(
        library: Library, dask_client: Client) -> None:
    """A scan made and closed without asking for a result (its generator never
    started) cancels the first batches it sent with the listing when it was made,
    rather than leaving them to run on the cluster for nobody while the scan object
    is kept; nothing is left on the workers."""
    with hooked(dask_client, "slowly"):
        run = imgscan.scan([str(library.root)], cluster=dask_client, info_only=True)
        first = list(run._first)     # type: ignore[attr-defined]
        assert first, "a scan of one root without a catalog sends its first batches"
        run.close()
        deadline = time.monotonic() + 10    # the scheduler hears of it asynchronously
        while (any(dask_client.processing().values()) or not all(f.done() for f in first)
               ) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [f.status for f in first] == ["cancelled"] * len(first)
        assert not any(dask_client.processing().values())


def kept_readers(client: Client) -> list[int]:
    """The pids of the readers the Dask workers keep idle between batches."""
    client.wait_for_workers(2, timeout=60)     # see test_a_worker_killed_mid_scan_loses_nothing
    return [pid for found in client.run(idle_readers).values() for pid in found]


def test_readers_are_kept_and_one_dead_while_idle_costs_nothing(
        library: Library, dask_client: Client) -> None:
    """A Dask worker keeps its batch reader between scans with the same options; a kept
    reader killed while idle is dropped, not blamed: the next scan is the local one's."""
    local = by_path(scan_list([str(library.root)], jobs=2, info_only=True)[0])
    scan_list([str(library.root)], cluster=dask_client, info_only=True)
    kept = kept_readers(dask_client)
    assert kept
    scan_list([str(library.root)], cluster=dask_client, info_only=True)
    assert set(kept_readers(dask_client)) & set(kept)       # used again, not forked anew
    for pid in kept_readers(dask_client):
        os.kill(pid, signal.SIGKILL)
    dask = by_path(scan_list([str(library.root)], cluster=dask_client, info_only=True)[0])
    assert {p: same(r) for p, r in dask.items()} == {p: same(r) for p, r in local.items()}
    assert not set(kept_readers(dask_client)) & set(kept)


def exists(pid: int) -> bool:
    """Whether process ``pid`` exists (running, or exited and not reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_idle_readers_are_stopped(library: Library, dask_client: Client) -> None:
    """A reader kept idle for READER_IDLE is stopped (the process gone, reaped), and the
    next scan forks another and equals the local scan."""
    scan_list([str(library.root)], cluster=dask_client, info_only=True)
    kept = kept_readers(dask_client)
    assert kept
    before = next(iter(dask_client.run(set_reader_idle, 0.5).values()))
    try:
        deadline = time.monotonic() + 30
        while ((kept_readers(dask_client) or any(map(exists, kept)))
               and time.monotonic() < deadline):
            time.sleep(0.2)
        assert not kept_readers(dask_client)
        assert not any(map(exists, kept))       # exited and reaped by their worker
        local = by_path(scan_list([str(library.root)], jobs=2, info_only=True)[0])
        dask = by_path(scan_list([str(library.root)], cluster=dask_client,
                                 info_only=True)[0])
        assert {p: same(r) for p, r in dask.items()} == {p: same(r) for p, r in local.items()}
    finally:
        dask_client.run(set_reader_idle, before)


def test_a_worker_of_two_threads(library: Library, tmp_path: Path) -> None:
    """A Dask worker with two threads runs two batches at once, each with a reader of
    its own (forked, kept and given back under the pool's locks): the scan equals the
    local one, catalog included, and the worker keeps the two readers."""
    local_db, dask_db = tmp_path / "local.db", tmp_path / "dask.db"
    local, _ = scan_list([str(library.root)], jobs=2, catalog=str(local_db), info_only=True)
    with (LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                       dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster,
          Client(cluster) as client):
        dask, _ = scan_list([str(library.root)], cluster=client, catalog=str(dask_db),
                            info_only=True)
        assert ({p: same(r) for p, r in by_path(dask).items()}
                == {p: same(r) for p, r in by_path(local).items()})
        assert rows(dask_db) == rows(local_db)
        assert [len(pids) for pids in client.run(idle_readers).values()] == [2]


#: ``imgscan`` with every image of a ``--dask`` scan's workers made slow (the tests'
#: hook, registered on the cluster the scan connects to): a scan long enough to interrupt.
SLOW_DASK_CLI = """
import sys
from helpers.dask_plugins import Hook
from imgscan.bulk import dask_pool
from imgscan.cli import main
connect = dask_pool.connect
def slow(cluster):
    client, owned = connect(cluster)
    client.register_plugin(Hook("slowly"))
    return client, owned
dask_pool.connect = slow
sys.exit(main(sys.argv[1:]))
"""


def catalog_rows(db: Path) -> int:
    """Rows in the catalog's images table; 0 while it is not created yet or locked."""
    try:
        with sqlite3.connect(db, timeout=0.1) as con:
            return int(con.execute("SELECT count(*) FROM images").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_ctrl_c_on_the_cli_stops_cleanly(library: Library, tmp_path: Path) -> None:
    """A real SIGINT to ``imgscan scan --dask local:1 ... --catalog`` mid-scan (to its
    process group, as a terminal's Ctrl-C: the cluster's processes get it too) ends it as
    the local scan's Ctrl-C does (test_scan.py's test_ctrl_c_stops_cleanly): exit status
    130, no traceback, the summary says interrupted after the images printed, and the
    catalog holds those images with its scan closed as interrupted."""
    db = tmp_path / "interrupted.db"
    root = str(library.root)
    tests = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_DASK_CLI, "scan", "--dask", "local:1", "--info-only",
         "--catalog", str(db), root],
        env={**os.environ, "PYTHONPATH": os.pathsep.join((IMGSCAN_ROOT, tests))}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        cwd=NEUTRAL_CWD)
    deadline = time.monotonic() + 60
    while catalog_rows(db) < 8:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = out.splitlines()
    printed = [line for line in lines if line.startswith(root)]
    assert len(printed) < len(library.images)
    assert f"interrupted after {len(printed)} images" in lines[len(printed)]
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT interrupted FROM scans").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM images").fetchone() == (len(printed),)


def test_bad_addresses_are_errors(tmp_path: Path) -> None:
    for address, says in (("local:x", "local:N needs a number of workers"),
                          ("tcp://127.0.0.1:1", "cannot reach the Dask scheduler")):
        done = cli("scan", "--dask", address, str(tmp_path))
        assert done.returncode == 2 and says in done.stderr and not done.stdout
        assert "Traceback" not in done.stderr


def test_a_local_cluster_runs_no_profiler(dask_client: Client) -> None:
    """``--dask local``'s workers run without Dask's statistical profiler, whose samples
    cost the worker's CPU, and watch their event loops and sample the system less
    often (dask_pool.LOCAL_CONFIG); a cluster started with Dask's defaults (the tests'
    own) runs the profiler and watches every 20 ms."""
    from imgscan.bulk import dask_pool
    defaults = dask_client.run(periodic_callbacks).values()
    assert all("profile" in c and c["tick"] == 20 for c in defaults)
    client, owned = dask_pool.connect("local:1")
    try:
        callbacks = client.run(periodic_callbacks).values()
        assert callbacks and all("heartbeat" in c and "profile" not in c for c in callbacks)
        assert all(c["tick"] == 1000 and c["monitor"] == 5000 for c in callbacks)
    finally:
        for started in owned:
            started.close()


# -- dask scheduler / dask worker processes -------------------------------------------
@contextmanager
def dask_processes(tmp_path: Path, worker_cwd: Path) -> Iterator[tuple[str, Any]]:
    """``dask scheduler`` and one ``dask worker`` (started in ``worker_cwd``)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # the worker imports the hooks' plugin from here, and tests/helpers
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((IMGSCAN_ROOT, str(here),
                                                        str(here.parent)))}
    log = open(tmp_path / "dask.log", "wb")  # noqa: SIM115 (open while they run)
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--dashboard-address", ":0"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=NEUTRAL_CWD,
        start_new_session=True)
    dask_worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
         "--host", "127.0.0.1", "--no-dashboard"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=worker_cwd,
        start_new_session=True)
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
            yield address, scheduler
    finally:
        for proc in (dask_worker, scheduler):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imgscan", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd or NEUTRAL_CWD,
                          env={**os.environ, "PYTHONPATH": IMGSCAN_ROOT})


def output(stdout: str, root: str) -> tuple[list[str], list[str]]:
    """A scan's image lines, sorted, and its summary less the time it took."""
    lines = stdout.splitlines()
    return (sorted(line for line in lines if line.startswith(root)),
            [re.sub(r"in \S+ s \(\d+ images/s\)", "", line)
             for line in lines if not line.startswith(root)])


def test_dask_processes_cli_and_a_scheduler_that_goes_away(
        library: Library, tmp_path: Path) -> None:
    """``imgscan scan --dask tcp://...`` on a scheduler and a worker started as users
    start them prints what the local scan prints (lines in another order) with the same
    exit status; a root the client sees and the worker does not is an error naming
    both; a scheduler killed mid-scan ends the scan with a clear error, and the
    catalog keeps what was recorded, its scan closed as interrupted."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with dask_processes(tmp_path, elsewhere) as (address, scheduler):
        root = str(library.root)
        local = cli("scan", "--info-only", root)
        dask = cli("scan", "--info-only", "--dask", address, root)
        assert dask.returncode == local.returncode == 2, dask.stderr
        assert output(dask.stdout, root) == output(local.stdout, root)
        assert "imgscan: the Dask dashboard: http://127.0.0.1:" in dask.stderr

        relative = cli("scan", "--info-only", "--dask", address, library.root.name,
                       cwd=library.root.parent)
        assert relative.returncode == 2
        assert "seen by this client" in relative.stderr
        assert "not by the Dask worker tcp://127.0.0.1" in relative.stderr

        db = tmp_path / "c.db"
        with Client(address) as client:
            client.register_plugin(Hook("slowly"))     # for good: the cluster is let go
            run = imgscan.scan([root], cluster=client, info_only=True, catalog=str(db))
            got = 0
            with pytest.raises(ClusterError, match="scheduler went away"), run:
                for _ in run:
                    got += 1
                    if got == 20:
                        os.killpg(scheduler.pid, signal.SIGKILL)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT interrupted FROM scans").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] >= 20



# -- a bucket --------------------------------------------------------------------------
def test_a_bucket_prefix(library: Library, dask_client: Client, tmp_path: Path) -> None:
    """``s3://BUCKET/PREFIX/`` on the test object store (SeaweedFS): listed and read by
    the workers, each object's facts and verdict those of the same bytes read locally
    (but for where they were read from); a rescan finds every object unchanged by its
    ETag without reading it."""
    from helpers.stores import SeaweedS3

    server = SeaweedS3(tmp_path / "seaweedfs")
    try:
        client = server.client()
        client.create_bucket(Bucket="dask")
        local = tmp_path / "local"
        local.mkdir()
        for path in library.images:
            name = os.path.basename(path)
            if name in ("0-disk2.qcow2", "0-mbr.raw", "0-disk6.vpc", "0-disk8.vhdx"):
                client.upload_file(path, "dask", f"lib/{name}")
                (local / name).write_bytes(Path(path).read_bytes())
        client.put_object(Bucket="dask", Key="lib/notes.txt", Body=b"not an image\n" * 100)
        url = "s3://dask/lib/"
        db = str(tmp_path / "c.db")
        dask_client.register_plugin(Environ(server.environ()))
        try:
            remote, skipped = scan_list([url], cluster=dask_client, catalog=db)
            again, _ = scan_list([url], cluster=dask_client, catalog=db)
        finally:
            dask_client.unregister_worker_plugin(Environ.name)
    finally:
        server.stop()
    here = by_path(scan_list([str(local)], jobs=1)[0])
    assert skipped == 1 and len(remote) == len(here) == 4
    for r in remote:
        name = r.path.removeprefix(url)
        mine = here[str(local / name)]
        assert r.status == "scanned" and r.info is not None and mine.info is not None
        assert r.info["source"]["url"] == r.path
        assert ({k: v for k, v in r.info.items() if k not in ("path", "source")}
                == {k: v for k, v in mine.info.items() if k not in ("path", "source")})
        assert r.check is not None and mine.check is not None
        assert r.check["verdict"] == mine.check["verdict"]
    assert {r.status for r in again} == {"unchanged"}

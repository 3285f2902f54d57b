"""Dask scan benchmarks (issue 17): the scan on a cluster beside the local pool.

Target: on this machine, ``imgscan.scan(..., cluster=...)`` with 1 and 2 Dask
workers (the cluster ``imgscan scan --dask local:N`` starts,
:func:`dask_pool.connect`: a ``LocalCluster`` of processes, one thread each, with
imgscan's quieter settings, ``dask_pool.LOCAL_CONFIG``; started once per module, not
timed) takes at most 1.3x the local scan with ``jobs=1`` / ``jobs=2``: over the
1000-image library of test_bench_scan.py (info only) and over the Windows fixture
disks (checked by the default profile: a few real images, each much longer). Also
measured: the per-task cost of the cluster (a no-op task's round trip with the
scan's window in flight) and the catalog's write rate (results of the Windows disks,
with their check objects, recorded into SQLite and committed every 200 as the scan
does), the figures behind benchmarks/README.md's estimate for a million images.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import images
import pytest
from distributed import Client, wait
from helpers import FIXTURES, unpack_fixtures
from helpers.scans import scan_result
from pytest_benchmark.fixture import BenchmarkFixture
from test_bench_scan import LIBRARY_SIZE, library  # noqa: F401 (a fixture)

import imgscan
from imgscan.bulk.catalog import Catalog
from imgscan.bulk.dask_pool import connect
from imgscan.bulk.result import ScanResult

WORKERS = (1, 2)
#: No-op tasks timed for the per-task cost.
NOOPS = 400
#: Results written for the catalog's rate.
RECORDS = 5000


@pytest.fixture(scope="module")
def clusters() -> Iterator[dict[int, Client]]:
    started = {n: connect(f"local:{n}") for n in WORKERS}
    yield {n: client for n, (client, _) in started.items()}
    for _, owned in started.values():
        for closing in owned:
            closing.close()


@pytest.fixture(scope="module")
def windows() -> list[str]:
    out = images.CACHE / "dask-windows"
    out.mkdir(parents=True, exist_ok=True)
    disks = unpack_fixtures(FIXTURES / "windows", ["bios", "uefi", "nosysres", "bitlocker"], out)
    return [str(p) for p in disks.values()]


def _count(paths: list[str], **kwargs: Any) -> int:
    with imgscan.scan(paths, **kwargs) as run:
        return sum(1 for _ in run)


@pytest.mark.parametrize("jobs", WORKERS)
def test_library_local(benchmark: BenchmarkFixture, library: Path, jobs: int) -> None:  # noqa: F811
    assert benchmark(_count, [str(library)], jobs=jobs, info_only=True) == LIBRARY_SIZE


@pytest.mark.parametrize("workers", WORKERS)
def test_library_dask(benchmark: BenchmarkFixture, library: Path,  # noqa: F811
                      clusters: dict[int, Client], workers: int) -> None:
    assert benchmark(_count, [str(library)], cluster=clusters[workers],
                     info_only=True) == LIBRARY_SIZE


@pytest.mark.parametrize("jobs", WORKERS)
def test_windows_local(benchmark: BenchmarkFixture, windows: list[str], jobs: int) -> None:
    assert benchmark.pedantic(_count, args=(windows,), kwargs={"jobs": jobs},
                              rounds=5) == len(windows)


@pytest.mark.parametrize("workers", WORKERS)
def test_windows_dask(benchmark: BenchmarkFixture, windows: list[str],
                      clusters: dict[int, Client], workers: int) -> None:
    assert benchmark.pedantic(_count, args=(windows,),
                              kwargs={"cluster": clusters[workers]}, rounds=5) == len(windows)


def _noop(x: int) -> int:
    return x


@pytest.mark.parametrize("workers", WORKERS)
def test_task_overhead(benchmark: BenchmarkFixture, clusters: dict[int, Client],
                       workers: int) -> None:
    """NOOPS no-op tasks through the scan's window (two per worker thread, refilled
    as each completes): the cluster's cost of one task, per worker."""
    client = clusters[workers]

    def run() -> None:
        inflight: set[Any] = set()
        sent = done = 0
        while done < NOOPS:
            while len(inflight) < 2 * workers and sent < NOOPS:
                inflight.add(client.submit(_noop, sent, pure=False))
                sent += 1
            with client.as_current():   # wait() waits on the current client otherwise
                finished = wait(inflight, return_when="FIRST_COMPLETED").done
            for future in finished:
                future.result()
                inflight.discard(future)
                done += 1

    benchmark.pedantic(run, rounds=3)
    if benchmark.stats is not None:     # None when benchmarks are disabled (a smoke run)
        per_task = benchmark.stats.stats.median / NOOPS * workers
        benchmark.extra_info["per_task_ms_per_worker"] = round(per_task * 1000, 3)


def test_catalog_write_rate(benchmark: BenchmarkFixture, windows: list[str],
                            tmp_path: Path) -> None:
    """Results recorded per second by the client's SQLite catalog (the one writer of a
    cluster's scan), with a check object each, committed every 200."""
    templates = [scan_result(Path(p)) for p in windows]
    rounds = iter(range(100))

    def write() -> None:
        with Catalog(tmp_path / f"rate-{next(rounds)}.db") as catalog:
            scan_id = catalog.begin_scan(["/srv/images"], "huawei-ims")
            for i in range(RECORDS):
                t = templates[i % len(templates)]
                name = f"/srv/images/d{i % 100:02d}/vm-{i:06d}.img"
                catalog.record(ScanResult(name, t.status, t.identity, info=t.info,
                                          check=t.check, error=t.error,
                                          elapsed=t.elapsed), scan_id)
                if i % 200 == 199:
                    catalog.commit()
            catalog.finish_scan(scan_id, interrupted=False)

    benchmark.pedantic(write, rounds=3)
    if benchmark.stats is not None:
        benchmark.extra_info["records_per_s"] = round(RECORDS / benchmark.stats.stats.median)

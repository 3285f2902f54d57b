"""HTML report benchmarks (issue 20): a catalog of 10,000 images.

Targets: ``imgscan report`` over the catalog, whole process, under 2 s; the page
it writes reaches DOMContentLoaded in headless Chromium in under 1 s.

The catalog is what a scan with ``--fingerprint`` of a library of copies
records: the Windows fixture disks, a 64 MiB qcow2 and a cut qcow2 (an error),
each read, checked (huawei-ims) and fingerprinted once by imgscan, then
recorded under 10,000 paths (made once into the benchmark cache). The page's
size goes into extra_info. DOMContentLoaded is read inside the page: a copy of
it carries one more script (admitted by its hash) that writes, once the page
has loaded, ``performance``'s navigation timing (domContentLoadedEventEnd, ms
from the start of navigation) into the DOM Chromium dumps; five loads, beside
five of a one-image page (``check --html``): what a loaded machine takes for any
page.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import images
import pytest
import whole_process
from helpers import FIXTURES, unpack_fixtures
from helpers.browser import chromium, needs_chromium, with_script
from helpers.scans import scan_result
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan
from imgscan.bulk.catalog import Catalog
from imgscan.bulk.result import ScanResult

IMAGES = 10_000
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
       "PYTHONPATH": str(Path(imgscan.__file__).resolve().parent.parent),
       "PYTHONPYCACHEPREFIX": str(images.CACHE / "pycache")}
#: Writes the navigation timing (ms since navigation start) into the dumped DOM.
PROBE = ("addEventListener('load',function(){var t=performance.getEntriesByType("
         "'navigation')[0];document.documentElement.setAttribute('data-dom-ready',"
         "String(t.domContentLoadedEventEnd))})")


def report_catalog() -> Path:
    """``CACHE/report-10000.db``, made once."""
    path = images.CACHE / f"report-{IMAGES}.db"
    if path.exists():
        return path
    work = images.CACHE / "report-templates"
    work.mkdir(parents=True, exist_ok=True)
    windows = unpack_fixtures(FIXTURES / "windows", ["bios", "uefi", "nosysres", "bitlocker"],
                              work)
    broken = work / "broken.qcow2"
    broken.write_bytes(images.small_qcow2().read_bytes()[:100])
    templates = [scan_result(p) for p in (*windows.values(), images.small_qcow2(), broken)]
    part = path.with_suffix(".part")
    part.unlink(missing_ok=True)
    with Catalog(part) as catalog:
        scan_id = catalog.begin_scan(["/srv/images"], "huawei-ims")
        for i in range(IMAGES):
            t = templates[i % len(templates)]
            name = f"/srv/images/team{i % 50:02d}/vm-{i:05d}.{Path(t.path).suffix[1:]}"
            catalog.record(ScanResult(
                name, t.status, t.identity,
                info=t.info and {**t.info, "path": name},
                check=t.check and {**t.check, "path": name},
                error=t.error and {**t.error, "message": f"{name}: {t.error['message']}"},
                fingerprint=t.fingerprint, elapsed=t.elapsed), scan_id)
        catalog.finish_scan(scan_id, interrupted=False)
    part.rename(path)
    return path


@pytest.fixture(scope="module")
def catalog() -> Path:
    return report_catalog()


def _report(db: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "imgscan", "report", "--catalog", str(db),
                    "-o", str(out)], env=ENV, check=True, cwd=images.CACHE)


def test_report_10000_whole_process(benchmark: BenchmarkFixture, catalog: Path,
                                    tmp_path: Path) -> None:
    """Wall time, and the CPU seconds (user + system) and peak memory of each run
    (:func:`whole_process.measure`): on a shared machine the wall time counts the other
    processes' turns too."""
    if not os.access(whole_process.GNU_TIME, os.X_OK):
        pytest.skip(f"{whole_process.GNU_TIME} is absent (apt-get install time)")
    out = tmp_path / "report.html"
    cmd = [sys.executable, "-m", "imgscan", "report", "--catalog", str(catalog), "-o", str(out)]
    runs: list[whole_process.Run] = []

    def report() -> None:
        runs.append(whole_process.measure(cmd, ENV))

    benchmark.pedantic(report, rounds=5, warmup_rounds=1)  # type: ignore[no-untyped-call]
    benchmark.extra_info["html_bytes"] = out.stat().st_size
    benchmark.extra_info["cpu_seconds"] = [round(r.cpu, 3) for r in runs]
    benchmark.extra_info["peak_rss_mib"] = [round(r.peak_rss, 1) for r in runs]
    assert out.read_text(encoding="utf-8").count("<tr id=i") == IMAGES


def _dom_ready(page: Path, work: Path) -> float:
    """domContentLoadedEventEnd of ``page`` (ms), by :data:`PROBE`."""
    run = chromium(page, work, "--dump-dom")
    assert run.requests == []
    found = re.search(r'data-dom-ready="([0-9.]+)"', run.stdout)
    assert found, "the probe did not run"
    return float(found.group(1))


@needs_chromium
def test_report_10000_dom_ready(benchmark: BenchmarkFixture, catalog: Path,
                                tmp_path: Path) -> None:
    """The 10,000-image page, and as the floor of a loaded machine the page of one
    image (``check --html``), loaded alternately, five times each."""
    pages = {"library": tmp_path / "report.html", "one_image": tmp_path / "one.html"}
    _report(catalog, pages["library"])
    subprocess.run([sys.executable, "-m", "imgscan", "check", "--html", str(pages["one_image"]),
                    str(images.small_qcow2())], env=ENV, check=False,
                   stdout=subprocess.DEVNULL, cwd=images.CACHE)
    for page in pages.values():
        page.with_suffix(".probed.html").write_text(
            with_script(page.read_text(encoding="utf-8"), PROBE), encoding="utf-8")

    def loads() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {name: [] for name in pages}
        for i in range(5):
            for name, page in pages.items():
                times[name].append(_dom_ready(page.with_suffix(".probed.html"),
                                              tmp_path / f"chromium-{name}-{i}"))
        return times

    times = benchmark.pedantic(loads, rounds=1)  # type: ignore[no-untyped-call]
    for name, ms in times.items():
        benchmark.extra_info[f"{name}_dom_ready_ms"] = ms
        benchmark.extra_info[f"{name}_dom_ready_median_ms"] = statistics.median(ms)

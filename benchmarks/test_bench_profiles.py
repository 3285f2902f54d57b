"""``imgscan check --profile all`` against one profile (issue 15: at most 10% more).

Run with ``pytest benchmarks/test_bench_profiles.py --benchmark-enable``. One round of
``test_check_profiles`` is what ``check`` does for each image before its report: open
it, read every fact once (``info()``) and judge the facts by the profiles, which the
command loads once before its first image (built-in profiles are parsed once each);
``test_check_and_render`` adds the report, text or JSON, as the command prints it: the
issue's target is its ``all`` row at most 10% over the ``huawei-ims`` row of the same
disk and output.
The disks: the Windows BIOS fixture as qcow2 (test_bench_windows.windows_qcow2; a
50 MiB disk whose facts take about a millisecond, the worst case for the ratio) and
the Debian 12 ext4 system disk (test_bench_linux.plain_qcow2). The judging is pure
Python over the ``info`` dict, so the profiles' share is the difference between the
``huawei-ims`` and the ``all`` rows of one disk.

Run as a script (``PYTHONPATH=TREE:tests python benchmarks/test_bench_profiles.py``, TREE
the checkout to measure, so that a tree from before a change runs the same script) it
times both sides alternately in one run, so a loaded machine hits both: in process, one
round as above and the judging alone on an ``info`` dict read once; then whole
processes (:mod:`whole_process`), ``imgscan check --profile huawei-ims|all`` through
``python -c`` (``imgscan check`` exits 1 when a rule fails, which ``measure`` would take
for a failure). Both with the report rendered too, text and JSON (:func:`render`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.linux_images import linux_disks
from pytest_benchmark.fixture import BenchmarkFixture
from test_bench_linux import plain_qcow2
from test_bench_windows import windows_qcow2

import imgscan
from imgscan import policy
from imgscan.policy import Profile, check, load_profiles


def judge(info: dict[str, Any], profiles: list[Profile]) -> list[dict[str, Any]]:
    """The check objects, as ``imgscan check`` makes them (before ``policy.checks``
    existed: one ``check`` per profile)."""
    checks = getattr(policy, "checks", None)
    if checks is None:
        return [check(info, p) for p in profiles]
    found: list[dict[str, Any]] = checks(info, profiles)
    return found


def render(checks: list[dict[str, Any]], as_json: bool) -> str:
    """One image's report as ``imgscan check`` prints it: the JSON line, or the text
    (one profile's report, the matrix for several)."""
    from imgscan.report.json import checks_json
    from imgscan.report.text import check_text, matrix_text

    if as_json:
        return checks_json(checks)
    return check_text(checks[0]) if len(checks) == 1 else matrix_text(checks)


def _judge_and_render(info: dict[str, Any], as_json: bool, profiles: list[Profile]) -> str:
    return render(judge(info, profiles), as_json)


def check_image(path: Path, profiles: list[Profile]) -> list[dict[str, Any]]:
    with imgscan.open(path) as img:
        info = img.info()
    return judge(info, profiles)


def disk(name: str) -> Path:
    if name == "windows":
        return windows_qcow2("bios")
    return plain_qcow2(linux_disks()["ext4-bios"])


@pytest.mark.parametrize("name", ["windows", "debian"])
@pytest.mark.parametrize("spec", ["huawei-ims", "all"])
def test_check_profiles(benchmark: BenchmarkFixture, name: str, spec: str) -> None:
    path = disk(name)
    profiles = load_profiles(spec)
    checks = benchmark(check_image, path, profiles)
    assert [c["profile"] for c in checks] == [p.name for p in profiles]


def check_and_render(path: Path, profiles: list[Profile], as_json: bool) -> str:
    """What ``imgscan check [--json]`` does for one image: open it, read the facts,
    judge them and render the report."""
    return render(check_image(path, profiles), as_json)


@pytest.mark.parametrize("name", ["windows", "debian"])
@pytest.mark.parametrize("spec", ["huawei-ims", "all"])
@pytest.mark.parametrize("output", ["text", "json"])
def test_check_and_render(benchmark: BenchmarkFixture, name: str, spec: str,
                          output: str) -> None:
    """The issue's target in process: the ``all`` row of a disk and output at most 10%
    over its ``huawei-ims`` row (compare with ``--benchmark-group-by=param:name,param:output``)."""
    path = disk(name)
    profiles = load_profiles(spec)
    report = benchmark(check_and_render, path, profiles, output == "json")
    assert report.count(str(path)) >= 1


def _pairs(work: Callable[[list[Profile]], object], n: int) -> str:
    """``work`` with ``huawei-ims`` and with ``all``, alternately ``n`` times: the
    table cells (medians, median of the per-pair ratios all / one)."""
    import statistics
    import time

    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for spec, out in (("huawei-ims", times[0]), ("all", times[1])):
            profiles = load_profiles(spec)  # cached: what `check` loads once
            start = time.perf_counter()
            work(profiles)
            out.append(time.perf_counter() - start)
    ratio = statistics.median(b / a for a, b in zip(*times, strict=True))
    return (f"{statistics.median(times[0]) * 1e3:.3f} ms | "
            f"{statistics.median(times[1]) * 1e3:.3f} ms | {ratio:.3f} | {n}")


def _command(spec: str, path: Path, as_json: bool = False) -> list[str]:
    """``imgscan check --profile SPEC [--json] PATH`` as a whole process that exits 0."""
    import sys

    json_flag = "'--json', " if as_json else ""
    return [sys.executable, "-c", "from imgscan.cli import main; "
            f"main(['check', {json_flag}'--profile', {spec!r}, {str(path)!r}])"]


def alternate(pairs: int = 201, runs: int = 21) -> None:
    """In process, then whole processes, each pair alternately (one, all, one, ...)."""
    import functools

    import whole_process

    print("| disk: work | huawei-ims (median) | all (median) | all / one, median of pairs "
          "| pairs |\n|---|---|---|---|---|")
    for name in ("windows", "debian"):
        path = disk(name)
        with imgscan.open(path) as img:
            info = img.info()
        rounds = pairs if name == "windows" else max(21, pairs // 10)  # ~0.5 s a Debian round
        print(f"| {name}: open, info(), judge | "
              f"{_pairs(functools.partial(check_image, path), rounds)} |", flush=True)
        print(f"| {name}: judge one info dict | "
              f"{_pairs(functools.partial(judge, info), pairs * 10)} |", flush=True)
        for as_json in (False, True):
            work = functools.partial(_judge_and_render, info, as_json)
            print(f"| {name}: judge and render {'JSON' if as_json else 'text'} | "
                  f"{_pairs(work, pairs * 10)} |", flush=True)
    print()
    print(whole_process.HEADER.replace("imgscan (medians) | peer (medians)",
                                       "--profile all (medians) | --profile huawei-ims (medians)"))
    for name in ("windows", "debian"):
        path = disk(name)
        for as_json in (False, True):
            print(whole_process.compare(
                f"{name}: imgscan check{' --json' if as_json else ''} (python -c)",
                _command("all", path, as_json), _command("huawei-ims", path, as_json), runs),
                flush=True)


if __name__ == "__main__":
    alternate()

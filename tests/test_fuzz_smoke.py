"""CI's fuzz smoke run: every harness of tests/fuzz/ fuzzes a few seconds without a crash.

Each harness runs in its own process (libFuzzer exits on the first crash), two at a
time, on seeds made by make_seeds.py (in a process of its own) for it alone (the
shared corpus' real images are left to ``make fuzz``); about a minute in all. A
crash, an input over one second or an RSS over 512 MiB fails the test with the end
of libFuzzer's log, which names the input it wrote (replay it with
``python tests/fuzz/fuzz.py HARNESS FILE``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import imgscan

pytest.importorskip("atheris", reason="atheris is not installed (Linux x86_64 only)")

FUZZ = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ))

from harnesses import HARNESSES  # noqa: E402

#: Fuzzing seconds per harness; with start-up and seeds, about 60 s over all of them.
SECONDS = 3
FLAGS = ("-timeout=1", "-rss_limit_mb=512", "-max_len=1048576")
#: The children import the imgscan this session tests, installed or not.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    p for p in (str(Path(imgscan.__file__).parent.parent), os.environ.get("PYTHONPATH")) if p)}


def _smoke(name: str, work: Path) -> str | None:
    """Seeds for ``name``, then a short run; None when it passed, else the log's tail."""
    seeds = work / "seeds"
    subprocess.run([sys.executable, str(FUZZ / "make_seeds.py"), str(seeds), name],
                   check=True, capture_output=True, env=ENV)
    corpus, artifacts = work / "corpus" / name, work / "artifacts" / name
    corpus.mkdir(parents=True)
    artifacts.mkdir(parents=True)
    regressions = FUZZ / "regressions" / name
    # Started by a shell that forks it: a process exec'd straight from pytest inherits
    # pytest's peak RSS (Linux keeps ru_maxrss across execve), which libFuzzer's
    # -rss_limit_mb would count against the harness.
    done = subprocess.run(
        ["sh", "-c", '"$@"; exit $?', "sh", sys.executable, str(FUZZ / "fuzz.py"), name,
         *FLAGS, f"-max_total_time={SECONDS}", f"-artifact_prefix={artifacts}/",
         str(corpus), str(seeds / name),
         *([str(regressions)] if regressions.is_dir() else [])],
        capture_output=True, text=True, timeout=120, env=ENV)
    if done.returncode == 0:
        return None
    return f"{name}: exit {done.returncode}\n" + "\n".join(done.stderr.splitlines()[-40:])


def test_every_harness_fuzzes_without_crash(tmp_path: Path) -> None:
    with ThreadPoolExecutor(2) as pool:
        failures = [f for f in pool.map(lambda h: _smoke(h, tmp_path), HARNESSES) if f]
    assert not failures, "\n\n".join(failures)

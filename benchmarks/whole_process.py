"""Whole-process measurements: wall time, CPU time and peak memory of commands, paired.

    python benchmarks/whole_process.py [--runs N] [--vs "PEER COMMAND"] -- COMMAND ...

Each run is one child process: wall time around it, CPU time (user + system, its
waited-for children included, from ``os.wait4``) and peak resident memory as GNU time
reports it (the largest of the process and its waited-for children, so a scan's largest
worker counts). With ``--vs`` the two commands run alternately (A B A B ...) after
one warm-up run each, so the drift of a noisy machine hits both; the row gives each
command's medians, the median of the per-pair wall-time ratios (A / B) and the smallest
and largest of them. Without ``--vs`` the command's medians alone. The peer scripts
(peer.py, peer_fingerprint.py, peer_scan.py, peer_virt_inspector.py) print their rows
with :func:`compare`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    wall: float       # seconds
    cpu: float        # seconds, user + system
    peak_rss: float   # MiB


#: GNU time (Debian package ``time``) reports the peak memory of the command it forks
#: itself. The kernel's own account from ``os.wait4`` here would not do: a child forked
#: from this Python process inherits its high-water mark through ``exec``.
GNU_TIME = "/usr/bin/time"


def measure(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> Run:
    """One run of ``cmd`` (output discarded); a failing command stops the measurement."""
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} is absent (apt-get install time)")
    with tempfile.NamedTemporaryFile("r") as peak:
        start = time.perf_counter()
        proc = subprocess.Popen([GNU_TIME, "-f", "%M", "-o", peak.name, *cmd],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=None if env is None else dict(env))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"{list(cmd)!r} failed ({proc.returncode})")
        kib = int(peak.read().split()[-1])
    return Run(wall, usage.ru_utime + usage.ru_stime, kib / 1024)


@dataclass(frozen=True)
class Summary:
    """Medians of a command's runs."""
    wall: float
    cpu: float
    peak_rss: float
    runs: int

    @classmethod
    def of(cls, runs: list[Run]) -> Summary:
        return cls(statistics.median(r.wall for r in runs),
                   statistics.median(r.cpu for r in runs),
                   statistics.median(r.peak_rss for r in runs), len(runs))

    def cell(self) -> str:
        return (f"{_ms(self.wall)} (cpu {_ms(self.cpu)}, peak {self.peak_rss:.1f} MiB)")


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def paired(ours: Sequence[str], peer: Sequence[str], runs: int,
           env: Mapping[str, str] | None = None) -> tuple[Summary, Summary, list[float]]:
    """``runs`` pairs (A B A B ...) after one warm-up of each: both summaries and the
    per-pair wall-time ratios A / B."""
    measure(ours, env)
    measure(peer, env)
    a: list[Run] = []
    b: list[Run] = []
    for _ in range(runs):
        a.append(measure(ours, env))
        b.append(measure(peer, env))
    ratios = [x.wall / y.wall for x, y in zip(a, b, strict=True)]
    return Summary.of(a), Summary.of(b), ratios


def compare(name: str, ours: Sequence[str], peer: Sequence[str], runs: int,
            env: Mapping[str, str] | None = None) -> str:
    """A table row: ``| name | ours | peer | median ratio (min to max) | pairs |``."""
    a, b, ratios = paired(ours, peer, runs, env)
    return (f"| {name} | {a.cell()} | {b.cell()} | {statistics.median(ratios):.3f} "
            f"({min(ratios):.3f} to {max(ratios):.3f}) | {runs} |")


HEADER = ("| case | imgscan (medians) | peer (medians) | wall ratio, median of pairs (min to "
          "max) | pairs |\n|---|---|---|---|---|")


def alone(name: str, cmd: Sequence[str], runs: int,
          env: Mapping[str, str] | None = None) -> str:
    """A table row of one command's medians over ``runs`` runs after one warm-up."""
    measure(cmd, env)
    summary = Summary.of([measure(cmd, env) for _ in range(runs)])
    return f"| {name} | {summary.cell()} | {runs} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--vs", help="the peer command, run alternately with COMMAND")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        parser.error("no COMMAND")
    name = shlex.join(cmd)
    if args.vs:
        print(HEADER)
        print(compare(name, cmd, shlex.split(args.vs), args.runs))
    else:
        print("| command | medians | runs |\n|---|---|---|")
        print(alone(name, cmd, args.runs))


if __name__ == "__main__":
    main()

"""Whole-process measurements of ``imgscan info`` (issue 18) beside its peers.

    python benchmarks/peer_info.py [--runs N] [--library-runs N] [--before DIR] [--no-pth]
                                   [--instructions]

Rows, each pair run alternately (A B A B ...) and measured by :func:`whole_process.compare`
(medians of wall time, CPU time and peak memory; the median and range of the per-pair
wall-time ratios):

- ``imgscan info SMALL`` (the 64 MiB qcow2 of ``images.small_qcow2``) against
  ``python -c pass``: start-up, the target being at most 2x;
- ``imgscan info --json`` of the 1000 images of ``test_bench_scan.scan_library`` (one
  process, paths as arguments: the worker pool) against a shell loop of
  ``qemu-img info`` over the same files, the target being at least 50x faster;
- ``info --json`` of the library by default (in process, then the pool) and with
  ``--jobs 2`` (all by the pool), each paired with ``--jobs 1`` (all in process);
- with ``--before DIR`` (a checkout of the previous commit, its extensions built),
  each imgscan row again with that imgscan, and the one-image row paired after
  against before;
- with ``--instructions``, only the one-image commands' instruction counts under
  callgrind, each against ``python -c pass``'s.

imgscan starts as the console script pip installs does (``from imgscan.cli import
main``: no ``runpy``), from compiled bytecode kept in the benchmark cache (the
environment of test_bench_scan.py). ``--no-pth``: both interpreters with ``-S`` and the
site-packages directories on PYTHONPATH, so that no ``.pth`` file of this machine's
site-packages runs at start-up (a hook that imports a library at every start weighs
on both sides of the start-up ratio as it would not on a clean install).
"""

from __future__ import annotations

import argparse
import os
import re
import site
import subprocess
import sys
import tempfile

import images
from test_bench_scan import ENV, QEMU_LOOP, scan_library
from whole_process import HEADER, compare

#: What the ``imgscan`` console script of a pip install runs (pyproject: ``imgscan.__main__:run``).
SCRIPT = "import sys; from imgscan.__main__ import run; sys.exit(run())"


def instructions(cmd: list[str], env: dict[str, str]) -> int:
    """Instructions ``cmd`` executes, by ``valgrind --tool=callgrind`` (after one run
    that writes the bytecode cache): a figure a loaded machine does not move."""
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(["valgrind", "--tool=callgrind",
                               f"--callgrind-out-file={out}/callgrind.out", *cmd],
                              env={**env, "PYTHONHASHSEED": "0"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=True)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if found is None:
        raise SystemExit(f"no count from callgrind: {proc.stderr[-500:]}")
    return int(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="pairs of the one-image rows")
    parser.add_argument("--library-runs", type=int, default=3,
                        help="pairs of the library rows (the qemu-img loop takes ~25 s)")
    parser.add_argument("--before", metavar="DIR",
                        help="also measure the imgscan of this checkout (its .so built)")
    parser.add_argument("--no-pth", action="store_true",
                        help="run python with -S, site-packages on PYTHONPATH")
    parser.add_argument("--instructions", action="store_true",
                        help="instead: the one-image rows' instruction counts (callgrind)")
    args = parser.parse_args()
    python = [sys.executable, *(["-S"] if args.no_pth else [])]
    extra = os.pathsep.join(site.getsitepackages()) if args.no_pth else ""

    def env(root: str) -> dict[str, str]:
        return {**ENV, "PYTHONPATH": os.pathsep.join(p for p in (root, extra) if p)}

    versions = {"after": env(ENV["PYTHONPATH"])}
    if args.before:
        versions["before"] = env(os.path.abspath(args.before))
    imgscan = [*python, "-c", SCRIPT]
    small = str(images.small_qcow2())
    # `python -c` puts the working directory first on sys.path: run from a checkout,
    # its imgscan/ would shadow the one PYTHONPATH names (--before would measure it).
    os.chdir(images.CACHE)
    bare = [*python, "-c", "pass"]
    if args.instructions:
        print("| command | instructions (callgrind) | against python -c pass |\n|---|---|---|")
        base = instructions(bare, versions["after"])
        print(f"| python -c pass | {base / 1e6:.1f} M | 1.00 |")
        for name, environ in versions.items():
            for fmt in ((), ("--json",)):
                n = instructions([*imgscan, "info", *fmt, small], environ)
                label = " ".join([f"{name}: info", *fmt, "64 MiB qcow2"])
                print(f"| {label} | {n / 1e6:.1f} M | {n / base:.2f} |")
        return
    print(HEADER)
    for name, environ in versions.items():
        print(compare(f"{name}: info, 64 MiB qcow2, vs python -c pass",
                      [*imgscan, "info", small], bare, args.runs, environ))
    if args.before:
        # One pair of commands, each told its own imgscan (`env` runs on both sides).
        after, before = (["env", f"PYTHONPATH={versions[v]['PYTHONPATH']}", *imgscan,
                          "info", small] for v in ("after", "before"))
        print(compare("after vs before: info, 64 MiB qcow2", after, before, args.runs,
                      versions["after"]))
    library = scan_library()
    paths = sorted(str(p) for p in library.iterdir() if not p.name.startswith("."))
    for name, environ in versions.items():
        print(compare(f"{name}: info --json, 1000 images as arguments, vs a shell loop of "
                      "qemu-img info", [*imgscan, "info", "--json", *paths],
                      ["sh", "-c", QEMU_LOOP, "sh", str(library)], args.library_runs,
                      environ))
    info = [*imgscan, "info", "--json"]
    print(compare("info --json, 1000 images: default (in process, then the pool) vs "
                  "--jobs 1 (all in process)", [*info, *paths], [*info, "--jobs", "1", *paths],
                  args.runs, versions["after"]))
    print(compare("info --json, 1000 images: --jobs 2 (all by the pool) vs --jobs 1",
                  [*info, "--jobs", "2", *paths], [*info, "--jobs", "1", *paths],
                  args.runs, versions["after"]))
    print(f"\nimages: {images.CACHE}; interpreter flags: {python[1:] or 'none'}")


if __name__ == "__main__":
    main()

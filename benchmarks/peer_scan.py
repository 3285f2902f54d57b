"""Whole-process measurements of the bulk scan (issue 7) beside its peers.

    python benchmarks/peer_scan.py [--runs N] [--start-runs N] [--big] [--jobs-rows] [--no-pth]

Rows, each pair run alternately (A B A B ...) and measured by :func:`whole_process.compare`
(medians of wall time, CPU time and peak memory; the median and range of the per-pair
wall-time ratios):

- ``imgscan scan --info-only LIBRARY`` (the 1000 small images of
  ``test_bench_scan.scan_library``, 2 workers) against a shell loop of ``qemu-img info``
  over the same files;
- ``imgscan scan --info-only`` of an empty directory (start-up alone) against
  ``python -c pass`` (the interpreter alone);
- with ``--big``, the peak memory of a scan of the library plus the four 100 GiB images
  (qcow2, VMDK, VHDX, VDI), against the library alone: flat when they are equal;
- with ``--jobs-rows``, the library's scan on 2 workers against 1 (what the second
  core gives).

imgscan runs as ``python -m imgscan`` with the environment of test_bench_scan.py (the
imgscan this interpreter imports, from compiled bytecode kept in the benchmark cache),
so a checkout measures as an installed package starts, without ``pip install``.
``--no-pth``: as ``peer_info.py --no-pth``, both interpreters with ``-S`` (no ``.pth``
file of this machine's site-packages runs), imgscan started as its console script.
"""

from __future__ import annotations

import argparse
import os
import site
import sys
import tempfile

import images
from peer_info import SCRIPT
from test_bench_scan import ENV, IMGSCAN, QEMU_LOOP, scan_library
from whole_process import HEADER, compare, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--start-runs", type=int, default=9)
    parser.add_argument("--big", action="store_true")
    parser.add_argument("--jobs-rows", action="store_true")
    parser.add_argument("--no-pth", action="store_true")
    args = parser.parse_args()
    library = str(scan_library())
    env, imgscan, python = ENV, IMGSCAN, [sys.executable]
    if args.no_pth:
        python = [sys.executable, "-S"]
        imgscan = [*python, "-c", SCRIPT]
        env = {**ENV, "PYTHONPATH": os.pathsep.join([ENV["PYTHONPATH"],
                                                     *site.getsitepackages()])}
        os.chdir(images.CACHE)      # `python -c`: no checkout's imgscan/ on sys.path
    scan = [*imgscan, "scan", "--info-only", "--jobs", "2"]
    print(HEADER)
    print(compare("scan --info-only, 1000 images, 2 workers, vs a shell loop of qemu-img info",
                  [*scan, library], ["sh", "-c", QEMU_LOOP, "sh", library], args.runs, env))
    if args.jobs_rows:
        one = [*imgscan, "scan", "--info-only", "--jobs", "1", library]
        print(compare("scan --info-only, 1000 images: 2 workers vs 1", [*scan, library], one,
                      args.start_runs, env))
    with tempfile.TemporaryDirectory() as empty:
        print(compare("scan --info-only of an empty directory, vs python -c pass",
                      [*scan, empty], [*python, "-c", "pass"], args.start_runs, env))
    if args.big:
        bigs = [str(build()) for build in (images.big_qcow2, images.big_vmdk, images.big_vhdx,
                                           images.big_vdi)]
        small = measure([*scan, library], env).peak_rss
        large = measure([*scan, library, *bigs], env).peak_rss
        print("\n| scan | peak RSS of the largest process (parent or worker) |\n|---|---|")
        print(f"| 1000 small images | {small:.1f} MiB |")
        print(f"| the same plus four 100 GiB images | {large:.1f} MiB |")
    print(f"\nimages: {images.CACHE}")


if __name__ == "__main__":
    main()

"""Instruction counts of the issue-12 and issue-14 operations, and of ``check`` with one
profile and with all of them (issue 15): a figure a loaded machine does not move.

``python benchmarks/instructions.py [--tree DIR] [OP ...]`` runs each operation
(default: all of :data:`OPERATIONS`) in a child interpreter under ``valgrind
--tool=callgrind``: two warm-up rounds, then N more, and once more with N = 0; it
prints ``(count(N) - count(0)) / N``, the instructions of one operation with start-up
and imports cancelled out. ``--tree`` runs the child on another checkout (the tree
before a change, its extensions built there with its own ``setup.py``), so both sides
of a comparison run this same script. The images are the benchmarks' own, made into
``images.CACHE`` when missing. The operations of :data:`OWN_BENCHMARKS` (the container
maps, guest reads, probes, NTFS and registry benchmarks) run the benchmark's test itself,
from the counted tree's own ``benchmarks/`` file unless ``--benchmarks`` names another.

Counts of the same tree agree within about 1% from run to run (the interpreter's
garbage collector and allocator); hash randomisation and bytecode caching are held
still (``PYTHONHASHSEED=0``, ``PYTHONDONTWRITEBYTECODE=1``).

``--inside`` counts only the N rounds, in one run: the child calls them through
``functools.reduce``, and callgrind collects only inside that C function
(``--collect-atstart=no --toggle-collect=functools_reduce``), so start-up, imports and
the warm-up are never counted (nor simulated in detail: about twice as fast on a loaded
machine). It agrees with the default within the 1% above.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

#: Operation -> (the benchmark it stands for, rounds counted).
OPERATIONS = {
    "windows-bios": ("test_full_windows_inspection_qcow2[bios]", 20),
    "windows-uefi": ("test_full_windows_inspection_qcow2[uefi]", 20),
    "open-info-small": ("test_open_info_small", 100),
    "open-info-small-vhd": ("test_open_info_small_format[vhd]", 100),
    "open-info-small-vmdk": ("test_open_info_small_format[vmdk]", 100),
    "open-info-small-vhdx": ("test_open_info_small_format[vhdx]", 100),
    # test_bench_scan's library: one image of each of its three templates
    "open-info-library-raw": ("library img0002.raw (an MBR, one empty partition)", 100),
    "open-info-library-qcow2": ("library img0000.qcow2 (64 KiB written, no table)", 100),
    "open-info-library-vhd": ("library img0001.vhd (dynamic, empty)", 100),
    "layout": ("test_layout_of_open_image", 100),
    "open-and-layout": ("test_open_and_layout", 100),
    "vhdx-map": ("test_extent_map_big_vhdx", 20),
    "vhdx-map-json": ("test_map_json_big_vhdx", 20),
    "check-one": ("test_check_profiles[huawei-ims-windows]", 20),
    "check-all": ("test_check_profiles[all-windows]", 20),
    "judge-one": ("test_bench_profiles.judge, huawei-ims, one info dict", 200),
    "judge-all": ("test_bench_profiles.judge, all, one info dict", 200),
    "text-one": ("test_bench_profiles.render, huawei-ims, text of one image's checks", 200),
    "text-all": ("test_bench_profiles.render, all, text of one image's checks", 200),
    "json-one": ("test_bench_profiles.render, huawei-ims, JSON of one image's checks", 200),
    "json-all": ("test_bench_profiles.render, all, JSON of one image's checks", 200),
    "linux-judge-one": ("test_bench_profiles.judge, huawei-ims, Debian ext4 info dict", 200),
    "linux-judge-all": ("test_bench_profiles.judge, all, Debian ext4 info dict", 200),
    "check-text-one": ("test_check_and_render[text-huawei-ims-windows]", 20),
    "check-text-all": ("test_check_and_render[text-all-windows]", 20),
    "check-json-one": ("test_check_and_render[json-huawei-ims-windows]", 20),
    "check-json-all": ("test_check_and_render[json-all-windows]", 20),
    "linux-check-text-one": ("test_check_and_render[text-huawei-ims-debian]", 2),
    "linux-check-text-all": ("test_check_and_render[text-all-debian]", 2),
    "linux-check-json-one": ("test_check_and_render[json-huawei-ims-debian]", 2),
    "linux-check-json-all": ("test_check_and_render[json-all-debian]", 2),
    "linux-facts": ("test_linux_facts[plain]", 3),
    "linux-facts-compressed": ("test_linux_facts[compressed]", 3),
    "initramfs-gzip": ("test_list_debian_initramfs[gzip-isal]", 3),
    "inflate-zlib": ("test_inflate_alone[zlib]", 3),
    "inflate-isal": ("test_inflate_alone[isal]", 3),
    "inflate-zlib-ng": ("test_inflate_alone[zlib-ng]", 3),
    "inflate-libdeflate": ("test_inflate_alone[libdeflate]", 3),
}

#: Operation -> (benchmark module, test, parameter or None, rounds): the benchmark's own
#: test function run by each tree (its own ``benchmarks/`` file, which may differ from this
#: one's), with a stand-in for pytest-benchmark's fixture that runs the timed callable
#: 2 + N times (see :class:`Rounds`); the test's set-up outside the timed callable is in
#: both counts and cancels out.
OWN_BENCHMARKS = {
    "qcow2-map": ("test_bench_core", "test_extent_map_big", None, 10),
    "read-64mib": ("test_bench_core", "test_read_big_data_64mib", None, 3),
    "vdi-map": ("test_bench_vdi", "test_extent_map_big_vdi", None, 20),
    "vdi-map-json": ("test_bench_vdi", "test_map_json_big_vdi", None, 20),
    "vmdk-map": ("test_bench_vmdk", "test_extent_map_big_vmdk", None, 20),
    "vmdk-map-json": ("test_bench_vmdk", "test_map_json_big_vmdk", None, 20),
    "probe-gpt": ("test_bench_filesystems", "test_probe_gpt_partitions", None, 100),
    "open-and-probe-gpt": ("test_bench_filesystems", "test_open_and_probe_gpt_partitions",
                           None, 100),
    "probe-xfs": ("test_bench_filesystems", "test_probe_whole_volume", "xfs", 200),
    "probe-btrfs": ("test_bench_filesystems", "test_probe_whole_volume", "btrfs", 200),
    "probe-luks2": ("test_bench_filesystems", "test_probe_whole_volume", "luks2", 200),
    "ntfs-system-hive": ("test_bench_ntfs", "test_open_lookup_read_system_hive", None, 20),
    "system-hive-facts": ("test_bench_regf", "test_system_hive_facts", None, 50),
}
OPERATIONS.update({op: (f"{test}[{param}]" if param else test, rounds)
                   for op, (_, test, param, rounds) in OWN_BENCHMARKS.items()})


class Rounds:
    """Stands in for pytest-benchmark's ``benchmark`` fixture: runs the callable it is
    given 2 + ``rounds`` times (two warm-ups, as :func:`child` does) and returns the
    last result, so the test's own assertions still hold."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def __call__(self, fn: Callable[..., object], *args: object, **kwargs: object) -> object:
        for _ in range(1 + self.rounds):
            fn(*args, **kwargs)
        return fn(*args, **kwargs)


def fixtures(op: str) -> dict[str, object]:
    """The fixture values ``op``'s test takes (made into ``images.CACHE`` when missing)."""
    import images

    module, _, param, _ = OWN_BENCHMARKS[op]
    if module == "test_bench_core":
        return {"big": images.big_qcow2()}
    if module == "test_bench_vdi":
        return {"big": images.big_vdi()}
    if module == "test_bench_vmdk":
        return {"big": images.big_vmdk()}
    if module == "test_bench_filesystems":
        from test_bench_filesystems import gpt_disk, whole_volume

        if param is None:
            return {"gpt": gpt_disk()}
        whole_volume(param)
        return {"name": param}
    if module == "test_bench_ntfs":
        from test_bench_ntfs import ntfs_qcow2

        ntfs_qcow2()
        return {}
    hive = images.CACHE / "SYSTEM_WIN_10_1709.hive"
    if not hive.exists():  # parent side; this tree's module, which the child may not import
        from test_bench_regf import system_hive

        system_hive()
    return {"system_bytes": hive.read_bytes()}


def own_benchmark(op: str, rounds: int, benchmarks: Path) -> None:
    """Run ``op``'s test from the benchmark file in ``benchmarks`` (child side)."""
    import importlib.util

    module, test, _, _ = OWN_BENCHMARKS[op]
    spec = importlib.util.spec_from_file_location(f"measured_{module}",
                                                  benchmarks / f"{module}.py")
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    getattr(loaded, test)(Rounds(rounds), **fixtures(op))


#: The library image each ``open-info-library-`` operation reads (the first of each
#: template: the library cycles qcow2, VHD, raw).
LIBRARY_IMAGES = {"qcow2": "img0000.qcow2", "vhd": "img0001.vhd", "raw": "img0002.raw"}


def image_of(op: str) -> Path:
    """The image ``op`` reads, made by the benchmark module that times it."""
    import images

    if op in OWN_BENCHMARKS:
        fixtures(op)
        return Path(".")  # the test finds its own input

    if op.startswith(("check-", "judge-", "text-", "json-")):
        from test_bench_windows import windows_qcow2

        return windows_qcow2("bios")
    if op.startswith("windows-"):
        from test_bench_windows import windows_qcow2

        return windows_qcow2(op.removeprefix("windows-"))
    if op in ("layout", "open-and-layout"):
        from test_bench_layout import gpt_qcow2

        return gpt_qcow2()
    if op.startswith("vhdx-"):
        return images.big_vhdx()
    if op.startswith("linux-"):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from helpers.linux_images import linux_disks
        from test_bench_linux import plain_qcow2

        built = linux_disks()["ext4-bios"]
        return built if op.endswith("-compressed") else plain_qcow2(built)
    if op == "initramfs-gzip" or op.startswith("inflate-"):
        from test_bench_linux_initramfs import debian_initramfs

        found = debian_initramfs()
        if found is None:
            raise SystemExit("the Debian initramfs is not in the cache (see "
                             "test_bench_linux_initramfs.py)")
        return found
    if op.startswith("open-info-library-"):
        from test_bench_scan import scan_library

        return scan_library() / LIBRARY_IMAGES[op.removeprefix("open-info-library-")]
    if op.startswith("open-info-small-"):
        return images.small_image(op.removeprefix("open-info-small-"))
    return images.small_qcow2()


def operation(op: str, path: Path) -> Callable[[], object]:
    """One round of ``op`` on ``path``, as its benchmark does it (child side)."""
    import functools

    import imgscan
    from imgscan import layout

    def info() -> object:
        with imgscan.open(path) as img:
            return img.info()

    def extents(json: bool) -> Callable[[], object]:
        def run() -> object:
            with imgscan.open(path) as img:
                emap = img.extents()
                return emap.to_qemu_json() if json else len(emap)
        return run

    if op.startswith(("check-", "judge-", "text-", "json-", "linux-judge-", "linux-check-")):
        from test_bench_profiles import check_and_render, check_image, judge, render

        from imgscan.policy import load_profiles

        profiles = load_profiles("all" if op.endswith("-all") else "huawei-ims")
        if "check-text-" in op or "check-json-" in op:  # what `imgscan check` does an image
            return functools.partial(check_and_render, path, profiles, "-json-" in op)
        if op.startswith("check-"):
            return lambda: check_image(path, profiles)
        with imgscan.open(path) as img:
            ready = img.info()
        if op.startswith(("text-", "json-")):
            checks = judge(ready, profiles)
            return lambda: render(checks, op.startswith("json-"))
        return lambda: judge(ready, profiles)
    if op == "layout":
        img = imgscan.open(path)
        disk = img.disk()
        return lambda: layout.describe(disk.read, disk.size, img.path)
    if op == "open-and-layout":
        # Before issue 12 the layout took the image itself (``of_image``).
        of_guest = getattr(layout, "of_guest", None)

        def open_layout() -> object:
            with imgscan.open(path) as img:
                if of_guest is None:
                    return layout.of_image(img)  # type: ignore[attr-defined]
                return of_guest(img.guest())
        return open_layout
    if op.startswith("vhdx-"):
        return extents(op == "vhdx-map-json")
    if op.startswith("linux-"):
        from imgscan.guest import linux

        img = imgscan.open(path)
        guest = img.guest()
        read, found = guest.read, layout.of_guest(guest)
        assert read is not None
        return lambda: linux.inspect(read, found)
    if op == "initramfs-gzip":
        from imgscan.guest.linux.initramfs import members

        data = path.read_bytes()
        return lambda: members(lambda offset, length: data[offset:offset + length],
                               len(data), str(path))
    if op.startswith("inflate-"):
        from test_bench_linux_initramfs import inflater

        inflate, data = inflater(op.removeprefix("inflate-")), path.read_bytes()
        return lambda: inflate(data)
    return info


def child(op: str, rounds: int, path: Path, inside: bool) -> None:
    if op in OWN_BENCHMARKS:
        own_benchmark(op, rounds, Path(os.environ.get(BENCHMARKS, "benchmarks")).resolve())
        return
    import functools

    run = operation(op, path)
    for _ in range(2 if inside else 2 + rounds):
        run()
    if inside:  # the only functools.reduce callgrind counts (see --inside)
        functools.reduce(lambda _, __: run(), range(rounds), None)


#: Where the child finds the benchmark files of :data:`OWN_BENCHMARKS` (default: the
#: counted tree's own ``benchmarks/``; ``--benchmarks`` runs one tree's file on another).
BENCHMARKS = "IMGSCAN_INSTRUCTIONS_BENCHMARKS"


def count(tree: Path, op: str, rounds: int, path: Path,
          benchmarks: Path | None = None, inside: bool = False) -> int:
    """Instructions callgrind counts for the child doing ``rounds`` rounds of ``op``."""
    # tests/ of this checkout: the benchmark modules' image builders (helpers).
    tests = Path(__file__).resolve().parent.parent / "tests"
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tests}", "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", BENCHMARKS: str(benchmarks or tree / "benchmarks")}
    with tempfile.TemporaryDirectory() as tmp:
        only = ["--collect-atstart=no", "--toggle-collect=functools_reduce"] if inside else []
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", *only, f"--callgrind-out-file={tmp}/out",
             sys.executable, __file__, "--child", op, str(rounds), str(path),
             *(["--inside"] if inside else [])],
            cwd=tree, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="checkout to count (default: this one)")
    parser.add_argument("--benchmarks", type=Path,
                        help="folder of the benchmark files whose tests the "
                             f"{', '.join(OWN_BENCHMARKS)} operations run (default: "
                             "the counted tree's benchmarks/)")
    parser.add_argument("--child", nargs=3, metavar=("OP", "N", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--inside", action="store_true",
                        help="count only the rounds, in one run (see the module's doc)")
    parser.add_argument("ops", nargs="*",
                        help=f"operations (default: all): {', '.join(OPERATIONS)}")
    args = parser.parse_args()
    unknown = [op for op in args.ops if op not in OPERATIONS]
    if unknown:
        parser.error(f"unknown operation(s): {', '.join(unknown)}")
    if args.child:
        op, rounds, path = args.child
        child(op, int(rounds), Path(path), args.inside)
        return
    for op in args.ops or OPERATIONS:
        benchmark, rounds = OPERATIONS[op]
        path = image_of(op)
        if args.inside and op not in OWN_BENCHMARKS:  # a benchmark test has no reduce
            per_op = count(args.tree, op, rounds, path, args.benchmarks, inside=True) // rounds
        else:
            counted = [count(args.tree, op, n, path, args.benchmarks) for n in (rounds, 0)]
            per_op = (counted[0] - counted[1]) // rounds
        print(f"{op:16} {per_op:>12,} instructions  ({benchmark}, {rounds} rounds)", flush=True)


if __name__ == "__main__":
    main()

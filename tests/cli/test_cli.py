"""The ``imgscan`` command line: output shapes, JSON Lines and exit codes."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from helpers import run_cli
from oracles import data_zero_runs, needs_qemu, qemu_info, qemu_io, qemu_map, run

from imgscan import cli
from imgscan.arguments import SUBCOMMANDS, parser
from imgscan.cli import main

SAMPLE = Path(str(resources.files("imgscan") / "samples" / "demo.qcow2"))
# Child interpreters run from here, not from the checkout, whose uncompiled
# imgscan/ would shadow the installed package.
NEUTRAL_CWD = Path(__file__).resolve().parent


def test_demo_runs_on_the_shipped_sample() -> None:
    proc = run_cli("demo")
    assert proc.returncode == 0, proc.stderr
    assert "qcow2" in proc.stdout
    assert "64 MiB (67108864 bytes)" in proc.stdout


@needs_qemu
def test_info_json_matches_qemu_img() -> None:
    proc = run_cli("info", "--json", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    oracle = qemu_info(SAMPLE)
    assert info["schema_version"] == 1
    assert info["path"] == str(SAMPLE)
    assert info["format"] == oracle["format"]
    assert info["virtual_size"] == oracle["virtual-size"]
    assert info["cluster_size"] == oracle["cluster-size"]
    assert info["file_size"] == SAMPLE.stat().st_size
    for key in ("partition_table", "partitions", "filesystem", "boot_mode", "windows"):
        assert key in info


@needs_qemu
def test_map_json_matches_qemu_img() -> None:
    proc = run_cli("map", "--json", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    assert data_zero_runs(json.loads(proc.stdout)) == data_zero_runs(qemu_map(SAMPLE))


def test_map_text_is_a_table() -> None:
    proc = run_cli("map", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["start", "length", "kind", "host", "offset", "file"]
    assert len(lines) > 1


def test_several_images_give_json_lines_and_exit_2_on_any_failure(tmp_path: Path) -> None:
    missing = tmp_path / "missing.img"
    truncated = tmp_path / "short.qcow2"
    truncated.write_bytes(SAMPLE.read_bytes()[:50])
    proc = run_cli("info", "--json", str(SAMPLE), str(missing), str(truncated))
    assert proc.returncode == 2
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(SAMPLE), str(missing), str(truncated)]
    assert "error" not in lines[0]
    assert lines[1]["error"]["type"] == "ImageError"
    assert lines[2]["error"]["type"] == "TruncatedImage"
    assert lines[2]["error"]["offset"] == 0
    assert str(truncated) in proc.stderr and "qcow2" in proc.stderr


def test_text_info_is_aligned() -> None:
    proc = run_cli("info", str(SAMPLE))
    assert proc.returncode == 0
    rows = proc.stdout.splitlines()
    assert rows[0] == str(SAMPLE)
    value_columns = {m.end() for row in rows[1:] if (m := re.match(r"  \S+(?: \S+)*\s{2,}", row))}
    assert len(value_columns) == 1, rows


def test_bad_usage_exits_2() -> None:
    assert run_cli("info").returncode == 2
    assert run_cli("frobnicate").returncode == 2


@pytest.mark.parametrize("argv", [
    ["info", "a.qcow2"], ["info", "--json", "a.qcow2", "b.vhd", "a.qcow2"], ["info", ""],
    ["check", "a.qcow2"], ["check", "--json", "a.qcow2", "b.vhd"],
    ["scan", "a"], ["scan", "--info-only", "--json", "a", "b"],
    ["scan", "--jobs", "2", "--info-only", "lib"], ["scan", "--fingerprint", "--jobs", "02", "a"],
    ["info", "--jobs", "2", "a"], ["info", "--jobs", "1", "--json", "a", "b"],
])
def test_plain_command_lines_are_read_as_argparse_reads_them(argv: list[str]) -> None:
    """The forms main() reads without argparse give argparse's namespace, attribute for
    attribute (argparse the oracle)."""
    plain = cli._plain(argv)
    assert plain is not None
    assert vars(plain) == vars(parser(argv).parse_args(argv))


@pytest.mark.parametrize("argv", [
    [], ["info"], ["info", "--json"], ["info", "a.qcow2", "--json"], ["info", "--js", "a"],
    ["info", "-j2", "a"], ["info", "-"], ["info", "--", "a"], ["check", "--jobs", "2", "a"],
    ["info", "--json", "--json", "a"], ["check", "--json", "--json", "a"],
    ["info", "a", "--external-dir", "d"], ["check", "--profile", "all", "a"],
    ["check", "a", "--junit", "r.xml"], ["map", "a"], ["--help"],
    ["scan"], ["scan", "--info-only"], ["scan", "a", "--json"], ["scan", "-j2", "a"],
    ["scan", "--jobs", "x", "a"], ["scan", "--jobs", "\uff12", "a"], ["scan", "--jobs"],
    ["scan", "--jobs", "9" * 5000, "a"], ["info", "--jobs", "1" + "0" * 9, "a"],
    ["scan", "--jobs", "2", "--jobs", "3", "a"], ["scan", "--json", "--json", "a"],
    ["scan", "--info", "a"], ["scan", "--catalog", "c.db", "a"], ["scan", "--profile", "all", "a"],
    ["scan", "--dask", "local", "a"], ["scan", "--", "a"], ["scan", "-", "a"],
    ["--version"], ["info", "--help"], ["inof", "a"], ["--json", "info", "a"],
])
def test_every_other_command_line_is_argparse_s(argv: list[str]) -> None:
    """Another option, ``--json`` after an image, an argument starting with ``-``, no
    image, another subcommand: left to argparse (its help, usage and errors)."""
    assert cli._plain(argv) is None


#: Modules `imgscan info` of one image must not import (start-up time, issue 18): the
#: judging, bulk, remote-store and HTML parts, their libraries, and standard modules the
#: info path has no use for. ``imgscan.remote`` itself is the light front every open
#: asks whether a path is a URL; its store and block reader are what cost.
NOT_ON_THE_INFO_PATH = ("imgscan.policy", "imgscan.bulk", "imgscan.remote.store",
                        "imgscan.remote.blocks", "imgscan.report.html", "imgscan.fingerprints",
                        "jinja2", "obstore", "numpy", "typing", "shutil", "dataclasses",
                        "sqlite3", "tomllib")


def _imported_by_info(argv: list[str], *flags: str,
                      env: dict[str, str] | None = None) -> set[str]:
    """The modules a child interpreter (``python FLAGS``) imports to run ``imgscan info
    ARGV``, less those it imports by itself."""
    def modules(code: str) -> set[str]:
        code += "\nprint(sorted(sys.modules), file=sys.stderr)"
        proc = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True,
                              text=True, check=False, cwd=NEUTRAL_CWD, env=env)
        assert proc.returncode == 0, proc.stderr
        return set(ast.literal_eval(proc.stderr.splitlines()[-1]))

    return modules("import sys\nfrom imgscan.cli import main\n"
                   f"assert main(['info', *{argv!r}]) == 0") - modules("import sys")


@pytest.mark.parametrize(("args", "also_not"), [
    ((), ("json", "imgscan.report.json")),
    (("--json",), ("imgscan.report.text",)),
])
def test_info_of_one_image_imports_only_what_it_uses(args: tuple[str, ...],
                                                     also_not: tuple[str, ...]) -> None:
    """A child interpreter started as the installed ``imgscan`` script starts; what a
    bare interpreter of this environment imports by itself (a site hook may) is not
    imgscan's."""
    loaded = _imported_by_info([*args, str(SAMPLE)])
    assert "imgscan.image" in loaded        # the list is the child's modules
    unwanted = [m for m in (*NOT_ON_THE_INFO_PATH, *also_not)
                if m in loaded or any(n.startswith(f"{m}.") for n in loaded)]
    assert not unwanted, f"imported on the info path: {unwanted}"


#: What `imgscan info` imports only when the command line or the image needs it (start-up,
#: issue 18): argparse (with gettext and locale) and its grammar for a command line other
#: than the plain forms `cli._plain` reads; re, enum, functools, contextlib and importlib for
#: the parts that use them; the LVM2 reader (with xxhash and bisect) for a disk with a PV;
#: the json package (``--json`` writes with its C encoder alone); the declaration modules
#: of the Linux volumes, NTFS and ISO 9660, compiled into their probes.
LAZY_ON_THE_INFO_PATH = ("imgscan.arguments", "argparse", "gettext", "locale", "re", "enum",
                         "functools", "contextlib", "importlib", "warnings",
                         "imgscan._core.lvm", "xxhash", "bisect", "json",
                         # the qcow (v1) decoder and the raw fallback for a qcow2 file, the
                         # guest roots for a disk with no volume, the stream, external
                         # file names, zlib (a GPT's and an LVM2 label's CRC) and the
                         # inflater (compressed clusters) where the image has none
                         "imgscan._core.qcow", "imgscan._core.raw", "imgscan.guest.roots",
                         "imgscan._core.stream", "imgscan._core.paths", "zlib",
                         "imgscan._core.inflate",
                         # the Linux volumes', NTFS's and ISO 9660's declarations (the
                         # probes' constants are compiled in from them: compiled_layouts.py)
                         "imgscan._core.c_ext4", "imgscan._core.c_xfs",
                         "imgscan._core.c_btrfs", "imgscan._core.c_luks",
                         "imgscan._core.c_lvm", "imgscan._core.c_ntfs",
                         "imgscan._core.c_iso9660", "imgscan._core.probes.compiled_layouts",
                         # FAT's, the MBR's and the GPT's (the partition reader's, the FAT
                         # probe's and the registry's MBR probe's too; a GPT imports c_gpt)
                         "imgscan._core.c_fat", "imgscan._core.c_mbr", "imgscan._core.c_gpt",
                         # the partition type names (a disk with partitions), the tar
                         # header (a package), GUID text in Python (BitLocker; GPTs print
                         # theirs in C) and the remote reader's description (a URL)
                         "imgscan._core.parttypes", "imgscan._core.c_tar",
                         "imgscan._core.guid", "imgscan.remote",
                         # qcow2's declarations (the reader's header and extension layout
                         # is compiled in; a feature table, bitmaps, a crypto header or
                         # snapshots import them), with cstruct and struct
                         "imgscan._core.c_qcow2", "imgscan._core.cstruct", "struct",
                         # mmap (a view of at least 256 KiB maps the file), errno (its
                         # ENXIO is compiled in) and CRC-32C (an ext4 or Btrfs superblock's
                         # checksum)
                         "mmap", "errno", "imgscan._core.crc32c",
                         # the version (`imgscan info` never prints it)
                         "imgscan.version")


@needs_qemu
@pytest.mark.parametrize("args", [(), ("--json",)])
def test_info_of_a_blank_qcow2_leaves_the_lazy_modules_unimported(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    """``python -S`` with imgscan's and its dependencies' directories on PYTHONPATH, so
    that no site hook of this environment imports any of them first (this sandbox's
    .pth imports re, enum and more at every start; a clean install has none). The JSON
    line is written by the json package's C encoder alone (``_json``): neither the
    package nor its re, enum and functools."""
    image = tmp_path / "blank.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", image, "64M")
    import site

    import imgscan
    path = [str(Path(imgscan.__file__).resolve().parent.parent), *site.getsitepackages()]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(path)}

    loaded = _imported_by_info([*args, str(image)], "-S", env=env)
    assert "imgscan.image" in loaded and "imgscan._core.qcow2" in loaded
    unwanted = [m for m in LAZY_ON_THE_INFO_PATH
                if m in loaded or any(n.startswith(f"{m}.") for n in loaded)]
    assert not unwanted, f"imported by `imgscan info` of a blank qcow2: {unwanted}"


@pytest.fixture(scope="module")
def many_images(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """An image of each format qemu-img writes, some named twice, and paths that fail
    each their own way (missing, truncated, a directory), between them: more than the
    pool's batches, so that its two workers answer out of order."""
    work = tmp_path_factory.mktemp("many")
    paths = [str(SAMPLE)]
    for fmt, opts in (("qcow2", []), ("qcow", []), ("vpc", []),
                      ("vpc", ["-o", "subformat=fixed"]), ("vhdx", []), ("vmdk", []),
                      ("vdi", []), ("qed", []), ("raw", [])):
        out = work / f"disk{len(paths)}.{fmt}"
        run("qemu-img", "convert", "-f", "qcow2", "-O", fmt, *opts, SAMPLE, out)
        paths.append(str(out))
    truncated = work / "short.qcow2"
    truncated.write_bytes(SAMPLE.read_bytes()[:50])
    paths[3:3] = [str(work / "missing.img"), str(truncated), str(work), paths[1]]
    paths += [paths[2], str(SAMPLE)]
    return paths


@needs_qemu
@pytest.mark.parametrize("as_json", [True, False])
def test_info_of_many_images_keeps_their_order(many_images: list[str], as_json: bool) -> None:
    """The pool's output (``--jobs 2``) is, byte for byte, what reading the images one
    by one in process gives (``--jobs 1``), and the lines follow the arguments."""
    fmt = ("--json",) if as_json else ()
    pooled = run_cli("info", *fmt, "--jobs", "2", *many_images)
    one_by_one = run_cli("info", *fmt, "--jobs", "1", *many_images)
    assert pooled.returncode == one_by_one.returncode == 2
    assert pooled.stdout == one_by_one.stdout
    assert pooled.stderr == one_by_one.stderr
    if as_json:
        lines = [json.loads(line) for line in pooled.stdout.splitlines()]
        assert [line["path"] for line in lines] == many_images
        errors = {line["path"]: line["error"]["type"] for line in lines if "error" in line}
        assert sorted(errors.values()) == ["ImageError", "ImageError", "TruncatedImage"]


@needs_qemu
def test_info_of_many_images_is_each_image_alone(many_images: list[str]) -> None:
    """Each JSON line of the pool's output is what ``imgscan info --json`` prints for
    that image alone, and its error on standard error the same."""
    pooled = run_cli("info", "--json", "--jobs", "2", *many_images)
    alone = [run_cli("info", "--json", path) for path in many_images]
    assert pooled.stdout == "".join(proc.stdout for proc in alone)
    assert pooled.stderr == "".join(proc.stderr for proc in alone)


@needs_qemu
def test_info_moves_to_the_pool_once_the_images_prove_work_enough(
        many_images: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """By default the first images are read here and the rest by the pool when it pays
    (here after the two that give the first mean: its thresholds made 0); the output is
    still the one-by-one output."""
    pooled = []
    real = cli._info_pooled

    def spy(paths: list[str], *args: Any) -> Iterator[cli.InfoResult]:
        pooled.append(list(paths))
        return real(paths, *args)

    assert main(["info", "--json", "--jobs", "1", *many_images]) == 2
    one_by_one = capsys.readouterr()
    monkeypatch.setattr(cli, "INFO_POOL_AFTER", 0.0)
    monkeypatch.setattr(cli, "INFO_POOL_COST", 0.0)
    monkeypatch.setattr("imgscan.bulk.runner.cores", lambda: 2)    # even on one core
    monkeypatch.setattr("os.getloadavg", lambda: (1.0, 1.0, 1.0))  # even on a busy one
    monkeypatch.setattr(cli, "_info_pooled", spy)
    # as in a fresh process: another test of this session may have read an object store
    # (which keeps info from forking), and these images are files
    monkeypatch.delitem(sys.modules, "obstore", raising=False)
    assert main(["info", "--json", *many_images]) == 2
    assert pooled == [many_images[2:]]
    assert capsys.readouterr() == one_by_one


@needs_qemu
def test_info_writes_lines_while_a_slow_image_is_read(many_images: list[str],
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``imgscan info`` by the pool writes the images answered (in argument order)
    when it waits for a worker (the run's ``waiting`` hook), not at the end: the lines
    before a slow image are out while it is still being read."""
    from helpers.scans import Watched

    from imgscan.bulk import worker

    images = list(dict.fromkeys(p for p in many_images if "/disk" in p))[:4]
    watched = Watched(tmp_path, images[-1], [json.dumps(p) for p in images[:-1]])
    real = worker.info_of

    def held(path: str, options: worker.Options) -> dict[str, Any]:
        watched.hold(path)
        return real(path, options)

    monkeypatch.setattr(worker, "info_of", held)
    monkeypatch.setattr(sys, "stdout", watched)
    assert main(["info", "--json", "--jobs", "2", *images]) == 0
    assert watched.early
    assert [json.loads(line)["path"] for line in watched.text.splitlines()] == images


def test_info_interrupted_writes_the_images_read(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C during ``imgscan info``: the lines of the images read are written (the
    pool yields several answers at once, kept until it next waits)."""
    def two_then_ctrl_c(paths: list[str], *args: Any) -> Iterator[cli.InfoResult]:
        for path in paths[:2]:
            yield path, True, f"line of {path}"
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_info_results", two_then_ctrl_c)
    assert main(["info", "--json", "a", "b", "c"]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().out == "line of a\nline of b\n"


@needs_qemu
def test_info_asks_whether_the_pool_pays_once_per_interval(
        many_images: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Where the pool does not pay, the images stay here, and it is asked again only
    after INFO_POOL_AFTER more seconds of CPU, not at every image (each question reads
    the load average): with a clock that gains 1 ms a look and a 3 ms interval, about
    every third image."""
    assert main(["info", "--json", "--jobs", "1", *many_images]) == 2
    one_by_one = capsys.readouterr()
    asked: list[float] = []
    clock = iter(range(1000))
    monkeypatch.setattr("time.process_time", lambda: next(clock) * 1e-3)
    monkeypatch.setattr(cli, "INFO_POOL_AFTER", 3e-3)

    def never(mean: float) -> bool:
        asked.append(mean)
        return False

    monkeypatch.setattr(cli, "_pool_pays", never)
    assert main(["info", "--json", *many_images]) == 2
    assert capsys.readouterr() == one_by_one
    assert 2 <= len(asked) <= len(many_images) // 3


@pytest.mark.parametrize(("cores", "load", "mean", "pays"), [
    (1, 1.0, 1.0, False),               # no second core
    (2, 1.0, 0.05e-3, False),           # images read and written in 50 us, 2 cores
    (2, 1.0, 0.1e-3, True),             # the 1000-image library's 1 MiB images, 2 cores
    (2, 1.0, 1e-3, True),               # a Windows guest's facts
    (16, 1.0, 0.05e-3, True),           # tiny images, many cores
    (2, 1.5, 0.1e-3, False),            # the library, half the other core busy
    (2, 1.5, 1e-3, True),               # a Windows guest: half a core pays for it
    (2, 12.0, 1e-3, False),             # every core busy
    (16, 12.0, 0.05e-3, True),          # a few cores free of many
])
def test_the_pool_is_used_where_it_pays(monkeypatch: pytest.MonkeyPatch, cores: int,
                                        load: float, mean: float, pays: bool) -> None:
    """Only the cores that the load average (this process included) leaves free count."""
    monkeypatch.setattr("imgscan.bulk.runner.cores", lambda: cores)
    monkeypatch.setattr("os.getloadavg", lambda: (load, load, load))
    assert cli._pool_pays(mean) is pays


def test_no_load_average_is_a_quiet_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> tuple[float, float, float]:
        raise OSError("no /proc/loadavg")

    monkeypatch.setattr("imgscan.bulk.runner.cores", lambda: 2)
    monkeypatch.setattr("os.getloadavg", unreadable)
    assert cli._pool_pays(0.1e-3) and not cli._pool_pays(0.05e-3)


def test_info_rejects_no_jobs() -> None:
    proc = run_cli("info", "--jobs", "0", str(SAMPLE))
    assert proc.returncode == 2 and "--jobs" in proc.stderr


def test_help_lists_every_subcommand() -> None:
    """The parser is built with the one subcommand named; without one, all are there."""
    for args in (("--help",), ("-h", "info")):     # a subcommand after -h is not named
        proc = run_cli(*args)
        assert proc.returncode == 0
        choices = re.search(r"\{([a-z,]+)\}", proc.stdout)     # argparse's {info,map,...}
        assert choices is not None and set(choices[1].split(",")) == set(SUBCOMMANDS)
    typo = run_cli("inof", str(SAMPLE))
    assert typo.returncode == 2 and "invalid choice" in typo.stderr


def test_main_returns_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json", str(SAMPLE)]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "qcow2"


@needs_qemu
def test_map_json_equals_qemu_img_entry_for_entry(tmp_path: Path) -> None:
    """Uncompressed qcow2: the same entries, keys and values as qemu-img (plus ``compressed``)."""
    path = tmp_path / "plain.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", path, "64M")
    qemu_io(path, "write -P 0x11 0 192k", "write -z 1M 128k", "write -P 0x22 5M 64k",
            "write -P 0x33 63M 1M")
    proc = run_cli("map", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)
    assert all(entry.pop("compressed") is False for entry in ours)
    assert ours == qemu_map(path)

"""The ``imgscan`` command: arguments in, reports out, exit codes from the contract.

Exit codes: 0 every image was read (and, for ``check``, no rule failed); 1
some rule failed; 2 some image could not be read, or bad usage (argparse's own
convention). Decoding lives in :mod:`imgscan.image`, judging in
:mod:`imgscan.policy` (imported only by ``check``, ``profiles`` and ``demo``:
``info`` start-up stays small), rendering in :mod:`imgscan.report`; this module
only wires them.

It is one module of about 900 lines, over the house's 800, because it holds one short
pair per subcommand (its arguments, then the call into the package that does the work)
for a dozen subcommands, with the exit codes and the error printing they share; a
module per subcommand would spread that shared wiring without any part doing more.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import ImageError, error_object, error_object_of, error_of
from .image import Image
from .vocabulary import STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from types import ModuleType
    from typing import Any

    from ._core.fsapi import FileSystem
    from .bulk.catalog import Catalog, Filters

    Subparsers = argparse._SubParsersAction["_Parser"]

EXIT_OK = 0
EXIT_RULE_FAILED = 1
EXIT_UNREADABLE = 2
#: A scan stopped by Ctrl-C, or any command whose reader closed the pipe
#: (128 + SIGINT, 128 + SIGPIPE, as a shell reports them).
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
DEMO_SAMPLE = "demo.qcow2"
#: ``imgscan cat`` writes a file in pieces of this many bytes (at most FS_MAX_FILE_READ).
CAT_PIECE = 16 << 20


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter, told the terminal's width as shutil.get_terminal_size
    would say it, without importing shutil (and the bz2 and lzma modules it imports):
    argparse makes a formatter for every option it is given, not only for ``--help``."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns())


def _columns() -> int:
    """``$COLUMNS``, else the width of the terminal on standard output, else 80."""
    import os
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help formatter is :class:`_HelpFormatter` (its
    subcommands' parsers too: argparse makes them of the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The command line's parser, with the subcommand ``argv`` names (when it names
    one) alone: each subcommand's options cost start-up time (argparse builds a help
    formatter per option), and ``imgscan info IMAGE`` should pay for its own only.
    Without a known subcommand (``--help``, a typo) every subcommand is there."""
    parser = _Parser(
        prog="imgscan",
        description="Inspect VM disk images offline: what they are and what they hold.",
    )
    parser.add_argument("--version", action="version", version=f"imgscan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    named = next((a for a in argv if not a.startswith("-")), None)
    for name, add in SUBCOMMANDS.items():
        if named not in SUBCOMMANDS or named == name:
            add(sub)
    return parser


def _image_command(sub: Subparsers, name: str, help: str,
                   many: bool) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
    p.add_argument("images", nargs="+" if many else 1, metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--external-dir", metavar="DIR",
        help="allow opening backing / data files named by the image, inside DIR only",
    )
    _endpoint_argument(p)
    if many:
        _verify_manifest_argument(p)
    return p


def _info_arguments(sub: Subparsers) -> None:
    p = _image_command(sub, "info", "what each image is (the JSON contract's info object)",
                       many=True)
    p.add_argument("--jobs", "-j", type=int, metavar="N",
                   help="read the images with N worker processes, as `scan` does (1: one "
                   "by one in this process; default: in this process, and the rest with "
                   "every core once they prove to be work enough for a pool)")


def _map_arguments(sub: Subparsers) -> None:
    _image_command(sub, "map", "the extent map, like qemu-img map", many=False)


def _check_arguments(sub: Subparsers) -> None:
    check = _image_command(sub, "check", "judge each image against an import profile",
                           many=True)
    check.add_argument("--profile", metavar="NAME|FILE[,...]|all",
                       help="a built-in profile (default huawei-ims; see `imgscan "
                       "profiles`) or a TOML file that extends one; several separated by "
                       "commas, or all (one per cloud), give one matrix report per image")
    check.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    check.add_argument("--html", metavar="FILE",
                       help="also write the HTML report of these images to FILE")
    check.add_argument("--storage-class", metavar="CLASS",
                       help="the OBS storage class of the uploaded object (decides the "
                       "storage-class rule, otherwise manual)")


ENDPOINT_HELP = ("the S3-compatible endpoint of s3:// and obs:// URLs (as AWS_ENDPOINT_URL; "
                 "set AWS_ALLOW_HTTP=true for a plain-http one)")


def _verify_manifest_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verify-manifest", action="store_true",
                   help="OVA / OVF packages: hash every file the manifest (.mf) lists and "
                   "report each mismatch, and verify the certificate's (.cert) signature "
                   "of the manifest (reads the whole package)")


def _endpoint_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint-url", metavar="URL", help=ENDPOINT_HELP)


def _info(paths: Sequence[str], as_json: bool, external_dir: str | None,
          verify_manifest: bool = False, jobs: int | None = None) -> int:
    """Each image's info object, in the order of ``paths`` (see :func:`_info_results`)."""
    if jobs is not None and jobs < 1:
        print("imgscan: --jobs must be at least 1", file=sys.stderr)
        return EXIT_UNREADABLE
    render: Callable[[Mapping[str, Any]], str]
    if as_json:
        from .report.json import json_line
        render = json_line
    else:
        from .report.text import info_text
        render = info_text
    status = EXIT_OK
    try:
        results = _info_results(paths, jobs, external_dir, verify_manifest)
        for i, (path, read, obj) in enumerate(results):
            if not read:
                status = EXIT_UNREADABLE
                print(f"imgscan: {obj['message']}", file=sys.stderr)
                if as_json:
                    print(render(error_object_of(path, obj)))
                continue
            if i and not as_json:
                print()
            print(render(obj))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED     # the pool's workers are stopped by _info_pooled
    return status


#: Seconds of reading images in the process after which ``imgscan info`` considers
#: handing the rest to the scan's worker pool: about twice what starting the pool costs
#: (importing it, forking the workers, each worker's own first decoder imports).
INFO_POOL_AFTER = 0.02
#: Seconds of CPU the pool adds to each image (marshal, the pipes, the parent's loop):
#: about 0.13 ms measured on the 1000-image library (benchmarks/README.md, issue 18).
INFO_POOL_COST = 150e-6


def _info_results(paths: Sequence[str], jobs: int | None, external_dir: str | None,
                  verify_manifest: bool) -> Iterator[InfoResult]:
    """An :data:`InfoResult` per path, in order. ``jobs`` 1: all read here; more: all
    by a pool of that many workers; None (the default): read here until that has taken
    INFO_POOL_AFTER seconds of CPU, then the rest by a pool of every core when it pays:
    at least two images left, as much work again at the mean so far, and that mean
    well above what the pool adds to an image (:func:`_pool_pays`). So a few images, or
    many tiny ones on few cores, are never slowed down by a pool."""
    if jobs is not None and jobs > 1:
        yield from _info_pooled(paths, jobs, external_dir, verify_manifest)
        return
    import time
    start = 0.0
    for done, path in enumerate(paths):
        left = len(paths) - done
        # CPU time, not wall: on a busy machine the wall time of an image grows while
        # it waits for a core, which would make a pool look worth it just when no
        # core is free. Counted from the second image on: the first pays the decoders'
        # imports, the pool's workers pay them again anyway.
        if done == 1:
            start = time.process_time()
        elapsed = time.process_time() - start
        if jobs is None and done > 1 and elapsed >= INFO_POOL_AFTER and left >= 2 \
                and elapsed / (done - 1) * left >= INFO_POOL_AFTER \
                and _pool_pays(elapsed / (done - 1)) and "obstore" not in sys.modules:
            # (A process that has read an object store cannot fork workers that use
            # it: its client's threads do not survive the fork; see bulk.runner.)
            yield from _info_pooled(paths[done:], None, external_dir, verify_manifest)
            return
        yield from _info_each([path], external_dir, verify_manifest)


def _pool_pays(mean: float) -> bool:
    """Whether images of ``mean`` seconds each are read sooner by a pool of every core:
    with n cores an image costs (mean + INFO_POOL_COST) / n there, against mean here,
    so the pool wins from mean > INFO_POOL_COST / (n - 1). Asked for three times that:
    the cores may be busy with other work, and the mean of the first images carries
    their formats' first imports (0.45 ms on 2 cores: the library's 1 MiB images,
    0.22 ms, stay here; benchmarks/README.md, issue 18)."""
    from .bulk.runner import cores
    n = cores()
    return n > 1 and mean >= 3 * INFO_POOL_COST / (n - 1)


#: ``(path, True, info object)``, or ``(path, False, error member)``.
InfoResult = tuple[str, bool, "dict[str, Any]"]


def _info_each(paths: Sequence[str], external_dir: str | None,
               verify_manifest: bool) -> Iterator[InfoResult]:
    """An :data:`InfoResult` per path, read here one by one."""
    for path in paths:
        try:
            with Image(path, external_dir=external_dir,
                       verify_manifest=verify_manifest) as img:
                info = img.info()
        except ImageError as exc:
            yield path, False, error_of(exc)
            continue
        yield path, True, info


def _info_pooled(paths: Sequence[str], jobs: int | None, external_dir: str | None,
                 verify_manifest: bool) -> Iterator[InfoResult]:
    """As :func:`_info_each`, read by the scan's pool: results arrive as the workers
    finish and are put back in the order of ``paths``."""
    from .bulk.runner import read_each

    #: Where each path stands in ``paths`` (a path named twice stands twice).
    places: dict[str, list[int]] = {}
    for i, path in reversed(list(enumerate(paths))):
        places.setdefault(path, []).append(i)
    early: dict[int, InfoResult] = {}
    shown = 0
    with read_each(paths, jobs=jobs, external_dir=external_dir,
                   verify_manifest=verify_manifest) as run:
        for result in run:
            obj = result.info if result.status == "scanned" else result.error
            assert obj is not None, "a scanned result has its info, an error its member"
            early[places[result.path].pop()] = (result.path, result.status == "scanned", obj)
            while shown in early:
                yield early.pop(shown)
                shown += 1


def _map(path: str, as_json: bool, external_dir: str | None) -> int:
    try:
        with Image(path, external_dir=external_dir) as img:
            extents = img.extents()
            if as_json:
                extents.write_qemu_json(sys.stdout.buffer, img.backing_file is not None)
                sys.stdout.buffer.write(b"\n")
            else:
                from .report.text import map_text
                print(map_text(extents))
    except ImageError as exc:
        print(f"imgscan: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


def _check(paths: Sequence[str], as_json: bool, external_dir: str | None,
           profile_spec: str | None, junit: str | None, storage_class: str | None,
           verify_manifest: bool = False, html: str | None = None) -> int:
    """Each image read once and judged by every profile of ``--profile`` (one name, a
    comma-separated list, or ``all``): one report per image, a matrix for several;
    ``html``: also the HTML page of every check and error."""
    from .policy import ProfileError, load_profiles
    from .policy import checks as judge
    from .report.json import checks_json
    from .report.text import check_text, matrix_text

    try:
        profiles = load_profiles(profile_spec)
    except ProfileError as exc:
        print(f"imgscan: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    html_report = _html_module() if html else None
    if html and html_report is None:
        return EXIT_UNREADABLE
    status = EXIT_OK
    checks: list[dict[str, Any]] = []
    # (path, error member) of each image that could not be read: the JUnit report takes
    # the message, the HTML page the whole member.
    errors: list[tuple[str, dict[str, Any]]] = []
    reports = 0
    for path in paths:
        try:
            with Image(path, external_dir=external_dir,
                       verify_manifest=verify_manifest) as img:
                info = img.info()
        except ImageError as exc:
            status = EXIT_UNREADABLE
            errors.append((path, error_of(exc)))
            print(f"imgscan: {exc}", file=sys.stderr)
            if as_json:
                from .report.json import json_line
                print(json_line(error_object(path, exc)))
            continue
        results = judge(info, profiles, storage_class)
        checks += results
        if any(r["verdict"] == "fail" for r in results) and status == EXIT_OK:
            status = EXIT_RULE_FAILED
        if as_json:
            from .report.json import checks_json
            print(checks_json(results))
        else:
            if reports + len(errors) > 0:
                print()
            print(check_text(results[0]) if len(results) == 1 else matrix_text(results))
        reports += 1
    if junit:
        from .report.junit import junit_xml
        try:
            with open(junit, "wb") as out:
                out.write(junit_xml(checks, ((p, e["message"]) for p, e in errors)))
        except OSError as exc:
            print(f"imgscan: {junit}: cannot write the JUnit report: {exc.strerror}",
                  file=sys.stderr)
            return EXIT_UNREADABLE
    if html and html_report is not None and _write_html(
            html, html_report.check_report(checks, errors)) != EXIT_OK:
        return EXIT_UNREADABLE
    return status


def _profiles() -> int:
    from .policy import builtin_profiles, load_profile
    from .report.profiles import profiles_text

    print(profiles_text((name, load_profile(name)) for name in builtin_profiles()))
    return EXIT_OK


def _demo() -> int:
    """``check`` on the shipped sample. The sample fails a rule on purpose, so the
    demo returns 0 once the report is printed: it demonstrates, it does not gate."""
    from importlib import resources

    from .report.profiles import DEMO_INTRO, DEMO_OUTRO

    sample = resources.files("imgscan") / "samples" / DEMO_SAMPLE
    with resources.as_file(sample) as path:
        print(DEMO_INTRO)
        status = _check([str(path)], False, None, None, None, None)
    print(DEMO_OUTRO)
    return EXIT_OK if status in (EXIT_OK, EXIT_RULE_FAILED) else status


# -- scan ----------------------------------------------------------------------
def _scan_arguments(p: argparse.ArgumentParser) -> None:
    from . import limits

    p.description = ("Find the images under each PATH (by content: container signatures, "
                     "partition tables, filesystems) and read them in parallel.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files or directories, or s3://BUCKET/PREFIX/ (every object)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", "-j", type=int, metavar="N",
                       help="worker processes (default: all cores)")
    where.add_argument("--dask", metavar="ADDRESS",
                       help="scan on the Dask cluster whose scheduler is at ADDRESS "
                       "(tcp://HOST:8786), or on a local one started for the scan "
                       "(`local`, `local:N` for N worker processes); needs imgscan[dask]")
    judge = p.add_mutually_exclusive_group()
    judge.add_argument("--profile", metavar="NAME|FILE[,...]|all",
                       help="judge each image with this profile (default huawei-ims), or "
                       "with several separated by commas, or every cloud's (`all`), from "
                       "its facts read once")
    judge.add_argument("--info-only", action="store_true",
                       help="read facts only, judge nothing")
    p.add_argument("--catalog", nargs="?", const="imgscan.db", metavar="FILE",
                   help="record results in this SQLite catalog (default imgscan.db; put "
                   "it after the paths) and skip files unchanged since the last scan")
    p.add_argument("--json", action="store_true", help="one JSON line per image")
    p.add_argument("--fingerprint", action="store_true",
                   help="also compute each image's content fingerprint")
    p.add_argument("--time-limit", type=float, metavar="S", default=limits.SCAN_TIME_LIMIT,
                   help="seconds one image may take (default %(default)g)")
    p.add_argument("--memory-limit", type=int, metavar="MIB",
                   default=limits.SCAN_MEMORY_LIMIT >> 20,
                   help="MiB of address space a worker may add (default %(default)d; 0: none)")
    p.add_argument("--external-dir", metavar="DIR",
                   help="allow opening backing / data files named by an image, inside DIR only")
    _verify_manifest_argument(p)
    _endpoint_argument(p)


def _scan(args: argparse.Namespace) -> int:
    from .bulk.scan import scan
    from .report.scan import ScanReport

    if (args.jobs is not None and args.jobs < 1) or args.time_limit <= 0 \
            or args.memory_limit < 0:
        print("imgscan: --jobs and --time-limit must be positive, --memory-limit not "
              "negative", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        run = scan(args.paths, jobs=args.jobs, profile=args.profile,
                   info_only=args.info_only, fingerprint=args.fingerprint,
                   catalog=args.catalog, time_limit=args.time_limit,
                   memory_limit=(args.memory_limit << 20) or None,
                   external_dir=args.external_dir, verify_manifest=args.verify_manifest,
                   cluster=args.dask)
    except ModuleNotFoundError as exc:
        if args.dask is None or exc.name not in ("dask", "distributed"):
            raise
        print("imgscan: --dask needs Dask: pip install 'imgscan[dask]'", file=sys.stderr)
        return EXIT_UNREADABLE
    except Exception as exc:
        if not _scan_setup_error(exc):
            raise
        print(f"imgscan: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    report = ScanReport(sys.stdout, sys.stderr, args.json)
    if run.dashboard:
        print(f"imgscan: the Dask dashboard: {run.dashboard}", file=sys.stderr)
    try:
        with run:
            for result in run:
                report.add(result)
                report.progress(run.skipped)
        report.finish(run.skipped, run.interrupted)
    except KeyboardInterrupt:
        # The workers are stopped and the catalog closed by `with run`.
        report.finish(run.skipped, interrupted=True)
    except BrokenPipeError:
        # The reader went away (`| head`): the scan stops as interrupted (`with run`).
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        # The catalog failed mid-scan (disk full, locked past the busy timeout): the
        # workers are stopped by `with run`; what was committed stays.
        if not _scan_setup_error(exc):
            raise
        from .bulk.runner import ClusterError
        if isinstance(exc, ClusterError):
            print(f"imgscan: {exc}; the scan stopped (the catalog keeps what was "
                  "recorded)", file=sys.stderr)
        else:
            print(f"imgscan: {args.catalog}: the catalog failed: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if run.interrupted:
        return EXIT_INTERRUPTED
    if report.errors:
        return EXIT_UNREADABLE
    return EXIT_RULE_FAILED if report.failed else EXIT_OK


def _scan_setup_error(exc: Exception) -> bool:
    """Whether ``exc`` is the user's to fix (a profile, a catalog, a cluster), not a bug.

    Imported only now: an ``--info-only`` scan without a catalog loads neither.
    """
    import sqlite3

    from .bulk.catalog import CatalogError
    from .bulk.runner import ClusterError
    from .policy import ProfileError
    return isinstance(exc, (ProfileError, CatalogError, ClusterError, sqlite3.Error))


# -- catalog -------------------------------------------------------------------


def _rule_spec(spec: str) -> tuple[str, str]:
    """``--rule ID[:STATUS]`` -> ``(ID, STATUS)``, STATUS ``fail`` when left out."""
    rule, _, status = spec.partition(":")
    status = status or "fail"
    if not rule or status not in STATUSES:
        raise argparse.ArgumentTypeError(
            f"{spec!r}: expected ID[:STATUS], STATUS one of {', '.join(STATUSES)}")
    return rule, status


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a fraction in (0, 1]")
    return value


def _catalog_parents() -> tuple[_Parser, _Parser]:
    """The options every catalog query takes (``--catalog``), and the filters of
    ``catalog list`` / ``export`` and ``report``."""
    common = _Parser(add_help=False)
    common.add_argument("--catalog", metavar="FILE", default="imgscan.db",
                        help="the catalog a scan wrote (default: imgscan.db here)")
    filters = _Parser(add_help=False)
    group = filters.add_argument_group("filters (all must hold)")
    group.add_argument("--verdict", choices=("pass", "warn", "fail"))
    group.add_argument("--rule", metavar="ID[:STATUS]", type=_rule_spec,
                       help="the rule's result has STATUS (default fail)")
    group.add_argument("--format", help="container format, e.g. qcow2")
    group.add_argument("--boot-mode", choices=("bios", "uefi", "hybrid", "unknown"))
    group.add_argument("--status", choices=("scanned", "error", "missing"),
                       help="default: every image still present (not missing)")
    group.add_argument("--error-type", metavar="TYPE",
                       help="e.g. CorruptImage, Timeout, WorkerCrashed")
    return common, filters


def _catalog_arguments(p: argparse.ArgumentParser) -> None:
    common, filters = _catalog_parents()
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="catalog_command", required=True, metavar="QUERY")
    sub.add_parser("stats", parents=[common, json_flag],
                   help="counts per status, verdict, format, boot mode, rule; the last scan")
    sub.add_parser("list", parents=[common, filters, json_flag],
                   help="the images matching the filters, one per line")
    export = sub.add_parser("export", parents=[common, filters],
                            help="write the images as CSV (flat columns) or JSON Lines "
                            "(with their info, check and rules)")
    export.add_argument("--to", choices=("csv", "jsonl"), required=True)
    export.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    dups = sub.add_parser("duplicates", parents=[common, json_flag],
                          help="images with the same fingerprint, and pairs sharing most "
                          "of their chunks")
    dups.add_argument("--min-shared", type=_fraction, default=0.5, metavar="FRACTION",
                      help="pairs sharing at least this fraction of the smaller image's "
                      "non-zero chunks (default 0.5)")


def _filters(args: argparse.Namespace) -> Filters:
    """The catalog filters the command line gave (none for ``stats``, ``duplicates``)."""
    from .bulk.catalog import Filters

    rule, rule_status = getattr(args, "rule", None) or (None, "fail")
    return Filters(verdict=getattr(args, "verdict", None), rule=rule,
                   rule_status=rule_status, format=getattr(args, "format", None),
                   boot_mode=getattr(args, "boot_mode", None),
                   status=getattr(args, "status", None),
                   error_type=getattr(args, "error_type", None))


def _unknown_rule(catalog: Catalog, filters: Filters) -> bool:
    """Whether ``--rule`` names a rule neither imgscan nor the catalog knows (said on
    stderr): a typo must not pass for "no image fails it"."""
    from .policy.rules import RULES

    rule = filters.rule
    if rule is None or rule in RULES or rule in catalog.rule_ids():
        return False
    print(f"imgscan: unknown rule {rule!r} (see `imgscan profiles`)", file=sys.stderr)
    return True


def _catalog(args: argparse.Namespace) -> int:
    import json
    import sqlite3

    from .bulk.catalog import Catalog, CatalogError
    from .report import catalog as report

    filters = _filters(args)
    try:
        with Catalog(args.catalog, create=False) as catalog:
            if _unknown_rule(catalog, filters):
                return EXIT_UNREADABLE
            if args.catalog_command == "stats":
                stats = catalog.stats()
                print(json.dumps(stats) if args.json else report.stats_text(stats))
            elif args.catalog_command == "list":
                if args.json:
                    report.json_lines(catalog.images(filters), sys.stdout)
                else:
                    print(report.list_text(catalog.images(filters)))
            elif args.catalog_command == "duplicates":
                dups = catalog.duplicates(args.min_shared)
                print(json.dumps(dups) if args.json else report.duplicates_text(dups))
            else:
                as_csv = args.to == "csv"
                rows = catalog.images(filters) if as_csv else catalog.documents(filters)
                write = report.write_csv if as_csv else report.json_lines
                if args.output is None:
                    write(rows, sys.stdout)
                else:
                    with open(args.output, "w", encoding="utf-8", newline="") as out:
                        write(rows, out)
    except (CatalogError, sqlite3.Error) as exc:
        print(f"imgscan: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except BrokenPipeError:
        raise  # the reader of standard output went away: main() handles it
    except OSError as exc:
        print(f"imgscan: {exc.filename}: cannot write the export: {exc.strerror}",
              file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


# -- report --------------------------------------------------------------------
def _report_arguments(p: argparse.ArgumentParser) -> None:
    """``--catalog`` and the filters come from :func:`_catalog_parents`."""
    p.description = ("One self-contained HTML page of a scan's catalog: verdicts, failed "
                     "rules, formats, boot modes, history, duplicates, and every image "
                     "with its facts and rule results.")
    p.add_argument("-o", "--output", metavar="FILE", required=True,
                   help="the HTML file to write")


def _report(args: argparse.Namespace) -> int:
    import sqlite3

    from .bulk.catalog import Catalog, CatalogError

    filters = _filters(args)
    described = [f"--{name.replace('_', '-')} {value}" for name, value in (
        ("verdict", filters.verdict), ("rule", filters.rule and
                                       f"{filters.rule}:{filters.rule_status}"),
        ("format", filters.format), ("boot_mode", filters.boot_mode),
        ("status", filters.status), ("error_type", filters.error_type)) if value]
    try:
        with Catalog(args.catalog, create=False) as catalog:
            if _unknown_rule(catalog, filters):
                return EXIT_UNREADABLE
            html = _html_module()
            if html is None:
                return EXIT_UNREADABLE
            page = html.catalog_report(catalog, filters, described)
    except (CatalogError, sqlite3.Error) as exc:
        print(f"imgscan: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    return _write_html(args.output, page)


def _html_module() -> ModuleType | None:
    """:mod:`imgscan.report.html`, or None (said on stderr) without Jinja2, which only
    the HTML report needs (the ``html`` extra)."""
    try:
        from .report import html
    except ModuleNotFoundError as exc:
        if exc.name not in ("jinja2", "markupsafe"):
            raise
        print("imgscan: the HTML report needs Jinja2: pip install 'imgscan[html]'",
              file=sys.stderr)
        return None
    return html


def _write_html(path: str, page: str) -> int:
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(page)
    except OSError as exc:
        print(f"imgscan: {path}: cannot write the HTML report: {exc.strerror}",
              file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


# -- fingerprint ---------------------------------------------------------------
def _fingerprint_arguments(p: argparse.ArgumentParser) -> None:
    from .fingerprints import ALGORITHMS  # a light module: its hashing imports wait for a call

    p.description = ("Content fingerprint of each image's guest-visible disk, the same for one "
                     "disk whatever its container; prints `DIGEST  PATH` per image, as "
                     "xxhsum does.")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--algorithm", choices=ALGORITHMS, default=ALGORITHMS[0],
                   help="xxh3-128-chunked (default: XXH3-128 over 1 MiB chunk digests, "
                   "holes never read; defined in the README) or xxh3-64-stream (what "
                   "`xxhsum -H3` prints for the raw disk)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="threads reading and hashing (default: all cores)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line: path, algorithm, digest, virtual_size, "
                   "chunk_size (0 for the stream algorithm)")
    p.add_argument("--external-dir", metavar="DIR",
                   help="allow opening backing / data files named by the image, inside DIR only")
    _endpoint_argument(p)


def _fingerprint(args: argparse.Namespace) -> int:
    from .fingerprints import fingerprint
    from .report.fingerprint import fingerprint_line, fingerprint_object

    if args.threads is not None and args.threads < 1:
        print("imgscan: --threads must be at least 1", file=sys.stderr)
        return EXIT_UNREADABLE
    status = EXIT_OK
    for path in args.images:
        try:
            fp = fingerprint(path, args.algorithm, args.threads, args.external_dir)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except ImageError as exc:
            status = EXIT_UNREADABLE
            print(f"imgscan: {exc}", file=sys.stderr)
            if args.json:
                import json
                print(json.dumps(error_object(path, exc)), flush=True)
            continue
        if args.json:
            import json
            print(json.dumps(fingerprint_object(path, fp)), flush=True)
        else:
            print(fingerprint_line(path, fp), flush=True)
    return status


# -- ls and cat ----------------------------------------------------------------
TARGET_HELP = ("the image, then :VOLUME: a partition number as `imgscan info` prints it, "
               "VG/LV for a logical volume, nothing for an unpartitioned disk")


def _ls_arguments(sub: Subparsers) -> None:
    ls = sub.add_parser("ls", help="list a directory inside an image, without mounting it",
                        description="List a directory (default /) of a filesystem inside "
                        "an image; NTFS paths may use \\ and are case-insensitive.")
    ls.add_argument("target", metavar="IMAGE[:VOLUME]", help=TARGET_HELP)
    ls.add_argument("path", nargs="?", default="/", metavar="PATH")
    ls.add_argument("-l", dest="long", action="store_true",
                    help="mode, size, modification time (UTC), name, -> target of symlinks")
    ls.add_argument("--json", action="store_true", help="one JSON object per entry")
    ls.add_argument("--external-dir", metavar="DIR",
                    help="allow opening backing / data files named by the image, inside DIR "
                    "only")
    _endpoint_argument(ls)


def _cat_arguments(sub: Subparsers) -> None:
    cat = sub.add_parser("cat", help="write a file inside an image to standard output",
                         description="Write the bytes of a regular file of a filesystem "
                         "inside an image to standard output.")
    cat.add_argument("target", metavar="IMAGE[:VOLUME]", help=TARGET_HELP)
    cat.add_argument("path", metavar="PATH")
    cat.add_argument("--external-dir", metavar="DIR",
                     help="allow opening backing / data files named by the image, inside DIR "
                     "only")
    _endpoint_argument(cat)


def _files(args: argparse.Namespace) -> int:
    from .files import open_volume, split_target

    path, volume = split_target(args.target)
    try:
        with Image(path, external_dir=args.external_dir) as img:
            fs = open_volume(img, volume)
            if args.command == "cat":
                _cat(fs, args.path)
            else:
                _ls(fs, args.path, args.long, args.json)
    except ImageError as exc:
        print(f"imgscan: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


def _ls(fs: FileSystem, path: str, long: bool, as_json: bool) -> None:
    """A directory's entries (``path`` followed if a symlink), or the one file ``path``."""
    from .report.files import ls_json, ls_long, ls_short

    if fs.stat(path).kind == "dir":
        entries = fs.listdir(path)
        if not (long or as_json):
            if entries:
                print(ls_short([e.name for e in entries]))
            return
        rows = []
        for e in entries:
            st = fs.entry_stat(e)
            rows.append((e.name, st, fs.entry_target(e) if st.kind == "symlink" else None))
    else:
        name = path
        for sep in fs.separators:
            name = name.rpartition(sep)[2] or name
        st = fs.stat(path, follow=False)
        rows = [(name, st, fs.readlink(path) if st.kind == "symlink" else None)]
    if as_json:
        for name, st, target in rows:
            print(ls_json(name, st, target))
    elif long:
        print(ls_long(rows))
    else:
        print(ls_short([name for name, _, _ in rows]))


def _cat(fs: FileSystem, path: str) -> None:
    from . import limits

    size = fs.stat(path).size
    out = sys.stdout.buffer
    piece = min(limits.FS_MAX_FILE_READ, CAT_PIECE)
    pos = 0
    fs.read_file(path, 0, 0)            # a directory or special file fails before output
    while pos < size:
        data = fs.read_file(path, pos, piece)
        if not data:
            break
        out.write(data)
        pos += len(data)
    out.flush()


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit after its
    reader went away does not print a second broken-pipe traceback."""
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


#: Each subcommand and what adds it to the parser, in the order ``--help`` lists them.
SUBCOMMANDS: dict[str, Callable[[Subparsers], object]] = {
    "info": _info_arguments,
    "map": _map_arguments,
    "check": _check_arguments,
    "profiles": lambda sub: sub.add_parser(
        "profiles", help="list the built-in profiles and their rules"),
    "demo": lambda sub: sub.add_parser(
        "demo", help="run `check` on the sample image shipped with imgscan"),
    "scan": lambda sub: _scan_arguments(sub.add_parser(
        "scan", help="scan directories of images in parallel, optionally into a catalog")),
    "catalog": lambda sub: _catalog_arguments(sub.add_parser(
        "catalog", help="query a scan catalog")),
    "report": lambda sub: _report_arguments(sub.add_parser(
        "report", parents=list(_catalog_parents()),
        help="write one self-contained HTML page of a scan catalog")),
    "fingerprint": lambda sub: _fingerprint_arguments(sub.add_parser(
        "fingerprint", help="content fingerprint of each image's guest-visible disk")),
    "ls": _ls_arguments,
    "cat": _cat_arguments,
}


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = _parser(argv).parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader went away (`imgscan ... | head`): stop quietly, as cat does.
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "endpoint_url", None):
        # The endpoint as the AWS tools take it: the variable reaches the store's client
        # here and in scan workers alike.
        import os
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    if args.command == "info":
        return _info(args.images, args.json, args.external_dir, args.verify_manifest,
                     args.jobs)
    if args.command == "map":
        return _map(args.images[0], args.json, args.external_dir)
    if args.command == "check":
        return _check(args.images, args.json, args.external_dir, args.profile, args.junit,
                      args.storage_class, args.verify_manifest, args.html)
    if args.command == "profiles":
        return _profiles()
    if args.command == "scan":
        return _scan(args)
    if args.command == "catalog":
        return _catalog(args)
    if args.command == "report":
        return _report(args)
    if args.command == "fingerprint":
        return _fingerprint(args)
    if args.command in ("ls", "cat"):
        return _files(args)
    return _demo()


if __name__ == "__main__":
    sys.exit(main())

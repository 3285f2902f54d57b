"""The ``imgscan`` command: arguments in, reports out, exit codes from the contract.

Exit codes: 0 every image was read (and, for ``check``, no rule failed); 1
some rule failed; 2 some image could not be read, or bad usage (argparse's own
convention). Decoding lives in :mod:`imgscan.image`, judging in
:mod:`imgscan.policy` (imported only by ``check``, ``profiles`` and ``demo``:
``info`` start-up stays small), rendering in :mod:`imgscan.report`, the grammar of
the command line in :mod:`imgscan.arguments`; this module only wires them.
"""

from __future__ import annotations

import sys

from .errors import ImageError, error_object, error_object_of, error_of
from .image import Image
from .report import KeptLines

TYPE_CHECKING = False
if TYPE_CHECKING:
    from argparse import Namespace
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from types import ModuleType
    from typing import Any

    from ._core.fsapi import FileSystem
    from .bulk.catalog import Catalog, Filters

    #: What ``imgscan info`` prints of an info object: its text, or its JSON line.
    Render = Callable[[Mapping[str, Any]], str]

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


def _info(paths: Sequence[str], as_json: bool, external_dir: str | None,
          verify_manifest: bool = False, jobs: int | None = None) -> int:
    """Each image's info object, in the order of ``paths`` (see :func:`_info_results`)."""
    if jobs is not None and jobs < 1:
        print("imgscan: --jobs must be at least 1", file=sys.stderr)
        return EXIT_UNREADABLE
    render: Render
    if as_json:
        from .report.json import json_line
        render = json_line
    else:
        from .report.text import info_text
        render = info_text
    status = EXIT_OK
    # Written when the next image is waited for, before an error message, every
    # KEPT_LINES, and at the end (Ctrl-C included: the images read are shown).
    kept = KeptLines(sys.stdout)
    keep = kept.keep
    try:
        for shown, (path, read, out) in enumerate(_info_results(
                paths, render, jobs, external_dir, verify_manifest, kept.write)):
            if read:
                assert isinstance(out, str), "an image read has its output"
                if shown and not as_json:
                    keep("")    # a blank line between two images' text
                keep(out)
            else:
                assert not isinstance(out, str), "an image not read has its error member"
                status = EXIT_UNREADABLE
                kept.write()    # the images before it, then its message
                print(f"imgscan: {out['message']}", file=sys.stderr)
                if as_json:
                    keep(render(error_object_of(path, out)))
    except KeyboardInterrupt:
        kept.write()
        return EXIT_INTERRUPTED     # the pool's workers are stopped by _info_pooled
    kept.write()
    return status


#: Seconds of reading images in the process after which ``imgscan info`` considers
#: handing the rest to the scan's worker pool: about twice what starting the pool costs
#: (importing it, forking the workers, each worker's own first decoder imports).
INFO_POOL_AFTER = 0.01
#: Seconds of CPU the pool adds to each image (marshal, the pipes, the parent's loop):
#: about 0.04 ms measured on the 1000-image library, the workers rendering the output
#: (benchmarks/README.md, issue 18).
INFO_POOL_COST = 40e-6


def _info_results(paths: Sequence[str], render: Render, jobs: int | None,
                  external_dir: str | None, verify_manifest: bool,
                  waiting: Callable[[], None]) -> Iterator[InfoResult]:
    """An :data:`InfoResult` per path, in order, the info objects rendered by ``render``
    (in the pool by its workers); ``waiting`` is called before each image is read here,
    and whenever the pool is about to wait for results (so the caller writes what it
    holds then, once for the results that came together). ``jobs`` 1: all read here;
    more: all by a pool of that many workers; None (the default): read here until that
    has taken INFO_POOL_AFTER seconds of CPU, then the rest by a pool of every core when
    it pays: at least two images left, as much work again at the mean so far, and that
    mean well above what the pool adds to an image (:func:`_pool_pays`; asked again
    after each further INFO_POOL_AFTER, not at every image: it reads the load average
    and the cores, about 10 us, an eighth of a library image). So a few images, or many
    tiny ones on few cores, are never slowed down by a pool."""
    if jobs is not None and jobs > 1:
        yield from _info_pooled(paths, render, jobs, external_dir, verify_manifest, waiting)
        return
    import time
    start = 0.0
    ask = INFO_POOL_AFTER   # seconds of CPU after which the pool is considered next
    for done, path in enumerate(paths):
        waiting()
        # CPU time, not wall: on a busy machine the wall time of an image grows while
        # it waits for a core, which would make a pool look worth it just when no
        # core is free. Counted from the second image on: the first pays the decoders'
        # imports, the pool's workers pay them again anyway.
        if jobs is None:    # the default; --jobs 1 reads every image here, no pool asked
            if done == 1:
                start = time.process_time()
            elif done > 1 and (elapsed := time.process_time() - start) >= ask:
                ask = elapsed + INFO_POOL_AFTER
                left = len(paths) - done
                if left >= 2 and elapsed / (done - 1) * left >= INFO_POOL_AFTER \
                        and _pool_pays(elapsed / (done - 1)) and "obstore" not in sys.modules:
                    # (A process that has read an object store cannot fork workers that use
                    # it: its client's threads do not survive the fork; see bulk.runner.)
                    yield from _info_pooled(paths[done:], render, None, external_dir,
                                            verify_manifest, waiting)
                    return
        yield _info_one(path, render, external_dir, verify_manifest)


def _pool_pays(mean: float) -> bool:
    """Whether images of ``mean`` seconds each are read sooner by a pool of every core:
    with n cores free an image costs (mean + INFO_POOL_COST) / n there, against mean
    here, so the pool wins from mean > INFO_POOL_COST / (n - 1). Asked for twice that,
    as the mean of the first images carries their formats' first imports (0.08 ms on
    2 quiet cores: the library's 1 MiB images, about 0.1 ms with their output, go to
    the pool). Only the cores other work leaves free count (the last minute's load
    average, this process included): workers that wait for a core add their cost and
    save nothing (the library by the pool took 1.2 times as long as in process at a
    load of 12 on 2 cores; benchmarks/README.md, issue 18)."""
    import os

    from .bulk.runner import cores
    n = cores()
    try:
        load = os.getloadavg()[0]
    except OSError:     # no load average to read (a sandbox without /proc): taken as quiet
        load = 1.0
    free = min(n, n + 1 - load)     # this process's core and the idle ones
    return free > 1 and mean >= 2 * INFO_POOL_COST / (free - 1)


#: ``(path, True, the info object rendered)``, or ``(path, False, error member)``.
InfoResult = tuple[str, bool, "str | dict[str, Any]"]


def _info_one(path: str, render: Render, external_dir: str | None,
              verify_manifest: bool) -> InfoResult:
    """The :data:`InfoResult` of ``path``, read here."""
    try:
        with Image(path, external_dir=external_dir, verify_manifest=verify_manifest) as img:
            info = img.info()
    except ImageError as exc:
        return path, False, error_of(exc)
    return path, True, render(info)


def _info_pooled(paths: Sequence[str], render: Render, jobs: int | None,
                 external_dir: str | None, verify_manifest: bool,
                 waiting: Callable[[], None]) -> Iterator[InfoResult]:
    """As :func:`_info_one` for each path, read and rendered by the scan's pool:
    results arrive as the workers finish and are put back in the order of ``paths``;
    ``waiting`` is the run's :attr:`~imgscan.bulk.runner.ScanRun.waiting` hook."""
    from .bulk.runner import read_each

    #: Where each path stands in ``paths`` (a path named twice stands twice).
    places: dict[str, list[int]] = {}
    for i, path in reversed(list(enumerate(paths))):
        places.setdefault(path, []).append(i)
    early: dict[int, InfoResult] = {}
    shown = 0
    with read_each(paths, jobs=jobs, external_dir=external_dir,
                   verify_manifest=verify_manifest, render=render) as run:
        run.waiting = waiting
        for result in run:
            out = result.rendered if result.status == "scanned" else result.error
            assert out is not None, "a scanned result has its output, an error its member"
            early[places[result.path].pop()] = (result.path, result.status == "scanned", out)
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


def _scan(args: Namespace) -> int:
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
    run.for_report(args.json)
    run.waiting = report.flush
    if run.dashboard:
        print(f"imgscan: the Dask dashboard: {run.dashboard}", file=sys.stderr)
    try:
        with run:
            for result in run:
                report.add(result)
                if report.bar:      # the count of skipped files only for the bar
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
        # workers are stopped by `with run`; what was committed stays, and so do the
        # lines of the images read before it (before a bug's traceback too).
        report.flush()
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


def _filters(args: Namespace) -> Filters:
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


def _catalog(args: Namespace) -> int:
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


def _report(args: Namespace) -> int:
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


def _fingerprint(args: Namespace) -> int:
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


def _files(args: Namespace) -> int:
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


if not TYPE_CHECKING:
    class Namespace:
        """What argparse's Namespace is, for the command lines :func:`_plain` reads
        (argparse is not imported for them)."""

        def __init__(self, **values):
            self.__dict__.update(values)


#: The command lines :func:`_plain` reads, by command: the flags they may give before
#: their operands (option -> attribute), whether ``--jobs N`` is one of them, and the
#: attribute of their operands.
_PLAIN_FORMS = {
    "info": ({"--json": "json"}, True, "images"),
    "check": ({"--json": "json"}, False, "images"),
    "scan": ({"--info-only": "info_only", "--json": "json", "--fingerprint": "fingerprint"},
             True, "paths"),
}


def _plain(argv: Sequence[str]) -> Namespace | None:
    """The arguments of ``imgscan info [--json] [--jobs N] IMAGE...``, ``imgscan check
    [--json] IMAGE...`` or ``imgscan scan [--info-only] [--json] [--fingerprint] [--jobs
    N] PATH...`` (the options in any order, each once, before the operands; N in decimal
    digits), as argparse would give them, or None for any other command line (another
    option, an option after an operand, an operand starting with ``-``, no operand):
    those are argparse's to read. The plain forms skip argparse for start-up time:
    importing it (with re, enum, gettext and locale) and building the parser cost about
    as much as the rest of ``imgscan info`` of a small image."""
    form = _PLAIN_FORMS.get(argv[0]) if argv else None
    if form is None:
        return None
    flags, takes_jobs, operands = form
    values: dict[str, object] = dict.fromkeys(flags.values(), False)
    rest = list(argv[1:])
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        # at most 9 digits: int() refuses more than 4300 with a ValueError, and argparse
        # answers a number it cannot take with its usage error
        if option == "--jobs" and takes_jobs and "jobs" not in values and rest \
                and rest[0].isascii() and rest[0].isdigit() and len(rest[0]) <= 9:
            values["jobs"] = int(rest.pop(0))
        elif option in flags and not values[flags[option]]:
            values[flags[option]] = True
        else:
            return None
    if not rest or any(arg.startswith("-") for arg in rest):
        return None
    return Namespace(command=argv[0], external_dir=None, endpoint_url=None,
                     verify_manifest=False, **{operands: rest},
                     **{**_plain_defaults(argv[0]), **values})


def _plain_defaults(command: str) -> dict[str, object]:
    """What argparse gives the options a plain ``command`` line leaves out (but --json and
    the external directory, manifest and endpoint every plain form has)."""
    if command == "check":
        return dict.fromkeys(("profile", "junit", "html", "storage_class"))
    if command == "info":
        return {"jobs": None}
    from . import limits
    return {"jobs": None, "profile": None, "catalog": None, "dask": None,
            "time_limit": limits.SCAN_TIME_LIMIT,
            "memory_limit": limits.SCAN_MEMORY_LIMIT >> 20}


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = _plain(argv)
    if args is None:
        from .arguments import parser  # argparse only where _plain cannot read (start-up)
        args = parser(argv).parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # The reader went away (`imgscan ... | head`): stop quietly, as cat does.
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _run(args: Namespace) -> int:
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

"""The ``imgscan`` command line's grammar: argparse's parser of every subcommand.

:func:`imgscan.cli.main` reads the plain forms (``info|check [--json]``, ``info
--jobs N``, ``scan [--info-only] [--json] [--fingerprint] [--jobs N]``, then operands)
without it (argparse, with the re, gettext and locale modules it imports and the
parser it builds, costs about as much as the rest of ``imgscan info`` of a small
image); every other command line, ``--help`` and bad usage included, is parsed
here, so help, usage and errors are argparse's.
"""

from __future__ import annotations

import argparse
import sys

from .version import __version__
from .vocabulary import STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    Subparsers = argparse._SubParsersAction["_Parser"]

__all__ = ["SUBCOMMANDS", "parser"]


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


def parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The command line's parser, with the subcommand ``argv`` names (when it names
    one) alone: each subcommand's options cost start-up time (argparse builds a help
    formatter per option), and ``imgscan info IMAGE`` should pay for its own only.
    Without a known subcommand (``--help``, a typo) every subcommand is there."""
    top = _Parser(
        prog="imgscan",
        description="Inspect VM disk images offline: what they are and what they hold.",
    )
    top.add_argument("--version", action="version", version=f"imgscan {__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    # the subcommand is the first argument; ``imgscan -h info`` lists every subcommand
    named = argv[0] if argv else None
    for name, add in SUBCOMMANDS.items():
        if named not in SUBCOMMANDS or named == name:
            add(sub)
    return top


def _image_command(sub: Subparsers, name: str, help: str,
                   many: bool) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
    p.add_argument("images", nargs="+" if many else 1, metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--external-dir", metavar="DIR",
        help="allow opening backing / data files named by the image, inside DIR only "
             "(a directory, or a URL prefix such as s3://BUCKET/dir/)",
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


def _report_arguments(p: argparse.ArgumentParser) -> None:
    """``--catalog`` and the filters come from :func:`_catalog_parents`."""
    p.description = ("One self-contained HTML page of a scan's catalog: verdicts, failed "
                     "rules, formats, boot modes, history, duplicates, and every image "
                     "with its facts and rule results.")
    p.add_argument("-o", "--output", metavar="FILE", required=True,
                   help="the HTML file to write")


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
                   help="allow opening backing / data files named by the image, inside DIR "
                   "only (a directory, or a URL prefix such as s3://BUCKET/dir/)")
    _endpoint_argument(p)


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


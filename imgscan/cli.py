"""The ``imgscan`` command: arguments in, reports out, exit codes from the contract.

Exit codes: 0 every image was read (and, for ``check``, no rule failed); 1
some rule failed; 2 some image could not be read, or bad usage (argparse's own
convention). Decoding lives in :mod:`imgscan.image`, judging in
:mod:`imgscan.policy` (imported only by ``check``, ``profiles`` and ``demo``:
``info`` start-up stays small), rendering in :mod:`imgscan.report`; this module
only wires them.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .errors import ImageError, UnsupportedFormat
from .image import SCHEMA_VERSION, Image
from .report.text import info_text, map_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

EXIT_OK = 0
EXIT_RULE_FAILED = 1
EXIT_UNREADABLE = 2
DEMO_SAMPLE = "demo.qcow2"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgscan",
        description="Inspect VM disk images offline: what they are and what they hold.",
    )
    parser.add_argument("--version", action="version", version=f"imgscan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def image_command(name: str, help: str, many: bool) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("images", nargs="+" if many else 1, metavar="IMAGE")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument(
            "--external-dir", metavar="DIR",
            help="allow opening backing / data files named by the image, inside DIR only",
        )
        return p

    image_command("info", "what each image is (the JSON contract's info object)", many=True)
    image_command("map", "the extent map, like qemu-img map", many=False)
    check = image_command("check", "judge each image against an import profile", many=True)
    check.add_argument("--profile", metavar="NAME|FILE",
                       help="a built-in profile (default huawei-ims-windows; see `imgscan "
                       "profiles`) or a TOML file that extends one")
    check.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    check.add_argument("--storage-class", metavar="CLASS",
                       help="the OBS storage class of the uploaded object (decides the "
                       "storage-class rule, otherwise manual)")
    sub.add_parser("profiles", help="list the built-in profiles and their rules")
    sub.add_parser("demo", help="run `check` on the sample image shipped with imgscan")
    return parser


def _error_object(path: str, exc: ImageError) -> dict[str, Any]:
    recognised = {"format": exc.format} if isinstance(exc, UnsupportedFormat) else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "path": path,
        **recognised,
        "error": {
            "type": type(exc).__name__,
            "structure": exc.structure,
            "offset": exc.offset,
            "message": str(exc),
        },
    }


def _info(paths: Sequence[str], as_json: bool, external_dir: str | None) -> int:
    import json  # only for --json: a millisecond of start-up otherwise

    status = EXIT_OK
    for i, path in enumerate(paths):
        try:
            with Image(path, external_dir=external_dir) as img:
                info = img.info()
        except ImageError as exc:
            status = EXIT_UNREADABLE
            print(f"imgscan: {exc}", file=sys.stderr)
            if as_json:
                print(json.dumps(_error_object(path, exc)))
            continue
        if as_json:
            print(json.dumps(info))
        else:
            if i:
                print()
            print(info_text(info))
    return status


def _map(path: str, as_json: bool, external_dir: str | None) -> int:
    try:
        with Image(path, external_dir=external_dir) as img:
            extents = img.extents()
            if as_json:
                extents.write_qemu_json(sys.stdout.buffer, img.backing_file is not None)
                sys.stdout.buffer.write(b"\n")
            else:
                print(map_text(extents))
    except ImageError as exc:
        print(f"imgscan: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


def _check(paths: Sequence[str], as_json: bool, external_dir: str | None,
           profile_spec: str | None, junit: str | None, storage_class: str | None) -> int:
    from .policy import ProfileError, check, load_profile
    from .report.json import check_json
    from .report.text import check_text

    try:
        profile = load_profile(profile_spec)
    except ProfileError as exc:
        print(f"imgscan: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    status = EXIT_OK
    checks: list[dict[str, Any]] = []
    errors: list[tuple[str, str]] = []
    for path in paths:
        try:
            with Image(path, external_dir=external_dir) as img:
                info = img.info()
        except ImageError as exc:
            status = EXIT_UNREADABLE
            errors.append((path, str(exc)))
            print(f"imgscan: {exc}", file=sys.stderr)
            if as_json:
                import json
                print(json.dumps(_error_object(path, exc)))
            continue
        result = check(info, profile, storage_class)
        checks.append(result)
        if result["verdict"] == "fail" and status == EXIT_OK:
            status = EXIT_RULE_FAILED
        if as_json:
            print(check_json(result))
        else:
            if len(checks) + len(errors) > 1:
                print()
            print(check_text(result))
    if junit:
        from .report.junit import junit_xml
        try:
            with open(junit, "wb") as out:
                out.write(junit_xml(checks, errors))
        except OSError as exc:
            print(f"imgscan: {junit}: cannot write the JUnit report: {exc.strerror}",
                  file=sys.stderr)
            return EXIT_UNREADABLE
    return status


def _profiles() -> int:
    from .policy import builtin_profiles, load_profile
    from .policy.rules import RULES

    for i, name in enumerate(builtin_profiles()):
        profile = load_profile(name)
        if i:
            print()
        default = " (default)" if i == 0 else ""
        print(f"{name}{default}: {profile.description}")
        width = max(len(r) for r in profile.rules) + 2
        print(f"  {'rule':<{width}}{'if not':<8}checks")
        for rule_id, config in profile.rules.items():
            rule = RULES[rule_id]
            params = ", ".join(f"{k}={v}" for k, v in config.params.items()
                               if not isinstance(v, list) or len(v) <= 4)
            fixed = "  [auto-fixed by the cloud]" if rule.auto_fixed else ""
            print(f"  {rule_id:<{width}}{config.severity:<8}{rule.summary}{fixed}")
            if params:
                print(f"  {'':<{width}}{'':<8}{params}")
    return EXIT_OK


def _demo() -> int:
    """``check`` on the shipped sample. The sample fails a rule on purpose, so the
    demo returns 0 once the report is printed: it demonstrates, it does not gate."""
    from importlib import resources

    sample = resources.files("imgscan") / "samples" / DEMO_SAMPLE
    with resources.as_file(sample) as path:
        print("imgscan check on the Windows sample image shipped with imgscan "
              "(a 64 MiB Windows Server 2019 test disk):\n")
        status = _check([str(path)], False, None, None, None, None)
    print("\nRun it on your own image:  imgscan check IMAGE [--profile safe|FILE.toml] "
          "[--json] [--junit report.xml]\nList the profiles and their rules:  imgscan profiles")
    return EXIT_OK if status in (EXIT_OK, EXIT_RULE_FAILED) else status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "info":
        return _info(args.images, args.json, args.external_dir)
    if args.command == "map":
        return _map(args.images[0], args.json, args.external_dir)
    if args.command == "check":
        return _check(args.images, args.json, args.external_dir, args.profile, args.junit,
                      args.storage_class)
    if args.command == "profiles":
        return _profiles()
    return _demo()


if __name__ == "__main__":
    sys.exit(main())

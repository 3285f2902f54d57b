"""The ``imgscan`` command: arguments in, reports out, exit codes from the contract.

Exit codes: 0 every image was read; 2 some image could not be read, or bad
usage (argparse's own convention). Decoding lives in :mod:`imgscan.image`,
rendering in :mod:`imgscan.report`; this module only wires them.
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
EXIT_UNREADABLE = 2


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
    sub.add_parser("demo", help="run `info` on the sample image shipped with imgscan")
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


def _demo() -> int:
    from importlib import resources

    sample = resources.files("imgscan") / "samples" / "demo.qcow2"
    with resources.as_file(sample) as path:
        print("imgscan info on the sample image shipped with imgscan:\n")
        return _info([str(path)], as_json=False, external_dir=None)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "info":
        return _info(args.images, args.json, args.external_dir)
    if args.command == "map":
        return _map(args.images[0], args.json, args.external_dir)
    return _demo()


if __name__ == "__main__":
    sys.exit(main())

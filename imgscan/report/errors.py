"""The JSON error object of an image that could not be read, written once.

``imgscan info/check/fingerprint --json`` print it for an ImageError, ``imgscan
scan --json`` for every image a worker could not read (a decoder's error, a
timeout, a crash), and the catalog stores and returns its ``error`` member; all
of them must agree with ../shared/docs/json-contract.md:
``{"schema_version", "path"[, "format"], "error": {"type", "structure", "offset",
"message"}}``, ``format`` naming the container an UnsupportedFormat recognised.
"""

from __future__ import annotations

from ..errors import ImageError, UnsupportedFormat
from ..vocabulary import SCHEMA_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def error_member(type_name: str, structure: str | None, offset: int | None, message: str,
                 fmt: str | None = None) -> dict[str, Any]:
    """The ``error`` member; ``fmt`` (an UnsupportedFormat's container) rides along
    under ``format`` until :func:`error_object_of` lifts it to the object, so that
    the scan's pipe and the catalog carry one dict per error."""
    error: dict[str, Any] = {"type": type_name, "structure": structure, "offset": offset,
                             "message": message}
    if fmt is not None:
        error["format"] = fmt
    return error


def error_of(exc: ImageError) -> dict[str, Any]:
    """:func:`error_member` of an ImageError."""
    fmt = exc.format if isinstance(exc, UnsupportedFormat) else None
    return error_member(type(exc).__name__, exc.structure, exc.offset, str(exc), fmt)


def error_object_of(path: str, error: Mapping[str, Any]) -> dict[str, Any]:
    """The error object of ``path`` from an :func:`error_member` dict."""
    member = dict(error)
    fmt = member.pop("format", None)
    recognised = {"format": fmt} if fmt is not None else {}
    return {"schema_version": SCHEMA_VERSION, "path": path, **recognised, "error": member}


def error_object(path: str, exc: ImageError) -> dict[str, Any]:
    """The error object of ``path``, which raised ``exc``."""
    return error_object_of(path, error_of(exc))

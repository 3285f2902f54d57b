"""The one exception hierarchy of imgscan.

Every problem with an image is an :class:`ImageError`; its message names the
file, the on-disk structure and the byte offset, so a user can open a hex
editor at the right place. Callers that scan many images catch ``ImageError``
and go on; anything else escaping imgscan is a bug.
"""

from __future__ import annotations

from .vocabulary import SCHEMA_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


class ImageError(Exception):
    """An image could not be read as what it claims to be."""

    def __init__(
        self,
        path: str,
        structure: str,
        offset: int | None,
        problem: str,
    ) -> None:
        self.path = path
        self.structure = structure
        self.offset = offset
        self.problem = problem
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{path}: {structure}{where}: {problem}")


class TruncatedImage(ImageError):
    """A structure lies (partly) past the end of the file."""


class CorruptImage(ImageError):
    """A structure is present but its contents are impossible or inconsistent."""


class UnsupportedFeature(ImageError):
    """The image uses a feature imgscan does not implement or refuses to guess."""


class UnsupportedFormat(UnsupportedFeature):
    """A container recognised by its signature that imgscan does not decode.

    ``format`` names it (``parallels``, ``dmg``, ...), so a caller can report
    what the file is even though its disk cannot be read.
    """

    def __init__(self, path: str, format: str, structure: str, offset: int | None,
                 problem: str) -> None:
        self.format = format
        super().__init__(path, structure, offset, problem)


class EncryptedImage(ImageError):
    """The guest bytes are encrypted; facts are available, contents are not."""


class LimitExceeded(ImageError):
    """A value claimed by the file exceeds one of the limits in :mod:`imgscan.limits`."""


class UnsafePath(ImageError):
    """The image names another file that imgscan refuses to open."""


class RemoteError(ImageError):
    """The store or server holding a remote image refused or failed a request (no
    credentials, access denied, no such bucket or key, no Range support, a timeout).
    The message names the URL, never a credential."""

    #: The ``problem`` of an error for an object the store does not hold: a caller that
    #: can fall back (an OVA's disk looked for beside its descriptor) tells it by this.
    NO_SUCH_OBJECT = "no such bucket or key"

# -- the JSON error object ---------------------------------------------------------------
# ``imgscan info/check/fingerprint --json`` print it for an ImageError, ``imgscan scan
# --json`` for every image a worker could not read (a decoder's error, a timeout, a crash),
# and the catalog stores and returns its ``error`` member; all of them must agree with
# ../shared/docs/json-contract.md: ``{"schema_version", "path"[, "format"], "error":
# {"type", "structure", "offset", "message"}}``, ``format`` naming the container an
# UnsupportedFormat recognised. It is built here, once, beside the errors it reports.


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

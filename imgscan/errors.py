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


def error_detail(exc: ImageError) -> dict[str, Any]:
    """The ``error`` member of an error object: the exception's class, structure,
    offset and message, as a caller that could not read an image reports it."""
    return {
        "type": type(exc).__name__,
        "structure": exc.structure,
        "offset": exc.offset,
        "message": str(exc),
    }


def error_object(path: str, exc: ImageError) -> dict[str, Any]:
    """The JSON object printed in place of ``info`` for an image that could not be read.

    ``{"schema_version", "path", "error": {...}}``, plus ``format`` when the
    container was recognised but is not decoded (:class:`UnsupportedFormat`),
    so a caller can still say what the file is.
    """
    recognised = {"format": exc.format} if isinstance(exc, UnsupportedFormat) else {}
    return {"schema_version": SCHEMA_VERSION, "path": path, **recognised,
            "error": error_detail(exc)}

"""The one exception hierarchy of imgscan.

Every problem with an image is an :class:`ImageError`; its message names the
file, the on-disk structure and the byte offset, so a user can open a hex
editor at the right place. Callers that scan many images catch ``ImageError``
and go on; anything else escaping imgscan is a bug.
"""

from __future__ import annotations


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

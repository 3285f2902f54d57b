"""The public face of one image: its container facts and its whole inspection.

:class:`Image` is the :class:`~imgscan.disk_image.DiskImage` a caller opens
(``imgscan.open``); :meth:`Image.info` runs the stages after the container
(layout, guest inspection) once and returns the JSON contract object that
:mod:`imgscan.contract` builds from their results.
"""

from __future__ import annotations

import os

from .contract import SCHEMA_VERSION, info_object
from .disk_image import DiskImage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["SCHEMA_VERSION", "Image", "open"]


class Image(DiskImage):
    """One disk image, decoded from its content (the file name is never consulted).

    Facts are attributes named as in the JSON contract; :meth:`info` returns
    the contract object. Guest bytes come from :meth:`read` or :meth:`stream`.
    Other files the image names (backing file, external data file) are opened
    only when ``external_dir`` is given, and only inside it.
    """

    _info: dict[str, Any] | None = None

    def info(self) -> dict[str, Any]:
        """The ``imgscan info --json`` object of the JSON contract (schema 1), built once."""
        if self._info is None:
            info = info_object(self)
            # built before the store failed, or with findings that are its failure
            self.raise_store_failure()
            self._info = info
        return self._info


def open(path: str | os.PathLike[str], *, external_dir: str | None = None,
         verify_manifest: bool = False) -> Image:
    """Open and decode an image; see :class:`Image`."""
    return Image(path, external_dir=external_dir, verify_manifest=verify_manifest)

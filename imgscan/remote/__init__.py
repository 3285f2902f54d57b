"""Images where they live: object storage and HTTP, read in place by range requests.

An image named by a URL (``s3://``, ``obs://``, ``gs://``, ``az://``, ``abfs://``,
``http(s)://``) is read through :class:`imgscan._core.remote.RemoteSource`,
which fetches only the blocks the decoders ask for (opened by
:func:`imgscan.remote.opening.open_source`). This module only tells a URL from a
path: the client library (obstore, the ``remote`` extra) is imported by
:mod:`imgscan.remote.store` when a URL is first opened, never on the local path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .._core.source import Source
    from ..errors import ImageError

#: Schemes read remotely. ``obs`` is Huawei OBS through its S3-compatible API.
SCHEMES = ("s3", "obs", "gs", "az", "abfs", "abfss", "http", "https")


def is_url(path: str) -> bool:
    """Whether ``path`` names a remote object rather than a local file."""
    scheme, sep, rest = path.partition("://")
    return bool(sep) and bool(rest) and scheme.lower() in SCHEMES


def open_window(source: Source, base: int, length: int, name: str) -> Source:
    """``[base, base + length)`` of ``source`` as a source of its own named ``name``
    (an OVA's disk ``URL [member]``): a window of the remote object's reader
    (:class:`imgscan.remote.window.WindowReader`) for a remote source, of the file
    (:func:`imgscan._core.source.window`) for a local one."""
    reader = getattr(source, "reader", None)
    if reader is None:
        from .._core.source import window
        return window(source.path, base, length, name)
    from .._core.remote import RemoteSource
    from .window import WindowReader
    return RemoteSource(WindowReader(reader, base, length, name))


def store_failure(source: Source) -> ImageError | None:
    """The first request the store of a remote source failed; None if none did (and for
    a local file)."""
    reader = getattr(source, "reader", None)
    return None if reader is None else reader.failure


def source_object(source: Source) -> dict[str, Any] | None:
    """The contract's ``source`` object of a remote source; None for a local file."""
    reader = getattr(source, "reader", None)
    if reader is None:
        return None
    obj = reader.object
    return {"url": obj.url, "size": obj.size, "etag": obj.etag,
            "storage_class": obj.storage_class, "requests": reader.requests,
            "bytes_read": reader.bytes_read}

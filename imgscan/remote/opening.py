"""Opening a remote object as a source: one round of range requests, no HEAD.

A module of its own, apart from :mod:`imgscan.remote` (which every module that
tells a URL from a path imports): it asks format detection
(:mod:`imgscan._core.registry`) what it reads at fixed offsets, so that the round
that opens the object also fetches them, and the registry's own imports lead
back to :mod:`imgscan.remote`. The client library (:mod:`imgscan.remote.store`)
is imported only when a URL is opened.
"""

from __future__ import annotations

from .. import limits
from .._core.registry import HEAD_RANGES, TAIL_BYTES
from .._core.remote import RemoteSource
from .blocks import BlockReader, opening_ranges, tail_request


def open_source(url: str, *, reads_all: bool = False) -> RemoteSource:
    """The source of the object at ``url``, opened by its first round of range requests
    (the head and far signatures format detection reads, and the tail: no HEAD of
    its own), the rest fetched on demand.

    ``reads_all``: the caller reads every stored byte by design (a fingerprint), so
    the object's size is allowed on top of ``limits.REMOTE_MAX_FETCH_BYTES``.
    """
    # the client library: imported only once a URL is read
    from .store import fetch, open_reading

    ranges = opening_ranges(HEAD_RANGES)
    tail = tail_request(TAIL_BYTES)
    # the round is asked for before the size is known: its lengths are the most it fetches
    limits.enforce(sum(length for _, length in ranges) + tail, "REMOTE_MAX_FETCH_BYTES",
                   url, "first range requests", 0, "bytes fetched from the store")
    opened = open_reading(url, ranges, tail)
    obj = opened.object
    reader = BlockReader(url, obj.size, lambda start, end: fetch(obj, start, end),
                         allowance=obj.size if reads_all else 0)
    reader.object = obj
    if opened.requests:
        reader.seed(opened.parts, opened.requests, opened.bytes_read)
    return RemoteSource(reader)

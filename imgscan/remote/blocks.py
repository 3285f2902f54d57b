"""The range reader under a remote source: blocks, a cache, read-ahead, coalescing.

Decoders ask for small structures (a header, a table, an MFT record) one after
the other; over a network each request costs a round trip. So every read is
widened to whole blocks of :data:`BLOCK_SIZE`, kept in a bounded LRU cache
(:data:`CACHE_BYTES`): the next structure is usually in a block already held.
Missing blocks of one read are coalesced into runs (a gap of up to
:data:`COALESCE_GAP_BLOCKS` is fetched rather than split into two requests),
long runs are cut into requests of at most :data:`MAX_REQUEST_BYTES` fetched
concurrently, and a read that starts where the previous fetch ended is taken
as sequential and fetches a read-ahead window that doubles up to
:data:`READAHEAD_MAX_BYTES`. Every fetch counts against
``limits.REMOTE_MAX_FETCH_BYTES`` before it is made.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from .. import limits
from ..errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    #: ``fetch(start, end)``: the object's bytes ``[start, end)``, exactly.
    Fetch = Callable[[int, int], bytes]

#: The unit of fetching and caching: large enough that neighbouring structures share a
#: request, small enough that a scattered MFT record does not drag in megabytes.
BLOCK_SIZE = 128 * 1024
#: Memory the cache of one image may hold.
CACHE_BYTES = 64 * 1024 * 1024
#: Largest read-ahead window of a sequential reader.
READAHEAD_MAX_BYTES = 4 * 1024 * 1024
#: Missing blocks separated by at most this many cached or unneeded blocks are one request.
COALESCE_GAP_BLOCKS = 2
#: Longest single range request; a longer run is cut and its parts fetched concurrently.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: Requests of one image in flight at once.
CONCURRENCY = 8
#: Fetched when the object is opened, with its last block, in one concurrent batch: every
#: container keeps its header and usually its tables at the start (qcow2's L1 and
#: refcount tables, VHDX's regions and BAT, VMDK's grain directory), and VHD, VMDK
#: stream and format detection read the end, so one round trip replaces the several a
#: decoder's first reads would otherwise make one after the other.
PRIME_BYTES = 1024 * 1024


def coalesce(blocks: list[int], gap: int) -> list[tuple[int, int]]:
    """Sorted block numbers as runs ``(first, end)``, runs at most ``gap`` apart merged."""
    runs: list[tuple[int, int]] = []
    for b in blocks:
        if runs and b - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], b + 1)
        else:
            runs.append((b, b + 1))
    return runs


class BlockReader:
    """Reads ``[offset, offset + length)`` of one remote object through the block cache.

    Thread-safe: the cache and the counters are guarded by a lock, fetches run
    outside it, so readers on several threads (a fingerprint) fetch in parallel; a
    block one thread is fetching is waited for by the others, never fetched twice.
    ``requests`` and ``bytes_read`` count range requests and the bytes they
    returned; ``round_trips`` counts reads that had to wait for the network
    (each a batch of concurrent requests). ``allowance`` bytes may be fetched beyond
    the cap: a fingerprint, which reads every stored byte by design, is allowed the
    object's size (what the store holds, never a size the image claims).
    """

    def __init__(self, url: str, size: int, fetch: Fetch, *, allowance: int = 0) -> None:
        self.url = url
        self.size = size
        self._fetch = fetch
        self._allowance = allowance
        #: What the store said of the object (imgscan.remote.store.RemoteObject), if known.
        self.object: Any = None
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        #: Blocks being fetched by some thread -> set when that fetch ends.
        self._inflight: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._next_block = -1
        self._ahead = 0
        self.requests = 0
        self.bytes_read = 0
        self.round_trips = 0
        #: The first request the store failed (unreachable, timed out, changed object).
        #: Decoders may turn a read error into a finding ("filesystem not identified"),
        #: which would present a dead store as a fact of the image; the image's info
        #: raises this instead (imgscan.disk_image.DiskImage.raise_store_failure).
        self.failure: ImageError | None = None

    def prime(self) -> None:
        """Fetch the object's first PRIME_BYTES and its last block, concurrently."""
        nblocks = -(-self.size // BLOCK_SIZE)
        blocks = sorted({*range(min(nblocks, PRIME_BYTES // BLOCK_SIZE)), nblocks - 1})
        if nblocks:
            self._fetch_blocks(blocks, "head and tail", 0)
            self._next_block = min(nblocks, PRIME_BYTES // BLOCK_SIZE)

    def read(self, offset: int, length: int, structure: str) -> bytes:
        """The bytes at ``offset``; the caller (the source) has checked the range."""
        if length == 0:
            return b""
        first = offset // BLOCK_SIZE
        last = (offset + length - 1) // BLOCK_SIZE
        got: dict[int, bytes] = {}
        missing: list[int] = []
        waits: list[tuple[int, threading.Event]] = []
        with self._lock:
            for b in range(first, last + 1):
                block = self._cache.get(b)
                if block is not None:
                    self._cache.move_to_end(b)
                    got[b] = block
                elif b in self._inflight:
                    waits.append((b, self._inflight[b]))
                else:
                    missing.append(b)
            if missing:
                missing += self._readahead(missing)
                done = threading.Event()
                for b in missing:
                    self._inflight[b] = done
        if missing:
            try:
                got.update(self._fetch_blocks(missing, structure, offset))
            finally:
                with self._lock:
                    for b in missing:
                        self._inflight.pop(b, None)
                done.set()
        for b, fetching in waits:
            # another thread is fetching this block: wait for it rather than fetch it twice
            fetching.wait()
            with self._lock:
                block = self._cache.get(b)
            got[b] = block if block is not None else \
                self._fetch_blocks([b], structure, offset)[b]
        data = b"".join(got[b] for b in range(first, last + 1))
        start = offset - first * BLOCK_SIZE
        return data[start:start + length]

    def _readahead(self, missing: list[int]) -> list[int]:
        """Blocks to fetch beyond ``missing`` (under the lock): a read that starts where
        the last fetch ended is sequential, and its window doubles; any other resets it."""
        nblocks = -(-self.size // BLOCK_SIZE)
        if missing[0] == self._next_block:
            self._ahead = min(max(2 * self._ahead, 1), READAHEAD_MAX_BYTES // BLOCK_SIZE)
        else:
            self._ahead = 0
        end = missing[-1] + 1
        extra = [b for b in range(end, min(end + self._ahead, nblocks))
                 if b not in self._cache and b not in self._inflight]
        self._next_block = (extra[-1] if extra else missing[-1]) + 1
        return extra

    def _fetch_blocks(self, blocks: list[int], structure: str, offset: int) -> dict[int, bytes]:
        parts: list[tuple[int, int]] = []
        step = MAX_REQUEST_BYTES // BLOCK_SIZE
        for first, end in coalesce(blocks, COALESCE_GAP_BLOCKS):
            parts += [(b, min(b + step, end)) for b in range(first, end, step)]
        ranges = [(b * BLOCK_SIZE, min(e * BLOCK_SIZE, self.size)) for b, e in parts]
        total = sum(e - s for s, e in ranges)
        with self._lock:
            limits.enforce(self.bytes_read + total - self._allowance, "REMOTE_MAX_FETCH_BYTES",
                           self.url, structure, offset, "bytes fetched from the store")
            self.requests += len(ranges)
            self.bytes_read += total
            self.round_trips += 1
        try:
            if len(ranges) == 1:
                datas = [self._fetch(*ranges[0])]
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(CONCURRENCY,
                                                    thread_name_prefix="imgscan-fetch")
                datas = list(self._pool.map(lambda r: self._fetch(*r), ranges))
        except ImageError as exc:
            with self._lock:
                if self.failure is None:
                    self.failure = exc
            raise
        out: dict[int, bytes] = {}
        for (b, _), data in zip(parts, datas, strict=True):
            for i in range(0, len(data), BLOCK_SIZE):
                out[b + i // BLOCK_SIZE] = data[i:i + BLOCK_SIZE]
        with self._lock:
            self._cache.update(out)
            for b in out:
                self._cache.move_to_end(b)
            while len(self._cache) * BLOCK_SIZE > CACHE_BYTES:
                self._cache.popitem(last=False)
        return out

    def close(self) -> None:
        """Drop the cache and stop the fetching threads (idempotent)."""
        with self._lock:
            self._cache.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

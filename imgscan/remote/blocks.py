"""The range reader under a remote source: blocks, a cache, read-ahead, coalescing.

Decoders ask for small structures (a header, a table, an MFT record) one after
the other; over a network each request costs a round trip. Bytes are cached in
blocks of :data:`BLOCK_SIZE` in a bounded LRU cache (:data:`CACHE_BYTES`). A read
that misses fetches the aligned window of :data:`MISS_WINDOW` around it: the
next structure is usually in it. A stage that knows what it will read next
announces it (:meth:`BlockReader.prefetch`, through the source's ``prefetch``):
those ranges are fetched as one concurrent batch, so an announced structure
costs no round trip of its own; page by page (a signature costs its 4 KiB page, a
table its pages), or with the window of :data:`ANNOUNCE_WINDOW` around each where
the stage says their neighbours are read next. The container decoders announce
their tables, the layout every partition's probe regions, NTFS $UpCase and the root
index, so that reads are fetched nearly exactly rather than by large windows. The
first fetch of an object also takes its first :data:`PRIME_BYTES` and its last
block: normally the round that opens the object, before its size is known
(:func:`opening_ranges`, :meth:`BlockReader.seed`). Missing blocks of one batch are coalesced
into runs (a gap of up to :data:`COALESCE_GAP_BLOCKS` is fetched rather than split
into two requests), long runs are cut into requests of at most
:data:`MAX_REQUEST_BYTES` fetched concurrently, and a read that starts where the
previous fetch ended is taken as sequential and fetches a read-ahead window that
doubles up to :data:`READAHEAD_MAX_BYTES`. Every fetch counts against
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
    from collections.abc import Callable, Container, Iterable
    from typing import Any

    #: ``fetch(start, end)``: the object's bytes ``[start, end)``, exactly.
    Fetch = Callable[[int, int], bytes]

#: The unit of caching, and of fetching an announced structure: a page, so that a
#: structure announced for prefetch (a signature, a table) costs little more than itself.
BLOCK_SIZE = 4 * 1024
#: What a read that misses fetches: the aligned window around it, large enough that
#: neighbouring structures (the next index node or hive bins) share the request, small
#: enough that a scattered record does not drag in megabytes.
MISS_WINDOW = 64 * 1024
#: What an announcement fetches around each of its ``near`` ranges: the aligned window
#: of a structure whose neighbours are read next but cannot be named before it is read
#: (a volume's first sectors with its MFT's first records; a directory's index with the
#: records and nodes of the path's next directories).
ANNOUNCE_WINDOW = 128 * 1024
#: Memory the cache of one image may hold.
CACHE_BYTES = 64 * 1024 * 1024
#: Largest read-ahead window of a sequential reader.
READAHEAD_MAX_BYTES = 4 * 1024 * 1024
#: Missing blocks separated by at most this many cached or unneeded blocks are one request.
COALESCE_GAP_BLOCKS = 2
#: Longest single range request; a longer run is cut and its parts fetched concurrently.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: Requests of one image in flight at once: a round of page-sized requests (the first
#: batch: the head, the far signatures and the tail, nine requests) must not wait for
#: a second turn of the pool, which would cost a second round trip.
CONCURRENCY = 16
#: Fetched with the object's last block in its first batch (with what format detection
#: announces): every container's header (VHDX's file identifier; VHD's dynamic header,
#: VDI's block map and VMDK's grain directory of a small disk) is there, and VHD, VMDK
#: stream and format detection read the end. Small: the decoders announce the tables
#: they read next (qcow2's L1, VHDX's headers and regions), so a large first batch
#: would only fetch bytes nobody reads.
PRIME_BYTES = 16 * 1024


def coalesce(blocks: list[int], gap: int, cached: Container[int] = ()) -> list[tuple[int, int]]:
    """Sorted block numbers as runs ``(first, end)``, runs at most ``gap`` apart merged
    unless a block between them is ``cached`` (fetching it again would only waste it)."""
    runs: list[tuple[int, int]] = []
    for b in blocks:
        if runs and b - runs[-1][1] <= gap \
                and not any(g in cached for g in range(runs[-1][1], b)):
            runs[-1] = (runs[-1][0], b + 1)
        else:
            runs.append((b, b + 1))
    return runs


def opening_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The range requests ``(offset, length)`` of the round that opens an object, its
    size not yet known: the blocks of its first PRIME_BYTES and of ``ranges`` (what
    format detection reads at fixed offsets), coalesced as a batch's are."""
    blocks = sorted({b for offset, length in [(0, PRIME_BYTES), *ranges] if length > 0
                     for b in range(offset // BLOCK_SIZE,
                                    (offset + length - 1) // BLOCK_SIZE + 1)})
    return [(first * BLOCK_SIZE, (end - first) * BLOCK_SIZE)
            for first, end in coalesce(blocks, COALESCE_GAP_BLOCKS)]


def tail_request(tail: int) -> int:
    """The suffix length asked for with :func:`opening_ranges`: at least ``tail`` bytes,
    whole blocks, so that the object's last block (at most one block long, wherever the
    size puts it) is always whole in the answer."""
    return -(-max(tail, 1) // BLOCK_SIZE) * BLOCK_SIZE


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
        self._primed = False
        self._ahead = 0
        self.requests = 0
        self.bytes_read = 0
        self.round_trips = 0
        #: The first request the store failed (unreachable, timed out, changed object).
        #: Decoders may turn a read error into a finding ("filesystem not identified"),
        #: which would present a dead store as a fact of the image; the image's info
        #: raises this instead (imgscan.disk_image.DiskImage.raise_store_failure).
        self.failure: ImageError | None = None

    def seed(self, parts: Iterable[tuple[int, bytes]], requests: int, bytes_read: int) -> None:
        """Take the round that opened the object (``requests`` requests that returned
        ``bytes_read`` bytes, one round trip; see
        :func:`imgscan.remote.store.open_reading`) into the counters, and its answers
        (``(offset, bytes)``: :func:`opening_ranges` and the tail, fetched before the
        size was known), if any, as this reader's first batch, cached block by block. A
        block an answer holds only part of (the first of a suffix) is not cached,
        unless it is the object's last."""
        with self._lock:
            self.requests += requests
            self.bytes_read += bytes_read
            self.round_trips += 1
            for offset, data in parts:
                self._primed = True
                end = offset + len(data)
                for b in range(-(-offset // BLOCK_SIZE), -(-end // BLOCK_SIZE)):
                    block = data[b * BLOCK_SIZE - offset:(b + 1) * BLOCK_SIZE - offset]
                    if len(block) == BLOCK_SIZE or b * BLOCK_SIZE + len(block) == self.size:
                        self._cache[b] = block
                if offset == 0:
                    self._next_block = -(-end // BLOCK_SIZE)

    def _nblocks(self) -> int:
        return -(-self.size // BLOCK_SIZE)

    def _first_batch(self) -> list[int]:
        """The object's first PRIME_BYTES and its last block, once (under the lock)."""
        if self._primed:
            return []
        self._primed = True
        nblocks = self._nblocks()
        head = min(nblocks, PRIME_BYTES // BLOCK_SIZE)
        self._next_block = head
        return [b for b in {*range(head), nblocks - 1}
                if b >= 0 and b not in self._cache and b not in self._inflight]

    def _blocks_of(self, ranges: Iterable[tuple[int, int]]) -> set[int]:
        """The blocks of ``ranges`` (``(offset, length)``), clipped to the object."""
        out: set[int] = set()
        for offset, length in ranges:
            end = min(offset + length, self.size)
            if length > 0 and 0 <= offset < end:
                out.update(range(offset // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1))
        return out

    def prefetch(self, ranges: Iterable[tuple[int, int]], structure: str,
                 near: Iterable[tuple[int, int]] = ()) -> None:
        """Fetch the blocks of ``ranges`` and ``near`` (``(offset, length)``, clipped to
        the object) not yet cached, as one concurrent batch (with the first batch's
        blocks if none was fetched yet): what a stage announces it will read next.
        ``ranges`` are fetched block by block (a signature, a table, $UpCase); ``near``
        with the aligned ANNOUNCE_WINDOW around each too, for structures whose
        neighbours are read next but cannot be named yet (a volume's first sectors,
        the MFT records beside them). Blocks another thread is fetching are left to it."""
        exact = self._blocks_of(ranges)
        around = self._blocks_of(near)
        with self._lock:
            missing = {b for b in exact | around
                       if b not in self._cache and b not in self._inflight}
            missing.update(self._window(sorted(around), ANNOUNCE_WINDOW))
            missing.update(self._first_batch())
            blocks = sorted(missing)
            done = self._claim(blocks)
        if blocks:
            self._fetch_claimed(blocks, done, structure, blocks[0] * BLOCK_SIZE)

    def _claim(self, blocks: list[int]) -> threading.Event:
        """Mark ``blocks`` as being fetched by this thread (under the lock)."""
        done = threading.Event()
        for b in blocks:
            self._inflight[b] = done
        return done

    def _fetch_claimed(self, blocks: list[int], done: threading.Event, structure: str,
                       offset: int) -> dict[int, bytes]:
        try:
            return self._fetch_blocks(blocks, structure, offset)
        finally:
            with self._lock:
                for b in blocks:
                    self._inflight.pop(b, None)
            done.set()

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
                missing = sorted({*missing, *self._window(missing, MISS_WINDOW),
                                  *self._readahead(missing), *self._first_batch()})
                done = self._claim(missing)
        if missing:
            fetched = self._fetch_claimed(missing, done, structure, offset)
            got.update((b, fetched[b]) for b in range(first, last + 1) if b in fetched)
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

    def _window(self, missing: list[int], window: int) -> list[int]:
        """The blocks of the aligned ``window`` around each missing block that are
        neither cached nor being fetched (under the lock)."""
        step = window // BLOCK_SIZE
        nblocks = self._nblocks()
        out: set[int] = set()
        for w in {b // step * step for b in missing}:
            out.update(b for b in range(w, min(w + step, nblocks))
                       if b not in self._cache and b not in self._inflight)
        return sorted(out)

    def _readahead(self, missing: list[int]) -> list[int]:
        """Blocks to fetch beyond the window of the last of ``missing`` (under the lock):
        a read that starts where the last fetch ended is sequential, and its read-ahead
        doubles from one window up to READAHEAD_MAX_BYTES; any other read resets it."""
        nblocks = self._nblocks()
        step = MISS_WINDOW // BLOCK_SIZE
        end = min(-(-(missing[-1] + 1) // step) * step, nblocks)
        if missing[0] == self._next_block:
            self._ahead = min(max(2 * self._ahead, step), READAHEAD_MAX_BYTES // BLOCK_SIZE)
        else:
            self._ahead = 0
        self._next_block = min(end + self._ahead, nblocks)
        return [b for b in range(end, self._next_block)
                if b not in self._cache and b not in self._inflight]

    def _fetch_blocks(self, blocks: list[int], structure: str, offset: int) -> dict[int, bytes]:
        parts: list[tuple[int, int]] = []
        step = MAX_REQUEST_BYTES // BLOCK_SIZE
        for first, end in coalesce(blocks, COALESCE_GAP_BLOCKS, self._cache):
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

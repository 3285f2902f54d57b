"""Content fingerprints of the guest-visible disk, the same whatever its container.

``xxh3-128-chunked`` (the default): the virtual disk of ``V`` bytes is cut into
chunks of ``C = 1 MiB``; chunk ``i`` is guest bytes ``[i*C, min((i+1)*C, V))``
and ``d_i`` its XXH3-128 (seed 0) in the 16-byte canonical (big-endian) form;
the digest is the XXH3-128 of ``V`` as 8 little-endian bytes followed by
``d_0 || d_1 || ...``, printed as 32 lower-case hex digits. Chunks are hashed
in threads (the ``xxhash`` package releases the GIL for large buffers, and
guest reads copy without it); a chunk lying wholly in ranges that read as
zeros takes the digest of zeros without being read.

``xxh3-64-stream``: XXH3-64 of the whole guest disk in order, 16 hex digits,
what ``xxhsum -H3`` prints for the raw equivalent. Reads run ahead in threads
while the calling thread hashes.

Memory stays flat. A chunk stored verbatim and contiguously in the file (all
of a raw or fixed VHD disk, runs of contiguous data clusters) is hashed
straight from the file's memory map, with no copy, and its pages are then
dropped from the process (pages touched through a map stay resident, so
memory would otherwise grow with the image); any other chunk is assembled by
the disk reader with ``pread`` into a buffer each thread reuses. Only the
chunk digests grow with the disk: 16 bytes per MiB.

This module is imported by the CLI's argument parser (for :data:`ALGORITHMS`)
on every command, ``info`` included, so its heavy imports happen inside the
functions that need them.
"""

from __future__ import annotations

import os

from . import limits
from .disk_image import DiskImage
from .errors import LimitExceeded, UnsafePath
from .records import Record
from .remote import is_url

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from array import array
    from collections.abc import Callable

    from ._core.vdisk import VirtualDisk

ALGORITHMS = ("xxh3-128-chunked", "xxh3-64-stream")
#: The chunk size of ``xxh3-128-chunked``, and the read size of both algorithms.
CHUNK_SIZE = 1 << 20
#: Default threads for an image read from a URL: chunks in flight at once.
REMOTE_THREADS = 8


class Fingerprint(Record):
    """The content fingerprint of a guest-visible disk (see :mod:`imgscan.fingerprints`).

    ``chunks`` holds the chunk digests, 16 bytes each in order (empty for
    stream algorithms, whose ``chunk_size`` is 0).
    """

    __slots__ = ("algorithm", "chunk_size", "chunks", "digest", "virtual_size")

    def __init__(self, algorithm: str, digest: str, virtual_size: int, chunk_size: int,
                 chunks: bytes) -> None:
        self.algorithm = algorithm
        self.digest = digest
        self.virtual_size = virtual_size
        self.chunk_size = chunk_size
        self.chunks = chunks


def fingerprint(image: str | os.PathLike[str] | DiskImage, algorithm: str = "xxh3-128-chunked",
                threads: int | None = None, external_dir: str | None = None) -> Fingerprint:
    """The content fingerprint of ``image``'s guest disk (see the module docstring).

    ``image`` is a path (opened, with ``external_dir`` as :class:`Image` takes
    it, and closed again) or an open :class:`Image` (used as it is).
    ``threads`` defaults to ``os.cpu_count()``. Raises
    :class:`~imgscan.errors.ImageError` when the guest bytes cannot be read
    (encrypted, damaged, a backing or data file not allowed; ``LimitExceeded``
    beyond ``limits.MAX_FINGERPRINT_CHUNKS``) and ``ValueError`` for an
    unknown algorithm or a thread count below 1.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
    if threads is None:
        # A remote image is bound by round trips, not cores: keep several ranges in flight.
        remote = not isinstance(image, DiskImage) and is_url(os.fspath(image))
        threads = REMOTE_THREADS if remote else os.cpu_count() or 1
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    if isinstance(image, DiskImage):
        return _of_image(image, algorithm, threads)
    with DiskImage(image, external_dir=external_dir, reads_all=True) as img:
        return _of_image(img, algorithm, threads)


def _of_image(img: DiskImage, algorithm: str, threads: int) -> Fingerprint:
    import xxhash

    from ._core.digest import chunks_to_read

    disk = img.disk()
    size = disk.size
    if -(-size // CHUNK_SIZE) > limits.MAX_FINGERPRINT_CHUNKS:
        raise LimitExceeded(img.path, "fingerprint", None,
                            f"a {size}-byte disk has more {CHUNK_SIZE}-byte chunks than "
                            f"limits.MAX_FINGERPRINT_CHUNKS={limits.MAX_FINGERPRINT_CHUNKS}")
    backing = disk.backing
    if img.backing_file is not None and backing is None:
        # Without its backing file the guest disk is not known: the overlay alone
        # would fingerprint like a blank disk and pass for a duplicate of one.
        raise UnsafePath(img.path, "backing file", None,
                         f"the disk reads through backing file {img.backing_file!r}, "
                         "which is opened only inside the directory given as external_dir")
    todo = chunks_to_read(img.extents(), CHUNK_SIZE, 0 if backing is None else backing.size)
    if not img._container.concurrent_reads:   # a stateful decompressor: one reader
        threads = 1
    if algorithm == "xxh3-64-stream":
        return Fingerprint(algorithm, _stream_digest(disk, todo, threads), size, 0, b"")
    chunks = _chunk_digests(disk, todo, threads)
    h = xxhash.xxh3_128(size.to_bytes(8, "little"))
    h.update(chunks)
    return Fingerprint(algorithm, h.hexdigest(), size, CHUNK_SIZE, bytes(chunks))


def zero_digest(length: int) -> bytes:
    """XXH3-128 of ``length`` zero bytes: the digest of a chunk that reads as zeros."""
    import xxhash

    digest: bytes = xxhash.xxh3_128_digest(bytes(length))
    return digest


def _chunk_digests(disk: VirtualDisk, todo: array[int], threads: int) -> bytearray:
    """``d_0 || d_1 || ...``: chunks in ``todo`` read and hashed in ``threads``
    threads, every other chunk the digest of zeros."""
    import itertools
    import threading

    import xxhash

    size = disk.size
    count = -(-size // CHUNK_SIZE)
    out = bytearray(zero_digest(CHUNK_SIZE)) * count
    if size % CHUNK_SIZE:
        out[-16:] = zero_digest(size % CHUNK_SIZE)
    # next() on a shared itertools.count is atomic: threads take chunks in
    # order, each the next one not yet taken, so a slow chunk (compressed,
    # from a backing file) never leaves the other threads idle.
    taken = itertools.count()
    failed = threading.Event()

    def work() -> None:
        buf = memoryview(bytearray(CHUNK_SIZE))
        hash128 = xxhash.xxh3_128_digest
        try:
            while not failed.is_set():
                j = next(taken)
                if j >= len(todo):
                    return
                i = todo[j]
                start = i * CHUNK_SIZE
                n = min(CHUNK_SIZE, size - start)
                stored = disk.stored(start, n)
                if stored is None:
                    # Pieces, holes, compressed clusters: assembled by the reader.
                    disk.readinto(start, buf, mapped=False)
                    digest = hash128(buf[:n])
                else:
                    # Stored as it is: hashed from the map, no copy; then its pages
                    # leave the process, so memory stays flat.
                    source, host = stored
                    digest = hash128(source.view(host, n, "data"))
                    source.drop(host, n)
                out[16 * i:16 * i + 16] = digest
        except BaseException:
            failed.set()
            raise

    _run(work, min(threads, len(todo)), failed)
    return out


def _run(work: Callable[[], None], threads: int, stop: threading.Event) -> None:
    """Run ``work`` in ``threads`` threads (in this one when it is 1); re-raise
    the first failure. ``stop`` is set when this thread is interrupted (Ctrl-C),
    so the workers end after their current chunk rather than the whole disk."""
    import threading

    if threads <= 1:
        work()
        return
    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:
            failures.append(exc)

    pool = [threading.Thread(target=guarded, name=f"imgscan-fingerprint-{k}")
            for k in range(threads)]
    try:
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    except BaseException:
        stop.set()
        raise
    if failures:
        raise failures[0]


def _stream_digest(disk: VirtualDisk, todo: array[int], threads: int) -> str:
    """XXH3-64 of the guest disk in order: the chunks in ``todo`` are read ahead
    by ``threads`` threads into a ring of buffers, the rest hashed as zeros."""
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    import xxhash

    size = disk.size
    h = xxhash.xxh3_64()
    zeros = memoryview(bytes(CHUNK_SIZE))
    # Read k uses ring[k % depth]; it is refilled by read k + depth, which is
    # queued only once read k has been hashed.
    depth = 2 * threads
    ring = [memoryview(bytearray(CHUNK_SIZE)) for _ in range(depth)]

    def read(k: int) -> memoryview:
        buf = ring[k % depth]
        return buf[:disk.readinto(todo[k] * CHUNK_SIZE, buf, mapped=False)]

    with ThreadPoolExecutor(threads, thread_name_prefix="imgscan-fingerprint") as pool:
        pending: deque[Future[memoryview]] = deque(
            pool.submit(read, k) for k in range(min(depth, len(todo))))
        queued = len(pending)
        hashed = 0
        try:
            for i in range(-(-size // CHUNK_SIZE)):
                if hashed < len(todo) and todo[hashed] == i:
                    h.update(pending.popleft().result())
                    hashed += 1
                    if queued < len(todo):
                        pending.append(pool.submit(read, queued))
                        queued += 1
                else:
                    h.update(zeros[:min(CHUNK_SIZE, size - i * CHUNK_SIZE)])
        finally:
            for future in pending:
                future.cancel()
    digest: str = h.hexdigest()
    return digest

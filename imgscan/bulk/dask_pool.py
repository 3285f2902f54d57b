"""The scan on a Dask distributed cluster: ``imgscan scan --dask ADDRESS``.

The same scan as :mod:`.runner`'s (its loop, output, catalog, rescans, limits),
with the local pool replaced by tasks on a cluster's workers. Only a scan given
a cluster imports this module, and so dask.

- Discovery: each root (a directory, a file, a bucket prefix) is listed by a
  task (:func:`list_roots`, the local :class:`~.walk.Walk`; several roots in as many
  task, in runs that grow from ROOTS_PER_LISTING roots: :func:`groups`),
  so the client never
  needs to see the files. A root the client sees and the worker that listed it
  does not is a :class:`~.runner.ClusterError` naming both.
- Work: tasks of BATCH images (more for small ones: :meth:`DaskScanRun._batch`;
  :func:`scan_batch`), at most WINDOW per worker thread in flight, refilled as
  each batch's results come back: the client holds a bounded number of paths and
  results whatever the library's size. A scan listed by one task (one root, or one
  worker thread) without a catalog sends
  the first batches (FROM_LISTING at most) with the listing, to take their
  images from it on the cluster (:func:`scan_listed`: BATCH images, more when they
  are small); the client takes the same images off its queue when the listing
  reaches it (:meth:`DaskScanRun._claim`) and puts back those not read. In its task, a
  batch is scanned by the local pool with one reader, a process the Dask worker
  forks and keeps for its next batches (:class:`_Readers`): the image that hangs,
  exhausts memory or crashes its reader costs itself (``Timeout``,
  ``MemoryLimit``, ``WorkerCrashed``), never the Dask worker, and the reader is
  replaced. Batches and results travel as ``marshal`` bytes, the reader's answers
  as it wrote them (the client decodes them).
- Lost workers: when the Dask worker itself dies (the OOM killer, a machine
  lost), the scheduler runs its tasks again elsewhere; a task that was running
  on every worker that died (``distributed.scheduler.allowed-failures`` + 1
  times) fails with ``KilledWorker``. Such a batch is split in halves and each
  is sent again, down to the single image that kills workers; that image is sent
  once more alone (a worker dies with every task it holds, innocent ones queued
  beside the killer included) and recorded ``WorkerCrashed`` when it kills its
  worker with nothing else in flight. Each image is answered by exactly one batch, so none is
  lost or reported twice.
- Rescans: the client compares the catalog's size, mtime and inode with the
  listing's (not the device number: a shared filesystem's differs from machine
  to machine) and sends the stored header digest with the task; the worker reads
  the header and answers ``unchanged`` without scanning when it matches.
- Ctrl-C cancels the futures in flight (a batch already running on a worker
  finishes its current images, each within its time limit); a scheduler that
  goes away ends the scan with a ClusterError; in both cases the catalog's scan
  is closed as interrupted and keeps every result recorded.

Batch size: a task has a fixed cost (its round trip through the scheduler, 8 to
10 ms on a quiet 2-core machine and 22 to 26 ms on a loaded one; the reader's
fork, exit and first imports only when no kept reader is there), an image 0.2 ms
when it is small and 20 to 50 ms when it is a real disk. BATCH = 128: on the quiet
machine the 1000-image library took 775 ms in batches of 64 against 511 ms in 128
(1 worker, each batch forking its reader then; 700 and 504 ms with 2), and 256 or
512 did no better; a library of tens of thousands of images still spreads over a
hundred workers. As soon as the first batches end (timed from their sending, before
their results are fetched; then by the readers' own times), batches of images
faster than TASK_WORK / BATCH each grow up to MAX_BATCH: a task costs the client, the
scheduler and the worker about 7 ms of CPU on a 2-core machine (a no-op task, loaded
machine), which on such a machine the readers share, and fewer tasks leave fewer gaps.
A library listed whole before any batch has ended is shared out at once (each worker
thread's first batch BATCH images at most, the rest evenly over the window's other
places, up to MAX_BATCH: :meth:`DaskScanRun._size`); a first batch taken from the
listing on the cluster reads its whole share (MAX_BATCH at most) in one task when its
first BATCH images took under FIRST_WORK (:func:`scan_listed`). Otherwise the last batches are
made smaller, shared between the worker threads as the local pool's are, so no worker
idles, but not below the images read in TASK_COST. The next
batch goes out before a finished one's results are fetched, so a worker rarely waits
on the client. See benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import marshal
import os
import pickle
import signal
import socket
import threading
import time
from collections import deque
from concurrent.futures import CancelledError

import dask
import distributed
from distributed.scheduler import KilledWorker

from ..errors import error_member
from ..remote import is_url
from .pipe import MARSHAL_VERSION, answer_seconds
from .result import FileIdentity, Fingerprint, ScanResult
from .runner import ClusterError, Listed, ScanRun, _Task, _Worker, reap
from .walk import Walk, head_digest, listed_stat, read_head

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

    from .catalog import Catalog
    from .runner import Paths
    from .worker import Options

    #: What a listing says of a file: size, mtime_ns, inode, device, blocks.
    Compact = tuple[int, int, int, int, int]
    #: One image of a batch: its path, its listed stat, the stored header digest.
    Item = tuple[str, Compact, str | None]
    #: A worker's listing: the entries, the paths of those skipped, the worker's address.
    Listing = tuple[list[tuple[str, Compact | OSError]], list[str], str]

#: Images per task (see the module docstring for why), until images have been read.
BATCH = 128
#: The most images per task: images read faster than TASK_WORK / BATCH each (small
#: ones) go in larger batches, so that each task's fixed cost stays a small part of it.
MAX_BATCH = 512
#: Tasks in flight per worker thread: one running, one waiting to start at once.
WINDOW = 2
#: Worker threads whose first batch takes the listing where it runs, at most
#: (:meth:`DaskScanRun._send_first`): each on another worker than the listing's has the
#: whole listing copied to it (about 100 MB for a root of a million files, by the size
#: of its entries), so a large cluster's other threads get theirs from the client.
FROM_LISTING = 4
#: Seconds a task costs beside its images (its round trip through the scheduler, about
#: 10 ms on a quiet 2-core machine): the tail's batches are not cut below what their
#: images take to read in that time.
TASK_COST = 0.01
#: Seconds of reading that a batch of fast images is made to hold (up to MAX_BATCH).
TASK_WORK = 10 * TASK_COST
#: Seconds within which the first BATCH images of a first batch taken from the listing
#: must be read for the rest of its share to be read in the same task
#: (:func:`scan_listed`): images under 3 ms each, small ones (0.2 ms on a quiet 2-core
#: machine, 0.8 ms at load 5; real disks take 20 to 50), so a share of MAX_BATCH is
#: read within 1.6 s.
FIRST_WORK = 4 * TASK_WORK
#: Seconds a reader kept by a Dask worker may stay idle before the worker stops it: a
#: cluster runs other work between scans, and a reader holds a process and its memory.
READER_IDLE = 60.0
#: The settings of the cluster of ``--dask local``, whose processes share the machine's
#: cores with the scan's readers: no statistical profiler, which samples a running
#: task's stack every 10 ms in the worker's event loop (a sixth to a fifth of the
#: worker's CPU on the benchmarks' library, loaded 2-core machine) for the dashboard's
#: profile page only; and each server's (scheduler, workers, nannies) event-loop
#: watch every second, not 20 ms, and its CPU and memory sample for the dashboard every
#: 5 s, not 0.5 s: the watch only warns of a blocked loop and reports the loop's delay
#: in heartbeats; the workers' memory limits have their own monitor. The Dask workers
#: of the 2-worker library scan: 47 against 55 ms of CPU a scan with the profiler's
#: setting alone (benchmarks/README.md).
LOCAL_CONFIG = {"distributed.worker.profile.enabled": False,
                "distributed.admin.tick.interval": "1s",
                "distributed.admin.system-monitor.interval": "5s"}
#: Roots the first listing task lists at most (:func:`groups`): the scan's first batch
#: waits for that task's whole listing, which for 100 directories on 2 worker threads
#: was 50 listings; 4 keeps the 4 Windows disks of benchmarks/test_bench_dask.py in one
#: task on 1 worker (they were 4 listings and a batch there).
ROOTS_PER_LISTING = 4
#: Seconds to wait for a scheduler to answer when connecting.
CONNECT_TIMEOUT = 10.0
#: Seconds between two asks of the cluster's size (workers come and go).
THREADS_INTERVAL = 2.0
#: Seconds the client waits for results before committing the catalog (as the local
#: pool's COMMIT_INTERVAL) and looking at the scheduler again.
WAIT = 0.5


# -- on the workers -------------------------------------------------------------------
def _compact(st: os.stat_result) -> Compact:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, getattr(st, "st_blocks", 0))


def _worker_name() -> str:
    try:
        return str(distributed.get_worker().address)
    except ValueError:      # not in a worker (called directly)
        return socket.gethostname()


def list_roots(roots: list[str]) -> Listing:
    """A worker's listing of ``roots``: every entry as the local walk yields it (a
    file's stat made compact), the entries skipped (named, so that the client counts
    an entry two listings share once), and the worker's address."""
    walk = Walk(roots, name_skipped=True)
    entries: list[tuple[str, Compact | OSError]] = [
        (path, st if isinstance(st, OSError) else _compact(st)) for path, st in walk]
    assert walk.skipped_paths is not None
    return entries, walk.skipped_paths, _worker_name()


def scan_listed(listing: Listing, index: int,
                threads: int, least: int, most: int, work: float, options: bytes,
                time_limit: float) -> bytes:
    """Scan the first batch of worker thread ``index`` of ``threads`` straight from the
    roots' listing (:func:`list_roots`'s result, handed over by the scheduler), as
    :func:`scan_batch`. Its share is what :func:`first_sizes` gives it (``most``: the
    client's MAX_BATCH), in the listing's order (:func:`unique`); only the listing's
    head is read. Of the share, the first ``least`` images (BATCH) are scanned, and
    the rest too when those took less than ``work`` seconds (FIRST_WORK): small
    images, so a share of MAX_BATCH is read within 4 * ``work``. So small images (the
    benchmarks' library, 0.2 ms each) go in one task per worker thread where a first
    batch of BATCH and the client's next made two, and real disks (20 to 50 ms each)
    in BATCH, their results as early as before. All or the head only, not as many as
    the rate makes TASK_WORK (the client's rule, :meth:`DaskScanRun._batch`): on a
    loaded machine that read some 300 of the library's 500 images and left the rest
    to the client's small tail batches, 10 tasks a scan where there were 5. The client
    takes the whole share off its queue when the
    listing reaches it (:meth:`DaskScanRun._claim`) and puts back what was not read
    (:meth:`DaskScanRun._taken`), so the readers start without waiting for the
    listing's round trip to the client and the client's answer (10 to 30 ms;
    benchmarks/README.md)."""
    files = ((path, st, None) for path, st in unique(listing[0], set())
             if not isinstance(st, OSError))
    # Kept: the files up to the end of this thread's share at the latest (each first
    # batch holds ``most`` at most); the rest of the first batches' files only counted.
    head = list(itertools.islice(files, (index + 1) * most))
    listed = len(head) + sum(1 for _ in itertools.islice(files, most * threads - len(head)))
    # the first batches of the whole listing: ``most`` each once it holds that many
    sizes = first_sizes(listed, threads, most)
    start = sum(sizes[:index])
    share = head[start:start + sizes[index]]
    began = time.monotonic()
    results, answers = _scanned(share[:least], options, time_limit)
    # small images: read faster than ``work`` / ``least`` each, the reader's start
    # included (the rule by which the client's batches grow past BATCH)
    if len(share) > least and time.monotonic() - began < work:
        more_results, more_answers = _scanned(share[least:], options, time_limit)
        results += more_results
        answers += more_answers
    return marshal.dumps((results, answers), MARSHAL_VERSION)


def first_sizes(images: int, threads: int, most: int) -> list[int]:
    """The images of each worker thread's first batch, ``images`` waiting (as
    :meth:`DaskScanRun._size` sizes them, :func:`_first_size`)."""
    sizes: list[int] = []
    queued = images
    for sent in range(threads):     # a running count: one pass whatever the threads
        sizes.append(_first_size(queued, threads, sent, most))
        queued -= sizes[-1]
    return sizes


def _first_size(queued: int, threads: int, sent: int, most: int) -> int:
    """Images of the next worker thread's first batch, ``sent`` threads having theirs,
    ``queued`` images waiting: ``most`` (BATCH) at most, so that results come soon, and
    no thread left without any while another has more than one."""
    return min(most, -(-queued // (threads - sent)))


def unique(entries: list[tuple[str, Compact | OSError]],
           seen: set[int]) -> Iterator[tuple[str, Compact | OSError]]:
    """A listing's entries less the files ``seen`` already (by device and inode; an
    object's URL is its own), which are added to it."""
    for path, st in entries:
        if not isinstance(st, OSError) and not is_url(path):
            key = st[3] << 64 | st[2]
            if key in seen:
                continue
            seen.add(key)
        yield path, st


def scan_batch(tasks: bytes, options: bytes, time_limit: float) -> bytes:
    """Scan a batch (``marshal``-ed ``(path, listed stat, stored header digest or
    None)`` items) with the local pool's isolation (:func:`_scanned`); returns its
    results ``marshal``-ed.

    Arguments and result are bytes, not lists of tuples and objects: Dask walks a
    task's arguments looking for futures (a tenth of the client's CPU per batch of
    128) and pickles results object by object."""
    return marshal.dumps(_scanned(marshal.loads(tasks), options, time_limit),
                         MARSHAL_VERSION)


def _scanned(items: Sequence[Item], options: bytes, time_limit: float
             ) -> tuple[list[tuple[Any, ...]], list[tuple[str, Compact, bytearray]]]:
    """Scan ``items`` by a reader this process keeps between batches of the same
    (pickled) options: the results made here, :func:`packed` (``unchanged`` ones, and
    the images that cost their reader: ``Timeout``, ``WorkerCrashed`` ...), and the
    reader's answers as it wrote them, each with its path and this machine's stat of
    the file (the client decodes them: :meth:`DaskScanRun._answered`). A file whose
    header still has the stored digest is answered ``unchanged`` without a scan."""
    unchanged = []
    files = []
    for path, compact, expected in items:
        try:
            # this machine's view of the file (its device number, any change since)
            st = listed_stat(*compact) if is_url(path) else os.stat(path)
        except OSError:     # gone: the scan says so
            st = listed_stat(*compact)
        # the header is trusted only for the file the client compared with the catalog
        # (it may have changed since the listing: a grown raw image keeps its header)
        if (expected is not None and (st.st_size, st.st_mtime_ns, st.st_ino) == compact[:3]
                and _digest(path, st) == expected):
            unchanged.append(ScanResult(path, "unchanged", FileIdentity(
                st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, expected)))
        else:
            files.append((path, st))
    run = _BatchRun(files, options, time_limit)
    with run:
        results = [*unchanged, *run]
    return [packed(r) for r in results], run.answers


def packed(result: ScanResult) -> tuple[Any, ...]:
    """``result`` as plain values ``marshal`` writes (the contract's objects are
    JSON-shaped already): what a batch's task sends back."""
    i, f = result.identity, result.fingerprint
    return (result.path, result.status,
            i and (i.size, i.mtime_ns, i.inode, i.device, i.header_digest),
            result.info, result.check, result.error,
            f and (f.algorithm, f.digest, f.virtual_size, f.chunk_size, f.chunks),
            result.elapsed)


def unpacked(values: tuple[Any, ...]) -> ScanResult:
    """The result :func:`packed` gave ``values``."""
    path, status, identity, info, check, error, fingerprint, elapsed = values
    return ScanResult(path, status, identity and FileIdentity(*identity), info=info,
                      check=check, error=error,
                      fingerprint=fingerprint and Fingerprint(*fingerprint), elapsed=elapsed)


class _Readers:
    """The readers this Dask worker process keeps between batches: a batch takes an
    idle one (forked with the same options) or forks one, and gives it back when it
    ended normally with the reader idle and alive, so a batch costs no fork, no exit
    and no imports in a fresh process, as a local scan's workers live for the whole
    scan. Isolation is the local pool's: a reader that hangs, dies or runs out of
    memory on an image is blamed and replaced by the batch holding it; one found dead
    while idle is dropped, never blamed on the next batch's image. A reader idle for
    READER_IDLE is stopped by a thread of the process (:meth:`_expire`), which runs
    while readers are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Notified when a reader is given back (the expiring thread's next deadline).
        self._given = threading.Condition(self._lock)
        #: The pickled options of the readers kept, and those options.
        self._key: bytes | None = None
        self._options: Options | None = None
        #: The idle readers, each with when it was given back (monotonic seconds).
        self._idle: list[tuple[_Worker, float]] = []
        self._expiring: threading.Thread | None = None

    def options(self, key: bytes) -> Options:
        """The options pickled as ``key``; the readers of other options are stopped."""
        with self._lock:
            if key != self._key or self._options is None:
                stale, self._idle = self._idle, []
                self._key, self._options = key, pickle.loads(key)
            else:
                stale = []
            options = self._options
        for reader, _ in stale:
            reap(reader, kill=True)
        return options

    def take(self, key: bytes) -> _Worker | None:
        """An idle reader alive and forked with the options ``key``, if one is kept."""
        while True:
            with self._lock:
                if key != self._key or not self._idle:
                    return None
                reader, _ = self._idle.pop()
            # Whether it has exited, without reaping it (reap waits for it).
            if os.waitid(os.P_PID, reader.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return reader
            reap(reader, kill=False)    # died while idle

    def give(self, key: bytes, reader: _Worker) -> None:
        with self._lock:
            if key == self._key:
                self._idle.append((reader, time.monotonic()))
                self._given.notify()
                if self._expiring is None:
                    self._expiring = threading.Thread(
                        target=self._expire, name="imgscan-readers-expiry", daemon=True)
                    self._expiring.start()
                return
        reap(reader, kill=True)

    def _expire(self) -> None:
        """Stop the readers idle for READER_IDLE, until none is kept (then the thread
        ends; the next reader given back starts another)."""
        while True:
            with self._lock:
                now = time.monotonic()
                stale = [reader for reader, since in self._idle
                         if now - since >= READER_IDLE]
                self._idle = [(reader, since) for reader, since in self._idle
                              if now - since < READER_IDLE]
                done = not self._idle
                if done:
                    self._expiring = None
                elif not stale:
                    # also woken by a reader given back (READER_IDLE may have changed)
                    self._given.wait(min(since for _, since in self._idle)
                                     + READER_IDLE - now)
            for reader in stale:
                reap(reader, kill=True)
            if done:
                return

    def release(self) -> None:
        with self._lock:
            stale, self._idle = self._idle, []
            self._key = self._options = None
        for reader, _ in stale:
            reap(reader, kill=True)


_READERS = _Readers()


def release_readers() -> None:
    """Stop the readers this process keeps, and keep none of those running a batch now:
    for code that changes what a reader runs (a test's hook), which readers forked
    before it would not see."""
    _READERS.release()


class _BatchRun(ScanRun):
    """A batch's scan: the local pool with one reader, taken from and given back to
    the process's kept readers, and no catalog (the client keeps it). The reader's
    answers are kept as it wrote them (:attr:`answers`), not decoded here: the client
    decodes them, as a local scan's parent does, so the Dask worker neither decodes
    an image's info nor encodes it again, CPU that a small cluster's readers share
    (benchmarks/README.md)."""

    def __init__(self, files: list[tuple[str, os.stat_result]], key: bytes,
                 time_limit: float) -> None:
        options = _READERS.options(key)
        _warm(options)
        super().__init__([], jobs=1, profile=None, info_only=True, fingerprint=False,
                         catalog=None, time_limit=time_limit, memory_limit=None,
                         external_dir=None)
        self.options = options
        self._walk = Listed(files)
        self._key = key
        #: The reader's answers: path, the file's stat here (:func:`_compact`), and
        #: the answer's frame (see :mod:`.pipe`).
        self.answers: list[tuple[str, Compact, bytearray]] = []

    def _answer(self, task: _Task, body: bytearray) -> None:
        # counted by the reader's time, read without decoding the answer, so batches
        # grow for fast images as the local pool's do (the time since the reader's
        # previous answer, counted before, held its idle time: batches stayed small)
        self._count_answer(answer_seconds(body))
        self.answers.append((task.path, _compact(task.st), body))

    def _spawn(self) -> _Worker:
        reader = _READERS.take(self._key)
        if reader is None:
            return super()._spawn()
        self._adopt(reader)
        return reader

    def _stop_workers(self, graceful: bool) -> None:
        if graceful:
            for reader in list(self._workers.values()):
                if not reader.pending:
                    self._detach(reader)
                    _READERS.give(self._key, reader)
        super()._stop_workers(graceful)


@functools.cache
def _warm_decoders() -> None:
    from .._core.registry import REGISTRY
    for candidate in REGISTRY:
        candidate.formats()
    # The guests' inspectors, imported by a reader only at its first disk with a volume
    # of theirs (start-up): 35 ms of NTFS, registry and inspector modules at a reader's
    # first Windows disk, which a kept reader's scans paid in turn (the benchmarks'
    # Windows disks: the first two of five scans on a warm cluster).
    from ..guest import linux as _linux  # noqa: F401
    from ..guest import roots as _roots  # noqa: F401
    from ..guest import windows as _windows  # noqa: F401


def _warm(options: Options) -> None:
    """Import, once per Dask worker process, the modules its forked readers would
    otherwise each import again (every format's decoder, the guests' inspectors, the
    judge, the fingerprint):
    a reader is forked again after one dies or hangs, and for other options, and the
    imports cost about 0.2 s, more than a batch of small images. Nothing is read."""
    _warm_decoders()
    if options.profiles:
        from ..policy import check as _check  # noqa: F401
        from ..report import json as _json  # noqa: F401
    if options.fingerprint:
        from .. import fingerprints as _fingerprints  # noqa: F401


def _digest(path: str, st: os.stat_result) -> str | None:
    try:
        head = read_head(path, st.st_dev, st.st_ino)
    except OSError:
        return None
    return None if head is None else head_digest(head)


# -- on the client ----------------------------------------------------------------------
def connect(cluster: str | distributed.Client) -> tuple[distributed.Client, list[Any]]:
    """The client of ``cluster``, and what the scan must close (what it started)."""
    if isinstance(cluster, distributed.Client):
        return cluster, []
    if cluster == "local" or cluster.startswith("local:"):
        count = cluster.partition(":")[2]
        if count and (not count.isdigit() or int(count) < 1):
            raise ClusterError(f"{cluster}: local:N needs a number of workers N >= 1")
        with _ctrl_c_ignored(), dask.config.set(LOCAL_CONFIG):
            local = distributed.LocalCluster(
                n_workers=int(count) if count else None, threads_per_worker=1,
                processes=True, host="127.0.0.1", dashboard_address=":0",
                # the workers' own log lines when the cluster stops are noise to the scan
                silence_logs=logging.CRITICAL)
        client = distributed.Client(local)
        return client, [client, local]
    try:
        client = distributed.Client(cluster, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"{cluster}: cannot reach the Dask scheduler: {exc}") from None
    return client, [client]


@contextlib.contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """SIGINT ignored while a local cluster starts its worker processes, which inherit
    that (Python leaves an ignored SIGINT alone): a terminal's Ctrl-C reaches the whole
    process group, and is the client's to handle (it cancels the tasks and closes the
    cluster), as the local pool's readers leave it to the scan. Without it, each worker
    died of a KeyboardInterrupt with a traceback on the terminal. The price: a Ctrl-C
    while the cluster starts (a few seconds) is lost; the next one stops the scan.
    Only the main thread may set a signal's handler; a scan started in another one
    leaves it as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def dashboard(client: distributed.Client, info: dict[str, Any]) -> str | None:
    """The link to the cluster's dashboard, when it runs one (``info``: the
    scheduler's, ``client.scheduler_info()``)."""
    if "dashboard" not in info.get("services", {}):
        return None
    link: str = client.dashboard_link
    return link


def _threads_of(info: dict[str, Any]) -> int:
    """The worker threads of a cluster, from its scheduler's ``info``."""
    return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))


class ClusterWalk:
    """The local walk's entries, listed by tasks on the cluster (all sent at once, in
    one message, when it is made, so they run while the scan starts; consumed in
    order); a file reached twice is yielded once. The roots are listed by tasks of
    consecutive roots, in runs that grow from ROOTS_PER_LISTING (:func:`groups`): a
    worker thread runs its listings one after the other anyway, and each task costs
    the client, the scheduler and the worker some 7 ms of CPU and the client a round
    trip for its result (the 4 Windows disks of benchmarks/test_bench_dask.py, 4
    roots, were 4 listings and a batch on 1 worker). The listings taken are kept in
    :attr:`taken` until the scan lets them go (:meth:`DaskScanRun._submit`)."""

    def __init__(self, client: distributed.Client, paths: list[str], threads: int) -> None:
        self.client = client
        self.paths = paths
        self.skipped = 0
        #: Whether every entry has been yielded (the scan's queue then holds the rest).
        self.done = False
        #: The files in the first listing, once it has been taken.
        self.first: int | None = None
        #: The listings not taken yet: the roots of each and its task.
        rooted = groups(paths, threads)
        futures = client.map(list_roots, rooted, key="list_roots", pure=False) if rooted else []
        self.pending = deque(zip(rooted, futures, strict=True))
        #: The listings whose results have been taken, until the scan lets them go.
        self.taken: list[distributed.Future[Any]] = []

    def cancel(self) -> None:
        """Cancel the listings still running (a scan left early). None running, no
        message: a cancel is a round trip to the scheduler, and every scan's end asks
        for one (:meth:`DaskScanRun._stop_workers`)."""
        running = [f for _, f in self.pending if not f.done()]
        if running:
            with contextlib.suppress(Exception):
                self.client.cancel(running)

    def __iter__(self) -> Iterator[tuple[str, os.stat_result | OSError]]:
        seen: set[int] = set()
        # The entries that could not be looked at, of the listings taken: a directory
        # listed by two tasks (roots ``X/sub`` and ``X`` in two groups) gives its bad
        # entries in both, where the local walk, which lists a directory once, gives
        # them once. Not within a listing: there the walk's own repeats are the local
        # walk's (a dangling root named that is also in a directory named).
        reported: set[str] = set()
        skipped_before: set[str] = set()    # of the listings taken, as ``reported``
        while self.pending:
            roots, future = self.pending[0]
            entries, skipped, worker = _result(future, self.client)
            self.taken.append(future)
            self.pending.popleft()
            self.skipped += sum(1 for path in skipped if path not in skipped_before)
            skipped_before.update(skipped)
            listed = list(unique(entries, seen))
            if self.first is None:
                self.first = sum(1 for _, st in listed if not isinstance(st, OSError))
            failed = set()
            for path, st in listed:
                if isinstance(st, OSError):
                    if path in reported:
                        continue
                    if path in roots and not is_url(path) and os.path.exists(path):
                        raise ClusterError(
                            f"{path}: seen by this client ({socket.gethostname()}) but not "
                            f"by the Dask worker {worker}: {st.strerror or st}")
                    failed.add(path)
                    yield path, st
                    continue
                yield path, listed_stat(*st)
            reported |= failed
        self.done = True


def groups(paths: list[str], count: int) -> list[list[str]]:
    """``paths`` in runs of consecutive ones, in their order, one listing task each; none
    for no paths (a library call may name none: no listing task). The first run holds
    ROOTS_PER_LISTING at most (the scan's first batch waits for it), and each next one
    twice the one before, up to an even share of the rest over the other ``count - 1``
    worker threads (all of it when ``count`` is 1). The walk takes the listings in
    order, so the roots after the first come in runs that arrive one after the other
    rather than in one long listing the scan would wait for, and in few tasks: each
    costs some 7 ms of CPU (1,000 file roots in runs of 4 were 250 tasks)."""
    if not paths:
        return []
    size = min(ROOTS_PER_LISTING, -(-len(paths) // count))
    runs, rest = [paths[:size]], paths[size:]
    share = -(-len(rest) // max(count - 1, 1))
    while rest:
        size = min(2 * size, share)
        runs.append(rest[:size])
        rest = rest[size:]
    return runs


def _result(future: distributed.Future[Any], client: distributed.Client) -> Any:
    """A future's result; a cluster's failure as a ClusterError."""
    return _gathered([future], client)[0]


def _gathered(futures: list[distributed.Future[Any]], client: distributed.Client
              ) -> list[Any]:
    """The futures' results, fetched together; a cluster's failure as a ClusterError."""
    if not futures:
        return []
    try:
        results: list[Any] = client.gather(futures)
    except KilledWorker:
        raise
    except (CancelledError, OSError, TimeoutError) as exc:
        raise _gone(client, exc) from None
    return results


def _gone(client: distributed.Client, exc: BaseException) -> ClusterError:
    """The error of a scan whose scheduler went away (its futures were cancelled)."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ClusterError(f"{_address(client)}: the Dask scheduler went away ({reason})")


def _address(client: distributed.Client) -> str:
    return str(getattr(client.scheduler, "address", None) or "the cluster")


class DaskScanRun(ScanRun):
    """:class:`~.runner.ScanRun` on a Dask cluster (see the module docstring)."""

    FORKS = False

    def __init__(self, paths: Paths, *, cluster: str | distributed.Client,
                 profile: str | None, info_only: bool, fingerprint: bool,
                 catalog: str | Catalog | None, time_limit: float,
                 memory_limit: int | None, external_dir: str | None,
                 verify_manifest: bool = False) -> None:
        client, self._owned = connect(cluster)
        try:
            super().__init__(paths, jobs=1, profile=profile, info_only=info_only,
                             fingerprint=fingerprint, catalog=catalog,
                             time_limit=time_limit, memory_limit=memory_limit,
                             external_dir=external_dir, verify_manifest=verify_manifest)
        except BaseException:
            self._close_cluster()
            raise
        self.client = client
        # One ask of the scheduler for what follows (each is a round trip): while the
        # root lists, for a scan of one; before, for one of several roots, which are
        # listed in as many tasks as the cluster has worker threads (or more: groups).
        if len(self.paths) > 1:
            info = client.scheduler_info()
            self._listing = ClusterWalk(client, self.paths, _threads_of(info))
        else:
            self._listing = ClusterWalk(client, self.paths, 1)
            info = client.scheduler_info()
        self._walk = self._listing
        #: The dashboard's address, when the cluster has one (the CLI prints it).
        self.dashboard = dashboard(client, info)
        # One hashing thread per image: a Dask worker's threads share its cores.
        self.options.threads = 1
        #: The options as every task takes them (pickled once; the workers' readers are
        #: kept for as long as they are the same).
        self._pickled = pickle.dumps(self.options)
        self._inflight: dict[distributed.Future[Any], list[Item]] = {}
        #: When each task in flight was sent (monotonic seconds).
        self._sent: dict[distributed.Future[Any], float] = {}
        #: Batches of a task that failed with KilledWorker, split, to be sent first.
        self._retry: deque[list[Item]] = deque()
        #: Images whose one-image task failed with KilledWorker while other tasks were
        #: in flight: a worker dies with every task it holds, so the image is sent
        #: again alone before it is blamed (:meth:`_lost`).
        self._suspects: deque[list[Item]] = deque()
        #: The task of a suspect sent alone, while it is in flight (nothing else is).
        self._alone: distributed.Future[Any] | None = None
        #: Header digests the catalog holds for files whose identity matched.
        self._expected: dict[str, str] = {}
        self._thread_count = _threads_of(info)
        self._asked = time.monotonic()
        #: Images read so far and the seconds their readers spent on them.
        self._read = 0
        self._spent = 0.0
        #: Until then: images of the batches finished and the seconds from their
        #: sending to their end (an upper bound of the reading: queueing included).
        self._returned = 0
        self._waited = 0.0
        #: The first batches, sent with the listing (:meth:`_send_first`), until the
        #: listing reaches the client and they are claimed (:meth:`_claim`); then, until
        #: they end, the tasks whose answers are checked against the images claimed.
        self._first: list[distributed.Future[Any]] = []
        self._claimed: set[distributed.Future[Any]] = set()
        #: The worker threads the first batches were sized for.
        self._first_threads = 0
        if self._catalog is None and len(self._listing.pending) == 1:
            self._send_first(info)

    def _send_first(self, info: dict[str, Any]) -> None:
        """Send the first batches of a scan listed by one task now (one root, or a
        cluster of one worker thread), as tasks that take the listing
        (:func:`scan_listed`): one per thread of the running workers, FROM_LISTING
        at most, each placed on its worker (Dask would run every task that takes the
        listing where the listing is; a paused worker would hold its own until it
        ran again). The other threads' first batches go from the client. Not for a
        scan with a catalog: its unchanged files are the client's to find; nor for
        one listed by several tasks: the first batches would hold the first
        listing's files only (the 4 Windows disks of benchmarks/test_bench_dask.py,
        4 roots listed by 4 tasks, went in 1 + 0 images first, then 2 + 1, where
        2 + 2 at once did)."""
        listing = self._listing.pending[0][1]
        running = [(address, int(worker.get("nthreads", 1)))
                   for address, worker in info.get("workers", {}).items()
                   if worker.get("status", "running") == "running"]
        self._first_threads = sum(count for _, count in running)
        index = 0
        for address, count in running:
            count = min(count, FROM_LISTING - index)
            if count <= 0:
                break
            self._first += self.client.map(
                scan_listed, [listing] * count, range(index, index + count),
                [self._first_threads] * count, [BATCH] * count, [MAX_BATCH] * count,
                [FIRST_WORK] * count, [self._pickled] * count, [self.time_limit] * count,
                key="scan_batch", workers=[address], allow_other_workers=True, pure=False)
            index += count

    def _claim(self, queue: deque[_Task]) -> None:
        """The first batches sent with the listing (:meth:`_send_first`) take their
        images off the queue, the listing's first (no catalog: every file of it is
        queued): each its whole share, of which it reads a head only when the images
        are slow (:func:`scan_listed`); the rest is put back when its answers come
        (:meth:`_taken`). So, unlike the client's batches, it does not count in the
        rate estimated before results are fetched (:meth:`_per_second`), which would
        take the share for read: its answers, with the readers' own times, do."""
        first, self._first = self._first, []
        assert self._listing.first is not None, "claimed once the first listing is taken"
        sizes = first_sizes(self._listing.first, self._first_threads, MAX_BATCH)
        now = time.monotonic()
        for future, size in zip(first, sizes, strict=False):    # FROM_LISTING at most
            self._inflight[future] = [self._item(queue.popleft()) for _ in range(size)]
            self._sent[future] = now
            self._claimed.add(future)

    def close(self) -> None:
        """As the local scan's; and a scan closed before it was iterated, whose
        generator never started and so never stops anything, cancels the tasks it
        sent when it was made (its listings, its first batches) and closes the cluster
        it started: they would otherwise run to their end for nobody, for as long as
        the scan object is kept. Once the scan has stopped, this finds nothing to do."""
        try:
            super().close()
        finally:
            self._stop_workers(graceful=False)

    def _close_cluster(self) -> None:
        for owned in self._owned:
            with contextlib.suppress(Exception):
                owned.close()
        self._owned = []

    def _threads(self) -> int:
        """The cluster's worker threads, asked of the scheduler at most every
        THREADS_INTERVAL (each ask is a round trip: once per file, it cost the client
        more than the scan)."""
        now = time.monotonic()
        if now - self._asked > THREADS_INTERVAL:
            self._thread_count = _threads_of(self.client.scheduler_info())
            self._asked = now
        return self._thread_count

    # -- the runner's pool interface ----------------------------------------------------
    def _queued(self) -> int:
        """Twice the window's images at the largest batch: the window is sent in whole
        batches at the start (the tail's smaller batches are for the end of the scan
        only), and a library that fits is listed whole before the first batch ends, so
        that :meth:`_size` shares it out at once on one worker too (the benchmarks'
        1000 images go in 3 tasks there, where the queue of twice the window at BATCH,
        512 images, made 5 or 6). It bounds what waits as the largest batches
        reached later did already: 2 * WINDOW * MAX_BATCH entries a worker thread."""
        return 2 * WINDOW * MAX_BATCH * self._threads()

    def _busy(self) -> bool:
        return bool(self._inflight or self._retry or self._suspects)

    def _unchanged(self, catalog: Catalog, path: str, st: os.stat_result) -> str | None:
        """As the local scan's for an object; for a file, the size, mtime and inode
        are compared here and the header digest by the worker (see the module)."""
        if is_url(path):
            return super()._unchanged(catalog, path, st)
        stored = catalog.lookup(path)
        if stored is not None and (stored.size, stored.mtime_ns, stored.inode) == (
                st.st_size, st.st_mtime_ns, st.st_ino):
            self._expected[path] = stored.header_digest
        return None

    def _dispatch(self, queue: deque[_Task]) -> None:
        if self._alone is not None:
            return
        if self._suspects:
            if not self._inflight:
                self._alone = self._submit(self._suspects.popleft())
            return
        if self._first:
            self._claim(queue)
        threads = self._threads()
        batches: list[list[Item]] = []
        while len(self._inflight) + len(batches) < WINDOW * threads and (self._retry or queue):
            if self._retry:
                batches.append(self._retry.popleft())
            else:
                size = self._size(len(queue), threads, len(self._inflight) + len(batches))
                batches.append([self._item(queue.popleft())
                                for _ in range(min(size, len(queue)))])
        if batches:
            self._submit(*batches)

    def _size(self, queued: int, threads: int, sent: int) -> int:
        """Images of the next batch, ``queued`` images waiting for ``threads`` worker
        threads.

        A library listed whole before any batch has ended (it fits the queue: tens of
        thousands of images on a hundred workers) is shared out at once: each worker
        thread's first batch holds BATCH images at most, so that results come as soon
        as before, and the rest is shared evenly between the window's other places, up
        to MAX_BATCH each. A task costs the client, the scheduler and a worker about
        7 ms of CPU, which on a small cluster its readers share: the 1000-image library
        goes in 4 batches on 2 workers where it went in 9 to 11 (benchmarks/README.md).
        Otherwise the tail of a scan is shared out between the worker threads in
        smaller batches, so no worker idles while another ends the scan, but none
        smaller than the images read in a task's own cost (with one thread, cutting
        would only add tasks)."""
        if self._listing.done and self._per_second() is None:
            # none has ended: ``sent`` counts every batch sent so far
            if sent < threads:
                return _first_size(queued, threads, sent, BATCH)
            return min(MAX_BATCH, -(-queued // (WINDOW * threads - sent)))
        return min(self._batch(), max(self._smallest(), queued // threads))

    def _submit(self, *batches: list[Item]) -> distributed.Future[Any]:
        """Send ``batches`` in one message (the first one's future is returned).

        One message, not a message each: the client's stream to the scheduler sends a
        message at once only when it sent none in the last 10 ms (``BatchedSend``'s
        interval), so the second of two tasks submitted one after the other waited
        those 10 ms: on 2 workers, the second worker started its first batch 10 to
        12 ms after the first did (benchmarks/README.md)."""
        count = len(batches)
        futures = self.client.map(scan_batch,
                                  [marshal.dumps(b, MARSHAL_VERSION) for b in batches],
                                  [self._pickled] * count, [self.time_limit] * count,
                                  key="scan_batch", pure=False)
        now = time.monotonic()
        for future, batch in zip(futures, batches, strict=True):
            self._inflight[future] = batch
            self._sent[future] = now
        # The listings taken are let go now, after these batches were sent: letting a
        # future go is a message too, and the client's stream holds one sent within
        # 10 ms of the one before, so the listings let go as soon as taken held the
        # first batches of a scan of 4 roots for 10 ms (benchmarks/README.md). Their
        # workers need not keep them for the rest of the scan.
        self._listing.taken.clear()
        return futures[0]

    def _per_second(self) -> float | None:
        """Images read per second, on the average so far: from the readers' times once
        results have been fetched; before, from the batches finished, counted from their
        sending (an underestimate, so batches grow no larger than the readers' figures
        would make them): the next batch is sent before a finished one's results are
        fetched, and this way a scan of the benchmarks' library on one worker goes in 5
        or 6 tasks where it went in 9 or 10 (benchmarks/README.md)."""
        if self._spent:
            return self._read / self._spent
        if self._waited:
            return self._returned / self._waited
        return None

    def _batch(self) -> int:
        """Images per task: BATCH, or more (up to MAX_BATCH) when BATCH of the images
        read so far take less than TASK_WORK on the average (500 for the small images
        of the benchmarks' library, 0.2 ms each; BATCH for real disks)."""
        rate = self._per_second()
        if rate is None:
            return BATCH
        return max(BATCH, min(MAX_BATCH, round(TASK_WORK * rate)))

    def _smallest(self) -> int:
        """The fewest images worth a task: as many as are read, on the average so far,
        in TASK_COST (1 until an image has been read; 50 for the small images of the
        benchmarks' library, 1 for real disks)."""
        rate = self._per_second()
        if rate is None:
            return 1
        return max(1, min(BATCH, round(TASK_COST * rate)))

    def _item(self, task: _Task) -> Item:
        return task.path, _compact(task.st), self._expected.pop(task.path, None)

    def _collect(self, queue: deque[_Task]) -> Iterator[ScanResult | None]:
        try:
            # On the scan's own client: ``distributed.wait`` waits on the process's
            # current client, the last one made, and waiting on another client's futures
            # cost a no-op task 36 ms where it costs 8 to 10 (two clusters in one process,
            # as the benchmarks have; benchmarks/README.md).
            with self.client.as_current():
                done = distributed.wait(list(self._inflight), timeout=WAIT,
                                        return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return
        except (CancelledError, OSError) as exc:
            raise _gone(self.client, exc) from None
        now = time.monotonic()
        batches = [(future, self._inflight.pop(future)) for future in done]
        for future, batch in batches:
            sent = self._sent.pop(future)
            if future not in self._claimed:     # a claimed share may be read in part
                self._returned += len(batch)
                self._waited += now - sent
        alone = self._alone in done
        if alone:
            self._alone = None
        # The next batches are sent before these results are fetched (another round
        # trip): the worker that finished has one batch queued at most, which small
        # images read in less time than the client's answer takes.
        self._dispatch(queue)
        # Every result is fetched, and its future let go, before any is yielded: the
        # scheduler frees the results on the workers now, not once the caller has
        # taken them all.
        first = self._claimed.intersection(done)
        self._claimed -= first
        fetched = [(batch, data, future in first) for (future, batch), data in zip(
            batches, self._fetch([future for future, _ in batches]), strict=True)]
        del batches, done, first
        for batch, data, claimed in fetched:
            if isinstance(data, KilledWorker):
                yield from self._lost(batch, data, alone)
                continue
            results, answers = marshal.loads(data)
            if claimed and not self._taken(batch, results, answers, queue):
                continue
            assert claimed or len(results) + len(answers) == len(batch), \
                "each image answered once"
            for result in self._answered(results, answers):
                if result.status != "unchanged":
                    self._read += 1
                    self._spent += result.elapsed
                yield self._stored(result)

    def _taken(self, batch: list[Item], results: list[tuple[Any, ...]],
               answers: list[tuple[str, Compact, bytes]], queue: deque[_Task]) -> bool:
        """Whether a first batch taken from the listing (:func:`scan_listed`) answered
        a head of the share the client claimed for it (:meth:`_claim`), each image
        once: the rest, not read (slow images), goes back to the queue's front, to be
        sent in batches the client sizes from the readers' rate. Otherwise its listing
        was made again (the worker holding it died) and differs from the client's (the
        root changed since): its answers are dropped and the share is sent again."""
        read = len(results) + len(answers)
        if sorted(item[0] for item in batch[:read]) != sorted(
                [r[0] for r in results] + [a[0] for a in answers]):
            self._retry.append(batch)
            return False
        for path, compact, _ in reversed(batch[read:]):
            st = listed_stat(*compact)
            queue.appendleft(_Task(0, path, st, self._limit_for(st)))
        return True

    def _fetch(self, futures: list[distributed.Future[Any]]) -> list[bytes | KilledWorker]:
        """The results of finished batches' tasks, those that succeeded fetched in one
        gather (one round trip, the scheduler asking their workers at once: the two
        first batches of the library's scan on 2 workers end together, and were
        fetched one after the other), or the KilledWorker each failed with; another
        failure of a task (imgscan missing on the worker ...) is a ClusterError. One
        task's KilledWorker fails the whole gather (a worker died holding a finished
        result, and the task run again killed its worker too): the results are then
        fetched one by one, so that only that batch goes to :meth:`_lost`, as each
        did before they were gathered together."""
        finished = [future for future in futures if future.status == "finished"]
        fetched: list[bytes | KilledWorker] = []
        try:
            try:
                gathered = dict(zip(finished, _gathered(finished, self.client),
                                    strict=True))
            except KilledWorker:
                gathered = {}
            for future in futures:
                try:
                    fetched.append(gathered[future] if future in gathered
                                   else _result(future, self.client))
                except KilledWorker as exc:
                    fetched.append(exc)
        except ClusterError:
            raise
        except Exception as exc:
            raise ClusterError(f"{_address(self.client)}: a scan task failed on the "
                               f"cluster: {type(exc).__name__}: {exc}") from None
        return fetched

    def _answered(self, results: list[tuple[Any, ...]],
                  answers: list[tuple[str, Compact, bytes]]) -> Iterator[ScanResult]:
        """The results of a batch's task (:func:`scan_batch`): those :func:`packed`,
        then the reader's answers decoded as the local pool's parent decodes them (a
        file that is not an image counted, and not yielded)."""
        for values in results:
            yield unpacked(values)
        for path, compact, body in answers:
            elapsed, seq, wire = marshal.loads(body)
            result = self._result(_Task(seq, path, listed_stat(*compact), self.time_limit),
                                  elapsed, wire)
            if result is not None:
                yield result

    def _lost(self, batch: list[Item], exc: KilledWorker,
              alone: bool) -> Iterator[ScanResult]:
        """A batch whose workers died: split and sent again; one image sent again
        alone (a task queued on a worker that another task kills fails with it); blamed
        when it killed its worker with nothing else in flight."""
        if len(batch) > 1:
            half = len(batch) // 2
            self._retry.extendleft([batch[half:], batch[:half]])
            return
        if not alone:
            self._suspects.append(batch)
            return
        path = batch[0][0]
        yield ScanResult(path, "error", None, error=error_member(
            "WorkerCrashed", "worker", None,
            f"{path}: the Dask worker reading it died on every try ({exc})"))

    def _stored(self, result: ScanResult) -> ScanResult:
        """An ``unchanged`` answer with what the catalog recorded (as a local rescan's)."""
        if result.status != "unchanged" or self._catalog is None:
            return result
        info, check, error = self._catalog.stored(result.path)
        return result.replace(info=info, check=check, error=error)

    def _stop_workers(self, graceful: bool) -> None:
        self._listing.cancel()
        if self._first:     # never claimed: the scan ended before its first dispatch
            with contextlib.suppress(Exception):
                self.client.cancel(self._first)
            self._first = []
        if self._inflight:
            with contextlib.suppress(Exception):
                self.client.cancel(list(self._inflight))
            self._inflight.clear()
            self._sent.clear()
        self._alone = None
        self._close_cluster()

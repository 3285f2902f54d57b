"""The parallel scan: a small pool of forked workers, one image at a time each.

This module is the pool and its scheduler; what a worker does with one image is
:mod:`.worker`, the frames on the pipes between them :mod:`.pipe`.

Why an own pool rather than :mod:`multiprocessing`: the pool must survive
what a hostile image can do to the process reading it (hang in a decoder
loop, exhaust memory, crash the interpreter), cost next to nothing to start
(a whole scan of a thousand small images takes a quarter of a second), and know at
every moment which image each worker holds, so that the image, not the scan,
is blamed. So:

- workers are forked from the scanning process once its imports are done
  (the profile is loaded before, once, and inherited) and respawned the same
  way; they ignore SIGINT, so Ctrl-C reaches only the parent, which kills them;
- tasks go to a worker in small batches over a pipe (``marshal``: built in, no
  import cost, fast for the JSON-shaped ``info`` objects; BATCH tasks, more for
  images read fast, so that a batch holds some BATCH_WORK of reading), results come
  back one per image as it finishes, so the first task of a worker's batch with no
  result yet is the one it is working on;
- that task is killed at its time limit (``Timeout``), blamed when the worker
  dies (``WorkerCrashed``, with the signal or exit status); the rest of the
  batch goes back to the queue and a new worker is forked. A worker on one
  image for over STALLED seconds is sent nothing more, and the tasks it holds
  behind that image (up to 2 * MAX_BATCH - 1 of fast images) are queued again for
  the other workers when that image took MOVED_AFTER times the scan's mean: whichever
  copy of a task is answered first counts, the other's answer is dropped
  (:meth:`ScanRun._move`). So with two workers or more, fast images wait behind a
  hung one about STALLED seconds, not its time limit; with one, until it is killed;
- each worker runs under RLIMIT_AS (``MemoryLimit`` when an allocation fails).

Files the catalog already holds with the same size, mtime, inode, device and
header digest are not sent to a worker at all (status ``unchanged``).
"""

from __future__ import annotations

import marshal
import os
import select
import sys
import time
from _thread import allocate_lock
from collections import deque

from .. import limits
from ..errors import error_member
from ..remote import is_url
from .pipe import (
    ERROR,
    FRAME_BUDGET,
    NOT_IMAGE,
    RENDERED,
    RESULTS_READ,
    read_frames,
    task_frame,
    write_frame,
)
from .result import FileIdentity, Fingerprint, ScanResult
from .walk import Walk, head_digest, read_head
from .worker import FINGERPRINT_ALGORITHM, Options, worker_main

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
    from signal import SIGKILL
    from types import TracebackType
    from typing import Any

    from .catalog import Catalog

    Paths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]

    from typing import Protocol

    class Discovery(Protocol):
        """What a scan takes its files from: a :class:`Walk`, or another listing."""

        skipped: int

        def __iter__(self) -> Iterator[tuple[str, os.stat_result | OSError]]: ...
else:
    from _signal import SIGKILL  # not the signal module's enums (see worker.py)

#: Tasks per batch sent to a worker, at least; a worker is topped up while it holds at
#: most one batch, so it never waits for the parent, and the pipe never fills (no
#: deadlock).
BATCH = 8
#: Seconds of reading a batch is made to hold, at the mean time of the images answered
#: so far, with BATCH to MAX_BATCH tasks (:meth:`ScanRun._batch_size`). The parent naps
#: NAP (1 to 1.5 ms) while every worker holds more than a batch: batches of BATCH images
#: of 0.08 ms were answered within the nap, and each worker idled half the scan of the
#: 1000-image library (benchmarks/README.md, issue 18).
BATCH_WORK = 0.004
MAX_BATCH = 64
#: Seconds on one image after which a worker is considered stalled and sent no more
#: tasks (most images take milliseconds; the time limit is far longer).
STALLED = 1.0
#: How many times the scan's mean time an image a stalled worker's image must have
#: taken for the tasks behind it to be moved to the other workers (:meth:`ScanRun._moves`).
MOVED_AFTER = 10
#: Seconds the parent sleeps before reading results while every worker is busy.
NAP = 0.001
#: The catalog is committed at least this often (seconds) and every this many results.
COMMIT_INTERVAL = 0.5
COMMIT_RESULTS = 200
#: This process's ends of every worker's pipes, whichever pool holds the worker (a scan's,
#: or a Dask worker's kept readers, :mod:`.dask_pool`): a new worker closes them all, so
#: that each worker reads the end of its task pipe when its own pool lets it go.
_PIPES: set[int] = set()
#: Held while pipes are made, tracked and closed around a fork: a Dask worker with
#: several threads runs batches at once, and a reader forked by one must not inherit
#: the pipe ends another is still setting up (its reader's death would never be seen).
_PIPES_LOCK = allocate_lock()


class ClusterError(Exception):
    """The cluster a scan runs on cannot be reached, went away, or cannot see a path
    (see :mod:`.dask_pool`); defined here so that the CLI can name it without dask."""


class _Task:
    __slots__ = ("answered", "path", "seq", "st", "time_limit", "twin")

    def __init__(self, seq: int, path: str, st: os.stat_result, time_limit: float) -> None:
        self.seq = seq
        self.path = path
        self.st = st
        self.time_limit = time_limit
        #: The task's copy queued again while this one waits behind a stalled worker's
        #: image (or the task it copies); its answer is the one that comes first.
        self.twin: _Task | None = None
        #: Whether this task of a pair was answered (only twins are marked).
        self.answered = False


def _task_frame(batch: list[_Task]) -> bytes:
    return task_frame((t.seq, t.path, t.st.st_dev, t.st.st_ino) for t in batch)


class _Worker:
    __slots__ = ("buffer", "moved", "pending", "pid", "result_fd", "started", "task_fd")

    def __init__(self, pid: int, task_fd: int, result_fd: int) -> None:
        self.pid = pid
        self.task_fd = task_fd
        self.result_fd = result_fd
        self.buffer = bytearray()
        #: Tasks sent and not answered, in the order the worker takes them.
        self.pending: deque[_Task] = deque()
        #: When the worker began pending[0] (at the latest).
        self.started = 0.0
        #: The seq of the stalled task the tasks behind it were last moved from.
        self.moved = 0


def reap(worker: _Worker, kill: bool) -> int:
    """Close the pipes of a worker no pool holds and wait for it (killed first if
    ``kill``; otherwise it reads the end of its task pipe and exits); its wait status."""
    if kill:    # not reaped yet, so the pid is still this worker's
        os.kill(worker.pid, SIGKILL)
    with _PIPES_LOCK:
        for fd in (worker.task_fd, worker.result_fd):
            _PIPES.discard(fd)
            os.close(fd)
    _, status = os.waitpid(worker.pid, 0)
    return status


def _death(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        import signal  # the names' enum: only for this message (see worker.py)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {sig} ({name})"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


class ScanRun:
    """The results of one scan as they arrive (see :func:`.scan.scan`).

    An iterator of :class:`ScanResult`, and a context manager: leaving the
    ``with`` block early (an exception, Ctrl-C, ``break``) stops the workers
    and closes the scan in the catalog as interrupted, keeping every result
    recorded so far. Counters for the summary: ``skipped`` (files that are not
    images, ``not_images``, and FIFOs, sockets, devices and directory symlinks,
    never opened), ``discovered`` (entries considered), ``interrupted``.
    """

    #: Whether this process forks the workers (the cluster's scan runs them elsewhere).
    FORKS = True
    #: The link to the cluster's dashboard, for a scan on a cluster that has one.
    dashboard: str | None = None
    #: Called when every result so far has been yielded and the scan is about to wait
    #: for more (a worker's answer, a commit, the walk's next steps): a consumer that
    #: keeps what it prints (``imgscan scan``'s report) writes it then, once for the
    #: results that came together, never behind a slow image. A rescan whose files are
    #: all unchanged never waits for a worker: such a consumer writes every so many
    #: results too (:data:`imgscan.report.KEPT_LINES`).
    waiting: Callable[[], None] | None = None

    def __init__(self, paths: Paths, *, jobs: int | None, profile: str | None,
                 info_only: bool, fingerprint: bool, catalog: str | Catalog | None,
                 time_limit: float, memory_limit: int | None,
                 external_dir: str | None, listed: bool = False,
                 verify_manifest: bool = False) -> None:
        if isinstance(paths, (str, os.PathLike)):   # one path, not a list of letters
            paths = [paths]
        self.paths = [os.fspath(p) for p in paths]
        if self.FORKS and any(is_url(p) for p in self.paths) and "obstore" in sys.modules:
            # The workers are forked, and the remote client's threads do not survive a
            # fork: a worker of a process that has used it would hang on its first read.
            raise ValueError("a scan of URLs runs in a process that has not read a remote "
                             "image itself (the client does not survive fork): use "
                             "`imgscan scan` or a fresh process")
        self.jobs = max(1, jobs or cores())
        loaded = []
        if not info_only:
            from ..policy import load_profiles
            loaded = load_profiles(profile)   # once, here: the workers inherit them
        #: The profiles' names joined by commas, as the catalog records them.
        self.profile_name = ",".join(p.name for p in loaded) or None
        self.options = Options(loaded, fingerprint,
                               max(1, cores() // self.jobs),
                               external_dir, memory_limit, listed, verify_manifest)
        self.time_limit = time_limit
        self.not_images = 0
        self.discovered = 0
        self.interrupted = False
        #: Paths the walk could not read (directories, dangling links): the catalog
        #: does not take the files it knew under them for missing.
        self._unreadable: list[str] = []
        self._walk: Discovery = Walk(self.paths)
        # Opened here, so that a catalog that cannot be used fails the call, not the scan.
        self._owns_catalog = isinstance(catalog, str)
        if isinstance(catalog, str):
            from .catalog import Catalog
            catalog = Catalog(catalog)
        self._catalog: Catalog | None = catalog
        self._uncommitted = 0
        self._committed = time.monotonic()
        self._workers: dict[int, _Worker] = {}      # by result fd
        #: Images answered by the workers and the seconds they took, and the tasks of a
        #: batch made from them at each read of answers (:meth:`_batch_size`).
        self._answer_count = 0
        self._answer_seconds = 0.0
        self._tasks_a_batch = BATCH
        self._poll = select.poll()
        self._gen = self._run()

    def for_report(self, as_json: bool) -> None:
        """Make the results only what ``imgscan scan``'s report prints and counts (its
        text line, or with ``as_json`` its JSON line as ``rendered``, written by the
        worker): a result's ``info`` then holds only the members the report reads
        (:data:`.worker.REPORT_KEYS`), its ``check`` only the verdicts and the rules that
        failed or warned (:func:`.worker.report_check`), and ``identity`` is None. Only
        for a scan this process forks (a cluster's tasks take their options as they were
        made) and without a catalog (which keeps whole results); call it before
        iterating."""
        if self.FORKS and self._catalog is None:
            self.options.report = "json" if as_json else "text"

    # -- iterator and context manager ------------------------------------------------
    @property
    def skipped(self) -> int:
        """Entries skipped: not images, or never opened (FIFOs, sockets, devices, ...)."""
        return self.not_images + self._walk.skipped

    def __iter__(self) -> Iterator[ScanResult]:
        # the generator itself: a ``for`` loop over the run then resumes it directly,
        # without a call of __next__ a result
        return self._gen

    def __next__(self) -> ScanResult:
        return next(self._gen)

    def close(self) -> None:
        """Stop now: workers killed, the catalog closed as interrupted (if not finished)."""
        self._gen.close()
        if self._owns_catalog and self._catalog is not None:    # never iterated
            self._catalog.close()
            self._catalog = None

    def __enter__(self) -> ScanRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the scan ----------------------------------------------------------------------
    def _run(self) -> Generator[ScanResult, None, None]:
        finished = False
        scan_id = 0
        try:
            if self._catalog is not None:
                scan_id = self._catalog.begin_scan(
                    [p if is_url(p) else os.path.abspath(p) for p in self.paths],
                    self.profile_name,
                    FINGERPRINT_ALGORITHM if self.options.fingerprint else None,
                    self.options.verify_manifest)
            yield from self._loop(scan_id)
            finished = True
        finally:
            self.interrupted = not finished
            self._stop_workers(graceful=finished)
            self._close_catalog(scan_id)

    def _close_catalog(self, scan_id: int) -> None:
        catalog = self._catalog
        if catalog is None:
            return
        try:
            if scan_id:     # begun: close the scan (which commits)
                catalog.finish_scan(scan_id, self.interrupted, self._unreadable)
        finally:
            if self._owns_catalog:
                catalog.close()
                self._catalog = None

    def _loop(self, scan_id: int) -> Iterator[ScanResult]:
        catalog = self._catalog
        queue: deque[_Task] = deque()
        # Listed paths go to the workers as they are: an image's own error (a missing
        # file, a directory) is the one `imgscan info` gives in process.
        files = iter(((p, _UNSTATED) for p in self.paths) if self.options.listed
                     else self._walk)
        walking = True
        seq = 0
        while True:
            # Keep enough tasks queued for every worker to be topped up.
            while walking and len(queue) < self._queued():
                item = next(files, None)
                if item is None:
                    walking = False
                    break
                path, st = item
                self.discovered += 1
                if isinstance(st, OSError):
                    self._unreadable.append(path)
                    yield self._record(scan_id, ScanResult(
                        path, "error", None, error=error_member(
                            "OSError", "file", None, f"{path}: {st.strerror or st}")))
                elif catalog is not None and (digest := self._unchanged(catalog, path, st)):
                    info, check, error = catalog.stored(path)
                    yield self._record(scan_id, ScanResult(
                        path, "unchanged", _identity(st, digest), info=info, check=check,
                        error=error))
                else:
                    seq += 1
                    queue.append(_Task(seq, path, st, self._limit_for(st)))
            if not queue and not self._busy():
                return      # the walk is over: the filling above stops only then or when full
            self._dispatch(queue)
            waiting = self.waiting
            if waiting is not None:
                waiting()
            for done in self._collect(queue):
                if done is not None:
                    yield self._record(scan_id, done)
            if waiting is not None:
                waiting()   # nor behind a commit or the walk's next steps
            self._commit_if_due()   # also while one slow image holds every result back

    def _queued(self) -> int:
        """Tasks to keep queued: enough for every worker to be topped up."""
        return 2 * self._tasks_a_batch * self.jobs

    def _batch_size(self) -> int:
        """Tasks per batch: BATCH, or as many as read in BATCH_WORK at the mean time of
        the images answered so far (MAX_BATCH at most), once a batch was answered."""
        if self._answer_count < BATCH:
            return BATCH
        # BATCH_WORK / the mean, without dividing by 0 seconds
        fits = BATCH_WORK * self._answer_count
        if self._answer_seconds * MAX_BATCH <= fits:
            return MAX_BATCH
        return max(BATCH, int(fits / self._answer_seconds))

    def _busy(self) -> bool:
        """Whether any task sent to a worker is still to be answered."""
        return any(w.pending for w in self._workers.values())

    def _record(self, scan_id: int, result: ScanResult) -> ScanResult:
        """Store ``result`` in the catalog (if any), committing when one is due."""
        if self._catalog is not None:
            self._catalog.record(result, scan_id)      # an unchanged one is a touch
            self._uncommitted += 1
            self._commit_if_due()
        return result

    def _commit_if_due(self) -> None:
        """Commit every COMMIT_RESULTS results and at least every COMMIT_INTERVAL: an
        open write transaction holds the catalog's lock against another scan."""
        if self._catalog is None or not self._uncommitted:
            return
        now = time.monotonic()
        if self._uncommitted >= COMMIT_RESULTS or now - self._committed >= COMMIT_INTERVAL:
            self._catalog.commit()
            self._uncommitted = 0
            self._committed = now

    def _unchanged(self, catalog: Catalog, path: str, st: os.stat_result) -> str | None:
        """The header digest when the catalog holds this very file, else None.

        The digest is read only when the cheap identity (size, mtime, inode,
        device) matches: a changed file goes to a worker, which reads it anyway.
        """
        stored = catalog.lookup(path)
        if stored is None or (stored.size, stored.mtime_ns, stored.inode, stored.device) != (
                st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev):
            return None
        if is_url(path):
            # an object's identity holds its ETag (the walk's inode): nothing to read
            return stored.header_digest
        try:
            head = read_head(path, st.st_dev, st.st_ino)
        except OSError:
            return None         # the worker will say what is wrong with it
        digest = None if head is None else head_digest(head)
        return digest if digest == stored.header_digest else None

    def _limit_for(self, st: os.stat_result) -> float:
        if not self.options.fingerprint:
            return self.time_limit
        stored = getattr(st, "st_blocks", 0) * 512 or st.st_size
        return self.time_limit + stored / limits.SCAN_FINGERPRINT_MIN_RATE

    # -- the pool ------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        with _PIPES_LOCK:
            pid, task_w, result_r = self._fork()
        worker = _Worker(pid, task_w, result_r)
        self._adopt(worker)
        return worker

    def _fork(self) -> tuple[int, int, int]:
        """Fork a reader (with :data:`_PIPES_LOCK` held): its pid and the parent's ends
        of its task and result pipes."""
        task_r, task_w = os.pipe()
        result_r, result_w = os.pipe()
        _PIPES.update((task_w, result_r))
        try:
            pid = os.fork()
        except BaseException:
            _PIPES.difference_update((task_w, result_r))
            for fd in (task_r, task_w, result_r, result_w):
                os.close(fd)
            raise
        if pid == 0:    # the worker: never returns into the parent's code
            code = 0
            try:
                import gc
                gc.freeze()     # the parent's objects (a catalog connection ...) are
                                # never finalised here; also keeps their pages shared
                for fd in _PIPES:
                    os.close(fd)
                worker_main(task_r, result_w, self.options)
            except BaseException:
                code = 70
            finally:
                os._exit(code)
        os.close(task_r)
        os.close(result_w)
        return pid, task_w, result_r

    def _adopt(self, worker: _Worker) -> None:
        """Make ``worker`` (idle: just forked, or kept from another scan) one of ours."""
        self._workers[worker.result_fd] = worker
        self._poll.register(worker.result_fd, select.POLLIN)

    def _detach(self, worker: _Worker) -> None:
        """Let ``worker`` go without stopping it (a kept reader, :mod:`.dask_pool`)."""
        self._poll.unregister(worker.result_fd)
        del self._workers[worker.result_fd]

    def _retire(self, worker: _Worker, kill: bool) -> int:
        """Close a worker's pipes and reap it; returns its wait status."""
        self._detach(worker)
        return reap(worker, kill)

    def _stop_workers(self, graceful: bool) -> None:
        """Graceful: the workers read EOF and exit; otherwise they are killed."""
        for worker in list(self._workers.values()):
            self._retire(worker, kill=not graceful)

    def _dispatch(self, queue: deque[_Task]) -> None:
        while len(self._workers) < self.jobs and len(queue) > BATCH * len(self._workers):
            self._spawn()
        now = time.monotonic()
        batch_size = self._tasks_a_batch
        for worker in self._workers.values():
            # A worker stuck on one image (until its time limit) gets no more work, and
            # what it holds behind that image goes to the others.
            if worker.pending and now - worker.started > STALLED:
                if worker.moved != worker.pending[0].seq and self._moves(now - worker.started):
                    self._move(worker, queue)
                continue
            if queue and len(worker.pending) <= batch_size:
                # The tail of a scan goes out one by one, so no worker idles behind another.
                size = min(batch_size, max(1, len(queue) // (2 * self.jobs)))
                batch = [queue.popleft() for _ in range(min(size, len(queue)))]
                frame = _task_frame(batch)
                while len(frame) > FRAME_BUDGET and len(batch) > 1:
                    queue.appendleft(batch.pop())
                    frame = _task_frame(batch)
                if not worker.pending:
                    worker.started = now
                worker.pending.extend(batch)
                # A worker that died since is seen by its result pipe's end of file next;
                # that blames its task and requeues the rest, this batch included.
                try:
                    write_frame(worker.task_fd, frame)
                except BrokenPipeError:
                    continue

    def _moves(self, stalled: float) -> bool:
        """Whether the tasks behind an image read for ``stalled`` seconds (over STALLED)
        go to the other workers: only when there are others, and when that image took
        MOVED_AFTER times the scan's mean so far, an image out of line (a hang amid fast
        images), not a library of slow ones, whose tasks would all be read twice."""
        return self.jobs > 1 and self._answer_count > 0 and (
            stalled * self._answer_count > MOVED_AFTER * self._answer_seconds)

    def _move(self, worker: _Worker, queue: deque[_Task]) -> None:
        """Queue again, first, a copy of each task a stalled worker holds behind the image
        it is on: the copies go to the other workers (or to a new one once this one is
        killed at its time limit), and of the two answers of a task the first counts
        (:meth:`_results`). A task already copied is not copied again."""
        worker.moved = worker.pending[0].seq
        copies = []
        for task in list(worker.pending)[1:]:
            if task.twin is None:
                copy = _Task(task.seq, task.path, task.st, task.time_limit)
                copy.twin = task
                task.twin = copy
                copies.append(copy)
        queue.extendleft(reversed(copies))

    def _collect(self, queue: deque[_Task]) -> Iterator[ScanResult | None]:
        """Wait for results (or a deadline), and deal with dead and overdue workers."""
        batch_size = self._tasks_a_batch
        if all(len(w.pending) > batch_size for w in self._workers.values()):
            # Every worker has work queued: let results pile up in the pipes, to be read
            # several at a time. On small images a worker answers every ~0.2 ms, and
            # waking for each answer cost the parent half as much CPU again (56 against
            # 37 µs an image), CPU the workers share.
            time.sleep(NAP)
        now = time.monotonic()
        deadlines = [w.started + w.pending[0].time_limit
                     for w in self._workers.values() if w.pending]
        wait = max(0.0, min([now + COMMIT_INTERVAL, *deadlines]) - now)
        for fd, _ in self._poll.poll(int(wait * 1000) + 1):
            worker = self._workers[fd]
            data = os.read(fd, RESULTS_READ)
            if data:
                yield from self._results(worker, data)
            else:
                status = self._retire(worker, kill=False)
                yield from self._blame(worker, queue, "WorkerCrashed",
                                       f"the worker reading it {_death(status)}")
        now = time.monotonic()
        for worker in list(self._workers.values()):
            if worker.pending and now - worker.started > worker.pending[0].time_limit:
                if select.select([worker.result_fd], [], [], 0)[0]:
                    continue    # an answer came while our caller held us: read it first
                self._retire(worker, kill=True)
                limit = worker.pending[0].time_limit
                yield from self._blame(worker, queue, "Timeout",
                                       f"no result within {limit:g} s; the worker was killed")

    def _results(self, worker: _Worker, data: bytes) -> Iterator[ScanResult | None]:
        worker.buffer += data
        # every answer of this read came by now: the next task began then at the latest
        now = time.monotonic()
        for body in read_frames(worker.buffer):
            task = worker.pending.popleft()
            worker.started = now
            twin = task.twin
            if twin is not None:    # moved from a stalled worker, or the task it copies
                if twin.answered:
                    continue        # the other copy's answer came first
                task.answered = True
            yield self._answer(task, body)
        self._tasks_a_batch = self._batch_size()

    def _answer(self, task: _Task, body: bytearray) -> ScanResult | None:
        """The result of a worker's answer ``body`` to ``task``, counted."""
        elapsed, seq, wire = marshal.loads(body)
        assert task.seq == seq, "a worker answers its tasks in order"
        self._count_answer(elapsed)
        return self._result(task, elapsed, wire)

    def _count_answer(self, seconds: float) -> None:
        """One more image answered, read in ``seconds``: what batches are sized by
        (:meth:`_batch_size`), and a stalled image is compared with (:meth:`_moves`)."""
        self._answer_count += 1
        self._answer_seconds += seconds

    def _result(self, task: _Task, elapsed: float, wire: tuple[Any, ...]) -> ScanResult | None:
        kind, digest = wire[0], wire[1]
        if kind == RENDERED:
            return ScanResult(task.path, "scanned", None, rendered=wire[2], elapsed=elapsed)
        if kind == NOT_IMAGE:
            self.not_images += 1
            return None
        identity = None if digest is None else _identity(task.st, digest)
        if kind == ERROR:
            return ScanResult(task.path, "error", identity, error=wire[2], elapsed=elapsed)
        info, check, fp = wire[2:5]
        return ScanResult(task.path, "scanned", identity, info=info, check=check,
                          fingerprint=None if fp is None else Fingerprint(*fp),
                          elapsed=elapsed, rendered=wire[5] if len(wire) > 5 else None)

    def _blame(self, worker: _Worker, queue: deque[_Task], kind: str,
               reason: str) -> Iterator[ScanResult]:
        """The task a lost worker held is an error; the rest of its batch is requeued
        (but the tasks another worker holds a copy of: the copy is the task now)."""
        if not worker.pending:
            return
        task = worker.pending.popleft()
        rest = []
        for other in worker.pending:
            if other.twin is None:
                rest.append(other)
            else:
                other.twin.twin = None
        queue.extendleft(reversed(rest))
        worker.pending.clear()
        if task.twin is not None:
            if task.twin.answered:
                return      # its copy was answered already
            task.answered = True
        yield ScanResult(task.path, "error", None,
                         error=error_member(kind, "worker", None, f"{task.path}: {reason}"),
                         elapsed=time.monotonic() - worker.started)


class Listed:
    """Files already listed (``(path, stat_result)``), in place of a :class:`Walk`."""

    skipped = 0

    def __init__(self, files: Iterable[tuple[str, os.stat_result]]) -> None:
        self.files = files

    def __iter__(self) -> Iterator[tuple[str, os.stat_result | OSError]]:
        return iter(self.files)


#: The stat result of a listed path, which the parent never stats (see :func:`read_each`).
_UNSTATED = os.stat_result((0,) * 10)


def cores() -> int:
    """The cores this process may run on (a container or taskset may allow fewer)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:      # not Linux
        return os.cpu_count() or 1


def _identity(st: os.stat_result, digest: str) -> FileIdentity:
    return FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, digest)


def read_each(paths: Sequence[str], *, jobs: int | None = None,
              time_limit: float = limits.SCAN_TIME_LIMIT,
              memory_limit: int | None = limits.SCAN_MEMORY_LIMIT,
              external_dir: str | None = None, verify_manifest: bool = False,
              render: Callable[[Mapping[str, Any]], str] | None = None) -> ScanRun:
    """The info object of each of ``paths`` (``imgscan info A B ...``), read by the
    scan's pool: every path is one task, read as an image whatever it holds (no
    directory walk, no file skipped as not an image), and yields one
    :class:`ScanResult` (``scanned`` or ``error``) per path as it finishes, with the
    scan's time and memory limits per image. With ``render`` (a module-level function
    of the info object), a scanned result holds ``render(info)`` as its ``rendered``
    text, written by the worker, instead of the object.
    """
    run = ScanRun(paths, jobs=jobs, profile=None, info_only=True, fingerprint=False,
                  catalog=None, time_limit=time_limit, memory_limit=memory_limit,
                  external_dir=external_dir, listed=True, verify_manifest=verify_manifest)
    run.options.render = render     # before the first fork: the workers inherit it
    return run

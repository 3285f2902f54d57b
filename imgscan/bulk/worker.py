"""A scan worker's work: one image at a time, within its time and memory limits.

A worker is a process forked by the pool (:mod:`.runner`), so whatever a hostile
image does to it (a decoder loop, exhausted memory, a crash) costs that image
only: it runs under RLIMIT_AS (``MemoryLimit`` when an allocation fails), the
parent kills it at the image's time limit (``Timeout``), and every other
exception becomes that image's error, never the scan's.
"""

from __future__ import annotations

import os
import time

from ..errors import ImageError, error_member, error_of

# Imported here, before the workers fork, so each worker inherits it instead of
# importing it again: the image and the stages every info object needs (its layout,
# guest inspection and the contract). Decoders stay lazy (one per format seen).
from ..image import Image
from ..remote import is_url
from ..vocabulary import VIOLATIONS
from .pipe import ERROR, NOT_IMAGE, RENDERED, SCANNED, read_tasks, result_frame, write_frame
from .walk import (
    RAW_HEAD_BYTES,
    head_digest,
    raw_is_image,
    read_head,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from signal import SIG_IGN, SIGINT
    from signal import signal as set_handler
    from typing import Any

    from ..policy import Profile
else:
    # The C half of the signal module: the Python half builds enums of every signal's
    # name at import (with the enum module, about 13 M instructions, a sixth of what
    # `imgscan info` of one image costs), which starting a pool does not need.
    from _signal import SIG_IGN, SIGINT
    from _signal import signal as set_handler

#: What ``fingerprint=True`` computes (the catalog's duplicate search needs its chunks).
FINGERPRINT_ALGORITHM = "xxh3-128-chunked"


class Options:
    """What every image of one scan is asked for (inherited by the forked workers)."""

    __slots__ = ("external_dir", "fingerprint", "listed", "memory_limit", "profiles", "render",
                 "report", "threads", "verify_manifest")

    def __init__(self, profiles: Sequence[Profile], fingerprint: bool, threads: int,
                 external_dir: str | None, memory_limit: int | None,
                 listed: bool = False, verify_manifest: bool = False) -> None:
        #: Every image is judged by each (none: facts only), from its facts read once.
        self.profiles = list(profiles)
        self.fingerprint = fingerprint
        #: Hashing threads per fingerprint: the cores are shared by the workers.
        self.threads = threads
        self.external_dir = external_dir
        self.memory_limit = memory_limit
        #: Every task is a path the user named (``imgscan info A B ...``): read as an
        #: image whatever it holds, never skipped as not one (see :func:`info_of`).
        self.listed = listed
        #: OVF packages: their manifest's digests and signature verified.
        self.verify_manifest = verify_manifest
        #: A listed image's output (``imgscan info``'s text or JSON line), written here
        #: rather than by the parent: the parent, which prints every image's, is then
        #: no more than a reader of pipes, and the cores share the rendering (set by
        #: :func:`.runner.read_each`).
        self.render: Callable[[Mapping[str, Any]], str] | None = None
        #: ``text`` or ``json``: the results are only for ``imgscan scan``'s report (no
        #: catalog keeps them), so a scanned image's answer holds what the report reads
        #: (:func:`for_report`), not the whole info object for the parent to decode and,
        #: for ``--json``, encode again (set by :meth:`.runner.ScanRun.for_report`).
        self.report: str | None = None


def scan_image(path: str, options: Options,
               identity: tuple[int, int] | None = None) -> tuple[Any, Any, Any] | None:
    """The per-image work: the info object, the check object (with several profiles,
    the object ``check --json`` prints for them), the fingerprint; None when the file
    is not an image. A raw image is one by its guest's first bytes, read from the image
    (:func:`.walk.raw_is_image`), not the file's: they differ where a container holds
    raw bytes (an OVA whose disk is raw: a tar header, then the disk's MBR), and a
    scan that keeps digests and one that does not must find the same images.

    With ``identity`` (the walk's device and inode), the image's open checks that the
    file it opened is still that one before it reads a byte (a report's scan, which
    reads no head whose open would have checked it): ImageError when it is not.

    Module-level on purpose: the worker looks it up at each call, so a test
    can replace it before the pool forks.
    """
    with Image(path, external_dir=options.external_dir,
               verify_manifest=options.verify_manifest, identity=identity) as img:
        info = img.info()
        if img.format == "raw" and not raw_is_image(
                path, lambda: img.read(0, RAW_HEAD_BYTES), info):
            return None
        check = None
        if options.profiles:
            from ..policy import checks
            from ..report.json import judged_object
            check = judged_object(checks(info, options.profiles))
        fp = None
        if options.fingerprint:
            from ..fingerprints import fingerprint
            try:
                f = fingerprint(img, FINGERPRINT_ALGORITHM, threads=options.threads)
            except ImageError:
                # Guest bytes that cannot be read (encrypted, a backing file not opened,
                # a damaged map) have no fingerprint; the facts and the verdict stand,
                # and the info object's findings say why.
                pass
            else:
                fp = (f.algorithm, f.digest, f.virtual_size, f.chunk_size, f.chunks)
    return info, check, fp


def info_of(path: str, options: Options) -> dict[str, Any]:
    """A listed task's work: the info object of ``path`` as ``imgscan info`` reads one
    image in process (no header digest: no catalog keeps it)."""
    with Image(path, external_dir=options.external_dir,
               verify_manifest=options.verify_manifest) as img:
        return img.info()


def _one(path: str, device: int, inode: int, options: Options) -> tuple[Any, ...]:
    """One task's wire result: ``(kind, digest, payload...)``; never raises."""
    digest = None
    identity: tuple[int, int] | None = None
    try:
        if options.listed:
            info = info_of(path, options)
            if options.render is not None:
                return RENDERED, None, options.render(info)
            return SCANNED, None, info, None, None
        if options.report is None:
            # the file's identity is the catalog's: its digest covers the head
            head = read_head(path, device, inode)
            if head is None:
                return NOT_IMAGE, None
            digest = head_digest(head)
        elif is_url(path):
            pass    # an object has no stat to check, and its image's open reads it
        else:
            # A report keeps no digest: the file is only checked to be the one the walk
            # saw, by the open image's descriptor (scan_image); an open, a read and a
            # close less an image, and a stat (benchmarks/README.md, issue 18).
            identity = (device, inode)
        scanned = scan_image(path, options, identity)
        if scanned is None:
            return NOT_IMAGE, digest
        return SCANNED, digest, *scanned
    except ImageError as exc:
        if identity is not None:
            return _as_the_head_answers(path, device, inode, error_of(exc))
        return ERROR, digest, error_of(exc)
    except MemoryError:
        return ERROR, digest, error_member("MemoryLimit", "worker", None,
                                           f"{path}: out of memory (worker limit "
                                           f"{_mib(options.memory_limit)})")
    except OSError as exc:
        if identity is not None:
            return _as_the_head_answers(path, device, inode, _os_error(path, exc))
        return ERROR, digest, _os_error(path, exc)
    except Exception as exc:    # a bug must cost one image, never the scan
        return ERROR, digest, error_member(type(exc).__name__, "imgscan", None,
                                           f"{path}: unexpected {type(exc).__name__}: {exc}")


def _as_the_head_answers(path: str, device: int, inode: int,
                         error: dict[str, Any]) -> tuple[Any, ...]:
    """The answer for a file checked by its open image only (a report's scan) whose image
    failed (``error``): the one the head's read gave when it came first, which it does
    here only for the few that fail. So a file this process may not read answers with the
    read's OSError (the image's open makes it an ImageError), and one that is no longer
    the regular file the walk saw (replaced, a FIFO or a directory now, which the image's
    open refuses) as not an image; any other keeps the image's error."""
    try:
        if read_head(path, device, inode, RAW_HEAD_BYTES) is None:
            return NOT_IMAGE, None
    except OSError as unread:
        return ERROR, None, _os_error(path, unread)
    return ERROR, None, error


def _os_error(path: str, exc: OSError) -> dict[str, Any]:
    return error_member("OSError", "file", None, f"{path}: {exc.strerror or exc}")


#: The info object's members ``imgscan scan``'s text line and summary read.
REPORT_KEYS = ("format", "virtual_size", "boot_mode")


def for_report(path: str, elapsed: float, result: tuple[Any, ...],
               as_json: bool) -> tuple[Any, ...]:
    """A scanned image's wire result as ``imgscan scan``'s report reads it: the info
    object cut to :data:`REPORT_KEYS` (a tenth of its bytes: the parent, which shares the
    cores with the workers, decodes only that), the check object to its verdicts
    (:func:`report_check`), and with ``as_json`` the image's JSON line, rendered here as
    the parent would (:func:`imgscan.report.scan.scan_object`)."""
    kind, digest, info, check, fp = result
    summary = {key: info.get(key) for key in REPORT_KEYS}
    cut = None if check is None else report_check(check)
    if not as_json:
        return kind, digest, summary, cut, fp
    from ..report.json import dumps
    from ..report.scan import scan_object
    from .result import Fingerprint, ScanResult
    whole = ScanResult(path, "scanned", None, info=info, check=check,
                       fingerprint=None if fp is None else Fingerprint(*fp), elapsed=elapsed)
    return kind, digest, summary, cut, fp, dumps(scan_object(whole))


def report_check(check: Mapping[str, Any]) -> dict[str, Any]:
    """What ``imgscan scan``'s line and summary read of a check object (one profile's,
    or the several profiles' object): the verdict, each profile's name and verdict, and
    the ids and statuses of the rules that failed or warned. The whole object embeds
    the info object and every rule's message and evidence: some 3 KB an image with the
    default profile, which the parent would decode for these few members."""
    checks = check.get("checks")
    if isinstance(checks, list):
        return {"verdict": check["verdict"], "checks": [report_check(c) for c in checks]}
    return {"profile": check.get("profile"), "verdict": check["verdict"],
            "rules": [{"id": r["id"], "status": r["status"]} for r in check.get("rules") or []
                      if r.get("status") in VIOLATIONS]}


def _mib(limit: int | None) -> str:
    return "none" if limit is None else f"{limit >> 20} MiB"


def _limit_memory(limit: int | None) -> None:
    """RLIMIT_AS for this worker: what it has mapped now plus ``limit`` bytes."""
    if limit is None:
        return
    import resource
    try:
        with open("/proc/self/statm", "rb") as f:
            base = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        base = 0
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = base + limit
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    # A limit that cannot be set must not make every worker die at birth (each death
    # would be blamed on an image): the scan then runs without it.
    try:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    except (ValueError, OSError):
        return


def worker_main(task_fd: int, result_fd: int, options: Options) -> None:
    """Read batches of ``(seq, path, device, inode)``; answer each (:func:`.pipe.result_frame`)."""
    set_handler(SIGINT, SIG_IGN)    # Ctrl-C is the parent's to handle
    _limit_memory(options.memory_limit)
    for batch in read_tasks(task_fd):
        for seq, path, device, inode in batch:
            start = time.perf_counter()
            result = _one(path, device, inode, options)
            elapsed = time.perf_counter() - start
            if options.report is not None and result[0] == SCANNED:
                result = for_report(path, elapsed, result, options.report == "json")
            try:
                data = result_frame(seq, elapsed, result)
            except ValueError as exc:     # an object a decoder put in its facts by mistake
                data = result_frame(seq, elapsed, (ERROR, result[1], error_member(
                    "ValueError", "imgscan", None, f"{path}: result not serialisable: {exc}")))
            write_frame(result_fd, data)

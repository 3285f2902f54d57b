"""The pipe protocol between the scan's parent and its workers: length-prefixed frames.

Each frame is a 4-byte little-endian length and a ``marshal`` body (built in, no
import cost, fast for the JSON-shaped ``info`` objects). The parent sends
batches of tasks ``[(seq, path, device, inode), ...]``; a worker answers one
frame per task, ``(elapsed, seq, wire)``, in the order it got them, where
``wire`` is ``(kind, header digest, payload...)``: ``SCANNED`` with the info,
check and fingerprint, ``ERROR`` with the error member, ``NOT_IMAGE`` alone,
``RENDERED`` with the image's ``imgscan info`` output (a listed task whose options
render it: the worker writes the text, the parent only prints it).
"""

from __future__ import annotations

import marshal
import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

#: Result kinds on the wire.
SCANNED, ERROR, NOT_IMAGE, RENDERED = 0, 1, 2, 3
#: Length prefix of a frame on a pipe.
FRAME_HEADER = 4
#: Largest task frame (bytes) holding more than one task. A worker holds at most one
#: unread frame when it is topped up, so two frames must fit the pipe (64 KiB on
#: Linux) or the parent would block writing while that worker hangs on an image,
#: and no time limit would fire. One path (at most PATH_MAX, 4096 bytes, 3 bytes
#: each in marshal when not UTF-8) always fits.
FRAME_BUDGET = 24 * 1024
#: Bytes the parent asks of a worker's result pipe at once: what a pipe holds on Linux
#: unless resized, so one read takes whatever is there. A larger request only makes
#: each read allocate (and free) a larger buffer: 13 us against 1 us a read for 1 MiB.
RESULTS_READ = 64 * 1024
#: The ``marshal`` format the frames are written in: version 2, without the references
#: of versions 3 and 4 (an object met twice written once), which cost each frame a
#: table to write and a list to read, and interning each short string read: a
#: scanned image's answer is about 7,200 instructions to write and 8,500 to read in
#: version 4, 5,900 and 6,200 in version 2; a whole info object 29 k / 59 k against
#: 33 k / 47 k (callgrind, benchmarks/README.md, issue 18). ``marshal.loads`` reads
#: every version, so a reader is never told which.
MARSHAL_VERSION = 2


#: Where an answer's ``elapsed`` lies in its body: the tuple's type byte and its
#: 4-byte length, then the float's type byte (``g``, binary, since marshal version 2),
#: then its 8 bytes. First in the tuple, so no other member's size moves it.
ELAPSED_AT = 6
_ELAPSED = struct.Struct("<d")


def task_frame(tasks: Iterable[tuple[int, str, int, int]]) -> bytes:
    """The body of a batch of ``(seq, path, device, inode)`` tasks."""
    return marshal.dumps(list(tasks), MARSHAL_VERSION)


def result_frame(seq: int, elapsed: float, wire: tuple[Any, ...]) -> bytes:
    """The body of one task's answer, ``marshal.loads`` gives ``(elapsed, seq, wire)``;
    ValueError when ``wire`` holds an object marshal cannot write."""
    # float(): an int would be written as marshal's int, where answer_seconds reads a double
    return marshal.dumps((float(elapsed), seq, wire), MARSHAL_VERSION)


def answer_seconds(body: bytes | bytearray) -> float:
    """The reader's time for an answer, read from its body without decoding the rest:
    what a Dask worker's batch, which hands the answers on undecoded, sizes its
    batches by, as the local pool does by the decoded value."""
    seconds: float = _ELAPSED.unpack_from(body, ELAPSED_AT)[0]
    return seconds


def write_frame(fd: int, body: bytes) -> None:
    view = memoryview(len(body).to_bytes(FRAME_HEADER, "little") + body)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_tasks(fd: int) -> Iterator[list[tuple[int, str, int, int]]]:
    """The worker's side: each batch of tasks, until the parent closes the pipe."""
    while (header := _read_exact(fd, FRAME_HEADER)) is not None:
        body = _read_exact(fd, int.from_bytes(header, "little"))
        if body is None:
            return
        yield marshal.loads(body)


def read_frames(buf: bytearray) -> Iterator[bytearray]:
    """The parent's side: the body of each whole frame in ``buf`` (what a worker's pipe
    gave so far), removed from it; a frame not complete yet stays for the next read.
    Undecoded (``marshal.loads`` gives the answer): the local pool decodes them, a Dask
    worker's batch hands them on to the client, which does (:mod:`.dask_pool`)."""
    pos = 0
    try:
        while len(buf) - pos >= FRAME_HEADER:
            size = int.from_bytes(buf[pos:pos + FRAME_HEADER], "little")
            end = pos + FRAME_HEADER + size
            if len(buf) < end:
                break
            body = buf[pos + FRAME_HEADER:end]
            pos = end
            yield body
    finally:
        del buf[:pos]

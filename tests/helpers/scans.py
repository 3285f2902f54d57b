"""Scan results made the way the runner makes them, for tests that fill a catalog
directly (tests/bulk/test_catalog.py, tests/report/test_html.py), a standard
output that watches when a scan's lines are written (:class:`Watched`), and the sizes
of the batches a pool sends (:func:`batch_sizes`)."""

from __future__ import annotations

import marshal
import time
from pathlib import Path

import pytest

import imgscan
from imgscan.bulk import pipe, runner
from imgscan.bulk.result import FileIdentity, ScanResult
from imgscan.bulk.walk import header_digest
from imgscan.errors import error_object
from imgscan.fingerprints import fingerprint
from imgscan.policy import check, load_profile

#: ``scan_result(profile=INFO_ONLY)``: facts only, no check (``scan --info-only``).
INFO_ONLY = ""


def identity(path: Path) -> FileIdentity:
    st = path.stat()
    return FileIdentity(st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev,
                        header_digest(str(path)))


def scan_result(path: Path, profile: str | None = None) -> ScanResult:
    """What the runner yields for ``path``: info, check by ``profile`` (a name or a
    TOML file; None: the default; :data:`INFO_ONLY`: none), fingerprint; or the
    error object when imgscan cannot read it."""
    try:
        with imgscan.open(path) as img:
            info = img.info()
    except imgscan.ImageError as exc:
        return ScanResult(str(path), "error", identity(path),
                          error=error_object(str(path), exc)["error"], elapsed=0.01)
    judged = None if profile == INFO_ONLY else check(info, load_profile(profile))
    return ScanResult(str(path), "scanned", identity(path), info=info, check=judged,
                      fingerprint=fingerprint(str(path)), elapsed=0.02)


class Watched:
    """A fake standard output for an in-process ``imgscan scan`` or ``info`` whose image
    ``slow`` is held back: that image's reading (in a forked worker) waits until every
    line of the ``others`` was written here, or for up to ``patience`` seconds. A
    command that writes the lines it has as soon as it waits for the slow image lets it
    go at once; one that holds them behind it keeps it the whole ``patience``, and
    ``early`` stays False. The worker and this process meet by a file in ``tmp``."""

    def __init__(self, tmp: Path, slow: str, others: list[str],
                 patience: float = 10.0) -> None:
        self.slow = slow
        self.others = others
        self.patience = patience
        self.release = tmp / "release"
        self.gone = tmp / "gone"    # the slow image went on to be read
        self.text = ""
        #: Whether every other image's line was written before the slow one was read.
        self.early = False

    def write(self, text: str) -> int:
        self.text += text
        if not self.release.exists() and all(p in self.text for p in self.others):
            self.early = not self.gone.exists()
            self.release.touch()
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def hold(self, path: str) -> None:
        """Called in the worker before ``path`` is read: waits there for the release."""
        if path != self.slow:
            return
        deadline = time.monotonic() + self.patience
        while not self.release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.gone.touch()


def batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The tasks of each batch the pool sends, as it sends them."""
    sizes: list[int] = []

    def write_frame(fd: int, body: bytes) -> None:
        sizes.append(len(marshal.loads(body)))
        pipe.write_frame(fd, body)

    monkeypatch.setattr(runner, "write_frame", write_frame)
    return sizes

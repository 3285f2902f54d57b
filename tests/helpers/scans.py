"""Scan results made the way the runner makes them, for tests that fill a catalog
directly (tests/bulk/test_catalog.py, tests/report/test_html.py)."""

from __future__ import annotations

from pathlib import Path

import imgscan
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

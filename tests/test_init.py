"""``import imgscan``: light, its public names the real objects on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import imgscan


def test_import_imgscan_reads_no_decoder() -> None:
    """The readers, the bulk scan and the fingerprints wait until first named."""
    code = ("import sys, imgscan\n"
            "print(sorted(m for m in sys.modules if m.startswith('imgscan')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parent)
    assert proc.stdout.strip() == str(sorted(
        ["imgscan", "imgscan.errors", "imgscan.vocabulary"]))


def test_every_public_name_is_there() -> None:
    from imgscan.bulk.scan import scan
    from imgscan.findings import Finding
    from imgscan.fingerprints import fingerprint
    from imgscan.image import SCHEMA_VERSION, Image, open
    from imgscan.version import __version__
    assert (imgscan.Image, imgscan.open, imgscan.Finding, imgscan.scan,
            imgscan.fingerprint, imgscan.SCHEMA_VERSION, imgscan.__version__) == (
                Image, open, Finding, scan, fingerprint, SCHEMA_VERSION, __version__)
    assert all(hasattr(imgscan, name) for name in imgscan.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        imgscan.nothing  # noqa: B018

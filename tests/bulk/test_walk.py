"""The walk's listing of a URL prefix in a child process (imgscan.bulk.walk._objects)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imgscan.bulk.walk import Walk


def test_a_listing_process_that_dies_is_an_error_naming_the_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing child that exits without its error line (killed, or unable to import
    imgscan) is the prefix's error, with the child's last word: never an empty,
    silently successful listing."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: no module named x' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    entries = list(Walk(["s3://bucket/prefix/"]))
    assert len(entries) == 1
    root, error = entries[0]
    assert root == "s3://bucket/prefix/" and isinstance(error, OSError)
    assert "exit status 3" in str(error) and "no module named x" in str(error)

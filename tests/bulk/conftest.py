"""Fixtures of the bulk-scan tests: the generated library (tests/helpers/scan_library.py)
and, for the distributed scan, a real Dask cluster on 127.0.0.1."""

from __future__ import annotations

import pytest
from helpers.scan_library import Library, build_library


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    return build_library(tmp_path_factory.mktemp("library"),
                         tmp_path_factory.mktemp("templates"))

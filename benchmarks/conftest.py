"""Benchmarks need qemu-img to make their images; skip them without it."""

from __future__ import annotations

import shutil

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("qemu-img") is None:
        skip = pytest.mark.skip(reason="qemu-img is needed to make the benchmark images")
        for item in items:
            item.add_marker(skip)

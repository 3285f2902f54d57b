"""The ``--json`` line of a small image's info object: imgscan's writer (the core's
encoder, :mod:`imgscan._core.json_encoder`) beside its oracle and peer, the standard
library's ``json.dumps``, which writes the same bytes (issue 18).

    pytest benchmarks/test_bench_json.py --benchmark-enable --benchmark-group-by=param:fmt
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

import imgscan
from imgscan.report.json import json_line

ENCODERS: dict[str, Callable[[Any], str]] = {"imgscan": json_line, "json.dumps": json.dumps}


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("fmt", ["qcow2", *sorted(images.SMALL_FORMATS)])
def test_info_line(benchmark: BenchmarkFixture, fmt: str, encoder: str) -> None:
    path = images.small_qcow2() if fmt == "qcow2" else images.small_image(fmt)
    with imgscan.open(path) as img:
        info = img.info()
    assert benchmark(ENCODERS[encoder], info) == json.dumps(info)

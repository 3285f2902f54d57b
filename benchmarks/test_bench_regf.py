"""Registry hive lookups (issue 5: full Windows inspection of a system disk in 100 ms).

Run with ``pytest benchmarks/test_bench_regf.py --benchmark-enable``. The
hive is the largest real SYSTEM hive of the corpus (Windows 10 1709, 15 MiB),
decompressed once into ``images.CACHE``; the benchmark opens it from bytes
already in memory (as the NTFS reader hands it over) and runs the product's
``system_facts`` on it: every SYSTEM fact Windows inspection reports.
"""

from __future__ import annotations

import lzma
from pathlib import Path

import images
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from imgscan._core.regf import Hive
from imgscan.guest.windows.hives import Facts, system_facts

HIVES = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "hives"
SYSTEM_XZ = HIVES / "regipy_SYSTEM_WIN_10_1709.xz"


def system_hive() -> Path:
    path = images.CACHE / "SYSTEM_WIN_10_1709.hive"
    if not path.exists():
        images.CACHE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lzma.decompress(SYSTEM_XZ.read_bytes()))
    return path


@pytest.fixture(scope="session")
def system_bytes() -> bytes:
    if not SYSTEM_XZ.exists():
        pytest.skip(f"{SYSTEM_XZ} is absent")
    return system_hive().read_bytes()


def read_system_facts(data: bytes) -> dict[str, object]:
    """What Windows inspection does with a SYSTEM hive handed over as bytes: open it and
    run the product's ``system_facts`` (imgscan.guest.windows.hives)."""
    facts = Facts()
    system_facts(Hive(data, "SYSTEM hive"), facts)
    return facts.values


def test_system_hive_facts(benchmark: BenchmarkFixture, system_bytes: bytes) -> None:
    facts = benchmark(read_system_facts, system_bytes)
    assert facts["control_set"] == "ControlSet001"
    assert facts["hostname"] == "DESKTOP-2KGM189"
    drivers = facts["drivers"]
    assert isinstance(drivers, dict) and drivers["atapi"] == 0 and "viostor" not in drivers

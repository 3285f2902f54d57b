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


# -- transaction log replay (issue 19): the corpus's dirty SYSTEM and its LOG1 / LOG2 -------

DIRTY = ("regipy_SYSTEM_B", "regipy_SYSTEM_B.LOG1", "regipy_SYSTEM_B.LOG2")


@pytest.fixture(scope="session")
def dirty_system() -> list[Path]:
    """The dirty SYSTEM (12 MiB) and its logs (3 MiB each), decompressed once."""
    paths = []
    for name in DIRTY:
        src = HIVES / f"{name}.xz"
        if not src.exists():
            pytest.skip(f"{src} is absent")
        path = images.CACHE / name
        if not path.exists():
            images.CACHE.mkdir(parents=True, exist_ok=True)
            path.write_bytes(lzma.decompress(src.read_bytes()))
        paths.append(path)
    return paths


def test_replay_dirty_system(benchmark: BenchmarkFixture, dirty_system: list[Path]) -> None:
    """imgscan: both logs checked (Marvin32 over every entry) and 315 pages replayed in
    memory, from bytes already read, as the Windows inspection hands them over."""
    from imgscan._core.regf_log import replay

    primary, *logs = (p.read_bytes() for p in dirty_system)
    named = list(zip(DIRTY[1:], logs, strict=True))
    done, _ = benchmark(replay, primary, named)
    assert done is not None and done.pages == 315


def test_replay_dirty_system_regipy(benchmark: BenchmarkFixture, dirty_system: list[Path],
                                    tmp_path: Path) -> None:
    """The peer: regipy's apply_transaction_logs on the same files (LOG1, then LOG2)."""
    from regipy.recovery import apply_transaction_logs

    hive, log1, log2 = (str(p) for p in dirty_system)
    out = str(tmp_path / "restored")
    _, pages = benchmark(apply_transaction_logs, hive, log2,
                         secondary_log_path=log1, restored_hive_path=out)
    assert pages == 315

"""Fixtures shared by test files in several folders of tests/, and the session's checks.

Each fixture here was declared again in more than one file; session-scoped
ones make their images once per test session, whichever folder asks first.
The hooks imported from :mod:`helpers.session_checks` check the session as a whole: CI's
skips against tests/skips_allowed.toml, and every cap's boundary test having passed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import FIXTURES, promptly, unpack_fixtures
from helpers.linux_images import linux_disks as build_linux_disks
from helpers.lvm_disk import TOOLS as LVM_TOOLS
from helpers.lvm_disk import build as build_lvm_disk
from helpers.session_checks import pytest_collection_finish as pytest_collection_finish
from helpers.session_checks import pytest_configure as pytest_configure
from helpers.session_checks import pytest_deselected as pytest_deselected
from helpers.session_checks import pytest_make_collect_report as pytest_make_collect_report
from helpers.session_checks import pytest_runtest_makereport as pytest_runtest_makereport
from helpers.session_checks import pytest_sessionfinish as pytest_sessionfinish
from helpers.session_checks import pytest_terminal_summary as pytest_terminal_summary
from helpers.ntfs_images import build_fragmented_mft, build_windows_ntfs, can_build

#: The Windows fixture disks (tests/fixtures/make_windows.sh): bios, uefi, nosysres, bitlocker.
WINDOWS = FIXTURES / "windows"


@pytest.fixture(scope="session")
def windows_disks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every Windows fixture disk, unpacked (sparse) once: the guest, policy and check
    tests read the same ones. Tests that corrupt one work on a copy."""
    names = sorted(p.name.removesuffix(".img.xz") for p in WINDOWS.glob("*.img.xz"))
    return unpack_fixtures(WINDOWS, names, tmp_path_factory.mktemp("windows"))


@pytest.fixture
def prompt() -> Iterator[None]:
    """Every malformed case must fail fast, never loop on a claimed size."""
    with promptly(5):
        yield


@pytest.fixture(scope="session")
def lvm_disk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The two-PV LVM disk of :mod:`helpers.lvm_disk`, made once (the LVM reader's tests
    and ``imgscan ls`` of a logical volume)."""
    if not all(shutil.which(t) for t in LVM_TOOLS):
        pytest.skip("lvm2, util-linux, e2fsprogs or cryptsetup not installed")
    return build_lvm_disk(tmp_path_factory.mktemp("lvm"))


@pytest.fixture(scope="session")
def windows_ntfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The NTFS volume of :mod:`helpers.ntfs_images` (CompactOS / WOF files, LZNT1, sparse
    files, junctions and symbolic links), made once through an ntfs-3g mount."""
    reason = can_build()
    if reason is not None:
        pytest.skip(reason)
    return build_windows_ntfs(tmp_path_factory.mktemp("windows-ntfs"))


@pytest.fixture(scope="session")
def fragmented_mft(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An NTFS volume whose $MFT has an $ATTRIBUTE_LIST (helpers.ntfs_images), made once."""
    reason = can_build()
    if reason is not None:
        pytest.skip(reason)
    return build_fragmented_mft(tmp_path_factory.mktemp("fragmented-mft"))


@pytest.fixture(scope="session")
def linux_disks() -> dict[str, Path]:
    """The real Debian 12 system disks of tests/fixtures/linux, variant -> qcow2 path
    (built once per machine, see :mod:`helpers.linux_images`)."""
    return build_linux_disks()

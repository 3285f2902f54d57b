"""RPM's version order, the one both the BLS menu and the kernel list use.

The pairs are rpm's own expectations (rpm's tests/rpmvercmp.at, ``RPMVERCMP(a, b,
result)``), not what this code returns.
"""

from __future__ import annotations

import pytest

from imgscan.guest.linux.versions import newest_first, vercmp


@pytest.mark.parametrize(("a", "b", "result"), [
    ("1.0", "1.0", 0), ("1.0", "2.0", -1), ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0), ("2.0", "2.0.1", -1), ("2.0.1a", "2.0.1", 1),
    ("5.5p1", "5.5p2", -1), ("5.5p10", "5.5p1", 1), ("10xyz", "10.1xyz", -1),
    ("xyz10", "xyz10.1", -1), ("xyz.4", "8", -1), ("1b.fc17", "1.fc17", -1),
    ("1.0010", "1.9", 1), ("1.05", "1.5", 0), ("1.0~rc1", "1.0", -1),
    ("1.0~rc1~git123", "1.0~rc1", -1), ("a+", "a_", 0), ("+", "_", 0),
])
def test_rpmvercmp(a: str, b: str, result: int) -> None:
    assert vercmp(a, b) == result
    assert vercmp(b, a) == -result


def test_kernels_newest_first() -> None:
    versions = ["5.14.0-70.13.1.el9_0.x86_64", "5.14.0-362.8.1.el9_3.x86_64", "4.18.0-513.el8",
                "6.1.0-57-cloud-amd64", "6.1.0-9-amd64", "5.15.0-1010-azure"]
    assert newest_first(versions) == [
        "6.1.0-57-cloud-amd64", "6.1.0-9-amd64", "5.15.0-1010-azure",
        "5.14.0-362.8.1.el9_3.x86_64", "5.14.0-70.13.1.el9_0.x86_64", "4.18.0-513.el8"]

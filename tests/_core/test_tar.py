"""The ustar walk of an OVA: member offsets and sizes equal ``tar -tv``'s and the bytes
``tar -xO`` extracts; every hostile archive is a finding on the walk, never a crash.

Archives are made by GNU tar (``--format=ustar``, ``--format=pax``, ``-r`` to append a
second member of the same name); only the malformed part of a header is edited by hand,
then its checksum recomputed as POSIX defines it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from oracles import run
from test_limits import _cap_boundary

from imgscan import limits
from imgscan._core import tar
from imgscan._core.c_tar import BLOCK, TAR_HEADER
from imgscan._core.source import Source
from imgscan.errors import LimitExceeded


def _files(d: Path, names: dict[str, bytes]) -> list[str]:
    for name, data in names.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    return list(names)


def _archive(d: Path, names: dict[str, bytes], fmt: str = "ustar") -> Path:
    out = d / "a.tar"
    run("tar", f"--format={fmt}", "-cf", out, *_files(d, names), cwd=d)
    return out


def _walk(path: Path) -> tar.Archive:
    with Source(str(path)) as src:
        return tar.Archive(src)


def _reseal(buf: bytearray, header: int) -> None:
    """Recompute a header's checksum after an edit (POSIX: the unsigned byte sum with the
    field as spaces, written as six octal digits, NUL, space)."""
    start = header + TAR_HEADER.offset("chksum")
    buf[start:start + 8] = b" " * 8
    buf[start:start + 8] = b"%06o\x00 " % sum(buf[header:header + BLOCK])


@pytest.mark.parametrize("fmt", ["ustar", "pax", "gnu"])
def test_members_are_where_tar_extracts_them(tmp_path: Path, fmt: str) -> None:
    names = {"x.ovf": b"<Envelope/>", "x.mf": b"", "disk.vmdk": bytes(range(256)) * 40,
             "dir" * 20 + "/" + "long" * 20 + ".vmdk": b"deep"}
    path = _archive(tmp_path, names, fmt)
    archive = _walk(path)
    assert archive.findings == []
    assert [m.name for m in archive.members] == run("tar", "-tf", path).split()
    data = path.read_bytes()
    for m in archive.members:
        extracted = subprocess.run(["tar", "-xOf", str(path), m.name], capture_output=True,
                                   check=True).stdout
        assert data[m.offset:m.offset + m.size] == extracted


def test_a_name_given_twice_is_refused(tmp_path: Path) -> None:
    path = _archive(tmp_path, {"x.ovf": b"a", "disk.vmdk": b"first"})
    (tmp_path / "disk.vmdk").write_bytes(b"second copy")
    run("tar", "--format=ustar", "-rf", path, "disk.vmdk", cwd=tmp_path)
    archive = _walk(path)
    assert [f.id for f in archive.findings] == ["package-member"]
    assert "repeated" in archive.findings[0].message
    assert archive.member("disk.vmdk") is None
    assert archive.member("x.ovf") is not None


@pytest.mark.parametrize("name", ["../evil.vmdk", "/etc/evil.vmdk", "a/../../evil"])
def test_unsafe_member_names_are_refused(tmp_path: Path, name: str) -> None:
    path = _archive(tmp_path, {"x.ovf": b"a", "aaaaaaaaaaaaaa.vmdk": b"data"})
    buf = bytearray(path.read_bytes())
    header = BLOCK * 2          # the second member's header
    buf[header:header + 100] = name.encode().ljust(100, b"\0")
    _reseal(buf, header)
    path.write_bytes(buf)
    archive = _walk(path)
    assert [f.id for f in archive.findings] == ["package-member"]
    assert archive.member(name) is None and name in archive.refused


def test_a_member_past_the_end_is_truncated(tmp_path: Path) -> None:
    path = _archive(tmp_path, {"x.ovf": b"a", "disk.vmdk": bytes(10000)})
    with open(path, "r+b") as f:
        f.truncate(BLOCK * 4)
    archive = _walk(path)
    assert [f.id for f in archive.findings] == ["truncated"]
    assert [m.name for m in archive.members] == ["x.ovf"]


def test_a_bad_checksum_stops_the_walk(tmp_path: Path) -> None:
    path = _archive(tmp_path, {"x.ovf": b"a", "disk.vmdk": b"b"})
    buf = bytearray(path.read_bytes())
    buf[BLOCK * 2 + 1] ^= 1
    path.write_bytes(buf)
    archive = _walk(path)
    assert [f.id for f in archive.findings] == ["corrupt"]
    assert [m.name for m in archive.members] == ["x.ovf"]


def _pax_record(key: bytes, value: bytes) -> bytes:
    """One pax record, ``LENGTH KEY=VALUE\\n``, LENGTH counting itself (POSIX pax)."""
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n += 1
    return str(n).encode() + body


def _with_size_record(tmp_path: Path, value: bytes) -> tar.Archive:
    """GNU tar's pax archive whose first member's pax header gains ``size=VALUE``."""
    path = _archive(tmp_path, {"x.ovf": b"a" * 600, "disk.vmdk": b"b"}, "pax")
    buf = bytearray(path.read_bytes())
    first = _walk(path).members[0]
    pax_header = first.header - BLOCK * 2
    assert buf[pax_header + TAR_HEADER.offset("typeflag")] == ord("x")
    record = _pax_record(b"size", value)
    data = pax_header + BLOCK
    old = bytes(buf[data:data + BLOCK]).rstrip(b"\0")
    buf[data:data + BLOCK] = (old + record).ljust(BLOCK, b"\0")
    size_field = pax_header + TAR_HEADER.offset("size")
    buf[size_field:size_field + 12] = b"%011o\0" % (len(old) + len(record))
    _reseal(buf, pax_header)
    path.write_bytes(buf)
    return _walk(path)


def test_pax_and_ustar_sizes_that_disagree(tmp_path: Path) -> None:
    """A pax ``size=`` record other than the ustar size: a pax reader and a ustar reader
    see other member boundaries."""
    archive = _with_size_record(tmp_path, b"512")
    assert "package-member" in [f.id for f in archive.findings]
    assert any("disagree" in f.message for f in archive.findings)


@pytest.mark.parametrize("value", ["²".encode(), b"9" * 25], ids=["unicode-digit", "past-2^64"])
def test_pax_size_that_is_no_size(tmp_path: Path, value: bytes) -> None:
    """A digit ``int()`` refuses (it raised ValueError out of the walk), or more digits than
    any size has (which also keeps ``int()`` off its 4300-digit refusal): a finding, the
    walk stopped there."""
    archive = _with_size_record(tmp_path, value)
    assert [f.id for f in archive.findings] == ["corrupt"]
    assert "is not a size" in archive.findings[0].message
    assert archive.members == []


def test_members_cap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _archive(tmp_path, {f"m{i}": b"x" for i in range(5)})

    def walk() -> None:
        archive = _walk(path)
        for f in archive.findings:
            if f.id == "resource-exhaustion":
                raise LimitExceeded(str(path), "ustar header", 0, f.message)

    exc = _cap_boundary(monkeypatch, "OVA_MAX_MEMBERS", 5, walk)
    assert "OVA_MAX_MEMBERS" in str(exc)


def test_members_cap_counts_refused_headers(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    """Symbolic links are refused, never members, yet each is a header walked: the cap
    bounds the walk, not only the members kept."""
    (tmp_path / "x.ovf").write_bytes(b"<Envelope/>")
    for i in range(5):
        (tmp_path / f"l{i}").symlink_to("x.ovf")
    path = tmp_path / "a.tar"
    run("tar", "--format=ustar", "-cf", path, "x.ovf", *(f"l{i}" for i in range(5)),
        cwd=tmp_path)
    monkeypatch.setattr(limits, "OVA_MAX_MEMBERS", 6)
    assert "resource-exhaustion" not in [f.id for f in _walk(path).findings]
    monkeypatch.setattr(limits, "OVA_MAX_MEMBERS", 5)
    archive = _walk(path)
    assert [m.name for m in archive.members] == ["x.ovf"]
    assert "resource-exhaustion" in [f.id for f in archive.findings]


def test_pax_bytes_cap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _archive(tmp_path, {"n" * 150: b"x"}, "pax")
    header = TAR_HEADER.unpack(path.read_bytes()[:BLOCK])
    assert header["typeflag"] == b"x"
    size = tar.number(header["size"])
    assert size is not None

    def walk() -> None:
        archive = _walk(path)
        for f in archive.findings:
            raise LimitExceeded(str(path), "pax extended header", 0, f.message)
        assert archive.members[0].name == "n" * 150

    exc = _cap_boundary(monkeypatch, "OVA_MAX_PAX_BYTES", size, walk)
    assert "OVA_MAX_PAX_BYTES" in str(exc)
    assert size <= limits.OVA_MAX_PAX_BYTES

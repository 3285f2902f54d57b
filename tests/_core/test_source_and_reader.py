"""The shared core on raw images: Source, the extent map, the reader, DiskStream, paths.

Raw images are made with truncate / dd / sfdisk; the expected bytes are the
file's own bytes (read with plain Python file I/O) and the expected map is
``qemu-img map -f raw`` of the same file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TESTS
from oracles import (
    data_zero_runs,
    needs_qemu,
    qemu_info,
    qemu_map,
    run,
    sha256_stream,
)

import imgscan
from imgscan import ImageError, UnsafePath, limits
from imgscan._core.extents import KIND_NAMES
from imgscan._core.paths import resolve_external, unsafe_reason
from imgscan._core.source import NOT_EXPECTED, Source

MiB = 1 << 20


def _guest_bytes(path: Path) -> bytes:
    """The disk qemu sees in a raw file: its bytes, zero-padded to a whole sector."""
    data = path.read_bytes()
    return data + bytes(-len(data) % 512)


def _dd(path: Path, offset: int, data: bytes) -> None:
    """Write ``data`` at ``offset`` with dd (conv=notrunc keeps the rest of the file)."""
    src = path.with_suffix(".chunk")
    src.write_bytes(data)
    run("dd", f"if={src}", f"of={path}", "bs=1", f"seek={offset}", "conv=notrunc",
        "status=none")
    src.unlink()


@pytest.fixture(scope="session")
def rdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("raw")


@pytest.fixture(scope="session")
def empty(rdir: Path) -> Path:
    path = rdir / "empty.img"
    run("truncate", "-s", "0", path)
    return path


@pytest.fixture(scope="session")
def sparse(rdir: Path) -> Path:
    """16 MiB + 123 bytes, mostly holes, data at scattered (and unaligned) offsets."""
    path = rdir / "sparse.img"
    run("truncate", "-s", str(16 * MiB + 123), path)
    _dd(path, 0, b"\xaa" * 4096)
    _dd(path, 3 * MiB + 17, bytes(range(256)) * 40)
    _dd(path, 9 * MiB, b"\x00" * 8192)            # written zeros: data, not a hole
    _dd(path, 16 * MiB + 100, b"tail" * 5 + b"!!!")
    return path


@pytest.fixture(scope="session")
def partitioned(rdir: Path) -> Path:
    """An MBR-partitioned 8 MiB disk made by sfdisk."""
    path = rdir / "mbr.img"
    run("truncate", "-s", str(8 * MiB), path)
    script = path.with_suffix(".sfdisk")
    script.write_text("label: dos\nstart=2048, size=4096, type=83\nstart=6144, type=c\n")
    run("sh", "-c", f"sfdisk --quiet '{path}' < '{script}'")
    return path


# -- empty and sparse files -----------------------------------------------------------------
def test_empty_file(empty: Path) -> None:
    with imgscan.open(empty) as img:
        assert img.format == "raw"
        assert img.virtual_size == 0 == img.file_size
        assert len(img.extents()) == 0
        assert img.extents().check_complete()
        assert img.read(0, 10) == b""
        assert img.read(5, 0) == b""
        assert img.stream().read() == b""
        assert img.info()["allocated_size"] == 0


@needs_qemu
@pytest.mark.parametrize("name", ["sparse", "partitioned"])
def test_raw_map_matches_qemu(request: pytest.FixtureRequest, name: str) -> None:
    path: Path = request.getfixturevalue(name)
    with imgscan.open(path) as img:
        emap = img.extents()
        assert emap.check_complete()
        assert data_zero_runs(emap.to_qemu()) == data_zero_runs(qemu_map(path, "raw"))
        for extent in emap:
            assert extent.kind in ("data", "zero")
            assert extent.host in (extent.start, None)


def test_an_open_expecting_another_file_is_refused(sparse: Path, empty: Path) -> None:
    """``identity`` (a scan's walk's device and inode, here from ``os.stat``): the file
    of that identity opens; any other file at the path is refused as replaced, and its
    descriptor closed (the process's open descriptors counted in /proc/self/fd)."""
    from imgscan.disk_image import DiskImage
    st = os.stat(sparse)
    with DiskImage(sparse, identity=(st.st_dev, st.st_ino)) as img:
        assert img.format == "raw"
    other = os.stat(empty)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ImageError, match="replaced since it was listed"):
        DiskImage(sparse, identity=(other.st_dev, other.st_ino))
    assert len(os.listdir("/proc/self/fd")) == before


def _device_calls(path: Path, identity: tuple[int, int] | None) -> tuple[str, list[str]]:
    """What a child interpreter's ``DiskImage(path, identity=identity)`` printed (the
    ImageError, or "opened"), and the ``fcntl`` and ``lseek`` calls strace saw on the
    descriptor the open of ``path`` returned."""
    log = path.with_name(path.name + ".strace")
    code = ("import json, sys\n"
            "from imgscan import ImageError\n"
            "from imgscan.disk_image import DiskImage\n"
            "identity = json.loads(sys.argv[2])\n"
            "try:\n"
            "    DiskImage(sys.argv[1], identity=identity and tuple(identity)).close()\n"
            "    print('opened')\n"
            "except ImageError as exc:\n"
            "    print(exc)\n")
    # the imgscan this test imported: on the path first, and run away from the checkout
    # (``-c`` puts the working directory first: a source tree without its extensions
    # built, when the tests run against an installed imgscan)
    env = {**os.environ, "PYTHONPATH": str(Path(imgscan.__file__).parent.parent)}
    proc = subprocess.run(["strace", "-f", "-e", "trace=openat,fcntl,lseek", "-o", str(log),
                           sys.executable, "-c", code, str(path), json.dumps(identity)],
                          capture_output=True, text=True, env=env, check=True, timeout=120,
                          cwd=path.parent)
    lines = log.read_text().splitlines()
    log.unlink()
    opened = [line for line in lines if f'openat(AT_FDCWD, "{path}"' in line]
    assert len(opened) == 1, opened
    fd = opened[0].rsplit("=", 1)[1].strip()
    after = lines[lines.index(opened[0]) + 1:]
    return proc.stdout.strip(), [line for line in after
                                 if f"fcntl({fd}," in line or f"lseek({fd}," in line]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_character_device_in_the_walked_files_place_is_refused_untouched(
        tmp_path: Path) -> None:
    """A character device (a link to /dev/null) put where a scan's walk saw a file is
    refused by the open's first ``fstat``: the descriptor never gets its ``O_NONBLOCK``
    cleared (``F_SETFL``) nor its end sought (``lseek``), as strace (the oracle) sees in a
    child interpreter. Without ``identity`` the same open does both (what the check
    must come before), so the trace would show them."""
    walked = tmp_path / "disk.img"
    walked.write_bytes(bytes(4096))
    st = os.stat(walked)
    walked.unlink()
    walked.symlink_to("/dev/null")
    said, calls = _device_calls(walked, (st.st_dev, st.st_ino))
    assert (said, calls) == (f"{walked}: file: {NOT_EXPECTED}", [])
    said, calls = _device_calls(walked, None)
    assert said == "opened"
    assert any("F_SETFL" in call for call in calls) and any("lseek" in call for call in calls)


@needs_qemu
def test_raw_virtual_size_matches_qemu_info(sparse: Path) -> None:
    with imgscan.open(sparse) as img:
        assert img.virtual_size == qemu_info(sparse, "raw")["virtual-size"]


def test_sparse_map_has_holes_and_data(sparse: Path) -> None:
    """The fixture must exercise both kinds (SEEK_HOLE works on the test filesystem)."""
    with imgscan.open(sparse) as img:
        kinds = {e.kind for e in img.extents()}
    assert kinds == {"data", "zero"}


@pytest.mark.parametrize("name", ["sparse", "partitioned"])
def test_whole_disk_bytes(request: pytest.FixtureRequest, name: str) -> None:
    path: Path = request.getfixturevalue(name)
    with imgscan.open(path) as img:
        expected = hashlib.sha256(_guest_bytes(path)).hexdigest()
        assert sha256_stream(img.read, img.virtual_size, chunk=MiB + 7) == expected


def test_partitioned_disk_reads_the_mbr(partitioned: Path) -> None:
    with imgscan.open(partitioned) as img:
        mbr = img.read(0, 512)
    assert mbr[510:] == b"\x55\xaa"
    assert mbr[446 + 4] == 0x83 and mbr[462 + 4] == 0x0C   # partition types from sfdisk
    assert int.from_bytes(mbr[446 + 8:446 + 12], "little") == 2048


# -- reads at every boundary -----------------------------------------------------------------
def _boundaries(size: int, points: list[int]) -> list[int]:
    out = {0, 1, size - 1, size, size + 1, size + 4096, 1 << 40, (1 << 63) - 1}
    for p in points:
        out.update({p - 1, p, p + 1})
    return sorted(o for o in out if o >= 0)


def test_reads_at_boundaries(sparse: Path) -> None:
    data = _guest_bytes(sparse)
    size = len(data)
    with imgscan.open(sparse) as img:
        edges = [e.start for e in img.extents()]
        for offset in _boundaries(size, edges):
            for length in (0, 1, 2, 511, 4097, size, size + 10):
                got = img.read(offset, length)
                assert got == data[offset:offset + length], (offset, length)


def test_read_argument_checks(sparse: Path) -> None:
    with imgscan.open(sparse) as img:
        with pytest.raises(ValueError):
            img.read(0, -1)
        with pytest.raises(ValueError):
            img.read(0, limits.MAX_READ + 1)


def test_reader_readinto(sparse: Path) -> None:
    data = _guest_bytes(sparse)
    with imgscan.open(sparse) as img:
        disk = img.disk()
        buf = bytearray(10000)
        assert disk.readinto(3 * MiB, buf) == 10000
        assert bytes(buf) == data[3 * MiB:3 * MiB + 10000]
        assert disk.readinto(len(data) - 5, buf) == 5
        assert bytes(buf[:5]) == data[-5:]
        assert disk.readinto(len(data), buf) == 0


# -- DiskStream --------------------------------------------------------------------------------
def test_stream_seek_tell_read(sparse: Path) -> None:
    data = _guest_bytes(sparse)
    size = len(data)
    with imgscan.open(sparse) as img:
        stream = img.stream()
        assert stream.readable() and stream.seekable() and not stream.writable()
        assert stream.tell() == 0
        assert stream.read(4100) == data[:4100]
        assert stream.tell() == 4100
        assert stream.seek(3 * MiB) == 3 * MiB
        assert stream.read(300) == data[3 * MiB:3 * MiB + 300]
        assert stream.seek(-50, os.SEEK_CUR) == 3 * MiB + 250
        assert stream.read(100) == data[3 * MiB + 250:3 * MiB + 350]
        assert stream.seek(-10, os.SEEK_END) == size - 10
        assert stream.read() == data[-10:]
        assert stream.read(10) == b""
        assert stream.seek(size + 100) == size + 100
        assert stream.read(10) == b""
        buf = bytearray(64)
        stream.seek(16 * MiB + 90)
        assert stream.readinto(buf) == 64
        assert bytes(buf) == data[16 * MiB + 90:16 * MiB + 154]
        stream.seek(-20, os.SEEK_END)
        assert stream.readinto(buf) == 20
        assert bytes(buf[:20]) == data[-20:]
        with pytest.raises(ValueError):
            stream.seek(-1)
        with pytest.raises(ValueError):
            stream.seek(0, 7)


def test_buffered_reader_over_stream(sparse: Path) -> None:
    with imgscan.open(sparse) as img:
        reader = io.BufferedReader(img.stream(), buffer_size=65536)
        assert reader.read() == _guest_bytes(sparse)
        reader.seek(3 * MiB + 17)
        assert reader.read(256) == bytes(range(256))
        reader.seek(16 * MiB + 100)
        assert reader.read() == b"tail" * 5 + b"!!!" + bytes(512 - 123)


# -- files that cannot be images -----------------------------------------------------------
def test_nonexistent_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"missing\.img"):
        imgscan.open(tmp_path / "missing.img")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError):
        imgscan.open(tmp_path)


def test_source_bounds(sparse: Path) -> None:
    size = sparse.stat().st_size
    with Source(str(sparse)) as src:
        assert src.size == size
        assert src.contains(size - 1, 1) and src.contains(size, 0)
        assert not src.contains(size, 1) and not src.contains(1 << 63, 1 << 63)
        with pytest.raises(imgscan.TruncatedImage, match="test structure"):
            src.read(size - 1, 2, "test structure")
        with pytest.raises(imgscan.TruncatedImage):
            src.view((1 << 64) - 1, 1, "wrap")
        assert src.read_zero_padded(size - 3, 6) == sparse.read_bytes()[-3:] + bytes(3)
        assert src.read_zero_padded(size + 10, 4) == bytes(4)


# -- external file names ---------------------------------------------------------------------
@pytest.fixture
def extdir(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "base.img").write_bytes(b"x")
    (root / "sub" / "inner.img").write_bytes(b"x")
    (tmp_path / "outside.img").write_bytes(b"secret")
    os.symlink(tmp_path / "outside.img", root / "escape.img")
    os.symlink("sub/inner.img", root / "inside-link.img")
    os.symlink("..", root / "up")
    return root


REFUSED_NAMES = [
    "/etc/passwd",
    "\\\\server\\share\\disk.img",
    "../outside.img",
    "sub/../../outside.img",
    "..\\outside.img",
    "json:{\"file.filename\": \"/etc/passwd\"}",
    "nbd:localhost:10809",
    "nbd+unix:///export?socket=/tmp/s",
    "http://example.com/disk.img",
    "file:base.img",
    "C:\\images\\base.img",
    "",
    "base.img\x00.txt",
]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_resolve_external_refuses_names(extdir: Path, name: str) -> None:
    assert unsafe_reason(name) is not None
    with pytest.raises(UnsafePath):
        resolve_external("top.img", "backing file", name, str(extdir))


#: Names refused under a URL prefix on top of those refused in a directory: each would
#: make the URL name another object (a query, a fragment, an escape) or none.
URL_SPECIAL_NAMES = ["base.img?versionId=1", "base.img#x", "%2e%2e/outside.img",
                     "base\x7f.img", "base\n.img", "./", "."]


@pytest.mark.parametrize("prefix", ["s3://bucket/dir/", "http://127.0.0.1:9/dir"])
@pytest.mark.parametrize("name", [*REFUSED_NAMES, *URL_SPECIAL_NAMES])
def test_resolve_external_under_a_url_refuses_names(prefix: str, name: str) -> None:
    """A URL prefix confines names as a directory does (no store is asked)."""
    with pytest.raises(UnsafePath, match="refusing to open"):
        resolve_external("s3://bucket/dir/top.qcow2", "backing file", name, prefix)


@pytest.mark.parametrize(("name", "key"), [
    ("base.img", "base.img"),
    ("sub/inner.img", "sub/inner.img"),
    ("./base.img", "base.img"),
    (".\\sub\\inner.img", "sub/inner.img"),     # Hyper-V's relative parent locator
    ("sub//inner.img", "sub/inner.img"),
])
@pytest.mark.parametrize("prefix", ["s3://bucket/dir/", "s3://bucket/dir",
                                    "http://127.0.0.1:9/dir/"])
def test_resolve_external_under_a_url(prefix: str, name: str, key: str) -> None:
    resolved = resolve_external("s3://bucket/dir/top.qcow2", "backing file", name, prefix)
    assert resolved == prefix.rstrip("/") + "/" + key


@pytest.mark.parametrize("name", ["escape.img", "up/outside.img"])
def test_resolve_external_refuses_symlinks_out(extdir: Path, name: str) -> None:
    assert unsafe_reason(name) is None   # the name looks harmless; the link is not
    with pytest.raises(UnsafePath, match="resolves outside"):
        resolve_external("top.img", "backing file", name, str(extdir))


@pytest.mark.parametrize(("name", "target"), [
    ("base.img", "base.img"),
    ("sub/inner.img", "sub/inner.img"),
    ("inside-link.img", "sub/inner.img"),
    ("./base.img", "base.img"),
])
def test_resolve_external_accepts_names_inside(extdir: Path, name: str, target: str) -> None:
    resolved = resolve_external("top.img", "backing file", name, str(extdir))
    assert resolved == os.path.realpath(extdir / target)


@pytest.mark.parametrize("name", ["missing.img", "sub"])
def test_resolve_external_needs_a_file(extdir: Path, name: str) -> None:
    with pytest.raises(ImageError) as info:
        resolve_external("top.img", "backing file", name, str(extdir))
    assert not isinstance(info.value, UnsafePath)


@needs_qemu
def test_numpy_map_matches_qemu_map(tmp_path: Path) -> None:
    """The map as numpy arrays says what qemu-img map says, range by range."""
    np = pytest.importorskip("numpy")
    path = tmp_path / "arrays.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", path, "16M")
    run("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 128k", "-c", "write -z 4M 64k",
        "-c", "write -P 2 9M 64k", path)
    with imgscan.open(path) as img:
        arr = img.extents().to_numpy()
    assert arr.dtype.names == ("start", "length", "host", "stored_length", "kind", "file")
    assert int(arr["length"].sum()) == 16 * MiB
    assert np.all(arr["start"][1:] == arr["start"][:-1] + arr["length"][:-1])
    kinds = KIND_NAMES
    as_entries = [
        {"start": int(r["start"]), "length": int(r["length"]),
         "data": kinds[r["kind"]] in ("data", "compressed"),
         "zero": kinds[r["kind"]] in ("zero", "unallocated")}
        for r in arr
    ]
    assert data_zero_runs(as_entries) == data_zero_runs(qemu_map(path))
    offsets = {int(e["start"]): e.get("offset") for e in qemu_map(path)}
    for r in arr:
        if kinds[r["kind"]] == "data":
            assert int(r["host"]) == offsets[int(r["start"])]


# -- a window of a file (an OVA's member) ------------------------------------------------
@pytest.mark.parametrize("use_mmap", [True, False])
def test_window_reads_only_its_range(tmp_path: Path, use_mmap: bool) -> None:
    """Every way in (read, view below and above the map threshold, zero-padded reads,
    bounds) sees ``[base, base + length)`` of the file and nothing around it; errors name
    the window, not the file."""
    from imgscan._core.source import window
    from imgscan.errors import TruncatedImage

    path = tmp_path / "pkg.ova"
    data = os.urandom(3 * MiB)
    path.write_bytes(data)
    base, length = 512 * 3, 2 * MiB + 1000          # 512-aligned, not page-aligned
    part = data[base:base + length]
    with window(str(path), base, length, "pkg.ova [disk.vmdk]", use_mmap) as w:
        assert (w.size, w.base, w.path) == (length, base, "pkg.ova [disk.vmdk]")
        assert w.read(0, 100, "x") == part[:100]
        assert w.read(length - 7, 7, "x") == part[-7:]
        assert bytes(w.view(10, MiB, "x")) == part[10:10 + MiB]
        assert bytes(w.view(length - MiB, MiB, "x")) == part[-MiB:]
        # past the window's end reads zeros, not the file's next bytes
        assert w.read_zero_padded(length - 4, 8) == part[-4:] + bytes(4)
        assert w.contains(0, length) and not w.contains(1, length)
        with pytest.raises(TruncatedImage, match=r"pkg.ova \[disk.vmdk\]: hdr at offset "
                                                 rf"{length - 3}"):
            w.read(length - 3, 4, "hdr")
        w.drop(0, length)
        assert w.read(0, 16, "x") == part[:16]
    with pytest.raises(TruncatedImage, match="archive member"):
        window(str(path), len(data) - 10, 11, "pkg.ova [x]")


def test_window_data_runs_are_the_files_runs_shifted(tmp_path: Path) -> None:
    """SEEK_DATA / SEEK_HOLE through a window: the whole file's runs, clipped to the
    window and moved to its offsets."""
    from imgscan._core.source import window

    path = tmp_path / "sparse.ova"
    with open(path, "wb") as f:
        f.truncate(8 * MiB)
        for at in (0, 3 * MiB, 7 * MiB):
            f.seek(at)
            f.write(b"x" * MiB)
    base, length = MiB + 512, 5 * MiB
    with Source(str(path)) as whole, window(str(path), base, length, "w") as w:
        expected = []
        for off, n, is_data in whole.data_runs(base, base + length):
            expected.append((off - base, n, is_data))
        assert w.data_runs(0, length) == expected
        assert w.data_runs(0, 10 * length) == expected


def test_pipe_is_refused_naming_it() -> None:
    """A pipe is refused as a FIFO (ESPIPE), naming the path (the descriptor's close
    must not replace the error)."""
    import errno

    read_end, write_end = os.pipe()
    try:
        path = f"/proc/self/fd/{read_end}"
        with pytest.raises(OSError) as exc:
            Source(path)
        assert (exc.value.errno, exc.value.filename) == (errno.ESPIPE, path)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_fifo_without_a_writer_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A FIFO named as an image (threats.md: never hang) is refused at once: opened as a
    plain read would open it, it blocks until a writer comes. Run as its own process so
    that a regression fails by the timeout rather than hanging the suite."""
    fifo = tmp_path / "disk.qcow2"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-m", "imgscan", "info", "--json", str(fifo)],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=TESTS)    # (the checkout's uncompiled imgscan/ not imported)
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert (error["structure"], fifo.name in error["message"]) == ("file", True)
    assert "FIFO" in error["message"]


def test_character_device_gets_its_blocking_reads_back() -> None:
    """A character device is opened without blocking like anything else, then given its
    blocking reads back (a tty's reads would fail with EAGAIN otherwise): the flags the
    kernel reports for the source's descriptor (/proc/self/fdinfo)."""
    def zero_fds() -> set[str]:
        return {fd for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}") == "/dev/zero"}

    before = zero_fds()
    src = Source("/dev/zero")
    try:
        (fd,) = zero_fds() - before
        with open(f"/proc/self/fdinfo/{fd}") as info:
            flags = int(next(line for line in info if line.startswith("flags:")).split()[1], 8)
        assert not flags & os.O_NONBLOCK
    finally:
        src.close()

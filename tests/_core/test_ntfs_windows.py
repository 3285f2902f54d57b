"""NTFS as Windows writes it: CompactOS (WOF) files, LZNT1, sparse files, junctions and
symbolic links (imgscan/_core/ntfs*.pyx, wof.pyx, ntfs_reparse.py, ntfs_fs.py).

The volumes are made once per session by :mod:`helpers.ntfs_images` (mkntfs, an ntfs-3g
mount, chunks compressed by wimlib's ``wimcapture``; a second volume whose $MFT spills
into an $ATTRIBUTE_LIST). Oracles, never imgscan itself: the source bytes wimlib
compressed, wimlib's own codecs (libwim through ctypes, ``oracles.Wimlib``), libfsntfs
(``pyfsntfs``, Debian's python3-libfsntfs, which decompresses WOF), ntfs-3g's
``ntfscat`` (raw streams, LZNT1 and sparse files) and readlink through its FUSE mount
(junction and link targets), and sleuthkit's ``icat`` / ``istat`` / ``fls``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import promptly, run_cli, unmount
from helpers.ntfs_images import (
    FILES,
    LINKS,
    SPARSE,
    VOLUME_BYTES,
    WOF_CONTENT,
    WOF_FORMATS,
    WOF_PLACED,
    link_reparse,
    sparse_content,
)
from helpers.patchers import ntfs_poke
from oracles import Wimlib, run, wimlib

from imgscan import limits
from imgscan._core.ntfs import NtfsVolume
from imgscan._core.ntfs_fs import NtfsFileSystem
from imgscan._core.wof import lzx_decompress, xpress_huffman_decompress
from imgscan.errors import CorruptImage, ImageError, LimitExceeded, UnsupportedFeature

WOF_FILES = [p for p in FILES
             if p in WOF_PLACED or (p.split("/")[1:2] and p.split("/")[1] in WOF_FORMATS)]
#: wimlib's codecs (libwim), the reference the decoders are compared with.
WIMLIB = wimlib()
needs_wimlib = pytest.mark.skipif(WIMLIB is None, reason="libwim (wimtools) not installed")
#: Debian's interpreter, where python3-libfsntfs installs pyfsntfs.
SYSTEM_PYTHON = "/usr/bin/python3"


def volume(img: Path, data: bytes | bytearray | None = None) -> NtfsVolume:
    raw = bytes(img.read_bytes() if data is None else data)
    return NtfsVolume(lambda offset, length: raw[offset:offset + length], 0, len(raw),
                      "corrupt.img" if data is not None else img.name)


@pytest.fixture(scope="module")
def vol(windows_ntfs: Path) -> NtfsVolume:
    return volume(windows_ntfs)


def libfsntfs_sha256(img: Path, paths: list[str]) -> dict[str, str]:
    """{path: sha256} of each file as libfsntfs reads it (WOF decompressed)."""
    script = (
        "import hashlib, json, sys, pyfsntfs\n"
        "v = pyfsntfs.volume(); v.open(sys.argv[1])\n"
        "out = {}\n"
        "for p in sys.argv[2:]:\n"
        "    e = v.get_file_entry_by_path('\\\\' + p.replace('/', '\\\\'))\n"
        "    out[p] = hashlib.sha256(e.read() if e.size else b'').hexdigest()\n"
        "print(json.dumps(out))\n")
    done = subprocess.run([SYSTEM_PYTHON, "-c", script, os.fspath(img), *paths],
                          capture_output=True, text=True, check=True)
    result: dict[str, str] = json.loads(done.stdout)
    return result


def has_pyfsntfs() -> bool:
    return os.path.exists(SYSTEM_PYTHON) and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import pyfsntfs"], capture_output=True).returncode == 0


def ntfscat(img: Path, path: str, stream: str | None = None) -> bytes:
    extra = ["-a", "0x80", "-n", stream] if stream else []
    return subprocess.run(["ntfscat", "-f", *extra, os.fspath(img), "/" + path],
                          capture_output=True, check=True).stdout


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- CompactOS / WOF ------------------------------------------------------------------------

@pytest.mark.parametrize("path", WOF_FILES)
def test_wof_files_read_their_source_bytes(vol: NtfsVolume, path: str) -> None:
    f = vol.open(path)
    assert f.wof == WOF_PLACED.get(path, path.split("/")[1]).upper()
    assert f.size == len(FILES[path])
    assert f.read() == FILES[path]


@pytest.mark.skipif(not has_pyfsntfs(), reason="python3-libfsntfs (pyfsntfs) not installed")
def test_wof_files_match_libfsntfs(windows_ntfs: Path, vol: NtfsVolume) -> None:
    """libfsntfs 20200921 agrees on every XPRESS file and on the LZX files without x86
    code; on the LZX cmd.exe (E8-translated CALLs) it differs from the source bytes
    wimlib compressed, which imgscan reproduces: the LZX E8 check is against the source."""
    theirs = libfsntfs_sha256(windows_ntfs, WOF_FILES)
    for path in WOF_FILES:
        ours = sha(vol.open(path).read())
        assert ours == sha(FILES[path]), path
        if path in ("Windows/lzx/cmd.exe", "Windows/System32/cmd.exe"):
            assert theirs[path] != ours          # libfsntfs's E8 translation differs
        else:
            assert theirs[path] == ours, path


@pytest.mark.skipif(shutil.which("ntfscat") is None, reason="ntfs-3g's ntfscat absent")
def test_wof_stream_and_placeholder_match_ntfscat(windows_ntfs: Path, vol: NtfsVolume) -> None:
    for path in WOF_FILES:
        stream = vol.open(path, "WofCompressedData").read()
        assert stream == ntfscat(windows_ntfs, path, "WofCompressedData"), path
        # ntfs-3g without the system-compression plugin reads the sparse placeholder.
        assert ntfscat(windows_ntfs, path) == bytes(len(FILES[path]))


def test_wof_ranges_across_chunks(vol: NtfsVolume) -> None:
    """Ranges across chunk ends, and within the chunk the last read decoded (which the
    file keeps: (3 * chunk + 5, 7) after (3 * chunk, chunk))."""
    rng = random.Random(19)
    for fmt, (_, chunk) in WOF_FORMATS.items():
        path = f"Windows/{fmt}/cmd.exe"
        f, data = vol.open(path), FILES[path]
        for offset, length in [(chunk - 1, 2), (0, 1), (len(data) - 1, 10), (3 * chunk, chunk),
                               (3 * chunk + 5, 7), (chunk, 1), (chunk + 1, 1),
                               *((rng.randrange(len(data)), rng.randrange(3 * chunk))
                                 for _ in range(20))]:
            assert f.read(offset, length) == data[offset:offset + length], (path, offset)


def test_decoders_on_wimlib_chunks(windows_ntfs: Path) -> None:
    """Every chunk of every file, one call each (the Python entry points)."""
    work = windows_ntfs.parent
    for fmt, (_, chunk) in WOF_FORMATS.items():
        decode = lzx_decompress if fmt == "lzx" else xpress_huffman_decompress
        for name, data in WOF_CONTENT.items():
            for k, piece in wof_chunks(work, fmt, name):
                out = data[k * chunk:(k + 1) * chunk]
                if len(piece) < len(out):
                    assert decode(piece, len(out)) == out, (fmt, name, k)


def wof_chunks(work: Path, fmt: str, name: str) -> Iterator[tuple[int, bytes]]:
    """(index, stored bytes) of each chunk of ``name`` in the WIM wimcapture made."""
    from helpers.ntfs_images import WOF_CONTENT as CONTENT
    from helpers.ntfs_images import wim_resources
    data = CONTENT[name]
    if not data:
        return
    chunk = WOF_FORMATS[fmt][1]
    flags, stored, _ = wim_resources(work / f"{fmt}.wim")[hashlib.sha1(data).digest()]
    if not flags & 0x04:
        return
    n = -(-len(data) // chunk)
    starts = [0, *(struct.unpack_from("<I", stored, 4 * i)[0] for i in range(n - 1))]
    ends = [*starts[1:], len(stored) - 4 * (n - 1)]
    for k in range(n):
        yield k, stored[4 * (n - 1) + starts[k]:4 * (n - 1) + ends[k]]


@pytest.mark.parametrize("decode", [xpress_huffman_decompress, lzx_decompress])
def test_decoders_refuse_malformed_chunks(windows_ntfs: Path,
                                          decode: Callable[[bytes, int], bytes]) -> None:
    fmt = "lzx" if decode is lzx_decompress else "xpress4k"
    _, piece = next(c for c in wof_chunks(windows_ntfs.parent, fmt, "SYSTEM"))
    size = WOF_FORMATS[fmt][1]
    rng = random.Random(3)
    with promptly(5):
        for cut in (0, 1, 10, 200, len(piece) // 2):
            with pytest.raises(ValueError, match="malformed"):
                decode(piece[:cut], size)
        for _ in range(300):            # random damage: refused or decoded, never more
            bad = bytearray(piece)
            for _ in range(rng.randrange(1, 8)):
                bad[rng.randrange(len(bad))] = rng.randrange(256)
            with contextlib.suppress(ValueError):
                assert len(decode(bytes(bad), size)) == size
    # An over-subscribed XPRESS code: every symbol of length 1.
    with pytest.raises(ValueError):
        xpress_huffman_decompress(b"\x11" * 256 + bytes(64), 4096)


def records(size: int) -> bytes:
    """8-byte records repeating at distances that are multiples of 8: wimlib's LZX
    compressor codes them in aligned-offset blocks."""
    rng = random.Random(2)
    pool = [rng.randbytes(6) for _ in range(40)]
    return b"".join(rng.choice(pool) + bytes([rng.randrange(4), 0])
                    for _ in range(size // 8))[:size]


def damaged(data: bytes, rng: random.Random) -> bytes:
    bad = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
    return bytes(bad)


@needs_wimlib
@pytest.mark.parametrize("fmt", list(WOF_FORMATS))
def test_decoders_agree_with_wimlib(fmt: str) -> None:
    """Chunks wimlib compresses (LZX at level 100: aligned-offset blocks too) decode to
    their source, as wimlib decodes them; damaged copies decode as wimlib decodes them
    whenever wimlib accepts them (imgscan may refuse more: never different bytes)."""
    assert WIMLIB is not None
    chunk = WOF_FORMATS[fmt][1]
    ctype = Wimlib.LZX if fmt == "lzx" else Wimlib.XPRESS
    decode = lzx_decompress if fmt == "lzx" else xpress_huffman_decompress
    sources = [WOF_CONTENT["cmd.exe"][:chunk], WOF_CONTENT["SYSTEM"][:chunk],
               WOF_CONTENT["mixed.bin"][:chunk], records(chunk), records(chunk - 3)[:977]]
    rng = random.Random(fmt)
    block_types = set()
    agreed = 0
    with promptly(20):
        for data in sources:
            comp = WIMLIB.compress(ctype, data, chunk, 100)
            assert comp is not None
            block_types.add(comp[1] >> 5)
            assert decode(comp, len(data)) == data == WIMLIB.decompress(ctype, comp, len(data),
                                                                          chunk)
            for _ in range(150):
                bad = damaged(comp, rng)
                theirs = WIMLIB.decompress(ctype, bad, len(data), chunk)
                if theirs is None:
                    continue
                assert decode(bad, len(data)) == theirs
                agreed += 1
    assert agreed > 50
    if fmt == "lzx":
        assert block_types >= {1, 2}, block_types      # verbatim and aligned blocks


class BitWriter:
    """LZX's bit order: 16-bit little-endian words filled from their top bit."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.word = 0
        self.used = 0

    def bits(self, value: int, n: int) -> None:
        for i in range(n - 1, -1, -1):
            self.word = (self.word << 1) | ((value >> i) & 1)
            self.used += 1
            if self.used == 16:
                self.out += struct.pack("<H", self.word)
                self.word = self.used = 0

    def align(self) -> None:
        """To the next word: 1-15 zero bits, or a whole word when already on one."""
        self.bits(0, 16 - self.used)


def lzx_uncompressed(blocks: list[bytes], recent: tuple[int, int, int] = (1, 1, 1)) -> bytes:
    """An LZX chunk of uncompressed blocks (type 3): header bits, alignment, R0-R2, bytes,
    a pad byte after an odd-sized block."""
    w = BitWriter()
    for data in blocks:
        w.bits(3, 3)
        if len(data) == 32768:
            w.bits(1, 1)
        else:
            w.bits(0, 1)
            w.bits(len(data), 16)
        w.align()
        w.out += struct.pack("<III", *recent) + data + (b"\0" if len(data) % 2 else b"")
    return bytes(w.out)


@needs_wimlib
def test_lzx_uncompressed_blocks() -> None:
    """Uncompressed blocks (which wimlib's compressor does not emit for these chunks):
    odd and even sizes, the default size, several in one chunk; wimlib's
    decoder is the oracle. An offset of 0 in R0-R2 is refused, as by wimlib."""
    assert WIMLIB is not None
    rng = random.Random(11)
    for sizes in ([32768], [1001, 2000], [7, 9, 100]):
        blocks = [rng.randbytes(n) for n in sizes]
        chunk = lzx_uncompressed(blocks)
        size = sum(sizes)
        assert lzx_decompress(chunk, size) == b"".join(blocks) == \
            WIMLIB.decompress(Wimlib.LZX, chunk, size, 32768)
    with pytest.raises(ValueError):
        lzx_decompress(lzx_uncompressed([b"abc"], (0, 1, 1)), 3)
    assert WIMLIB.decompress(Wimlib.LZX, lzx_uncompressed([b"abc"], (0, 1, 1)), 3,
                             32768) is None


def test_wof_chunk_cap(windows_ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WOF_MAX_CHUNK_BYTES: LZX's 32 KiB chunks are read at the cap, refused one below."""
    path = "Windows/lzx/SYSTEM"

    def read() -> None:
        assert volume(windows_ntfs).open(path).read(0, 100) == FILES[path][:100]
    monkeypatch.setattr(limits, "WOF_MAX_CHUNK_BYTES", 32768)
    read()
    monkeypatch.setattr(limits, "WOF_MAX_CHUNK_BYTES", 32767)
    with pytest.raises(LimitExceeded, match="WOF_MAX_CHUNK_BYTES"):
        read()
    with pytest.raises(LimitExceeded):
        xpress_huffman_decompress(b"", 32768)


# -- malformed WOF files ---------------------------------------------------------------------

def record_offset(img: Path, vol: NtfsVolume, number: int) -> int:
    """Disk offset of MFT record ``number``, from istat's runs of $MFT (sleuthkit)."""
    out = run("istat", img, "0")
    body = out.split("Type: $DATA", 1)[1].split("\n", 1)[1]
    clusters = [int(c) for line in body.splitlines() if line.strip().replace(" ", "").isdigit()
                for c in line.split()]
    pos = number * vol.record_size
    return clusters[pos // vol.cluster_size] * vol.cluster_size + pos % vol.cluster_size


def patched_reparse(img: Path, vol: NtfsVolume, path: str, field: int,
                    value: bytes) -> bytearray:
    """The volume with bytes ``field`` of ``path``'s resident reparse value replaced."""
    data = bytearray(img.read_bytes())
    number = vol.open(path).record_number
    rec = record_offset(img, vol, number)
    pos = struct.unpack_from("<H", data, rec + 20)[0]
    while struct.unpack_from("<I", data, rec + pos)[0] != 0xC0:
        pos += struct.unpack_from("<I", data, rec + pos + 4)[0]
    value_at = pos + struct.unpack_from("<H", data, rec + pos + 20)[0]
    ntfs_poke(data, rec, value_at + field, value)
    return data


@pytest.mark.skipif(shutil.which("istat") is None, reason="sleuthkit absent")
@pytest.mark.parametrize(("field", "value", "kind", "words"), [
    (12, struct.pack("<I", 1), UnsupportedFeature, "WIMBoot"),
    (20, struct.pack("<I", 9), UnsupportedFeature, "algorithm 9"),
])
def test_wof_reparse_points_imgscan_cannot_read(windows_ntfs: Path, vol: NtfsVolume,
                                                field: int, value: bytes,
                                                kind: type[ImageError], words: str) -> None:
    path = "Windows/xpress8k/SYSTEM"
    bad = volume(windows_ntfs, patched_reparse(windows_ntfs, vol, path, field, value))
    with promptly(2), pytest.raises(kind, match=words) as info:
        bad.open(path).read()
    assert str(info.value).startswith("corrupt.img:")


@pytest.mark.skipif(shutil.which("icat") is None, reason="sleuthkit absent")
def test_wof_chunk_table_out_of_order(windows_ntfs: Path, vol: NtfsVolume) -> None:
    """A chunk table entry pointing past the stream: refused, naming the chunk."""
    path = "Windows/xpress4k/SYSTEM"
    f = vol.open(path, "WofCompressedData")
    lcn = f.runs()[0][1]
    data = bytearray(windows_ntfs.read_bytes())
    data[lcn * vol.cluster_size + 4:lcn * vol.cluster_size + 8] = struct.pack("<I", 1 << 30)
    bad = volume(windows_ntfs, data)
    with promptly(2), pytest.raises(CorruptImage, match=r"chunk 1 .* out of order"):
        bad.open(path).read()
    assert bad.open(path).read(0, 4096) == FILES[path][:4096]   # chunk 0 still reads
    # Chunk 0's bytes damaged: a malformed chunk, never garbage.
    start = struct.unpack_from("<I", data, lcn * vol.cluster_size)[0]
    assert start < 4096
    table = 4 * (-(-len(FILES[path]) // 4096) - 1)
    for i in range(table + 256, table + 300):
        data[lcn * vol.cluster_size + i] ^= 0x5A
    with promptly(2):
        try:
            got = volume(windows_ntfs, data).open(path).read(0, 4096)
            assert got != FILES[path][:4096]
        except CorruptImage as exc:
            assert "XPRESS Huffman chunk 0" in str(exc)


# -- LZNT1, sparse files ---------------------------------------------------------------------

#: A sparse file whose one hole is longer than the whole volume.
PAST_THE_VOLUME = "sparse-past-the-volume.bin"


@pytest.mark.skipif(shutil.which("icat") is None or shutil.which("ntfscat") is None,
                    reason="sleuthkit's icat or ntfs-3g's ntfscat absent")
@pytest.mark.parametrize("path", ["Compressed/hive.log", "Compressed/random.bin", *SPARSE])
def test_lznt1_and_sparse_files_match_icat_and_ntfscat(windows_ntfs: Path, vol: NtfsVolume,
                                                       path: str) -> None:
    f = vol.open(path)
    expected = FILES[path] if path in FILES else sparse_content(path)
    ours = f.read()
    assert ours == expected
    icat = subprocess.run(["icat", os.fspath(windows_ntfs), str(f.record_number)],
                          capture_output=True, check=False)
    if path == PAST_THE_VOLUME:
        # sleuthkit refuses any run longer than the volume, holes included ("ntfs_make_run:
        # Run length is larger than file system"); ntfs-3g, which wrote it, and libfsntfs
        # read it.
        assert icat.returncode != 0 and b"larger than file system" in icat.stderr
        assert sha(ours) == sha(ntfscat(windows_ntfs, path))
        if has_pyfsntfs():
            assert libfsntfs_sha256(windows_ntfs, [path]) == {path: sha(ours)}
        assert any(lcn < 0 and n * vol.cluster_size > VOLUME_BYTES for _, lcn, n in f.runs())
    else:
        assert icat.returncode == 0, icat.stderr
        assert sha(ours) == sha(icat.stdout) == sha(ntfscat(windows_ntfs, path))
    if path.startswith("Compressed/hive"):
        assert f.compressed
    if path in SPARSE:
        assert f.sparse and any(lcn < 0 for _, lcn, _ in f.runs())


# -- junctions and symbolic links ---------------------------------------------------------------

@pytest.fixture(scope="module")
def ntfs3g_links(windows_ntfs: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, str]:
    """{link: target} as ntfs-3g's FUSE mount shows them, mount point stripped."""
    if os.geteuid() != 0 or shutil.which("ntfs-3g") is None:
        pytest.skip("an ntfs-3g mount needs root and ntfs-3g")
    mnt = tmp_path_factory.mktemp("links-mnt")
    subprocess.run(["ntfs-3g", "-o", "ro", windows_ntfs, mnt], check=True, capture_output=True)
    try:
        return {rel: os.readlink(mnt / rel).removeprefix(os.fspath(mnt) + "/")
                for rel in LINKS}
    finally:
        unmount(mnt)


def test_links_followed_to_their_targets(vol: NtfsVolume, ntfs3g_links: dict[str, str]
                                         ) -> None:
    """Each link's target as ntfs-3g reads it, and the file reached through it."""
    assert ntfs3g_links["Junction"] == "Windows/xpress8k"
    assert ntfs3g_links["Windows/abs-symlink.txt"] == "Windows/xpress4k/SYSTEM"
    assert ntfs3g_links["Windows/Sys16"] == "xpress16k"
    assert ntfs3g_links["loop-a"] == "loop-b"
    assert vol.listdir("Junction") == vol.listdir("Windows/xpress8k")
    assert vol.open(r"Junction\cmd.exe").read() == FILES["Windows/xpress8k/cmd.exe"]
    assert vol.open(r"\Windows\abs-symlink.txt").read() == FILES["Windows/xpress4k/SYSTEM"]
    assert vol.open(r"Windows\Sys16\mixed.bin").read() == FILES["Windows/xpress16k/mixed.bin"]
    assert vol.open(r"Windows\chain.txt").read() == FILES["Windows/xpress8k/SYSTEM"]
    assert vol.open(r"Windows\up.txt").read() == FILES["Compressed/hive.log"]
    conf = "Program Files/Cloudbase Solutions/Cloudbase-Init/conf/cloudbase-init.conf"
    assert vol.open(r"Program Files\Cloudbase-Link\conf\cloudbase-init.conf").read() == \
        FILES[conf]


def test_deduplicated_file_is_refused(vol: NtfsVolume, windows_ntfs: Path) -> None:
    """A Data Deduplication placeholder reads as an error saying why, never as zeros."""
    with pytest.raises(UnsupportedFeature, match="deduplicated"):
        vol.open("Windows/dedup.dll").read(0, 10)
    raw = windows_ntfs.read_bytes()
    fs = NtfsFileSystem(lambda o, n: raw[o:o + n], 0, len(raw), "vol")
    assert fs.stat("/Windows/dedup.dll").kind == "other"


def test_links_that_cannot_be_followed(vol: NtfsVolume) -> None:
    with promptly(2), pytest.raises(LimitExceeded, match="NTFS_MAX_REPARSE_FOLLOWS"):
        vol.open("loop-a")
    with pytest.raises(UnsupportedFeature, match="another volume"):
        vol.open(r"Windows\elsewhere\x")


def test_link_follows_cap(windows_ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chain.txt -> C:\\Junction\\SYSTEM -> C:\\Windows\\xpress8k: two links followed."""
    monkeypatch.setattr(limits, "NTFS_MAX_REPARSE_FOLLOWS", 2)
    assert volume(windows_ntfs).open(r"Windows\chain.txt").size == \
        len(FILES["Windows/xpress8k/SYSTEM"])
    monkeypatch.setattr(limits, "NTFS_MAX_REPARSE_FOLLOWS", 1)
    with pytest.raises(LimitExceeded, match="NTFS_MAX_REPARSE_FOLLOWS") as info:
        volume(windows_ntfs).open(r"Windows\chain.txt")
    assert isinstance(info.value.offset, int)


@pytest.mark.skipif(shutil.which("istat") is None, reason="sleuthkit absent")
def test_reparse_bytes_cap(windows_ntfs: Path, vol: NtfsVolume,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The junction's $REPARSE_POINT is as long as istat says (and as the buffer written)."""
    number = vol.open("Windows").record_number
    junction = vol.child(5, "Junction")
    assert junction is not None and number
    size = int(run("istat", windows_ntfs, str(junction)).split("$REPARSE_POINT", 1)[1]
               .split("size: ", 1)[1].split()[0])
    tag, target, relative = LINKS["Junction"]
    assert size == len(link_reparse(tag, target, relative))
    monkeypatch.setattr(limits, "NTFS_MAX_REPARSE_BYTES", size)
    assert volume(windows_ntfs).listdir("Junction")
    monkeypatch.setattr(limits, "NTFS_MAX_REPARSE_BYTES", size - 1)
    with pytest.raises(LimitExceeded, match="NTFS_MAX_REPARSE_BYTES"):
        volume(windows_ntfs).listdir("Junction")


def test_a_reparse_point_refused_does_not_hide_its_directory(
        windows_ntfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The root listed while its junction's reparse point is past NTFS_MAX_REPARSE_BYTES:
    every name fls lists is there, the junction as ``other`` (so a path through it names
    no directory)."""
    raw = windows_ntfs.read_bytes()
    monkeypatch.setattr(limits, "NTFS_MAX_REPARSE_BYTES", 8)
    fs = NtfsFileSystem(lambda o, n: raw[o:o + n], 0, len(raw), "vol")
    kinds = {e.name: e.kind for e in fs.listdir("/")}
    fls = {line.split("\t", 1)[1].split(":", 1)[0] for line in
           run("fls", windows_ntfs).splitlines() if "\t" in line}
    assert fls - {"$OrphanFiles"} <= set(kinds)
    assert kinds["Junction"] == "other"
    with pytest.raises(ImageError, match="not a directory"):
        fs.read_file("/Junction/cmd.exe")


def test_filesystem_interface(windows_ntfs: Path, ntfs3g_links: dict[str, str]) -> None:
    """``imgscan ls`` / ``cat``'s view: links are symlinks whose targets ntfs-3g agrees on,
    WOF files are files of their real size, read in full."""
    raw = windows_ntfs.read_bytes()
    fs = NtfsFileSystem(lambda o, n: raw[o:o + n], 0, len(raw), "vol")
    assert fs.stat("/Junction", follow=False).kind == "symlink"
    assert fs.readlink("/Junction") == "/" + ntfs3g_links["Junction"]
    assert fs.readlink("/Windows/abs-symlink.txt") == "/" + ntfs3g_links[
        "Windows/abs-symlink.txt"]
    assert fs.readlink("/Windows/Sys16") == ntfs3g_links["Windows/Sys16"]
    st = fs.stat("/Windows/lzx/cmd.exe")
    assert (st.kind, st.size) == ("file", len(FILES["Windows/lzx/cmd.exe"]))
    assert fs.read_file("/Junction/cmd.exe") == FILES["Windows/xpress8k/cmd.exe"]
    assert fs.read_file("/Windows/Sys16/SYSTEM") == FILES["Windows/xpress16k/SYSTEM"]


def test_cat_reads_wof_files(windows_ntfs: Path) -> None:
    """``imgscan cat IMAGE PATH`` on the bare volume prints the decompressed bytes."""
    done = run_cli("cat", os.fspath(windows_ntfs), "/Windows/lzx/SYSTEM")
    assert done.returncode == 0, done.stderr
    assert done.stdout.encode() == FILES["Windows/lzx/SYSTEM"]


def test_windows_inspection_reads_a_compactos_cmd_exe(windows_ntfs: Path) -> None:
    """The architecture comes from cmd.exe's PE header, which CompactOS compressed (LZX):
    the placeholder's zeros would have been "no MZ signature"."""
    import imgscan
    with imgscan.open(windows_ntfs) as img:
        windows = img.info()["windows"]
    assert windows["arch"] == "x86_64", windows


# -- $MFT behind an $ATTRIBUTE_LIST ---------------------------------------------------------

def istat_clusters(out: str, attr: str) -> list[int]:
    body = out.split(f"Type: {attr}", 1)[1].split("\n", 1)[1]
    numbers: list[int] = []
    for line in body.splitlines():
        if not line.strip() or not line.replace(" ", "").isdigit():
            break
        numbers.extend(int(c) for c in line.split())
    return numbers


@pytest.mark.skipif(not all(shutil.which(t) for t in ("istat", "icat", "fls")),
                    reason="sleuthkit absent")
def test_mft_with_attribute_list_matches_sleuthkit(fragmented_mft: Path) -> None:
    """$MFT's runs (record 0's extent, then extension record's) are istat's, and the files
    whose records lie in the part mapped by the extension are found and read as fls and
    icat find and read them."""
    out = run("istat", fragmented_mft, "0")
    assert "$ATTRIBUTE_LIST" in out
    vol = volume(fragmented_mft)
    mft = vol.open_record(0)
    clusters = [lcn + i for _, lcn, n in mft.runs() for i in range(n)]
    assert clusters == istat_clusters(out, "$DATA")
    assert len(mft.runs()) > 200
    listed = {}
    for line in run("fls", fragmented_mft, str(vol.open("c").record_number)).splitlines():
        _kind, rest = line.split(" ", 1)
        inode, name = rest.split(":\t", 1)
        if not inode.startswith("*"):           # an entry of the file that did not fit
            listed[name] = int(inode.split("-")[0])
    assert sorted(listed) == sorted(vol.listdir("c"))
    # The attribute list's entries: where $DATA's extension extent starts (VCN).
    extents = [(int(m[1]), int(m[2])) for m in
               re.finditer(r"Type: 128-\d+ \tMFT Entry: (\d+) \tVCN: (\d+)", out)]
    start = min(vcn for entry, vcn in extents if entry != 0)
    assert max(listed.values()) * vol.record_size >= start * vol.cluster_size
    for entry_name, number in sorted(listed.items(), key=lambda kv: kv[1])[-20:]:
        assert vol.open(f"c\\{entry_name}").record_number == number
    for name in ("f1", "f3999"):
        f = vol.open(f"b\\{name}")
        icat = subprocess.run(["icat", os.fspath(fragmented_mft), str(f.record_number)],
                              capture_output=True, check=True).stdout
        assert f.read() == icat and len(icat) == 1000

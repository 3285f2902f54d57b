"""NTFS reader (imgscan/_core/ntfs.pyx) against sleuthkit and ntfs-3g's tools.

Volumes come from tests/fixtures/ntfs/*.img.xz, made by
tests/fixtures/make_ntfs.sh with mkntfs and an ntfs-3g FUSE mount (committed
so the tests run without root or FUSE). Oracles: sleuthkit's ``fls -r -p``
(the tree), ``icat`` (every stream's bytes), ``istat`` (runs), ``fsstat``
(label, serial, cluster size) and ntfs-3g's ``ntfsinfo`` (version, flags).
Real Windows-made volumes come from ../shared/corpus/real. Malformed
volumes are copies of the generated ones with single fields corrupted.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from helpers import TESTS, promptly, unpack_fixtures
from helpers.patchers import ntfs_poke
from oracles import CORPUS, needs_corpus, needs_qemu, run

import imgscan
from imgscan import limits
from imgscan._core.ntfs import FileNotFound, NtfsFile, NtfsVolume, lznt1_decompress
from imgscan._core.partitions import read_partition_table
from imgscan.errors import CorruptImage, ImageError, LimitExceeded, TruncatedImage

FIXTURES = TESTS / "fixtures" / "ntfs"
SCRIPT = TESTS / "fixtures" / "make_ntfs.sh"
NAMES = ("win", "c512", "c64k", "s4k", "c128k")
#: sleuthkit 4.11 refuses clusters above 64 KiB ("Cannot determine file system type"):
#: the 128 KiB-cluster volume is checked with ntfs-3g's ntfsinfo / ntfsls / ntfscat.
TSK_NAMES = NAMES[:-1]
HAVE_TSK = all(shutil.which(t) for t in ("fls", "icat", "istat", "fsstat"))
needs_tsk = pytest.mark.skipif(not HAVE_TSK, reason="sleuthkit (fls/icat/istat/fsstat) absent")
needs_ntfsinfo = pytest.mark.skipif(shutil.which("ntfsinfo") is None,
                                    reason="ntfs-3g's ntfsinfo absent")

Read = Callable[[int, int], bytes]
CHUNK = 64 << 20


def istat_clusters(out: str, attr: str) -> list[int]:
    """The cluster numbers istat lists under the first attribute of type ``attr``."""
    body = out.split(f"Type: {attr}", 1)[1].split("\n", 1)[1]
    numbers: list[int] = []
    for line in body.splitlines():
        if not re.fullmatch(r"[\d ]+", line.strip() or "x"):
            break
        numbers.extend(int(c) for c in line.split())
    return numbers


def file_reader(path: Path) -> tuple[Read, int]:
    data = path.read_bytes()

    def read(offset: int, length: int) -> bytes:
        return data[offset:offset + length]

    return read, len(data)


def bytes_reader(data: bytes | bytearray) -> Read:
    frozen = bytes(data)

    def read(offset: int, length: int) -> bytes:
        return frozen[offset:offset + length]

    return read


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ntfs")
    return unpack_fixtures(FIXTURES, NAMES, out)


def volume(path: Path, name: str = "vol") -> NtfsVolume:
    read, size = file_reader(path)
    return NtfsVolume(read, 0, size, name)


# -- oracles -------------------------------------------------------------------

def tsk(*args: str | os.PathLike[str]) -> str:
    proc = subprocess.run([os.fspath(a) for a in args], capture_output=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{args!r} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8", "surrogateescape")


def fls_tree(img: Path, sector: int | None = None) -> dict[str, tuple[str, str]]:
    """{path: (kind 'd' or 'r', inode-type-id)} of allocated entries, streams included."""
    extra = ["-o", str(sector)] if sector is not None else []
    tree = {}
    for line in tsk("fls", "-r", "-p", *extra, img).splitlines():
        m = re.match(r"^(\S)/(\S) (\*? ?)(\d+-\d+-\d+):\t(.*)$", line)
        if not m or m.group(3).strip():
            continue        # deleted entries and $OrphanFiles
        if m.group(5).startswith("$OrphanFiles"):
            continue
        tree[m.group(5)] = (m.group(1), m.group(4))
    return tree


def icat_sha(img: Path, addr: str, sector: int | None = None) -> str:
    extra = ["-o", str(sector)] if sector is not None else []
    proc = subprocess.run(["icat", *extra, os.fspath(img), addr], capture_output=True,
                          check=True)
    return hashlib.sha256(proc.stdout).hexdigest()


def walk(vol: NtfsVolume, path: str = "") -> Iterator[tuple[str, bool]]:
    for name in vol.listdir("\\" + path):
        child = f"{path}/{name}" if path else name
        is_dir = vol.is_dir(child)
        yield child, is_dir
        if is_dir:
            yield from walk(vol, child)


def split_stream(vol: NtfsVolume, path: str, inode: int) -> tuple[str, str]:
    """fls shows a named stream as PATH:NAME; find which colon separates it."""
    if vol.exists(path):
        f = vol.lookup(path)
        assert f is not None
        if f.record_number == inode:
            return path, ""
    i = path.rfind(":")
    assert i > 0, path
    return path[:i], path[i + 1:]


def compare_with_tsk(vol: NtfsVolume, img: Path, sector: int | None = None) -> int:
    """The whole tree and every $DATA stream's sha256 against fls + icat."""
    tree = fls_tree(img, sector)
    ours = dict(walk(vol))
    # A file without an unnamed $DATA ($Secure, $Extend/$Quota) shows only as PATH:STREAM.
    theirs_names = {p if vol.exists(p) else p[:p.rfind(":")] for p in tree}
    assert theirs_names == set(ours), (sorted(theirs_names - set(ours))[:10],
                                       sorted(set(ours) - theirs_names)[:10])
    checked = 0
    for p, (kind, addr) in tree.items():
        inode, atype, _ = addr.split("-")
        if kind != "r" or atype != "128" or p == "$BadClus:$Bad":
            continue    # icat prints nothing for $Bad, a hole the size of the volume
        base, stream = split_stream(vol, p, int(inode))
        f = vol.open(base, stream)
        assert f.record_number == int(inode), p
        h = hashlib.sha256()
        for pos in range(0, f.size, CHUNK):
            h.update(f.read(pos, CHUNK))
        assert hashlib.sha256(h.digest()).hexdigest() != "" and \
            h.hexdigest() == icat_sha(img, addr, sector), p
        checked += 1
    return checked


def fsstat_facts(img: Path, sector: int | None = None) -> dict[str, str]:
    extra = ["-o", str(sector)] if sector is not None else []
    facts: dict[str, str] = {}
    for line in tsk("fsstat", *extra, img).splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in ("Volume Serial Number", "Volume Name", "Cluster Size", "Version",
                           "Size of MFT Entries", "Size of Index Records"):
            facts.setdefault(key, value.strip())
    return facts


def ntfsinfo_facts(img: Path) -> dict[str, str]:
    out = run("ntfsinfo", "-m", "-f", img)
    facts: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep:
            facts.setdefault(key, value.strip())
    return facts


# -- generated volumes ---------------------------------------------------------------

@needs_tsk
@pytest.mark.parametrize("name", TSK_NAMES)
def test_volume_facts_match_fsstat(images: dict[str, Path], name: str) -> None:
    vol = volume(images[name])
    facts = fsstat_facts(images[name])
    assert vol.label == facts["Volume Name"]
    assert vol.serial == facts["Volume Serial Number"]
    assert vol.cluster_size == int(facts["Cluster Size"])
    assert vol.record_size == int(facts["Size of MFT Entries"].split()[0])
    assert vol.index_record_size == int(facts["Size of Index Records"].split()[0])
    assert facts["Version"] == "Windows XP" and vol.version == "3.1"


@needs_ntfsinfo
@pytest.mark.parametrize("name", NAMES)
def test_volume_facts_match_ntfsinfo(images: dict[str, Path], name: str) -> None:
    vol = volume(images[name])
    facts = ntfsinfo_facts(images[name])
    assert vol.version == facts["Volume Version"]
    assert vol.dirty == bool(int(facts["Volume Flags"], 16) & 1)
    assert vol.sector_size == int(facts["Sector Size"])


@needs_tsk
@pytest.mark.parametrize("name", TSK_NAMES)
def test_tree_and_contents_match_sleuthkit(images: dict[str, Path], name: str) -> None:
    checked = compare_with_tsk(volume(images[name]), images[name])
    assert checked >= 10


@pytest.mark.skipif(shutil.which("ntfscat") is None or shutil.which("ntfsls") is None,
                    reason="ntfs-3g's ntfscat / ntfsls absent")
def test_huge_clusters_match_ntfs3g(images: dict[str, Path]) -> None:
    img = images["c128k"]
    vol = volume(img)
    assert vol.cluster_size == 131072 and vol.label == "Big128K"
    listed = [n for n in run("ntfsls", "-f", img, "-p", "/Windows/System32/config").split()
              if n not in (".", "..")]
    assert vol.listdir(r"\Windows\System32\config") == listed == ["SYSTEM"]
    proc = subprocess.run(["ntfscat", "-f", os.fspath(img), "/Windows/System32/config/SYSTEM"],
                          capture_output=True, check=True)
    assert vol.open(r"\windows\system32\config\system").read() == proc.stdout
    assert len(proc.stdout) == 500000


def test_windows_paths_case_insensitive(images: dict[str, Path]) -> None:
    vol = volume(images["win"])
    system = vol.open(r"\Windows\System32\config\SYSTEM")
    again = vol.open(r"windows\system32\CONFIG\system")
    assert system.record_number == again.record_number
    assert system.size == 3145728 and not system.is_dir
    head = system.read(0, 64)
    assert head.startswith(b"SYSTEM@00000000:")
    assert system.read(3145728 - 64, 1000).startswith(b"SYSTEM@002fffc0:")
    assert system.read(3145728) == b""
    assert vol.exists("/WINDOWS/System32/cmd.exe") and vol.is_dir("Windows/System32")
    assert not vol.exists(r"\Windows\System32\config\SECURITY")
    assert vol.lookup(r"\Windows\System32\cmd.exe\x") is None
    assert vol.lookup(r"\Nope\cmd.exe") is None
    with pytest.raises(FileNotFound):
        vol.open(r"\Windows\notepad.exe")
    assert vol.open("\\").is_dir
    # Non-ASCII names, upcased through $UpCase (Ü -> ü, é -> É).
    assert vol.open("\\über\\ÖL.TXT").read() == b"umlaut dir\n"
    assert vol.open("CAFÉ RÉSUMÉ.TXT").read() == b"accent\n"
    assert vol.open("日本語.txt").read() == b"cjk\n"
    assert vol.open("SMILE_\U0001f600.TXT").read() == b"emoji\n"
    assert vol.open("l" * 255).read() == b"long\n"
    # A hard link: one record, two names.
    link = vol.open(r"\Windows\cmd-link.exe")
    assert link.record_number == vol.open(r"\Windows\System32\cmd.exe").record_number
    assert {n for _, _, n in link.names} == {"cmd.exe", "cmd-link.exe"}


def test_listdir_large_index(images: dict[str, Path]) -> None:
    vol = volume(images["win"])
    names = vol.listdir("many")
    assert names == [f"File_With_A_Longish_Name_{i:04d}.txt" for i in range(300)]
    for i in (0, 1, 150, 299):
        assert vol.open(f"MANY\\file_with_a_longish_name_{i:04d}.TXT").read() == \
            f"entry {i}\n".encode()
    assert vol.lookup("many\\File_With_A_Longish_Name_0300.txt") is None
    # Several index levels: the root's entries point to INDX nodes.
    with pytest.raises(FileNotFound):
        vol.listdir("many\\nothing")


@needs_tsk
def test_fragmented_file_runs_match_istat(images: dict[str, Path]) -> None:
    img = images["win"]
    vol = volume(img)
    f = vol.open(r"\Windows\Temp\fragmented.bin")
    out = tsk("istat", img, str(f.record_number))
    assert "$ATTRIBUTE_LIST" in out           # the run list overflowed its record
    clusters = istat_clusters(out, "$DATA")
    ours = [lcn + i for _, lcn, n in f.runs() for i in range(n)]
    assert ours[:len(clusters)] == clusters
    assert len(f.runs()) > 100


@needs_tsk
def test_first_lookup_announces_upcase_and_root_index(images: dict[str, Path]) -> None:
    """The first lookup by name announces, once and before reading them, the clusters
    of $UpCase's first page (record 10's $DATA, exactly) and of the root directory's
    $INDEX_ALLOCATION (with its neighbourhood) that istat lists, in the disk's
    coordinates (a volume 1 MiB into the disk): a remote source fetches them in one
    round trip. Later lookups announce nothing."""
    img = images["win"]
    raw = img.read_bytes()
    start = 1 << 20
    disk = bytes(start) + raw
    read_ranges: list[tuple[int, int]] = []
    announced: list[tuple[list[tuple[int, int]], list[tuple[int, int]], int]] = []

    def read(offset: int, length: int) -> bytes:
        read_ranges.append((offset, length))
        return disk[offset:offset + length]

    def prefetch(ranges: list[tuple[int, int]], structure: str,
                 near: list[tuple[int, int]]) -> None:
        announced.append((ranges, near, len(read_ranges)))

    vol = NtfsVolume(read, start, len(raw), "vol", prefetch)
    assert vol.open(r"\Windows\System32\config\SYSTEM").size == \
        volume(img).open(r"\Windows\System32\config\SYSTEM").size
    vol.open(r"\Windows\Temp\fragmented.bin")
    assert len(announced) == 1
    ranges, near, reads_before = announced[0]
    cs = vol.cluster_size

    def clusters(announced: list[tuple[int, int]]) -> set[int]:
        return {(o - start) // cs + i for o, n in announced for i in range(-(-n // cs))}

    # $UpCase's first page (4 KiB: ASCII's code units); the others are read as names need them
    upcase = set(istat_clusters(tsk("istat", img, "10"), "$DATA")[:-(-(4 << 10) // cs)])
    index = set(istat_clusters(tsk("istat", img, "5"), "$INDEX_ALLOCATION")[:(64 << 10) // cs])
    # $UpCase exactly, the root's index with its neighbourhood
    assert clusters(ranges) == upcase and clusters(near) == index
    expected = upcase | index
    # announced before any of those clusters was read (every cluster each read spans)
    early = {c for o, n in read_ranges[:reads_before]
             for c in range((o - start) // cs, (o - start + n - 1) // cs + 1)}
    assert not early & expected


def test_sparse_and_appended_files(images: dict[str, Path]) -> None:
    vol = volume(images["win"])
    sparse = vol.open(r"\Windows\Temp\sparse.bin")
    assert sparse.sparse and any(lcn == -1 for _, lcn, _ in sparse.runs())
    assert sparse.read(10000, 5 * 1024 * 1024 - 10000) == bytes(5 * 1024 * 1024 - 10000)
    assert sparse.read(5 * 1024 * 1024, 12).startswith(b"sparse-tail@")
    appended = vol.open(r"\Windows\Temp\appended.log")
    assert appended.read(100000, 11) == b"appended-2@"


def test_alternate_data_streams(images: dict[str, Path]) -> None:
    vol = volume(images["win"])
    f = vol.open("ads.txt")
    assert sorted(f.streams()) == ["", "Zone.Identifier", "big"]
    assert f.read() == b"main stream\n"
    assert vol.open("ads.txt", "Zone.Identifier").read() == b"zone\n"
    assert vol.open("ADS.TXT", "big").size == 50000
    with pytest.raises(FileNotFound):
        vol.open("ads.txt", "missing")


def test_compressed_files(images: dict[str, Path]) -> None:
    vol = volume(images["win"])
    text = vol.open(r"\Compressed\text.log")
    assert text.compressed and len(text.runs()) > 1
    data = text.read()
    assert len(data) == 300000 and data.startswith(b"compressed@00000000:")
    assert text.read(123457, 70).startswith(text.read(123400, 127)[57:])
    mixed = vol.open(r"\Compressed\mixed.bin")
    assert mixed.read(400000).startswith(b"mixed-tail@")
    assert mixed.read(46000, 400000 - 46000) == bytes(400000 - 46000)    # truncate -s
    assert vol.open(r"\Compressed\random.bin").size == 6000


def test_lznt1_rejects_malformed_streams() -> None:
    # Chunk header claiming more bytes than given; back-reference before the chunk.
    with pytest.raises(ValueError):
        lznt1_decompress(b"\xff\xbf\x00", 4096)
    with pytest.raises(ValueError):
        lznt1_decompress(b"\x02\xb0\x01\x10\x00", 4096)
    assert lznt1_decompress(b"\x03\xb0\x00abc", 16) == b"abc" + bytes(13)
    with pytest.raises(ValueError):
        lznt1_decompress(b"", limits.NTFS_MAX_COMPRESSION_UNIT_BYTES + 1)


def test_read_bounds(images: dict[str, Path]) -> None:
    vol = volume(images["win"])
    f = vol.open(r"\Windows\System32\config\SOFTWARE")
    assert f.read(f.size - 10, 100) == f.read(f.size - 10)
    assert len(f.read(4096, 8192)) == 8192
    with pytest.raises(ValueError):
        f.read(-1, 10)
    assert vol.open(r"\Windows").read() == b""


def test_record_numbers_and_volume_at_an_offset(images: dict[str, Path]) -> None:
    raw = images["c512"].read_bytes()
    disk = bytes(1 << 20) + raw + bytes(4096)
    vol = NtfsVolume(bytes_reader(disk), 1 << 20, len(raw), "disk partition 1")
    assert vol.label == "Small512" and vol.cluster_size == 512
    assert vol.open(r"\Windows\System32\config\SYSTEM").size == 600000
    assert vol.open_record(5).is_dir
    assert len(vol.listdir("dir")) == 120


# -- malformed volumes ------------------------------------------------------------------

def record_offset(img: Path, vol: NtfsVolume, number: int) -> int:
    """Disk offset of MFT record ``number``, from istat's runs of $MFT (sleuthkit)."""
    out = tsk("istat", img, "0")
    clusters = istat_clusters(out, "$DATA")
    pos = number * vol.record_size
    return clusters[pos // vol.cluster_size] * vol.cluster_size + pos % vol.cluster_size


def attribute(rec: bytes | bytearray, atype: int) -> int:
    pos: int = struct.unpack_from("<H", rec, 20)[0]
    while struct.unpack_from("<I", rec, pos)[0] != atype:
        pos += struct.unpack_from("<I", rec, pos + 4)[0]
    return pos


def assert_prompt_error(kind: type[ImageError], action: Callable[[], object],
                        *words: str) -> ImageError:
    with promptly(2), pytest.raises(kind) as info:
        action()
    message = str(info.value)
    assert message.startswith("corrupt.img:"), message
    for word in words:
        assert word in message, message
    return info.value


@pytest.fixture
def win_bytes(images: dict[str, Path]) -> bytearray:
    return bytearray(images["win"].read_bytes())


@needs_tsk
def test_truncated_volume(images: dict[str, Path]) -> None:
    raw = images["win"].read_bytes()
    half = raw[:len(raw) // 4]
    vol = NtfsVolume(bytes_reader(half), 0, len(raw), "corrupt.img")
    f = vol.lookup(r"\Windows\System32\config\SYSTEM")
    assert f is not None
    with pytest.raises(TruncatedImage, match=r"corrupt\.img"):
        f.read()
    with pytest.raises(TruncatedImage):
        NtfsVolume(bytes_reader(raw[:300]), 0, len(raw), "corrupt.img")
    with pytest.raises(CorruptImage, match="boot sector"):
        NtfsVolume(bytes_reader(raw), 0, len(raw) // 2, "corrupt.img")


def test_boot_sector_validation(win_bytes: bytearray) -> None:
    for offset, value, word in ((3, b"NTFX", "OEM"), (11, b"\x00\x03", "bytes per sector"),
                                (13, b"\x03", "sectors per cluster"),
                                (48, struct.pack("<Q", 1 << 40), "LCN"),
                                (64, b"\x03", "MFT record size"),
                                (68, b"\xe0", "index record size")):
        bad = bytearray(win_bytes)
        bad[offset:offset + len(value)] = value
        reader = bytes_reader(bad)
        assert_prompt_error(CorruptImage, partial(NtfsVolume, reader, 0, len(bad), "corrupt.img"),
                            word)


@needs_tsk
def test_bad_fixup(images: dict[str, Path], win_bytes: bytearray) -> None:
    vol = volume(images["win"])
    number = vol.open(r"\Windows\System32\config\SYSTEM").record_number
    off = record_offset(images["win"], vol, number)
    win_bytes[off + 510] ^= 0xFF
    bad = NtfsVolume(bytes_reader(win_bytes), 0, len(win_bytes), "corrupt.img")
    assert_prompt_error(CorruptImage, lambda: bad.open(r"\Windows\System32\config\SYSTEM"),
                        f"MFT record {number}", "update sequence", f"offset {off + 510}")


@needs_tsk
def test_run_past_the_volume(images: dict[str, Path], win_bytes: bytearray) -> None:
    vol = volume(images["win"])
    number = vol.open(r"\Windows\System32\config\SAM").record_number
    off = record_offset(images["win"], vol, number)
    rec = win_bytes[off:off + 1024]
    data = attribute(rec, 0x80)
    runs = data + struct.unpack_from("<H", rec, data + 32)[0]
    header = rec[runs]
    lsize, osize = header & 15, header >> 4
    start = off + runs + 1 + lsize
    win_bytes[start:start + osize] = b"\xff" * (osize - 1) + b"\x7f"
    bad = NtfsVolume(bytes_reader(win_bytes), 0, len(win_bytes), "corrupt.img")
    assert_prompt_error(CorruptImage, lambda: bad.open(r"\Windows\System32\config\SAM"),
                        f"MFT record {number}", "outside the volume")


@needs_tsk
def test_attribute_list_pointing_elsewhere(images: dict[str, Path],
                                           win_bytes: bytearray) -> None:
    vol = volume(images["win"])
    f = vol.open(r"\Windows\Temp\fragmented.bin")
    other = vol.open(r"\Windows\System32\config\SAM").record_number
    img = images["win"]
    out = tsk("istat", img, str(f.record_number))
    al_cluster = istat_clusters(out, "$ATTRIBUTE_LIST")[0]
    off = al_cluster * vol.cluster_size
    pos = 0
    while pos < 4096 and struct.unpack_from("<H", win_bytes, off + pos + 4)[0]:
        ref = struct.unpack_from("<Q", win_bytes, off + pos + 16)[0] & ((1 << 48) - 1)
        if ref != f.record_number:
            # An extension that is the base record itself (a loop) and one that belongs
            # to another file.
            win_bytes[off + pos + 16:off + pos + 24] = struct.pack("<Q", f.record_number)
            break
        pos += struct.unpack_from("<H", win_bytes, off + pos + 4)[0]
    looped = NtfsVolume(bytes_reader(win_bytes), 0, len(win_bytes), "corrupt.img")
    assert_prompt_error(CorruptImage, lambda: looped.open(r"\Windows\Temp\fragmented.bin"),
                        f"attribute list of MFT record {f.record_number}",
                        "does not hold it")
    win_bytes[off + pos + 16:off + pos + 24] = struct.pack("<Q", other)
    bad = NtfsVolume(bytes_reader(win_bytes), 0, len(win_bytes), "corrupt.img")
    assert_prompt_error(CorruptImage, lambda: bad.open(r"\Windows\Temp\fragmented.bin"),
                        f"MFT record {other}", "extension of record")


@needs_tsk
def test_index_node_pointing_to_itself(images: dict[str, Path],
                                       win_bytes: bytearray) -> None:
    vol = volume(images["win"])
    d = vol.open("many")
    out = tsk("istat", images["win"], str(d.record_number))
    clusters = istat_clusters(out, "$INDEX_ALLOCATION")
    assert len(clusters) >= 8                      # 300 names need several nodes
    looped = 0
    for lcn in clusters:
        node = lcn * vol.cluster_size
        assert win_bytes[node:node + 4] == b"INDX"
        vcn = struct.unpack_from("<Q", win_bytes, node + 16)[0]
        pos = node + 24 + struct.unpack_from("<I", win_bytes, node + 24)[0]
        end = node + 24 + struct.unpack_from("<I", win_bytes, node + 28)[0]
        while pos < end:
            length, _, flags = struct.unpack_from("<HHI", win_bytes, pos + 8)
            if flags & 1:       # an inner node: point its sub-nodes back at itself
                ntfs_poke(win_bytes, node, pos + length - 8 - node, struct.pack("<Q", vcn))
                looped += 1
            if flags & 2:
                break
            pos += length
    assert looped, "the index has no inner INDX node"
    bad = NtfsVolume(bytes_reader(win_bytes), 0, len(win_bytes), "corrupt.img")
    assert_prompt_error(CorruptImage, lambda: bad.listdir("many"), "index of many",
                        "cycle")
    assert_prompt_error(CorruptImage,
                        lambda: bad.lookup("many\\File_With_A_Longish_Name_0150.txt"),
                        "index of \\many", "cycle")


@needs_tsk
def test_extension_records_referencing_each_other(images: dict[str, Path],
                                                  win_bytes: bytearray) -> None:
    vol = volume(images["win"])
    a = vol.open(r"\Windows\System32\config\SYSTEM").record_number
    b = vol.open(r"\Windows\System32\config\SOFTWARE").record_number
    img = images["win"]
    oa, ob = record_offset(img, vol, a), record_offset(img, vol, b)
    win_bytes[oa + 32:oa + 40] = struct.pack("<Q", b)
    win_bytes[ob + 32:ob + 40] = struct.pack("<Q", a)
    bad = NtfsVolume(bytes_reader(win_bytes), 0, len(win_bytes), "corrupt.img")
    assert_prompt_error(CorruptImage, lambda: bad.open(r"\Windows\System32\config\SYSTEM"),
                        f"MFT record {a}", f"extension of record {b}")


def test_lookup_budget(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "NTFS_MAX_LOOKUP_STEPS", 3)
    vol = volume(images["win"])
    with pytest.raises(LimitExceeded, match="NTFS_MAX_LOOKUP_STEPS"):
        vol.open(r"\many\File_With_A_Longish_Name_0123.txt")


# -- real Windows-made volumes -------------------------------------------------------------

def raw_copy(src: Path, out: Path, fmt: str | None = None) -> Path:
    extra = ["-f", fmt] if fmt else []
    run("qemu-img", "convert", *extra, "-O", "raw", src, out)
    return out


REAL = [
    ("dfvfs/vsstest.qcow2", None),
    ("dfvfs/windows_volume.qcow2", None),
    ("dissect.hypervisor/vhd/fixed.vhd.gz", "vpc"),
    ("dissect.hypervisor/vhd/dynamic.vhd.gz", "vpc"),
    ("dissect.hypervisor/vhdx/fixed.vhdx.gz", "vhdx"),
    ("dissect.hypervisor/vhdx/dynamic.vhdx.gz", "vhdx"),
]


@needs_corpus
@needs_qemu
@needs_tsk
@pytest.mark.parametrize(("rel", "fmt"), REAL, ids=[r for r, _ in REAL])
def test_real_windows_volumes(tmp_path: Path, rel: str, fmt: str | None) -> None:
    src = CORPUS / rel
    if src.suffix == ".gz":
        plain = tmp_path / src.stem
        plain.write_bytes(gzip.decompress(src.read_bytes()))
        src = plain
    with imgscan.open(src) as img:
        table = read_partition_table(img.read, img.virtual_size, str(src))
        parts = [p for p in table.partitions if not p.is_extended]
        start, size = (parts[0].start, parts[0].size) if parts else (0, img.virtual_size)
        vol = NtfsVolume(img.read, start, size, f"{src.name} partition 1")
        raw = raw_copy(src, tmp_path / "disk.raw", fmt)
        sector = start // 512 if start else None
        facts = fsstat_facts(raw, sector)
        assert vol.serial == facts["Volume Serial Number"]
        assert (vol.label or "") == facts.get("Volume Name", "")
        assert vol.cluster_size == int(facts["Cluster Size"])
        assert compare_with_tsk(vol, raw, sector) >= 10


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse")
                    or shutil.which("ntfs-3g") is None or shutil.which("mkntfs") is None,
                    reason="regenerating fixtures needs root, /dev/fuse, mkntfs and ntfs-3g")
@pytest.mark.skipif(not os.environ.get("IMGSCAN_SLOW_TESTS"),
                    reason="set IMGSCAN_SLOW_TESTS=1 to rerun make_ntfs.sh (about 2 minutes)")
def test_script_regenerates_equivalent_fixtures(tmp_path: Path) -> None:
    subprocess.run(["sh", SCRIPT, tmp_path], check=True, capture_output=True)
    for name in NAMES:
        fresh = tmp_path / f"{name}.img"
        fresh.write_bytes(lzma.decompress((tmp_path / f"{name}.img.xz").read_bytes()))
        committed = lzma.decompress((FIXTURES / f"{name}.img.xz").read_bytes())
        old = NtfsVolume(bytes_reader(committed), 0, len(committed), "committed")
        new = volume(fresh)
        assert dict(walk(old)) == dict(walk(new))
        for path, is_dir in walk(new):
            if not is_dir and not path.startswith("$") and "random" not in path:
                assert new.open(path).read() == old.open(path).read(), path


def test_open_returns_ntfs_files(images: dict[str, Path]) -> None:
    f = volume(images["c64k"]).open(r"\Windows\System32\config\SYSTEM")
    assert isinstance(f, NtfsFile) and f.path.endswith("SYSTEM") and f.stream == ""

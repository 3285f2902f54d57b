"""FAT12/16/32 through the filesystem interface (imgscan/_core/fat_fs.py) against mtools.

Volumes are made by ``mkfs.vfat -F 12/16/32`` and filled by ``mcopy -s`` from a
tree holding long names (spaces, mixed case, non-ASCII), nested directories, a
directory of hundreds of entries, an empty file and a file of hundreds of
clusters. Oracles: ``mdir -/ -b -a`` (every path, directories marked by a
trailing ``/``), ``mtype`` (a file's bytes), ``mshowfat`` (a file's clusters,
to patch a chain into a loop) and ``blkid -p`` (label, serial, FAT type).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from helpers import promptly, sparse_copy
from oracles import needs_qemu, run

from imgscan._core.fat import FAT_ANNOUNCE_BYTES, FatVolume
from imgscan._core.fat_fs import FatFileSystem
from imgscan._core.fsapi import FileNotFound
from imgscan._core.fsopen import open_filesystem
from imgscan.errors import CorruptImage

MTOOLS = ("mkfs.vfat", "mcopy", "mdir", "mtype", "mshowfat", "blkid")
needs_mtools = pytest.mark.skipif(not all(shutil.which(t) for t in MTOOLS),
                                  reason="dosfstools / mtools / blkid not installed "
                                         "(apt-get install dosfstools mtools)")
pytestmark = needs_mtools

#: FAT width -> (volume MiB, mkfs.vfat options): small clusters, so files span many.
VOLUMES = {12: (2, ("-s", "1")), 16: (20, ("-s", "1")), 32: (40, ("-s", "1"))}
#: Entries of the large directory (each long-named, so two or three slots apiece).
MANY = 300
BIG = "Sub/Deeper/big file.bin"
BIG_BYTES = 300_000


def _tree(root: Path) -> None:
    (root / "Sub" / "Deeper").mkdir(parents=True)
    (root / "many").mkdir()
    (root / "hello.txt").write_bytes(b"hello\n")
    (root / "empty").write_bytes(b"")
    (root / "MiXeD CaSe.TxT").write_bytes(b"mixed\n")
    (root / "Sub" / "A long name with spaces.txt").write_bytes(b"spaces\n")
    (root / "Sub" / "na\u00efve r\u00e9sum\u00e9.txt").write_bytes(b"unicode\n")
    (root / BIG).write_bytes(hashlib.shake_256(b"big").digest(BIG_BYTES))
    for i in range(MANY):
        (root / "many" / f"entry number {i:03d}.dat").write_bytes(b"%d\n" % i)


@pytest.fixture(scope="session")
def fat_images(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """{FAT width: volume image}, all filled from the same tree."""
    work = tmp_path_factory.mktemp("fat_fs")
    src = work / "src"
    src.mkdir()
    _tree(src)
    images = {}
    for bits, (mib, opts) in VOLUMES.items():
        img = work / f"fat{bits}.img"
        with img.open("wb") as f:
            f.truncate(mib << 20)
        run("mkfs.vfat", "-F", str(bits), "-n", f"LBL{bits}", *opts, img)
        run("mcopy", "-s", "-i", img, *sorted(src.iterdir()), "::/")
        images[bits] = img
    return images


def filesystem(path: Path) -> FatFileSystem:
    data = path.read_bytes()
    return FatFileSystem(lambda offset, length: data[offset:offset + length], 0, len(data),
                         path.name)


def mdir_tree(img: Path) -> tuple[dict[str, set[str]], set[str]]:
    """({directory: names}, {regular file paths}) as mdir lists them."""
    out = subprocess.run(["mdir", "-/", "-b", "-a", "-i", str(img), "::/"],
                         capture_output=True, check=True).stdout.decode()
    dirs: dict[str, set[str]] = defaultdict(set)
    files: set[str] = set()
    dirs["/"] = set()
    for line in out.splitlines():
        path = line.removeprefix("::")
        is_dir = path.endswith("/")
        path = path.rstrip("/")
        parent, _, name = path.rpartition("/")
        dirs[parent or "/"].add(name)
        if is_dir:
            dirs[path] = dirs[path]
        else:
            files.add(path)
    return dirs, files


def mtype(img: Path, path: str) -> bytes:
    return subprocess.run(["mtype", "-i", str(img), f"::{path}"], capture_output=True,
                          check=True).stdout


@pytest.mark.parametrize("bits", sorted(VOLUMES))
def test_listings_equal_mdir(fat_images: dict[int, Path], bits: int) -> None:
    img = fat_images[bits]
    fs = filesystem(img)
    dirs, files = mdir_tree(img)
    assert len(dirs["/many"]) == MANY
    for directory, names in dirs.items():
        entries = fs.listdir(directory)
        assert {e.name for e in entries} == names, directory
        for e in entries:
            path = f"{directory.rstrip('/')}/{e.name}"
            assert e.kind == ("file" if path in files else "dir"), path
            assert fs.entry_stat(e).kind == e.kind


@pytest.mark.parametrize("bits", sorted(VOLUMES))
def test_file_bytes_equal_mtype(fat_images: dict[int, Path], bits: int) -> None:
    img = fat_images[bits]
    fs = filesystem(img)
    _, files = mdir_tree(img)
    sample = sorted(f for f in files if not f.startswith("/many/")) \
        + sorted(f for f in files if f.startswith("/many/"))[::37]
    for path in sample:
        want = mtype(img, path)
        assert fs.read_file(path) == want, path
        assert fs.stat(path).size == len(want), path
    big = mtype(img, "/" + BIG)
    assert len(big) == BIG_BYTES
    assert fs.read_file("/" + BIG, 123_457, 70_001) == big[123_457:123_457 + 70_001]
    assert fs.read_file("/" + BIG, BIG_BYTES - 5) == big[-5:]
    assert fs.read_file("/empty") == b""


@pytest.mark.parametrize("bits", sorted(VOLUMES))
def test_case_insensitive_lookup_and_separators(fat_images: dict[int, Path], bits: int) -> None:
    img = fat_images[bits]
    fs = filesystem(img)
    want = mtype(img, "/Sub/A long name with spaces.txt")
    assert fs.read_file("\\SUB\\a LONG name WITH spaces.TXT") == want
    assert fs.read_file("/sub/../Sub/./a long name with spaces.txt") == want
    assert fs.read_file("/mixed case.txt") == mtype(img, "/MiXeD CaSe.TxT")
    assert fs.is_dir("/SUB/deeper")
    with pytest.raises(FileNotFound):
        fs.stat("/Sub/missing")
    with pytest.raises(FileNotFound):
        fs.listdir("/hello.txt")


@pytest.mark.parametrize("bits", sorted(VOLUMES))
def test_facts_equal_blkid(fat_images: dict[int, Path], bits: int) -> None:
    img = fat_images[bits]
    out = run("blkid", "-p", "-o", "export", img)
    blkid = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    data = img.read_bytes()
    fs = open_filesystem(lambda o, n: data[o:o + n], 0, len(data), img.name, blkid["TYPE"])
    assert isinstance(fs, FatFileSystem)
    facts = fs.facts()
    assert facts["filesystem"] == blkid["TYPE"] == "vfat"
    assert facts["label"] == blkid["LABEL"]
    assert facts["uuid"] == blkid["UUID"]
    assert facts["version"] == blkid["VERSION"] == f"FAT{bits}"


def test_chain_loop_is_corrupt_not_a_hang(fat_images: dict[int, Path], tmp_path: Path) -> None:
    """The FAT entry of the big file's tenth cluster, patched to point back at its first."""
    img = tmp_path / "loop.img"
    sparse_copy(fat_images[16], img)
    chain = run("mshowfat", "-i", img, "::/" + BIG)
    m = re.search(r"<(\d+)-(\d+)>\s*$", chain)
    assert m, chain
    first, last = int(m.group(1)), int(m.group(2))
    assert last > first + 10
    data = bytearray(img.read_bytes())
    sector, reserved = struct.unpack_from("<HxH", data, 11)
    struct.pack_into("<H", data, sector * reserved + 2 * (first + 9), first)
    img.write_bytes(data)
    fs = filesystem(img)
    with promptly(5), pytest.raises(CorruptImage, match="loop"):
        fs.read_file("/" + BIG)


@needs_qemu
@pytest.mark.skipif(shutil.which("sgdisk") is None, reason="sgdisk (gdisk) not installed")
def test_ls_of_an_esp_in_gpt_through_qcow2(tmp_path: Path) -> None:
    """``imgscan ls DISK.qcow2:1 /EFI`` equals mdir of the same partition in the raw disk."""
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as f:
        f.truncate(64 << 20)
    run("sgdisk", "-n", "1:2048:+40M", "-t", "1:ef00", raw)
    start = int(json.loads(run("sfdisk", "--json", raw))["partitiontable"]["partitions"][0]
                ["start"])
    part = f"{raw}@@{start * 512}"
    run("mkfs.vfat", "-F", "32", "--offset", str(start), raw, str(40 * 1024))
    boot = tmp_path / "BOOT"
    boot.mkdir()
    (boot / "BOOTX64.EFI").write_bytes(b"MZ" + bytes(5000))
    (boot / "grub.cfg").write_bytes(b"set timeout=5\n")
    run("mmd", "-i", part, "::/EFI")
    run("mcopy", "-s", "-i", part, boot, "::/EFI/")
    qcow2 = tmp_path / "disk.qcow2"
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2)
    want = {line.removeprefix("::/EFI/").rstrip("/") for line in
            run("mdir", "-b", "-i", part, "::/EFI").splitlines() if line.strip()}
    assert want == {"BOOT"}
    proc = subprocess.run([sys.executable, "-m", "imgscan", "ls", f"{qcow2}:1", "/EFI"],
                          capture_output=True, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.decode().splitlines()) == want
    proc = subprocess.run([sys.executable, "-m", "imgscan", "cat", f"{qcow2}:1",
                           "/efi/boot/GRUB.CFG"], capture_output=True, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == run("mtype", "-i", part, "::/EFI/BOOT/grub.cfg").encode()


@pytest.mark.parametrize("bits", sorted(VOLUMES))
def test_lookup_announcement_names_what_a_lookup_reads(fat_images: dict[int, Path],
                                                       bits: int) -> None:
    """What the Windows inspection announces of a FAT boot partition: the FAT exactly as
    the first lookup reads it (whole, below the announcement's cap), and the root
    directory's start, where that lookup reads the directory."""
    data = fat_images[bits].read_bytes()
    reads: list[tuple[int, int]] = []

    def read(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return data[offset:offset + length]

    vol = FatVolume(read, 0, len(data), "volume")
    (fat,), (root,) = vol.lookup_announcement()
    reads.clear()
    assert vol.read_file("/Sub/A long name with spaces.txt") == b"spaces\n"
    assert fat[1] <= FAT_ANNOUNCE_BYTES and fat in reads
    assert any(offset == root[0] for offset, _ in reads)


class _CountedDirectories:
    """Counts the directories ``fs``'s volume decodes."""

    def __init__(self, fs: FatFileSystem) -> None:
        self.decoded = 0
        decode = fs.volume.directory

        def counted(cluster: int | None) -> list:  # type: ignore[type-arg]
            self.decoded += 1
            return decode(cluster)

        fs.volume.directory = counted  # type: ignore[method-assign]


@pytest.mark.parametrize("bits", sorted(VOLUMES))
def test_files_of_a_large_directory_decode_it_once(fat_images: dict[int, Path],
                                                   bits: int) -> None:
    """Reading every file of a directory of hundreds of entries decodes the root and that
    directory once each: a path lookup probes the cached listing's names (a fuzzed volume
    whose large directory was decoded again for every file's path took seconds)."""
    fs = filesystem(fat_images[bits])
    counted = _CountedDirectories(fs)
    for i in range(MANY):
        assert fs.read_file(f"/MANY/ENTRY NUMBER {i:03d}.DAT") == b"%d\n" % i
    assert counted.decoded == 2


def test_entry_cache_boundary(fat_images: dict[int, Path],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``limits.FAT_ENTRY_CACHE``: a directory of exactly that many entries stays decoded
    (the root's listing giving way to it); one entry fewer and it is decoded again."""
    from imgscan import limits
    for cap, decodes in ((MANY, 0), (MANY - 1, 1)):
        monkeypatch.setattr(limits, "FAT_ENTRY_CACHE", cap)
        fs = filesystem(fat_images[16])
        many = fs.resolve("/many")
        counted = _CountedDirectories(fs)
        assert len(fs.listdir("/many")) == MANY
        assert counted.decoded == 1
        found = fs._lookup(many, "ENTRY NUMBER 123.DAT")
        assert found is not None and fs._stat(found).size == 4
        assert counted.decoded == 1 + decodes, cap
        assert len(fs._known) <= cap and sum(len(e) for e, _ in fs._listings.values()) <= cap
        assert many in fs._listings if decodes == 0 else many not in fs._listings


def test_fat_time_agrees_with_datetime_on_every_date() -> None:
    """Every 16-bit FAT date (a time of day valid and invalid beside it): the seconds
    since the epoch datetime gives, or None where datetime refuses the date (day 0, 30
    February, 29 February of 2100, month 13) or the time is past 23:59:58."""
    from datetime import UTC, datetime

    from imgscan._core.c_fat import FAT_EPOCH_YEAR
    from imgscan._core.fat import fat_time
    for date in range(1 << 16):
        day, month, year = date & 0x1F, (date >> 5) & 0xF, FAT_EPOCH_YEAR + (date >> 9)
        for hour, minute, two_seconds in ((0, 0, 0), (23, 59, 29), (24, 0, 0), (12, 60, 0)):
            time = hour << 11 | minute << 5 | two_seconds
            try:
                expected: int | None = int(datetime(year, month, day, hour, minute,
                                                    two_seconds * 2, tzinfo=UTC).timestamp())
            except ValueError:
                expected = None
            assert fat_time(date, time) == expected, (date, time)

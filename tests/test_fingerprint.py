"""Content fingerprints: one disk, every container, one fingerprint.

The disk (an MBR with two partitions, data written by qemu-io at scattered
offsets, holes between, a size that is not a whole number of MiB) is made as
raw and converted by ``qemu-img convert`` to each container of ``FORMATS``. The
oracles are qemu's own reading of each image (``qemu-img convert -O raw``)
hashed by ``xxhsum``: ``-H3`` of the whole raw disk for ``xxh3-64-stream``,
``-H2`` of each 1 MiB piece (``split -b 1M``) for the chunk digests, and the
documented definition applied to those digests for the fingerprint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import xxhash
from helpers import MiB, copy_of, overwrite, qemu_create, sparse_file
from oracles import needs_qemu, qemu_io, qemu_map, run

import imgscan
from imgscan import limits
from imgscan._core.digest import chunks_to_read
from imgscan._core.extents import ExtentMap
from imgscan.cli import main
from imgscan.fingerprints import ALGORITHMS, CHUNK_SIZE, fingerprint

pytestmark = [
    needs_qemu,
    pytest.mark.skipif(shutil.which("xxhsum") is None, reason="xxhsum not installed"),
    pytest.mark.skipif(shutil.which("sfdisk") is None, reason="sfdisk not installed"),
]

#: 20 MiB and 7 sectors: the last chunk is short.
SIZE = 20 * MiB + 7 * 512
#: qemu-io writes on the raw disk: inside one chunk, across two chunks (3-5 MiB),
#: across a chunk boundary (6 MiB), in the short last chunk, and a chunk written
#: then zeroed.
WRITES = ("write -P 0x11 1M 64k", "write -P 0x22 3M 2M", f"write -P 0x33 {6 * MiB - 4096} 8k",
          f"write -P 0x44 {SIZE - 8192} 8k", "write -P 0x55 12M 1M", "write -z 12M 1M")
#: Name -> qemu-img convert arguments making that container from the raw disk.
FORMATS = {
    "raw": ("-O", "raw"),
    "qcow2": ("-O", "qcow2"),
    "qcow2-compressed": ("-O", "qcow2", "-c"),
    # force_size: the footer's current size is the disk size, not the CHS geometry's.
    "vhd-fixed": ("-O", "vpc", "-o", "subformat=fixed,force_size=on"),
    "vhd-dynamic": ("-O", "vpc", "-o", "subformat=dynamic,force_size=on"),
    "vhdx": ("-O", "vhdx"),
    "vmdk-sparse": ("-O", "vmdk", "-o", "subformat=monolithicSparse"),
    "vmdk-stream": ("-O", "vmdk", "-o", "subformat=streamOptimized"),
    "vdi": ("-O", "vdi"),
    "qed": ("-O", "qed"),
    "qcow": ("-O", "qcow"),
}
#: The qemu block driver of each container, for reading it back.
DRIVERS = {"raw": "raw", "qcow2": "qcow2", "qcow2-compressed": "qcow2", "vhd-fixed": "vpc",
           "vhd-dynamic": "vpc", "vhdx": "vhdx", "vmdk-sparse": "vmdk", "vmdk-stream": "vmdk",
           "vdi": "vdi", "qed": "qed", "qcow": "qcow"}


def qemu_raw(image: Path, driver: str, out: Path) -> Path:
    """The disk's ``SIZE`` guest bytes as qemu reads them, written raw to ``out``.

    Through qemu's raw driver with an explicit size: qemu 7.2 sizes a fixed VHD
    by its file, a footer sector beyond the disk the footer states.
    """
    node: dict[str, object] = {"driver": driver,
                               "file": {"driver": "file", "filename": os.fspath(image)}}
    spec = {"driver": "raw", "size": SIZE, "file": node}
    run("qemu-img", "convert", "-O", "raw", "json:" + json.dumps(spec), out)
    return out


def xxhsum(*args: str | Path) -> list[str]:
    """The digests ``xxhsum`` prints, one per file, in order (GNU or BSD style lines)."""
    out = run("xxhsum", *args)
    return [m.group(1) or m.group(2) for m in
            re.finditer(r"^(?:([0-9a-f]+)  .*|XXH\w* \(.*\) = ([0-9a-f]+))$", out, re.M)]


def oracle_chunks(raw: Path, scratch: Path) -> list[str]:
    """``xxhsum -H2`` of each 1 MiB piece of ``raw``, cut by ``split -b 1M``."""
    pieces = scratch / (raw.name + ".pieces")
    pieces.mkdir()
    run("split", "-b", "1M", "-a", "4", "-d", raw, pieces / "p")
    digests = xxhsum("-H2", *sorted(pieces.iterdir()))
    shutil.rmtree(pieces)
    return digests


def fingerprint_of(size: int, chunk_digests: list[str]) -> str:
    """The README's definition applied to chunk digests in hex."""
    return xxhash.xxh3_128(size.to_bytes(8, "little")
                           + b"".join(bytes.fromhex(d) for d in chunk_digests)).hexdigest()


@pytest.fixture(scope="session")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw disk: sparse, an MBR with a bootable Linux and an NTFS partition."""
    path = tmp_path_factory.mktemp("fingerprint") / "disk.raw"
    with open(path, "wb") as f:
        f.truncate(SIZE)
    layout = "label: dos\nstart=2048, size=20480, type=83, bootable\nstart=22528, type=7\n"
    run("sh", "-c", f"printf '{layout}' | sfdisk -q '{path}'")
    qemu_io(path, *WRITES, fmt="raw")
    return path


@pytest.fixture(scope="session")
def images(disk: Path) -> dict[str, Path]:
    made = {"raw": disk}
    for name, args in FORMATS.items():
        if name != "raw":
            made[name] = disk.with_name(f"disk-{name}.img")
            run("qemu-img", "convert", "-f", "raw", *args, disk, made[name])
    return made


@pytest.fixture(scope="session")
def expected(disk: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    """The oracle chunk digests and fingerprint of the disk, from qemu's raw copy."""
    scratch = tmp_path_factory.mktemp("oracle")
    raw = qemu_raw(disk, "raw", scratch / "disk.raw")
    chunks = oracle_chunks(raw, scratch)
    assert len(chunks) == -(-SIZE // MiB)
    return chunks, fingerprint_of(SIZE, chunks)


@pytest.mark.parametrize("name", FORMATS)
def test_one_fingerprint_for_every_container(name: str, images: dict[str, Path],
                                             expected: tuple[list[str], str]) -> None:
    chunks, digest = expected
    fp = fingerprint(images[name])
    assert (fp.algorithm, fp.virtual_size, fp.chunk_size) == (ALGORITHMS[0], SIZE, CHUNK_SIZE)
    assert [fp.chunks[i:i + 16].hex() for i in range(0, len(fp.chunks), 16)] == chunks
    assert fp.digest == digest


@pytest.mark.parametrize("name", FORMATS)
def test_stream_is_xxhsum_of_qemus_raw(name: str, images: dict[str, Path],
                                       tmp_path: Path) -> None:
    raw = qemu_raw(images[name], DRIVERS[name], tmp_path / "out.raw")
    [oracle] = xxhsum("-H3", raw)
    fp = fingerprint(images[name], "xxh3-64-stream", threads=3)
    assert (fp.digest, fp.virtual_size, fp.chunk_size, fp.chunks) == (oracle, SIZE, 0, b"")


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_threads_do_not_change_the_result(threads: int, images: dict[str, Path],
                                          expected: tuple[list[str], str]) -> None:
    with imgscan.open(images["qcow2-compressed"]) as img:
        assert fingerprint(img, threads=threads).digest == expected[1]


def test_zero_cluster_reads_as_zeros_unread(images: dict[str, Path], tmp_path: Path) -> None:
    """``write -z`` over data makes a qcow2 zero cluster: its chunk is the digest of
    zeros (as qemu reads it) and is never read."""
    path = copy_of(images["qcow2"], tmp_path, "zeroed.qcow2")
    qemu_io(path, "write -z 3M 1M")
    assert any(e["start"] <= 3 * MiB and e["start"] + e["length"] >= 4 * MiB and e["zero"]
               and not e["data"] for e in qemu_map(path))
    chunks = oracle_chunks(qemu_raw(path, "qcow2", tmp_path / "zeroed.raw"), tmp_path)
    [zeros] = xxhsum("-H2", sparse_file(tmp_path / "zeros", MiB))
    assert chunks[3] == zeros
    fp = fingerprint(path, threads=2)
    assert fp.chunks[3 * 16:4 * 16].hex() == zeros
    assert fp.digest == fingerprint_of(SIZE, chunks)
    with imgscan.open(path) as img:
        todo = list(chunks_to_read(img.extents(), CHUNK_SIZE))
    assert 3 not in todo and 4 in todo


@pytest.mark.parametrize("name", ["raw", "qcow2", "vmdk-sparse"])
def test_only_chunks_with_data_are_read(name: str, images: dict[str, Path]) -> None:
    """The chunks read are those qemu's map shows data in (the MBR, the writes;
    not the holes)."""
    data = {c for e in qemu_map(images[name], DRIVERS[name]) if e["data"]
            for c in range(e["start"] // MiB, (e["start"] + e["length"] - 1) // MiB + 1)}
    assert {0, 1, 3, 4, 5, 6, 20} <= data
    with imgscan.open(images[name]) as img:
        assert list(chunks_to_read(img.extents(), CHUNK_SIZE)) == sorted(data)


def test_chunks_to_read_on_a_hand_made_map() -> None:
    """A gap in a (damaged) map is read, so the reader reports it rather than the
    fingerprint taking it for zeros; unallocated bytes are read only below the
    end of the backing disk."""
    emap = ExtentMap(10 * MiB)
    emap._append(0, MiB + 5, "data", host=0)
    emap._append(MiB + 5, 3 * MiB, "zero")
    emap._append(6 * MiB, 4 * MiB, "unallocated")      # [4 MiB + 5, 6 MiB) is missing
    assert list(chunks_to_read(emap, MiB)) == [0, 1, 4, 5]
    assert list(chunks_to_read(emap, MiB, 7 * MiB + 1)) == [0, 1, 4, 5, 6, 7]


def test_backing_file_only_inside_external_dir(images: dict[str, Path], tmp_path: Path) -> None:
    copy_of(images["qcow2"], tmp_path, "base.qcow2")
    top = qemu_create(tmp_path / "top.qcow2", None, "-b", "base.qcow2", "-F", "qcow2",
                      fmt="qcow2")
    qemu_io(top, "write -P 0x66 2M 1M", "write -P 0x77 4M 64k")
    with_parent = oracle_chunks(qemu_raw(top, "qcow2", tmp_path / "top.raw"), tmp_path)
    assert fingerprint(top, external_dir=str(tmp_path)).digest == \
        fingerprint_of(SIZE, with_parent)
    # Without it the parent is never opened, and the guest disk is not known: the
    # overlay alone must not fingerprint as if its unallocated clusters were zeros.
    for algorithm in ALGORITHMS:
        with pytest.raises(imgscan.UnsafePath, match=r"backing file.*external_dir"):
            fingerprint(top, algorithm)


def test_extent_files_only_inside_external_dir(disk: Path, expected: tuple[list[str], str],
                                               tmp_path: Path) -> None:
    """A monolithicFlat VMDK keeps its data in a second file."""
    descriptor = tmp_path / "flat.vmdk"
    run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat",
        disk, descriptor)
    assert fingerprint(descriptor, external_dir=str(tmp_path)).digest == expected[1]
    with pytest.raises(imgscan.UnsafePath, match="external_dir"):
        fingerprint(descriptor)


def test_cli_prints_digest_and_path(images: dict[str, Path], expected: tuple[list[str], str],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    paths = [str(images["vhdx"]), str(images["vmdk-stream"])]
    assert main(["fingerprint", *paths]) == 0
    assert capsys.readouterr().out == "".join(f"{expected[1]}  {p}\n" for p in paths)
    [oracle] = xxhsum("-H3", qemu_raw(images["raw"], "raw", images["raw"].with_suffix(".o")))
    images["raw"].with_suffix(".o").unlink()
    assert main(["fingerprint", "--json", "--algorithm", "xxh3-64-stream", "--threads", "1",
                 paths[0]]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "path": paths[0], "algorithm": "xxh3-64-stream", "digest": oracle,
        "virtual_size": SIZE, "chunk_size": 0}


def test_cli_unreadable_image_exit_2_and_goes_on(images: dict[str, Path], tmp_path: Path,
                                                 expected: tuple[list[str], str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A qcow2 cut short inside its L2 table: the message names the file, the
    structure and the offset; the next image is still fingerprinted."""
    cut = copy_of(images["qcow2"], tmp_path, "cut.qcow2")
    os.truncate(cut, 200_000)
    good = str(images["qed"])
    assert main(["fingerprint", str(cut), good]) == 2
    out, err = capsys.readouterr()
    assert out == f"{expected[1]}  {good}\n"
    assert err == f"imgscan: {cut}: L2 table (L1 index 0) at offset 262144: needs 65536 " \
        "bytes but the file ends at 200000\n"
    assert main(["fingerprint", "--json", str(cut)]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["type"] == "TruncatedImage"
    assert main(["fingerprint", "--threads", "0", good]) == 2


def test_damaged_cluster_stops_every_thread(images: dict[str, Path], tmp_path: Path) -> None:
    """A compressed cluster overwritten with garbage (qemu fails reading it too): the
    thread reading it raises, the others stop, the error names the cluster."""
    path = copy_of(images["qcow2-compressed"], tmp_path, "damaged.qcow2")
    with imgscan.open(path) as img:
        victim = [e for e in img.extents() if e.kind == "compressed"][5]
    assert victim.host is not None
    overwrite(path, victim.host, b"\xff" * victim.stored_length)
    with pytest.raises(AssertionError, match="error while reading"):
        qemu_raw(path, "qcow2", tmp_path / "damaged.raw")
    with pytest.raises(imgscan.CorruptImage, match=f"compressed cluster at offset {victim.host}"):
        fingerprint(path, threads=2)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown algorithm"):
        fingerprint("x", "md5")
    with pytest.raises(ValueError, match="threads"):
        fingerprint("x", threads=0)


def test_chunk_count_is_capped(images: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk of more chunks than limits.MAX_FINGERPRINT_CHUNKS is refused before any read."""
    monkeypatch.setattr(limits, "MAX_FINGERPRINT_CHUNKS", SIZE // MiB)
    with pytest.raises(imgscan.LimitExceeded, match="MAX_FINGERPRINT_CHUNKS"):
        fingerprint(images["qcow2"], "xxh3-64-stream")


def test_public_names(images: dict[str, Path]) -> None:
    """``imgscan.fingerprint`` (imported on first call) is the module's function, and
    the result type is the one the bulk scan stores."""
    from imgscan.bulk.result import Fingerprint as Stored
    from imgscan.fingerprints import Fingerprint

    assert imgscan.fingerprint(images["qcow2"]) == fingerprint(images["qcow2"])
    assert Fingerprint is Stored

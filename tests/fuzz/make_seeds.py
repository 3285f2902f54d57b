"""Build the fuzz seed corpora with real tools: ``python tests/fuzz/make_seeds.py OUTDIR``.

One directory per harness (``OUTDIR/qcow2``, ..., ``OUTDIR/windows``), each holding
small valid inputs: images made by qemu-img / qemu-io / sfdisk / sgdisk / genisoimage /
xorriso / cryptsetup, the NTFS and Windows fixture disks of the tests, the shared
corpus' hives, and the shared corpus' real images sorted by what imgscan detects
them as. A seed whose tool is missing is left out (the run says so), never faked.

Seeds are kept small, since libFuzzer spends its mutations over the whole input:
an image over 64 KiB becomes a sparse input (``harnesses.encode_sparse``: its
non-zero sectors only), NTFS volumes lose their ``$LogFile`` (all 0xFF, never read)
and, for the NTFS harness, all but the first cluster of each file's data.
"""

from __future__ import annotations

import functools
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from harnesses import (  # noqa: E402
    CONTAINER_FORMATS,
    HARNESSES,
    SCRATCH_NAME,
    encode_hive_logs,
    encode_sparse,
)
from helpers import decompress, unpacked_name  # noqa: E402
from helpers.ova_packages import build_ova, signer, unknown_key_algorithm  # noqa: E402
from oracles import CORPUS, SHARED  # noqa: E402

import imgscan  # noqa: E402

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

#: Images over this size become sparse inputs; corpus files whose sparse form is
#: still over CORPUS_MAX are left out.
SPARSE_ABOVE = 64 << 10
CORPUS_MAX = 512 << 10
#: Truncated copies of the big real hives (their first bins still parse).
HIVE_HEAD = 256 << 10
#: A backing file or extent of this name is the input itself.
SELF = SCRATCH_NAME
FIXTURES = HERE.parent / "fixtures"


class Builder:
    """Runs the tools in a scratch directory and writes seeds for one harness."""

    def __init__(self, out: Path, harness: str, work: Path) -> None:
        self.dir = out / harness
        self.dir.mkdir(parents=True, exist_ok=True)
        self.work = work

    def seed(self, name: str, data: bytes) -> None:
        if len(data) > SPARSE_ABOVE:
            data = encode_sparse(data)
        (self.dir / name).write_bytes(data)

    def tool(self, *args: str) -> bool:
        """Run a tool in the work dir; False (and a note) when it is absent or fails."""
        if shutil.which(args[0]) is None:
            print(f"make_seeds: {args[0]} not installed, seeds left out", file=sys.stderr)
            return False
        done = subprocess.run(args, cwd=self.work, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"make_seeds: {' '.join(args)}: {done.stderr.strip()}", file=sys.stderr)
        return done.returncode == 0

    def image(self, name: str, fmt: str, size: str, *opts: str, writes: tuple[str, ...] = (),
              keep: bool = True) -> Path | None:
        """``qemu-img create`` plus ``qemu-io`` commands; the file is a seed when ``keep``.

        A last command ``abort`` kills qemu-io mid-session (a dirty image), so its
        exit status is not checked."""
        path = self.work / name
        path.unlink(missing_ok=True)
        if not self.tool("qemu-img", "create", "-q", "-f", fmt, *opts, name, size):
            return None
        cmds = [arg for w in writes for arg in ("-c", w)]
        if cmds and not self.tool("qemu-io", "-f", fmt, *cmds, name) and writes[-1] != "abort":
            return None
        if keep:
            self.seed(name, path.read_bytes())
        return path

    def convert(self, name: str, fmt: str, src: Path, *opts: str) -> None:
        if self.tool("qemu-img", "convert", "-f", "raw", "-O", fmt, *opts, str(src), name):
            self.seed(name, (self.work / name).read_bytes())


WRITES = ("write -P 0xaa 0 8k", "write -P 0x55 96k 4k", "write -z 192k 4k")


def pattern_disk(work: Path) -> Path:
    """A 256 KiB raw disk: an MBR made by sfdisk and patterned data, to convert."""
    path = work / "pattern.raw"
    path.write_bytes(bytes(range(256)) * 1024)
    subprocess.run(["sfdisk", "-q", str(path)], input="2048,,L\n", text=True,
                   capture_output=True)
    return path


def qcow2(b: Builder) -> None:
    small = ("-o", "cluster_size=4096")
    b.image("v3.qcow2", "qcow2", "1M", *small, writes=WRITES)
    b.image("v2.qcow2", "qcow2", "1M", "-o", "compat=0.10,cluster_size=4096", writes=WRITES)
    b.image("l2ext.qcow2", "qcow2", "1M", "-o", "cluster_size=16k,extended_l2=on",
            writes=("write -P 1 0 2k", "write -z 32k 1k"))
    b.image("backing.qcow2", "qcow2", "1M", *small, "-u", "-b", SELF, "-F", "qcow2")
    b.image("datafile.qcow2", "qcow2", "1M", "-o", "cluster_size=4096,data_file=data.raw")
    b.image("dirty.qcow2", "qcow2", "1M", "-o", "cluster_size=4096,lazy_refcounts=on",
            writes=("write -P 3 0 4k", "abort"))
    src = pattern_disk(b.work)
    b.convert("zlib.qcow2", "qcow2", src, "-c", "-o", "cluster_size=4096")
    b.convert("zstd.qcow2", "qcow2", src, "-c", "-o", "cluster_size=4096,compression_type=zstd")
    snap = b.image("snap.qcow2", "qcow2", "1M", *small, writes=WRITES, keep=False)
    if snap is not None and b.tool("qemu-img", "snapshot", "-c", "s1", snap.name):
        b.seed(snap.name, snap.read_bytes())


def qcow(b: Builder) -> None:
    b.image("a.qcow", "qcow", "1M", writes=WRITES)
    b.image("backing.qcow", "qcow", "1M", "-u", "-b", SELF, "-F", "qcow")
    b.convert("c.qcow", "qcow", pattern_disk(b.work))


def vhd(b: Builder) -> None:
    b.image("dynamic.vhd", "vpc", "2M", writes=WRITES)
    b.image("fixed.vhd", "vpc", "256K", "-o", "subformat=fixed", writes=("write -P 9 0 4k",))
    b.image("forced.vhd", "vpc", "1M", "-o", "force_size=on", writes=WRITES)


def vhdx(b: Builder) -> None:
    b.image("dynamic.vhdx", "vhdx", "4M", "-o", "block_size=1M,log_size=1M", writes=WRITES)
    b.image("fixed.vhdx", "vhdx", "1M", "-o", "subformat=fixed,block_size=1M,log_size=1M")
    b.image("s4k.vhdx", "vhdx", "4M", "-o", "block_size=1M,log_size=1M,block_state_zero=off")


def vmdk(b: Builder) -> None:
    b.image("sparse.vmdk", "vmdk", "1M", writes=WRITES)
    b.image("v3.vmdk", "vmdk", "1M", "-o", "zeroed_grain=on", writes=WRITES)
    b.convert("stream.vmdk", "vmdk", pattern_disk(b.work), "-o", "subformat=streamOptimized")
    for sub in ("monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"):
        desc = b.image(f"{sub}.vmdk", "vmdk", "64K", "-o", f"subformat={sub}", keep=False)
        if desc is not None:
            text = desc.read_bytes()
            b.seed(f"{sub}.vmdk", text)
            # The same descriptor naming the input itself as its extent.
            names = [line.split('"')[1] for line in text.decode().splitlines()
                     if line.startswith(("RW ", "RDONLY "))]
            for name in names:
                text = text.replace(f'"{name}"'.encode(), f'"{SELF}"'.encode())
            b.seed(f"{sub}-self.vmdk", text)


def vdi(b: Builder) -> None:
    b.image("dynamic.vdi", "vdi", "1M", writes=WRITES)
    b.image("static.vdi", "vdi", "256K", "-o", "static=on", writes=("write -P 2 0 4k",))


def qed(b: Builder) -> None:
    small = ("-o", "cluster_size=4096")
    b.image("a.qed", "qed", "1M", *small, writes=WRITES)
    b.image("backing.qed", "qed", "1M", *small, "-b", SELF, "-F", "qed", "-u")


def luks(b: Builder) -> None:
    secret = ("--object", "secret,id=s0,data=fuzz")
    # qemu times its PBKDF with getrusage, which fails now and then on a loaded machine.
    for _attempt in range(3):
        if b.image("qemu.luks", "luks", "64K", *secret, "-o", "key-secret=s0,iter-time=10"):
            break
    path = b.work / "luks2.img"
    with open(path, "wb") as f:
        f.truncate(16 << 20)
    if b.tool("sh", "-c", "printf fuzz | cryptsetup luksFormat -q --type luks2 "
              "--pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - luks2.img"):
        # The first 32 KiB: both LUKS2 JSON headers (keyslot areas cut off).
        b.seed("luks2-head.img", path.read_bytes()[:32 << 10])
        b.seed("luks2.img", path.read_bytes()[:(1 << 20) + 4096])


def iso(b: Builder) -> None:
    tree = b.work / "tree"
    (tree / "boot").mkdir(parents=True, exist_ok=True)
    (tree / "readme.txt").write_text("imgscan fuzz seed\n")
    (tree / "boot" / "boot.img").write_bytes(b"\xeb\x3c\x90" + bytes(2045))
    (tree / "efi.img").write_bytes(b"\xeb\x3c\x90EFI" + bytes(8 * 1024 - 6))
    bios = ["-b", "boot/boot.img", "-c", "boot/boot.cat", "-no-emul-boot"]
    for name, tool, opts in (
            ("plain.iso", "genisoimage", ["-V", "PLAIN"]),
            ("joliet.iso", "genisoimage", ["-J", "-R", "-V", "JOLIET", *bios]),
            ("both.iso", "xorriso", ["-V", "BOTH", *bios, "-eltorito-alt-boot",
                                     "-e", "efi.img", "-no-emul-boot"])):
        args = ["xorriso", "-as", "mkisofs"] if tool == "xorriso" else [tool]
        if b.tool(*args, "-quiet", "-o", name, *opts, str(tree)):
            b.seed(name, (b.work / name).read_bytes())


def zvhd(b: Builder) -> None:
    from _core.test_zvhd import _zvhd, _zvhd2  # the tests' writer of the documented layout
    guest = pattern_disk(b.work).read_bytes()
    b.seed("a.zvhd", _zvhd(guest))
    b.seed("zstd.zvhd2", _zvhd2(guest))
    b.seed("zlib.zvhd2", _zvhd2(guest, method=0))


def _sfdisk(b: Builder, name: str, size: int, script: str, *opts: str) -> Path | None:
    path = b.work / name
    with open(path, "wb") as f:
        f.truncate(size)
    if shutil.which("sfdisk") is None:
        return None
    done = subprocess.run(["sfdisk", "-q", *opts, str(path)], input=script, text=True,
                          capture_output=True)
    return path if done.returncode == 0 else None


MBR_SCRIPT = "label: dos\n2048,1024,7,*\n,2048,5\n,512,83\n,512,82\n,,b\n"
GPT_SCRIPT = ("label: gpt\nsize=256, type=U\nsize=256, type=21686148-6449-6E6F-744E-656564454649\n"
              "size=512, type=L, name=root\ntype=EBD0A0A2-B9E5-4433-87C0-68B6B9E5C6EA\n")


def raw(b: Builder) -> None:
    for name, script in (("mbr.raw", MBR_SCRIPT), ("gpt.raw", GPT_SCRIPT)):
        path = _sfdisk(b, name, 4 << 20, script)
        if path is not None:
            b.seed(name, path.read_bytes())
    # A qcow2 header cut to 72 bytes: must be called truncated, never raw.
    img = b.image("short.qcow2", "qcow2", "1M", keep=False)
    if img is not None:
        b.seed("short-qcow2.raw", img.read_bytes()[:72])


def partitions(b: Builder) -> None:
    for name, script in (("mbr.img", MBR_SCRIPT), ("gpt.img", GPT_SCRIPT)):
        path = _sfdisk(b, name, 4 << 20, script)
        if path is not None:
            b.seed(name, path.read_bytes())
    path = _sfdisk(b, "hybrid.img", 4 << 20, GPT_SCRIPT)
    if path is not None and b.tool("sgdisk", "-h", "1:3:EE", path.name):
        b.seed("hybrid.img", path.read_bytes())


def _reader(data: bytearray) -> Callable[[int, int], bytes]:
    return lambda offset, length: bytes(data[offset:offset + length])


def _ntfs_trimmed(data: bytearray, start: int, size: int, keep_files: bool) -> None:
    """Zero ``$LogFile`` of the NTFS volume at ``start`` (and any all-0xFF page: an
    old log mkntfs left behind) and, unless ``keep_files``, all but the first cluster
    of every other file's data runs."""
    from imgscan._core.ntfs import NtfsVolume
    page = 4096
    for pos in range(start, start + size - page + 1, page):
        if data[pos] == 0xFF and data.count(0xFF, pos, pos + page) == page:
            data[pos:pos + page] = bytes(page)
    vol = NtfsVolume(_reader(data), start, size, "seed")
    cs = vol.cluster_size
    records = (vol.open_record(0).size // vol.record_size) if not keep_files else 3
    for number in [2, *range(24, records)] if not keep_files else [2]:
        try:
            runs = vol.open_record(number).runs()
        except imgscan.ImageError:
            continue
        first = number != 2
        for _vcn, lcn, count in runs:
            if lcn < 0:
                continue
            skip = 1 if first else 0
            first = False
            lo, hi = start + (lcn + skip) * cs, start + (lcn + count) * cs
            if hi > lo:
                data[lo:hi] = bytes(hi - lo)


@functools.cache
def _unpacked(name: str) -> bytes | None:
    path = FIXTURES / name
    return lzma.decompress(path.read_bytes()) if path.is_file() else None


def _fixture(name: str) -> bytearray | None:
    """A fresh copy of a decompressed fixture (the NTFS and Windows seeds share them)."""
    data = _unpacked(name)
    return None if data is None else bytearray(data)


def _windows_disks() -> Iterator[tuple[str, bytearray, list[dict[str, Any]]]]:
    """The Windows fixture disks and their NTFS partitions."""
    from imgscan.layout import describe
    for name in ("bios.img", "uefi.img", "nosysres.img", "bitlocker.img"):
        data = _fixture(f"windows/{name}.xz")
        if data is not None:
            layout = describe(_reader(data), len(data), name)
            yield name, data, [p for p in layout.partitions if p.get("filesystem") == "ntfs"]


def ntfs(b: Builder) -> None:
    # ntfs/win.img is left out: its MFT alone is over a MiB, libFuzzer's input cap.
    for name in ("c512.img", "s4k.img", "c64k.img"):
        data = _fixture(f"ntfs/{name}.xz")
        if data is not None:
            _ntfs_trimmed(data, 0, len(data), keep_files=False)
            b.seed(name, bytes(data))
    from helpers.ntfs_images import build_windows_ntfs, can_build
    if can_build() is None:     # CompactOS files, LZNT1, sparse files, junctions, links
        data = bytearray(build_windows_ntfs(b.work).read_bytes())
        _ntfs_trimmed(data, 0, len(data), keep_files=False)    # chunk tables kept
        b.seed("compactos.img", bytes(data))
    for name, data, volumes in _windows_disks():   # volumes holding \Windows
        for p in volumes:
            volume = data[p["start"]:p["start"] + p["size"]]
            _ntfs_trimmed(volume, 0, len(volume), keep_files=False)
            b.seed(f"{name}-{p['number']}", bytes(volume))


def _wof_seeds(b: Builder, fmts: tuple[str, ...]) -> None:
    """Chunks compressed by wimlib (wimcapture), each prefixed with its output size less
    one (u16 LE): the harnesses' input. The first chunks of every file of the CompactOS
    volume's contents (tests/helpers/ntfs_images.py)."""
    import struct

    from helpers.ntfs_images import WOF_CONTENT, WOF_FORMATS, wof_streams
    if shutil.which("wimcapture") is None:
        print("make_seeds: wimcapture (wimtools) absent, no WOF seeds", file=sys.stderr)
        return
    for fmt in fmts:
        chunk = WOF_FORMATS[fmt][1]
        streams = wof_streams(WOF_CONTENT, fmt, b.work)
        for name, stream in streams.items():
            size = len(WOF_CONTENT[name])
            n = -(-size // chunk)
            starts = [0, *(struct.unpack_from("<I", stream, 4 * i)[0] for i in range(n - 1))]
            table = 4 * (n - 1)
            ends = [*starts[1:], len(stream) - table]
            for k in range(min(n, 8)):
                out = min(chunk, size - k * chunk)
                piece = stream[table + starts[k]:table + ends[k]]
                if len(piece) < out:                    # compressed, not stored verbatim
                    b.seed(f"{fmt}-{name}-{k}", (out - 1).to_bytes(2, "little") + piece)


def xpress(b: Builder) -> None:
    _wof_seeds(b, ("xpress4k", "xpress8k", "xpress16k"))


def lzx(b: Builder) -> None:
    _wof_seeds(b, ("lzx",))


#: FAT seeds: (name, mkfs.vfat options, MiB); one sector per cluster, so the volume's
#: few files span many clusters.
FAT_SEEDS = (("fat12.img", ("-F", "12", "-s", "1"), 1), ("fat16.img", ("-F", "16", "-s", "1"), 3),
             ("fat32.img", ("-F", "32", "-s", "1"), 34))


def fatfs(b: Builder) -> None:
    src = b.work / "src"
    (src / "Sub dir" / "Deeper").mkdir(parents=True)
    (src / "hello.txt").write_bytes(b"hello\n")
    (src / "empty").write_bytes(b"")
    (src / "Sub dir" / "A long name.txt").write_bytes(b"long\n")
    (src / "Sub dir" / "Deeper" / "blocks.bin").write_bytes(bytes(range(256)) * 24)
    for name, opts, mib in FAT_SEEDS:
        path = b.work / name
        with path.open("wb") as f:
            f.truncate(mib << 20)
        if b.tool("mkfs.vfat", *opts, "-n", "SEED", name) and \
                b.tool("mcopy", "-s", "-i", name, *map(str, sorted(src.iterdir())), "::/"):
            b.seed(name, path.read_bytes())


def btrfs(b: Builder) -> None:
    """mkfs.btrfs volumes of a small tree (inline and regular files, a directory of a
    few hundred names, symlinks), metadata single and DUP; sparse-encoded."""
    src = b.work / "btrfs-src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "etc" / "many").mkdir(parents=True)
    (src / "etc" / "os-release").write_bytes(b"ID=debian\n")
    (src / "etc" / "big").write_bytes(bytes(range(256)) * 64)
    for i in range(300):
        (src / "etc" / "many" / f"name-{i:04d}").write_bytes(b"%d" % i)
    (src / "link").symlink_to("../etc/os-release")
    for name, profile in (("single.img", "single"), ("dup.img", "dup")):
        path = b.work / name
        path.unlink(missing_ok=True)
        with open(path, "wb") as f:
            f.truncate(128 << 20)
        if b.tool("mkfs.btrfs", "-q", "-m", profile, "--rootdir", str(src), name):
            b.seed(name, path.read_bytes())


def windows(b: Builder) -> None:
    for name, data, volumes in _windows_disks():
        for p in volumes:
            _ntfs_trimmed(data, p["start"], p["size"], keep_files=True)
        b.seed(name, bytes(data))


def ext4(b: Builder) -> None:
    """Small ext2/3/4 filesystems made by mke2fs -d from a Linux-like tree."""
    root = b.work / "ext4-tree"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (root / "etc" / "fstab").write_text("UUID=x / ext4 defaults 0 1\n" * 40)
    (root / "dir" / "sub").mkdir(parents=True, exist_ok=True)
    (root / "dir" / "sub" / "file").write_bytes(bytes(range(256)) * 20)
    for i in range(40):
        (root / "dir" / f"n{i}").write_text(str(i))
    with open(root / "sparse", "wb") as f:
        f.seek(200_000)
        f.write(b"end")
    if not (root / "link").is_symlink():
        (root / "link").symlink_to("etc/os-release")
    for name, opts in (("ext2", ("-t", "ext2")), ("ext4", ("-t", "ext4", "-O", "^has_journal")),
                       ("ext4-inline", ("-t", "ext4", "-O", "inline_data,^has_journal"))):
        path = b.work / f"{name}.img"
        with open(path, "wb") as f:
            f.truncate(1 << 20)
        if b.tool("mke2fs", "-q", "-F", "-N", "64", *opts, "-d", str(root), str(path)):
            b.seed(name, path.read_bytes())


def regf(b: Builder) -> None:
    hives = SHARED / "corpus" / "hives"
    for src in sorted(hives.glob("*")) if hives.is_dir() else []:
        if src.suffix == ".md":
            continue
        data = lzma.decompress(src.read_bytes()) if src.suffix == ".xz" else src.read_bytes()
        (b.dir / src.name.removesuffix(".xz")).write_bytes(data[:HIVE_HEAD])
    _hive_log_seeds(b, hives)


def _hive_log_seeds(b: Builder, hives: Path) -> None:
    """Dirty hives with their logs (``harnesses.encode_hive_logs``, not sparse-encoded, as
    the other hive seeds): two states of one
    hive written by hivexregedit, the newer one's pages in HvLE logs (one entry, then
    LOG1 + LOG2) and in a DIRT log; and the heads of the corpus's real dirty NTUSER.DAT
    and its LOG1 (Windows' own entries and hashes)."""
    from helpers.regf_logs import dirt_log, dirty_pages, hive_states, hvle_log, make_dirty

    if (hives / "minimal").is_file() and shutil.which("hivexregedit"):
        old_path, new_path = hive_states(hives / "minimal", b.work)
        old, new = old_path.read_bytes(), new_path.read_bytes()
        pages = dirty_pages(old, new)
        seq = struct.unpack_from("<I", old, 8)[0] + 1
        dirty = make_dirty(old, seq, seq - 1, len(new))
        half = len(pages) // 2
        seeds = {
            "hvle-one-log": [hvle_log(new, [pages], seq)],
            "hvle-two-logs": [hvle_log(new, [pages[:half]], seq),
                              hvle_log(new, [pages[half:]], seq + 1)],
            "dirt": [dirt_log(old, new, seq)],
        }
        for name, logs in seeds.items():
            (b.dir / name).write_bytes(encode_hive_logs(dirty, logs))
    ntuser = hives / "regipy_transactions_NTUSER.DAT.xz"
    log1 = hives / "regipy_transactions_ntuser.dat.log1.xz"
    if ntuser.is_file() and log1.is_file():
        primary = lzma.decompress(ntuser.read_bytes())[:HIVE_HEAD]
        (b.dir / "ntuser-log1-head").write_bytes(encode_hive_logs(
            primary, [lzma.decompress(log1.read_bytes())[:HIVE_HEAD]]))


def corpus(out: Path, work: Path) -> None:
    """The shared corpus' real images, each in the corpus of the format imgscan detects."""
    if not CORPUS.is_dir():
        print(f"make_seeds: {CORPUS} absent, real images left out", file=sys.stderr)
        return
    names = {"zvhd2": "zvhd"}
    for src in sorted(p for p in CORPUS.rglob("*") if p.is_file()):
        if src.name.endswith((".md", ".json", ".py", ".tar.xz", ".tar.gz", ".tar")):
            continue
        dst = decompress(src, work / "corpus.img", limit=8 << 20)
        try:
            with imgscan.open(dst) as img:
                fmt = names.get(img.format, img.format)
        except imgscan.ImageError:
            fmt = None
        data = dst.read_bytes()
        dst.unlink()
        if len(data) > SPARSE_ABOVE:
            data = encode_sparse(data)
        if fmt in CONTAINER_FORMATS and len(data) <= CORPUS_MAX:
            name = f"corpus-{src.parent.name}-{unpacked_name(src)}"
            (out / fmt / name).write_bytes(data)
            if fmt == "raw":   # a raw disk's bytes are the partition tables themselves
                (out / "partitions" / name).write_bytes(data)


def xfs(b: Builder) -> None:
    """v5 and v4 volumes made by ``mkfs.xfs -p`` from a small tree: short-form, block and
    leaf directories, inline and remote symlinks (sparse inputs under 500 KiB). mkfs.xfs
    6.1 writes v5 remote symlink blocks without their header, so the v5 seed's long link
    is refused as corrupt: that path is fuzzed too."""
    from helpers.xfs_images import LONG_TARGET, mkfs, protofile
    if shutil.which("mkfs.xfs") is None:
        print("make_seeds: mkfs.xfs not installed, seeds left out", file=sys.stderr)
        return
    src = b.work / "tree"
    for name, count in (("sf", 3), ("blk", 40), ("leaf", 300)):
        (src / name).mkdir(parents=True)
        for i in range(count):
            (src / name / f"file_{i:04d}").write_bytes(b"%d\n" % i)
    (src / "short").symlink_to("sf/file_0001")
    (src / "long").symlink_to(LONG_TARGET)
    proto = b.work / "proto"
    proto.write_text(protofile(src))
    for name, opts in (("v5.img", ()), ("v4.img", ("-m", "crc=0"))):
        image = mkfs(b.work / name, "-p", str(proto), *opts, size=300 << 20)
        b.seed(name, image.read_bytes())
        image.unlink()
def lvm(b: Builder) -> None:
    """The shared corpus' whole-disk LVM2 PV, and (as root, with lvm2) the disk of
    tests/_core/test_lvm.py: two PVs of one VG with linear, striped, thin and snapshot LVs
    and a metadata copy wrapping round its ring, plus that copy's text alone."""
    src = CORPUS / "dissect.volume" / "lvm.bin.gz"
    if src.is_file():
        b.seed("pv-whole-disk", decompress(src, b.work / "lvm.bin").read_bytes())
    from helpers import lvm_disk
    if os.geteuid() != 0 or not all(shutil.which(t) for t in lvm_disk.TOOLS):
        print("make_seeds: lvm2 tools or root missing, no LVM disk seed", file=sys.stderr)
        return
    made = lvm_disk.build(b.work)
    b.seed("two-pvs", made["disk"].read_bytes())
    text = b.work / "metadata.txt"
    lvm_disk.pvck(lvm_disk.partition_file(made["disk"], b.work, 1), "--dump", "metadata",
                  "-f", str(text))
    b.seed("metadata-text", text.read_bytes())


def linuxconf(b: Builder) -> None:
    """The distributions' configuration files of the Linux collectors' tests (os-release,
    release files, fstab, ifcfg, netplan, keyfiles, udev rules, cloud.cfg.d, ...)."""
    from helpers import linux_configs
    for name, text in linux_configs.ALL.items():
        b.seed(name.lower(), text.encode())


def grub(b: Builder) -> None:
    """grub.cfg written by grub-mkconfig (as root, chrooted: helpers.grub_mkconfig) with
    grubenv blocks written by grub-editenv, and a BLS configuration whose entries carry
    ``$kernelopts`` from the grubenv; the parts NUL-separated as ``harnesses.GRUB_FILES``."""
    from helpers import grub_mkconfig as mk
    if shutil.which("grub-editenv") is None:
        print("make_seeds: grub-editenv not installed, seeds left out", file=sys.stderr)
        return
    saved = mk.grub_editenv(b.work / "saved", "saved_entry=1>2", "next_entry=")
    bls_env = mk.grub_editenv(b.work / "bls", "saved_entry=b-1.0",
                              "kernelopts=root=/dev/mapper/vg-root ro rd.lvm.lv=vg/root")
    entry = b"title T\nversion 1.0\nlinux /vmlinuz-1.0\noptions $kernelopts quiet\n"
    blscfg = (b'load_env -f ${config_directory}/grubenv\nset default="${saved_entry}"\n'
              b"blscfg\nsource /boot/grub/other.cfg\n")
    b.seed("bls", b"\0".join([blscfg, bls_env, entry, entry.replace(b"1.0", b"2.0"),
                              b"menuentry 'x' --id x { linux /vmlinuz-3 root=UUID=u }\n"]))
    if not mk.available():
        print("make_seeds: grub-mkconfig needs root and loop devices, its seeds left out",
              file=sys.stderr)
        return
    for name, settings, uuid in (("saved", "GRUB_DEFAULT=saved\n", None),
                                 ("uuid", "GRUB_DEFAULT=0\n", mk.UUID)):
        cfg = mk.grub_mkconfig(b.work / f"mk-{name}", mk.KERNELS, mk.SETTINGS + settings,
                               uuid=uuid)
        b.seed(f"mkconfig-{name}", b"\0".join([cfg.encode(), saved]))


def initramfs(b: Builder) -> None:
    """An early-microcode archive alone and before a main archive in each compression the
    kernel decodes (cpio and the compressors of tests/helpers/initramfs_images.py), plus
    two compressed segments one after another."""
    from helpers.initramfs_images import COMPRESSORS, cpio_archive, microcode_archive, write_files
    if not all(shutil.which(t) for t in ("cpio", *(c[0] for c in COMPRESSORS.values()))):
        print("make_seeds: cpio or a compressor is missing, no initramfs seeds", file=sys.stderr)
        return
    early = microcode_archive(b.work)
    main = cpio_archive(write_files(b.work / "main", {
        "init": b"#!/bin/sh\n", "bin/sh": b"->busybox", "bin/busybox": bytes(range(256)),
        "usr/lib/modules/6.1.0-1-amd64/kernel/drivers/block/virtio_blk.ko": b"\x7fELF" * 64,
        "usr/lib/modules/6.1.0-1-amd64/kernel/drivers/net/xen-netfront.ko.xz": b"\xfd7zXZ"}))
    b.seed("early.cpio", early)
    for fmt, command in COMPRESSORS.items():
        packed = subprocess.run(command, input=main, check=True, capture_output=True).stdout
        b.seed(f"early+{fmt}", early + packed)
        if fmt != "lz4":
            b.seed(f"two-{fmt}", packed + bytes(4) + packed)


def ova(b: Builder) -> None:
    """OVAs as tests/helpers/ova_packages.py builds them (qemu-img streamOptimized disks,
    an ovftool-style descriptor, a sha256sum manifest, ``tar --format=ustar``), one and
    two disks, and the one-disk package archived as pax and GNU tar."""
    if not all(shutil.which(t) for t in ("qemu-img", "tar", "sha256sum")):
        print("make_seeds: qemu-img, tar or sha256sum missing, no OVA seeds", file=sys.stderr)
        return
    disk = pattern_disk(b.work)
    one = build_ova(b.work / "one", "one", [("one-disk1.vmdk", disk)])
    b.seed("one.ova", one.read_bytes())
    two = build_ova(b.work / "two", "two", [("a.vmdk", disk), ("b.vmdk", disk)],
                    firmware="efi")
    b.seed("two.ova", two.read_bytes())
    for fmt in ("pax", "gnu"):
        out = b.work / "one" / f"{fmt}.ova"
        if b.tool("tar", f"--format={fmt}", "-C", str(b.work / "one"), "-cf", str(out),
                  "one.ovf", "one.mf", "one-disk1.vmdk"):
            b.seed(f"{fmt}.ova", out.read_bytes())
    _signed_ova_seeds(b, disk)


#: Certificate files as a hostile package may hold them: (seed name, edit of the real one).
_CERT_EDITS: dict[str, Callable[[str], str]] = {
    "cert-bad-pem": lambda t: t.replace(t.split("\n")[3], "!" * 64),
    "cert-no-pem": lambda t: t.split("\n", 1)[0] + "\n",
    "cert-bad-hex": lambda t: t.replace("= ", "= zz", 1),
    "cert-short": lambda t: t.split("\n", 1)[0][:-4] + "\n" + t.split("\n", 1)[1],
    "cert-other-manifest": lambda t: t.replace("(signed.mf)", "(other.mf)", 1),
    "cert-huge": lambda t: t + "A" * (64 << 10),
    "cert-unknown-key": unknown_key_algorithm,
}


def _signed_ova_seeds(b: Builder, disk: Path) -> None:
    """A package signed as ovftool's ``--privateKey`` signs it (openssl's key, certificate
    and ``dgst -sign``), and the same with each hostile certificate file of _CERT_EDITS."""
    if shutil.which("openssl") is None:
        print("make_seeds: openssl missing, no signed OVA seeds", file=sys.stderr)
        return
    d = b.work / "signed"
    signed = build_ova(d, "signed", [("signed.vmdk", disk)], signed_by=signer(d / "key"))
    b.seed("signed.ova", signed.read_bytes())
    good = (d / "signed.cert").read_text()
    for name, edit in _CERT_EDITS.items():
        (d / "signed.cert").write_text(edit(good))
        out = d / f"{name}.ova"
        if b.tool("tar", "--format=ustar", "-C", str(d), "-cf", str(out), "signed.ovf",
                  "signed.mf", "signed.cert", "signed.vmdk"):
            b.seed(f"{name}.ova", out.read_bytes())


def ovf(b: Builder) -> None:
    """Descriptors as ovftool writes them (tests/helpers/ova_packages.py): BIOS and EFI,
    one and three disks, IDE, SCSI and NVMe controllers; the same as OVF 2.0."""
    from helpers.ova_packages import descriptor
    disk = pattern_disk(b.work)
    for name, disks, args in (
            ("bios", 1, {"firmware": "bios"}),
            ("efi-nvme", 1, {"firmware": "efi", "controller": (20, "vmware.nvme")}),
            ("three-ide", 3, {"firmware": None, "controller": (5, "PIIX4")})):
        text = descriptor([(f"d{i}.vmdk", disk, 1 << 30) for i in range(disks)], **args)
        b.seed(f"{name}.ovf", text.encode())
        b.seed(f"{name}-ovf2.ovf", text.replace("ovf/envelope/1", "ovf/envelope/2").encode())


BUILDERS: dict[str, Callable[[Builder], None]] = {
    "qcow2": qcow2, "qcow": qcow, "vhd": vhd, "vhdx": vhdx, "vmdk": vmdk, "vdi": vdi,
    "qed": qed, "luks": luks, "iso": iso, "zvhd": zvhd, "raw": raw,
    "partitions": partitions, "ntfs": ntfs, "xpress": xpress, "lzx": lzx, "ext4": ext4,
    "regf": regf, "windows": windows,
    "xfs": xfs, "fatfs": fatfs, "ntfsfs": ntfs, "lvm": lvm, "btrfs": btrfs,
    "linuxconf": linuxconf, "grub": grub, "initramfs": initramfs, "ova": ova, "ovf": ovf,
}


def make_seeds(out: Path, only: list[str] | None = None) -> None:
    assert set(BUILDERS) == set(HARNESSES), "a harness without seeds"
    with tempfile.TemporaryDirectory(prefix="imgscan-seeds-") as tmp:
        for name in only or BUILDERS:
            work = Path(tmp) / name
            work.mkdir()
            BUILDERS[name](Builder(out, name, work))
        if only is None:
            corpus(out, Path(tmp))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: make_seeds.py OUTDIR [HARNESS...]")
    make_seeds(Path(sys.argv[1]), sys.argv[2:] or None)


if __name__ == "__main__":
    main()

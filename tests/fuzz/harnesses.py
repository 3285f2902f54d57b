"""What each fuzz harness does with one input; shared by the fuzzer, the smoke test and
the regression replay, so a crash found by one is reproduced by the others.

A harness may raise :class:`imgscan.ImageError` (the input is a bad image, which is
what hostile input is allowed to be); anything else escaping it is a crash. The
container harnesses are one function: the format only chooses the seed corpus (and
so what the fuzzer mutates), while detection decides, as for a user, what the bytes
are read as.

Inputs that stand for a large volume or disk (NTFS, a Windows guest) use a sparse
encoding, :func:`sparse_sectors`: a fuzzer that mutates a 50 MiB disk spends its
mutations on file data, one that mutates only the disk's non-zero sectors hits
the metadata.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zlib
from typing import Any

import imgscan
from imgscan._core.fsapi import DirEntry, Stat
from imgscan._core.fsapi import FileSystem as FileSystemBase
from imgscan.errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from imgscan._core.fsapi import FileSystem

#: Container formats with a harness of their own (a seed corpus and a run each).
CONTAINER_FORMATS = ("qcow2", "qcow", "vhd", "vhdx", "vmdk", "vdi", "qed", "luks", "iso",
                     "zvhd", "raw")

#: Bytes read per guest read: enough to cross a cluster, small enough for 1 s per input.
READ_LENGTH = 64 << 10

#: The sparse encoding: this magic, the disk size in sectors (u32 LE), then records of
#: a sector number (u32 LE) and that sector's 512 bytes. Later records win.
SPARSE_MAGIC = b"SPRS"
SECTOR = 512
_RECORD = 4 + SECTOR
#: The largest disk a sparse input may claim (sparse on tmpfs, never materialised).
SPARSE_MAX_SIZE = 1 << 30
#: The name each input is written under: a backing file or extent of that name is itself.
SCRATCH_NAME = "fuzz.img"

#: Paths the NTFS harness looks up: a Windows root's files and some that do not exist.
NTFS_PATHS = ("\\Windows\\System32\\config\\SYSTEM", "\\Windows\\System32\\config\\SOFTWARE",
              "\\windows\\system32\\CMD.EXE", "\\Boot\\BCD", "\\hiberfil.sys", "\\$MFT",
              "\\$UpCase", "\\missing\\file", "\\",
              # the CompactOS volume of tests/helpers/ntfs_images.py: WOF files, links
              "\\Windows\\xpress4k\\cmd.exe", "\\Windows\\lzx\\cmd.exe",
              "\\Windows\\xpress16k\\mixed.bin", "\\Junction\\SYSTEM",
              "\\Program Files\\Cloudbase-Link\\conf\\cloudbase-init.conf", "\\loop-a",
              "\\Compressed\\hive.log", "\\sparse.bin")

#: The filesystem harnesses' walk: most directories listed and files read per input.
WALK_MAX_DIRS = 64
WALK_MAX_FILES = 256


@contextlib.contextmanager
def scratch_file(data: bytes) -> Iterator[str]:
    """``SCRATCH_NAME`` in a new directory (in RAM when /dev/shm exists: the fuzzer
    writes hundreds of inputs a second) holding ``data``, a sparse input as a sparse
    file; both are removed afterwards."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    directory = tempfile.mkdtemp(prefix="imgscan-fuzz-", dir=base)
    path = os.path.join(directory, SCRATCH_NAME)
    try:
        decoded = sparse_sectors(data)
        with open(path, "wb") as f:
            if decoded is None:
                f.write(data)
            else:
                size, sectors = decoded
                f.truncate(size)
                for number, sector in sectors.items():
                    f.seek(number * SECTOR)
                    f.write(sector[:size - number * SECTOR])
        yield path
    finally:
        os.unlink(path)
        os.rmdir(directory)


def sparse_sectors(data: bytes) -> tuple[int, dict[int, bytes]] | None:
    """The disk size and non-zero sectors of a sparse input, None for a plain one."""
    if not data.startswith(SPARSE_MAGIC) or len(data) < 8:
        return None
    size = min(struct.unpack_from("<I", data, 4)[0] * SECTOR, SPARSE_MAX_SIZE)
    sectors: dict[int, bytes] = {}
    for pos in range(8, len(data), _RECORD):
        number = struct.unpack_from("<I", data.ljust(pos + 4, b"\0"), pos)[0]
        if number * SECTOR < size:
            sectors[number] = data[pos + 4:pos + _RECORD].ljust(SECTOR, b"\0")
    return size, sectors


def encode_sparse(disk: bytes) -> bytes:
    """The sparse input for ``disk`` (its size rounded up to whole sectors)."""
    out = bytearray(SPARSE_MAGIC + struct.pack("<I", -(-len(disk) // SECTOR)))
    for pos in range(0, len(disk), SECTOR):
        sector = disk[pos:pos + SECTOR]
        if sector.count(0) != len(sector):
            out += struct.pack("<I", pos // SECTOR) + sector.ljust(SECTOR, b"\0")
    return bytes(out)


def _sparse_reader(data: bytes) -> tuple[int, Callable[[int, int], bytes]]:
    """``(size, read)`` for a plain or sparse input, ``read`` short at the end as a
    virtual disk's is."""
    decoded = sparse_sectors(data)
    if decoded is None:
        return len(data), lambda offset, length: data[offset:offset + length]
    size, sectors = decoded

    def read(offset: int, length: int) -> bytes:
        end = min(offset + length, size)
        if offset >= end:
            return b""
        out = bytearray()
        for number in range(offset // SECTOR, -(-end // SECTOR)):
            out += sectors.get(number, bytes(SECTOR))
        skip = offset % SECTOR
        return bytes(out[skip:skip + end - offset])

    return size, read


def _guest_reads(img: imgscan.Image, data: bytes) -> None:
    """Reads at the disk's ends and at offsets derived from the input, through
    ``read`` and ``stream``; each must return exactly the bytes the disk holds."""
    size = img.virtual_size
    if size <= 0:
        return
    h = zlib.crc32(data)
    for offset in sorted({0, max(0, size - 1000), h % size, (h >> 5) * 4096 % size}):
        want = min(READ_LENGTH, size - offset)
        got = img.read(offset, READ_LENGTH)
        assert len(got) == want, f"read({offset}) gave {len(got)} bytes, not {want}"
    with img.stream() as stream:
        offset = (h >> 11) * 512 % size
        stream.seek(offset)
        got = stream.read(READ_LENGTH)
        assert len(got) == min(READ_LENGTH, size - offset), "short stream read"
        stream.seek(-min(size, 4096), os.SEEK_END)
        assert len(stream.read(READ_LENGTH)) == min(size, 4096), "short read at the end"


def container(data: bytes) -> None:
    """Detection, ``info()``, the extent map and guest reads of one image file.

    Other files the image names may be opened only inside the scratch directory,
    which holds nothing but the input itself, ``SCRATCH_NAME`` (a backing chain naming itself is
    cut at ``limits.MAX_BACKING_DEPTH``).
    """
    with contextlib.suppress(ImageError), scratch_file(data) as path, \
            imgscan.open(path, external_dir=os.path.dirname(path)) as img:
        img.info()
        emap = img.extents()
        assert emap.check_complete(), "the extent map does not cover the disk once"
        assert sum(e.length for e in emap) == img.virtual_size, "map length != disk size"
        _guest_reads(img, data)


def partitions(data: bytes) -> None:
    """Partition tables, filesystem probes and boot mode of a raw disk (plain or sparse
    input) held in memory."""
    from imgscan.layout import describe
    size, read = _sparse_reader(data)
    with contextlib.suppress(ImageError):
        describe(read, size, "fuzz")


def _wimlib() -> Any:
    """wimlib's codecs (tests/oracles.Wimlib), or None without libwim: the reference."""
    global _WIMLIB
    if _WIMLIB is False:
        import sys
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
        from oracles import wimlib
        _WIMLIB = wimlib()
    return _WIMLIB


_WIMLIB: Any = False


def _wof_chunk(data: bytes, is_lzx: bool) -> None:
    """One CompactOS chunk: a u16 (LE) output size less one, then the compressed bytes.
    Refused (ValueError) or exactly ``size`` bytes; where both decoders accept the chunk,
    the same bytes as wimlib's (imgscan refuses more: e.g. an XPRESS length byte past the
    input's end, which wimlib reads as 0)."""
    from imgscan._core.wof import lzx_decompress, xpress_huffman_decompress
    if len(data) < 2:
        return
    size = int.from_bytes(data[:2], "little") + 1
    if is_lzx:
        size = min(size, 32768)
    decode = lzx_decompress if is_lzx else xpress_huffman_decompress
    try:
        out: bytes | None = decode(data[2:], size)
        assert out is not None and len(out) == size
    except ValueError:                  # a malformed chunk is refused, never a crash
        out = None
    ref = _wimlib()
    if ref is not None:
        theirs = ref.decompress(ref.LZX if is_lzx else ref.XPRESS, data[2:], size,
                                32768 if is_lzx else 65536)
        assert theirs is None or out is None or out == theirs, "differs from wimlib's"


def xpress(data: bytes) -> None:
    """An XPRESS Huffman chunk ([MS-XCA] 2.2, as CompactOS stores it)."""
    _wof_chunk(data, False)


def lzx(data: bytes) -> None:
    """An LZX chunk (the WIM / CompactOS variant)."""
    _wof_chunk(data, True)


def ntfs(data: bytes) -> None:
    """An NTFS volume (plain or sparse input): lookups, listings and file reads."""
    from imgscan._core.ntfs import NtfsVolume
    size, read = _sparse_reader(data)
    try:
        vol = NtfsVolume(read, 0, size, "fuzz")
        vol.listdir("\\")
        for path in NTFS_PATHS:
            try:
                f = vol.lookup(path)
                if f is None:
                    continue
                if f.is_dir:
                    vol.entries(path)
                    continue
                f.runs()
                f.read(0, READ_LENGTH)
                f.read(max(0, f.size - 100))
            except ImageError:
                continue
    except ImageError:
        pass


#: Paths the ext4 harness reads: a Linux root's files, links and directories.
EXT4_PATHS = ("/etc/os-release", "/etc/fstab", "/link", "/dir", "/dir/sub/file", "/sparse",
              "/missing", "/")


def ext4(data: bytes) -> None:
    """An ext2/3/4 filesystem (plain or sparse input): facts, listings, links and reads."""
    from imgscan._core.ext4 import Ext4FileSystem
    size, read = _sparse_reader(data)
    try:
        fs = Ext4FileSystem(read, 0, size, "fuzz")
        fs.facts()
        for path in EXT4_PATHS:
            try:
                st = fs.stat(path, follow=False)
                if st.kind == "dir":
                    fs.listdir(path)
                elif st.kind == "symlink":
                    fs.readlink(path)
                elif st.kind == "file":
                    fs.read_file(path, 0, READ_LENGTH)
                    fs.read_file(path, max(0, st.size - 100))
            except ImageError:
                continue
    except ImageError:
        pass


def _walk(fs: FileSystem) -> None:
    """The volume's facts, every directory of ``fs`` listed, every link read and every
    file read (its head and its tail), breadth first, at most ``WALK_MAX_DIRS``
    directories and ``WALK_MAX_FILES`` files; a path that fails as a bad image is
    passed over."""
    fs.facts()
    pending, dirs, files = ["/"], 0, 0
    while pending and dirs < WALK_MAX_DIRS:
        path = pending.pop(0)
        dirs += 1
        try:
            entries = fs.listdir(path)
        except ImageError:
            continue
        for e in entries:
            child = f"{path.rstrip('/')}/{e.name}"
            try:
                st = fs.entry_stat(e)
                if st.kind == "dir":
                    pending.append(child)
                elif st.kind == "symlink":
                    fs.readlink(child)
                elif st.kind == "file" and files < WALK_MAX_FILES:
                    files += 1
                    fs.read_file(child, 0, READ_LENGTH)
                    fs.read_file(child, max(0, st.size - 100))
            except ImageError:
                continue


def fatfs(data: bytes) -> None:
    """A FAT12/16/32 volume (plain or sparse input) through the filesystem interface."""
    from imgscan._core.fat_fs import FatFileSystem
    size, read = _sparse_reader(data)
    with contextlib.suppress(ImageError):
        _walk(FatFileSystem(read, 0, size, "fuzz"))


def ntfsfs(data: bytes) -> None:
    """An NTFS volume (plain or sparse input) through the filesystem interface."""
    from imgscan._core.ntfs_fs import NtfsFileSystem
    size, read = _sparse_reader(data)
    with contextlib.suppress(ImageError):
        _walk(NtfsFileSystem(read, 0, size, "fuzz"))


def btrfs(data: bytes) -> None:
    """A Btrfs volume (plain or sparse input) walked twice: as is, and with checksums
    taken as valid, since a mutation almost always breaks a checksum and the structural
    checks behind it would go unfuzzed."""
    from imgscan._core import btrfs as reader
    size, read = _sparse_reader(data)
    with contextlib.suppress(ImageError):
        _walk(reader.BtrfsFileSystem(read, 0, size, "fuzz"))
    real = reader.block_checksum
    reader.block_checksum = lambda _csum_type, block: bytes(block[:32])  # type: ignore[assignment]
    try:
        with contextlib.suppress(ImageError):
            _walk(reader.BtrfsFileSystem(read, 0, size, "fuzz"))
    finally:
        reader.block_checksum = real


#: A hive input with transaction logs: this magic, then the primary and each log as a
#: 32-bit little-endian length and the bytes (plain inputs are a primary alone).
HIVE_LOGS_MAGIC = b"RGLG"


def encode_hive_logs(primary: bytes, logs: list[bytes]) -> bytes:
    """One input holding a hive and its logs (LOG1 first), for the ``regf`` harness."""
    return HIVE_LOGS_MAGIC + b"".join(struct.pack("<I", len(p)) + p for p in (primary, *logs))


def decode_hive_logs(data: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The primary and its logs (named fuzz.LOG1, fuzz.LOG2, ...) from an input."""
    if not data.startswith(HIVE_LOGS_MAGIC):
        return data, []
    parts, pos = [], len(HIVE_LOGS_MAGIC)
    while pos + 4 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        parts.append(data[pos + 4:pos + 4 + length])
        pos += 4 + length
    primary, *logs = parts or [b""]
    return primary, [(f"fuzz.LOG{i + 1}", log) for i, log in enumerate(logs)]


def regf(data: bytes) -> None:
    """A registry hive, with its transaction logs when the input carries them
    (``encode_hive_logs``): replay them if it is dirty, open it, walk every key and
    value, and read the facts of every hive imgscan knows (SYSTEM, SOFTWARE, SAM, BCD)."""
    from imgscan._core import regf_log
    from imgscan.guest.windows import bcd, sam
    from imgscan.guest.windows.hives import Facts, software_facts, system_facts
    primary, logs = decode_hive_logs(data)
    try:
        hive, _state = regf_log.open_hive(primary, "fuzz", logs)
        for _path, key in hive.walk():
            _ = key.class_name, key.security_descriptor(), key.parent()
            for value in key.values():
                _ = value.type_name, value.data
        for facts_of in (system_facts, software_facts, sam.administrator,
                         sam.administrators_members, bcd.store_facts):
            facts_of(hive, Facts())
    except ImageError:
        pass


def windows(data: bytes) -> None:
    """A whole guest disk (sparse input): ``info()`` with its Windows inspection."""
    with contextlib.suppress(ImageError), scratch_file(data) as path, \
            imgscan.open(path) as img:
        img.info()


def xfs(data: bytes) -> None:
    """An XFS volume (plain or sparse input) through the filesystem interface."""
    from imgscan._core.xfs import XfsFileSystem
    size, read = _sparse_reader(data)
    with contextlib.suppress(ImageError):
        _walk(XfsFileSystem(read, 0, size, "fuzz"))


def lvm(data: bytes) -> None:
    """LVM2 PVs (plain or sparse input: a whole-disk PV, or a disk whose partitions are
    PVs): the label, the metadata areas, the text metadata and every LV's reader."""
    from imgscan.layout import describe
    size, read = _sparse_reader(data)
    with contextlib.suppress(ImageError):
        layout = describe(read, size, "fuzz")
        for name, lv in layout.logical_volumes.items():
            got = layout.logical_volume(name) if lv.reader is not None else None
            if got is not None:
                got[0](0, READ_LENGTH)
                got[0](max(0, got[1] - 100), READ_LENGTH)
    from imgscan._core.lvm import parse_metadata
    with contextlib.suppress(ImageError):
        parse_metadata(data, "fuzz")


def linuxconf(data: bytes) -> None:
    """One configuration text through every line parser of the Linux collectors (they
    read text already capped in size, so nothing may escape them, not even an
    ImageError): shell assignments, keyfiles, the YAML subset, fstab and the device
    names in it, interfaces(5) lines, the release files, shadow and udev rule lines,
    a kernel command line."""
    from imgscan.guest.linux import (
        cmdline,
        devices,
        fstab,
        keyfile,
        netrules,
        network,
        release,
        shadow,
        shellvars,
        yamlsubset,
    )
    text = data.decode("utf-8", "replace")
    ids = devices.DiskIds(uuids=frozenset({"abcd-1234"}), lvs=frozenset({"vg/lv"}))
    network.ifcfg_method(shellvars.assignments(text))
    network.networkd_method(keyfile.entries(text))
    list(network.netplan_interfaces(yamlsubset.load(text)))
    list(network.ifupdown_lines(text))
    for spec, *_ in fstab.parse(text):
        devices.classify_spec(spec)
        devices.on_this_disk(spec, ids)
    for read in (release.from_os_release, release.from_redhat_release,
                 release.from_suse_release, release.from_lsb_release,
                 release.from_debian_version):
        read(text)
    for line in text.split("\n"):
        shadow.password_state(line.split(":")[1] if ":" in line else line)
        netrules.pins_name(line)
    cmdline.parameters(text)


#: The GRUB harness's files, in the order its input gives them (NUL-separated): the main
#: grub.cfg, its grubenv, two BLS entries and a file for ``configfile``/``source``.
GRUB_FILES = ("boot/grub/grub.cfg", "boot/grub/grubenv", "boot/loader/entries/a.conf",
              "boot/loader/entries/b-1.0.conf", "boot/grub/other.cfg")


def grub(data: bytes) -> None:
    """GRUB 2's configuration (plain input: the NUL-separated files of ``GRUB_FILES``):
    the script parser, the grubenv reader, BLS entries, and the whole boot loader
    collector over a guest tree holding them."""
    from imgscan.guest.linux.boot import bootloader, grubenv, grubscript
    from imgscan.guest.linux.tree import GuestTree, Mount
    parts = data.split(b"\0", len(GRUB_FILES) - 1)
    files = dict(zip(GRUB_FILES, parts, strict=False))
    with contextlib.suppress(ImageError):
        grubscript.parse(parts[0].decode("utf-8", "replace"), "fuzz")
        grubenv.parse(files.get("boot/grub/grubenv", parts[0]), "fuzz")
        bootloader(GuestTree([Mount("/", MemoryFileSystem(files), "fuzz")]))


class MemoryFileSystem(FileSystemBase):
    """Regular files (and the directories leading to them) held in a dict: a guest tree
    for harnesses whose input is a few configuration files, not a volume."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__("fuzz", 0)
        self.paths = ["/"]
        self.data: dict[int, bytes] = {}
        self.children: dict[int, dict[str, int]] = {0: {}}
        for path, content in files.items():
            ino = 0
            parts = path.strip("/").split("/")
            for part in parts[:-1]:
                ino = self._child(ino, part, None)
            self._child(ino, parts[-1], content)

    def _child(self, parent: int, name: str, content: bytes | None) -> int:
        ino = self.children[parent].get(name)
        if ino is None:
            ino = len(self.paths)
            self.paths.append(name)
            self.children[parent][name] = ino
            if content is None:
                self.children[ino] = {}
            else:
                self.data[ino] = content
        return ino

    def _stat(self, ino: int) -> Stat:
        if ino in self.data:
            return Stat(ino, "file", len(self.data[ino]))
        return Stat(ino, "dir", 0)

    def _lookup(self, dir_ino: int, name: str) -> int | None:
        return self.children.get(dir_ino, {}).get(name)

    def _entries(self, dir_ino: int) -> Iterator[DirEntry]:
        for name, ino in self.children.get(dir_ino, {}).items():
            yield DirEntry(name, ino, self._stat(ino).kind)

    def _read(self, ino: int, offset: int, length: int) -> bytes:
        return self.data[ino][offset:offset + length]


def initramfs(data: bytes) -> None:
    """An initramfs file: every segment (plain cpio, gzip, xz, lzma, bzip2, zstd, lz4
    legacy) walked for its member names, then the kernel driver states read from them."""
    from imgscan.guest.linux.initramfs import members
    from imgscan.guest.linux.kernels import module_name
    with contextlib.suppress(ImageError):
        for name in members(lambda offset, length: data[offset:offset + length], len(data),
                            "fuzz"):
            module_name(name)


def ova(data: bytes) -> None:
    """An OVA (or any tar): the ustar walk, the package (descriptor, manifest and the
    certificate file's signature verified in place) and its disks through windows of the
    archive, as ``container`` reads one image."""
    from imgscan._core.ova import Package
    from imgscan._core.source import Source
    from imgscan._core.tar import Archive
    with scratch_file(data) as path:
        with Source(path) as src:
            archive = Archive(src)
            for m in archive.members:
                assert m.offset >= 0 and m.offset + m.size <= src.size, "member outside"
            with contextlib.suppress(ImageError):
                Package(src, "ova", verify_manifest=True).as_dict()
        with contextlib.suppress(ImageError), \
                imgscan.open(path, verify_manifest=True) as img:
            img.info()
            assert img.extents().check_complete(), "the extent map does not cover the disk"
            _guest_reads(img, data)


def ovf(data: bytes) -> None:
    """An OVF descriptor: the hardened XML parse and every fact read from it."""
    from imgscan import limits
    from imgscan._core.ovf import read
    with contextlib.suppress(ImageError):
        assert len(read(data, "fuzz.ovf").disks) <= limits.OVF_MAX_DISKS, "disks over the cap"


HARNESSES: dict[str, Callable[[bytes], None]] = {
    **dict.fromkeys(CONTAINER_FORMATS, container),
    "partitions": partitions,
    "ntfs": ntfs,
    "xpress": xpress,
    "lzx": lzx,
    "ext4": ext4,
    "xfs": xfs,
    "fatfs": fatfs,
    "ntfsfs": ntfsfs,
    "btrfs": btrfs,
    "regf": regf,
    "windows": windows,
    "lvm": lvm,
    "linuxconf": linuxconf,
    "grub": grub,
    "initramfs": initramfs,
    "ova": ova,
    "ovf": ovf,
}

"""NTFS volumes as Windows writes them, made with real tools once per test session.

``build_windows_ntfs`` makes one small volume with mkntfs and fills it through an
ntfs-3g FUSE mount:

* CompactOS / WOF files. wimlib's ``wimapply --compact`` refuses NTFS-3G mode
  ("Compact-mode extraction (System Compression) is only supported on Windows"), so the
  compressed bytes come from wimlib's own compressors instead: a WIM captured with
  ``wimcapture --compress=xpress|lzx --chunk-size=N`` stores each file as a *non-solid
  resource*, which is byte for byte the layout of a ``WofCompressedData`` stream (a
  table of chunk offsets, 4 bytes each below 4 GiB, then the chunks, each stored
  verbatim when it did not shrink; wimlib's ntfs-3g-system-compression plugin reads
  WOF with the WIM decoders for this reason). The resource is copied out of the WIM
  (its blob table found by the file's SHA-1) and written through ntfs-3g as the file's
  ``WofCompressedData`` stream; the unnamed stream becomes a sparse placeholder of the
  file's size and ntfs-3g stores the WOF reparse point
  (``setfattr -n system.ntfs_reparse_data``), as Windows' ``compact /exe:FORMAT`` leaves
  a file ([MS-FSCC] 2.1.2.1 and the WOF_FILE_PROVIDER_REPARSE_POINT_V1 layout).
* LZNT1-compressed files (a directory with FILE_ATTRIBUTE_COMPRESSED, set through
  ntfs-3g's ``system.ntfs_attrib_be``) and sparse files (holes ntfs-3g leaves unallocated).
* A junction and a symbolic link (reparse points written by ntfs-3g from [MS-FSCC]
  2.1.2.2 / 2.1.2.3 buffers).

The expected bytes of every file are its source bytes (``FILES``); the tests also ask
ntfs-3g's ``ntfscat`` and sleuthkit's ``icat`` for the raw streams.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

from helpers import unmount

#: WOF compression formats (WOF_FILE_PROVIDER_EXTERNAL_INFO_V1.Algorithm) and chunk sizes.
WOF_FORMATS = {"xpress4k": (0, 4096), "lzx": (1, 32768), "xpress8k": (2, 8192),
               "xpress16k": (3, 16384)}
IO_REPARSE_TAG_WOF = 0x80000017
IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003
IO_REPARSE_TAG_SYMLINK = 0xA000000C
SYMLINK_FLAG_RELATIVE = 1
#: The volume's size (sparse: most of it is never written).
VOLUME_BYTES = 24 << 20

TOOLS = ("mkntfs", "ntfs-3g", "wimcapture", "setfattr", "ntfscat", "icat")


def can_build() -> str | None:
    """Why the volume cannot be built here, or None."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt: ntfs-3g wimtools attr sleuthkit)"
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        return "an ntfs-3g FUSE mount needs root and /dev/fuse"
    return None


def text(name: str, size: int) -> bytes:
    """``size`` bytes of numbered lines: compressible, yet a misplaced chunk shows."""
    out = bytearray()
    while len(out) < size:
        out += f"{name} line {len(out):08x}: the quick brown fox jumps\n".encode()
    return bytes(out[:size])


def x86_code(size: int) -> bytes:
    """Bytes full of E8 (x86 CALL) opcodes, which LZX's E8 translation rewrites."""
    rng = random.Random(19)
    out = bytearray()
    while len(out) < size:
        out += b"\x55\x48\x89\xe5\xe8" + struct.pack("<i", rng.randrange(-5000, 50000))
        out += b"\x90\xc3" + bytes([rng.randrange(256)]) * rng.randrange(1, 6)
    return bytes(out[:size])


def pe_image(size: int) -> bytes:
    """An x86-64 PE header (MZ, e_lfanew 0x80, PE, Machine 0x8664) before x86 code."""
    header = bytearray(0x200)
    header[:2] = b"MZ"
    header[0x3C:0x40] = struct.pack("<I", 0x80)
    header[0x80:0x86] = b"PE\0\0" + struct.pack("<H", 0x8664)
    return (bytes(header) + x86_code(size))[:size]


def mixed(size: int) -> bytes:
    """Text with incompressible stretches: some chunks are stored verbatim."""
    rng = random.Random(7)
    out = bytearray()
    while len(out) < size:
        out += text("mixed", 20000) + rng.randbytes(9000)
    return bytes(out[:size])


#: Every file of the volume: path -> content. WOF files are under \Windows\<format>.
WOF_CONTENT = {
    "cmd.exe": pe_image(289_792),
    "SYSTEM": text("SYSTEM", 196_608),
    "mixed.bin": mixed(100_000),
    "tiny.txt": text("tiny", 100),          # a single, short chunk
    "empty.txt": b"",
}
FILES: dict[str, bytes] = {
    **{f"Windows/{fmt}/{name}": data for fmt in WOF_FORMATS
       for name, data in WOF_CONTENT.items()},
    "Windows/System32/cmd.exe": WOF_CONTENT["cmd.exe"],    # CompactOS LZX, as on Windows 10
    "Compressed/hive.log": text("compressed", 300_000),
    "Compressed/random.bin": random.Random(5).randbytes(70_000),
    "Program Files/Cloudbase Solutions/Cloudbase-Init/conf/cloudbase-init.conf":
        b"[DEFAULT]\nusername=Admin\n",
}
#: WOF files outside the \Windows\<format> directories: path -> format.
WOF_PLACED = {"Windows/System32/cmd.exe": "lzx"}
#: Sparse files: path -> (size, [(offset, data)]).
SPARSE = {"sparse.bin": (5 << 20, [(0, text("head", 10_000)),
                                   ((5 << 20) - 7000, text("tail", 7000))]),
          # one hole longer than the whole volume (Windows lets a sparse file outgrow it)
          "sparse-past-the-volume.bin": (40 << 20, [(0, text("head", 4096)),
                                                    ((40 << 20) - 4096, text("tail", 4096))])}


def sparse_content(path: str) -> bytes:
    size, pieces = SPARSE[path]
    out = bytearray(size)
    for offset, data in pieces:
        out[offset:offset + len(data)] = data
    return bytes(out)


# -- WIM resources (wimlib's "WIM format" documentation) ---------------------------------
WIM_MAGIC = b"MSWIM\0\0\0"
WIM_BLOB_TABLE = 48          # the header's reshdr of the blob table
RESHDR = struct.Struct("<7sBQQ")        # size in WIM (56 bits), flags, offset, size
BLOB_ENTRY = 50              # reshdr, part number (2), reference count (4), SHA-1 (20)
RESHDR_FLAG_COMPRESSED = 0x04


def wim_resources(wim: Path) -> dict[bytes, tuple[int, bytes, int]]:
    """{SHA-1: (flags, stored bytes, uncompressed size)} of a WIM's file blobs."""
    data = wim.read_bytes()
    assert data[:8] == WIM_MAGIC, wim
    size7, _flags, offset, _usize = RESHDR.unpack_from(data, WIM_BLOB_TABLE)
    table = data[offset:offset + int.from_bytes(size7, "little")]
    out = {}
    for pos in range(0, len(table) - BLOB_ENTRY + 1, BLOB_ENTRY):
        size7, flags, offset, usize = RESHDR.unpack_from(table, pos)
        sha1 = table[pos + 30:pos + 50]
        out[sha1] = (flags, data[offset:offset + int.from_bytes(size7, "little")], usize)
    return out


def wof_streams(contents: dict[str, bytes], fmt: str, work: Path) -> dict[str, bytes]:
    """{name: WofCompressedData stream} of each content, compressed by wimlib."""
    _, chunk = WOF_FORMATS[fmt]
    src = work / f"wim-{fmt}"
    src.mkdir()
    for name, data in contents.items():
        (src / name).write_bytes(data)
    wim = work / f"{fmt}.wim"
    codec = "LZX" if fmt == "lzx" else "XPRESS"
    subprocess.run(["wimcapture", src, wim, f"--compress={codec}", f"--chunk-size={chunk}"],
                   check=True, capture_output=True)
    blobs = wim_resources(wim)
    out = {}
    for name, data in contents.items():
        if not data:
            out[name] = b""
            continue
        flags, stored, usize = blobs[hashlib.sha1(data).digest()]
        assert usize == len(data)
        if flags & RESHDR_FLAG_COMPRESSED:
            out[name] = stored
        else:       # wimlib kept it whole: every chunk verbatim, behind a chunk table
            chunks = -(-len(data) // chunk)
            table = b"".join(struct.pack("<I", i * chunk) for i in range(1, chunks))
            out[name] = table + data
    return out


def wof_reparse(fmt: str) -> bytes:
    """A WOF_FILE_PROVIDER_REPARSE_POINT_V1: WOF version 1, the file provider (2),
    provider version 1 and the algorithm."""
    algorithm, _ = WOF_FORMATS[fmt]
    body = struct.pack("<IIII", 1, 2, 1, algorithm)
    return struct.pack("<IHH", IO_REPARSE_TAG_WOF, len(body), 0) + body


def link_reparse(tag: int, target: str, relative: bool = False) -> bytes:
    """A mount point (junction) or symbolic link reparse buffer ([MS-FSCC] 2.1.2.2 / 2.1.2.3):
    the substitute name (\\??\\C:\\... when absolute) and the print name."""
    sub = (target if relative else "\\??\\" + target).encode("utf-16-le")
    prn = target.encode("utf-16-le")
    if tag == IO_REPARSE_TAG_MOUNT_POINT:
        body = struct.pack("<HHHH", 0, len(sub), len(sub) + 2, len(prn)) \
            + sub + b"\0\0" + prn + b"\0\0"
    else:
        body = struct.pack("<HHHHI", 0, len(sub), len(sub), len(prn),
                           SYMLINK_FLAG_RELATIVE if relative else 0) + sub + prn
    return struct.pack("<IHH", tag, len(body), 0) + body


def _setfattr(path: Path, name: str, value: bytes) -> None:
    subprocess.run(["setfattr", "-n", name, "-v", "0x" + value.hex(), path], check=True,
                   capture_output=True)


#: Links: path -> (tag, target, relative).
LINKS = {
    "Junction": (IO_REPARSE_TAG_MOUNT_POINT, r"C:\Windows\xpress8k", False),
    "Program Files/Cloudbase-Link": (IO_REPARSE_TAG_SYMLINK,
                                     r"Cloudbase Solutions\Cloudbase-Init", True),
    "Windows/abs-symlink.txt": (IO_REPARSE_TAG_SYMLINK, r"C:\Windows\xpress4k\SYSTEM", False),
    "Windows/Sys16": (IO_REPARSE_TAG_SYMLINK, "xpress16k", True),
    "Windows/chain.txt": (IO_REPARSE_TAG_SYMLINK, r"C:\Junction\SYSTEM", False),
    "Windows/up.txt": (IO_REPARSE_TAG_SYMLINK, r"..\Compressed\hive.log", True),
    "Windows/elsewhere": (IO_REPARSE_TAG_MOUNT_POINT,
                          r"Volume{9a2b3c4d-0000-0000-0000-100000000000}\x", False),
    "loop-a": (IO_REPARSE_TAG_SYMLINK, "loop-b", True),
    "loop-b": (IO_REPARSE_TAG_SYMLINK, "loop-a", True),
}


#: A Data Deduplication placeholder: its bytes are in the chunk store, not the file.
IO_REPARSE_TAG_DEDUP = 0x80000013
DEDUP = {"Windows/dedup.dll": 40_000}


def build_windows_ntfs(work: Path) -> Path:
    """The volume (``work/windows-ntfs.img``), built through an ntfs-3g mount."""
    img = work / "windows-ntfs.img"
    with open(img, "wb") as f:
        f.truncate(VOLUME_BYTES)
    subprocess.run(["mkntfs", "-q", "-F", "-Q", "-L", "CompactOS", "-c", "4096", img],
                   check=True, capture_output=True)
    streams = {fmt: wof_streams(WOF_CONTENT, fmt, work) for fmt in WOF_FORMATS}
    mnt = work / "mnt"
    mnt.mkdir()
    subprocess.run(["ntfs-3g", "-o", "streams_interface=windows", img, mnt], check=True,
                   capture_output=True)
    try:
        (mnt / "Compressed").mkdir()
        (mnt / "Windows/System32/config").mkdir(parents=True)
        # FILE_ATTRIBUTE_COMPRESSED | FILE_ATTRIBUTE_DIRECTORY: new files are LZNT1.
        _setfattr(mnt / "Compressed", "system.ntfs_attrib_be", (0x800 | 0x10).to_bytes(4, "big"))
        for rel, data in FILES.items():
            path = mnt / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fmt = WOF_PLACED.get(rel, rel.split("/")[1] if rel.startswith("Windows/") else None)
            if fmt in WOF_FORMATS:
                name = rel.rsplit("/", 1)[1]
                path.touch()
                with open(f"{path}:WofCompressedData", "wb") as f:
                    f.write(streams[fmt][name])
                os.truncate(path, len(data))            # the sparse placeholder
                _setfattr(path, "system.ntfs_reparse_data", wof_reparse(fmt))
            else:
                path.write_bytes(data)
        for rel, (size, pieces) in SPARSE.items():
            with open(mnt / rel, "wb") as f:
                for offset, data in pieces:
                    f.seek(offset)
                    f.write(data)
                f.truncate(size)
        for rel, size in DEDUP.items():
            (mnt / rel).touch()
            os.truncate(mnt / rel, size)
            _setfattr(mnt / rel, "system.ntfs_reparse_data",
                      struct.pack("<IHH", IO_REPARSE_TAG_DEDUP, 8, 0) + bytes(8))
        for rel, (tag, target, relative) in LINKS.items():
            path = mnt / rel
            if tag == IO_REPARSE_TAG_MOUNT_POINT or "." not in rel:
                path.mkdir()
            else:
                path.touch()
            _setfattr(path, "system.ntfs_reparse_data", link_reparse(tag, target, relative))
    finally:
        unmount(mnt)
    return img


#: The steps of :func:`build_fragmented_mft`, run by ``sh`` in the work directory with the
#: mount point as $1 (a shell's ``head -c`` fills every last free cluster).
FRAGMENT_MFT = """
set -e
mkdir "$1/a" "$1/b" "$1/c"
i=0; while [ $i -lt 3000 ]; do true > "$1/a/e$i"; i=$((i + 1)); done
i=0; while [ $i -lt 4000 ]; do head -c 1000 /dev/zero | tr '\\0' y > "$1/b/f$i"; \
    i=$((i + 1)); done
head -c 20000000 /dev/zero > "$1/fill" 2>/dev/null || true
i=0; while [ $i -lt 4000 ]; do rm "$1/b/f$i"; i=$((i + 2)); done
i=0; while [ $i -lt 4000 ] && true > "$1/c/g$i" 2>/dev/null; do i=$((i + 1)); done
"""


def build_fragmented_mft(work: Path) -> Path:
    """A volume whose $MFT spills into an $ATTRIBUTE_LIST (``work/fragmented-mft.img``).

    512-byte clusters and 1 KiB records: 3000 empty files push the MFT past its zone,
    4000 two-cluster files follow it, a filler takes the rest, every other two-cluster
    file is deleted, and new empty files then grow the MFT one record per hole, until
    the volume is full: some 300 runs, more than record 0 holds, so ntfs-3g moves
    $DATA's tail (and $FILE_NAME) to extension records behind an attribute list.
    """
    img = work / "fragmented-mft.img"
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkntfs", "-q", "-F", "-Q", "-c", "512", img], check=True,
                   capture_output=True)
    mnt = work / "mnt-mft"
    mnt.mkdir()
    subprocess.run(["ntfs-3g", img, mnt], check=True, capture_output=True)
    try:
        subprocess.run(["sh", "-c", FRAGMENT_MFT, "sh", mnt], check=True, capture_output=True)
    finally:
        unmount(mnt)
    return img

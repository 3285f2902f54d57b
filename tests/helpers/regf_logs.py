"""Registry hives made dirty on purpose, and regipy as the oracle of their replay.

No tool on Linux writes registry transaction logs (hivex writes the primary only,
libregf reads only), so a dirty hive is made from two real hives that hivexregedit
wrote, an older and a newer state of the same hive: the pages that differ go into a
log in Windows' layout (Suhanov, "Format of transaction log files"), the older file
gets a dirty base block, and the replay must give the newer file back. The log
layout written here is the part made by hand; what it must decode to (the newer
hive) comes from hivex, and regipy, an independent reader, replays the same files.
The Marvin32 hashes are imgscan's, whose agreement with Windows' own is tested on
the real logs of the corpus.

``regipy_tree`` / ``imgscan_tree`` read a whole hive key by key and value by value
into one comparable form (regipy is a test-only dependency: imgscan never imports it).
"""

from __future__ import annotations

import lzma
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import sparse_copy
from imgscan._core.c_regf import TYPE_NAMES
from imgscan._core.marvin32 import marvin32
from imgscan._core.regf import Hive

SECTOR = 512
PAGE = 4096


def xor_checksum(base: bytes | bytearray) -> int:
    """The base block checksum, written out here independently of imgscan."""
    total = 0
    for (word,) in struct.iter_unpack("<I", bytes(base[:508])):
        total ^= word
    return {0: 1, 0xFFFFFFFF: 0xFFFFFFFE}.get(total, total)


def log_base_block(hive: bytes, file_type: int, sequence: int) -> bytes:
    """The first sector of a log: the hive's base block, retyped and renumbered."""
    bb = bytearray(hive[:SECTOR])
    struct.pack_into("<III", bb, 4, sequence, sequence, struct.unpack_from("<I", bb, 12)[0])
    struct.pack_into("<I", bb, 28, file_type)
    struct.pack_into("<I", bb, 508, xor_checksum(bb))
    return bytes(bb)


def make_dirty(old: bytes, primary: int, secondary: int, size: int = 0) -> bytes:
    """``old`` with a base block saying a write was started (primary != secondary); with
    ``size``, grown to it with zeros and its hive bins size set so (Windows grows the
    primary before it writes the new pages; regipy replays only into such a file)."""
    out = bytearray(old.ljust(size, b"\0"))
    struct.pack_into("<II", out, 4, primary, secondary)
    if size:
        struct.pack_into("<I", out, 40, size - PAGE)
    struct.pack_into("<I", out, 508, xor_checksum(out))
    return bytes(out)


def dirty_pages(old: bytes, new: bytes, page: int = PAGE) -> list[int]:
    """Offsets (in the hive bins) of the ``page``-sized pages where ``new`` differs."""
    bins = len(new) - PAGE
    padded = old[PAGE:].ljust(bins, b"\0")
    return [off for off in range(0, bins, page)
            if padded[off:off + page] != new[PAGE + off:PAGE + off + page]]


def hvle_entry(new: bytes, pages: list[int], sequence: int) -> bytes:
    """One HvLE log entry carrying ``pages`` (4 KiB each) of ``new``."""
    body = b"".join(struct.pack("<II", off, PAGE) for off in pages)
    body += b"".join(new[PAGE + off:PAGE + off + PAGE] for off in pages)
    size = -(-(40 + len(body)) // SECTOR) * SECTOR
    body = body.ljust(size - 40, b"\0")
    head = struct.pack("<4sIIIII", b"HvLE", size, 0, sequence, len(new) - PAGE, len(pages))
    hash_1 = marvin32(body)
    hash_2 = marvin32(head + struct.pack("<Q", hash_1))
    return head + struct.pack("<QQ", hash_1, hash_2) + body


def hvle_log(new: bytes, entries: list[list[int]], sequence: int, size: int = 0) -> bytes:
    """A new-format log: ``entries`` (lists of page offsets) numbered from ``sequence``,
    padded with zeros to ``size`` bytes (Windows preallocates its logs)."""
    out = log_base_block(new, 6, sequence)
    out += b"".join(hvle_entry(new, pages, sequence + i) for i, pages in enumerate(entries))
    return out.ljust(size, b"\0")


def dirt_log(old: bytes, new: bytes, sequence: int) -> bytes:
    """An old-format log: the base block, the DIRT vector over 512-byte pages, the pages."""
    bins = len(new) - PAGE
    bits = dirty_pages(old, new, SECTOR)
    bitmap = bytearray(bins // SECTOR // 8)
    for off in bits:
        bitmap[off // SECTOR // 8] |= 1 << (off // SECTOR % 8)
    head = log_base_block(new, 1, sequence) + b"DIRT" + bytes(bitmap)
    head = head.ljust(-(-len(head) // SECTOR) * SECTOR, b"\0")
    return head + b"".join(new[PAGE + off:PAGE + off + SECTOR] for off in bits)


def _regedit(hive: Path, reg: str) -> None:
    text = hive.with_suffix(".reg")
    text.write_text("Windows Registry Editor Version 5.00\r\n\r\n" + reg)
    subprocess.run(["hivexregedit", "--merge", "--prefix", "HKEY_LOCAL_MACHINE\\SYSTEM",
                    str(hive), str(text)], check=True, capture_output=True)


def hive_states(minimal: Path, work: Path) -> tuple[Path, Path]:
    """(older, newer) states of one hive, both written by hivexregedit from hivex's
    ``minimal``: a SYSTEM-like hive, then services added, changed and deleted."""
    old = work / "old"
    old.write_bytes(minimal.read_bytes())
    old.chmod(0o644)
    first = "".join(f"[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\svc{i:03d}]\r\n"
                    f"\"Start\"=dword:{i % 5:08x}\r\n\"ImagePath\"=\"\\\\drivers\\\\s{i}.sys\"\r\n"
                    f"\"Blob\"=hex:{','.join(['%02x' % (i & 0xFF)] * 300)}\r\n\r\n"
                    for i in range(120))
    parents = "".join(f"[HKEY_LOCAL_MACHINE\\SYSTEM\\{k}]\r\n\r\n"
                      for k in ("ControlSet001", "ControlSet001\\Services"))
    _regedit(old, "[HKEY_LOCAL_MACHINE\\SYSTEM\\Select]\r\n\"Current\"=dword:00000001\r\n\r\n"
             + parents + first)
    new = work / "new"
    sparse_copy(old, new)
    second = "".join(f"[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\viostor{i}]\r\n"
                     f"\"Start\"=dword:00000000\r\n\r\n" for i in range(40))
    second += "".join(f"[-HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\svc{i:03d}]\r\n\r\n"
                      for i in range(0, 120, 7))
    second += "[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\svc001]\r\n" \
              "\"Start\"=dword:00000004\r\n\r\n"
    _regedit(new, second)
    return old, new



# -- a Windows disk whose SYSTEM hive is dirty --------------------------------------------

#: The corpus's dirty SYSTEM and its logs (MANIFEST.md, "Dirty hives").
DIRTY_SYSTEM = ("regipy_SYSTEM_B.xz", "regipy_SYSTEM_B.LOG1.xz", "regipy_SYSTEM_B.LOG2.xz")
#: Where ntfscp puts them on the Windows volume.
CONFIG = "/Windows/System32/config/"


#: The nosysres fixture's one NTFS partition: (start, size) in bytes.
NOSYSRES_VOLUME = (1 << 20, 32 << 20)


def edit_windows_volume(fixture: Path, work: Path, edit: Callable[[Path], None]) -> Path:
    """A copy of the nosysres Windows fixture whose NTFS volume ``edit`` changed: it is
    given the volume cut out to a file (for ntfs-3g's tools), which goes back in after."""
    disk = work / "edited.img"
    sparse_copy(fixture, disk)
    start, size = NOSYSRES_VOLUME
    volume = work / "p1"
    with disk.open("rb") as fh:
        fh.seek(start)
        volume.write_bytes(fh.read(size))
    edit(volume)
    with disk.open("r+b") as fh:
        fh.seek(start)
        fh.write(volume.read_bytes())
    return disk


def ntfscp(volume: Path, local: Path, dest: str) -> None:
    """Write ``local`` as ``dest`` on the NTFS ``volume`` (ntfs-3g's ntfscp)."""
    subprocess.run(["ntfscp", "-q", str(volume), str(local), dest], check=True,
                   capture_output=True)


def dirty_windows_disk(fixture: Path, hives: Path, work: Path,
                       logs: tuple[str, ...] = ("SYSTEM.LOG1", "system.log2")) -> Path:
    """A copy of the nosysres Windows fixture (one NTFS partition of 32 MiB at 1 MiB)
    whose SYSTEM is the corpus's dirty one, with ``logs`` (names for LOG1 then LOG2;
    NTFS names compare case-insensitively) beside it, written by ntfs-3g's ntfscp."""
    def edit(volume: Path) -> None:
        for src, dst in zip(DIRTY_SYSTEM, ("SYSTEM", *logs), strict=False):
            local = work / src.removesuffix(".xz")
            local.write_bytes(lzma.decompress((hives / src).read_bytes()))
            ntfscp(volume, local, CONFIG + dst)

    return edit_windows_volume(fixture, work, edit)


# -- the whole hive in one comparable form -----------------------------------------------

Tree = dict[str, dict[str, tuple[str, Any]]]


def _name(text: str) -> str:
    """A key or value name as both readers spell it: upper case, every non-ASCII
    character as U+FFFD (regipy decodes one-byte names as ASCII, imgscan as Latin-1)."""
    return "".join(c if c.isascii() else "\ufffd" for c in text.upper())


#: The value types both readers name alike; regipy renames others (DEVPROP types
#: 0xFFFF00xx become REG_FILETIME, ...), so those compare by name only.
STANDARD_TYPES = frozenset(TYPE_NAMES.values())


def _comparable(type_name: str, data: Any) -> Any:
    """A value's data as both readers give it: strings up to their first NUL, numbers,
    string lists without empty strings, anything else as raw bytes."""
    if type_name in ("REG_SZ", "REG_EXPAND_SZ") and isinstance(data, str):
        return data.split("\0", 1)[0]
    if type_name == "REG_MULTI_SZ" and isinstance(data, list):
        return [s for s in data if s]
    if isinstance(data, bytearray):
        return bytes(data)
    return data


def _typed(type_name: str, data: Any) -> tuple[str, Any]:
    if type_name not in STANDARD_TYPES:
        return ("other", None)
    return type_name, _comparable(type_name, data)


def regipy_tree(path: Path, top: str = "") -> Tree:
    """Every key under ``top`` (path from it, upper case) of the hive at ``path``, by
    regipy's own key and value readers: value name (upper case) -> (type, data)."""
    from regipy.registry import RegistryHive

    tree: Tree = {}
    hive = RegistryHive(str(path))  # type: ignore[no-untyped-call]
    start = hive.get_key("\\" + top) if top else hive.root  # type: ignore[no-untyped-call]
    stack = [("", start)]
    while stack:
        key_path, nk = stack.pop()
        values = nk.iter_values(trim_values=False) if nk.values_count else ()
        tree[_name(key_path)] = {
            _name("" if v.name == "(default)" else v.name):
            _typed(str(v.value_type), v.value) for v in values}
        if nk.header.subkey_count:
            subkeys = nk.iter_subkeys()
            stack.extend((f"{key_path}\\{sub.name}" if key_path else sub.name, sub)
                         for sub in subkeys)
    return tree


def imgscan_tree(hive: Hive, top: str = "") -> Tree:
    """The same as :func:`regipy_tree`, by imgscan."""
    tree: Tree = {}
    for path, key in hive.walk(hive.open_key(top)):
        tree[_name(path)] = {_name(v.name): _typed(v.type_name, v.data)
                              for v in key.values()}
    return tree


# -- the whole hive as raw bytes: hivex as the oracle -----------------------------------

#: Every value as its type and raw data: key path -> value name -> (type, data).
RawTree = dict[str, dict[str, tuple[int, bytes]]]

_REG_KEY = re.compile(r"\[\\(.*)\]")
_REG_VALUE = re.compile(r'(@|"((?:[^"\\]|\\.)*)")=(?:hex\(([0-9a-f]+)\):([0-9a-f,]*)'
                        r'|dword:([0-9a-f]{8}))')
#: REG_DWORD, which hivexregedit writes as ``dword:`` (the number, big-endian hex digits).
REG_DWORD = 4


def hivex_tree(path: Path) -> RawTree:
    """Every key and value of the hive at ``path`` as hivex reads it: the text of
    ``hivexregedit --export`` (every value as ``hex(TYPE):bytes`` or four-byte REG_DWORDs
    as ``dword:NUMBER``, names escaped with
    backslashes, long lines continued with a trailing backslash) parsed back."""
    text = subprocess.run(["hivexregedit", "--export", str(path), "\\"], check=True,
                          capture_output=True).stdout.decode("utf-8")
    tree: RawTree = {}
    values: dict[str, tuple[int, bytes]] = {}
    for line in text.replace("\\\r\n  ", "").replace("\\\n  ", "").splitlines():
        if key := _REG_KEY.fullmatch(line):
            values = tree.setdefault(key.group(1), {})
        elif value := _REG_VALUE.fullmatch(line):
            name = "" if value.group(1) == "@" else re.sub(r"\\(.)", r"\1", value.group(2))
            if value.group(5):
                values[name] = (REG_DWORD, int(value.group(5), 16).to_bytes(4, "little"))
            else:
                values[name] = (int(value.group(3), 16),
                                bytes.fromhex(value.group(4).replace(",", "")))
        else:
            assert line in ("", "Windows Registry Editor Version 5.00"), line
    return tree


def imgscan_raw_tree(hive: Hive) -> RawTree:
    """The same as :func:`hivex_tree`, by imgscan's reader."""
    return {path: {v.name: (v.type, bytes(v.raw)) for v in key.values()}
            for path, key in hive.walk(hive.open_key(""))}

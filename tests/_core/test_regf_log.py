"""Registry transaction log replay (imgscan/_core/regf_log.py) against regipy and hivex.

Real logs: the corpus's dirty SYSTEM with its LOG1 / LOG2 and a dirty NTUSER.DAT with
its logs (../shared/corpus/hives/MANIFEST.md, "Dirty hives"), written by Windows, so
their Marvin32 hashes are Windows' own. Oracle: regipy (``apply_transaction_logs``
then its own key and value readers), compared key by key and value by value over
the whole hive, and byte by byte over the hive bins; regipy's reader takes a quarter
of an hour over the 12 MiB SYSTEM, so there hivex (``hivexregedit --export``) reads
the whole of regipy's replay, every key and value (type, raw data), and regipy's
reader the subtrees imgscan's facts come from. regipy applies every entry of
the logs it is given, the secondary log first, and checks neither hashes nor
sequence numbers, so it is handed exactly the logs that apply, in Windows' order.

Deliberately dirty hives (tests/helpers/regf_logs.py): an older and a newer state of
one hive written by hivexregedit, the newer one's pages in a log; the replay of the
older must give the newer back, byte for byte, as regipy's does.
"""

from __future__ import annotations

import lzma
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from helpers.regf_logs import (
    PAGE,
    dirt_log,
    dirty_pages,
    hive_states,
    hivex_tree,
    hvle_log,
    imgscan_raw_tree,
    imgscan_tree,
    make_dirty,
    regipy_tree,
    xor_checksum,
)
from oracles import CORPUS

from imgscan._core import regf_log
from imgscan._core.marvin32 import marvin32
from imgscan._core.regf import Hive

HIVES = CORPUS.parent / "hives"
SYSTEM_B = ("regipy_SYSTEM_B.xz", "regipy_SYSTEM_B.LOG1.xz", "regipy_SYSTEM_B.LOG2.xz")
NTUSER = ("regipy_transactions_NTUSER.DAT.xz", "regipy_transactions_ntuser.dat.log1.xz",
          "regipy_transactions_ntuser.dat.log2.xz")
needs_dirty_hives = pytest.mark.skipif(
    not all((HIVES / n).is_file() for n in SYSTEM_B + NTUSER),
    reason=f"the dirty hives of {HIVES} (MANIFEST.md, 'Dirty hives') are absent")
needs_regedit = pytest.mark.skipif(shutil.which("hivexregedit") is None,
                                   reason="hivexregedit (libwin-hivex-perl) absent")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The dirty hives and their logs, decompressed once into a temp dir."""
    out = tmp_path_factory.mktemp("dirty")
    files = {}
    for name in SYSTEM_B + NTUSER:
        path = out / name.removesuffix(".xz")
        path.write_bytes(lzma.decompress((HIVES / name).read_bytes()))
        files[name] = path
    return files


#: Where SYSTEM facts are read and the manifest's new values are.
SYSTEM_SUBTREES = ("Select", "MountedDevices", "ControlSet001\\Control\\ComputerName",
                   "ControlSet001\\Control\\Terminal Server",
                   "ControlSet001\\Services\\Tcpip", "ControlSet001\\Services\\Tcpip6",
                   "ControlSet001\\Services\\storahci", "ControlSet001\\Services\\pciide")


def regipy_replay(tmp_path: Path, hive: Path, *logs: Path) -> Path:
    """regipy's replay of ``logs`` in this order (it applies its secondary log first)."""
    from regipy.recovery import apply_transaction_logs

    out = tmp_path / f"{hive.name}.regipy"
    first, *rest = logs
    if rest:
        apply_transaction_logs(str(hive), str(rest[0]),  # type: ignore[no-untyped-call]
                               secondary_log_path=str(first), restored_hive_path=str(out))
    else:
        apply_transaction_logs(str(hive), str(first),  # type: ignore[no-untyped-call]
                               restored_hive_path=str(out))
    return out


def value_of(hive: Hive, path: str, name: str) -> Any:
    """The data of value ``name`` of key ``path``, None when either is absent."""
    key = hive.open_key(path)
    value = None if key is None else key.value(name)
    return None if value is None else value.data


def replayed(files: dict[str, Path], names: tuple[str, ...]) -> regf_log.Replay:
    primary, *logs = (files[n].read_bytes() for n in names)
    done, problems = regf_log.replay(primary, [(n, d) for n, d in zip(names[1:], logs,
                                                                        strict=True)])
    assert done is not None, problems
    return done


# -- the real logs --------------------------------------------------------------------

@needs_dirty_hives
def test_marvin32_hashes_of_real_log_entries(corpus: dict[str, Path]) -> None:
    """Every entry Windows wrote passes both hash checks (and a flipped byte fails)."""
    counts = {}
    for name in SYSTEM_B[1:] + NTUSER[1:]:
        data = corpus[name].read_bytes()
        entries, stop = regf_log.log_entries(data, name)
        assert stop is None
        counts[name] = [e.sequence for e in entries]
    assert counts[SYSTEM_B[1]] == list(range(2107, 2111))
    assert counts[SYSTEM_B[2]] == list(range(2111, 2131))
    assert counts[NTUSER[1]] == list(range(566, 589))
    assert counts[NTUSER[2]] == [562]
    flipped = bytearray(corpus[SYSTEM_B[1]].read_bytes())
    head = bytes(flipped[512:552])
    assert struct.unpack_from("<Q", head, 32)[0] == marvin32(head[:32])
    flipped[600] ^= 1
    entries, stop = regf_log.log_entries(bytes(flipped), "LOG1")
    assert entries == [] and stop is not None and "Hash-1" in stop and "offset 512" in stop


@needs_dirty_hives
@needs_regedit
def test_dirty_system_replay_equals_regipy(corpus: dict[str, Path], tmp_path: Path) -> None:
    """SYSTEM_B (1622 != 1621) + LOG1 (2107-2110) + LOG2 (2111-2130): the manifest's 315
    pages; the hive equals regipy's key by key, value by value and byte by byte (the
    whole hive read by hivex from regipy's replay)."""
    done = replayed(corpus, SYSTEM_B)
    assert (done.format, done.entries, done.pages) == ("HvLE", 24, 315)
    assert (done.first_sequence, done.last_sequence, done.stopped) == (2107, 2130, None)
    assert done.logs == [SYSTEM_B[1], SYSTEM_B[2]]
    theirs = regipy_replay(tmp_path, corpus[SYSTEM_B[0]], corpus[SYSTEM_B[1]],
                           corpus[SYSTEM_B[2]]).read_bytes()
    assert done.data[PAGE:] == theirs[PAGE:len(done.data)]
    hive = Hive(done.data, "SYSTEM")
    assert not hive.dirty and hive.findings == []
    # The whole hive, every key and every value (type, raw data): imgscan's reader over
    # its replay, hivex's (hivexregedit --export) over regipy's replay, and imgscan's
    # over regipy's replay all agree.
    theirs_path = tmp_path / f"{SYSTEM_B[0].removesuffix('.xz')}.regipy"
    whole = imgscan_raw_tree(hive)
    assert len(whole) > 30000
    # regipy leaves the base block checksum of the sequence numbers it replaced: hivex
    # refuses that, so it reads a copy whose checksum alone is resealed.
    sealed = tmp_path / "regipy-sealed"
    sealed.write_bytes(theirs[:508] + struct.pack("<I", xor_checksum(theirs)) + theirs[512:])
    assert whole == hivex_tree(sealed)
    assert whole == imgscan_raw_tree(Hive(theirs, "SYSTEM (regipy)"))
    # regipy's own reader takes a quarter of an hour over the whole hive: its decoded
    # values over the subtrees imgscan's facts come from and the logs changed.
    for top in SYSTEM_SUBTREES:
        assert imgscan_tree(hive, top) == regipy_tree(theirs_path, top), top
    # the manifest's new values, absent from the primary alone
    tcpip6 = ("ControlSet001\\Services\\Tcpip6\\Parameters\\Interfaces\\"
              "{4b0ae068-b350-4bd4-85ab-77e00e581863}")
    assert value_of(hive, tcpip6, "EnableDHCP") == 1
    f_drive = bytes.fromhex("8159d4760000100000000000")
    assert value_of(hive, "MountedDevices", "\\DosDevices\\F:") == f_drive
    stale = Hive(corpus[SYSTEM_B[0]].read_bytes(), "SYSTEM")
    assert value_of(stale, "MountedDevices", "\\DosDevices\\F:") is None
    name = "ControlSet001\\Control\\ComputerName\\ComputerName"
    assert value_of(hive, name, "ComputerName") == "DESKTOP-PM6C56D"


@needs_dirty_hives
def test_primary_with_a_wrong_checksum_takes_the_logs_base_block(
        corpus: dict[str, Path], tmp_path: Path) -> None:
    """SYSTEM_B with a torn base block: its root cell offset garbled and the checksum
    left as it was, so wrong. The base block comes from LOG1, the first usable log
    (whose base block differs from the primary's only in the fields the replay seals),
    and the replay gives the intact primary's replay byte for byte; regipy, which
    ignores the checksum and keeps the primary's base block, replays the same bins."""
    intact = replayed(corpus, SYSTEM_B)
    good = corpus[SYSTEM_B[0]].read_bytes()
    broken = good[:36] + struct.pack("<I", 0xDEADBEE8) + good[40:]   # root cell offset
    assert regf_log.is_dirty(broken) and not regf_log.checksum_ok(broken)
    patched = tmp_path / "SYSTEM"
    patched.write_bytes(broken)
    logs = [(n, corpus[n].read_bytes()) for n in SYSTEM_B[1:]]
    done, problems = regf_log.replay(broken, logs)
    assert done is not None and problems == []
    assert (done.entries, done.pages, done.first_sequence, done.last_sequence) == \
        (intact.entries, intact.pages, 2107, 2130)
    assert done.data == intact.data
    theirs = regipy_replay(tmp_path, patched, corpus[SYSTEM_B[1]], corpus[SYSTEM_B[2]])
    assert done.data[PAGE:] == theirs.read_bytes()[PAGE:len(done.data)]
    hive, state = regf_log.open_hive(broken, "SYSTEM", logs)
    assert state["replayed"]
    assert "(sequence numbers 1622 != 1621, base block checksum wrong)" in \
        hive.findings[0].message
    assert [(f.id, f.severity) for f in hive.findings] == [("hive-replayed", "info")]
    assert imgscan_raw_tree(hive) == imgscan_raw_tree(Hive(intact.data, "SYSTEM"))
    # no log to take a base block from: the primary is refused as it is
    assert regf_log.replay(broken, []) == (None, ["no log"])


@needs_dirty_hives
def test_dirty_ntuser_replay_skips_the_stale_log(corpus: dict[str, Path],
                                                tmp_path: Path) -> None:
    """NTUSER.DAT (567 != 566): LOG1's entries 566-588 apply (132 pages, the manifest's);
    LOG2 holds only entry 562, older than the hive, and is left alone."""
    done = replayed(corpus, NTUSER)
    assert (done.entries, done.pages, done.first_sequence, done.last_sequence) == \
        (23, 132, 566, 588)
    assert done.logs == [NTUSER[1]]
    theirs = regipy_replay(tmp_path, corpus[NTUSER[0]], corpus[NTUSER[1]])
    assert done.data[PAGE:] == theirs.read_bytes()[PAGE:len(done.data)]
    assert imgscan_tree(Hive(done.data, "NTUSER.DAT")) == regipy_tree(theirs)


@needs_dirty_hives
def test_open_hive_findings_and_state(corpus: dict[str, Path]) -> None:
    primary = corpus[SYSTEM_B[0]].read_bytes()
    logs = [(n, corpus[n].read_bytes()) for n in SYSTEM_B[1:]]
    hive, state = regf_log.open_hive(primary, "SYSTEM", logs)
    assert [(f.id, f.severity) for f in hive.findings] == [("hive-replayed", "info")]
    message = hive.findings[0].message
    assert "315 dirty pages" in message and "2107 to 2130" in message and "1622 != 1621" in message
    assert state == {"dirty": True, "replayed": True, "logs": list(SYSTEM_B[1:]),
                     "format": "HvLE", "logs_replayed": list(SYSTEM_B[1:]), "log_entries": 24,
                     "pages": 315, "sequence": [2107, 2130], "stopped": None}
    # no log: the dirty warning stays and says why nothing was replayed
    hive, state = regf_log.open_hive(primary, "SYSTEM")
    assert [(f.id, f.severity) for f in hive.findings] == [("dirty", "warning")]
    assert "no usable transaction log (no .LOG1 or .LOG2 file)" in hive.findings[0].message
    assert state["dirty"] and not state["replayed"]
    # a clean hive is read as it is, whatever the logs hold
    hive, state = regf_log.open_hive(make_dirty(primary, 1622, 1622), "SYSTEM", logs)
    assert hive.findings == [] and state == {"dirty": False, "replayed": False,
                                             "logs": list(SYSTEM_B[1:])}
    assert value_of(hive, "MountedDevices", "\\DosDevices\\F:") is None


@needs_dirty_hives
def test_the_first_invalid_entry_stops_the_replay(corpus: dict[str, Path]) -> None:
    """A flipped byte in LOG2's third entry: LOG1's 4 entries and LOG2's first 2 apply."""
    log2 = bytearray(corpus[SYSTEM_B[2]].read_bytes())
    third = 348160                              # LOG2's entries: 512, 12288, 348160, ...
    log2[third + 4096] ^= 0xFF
    logs = [(SYSTEM_B[1], corpus[SYSTEM_B[1]].read_bytes()), (SYSTEM_B[2], bytes(log2))]
    done, _ = regf_log.replay(corpus[SYSTEM_B[0]].read_bytes(), logs)
    assert done is not None and (done.entries, done.last_sequence) == (6, 2112)
    assert done.stopped == (f"{SYSTEM_B[2]}: HvLE log entry at offset {third}: Hash-1 "
                            f"0x{struct.unpack_from('<Q', log2, third + 24)[0]:016x} does not "
                            f"match 0x{marvin32(bytes(log2[third + 40:third + 12288])):016x} "
                            f"(Marvin32 of its pages)")
    # LOG1 torn at its first entry: LOG2 cannot follow a gap, nothing is replayed
    log1 = bytearray(corpus[SYSTEM_B[1]].read_bytes())
    log1[520] ^= 1
    logs = [(SYSTEM_B[1], bytes(log1)), (SYSTEM_B[2], corpus[SYSTEM_B[2]].read_bytes())]
    done, problems = regf_log.replay(corpus[SYSTEM_B[0]].read_bytes(), logs)
    assert done is None and "Hash-2" in problems[-1]
    hive, state = regf_log.open_hive(corpus[SYSTEM_B[0]].read_bytes(), "SYSTEM", logs)
    assert hive.dirty and state["unusable_logs"] == problems
    assert "no usable transaction log" in hive.findings[-1].message


@needs_dirty_hives
def test_logs_out_of_order_and_with_a_gap(corpus: dict[str, Path]) -> None:
    primary = corpus[SYSTEM_B[0]].read_bytes()
    log1, log2 = (corpus[n].read_bytes() for n in SYSTEM_B[1:])
    done, _ = regf_log.replay(primary, [("b", log2), ("a", log1)])
    assert done is not None and done.logs == ["a", "b"] and done.entries == 24
    # LOG1 missing: LOG2 alone (2111-2130) follows the primary's 1621 with a gap, which
    # entries "at or after" the secondary sequence number allow; LOG1 alone stops at 2110
    done, _ = regf_log.replay(primary, [("b", log2)])
    assert done is not None and done.first_sequence == 2111
    # LOG2 cut after its first entry, then LOG1: no gap inside what is applied
    done, _ = regf_log.replay(primary, [("a", log1), ("b", log2[:12288])])
    assert done is not None and done.last_sequence == 2111


# -- hives made dirty on purpose (hivexregedit writes both states) ------------------------

@needs_regedit
@pytest.mark.skipif(not (HIVES / "minimal").is_file(), reason=f"{HIVES}/minimal is absent")
@pytest.mark.parametrize("layout", ["HvLE, one log", "HvLE, LOG1 then LOG2", "DIRT"])
def test_deliberately_dirty_hive(tmp_path: Path, layout: str) -> None:
    old_path, new_path = hive_states(HIVES / "minimal", tmp_path)
    old, new = old_path.read_bytes(), new_path.read_bytes()
    pages = dirty_pages(old, new)
    assert pages, "hivexregedit changed nothing"
    seq = struct.unpack_from("<I", old, 8)[0] + 1
    dirty = tmp_path / "SYSTEM"
    dirty.write_bytes(make_dirty(old, seq, seq - 1, len(new)))
    if layout == "DIRT":
        logs = [("SYSTEM.LOG1", dirt_log(old, new, seq))]
    elif layout == "HvLE, one log":
        logs = [("SYSTEM.LOG1", hvle_log(new, [pages[:3], pages[3:]], seq, 65536))]
    else:
        half = len(pages) // 2
        logs = [("SYSTEM.LOG1", hvle_log(new, [pages[:half]], seq)),
                ("SYSTEM.LOG2", hvle_log(new, [pages[half:]], seq + 1, 65536))]
    for name, data in logs:
        (tmp_path / name).write_bytes(data)
    done, problems = regf_log.replay(dirty.read_bytes(), logs)
    assert done is not None, problems
    assert done.data[PAGE:] == new[PAGE:], "the replay is not the newer hive hivex wrote"
    assert done.pages == (len(dirty_pages(old, new, 512)) if layout == "DIRT" else len(pages))
    theirs = regipy_replay(tmp_path, dirty, *(tmp_path / n for n, _ in logs))
    assert theirs.read_bytes()[PAGE:] == new[PAGE:]
    tree = imgscan_tree(Hive(done.data, "SYSTEM"))
    assert tree == regipy_tree(theirs) == imgscan_tree(Hive(new, "new"))
    services = "CONTROLSET001\\SERVICES"
    assert f"{services}\\VIOSTOR39" in tree and f"{services}\\SVC007" not in tree
    assert tree[f"{services}\\SVC001"]["START"] == ("REG_DWORD", 4)


# -- malformed logs: a reason, never a crash -------------------------------------------------

def _entry(fields: dict[str, Any], body: bytes) -> bytes:
    """An HvLE entry with the given header fields and correct hashes over ``body``."""
    head = struct.pack("<4sIIIII", b"HvLE", fields.get("size", 40 + len(body)), 0,
                       fields.get("seq", 5), fields.get("bins", 4096), fields.get("count", 1))
    hash_1 = marvin32(body)
    return head + struct.pack("<QQ", hash_1, marvin32(head + struct.pack("<Q", hash_1))) + body


@pytest.mark.skipif(not (HIVES / "minimal").is_file(), reason=f"{HIVES}/minimal is absent")
@pytest.mark.parametrize(("fields", "body", "why"), [
    ({"size": 1000}, b"", "size 1000 is not a multiple of 512"),
    ({"count": 100}, bytes(472), "100 dirty page references overrun"),
    ({"bins": 4095}, bytes(472), "hive bins data size 4095 is not a non-zero multiple"),
    ({}, struct.pack("<II", 4096, 4096) + bytes(464), "is not inside the 4096-byte hive bins"),
    ({}, struct.pack("<II", 0, 4096) + bytes(464), "its dirty pages overrun"),
    ({}, struct.pack("<II", 0, 0) + bytes(464), "dirty page of 0 bytes"),
])
def test_malformed_entries(fields: dict[str, Any], body: bytes, why: str) -> None:
    minimal = (HIVES / "minimal").read_bytes()
    seq = struct.unpack_from("<I", minimal, 8)[0]
    primary = make_dirty(minimal, seq + 1, seq)
    from helpers.regf_logs import log_base_block

    log = log_base_block(minimal, 6, seq) + _entry({"seq": seq, **fields}, body)
    done, problems = regf_log.replay(primary, [("SYSTEM.LOG1", log)])
    assert done is None and why in problems[-1], problems
    hive, _ = regf_log.open_hive(primary, "SYSTEM", [("SYSTEM.LOG1", log)])
    assert why in hive.findings[-1].message


def _grown(base: bytes, hive_bins: int) -> bytes:
    """An old log's base block claiming ``hive_bins`` bytes of hive bins."""
    from helpers.regf_logs import xor_checksum

    out = bytearray(base)
    struct.pack_into("<I", out, 40, hive_bins)
    struct.pack_into("<I", out, 508, xor_checksum(out))
    return bytes(out)


@pytest.mark.skipif(not (HIVES / "minimal").is_file(), reason=f"{HIVES}/minimal is absent")
def test_malformed_log_files() -> None:
    from helpers.regf_logs import log_base_block

    minimal = (HIVES / "minimal").read_bytes()
    seq = struct.unpack_from("<I", minimal, 8)[0]
    primary = make_dirty(minimal, seq + 1, seq)
    good = log_base_block(minimal, 6, seq)
    bad_sum = good[:508] + b"\0\0\0\0"
    cases = {
        b"": "shorter than its base block",
        b"regX" + good[4:]: "is not b'regf'",
        log_base_block(minimal, 0, seq): "file type 0 is not a transaction log",
        bad_sum: "checksum",
        good: f"no log entry numbered {seq} or later",
        log_base_block(minimal, 1, seq) + b"DIRX": "no DIRT dirty vector",
        log_base_block(minimal, 1, seq) + b"DIRT\xff": "run past the end",
        (_grown(log_base_block(minimal, 1, seq), 1 << 20) + b"DIRT").ljust(1024, b"\0"):
            "claim a hive of",
    }
    for log, why in cases.items():
        done, problems = regf_log.replay(primary, [("L", log)])
        assert done is None and any(why in p for p in problems), (why, problems)
    # an old log not written whole, or for another write of the hive
    torn = bytearray(log_base_block(minimal, 1, seq))
    struct.pack_into("<I", torn, 4, seq + 1)
    from helpers.regf_logs import xor_checksum
    struct.pack_into("<I", torn, 508, xor_checksum(torn))
    done, problems = regf_log.replay(primary, [("L", bytes(torn))])
    assert done is None and "not written whole" in problems[-1]
    other = bytearray(log_base_block(minimal, 1, seq))
    struct.pack_into("<Q", other, 12, 1)
    struct.pack_into("<I", other, 508, xor_checksum(other))
    done, problems = regf_log.replay(primary, [("L", bytes(other))])
    assert done is None and "belongs to another write" in problems[-1]

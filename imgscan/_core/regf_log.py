"""Registry transaction logs (``NAME.LOG1``, ``NAME.LOG2``), replayed in memory.

Spec: Maxim Suhanov, "Windows registry file format specification" (msuhanov/regf),
sections "Format of transaction log files" (old format: a base block, the ``DIRT``
dirty vector and 512-byte dirty pages; new format: a base block and ``HvLE`` log
entries), "Dirty state of a hive" and "Multiple transaction log files"; libregf's
"Windows NT Registry File (REGF) format" for the same structures. The layouts are
declared in :mod:`imgscan._core.c_regf`.

Since Windows 8.1 the registry writes every change to a log first and the primary
file lazily: a disk exported after a crash, a forced power-off or from a running VM
holds a *dirty* primary (its base block's sequence numbers differ, or its checksum
is wrong) whose latest pages are only in the logs. Reading the primary alone gives
stale services, drivers, network and account facts, so a dirty hive is replayed the
way Windows recovers it when it loads the hive, into a new buffer: nothing is
written back. The rules, each a small function below:

- a clean hive is read as it is, whatever its logs hold (Windows ignores them too);
- a log is usable when its base block (its first sector) has the ``regf``
  signature, a log file type and a right checksum; an old-format log must also
  have been written whole (equal sequence numbers) for this very primary (the same
  last-written time);
- new format: log entries start at the second sector, each on a 512-byte boundary.
  An entry is valid when its signature, size, dirty page references and hive bins
  size hold together and both Marvin32 hashes match; the entries of one file follow
  one another (sequence number + 1), and the first that does not is an old entry
  left from an earlier use of the file, where that file ends. Entries numbered at or
  after the primary's secondary sequence number are applied, LOG1's and LOG2's in
  one ascending, unbroken sequence; the first invalid entry stops the replay, the
  entries before it staying applied (Suhanov, "Log entries", notes 5-7);
- old format: each bit of the dirty vector stands for a 512-byte page of the hive
  bins; the n-th dirty page of the log goes to ``4096 + 512 * bit`` of the n-th set
  bit. Of several applicable old logs the one with the highest sequence is used.

Hostile logs are bounded: every offset and size is checked against the entry and
the file holding it before a byte is copied, and the hive bins size a log claims
(the replayed hive's size) against ``limits.REGF_LOG_MAX_HIVE_BINS`` and against
what the primary and its logs hold together (a hive grows only by logged pages).
"""

from __future__ import annotations

from imgscan import limits
from imgscan.errors import ImageError
from imgscan.findings import DIRTY, HIVE_REPLAYED, Finding, finding_id

from .c_regf import (
    BASE_BLOCK,
    DIRT_SIGNATURE,
    DIRTY_PAGE_REFERENCE,
    DIRTY_PAGE_SIZE,
    FILE_TYPE_LOG_NEW,
    FILE_TYPE_PRIMARY,
    FILE_TYPES_LOG_OLD,
    HBIN_ALIGNMENT,
    HVLE_SIGNATURE,
    LOG_ENTRY,
    LOG_ENTRY_HASH_2_SPAN,
    LOG_SECTOR,
    REGF_SIGNATURE,
)
from .marvin32 import marvin32
from .regf import Hive, regf_checksum

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    #: A log as read from the guest: its name (for messages) and its bytes.
    Log = tuple[str, bytes]

#: Size of a primary's base block; the hive bins follow it.
BASE_BLOCK_SIZE = 4096


class Entry:
    """One valid HvLE log entry: where it is and the pages it writes."""

    __slots__ = ("hive_bins", "log", "offset", "pages", "sequence", "size")

    def __init__(self, log: str, offset: int, size: int, sequence: int, hive_bins: int,
                 pages: list[tuple[int, int, int]]) -> None:
        self.log = log
        self.offset = offset
        #: Bytes of the entry in the log file: the next one starts after them.
        self.size = size
        self.sequence = sequence
        self.hive_bins = hive_bins
        #: (offset in the hive bins, offset in the log file, size) per dirty page
        self.pages = pages


class Replay:
    """A replayed hive: its bytes and what the replay did, for findings and facts."""

    __slots__ = ("data", "entries", "first_sequence", "format", "last_sequence", "logs",
                 "page_bytes", "pages", "stopped")

    def __init__(self, data: bytes, fmt: str, logs: list[str], entries: int, pages: int,
                 page_bytes: int, first_sequence: int, last_sequence: int,
                 stopped: str | None) -> None:
        self.data = data
        self.format = fmt
        self.logs = logs
        self.entries = entries
        self.pages = pages
        self.page_bytes = page_bytes
        self.first_sequence = first_sequence
        self.last_sequence = last_sequence
        #: why the replay ended before the logs did (an invalid entry, a gap), or None
        self.stopped = stopped


# -- the dirty state ---------------------------------------------------------------

def checksum_ok(base: bytes) -> bool:
    """Whether a base block's stored checksum is the XOR-32 of its first 508 bytes."""
    return bool(BASE_BLOCK.field(base, "checksum") == regf_checksum(base[:BASE_BLOCK.size]))


def is_dirty(primary: bytes) -> bool:
    """A primary is dirty when its checksum is wrong or its sequence numbers differ
    (Suhanov, "Dirty state of a hive"). Too short or not ``regf``: not a hive, and
    :class:`~imgscan._core.regf.Hive` says so."""
    if len(primary) < BASE_BLOCK.size or primary[:4] != REGF_SIGNATURE:
        return False
    bb = BASE_BLOCK.unpack(primary)
    return bool(bb["primary_sequence"] != bb["secondary_sequence"] or not checksum_ok(primary))


# -- a log's base block ------------------------------------------------------------

def log_base_block(log: bytes, name: str) -> tuple[dict[str, Any] | None, str | None]:
    """The log's base block, or None and why the log is not usable."""
    if len(log) < LOG_SECTOR:
        return None, f"{name}: {len(log)} bytes, shorter than its base block"
    if log[:4] != REGF_SIGNATURE:
        return None, f"{name}: base block signature {log[:4]!r} is not {REGF_SIGNATURE!r}"
    bb = BASE_BLOCK.unpack(log)
    if bb["file_type"] != FILE_TYPE_LOG_NEW and bb["file_type"] not in FILE_TYPES_LOG_OLD:
        return None, f"{name}: file type {bb['file_type']} is not a transaction log"
    if not checksum_ok(log):
        return None, (f"{name}: base block checksum 0x{bb['checksum']:08x} does not match "
                      f"0x{regf_checksum(log[:BASE_BLOCK.size]):08x}")
    return bb, None


def _hive_bins_size(value: int, log: str, offset: int) -> str | None:
    """A hive bins size a log claims: whole 4 KiB blocks, at most the cap (else raises)."""
    limits.enforce(value, "REGF_LOG_MAX_HIVE_BINS", log, "hive bins data size", offset,
                   "hive bins data size")
    if value == 0 or value % HBIN_ALIGNMENT:
        return f"hive bins data size {value} is not a non-zero multiple of {HBIN_ALIGNMENT}"
    return None


def _growth_problem(size: int, primary: bytes, logs: Sequence[Log]) -> str | None:
    """A replayed hive grows only by pages its logs carry: one larger than the primary
    and its logs together is refused before its buffer is made."""
    most = len(primary) + sum(len(data) for _, data in logs)
    if size > most:
        return (f"the logs claim a hive of {size} bytes, more than the {len(primary)}-byte "
                f"primary and its logs hold ({most} bytes)")
    return None


# -- new format: HvLE log entries ---------------------------------------------------

def _entry_problem(log: bytes, name: str, off: int) -> tuple[Entry | None, str | None]:
    """The valid entry at ``off``, or None and what is wrong with it. Its bytes are
    hashed in place (a memoryview), not copied: an entry holds up to megabytes of pages."""
    h = LOG_ENTRY.unpack(log, off)
    size, count = h["size"], h["dirty_pages_count"]
    if size < LOG_ENTRY.size or size % LOG_SECTOR or off + size > len(log):
        return None, (f"size {size} is not a multiple of {LOG_SECTOR} inside the "
                      f"{len(log)}-byte file")
    if LOG_ENTRY.size + count * DIRTY_PAGE_REFERENCE.size > size:
        return None, f"{count} dirty page references overrun the {size}-byte entry"
    bad = _hive_bins_size(h["hive_bins_data_size"], name,
                          off + LOG_ENTRY.offset("hive_bins_data_size"))
    if bad:
        return None, bad
    view = memoryview(log)
    hash_2 = marvin32(view[off:off + LOG_ENTRY_HASH_2_SPAN])
    if hash_2 != h["hash_2"]:
        return None, (f"Hash-2 0x{h['hash_2']:016x} does not match 0x{hash_2:016x} "
                      f"(Marvin32 of its header)")
    hash_1 = marvin32(view[off + LOG_ENTRY.size:off + size])
    if hash_1 != h["hash_1"]:
        return None, (f"Hash-1 0x{h['hash_1']:016x} does not match 0x{hash_1:016x} "
                      f"(Marvin32 of its pages)")
    refs = log[off + LOG_ENTRY.size:off + LOG_ENTRY.size + count * DIRTY_PAGE_REFERENCE.size]
    pos = off + LOG_ENTRY.size + len(refs)
    pages = []
    for page_off, page_size in DIRTY_PAGE_REFERENCE.rows(refs, count):
        if page_size == 0 or page_off % LOG_SECTOR or page_size % LOG_SECTOR \
                or page_off + page_size > h["hive_bins_data_size"]:
            return None, (f"dirty page of {page_size} bytes at hive bins offset {page_off} "
                          f"is not inside the {h['hive_bins_data_size']}-byte hive bins")
        if pos + page_size > off + size:
            return None, f"its dirty pages overrun the {size}-byte entry"
        pages.append((page_off, pos, page_size))
        pos += page_size
    return Entry(name, off, size, h["sequence_number"], h["hive_bins_data_size"], pages), None


def log_entries(log: bytes, name: str) -> tuple[list[Entry], str | None]:
    """The log's run of valid, consecutive entries from the second sector on, and the
    invalid entry that ended it (None when the run ended the normal way: no entry
    signature, the end of the file, or an older entry)."""
    entries: list[Entry] = []
    off = LOG_SECTOR
    while off + LOG_ENTRY.size <= len(log) and log[off:off + 4] == HVLE_SIGNATURE:
        entry, problem = _entry_problem(log, name, off)
        if entry is None:
            return entries, f"{name}: HvLE log entry at offset {off}: {problem}"
        if entries and entry.sequence != entries[-1].sequence + 1:
            break
        entries.append(entry)
        off += entry.size
    return entries, None


def _sequence(runs: list[tuple[int, list[Entry], str | None]], after: int
              ) -> tuple[list[Entry], str | None]:
    """The entries to apply and why the replay stops early, if it does.

    ``runs`` are (the log's base block sequence number, its valid entries, the
    invalid entry that ended them). The logs are taken in the order they were
    started; of each, the entries numbered ``after`` or later, which must continue
    the previous log's without a gap. An invalid entry stops the replay unless its
    log is wholly older than the primary (a stale file's own damage).
    """
    chosen: list[Entry] = []
    for base_sequence, entries, stop in sorted(runs, key=lambda run: run[0]):
        todo = [e for e in entries if e.sequence >= after]
        if todo and chosen and todo[0].sequence != chosen[-1].sequence + 1:
            return chosen, (f"{todo[0].log} continues at sequence number {todo[0].sequence}, "
                            f"not {chosen[-1].sequence + 1}: its entries are not applied")
        chosen.extend(todo)
        if stop and (todo or base_sequence >= after):
            return chosen, stop
    return chosen, None


def _apply_new(primary: bytes, logs: Sequence[Log], bases: dict[str, dict[str, Any]],
               base: bytes) -> tuple[Replay | None, str | None]:
    after = BASE_BLOCK.field(base, "secondary_sequence")
    runs = [(bases[name]["primary_sequence"], *log_entries(data, name))
            for name, data in logs if name in bases]
    chosen, stopped = _sequence(runs, after)
    if not chosen:
        return None, stopped or f"no log entry numbered {after} or later"
    size = BASE_BLOCK_SIZE + max(e.hive_bins for e in chosen)
    too_big = _growth_problem(size, primary, logs)
    if too_big:
        return None, too_big
    buf = bytearray(primary[:max(len(primary), size)].ljust(size, b"\0"))
    buf[:LOG_SECTOR] = base[:LOG_SECTOR]
    data = dict(logs)
    page_bytes = pages = 0
    for e in chosen:
        log = data[e.log]
        for hive_off, pos, page_size in e.pages:
            at = BASE_BLOCK_SIZE + hive_off
            buf[at:at + page_size] = log[pos:pos + page_size]
            pages += 1
            page_bytes += page_size
    last = chosen[-1]
    _seal(buf, last.sequence, last.hive_bins)
    used = list(dict.fromkeys(e.log for e in chosen))
    return Replay(bytes(buf), "HvLE", used, len(chosen), pages, page_bytes,
                  chosen[0].sequence, last.sequence, stopped), None


# -- old format: the DIRT vector ---------------------------------------------------

def _apply_old(primary: bytes, logs: Sequence[Log], bases: dict[str, dict[str, Any]],
               base: bytes) -> tuple[Replay | None, str | None]:
    written = BASE_BLOCK.field(base, "last_written")
    problems = []
    usable = []
    for name, data in logs:
        bb = bases.get(name)
        if bb is None:
            continue
        if bb["primary_sequence"] != bb["secondary_sequence"]:
            problems.append(f"{name}: sequence numbers {bb['primary_sequence']} != "
                            f"{bb['secondary_sequence']}: the log was not written whole")
        elif checksum_ok(primary) and bb["last_written"] != written:
            problems.append(f"{name}: last written time {bb['last_written']} is not the "
                            f"hive's {written}: the log belongs to another write")
        else:
            usable.append((bb["secondary_sequence"], name, data, bb))
    if not usable:
        return None, "; ".join(problems) or None
    _, name, log, bb = max(usable)
    hive_bins = bb["hive_bins_data_size"]
    bad = _hive_bins_size(hive_bins, name, BASE_BLOCK.offset("hive_bins_data_size"))
    if bad:
        return None, f"{name}: {bad}"
    bitmap_bytes = hive_bins // DIRTY_PAGE_SIZE // 8
    start = LOG_SECTOR + len(DIRT_SIGNATURE)
    if log[LOG_SECTOR:start] != DIRT_SIGNATURE or start + bitmap_bytes > len(log):
        return None, f"{name}: no DIRT dirty vector of {bitmap_bytes} bytes at offset {LOG_SECTOR}"
    bitmap = int.from_bytes(log[start:start + bitmap_bytes], "little")
    pos = -(-(start + bitmap_bytes) // LOG_SECTOR) * LOG_SECTOR
    count = bitmap.bit_count()
    if pos + count * DIRTY_PAGE_SIZE > len(log):
        return None, (f"{name}: {count} dirty pages from offset {pos} run past the end of "
                      f"the {len(log)}-byte file")
    size = BASE_BLOCK_SIZE + hive_bins
    too_big = _growth_problem(size, primary, [(name, log)])
    if too_big:
        return None, f"{name}: {too_big}"
    buf = bytearray(primary[:max(len(primary), size)].ljust(size, b"\0"))
    buf[:LOG_SECTOR] = base[:LOG_SECTOR]
    while bitmap:
        bit = (bitmap & -bitmap).bit_length() - 1
        bitmap &= bitmap - 1
        at = BASE_BLOCK_SIZE + bit * DIRTY_PAGE_SIZE
        buf[at:at + DIRTY_PAGE_SIZE] = log[pos:pos + DIRTY_PAGE_SIZE]
        pos += DIRTY_PAGE_SIZE
    _seal(buf, bb["secondary_sequence"], hive_bins)
    seq = bb["secondary_sequence"]
    return Replay(bytes(buf), "DIRT", [name], 1, count, count * DIRTY_PAGE_SIZE, seq, seq,
                  None), None


def _seal(buf: bytearray, sequence: int, hive_bins: int) -> None:
    """The recovered base block: a primary (file type 0), both sequence numbers the
    last one applied, the hive bins size the log's, a fresh checksum."""
    for field, value in (("primary_sequence", sequence), ("secondary_sequence", sequence),
                         ("file_type", FILE_TYPE_PRIMARY), ("hive_bins_data_size", hive_bins)):
        at = BASE_BLOCK.offset(field)
        buf[at:at + 4] = value.to_bytes(4, "little")
    at = BASE_BLOCK.offset("checksum")
    buf[at:at + 4] = regf_checksum(bytes(buf[:BASE_BLOCK.size])).to_bytes(4, "little")


# -- the replay ----------------------------------------------------------------------

def replay(primary: bytes, logs: Sequence[Log]) -> tuple[Replay | None, list[str]]:
    """Replay ``logs`` (LOG1 first) onto the dirty ``primary``: the recovered hive, or
    None and why no log could be used. Raises ``LimitExceeded`` for a log claiming a
    hive over the cap."""
    problems: list[str] = []
    bases: dict[str, dict[str, Any]] = {}
    for name, data in logs:
        bb, problem = log_base_block(data, name)
        if bb is None:
            problems.append(problem or name)
        else:
            bases[name] = bb
    # A primary with a wrong checksum takes its base block from the first usable log.
    base = primary[:LOG_SECTOR]
    if not checksum_ok(primary):
        donor = next((data for name, data in logs if name in bases), None)
        if donor is None:
            return None, problems or ["no log"]
        base = donor[:LOG_SECTOR]
    new = [(n, d) for n, d in logs if bases.get(n, {}).get("file_type") == FILE_TYPE_LOG_NEW]
    old = [(n, d) for n, d in logs if bases.get(n, {}).get("file_type") in FILE_TYPES_LOG_OLD]
    for group, apply in ((new, _apply_new), (old, _apply_old)):
        if group:
            done, problem = apply(primary, group, bases, base)
            if done is not None:
                return done, problems
            if problem:
                problems.append(problem)
    return None, problems or ["no log"]


def open_hive(primary: bytes, name: str, logs: Sequence[Log] = ()) -> tuple[Hive, dict[str, Any]]:
    """The hive as Windows would load it, and its log state for the facts.

    A dirty primary is replayed from ``logs`` (``[(name, bytes)]``, LOG1 first, the
    absent ones left out): the hive read is the recovered one and a ``hive-replayed``
    finding (info) says what was applied. A dirty primary with no usable log keeps the
    ``dirty`` warning, which then names why each log could not be used.
    """
    state: dict[str, Any] = {"dirty": is_dirty(primary), "replayed": False,
                             "logs": [n for n, _ in logs]}
    if not state["dirty"]:
        return Hive(primary, name), state
    bb = BASE_BLOCK.unpack(primary)
    why_dirty = []
    if bb["primary_sequence"] != bb["secondary_sequence"]:
        why_dirty.append(f"sequence numbers {bb['primary_sequence']} != "
                         f"{bb['secondary_sequence']}")
    if not checksum_ok(primary):
        why_dirty.append("base block checksum wrong")
    was = ", ".join(why_dirty)
    extra: list[Finding] = []
    try:
        done, problems = replay(primary, logs) if logs else (None, ["no .LOG1 or .LOG2 file"])
    except ImageError as exc:
        done, problems = None, [str(exc)]
        extra.append(Finding(finding_id(exc), "warning",
                             f"{name}: transaction logs not replayed: {exc}"))
    if done is None:
        hive = Hive(primary, name)
        why = "; ".join(problems)
        hive.findings[:] = [f for f in hive.findings if f.id != DIRTY] + [Finding(
            DIRTY, "warning",
            f"{name}: dirty hive ({was}) and no usable transaction log ({why}): the primary "
            f"alone is read, its latest changes are missing and facts from it may be stale")
        ] + extra
        state["unusable_logs"] = problems
        return hive, state
    hive = Hive(done.data, name)
    stopped = f"; replay stopped early: {done.stopped}" if done.stopped else ""
    hive.findings.append(Finding(
        HIVE_REPLAYED, "info",
        f"{name}: dirty hive ({was}) replayed in memory from {', '.join(done.logs)} "
        f"({done.format}): {done.entries} log entr{'y' if done.entries == 1 else 'ies'}, "
        f"sequence {done.first_sequence} to {done.last_sequence}, {done.pages} dirty pages "
        f"({done.page_bytes} bytes) recovered{stopped}"))
    state.update(replayed=True, format=done.format, logs_replayed=done.logs,
                 log_entries=done.entries, pages=done.pages,
                 sequence=[done.first_sequence, done.last_sequence], stopped=done.stopped)
    return hive, state

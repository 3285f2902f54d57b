"""What ``imgscan scan`` prints: a line per image, a progress bar, the summary.

Lines go to stdout (text, or JSON Lines with ``--json``); the progress bar
and, with ``--json``, the summary go to stderr, so stdout stays one record
per line for a pipe. The bar is drawn only when stderr is a terminal, and
when stdout is that terminal too only the images that need a look (errors,
failed or warned verdicts) get a line above it; the summary counts the rest.
"""

from __future__ import annotations

import time

from ..errors import error_object_of
from ..image import SCHEMA_VERSION
from ..units import human_size
from ..vocabulary import VIOLATIONS
from . import KeptLines
from .json import dumps, each_check

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from imgscan.bulk.result import ScanResult

#: Seconds between two redraws of the progress bar.
REDRAW_INTERVAL = 0.1
#: The terminal control sequence that erases the current line.
CLEAR_LINE = "\r\033[K"


def scan_object(result: ScanResult) -> dict[str, Any]:
    """The ``scan --json`` line of one result: the contract's check object (the info
    object without a profile, the CLI's error object for an error) plus ``scan``
    and, when computed, ``fingerprint``."""
    if result.check is not None:
        obj = dict(result.check)
    elif result.info is not None:
        obj = dict(result.info)
    elif result.error is not None:
        obj = error_object_of(result.path, result.error)
    else:       # unchanged, and the catalog recorded neither facts nor an error
        obj = {"schema_version": SCHEMA_VERSION, "path": result.path}
    if result.fingerprint is not None:
        obj["fingerprint"] = {"algorithm": result.fingerprint.algorithm,
                              "digest": result.fingerprint.digest}
    obj["scan"] = {"status": result.status, "elapsed": round(result.elapsed, 6)}
    return obj


#: Control characters shown escaped: a file name holding a newline stays on its line.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


def _shown(path: str) -> str:
    return path if path.isprintable() else path.translate(_CONTROLS)


def _message(result: ScanResult) -> str:
    """The error's message without the path the line already starts with."""
    error = result.error or {}
    message = str(error.get("message", ""))
    return message.removeprefix(f"{result.path}: ")


def scan_line(result: ScanResult) -> str:
    """``PATH  FORMAT  SIZE  VERDICT`` (boot mode without a profile), or the error."""
    path = _shown(result.path)
    unchanged = "  (unchanged)" if result.status == "unchanged" else ""
    if result.error is not None:
        return (f"{path}  error  {result.error['type']}: {_shown(_message(result))}"
                f"{unchanged}")
    if result.info is None:
        return f"{path}  unchanged"
    info = result.info or {}
    size = human_size(info.get("virtual_size")).split(" (")[0]
    judged = (_judged(result.check) if result.check is not None
              else f"boot {info.get('boot_mode')}")
    fp = f"  {result.fingerprint.digest}" if result.fingerprint is not None else ""
    return f"{path}  {info.get('format')}  {size}  {judged}{fp}{unchanged}"


def _judged(check: dict[str, Any]) -> str:
    """``verdict fail: rule, rule; warn: rule``: the verdict and the rules behind it,
    so that a line says why without a second command; with several profiles, the
    worst verdict, then each profile's (``aws-vmimport fail: rule``)."""
    checks = each_check(check)
    parts = [f"verdict {check['verdict']}"]
    for one in checks:
        name = f"{one['profile']} " if len(checks) > 1 else ""
        if len(checks) > 1 and one["verdict"] == "pass":
            parts.append(f"{name}pass")
        for status in VIOLATIONS:
            ids = [r["id"] for r in one.get("rules") or [] if r.get("status") == status]
            if ids:
                parts.append(f"{name}{status}: {', '.join(ids)}")
    return "; ".join(parts)


class ScanReport:
    """Renders a scan as its results arrive; :meth:`finish` prints the summary."""

    def __init__(self, out: TextIO, err: TextIO, as_json: bool) -> None:
        self.out = out
        self.err = err
        self.as_json = as_json
        self.bar = err.isatty()
        #: Only problem lines when the bar shares the terminal with stdout.
        self.quiet = self.bar and out.isatty() and not as_json
        self.started = time.monotonic()
        self._drawn = 0.0
        self._bar_visible = False
        self.images = 0
        self.read = 0
        self.unchanged = 0
        self.verdicts: dict[str, int] = {}
        #: Images per rule that failed them: what to fix first across a library.
        self.failed_rules: dict[str, int] = {}
        #: Images by their (format, boot mode) pair: the summary's two counts.
        self._facts: dict[tuple[str, str], int] = {}
        self.errors: dict[str, int] = {}
        #: Lines not written yet (without the bar): :meth:`flush` writes them at once.
        self._kept = KeptLines(out)

    def add(self, result: ScanResult) -> None:
        # Run once an image in the process that also reads the workers' answers, beside
        # the workers on the cores: attributes read once, the two counts of an image's
        # facts one count of their pair (:meth:`_facts_counts`).
        self.images += 1
        status = result.status
        if status == "scanned":
            self.read += 1
        elif status == "unchanged":
            self.unchanged += 1
        # An unchanged file carries what the catalog recorded: its verdict and error
        # still count, so a rescan's summary and exit status tell the whole library.
        error = result.error
        if error is not None:
            _count(self.errors, str(error["type"]))
        info = result.info
        if info is not None:
            facts = (str(info.get("format")), str(info.get("boot_mode")))
            self._facts[facts] = self._facts.get(facts, 0) + 1
        check = result.check
        verdict = None
        if check is not None:
            verdict = str(check["verdict"])
            _count(self.verdicts, verdict)
            # A rule failed by several profiles counts once for the image.
            failed = dict.fromkeys(str(rule["id"]) for one in each_check(check)
                                   for rule in one.get("rules") or []
                                   if rule.get("status") == "fail")
            for rule_id in failed:
                _count(self.failed_rules, rule_id)
        if self.as_json:
            # rendered: the line its worker wrote (ScanRun.for_report)
            self._print(result.rendered if result.rendered is not None
                        else dumps(scan_object(result)))
        elif not self.quiet or error is not None or verdict in VIOLATIONS:
            self._print(scan_line(result))

    def _facts_counts(self, member: int) -> dict[str, int]:
        """Images by format (``member`` 0) or by boot mode (1), from the pairs counted."""
        counts: dict[str, int] = {}
        for facts, n in self._facts.items():
            counts[facts[member]] = counts.get(facts[member], 0) + n
        return counts

    def _print(self, line: str) -> None:
        if not self.bar:
            # Kept until the scan waits for its workers (:meth:`flush`): one write for
            # the lines that arrive together, where a write a line is a system call
            # each when stdout is unbuffered (benchmarks/README.md, issue 18).
            self._kept.keep(line)
            return
        if self._bar_visible:
            self._clear_bar()
        self.out.write(line + "\n")
        self.out.flush()

    def flush(self) -> None:
        """Write the lines kept so far (see :meth:`_print`): called when the scan waits
        for results (:attr:`imgscan.bulk.runner.ScanRun.waiting`) and by :meth:`finish`,
        so a line is never held behind a slow image."""
        self._kept.write()

    def progress(self, skipped: int) -> None:
        """Redraw the progress line (at most every REDRAW_INTERVAL) when stderr is a
        terminal. The walk runs ahead of the workers only by a few batches (memory stays
        flat on a library of millions of files), so the line counts, it does not guess
        a total."""
        if not self.bar:
            return
        now = time.monotonic()
        if now - self._drawn < REDRAW_INTERVAL:
            return
        self._drawn = now
        rate = self.images / max(now - self.started, 1e-9)
        spin = "|/-\\"[int(now / REDRAW_INTERVAL) % 4]
        self.err.write(f"{CLEAR_LINE}{spin} {self.images} images "
                       f"({sum(self.errors.values())} errors), {skipped} skipped, "
                       f"{rate:.0f} images/s")
        self.err.flush()
        self._bar_visible = True

    def _clear_bar(self) -> None:
        self.err.write(CLEAR_LINE)
        self.err.flush()
        self._bar_visible = False

    def finish(self, skipped: int, interrupted: bool) -> None:
        """The summary: on stdout, or stderr with ``--json`` (stdout stays JSON Lines)."""
        self.flush()
        if self._bar_visible:
            self._clear_bar()
        elapsed = time.monotonic() - self.started
        rate = self.images / elapsed if elapsed > 0 else 0.0
        lines = [f"{'interrupted after' if interrupted else 'scanned'} {self.images} images "
                 f"in {elapsed:.2f} s ({rate:.0f} images/s): {self.read} read, "
                 f"{sum(self.errors.values())} errors, {self.unchanged} unchanged; "
                 f"{skipped} files skipped (not images)"]
        for title, counts in (("verdicts", self.verdicts), ("failed rules", self.failed_rules),
                              ("formats", self._facts_counts(0)),
                              ("boot modes", self._facts_counts(1)),
                              ("errors", self.errors)):
            if counts:
                lines.append(f"  {title}: " + ", ".join(
                    f"{name} {n}" for name, n in sorted(counts.items(),
                                                        key=lambda kv: (-kv[1], kv[0]))))
        print("\n".join(lines), file=self.err if self.as_json else self.out)

    @property
    def failed(self) -> bool:
        return bool(self.verdicts.get("fail"))


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1

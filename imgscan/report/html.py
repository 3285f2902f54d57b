"""``imgscan report`` and ``imgscan check --html``: one self-contained HTML page.

The page is for the people who act on a scan: verdict counts, the rules that
block the most images, what the library holds (formats, boot modes, guest
OSes, virtual sizes), the scan history, duplicates, and one table row per
image whose detail holds its facts, findings and every rule with status,
message, evidence and remedy, grouped by what the owner must change.

Self-contained: the style sheet, the script and the charts are inline; the
page requests nothing. It reads without JavaScript: the tables and charts are
HTML and SVG, and a bar links to the image table filtered by CSS alone (the
link's target is an empty element before the table, and ``:target ~`` rules
show only the rows of that class, see :func:`_filter_css`); the script only
adds sorting, a text filter and folding. Printable and narrow-window friendly
through the style sheet.

Escaping: every string an image supplies (paths, labels, registry values,
hostnames, messages quoting them) reaches the page through Jinja2 with
autoescape on, never through string formatting; nothing from an image goes
into the script or the style sheet (they name rules and details by index).
Jinja2 is imported here only, and this module only by the two commands that
write HTML: ``info`` and ``check`` without ``--html`` never load it.

Charts are SVG written by the template from the counts (horizontal bars: a
rect and two texts each): a plotting library would add a large dependency for
that, write bigger files and hide the text alternatives we need.

Size and speed: the detail of an image is shared by its copies. A library is
mostly copies of a few images (one base image under many names) whose info and
check objects differ in the path alone; their facts, findings and rule results
are parsed and written once per distinct content
(:meth:`CatalogQueries.report_rows`, ``detail``) and linked from each row,
which the script unfolds in place. The image table has a fixed layout and its
rows no optional end tags: 10,000 rows make a page of a few MiB that Chromium
lays out once, not once per batch of rows parsed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

import jinja2
import markupsafe

from ..policy.rules import RULES
from ..units import human_size
from ..version import __version__
from ..vocabulary import STATUSES, status_rank
from .text import info_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

#: Upper bounds of the virtual-size classes (bytes) and their labels; the last is open.
SIZE_CLASSES = ((1 << 30, "< 1 GiB"), (10 << 30, "1-10 GiB"), (40 << 30, "10-40 GiB"),
                (100 << 30, "40-100 GiB"), (1 << 40, "100 GiB-1 TiB"), (None, ">= 1 TiB"))
#: What the owner of an image changes for a rule, by the rules module that holds it.
SUBJECTS = {
    "container": "The image file (container format, encryption, backing files)",
    "disk": "The disk (size, partitions, boot mode)",
    "windows": "The Windows installation",
    "linux": "The Linux installation",
    "storage": "Where the file is uploaded",
}
OTHER_SUBJECT = "Other rules"
#: Outcomes of an image in the table, worst first: a verdict, or why there is none.
OUTCOMES = ("error", "fail", "warn", "unchecked", "pass")
#: A symbol beside each outcome and rule status, so that colour never carries it alone.
SYMBOLS = {"error": "\u2298", "fail": "\u2717", "warn": "!", "unknown": "?",
           "manual": "\u270e", "unchecked": "\u2013", "pass": "\u2713", "missing": "\u2205"}
#: Members of a same-content group, and near-duplicate pairs, listed by name; the
#: rest are counted (a group links to the table filtered to all its images).
MEMBERS_SHOWN = 5
PAIRS_SHOWN = 100


@dataclass(slots=True)
class Detail:
    """Facts, findings and rule results shared by the images of one content."""

    n: int
    #: Images sharing it, and those of them present (not missing: the counts' images).
    count: int = 0
    present: int = 0
    os: str | None = None
    facts: list[tuple[str, str]] = field(default_factory=list)
    findings: list[Mapping[str, Any]] = field(default_factory=list)
    profile: str | None = None
    verdict: str | None = None
    #: (subject title, its rules worst first), the subjects with a failed rule first.
    groups: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    #: The rules that failed, by id (the table's "failed rules"), and the row classes
    #: naming them for the filters (``" f0 f3"``, set by :meth:`Report.render`).
    failed: list[str] = field(default_factory=list)
    classes: str = ""


@dataclass(slots=True)
class Row:
    """One image of the table; with several profiles (``check --html --profile
    a,b``), one image judged by one profile."""

    n: int
    path: str
    status: str
    outcome: str
    format: str | None
    virtual_size: int | None
    size: int | None
    boot_mode: str | None
    error: dict[str, Any] | None
    detail: Detail | None
    #: The same-content group the image belongs to (its index), if any.
    group: int | None = None

    @property
    def profile(self) -> str | None:
        return self.detail.profile if self.detail else None


class Report:
    """The page's content, gathered from rows (see :meth:`add`), then rendered."""

    def __init__(self, title: str, source: str) -> None:
        self.title = title
        self.source = source
        self.rows: list[Row] = []
        self.details: dict[str, Detail] = {}
        self.by_status: Counter[str] = Counter()
        self.by_verdict: Counter[str] = Counter()
        self.by_format: Counter[str] = Counter()
        self.by_boot_mode: Counter[str] = Counter()
        self.by_os: Counter[str] = Counter()
        self.by_size: Counter[str] = Counter()
        self.errors_by_type: Counter[str] = Counter()
        self.history: list[dict[str, Any]] = []
        self.duplicates: dict[str, Any] | None = None
        self.filters: list[str] = []
        self.fingerprinted = 0
        #: The images (paths) of the rows: a row per profile repeats one. The counts by
        #: status and of the library are of images; those by verdict, of judgements.
        self.images: set[str] = set()
        self.profiles: set[str] = set()

    def add(self, row: Mapping[str, Any]) -> None:
        """One image, or one image's judgement by one more profile: the columns of
        :meth:`CatalogQueries.report_rows`."""
        status = row["status"]
        first = row["path"] not in self.images
        self.images.add(row["path"])
        if first:
            self.by_status[status] += 1
        text = row["detail"]
        detail = None
        if text is not None:
            detail = self.details.get(text)
            if detail is None:
                info, check = json.loads(text)
                detail = self.details[text] = _make_detail(len(self.details), info, check)
            detail.count += 1
        error = None
        if row["error_type"] is not None:
            outcome = "error"
            error = {"type": row["error_type"], "structure": row["error_structure"],
                     "offset": row["error_offset"], "message": row["error_message"]}
        else:
            outcome = row["verdict"] or "unchecked"
        fmt = row["format"]
        if detail is not None and detail.profile:
            self.profiles.add(detail.profile)
        if status == "scanned":
            self.by_verdict[outcome] += 1
        if status == "scanned" and first:
            self.by_format[fmt or "unknown"] += 1
            self.by_boot_mode[row["boot_mode"] or "unknown"] += 1
            self.by_os[(detail and detail.os) or "none found"] += 1
            self.by_size[_size_class(row["virtual_size"])] += 1
        elif status == "error" and first:
            self.errors_by_type[row["error_type"] or "unknown"] += 1
        if detail is not None and status != "missing":
            detail.present += 1
        if row["fingerprint"] and first:
            self.fingerprinted += 1
        if fmt and row["subformat"]:
            fmt = f"{fmt} {row['subformat']}"
        self.rows.append(Row(len(self.rows), row["path"], status, outcome, fmt,
                             row["virtual_size"], row["size"], row["boot_mode"], error,
                             detail))

    def rules(self) -> dict[str, Counter[str]]:
        """Each rule id's results by status over the images present (missing ones are
        history), as ``catalog stats`` counts them."""
        rules: dict[str, Counter[str]] = {}
        for detail in self.details.values():
            if detail.present:
                for _, results in detail.groups:
                    for rule in results:
                        rules.setdefault(rule["id"], Counter())[rule["status"]] += \
                            detail.present
        return rules

    def render(self) -> str:
        """The page, as one string."""
        env = jinja2.Environment(
            loader=jinja2.PackageLoader("imgscan.report", "templates"),
            autoescape=True, trim_blocks=True, lstrip_blocks=True,
            undefined=jinja2.StrictUndefined, bytecode_cache=_bytecode_cache())
        env.filters["size"] = _short_size
        env.filters["value"] = _value
        rules = self.rules()
        rule_ids = sorted(rules, key=lambda r: (-rules[r]["fail"], r))
        for detail in self.details.values():  # a rule failed by missing images only
            rule_ids += [r for r in detail.failed if r not in rules and r not in rule_ids]
        rule_index = {r: i for i, r in enumerate(rule_ids)}
        for detail in self.details.values():
            detail.classes = "".join(f" f{rule_index[r]}" for r in detail.failed)
        groups = (self.duplicates or {}).get("groups", [])
        row_of = {row.path: row for row in self.rows}
        for k, group in enumerate(groups):
            for member in group["images"]:
                if member["path"] in row_of:
                    row_of[member["path"]].group = k
        style = _resource("report.css") + _filter_css(len(rule_ids), len(groups)) \
            + f".scroll.rows{{contain-intrinsic-size:auto {2 * len(self.rows) + 4}em}}\n"
        script = _resource("report.js")
        charts = {
            "rules": [(r, rules[r]["fail"], f"#f{i}", "c-fail")
                      for i, r in enumerate(rule_ids) if r in rules and rules[r]["fail"]],
            "format": _items(self.by_format), "boot": _items(self.by_boot_mode),
            "os": _items(self.by_os),
            "size": [(label, self.by_size[label], None, "")
                     for label in [*(label for _, label in SIZE_CLASSES), "unknown"]
                     if self.by_size[label]],
        }
        return env.get_template("report.html.j2").render(
            r=self, rules=rules, rule_ids=rule_ids, rule_index=rule_index,
            statuses=STATUSES, outcomes=OUTCOMES, symbols=SYMBOLS, charts=charts,
            summaries={r: RULES[r].summary for r in rule_ids if r in RULES},
            details=sorted(self.details.values(), key=lambda d: d.n),
            row_of={path: row.n for path, row in row_of.items()},
            groups=groups, members_shown=MEMBERS_SHOWN, pairs_shown=PAIRS_SHOWN,
            style=markupsafe.Markup(style), style_hash=_csp_hash(style),
            script=markupsafe.Markup(script), script_hash=_csp_hash(script),
            version=__version__,
            generated=datetime.now(UTC).isoformat(timespec="seconds"))


class _BytecodeCache(jinja2.FileSystemBytecodeCache):
    """Jinja2's cache of compiled templates, in its own directory for this user (made
    0700 and checked to be so by Jinja2, under the temporary directory): compiling
    the template costs a report a tenth of a second of CPU, every time. The cache is
    keyed by the template's text, so a changed template is compiled again. One that
    cannot be written (full, read-only) is no cache, never an error."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return _BytecodeCache()
    except (OSError, RuntimeError):     # no directory of this user's can be made
        return None


def _resource(name: str) -> str:
    return (resources.files("imgscan.report") / "templates" / name).read_text("utf-8")


def _filter_css(rules: int, groups: int) -> str:
    """The rules that filter the image table with no script: following a link to
    ``#v-fail`` (a verdict), ``#f3`` (the fourth rule) or ``#g2`` (the third
    same-content group) targets an empty element before the table, and these hide
    the rows without that class and show the note saying so."""
    names = [f"v-{o}" for o in (*OUTCOMES, "missing")] + [f"f{i}" for i in range(rules)] \
        + [f"g{i}" for i in range(groups)]
    # One rule hides every row while some filter is the target, and one per filter shows
    # its rows: each of those matches only the rows of its class. (A rule per filter
    # hiding the rows *without* its class would be tried on every row, and a page of
    # 10,000 rows would take seconds to style.)
    return ".anchor:target~.scroll tbody tr{display:none}\n" + "".join(
        f"#{n}:target~.scroll tbody tr.{n}{{display:table-row}}"
        f"#{n}:target~.n-{n}{{display:block}}\n" for n in names)


def _csp_hash(text: str) -> str:
    """The Content-Security-Policy source that allows exactly this inline text: an
    element injected by a hostile string could not run or style anything."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def _items(counter: Counter[str]) -> list[tuple[str, int, str | None, str]]:
    """A chart's bars: (label, count, link, colour class), largest first."""
    return [(label, n, None, "") for label, n in counter.most_common()]


def _make_detail(n: int, info: Mapping[str, Any] | None,
                 check: Mapping[str, Any] | None) -> Detail:
    detail = Detail(n)
    if info is not None:
        detail.facts = info_rows(info)
        detail.findings = info.get("findings") or []
        windows, linux = info.get("windows") or {}, info.get("linux") or {}
        detail.os = windows.get("product_name") or linux.get("pretty_name") \
            or linux.get("distro")
    if check is not None:
        detail.profile = check.get("profile")
        detail.verdict = check.get("verdict")
        groups: dict[str, list[dict[str, Any]]] = {}
        for rule in check.get("rules") or []:
            known = RULES.get(rule["id"])
            subject = SUBJECTS.get(known.body.__module__.rpartition(".")[2], OTHER_SUBJECT) \
                if known else OTHER_SUBJECT
            groups.setdefault(subject, []).append(rule)
        order = list(SUBJECTS.values())
        for results in groups.values():
            results.sort(key=lambda r: status_rank(r["status"]))
        detail.groups = sorted(groups.items(), key=lambda g: (
            min(status_rank(r["status"]) for r in g[1]),
            order.index(g[0]) if g[0] in order else len(order)))
        detail.failed = sorted(r["id"] for r in check.get("rules") or []
                               if r["status"] == "fail")
    return detail


def _size_class(n: int | None) -> str:
    if n is None:
        return "unknown"
    for bound, label in SIZE_CLASSES:
        if bound is None or n < bound:
            return label
    raise AssertionError("the last class is open")


def _short_size(n: int | None) -> str:
    return human_size(n).split(" (")[0]


def _value(value: object) -> str:
    """An evidence value as text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def catalog_report(catalog: Any, filters: Any, described: Iterable[str]) -> str:
    """The page of the images of ``catalog`` (a :class:`~imgscan.bulk.catalog.Catalog`)
    that ``filters`` select; ``described``: the filters as the user gave them."""
    report = Report("imgscan report", catalog.path)
    report.filters = list(described)
    with catalog.snapshot():
        for row in catalog.report_rows(filters):
            report.add(row)
        report.history = catalog.history()
        report.duplicates = catalog.duplicates()
    return report.render()


def check_report(checks: Iterable[Mapping[str, Any]],
                 errors: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """The page of the images ``imgscan check`` just judged (``checks``: check objects
    with their info) and of those it could not read (``errors``: path, error member)."""
    report = Report("imgscan check", "imgscan check")
    rows: list[dict[str, Any]] = []
    for check in checks:
        info = check["info"]
        shared_info = {k: v for k, v in info.items() if k != "path"}
        shared_check = {k: v for k, v in check.items() if k not in ("path", "info")}
        rows.append({
            "path": check["path"], "status": "scanned", "format": info["format"],
            "subformat": info.get("subformat"), "virtual_size": info["virtual_size"],
            "size": info["file_size"], "boot_mode": info.get("boot_mode"),
            "verdict": check["verdict"], "error_type": None, "fingerprint": None,
            "detail": json.dumps([shared_info, shared_check])})
    for path, error in errors:
        rows.append({
            "path": path, "status": "error", "format": error.get("format"),
            "subformat": None, "virtual_size": None, "size": None, "boot_mode": None,
            "verdict": None, "error_type": error["type"],
            "error_structure": error.get("structure"), "error_offset": error.get("offset"),
            "error_message": error.get("message"), "fingerprint": None, "detail": None})
    for row in sorted(rows, key=lambda r: str(r["path"])):
        report.add(row)
    return report.render()

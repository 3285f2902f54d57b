"""The HTML report (imgscan/report/html.py), opened in headless Chromium.

A library made with real tools (qemu-img, qemu-io, sfdisk, mkntfs) holds every
verdict (pass, warn, fail, unchecked), unreadable files, a same-content group
and a near-duplicate, the Windows fixture disks, and a path and an NTFS volume
label that carry ``<script>`` and quotes. It is recorded into a catalog in two
scans (one image gone, one new), as the runner records results. ``imgscan
report`` writes the page; Chromium (tests/helpers/browser.py) loads it with no
network and dumps the DOM after the scripts ran. The oracles: ``imgscan
catalog stats --json`` (SQL aggregates over the catalog's tables) for every
count, ``catalog list --json`` for the rows a filter selects, ``imgscan check
--json`` for the rules of ``check --html``, Chromium's NetLog for requests,
Pillow for the screenshot's pixels.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import TESTS, MiB, qemu_create, run_cli, sparse_file
from helpers.browser import chromium, console_errors, needs_chromium, with_script
from helpers.scans import INFO_ONLY, scan_result
from oracles import needs_qemu, needs_sqlite3, qemu_io, run

from imgscan.bulk.catalog import Catalog

pytestmark = [needs_qemu, needs_sqlite3, needs_chromium]

#: A directory and file name whose joined path reads as a script element with quotes.
HOSTILE_DIR = "<script>document.title=\"x'\";<"
HOSTILE_NAME = "script>.raw"
#: An NTFS volume label (at most 32 characters) that is markup with quotes.
HOSTILE_LABEL = "<script>alert(\"x'\")</script>"
#: A profile judging one image ``warn``: the disk-size rule of huawei-ims as a warning.
WARN_PROFILE = """name = "sized"
extends = "safe"
[rules.system-disk-size]
severity = "warn"
min_gib = 40
max_gib = 1024
"""
#: Where ``IMGSCAN_UPDATE_SCREENSHOT=1`` writes the README's screenshot.
README_SHOT = TESTS.parent / "docs" / "report.png"


def _label_disk(path: Path) -> Path:
    """An 8 MiB GPT disk with one NTFS partition labelled :data:`HOSTILE_LABEL`."""
    part = sparse_file(path.with_suffix(".part"), 6 * MiB)
    run("mkntfs", "-F", "-Q", "-q", "-L", HOSTILE_LABEL, part)
    sparse_file(path, 8 * MiB)
    subprocess.run(["sfdisk", "-q", str(path)], check=True, capture_output=True, text=True,
                   input="label: gpt\nstart=2048, size=12288, "
                   "type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n")
    run("dd", f"if={part}", f"of={path}", "bs=1M", "seek=1", "conv=notrunc", "status=none")
    part.unlink()
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory,
            windows_disks: dict[str, Path]) -> dict[str, tuple[Path, str | None]]:
    """name -> (image, profile it is judged by: a name, a TOML file, None for the
    default, INFO_ONLY for none)."""
    if shutil.which("mkntfs") is None or shutil.which("sfdisk") is None:
        pytest.skip("mkntfs (ntfs-3g) or sfdisk (fdisk) not installed")
    lib = tmp_path_factory.mktemp("html-library")
    warn = lib / "sized.toml"
    warn.write_text(WARN_PROFILE)
    base = sparse_file(lib / "base.raw", 8 * MiB)
    qemu_io(base, *(f"write -P {0x11 + i:#x} {i * MiB} {MiB}" for i in range(6)), fmt="raw")
    run("qemu-img", "convert", "-O", "qcow2", base, lib / "base.qcow2")
    run("qemu-img", "convert", "-O", "qcow2", base, lib / "near.qcow2")
    qemu_io(lib / "near.qcow2", "write -P 0x77 0 4k")
    qemu_create(lib / "small.vhd", "2M", fmt="vpc")
    qemu_create(lib / "gone.qcow2", "1M", fmt="qcow2")
    qemu_create(lib / "late.qcow2", "3M", fmt="qcow2")
    (lib / "broken.qcow2").write_bytes((lib / "base.qcow2").read_bytes()[:100])
    (lib / "garbage.vhdx").write_bytes(b"vhdxfile" + bytes(range(256)) * 1200)
    (lib / HOSTILE_DIR).mkdir()
    hostile = _label_disk(lib / HOSTILE_DIR / HOSTILE_NAME)
    images: dict[str, tuple[Path, str | None]] = {
        name: (path, "safe" if name == "bios" else None) for name, path in windows_disks.items()}
    images.update({
        "base.raw": (base, str(warn)), "base.qcow2": (lib / "base.qcow2", None),
        "near.qcow2": (lib / "near.qcow2", INFO_ONLY), "small.vhd": (lib / "small.vhd", None),
        "gone.qcow2": (lib / "gone.qcow2", None), "late.qcow2": (lib / "late.qcow2", "safe"),
        "broken.qcow2": (lib / "broken.qcow2", None),
        "garbage.vhdx": (lib / "garbage.vhdx", None), "hostile": (hostile, None)})
    return images


@pytest.fixture(scope="module")
def catalog(library: dict[str, tuple[Path, str | None]],
            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two scans: the first without late.qcow2, the second without gone.qcow2 (deleted,
    so marked missing)."""
    db = tmp_path_factory.mktemp("html-catalog") / "imgscan.db"
    results = {name: scan_result(path, profile) for name, (path, profile) in library.items()}
    roots = sorted({str(path.parent) for path, _ in library.values()})
    with Catalog(db) as cat:
        for leave_out in ("late.qcow2", "gone.qcow2"):
            if leave_out == "gone.qcow2":
                library["gone.qcow2"][0].unlink()
            scan_id = cat.begin_scan(roots, "huawei-ims")
            for name, result in results.items():
                if name != leave_out:
                    cat.record(result, scan_id)
            cat.finish_scan(scan_id, interrupted=False)
    return db


class Dom(HTMLParser):
    """What the tests read from Chromium's DOM: counts, rule table, chart bars, rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.counts: dict[str, int] = {}
        self.rules: dict[str, dict[str, int]] = {}
        self.bars: dict[str, int] = {}
        self.rows: dict[str, str] = {}        # row id -> path text
        self.verdicts: dict[str, str] = {}    # row id -> its verdict cell's outcome
        self.profiles: dict[str, str] = {}    # row id -> the profile under its verdict
        self.history: dict[int, dict[str, int]] = {}
        self.groups: dict[str, int] = {}       # fingerprint -> images
        self.pairs: list[list[str]] = []
        self._scan: int | None = None
        self.hrefs: list[str] = []
        self.sources: list[str] = []
        self.text: list[str] = []
        self.title = ""
        self._stack: list[tuple[str, dict[str, str | None]]] = []
        self._rule: str | None = None
        self._bar: str | None = None
        self._row: str | None = None
        self._chart: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags[tag] += 1
        if a.get("href") is not None:
            self.hrefs.append(str(a["href"]))
        for name in ("src", "srcset", "data", "poster", "action", "xlink:href"):
            if a.get(name) is not None:
                self.sources.append(f"{tag} {name}={a[name]}")
        if tag == "tr" and a.get("data-rule"):
            self._rule = str(a["data-rule"])
            self.rules[self._rule] = {}
        if tag == "tr" and str(a.get("id") or "").startswith("i"):
            self._row = str(a["id"])
        if self._row and tag == "td" and str(a.get("class")).startswith("s s-"):
            self.verdicts[self._row] = str(a["class"])[4:]
        if tag == "svg":
            self._chart = str(a.get("aria-labelledby") or "")
        if tag == "tr" and a.get("data-pair"):
            self.pairs.append([])
        if tag == "tr" and a.get("data-scan"):
            self._scan = int(str(a["data-scan"]))
            self.history[self._scan] = {}
        if tag not in ("br", "meta", "input", "rect", "link"):
            self._stack.append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            top, _ = self._stack.pop()
            if top == tag:
                break
        if tag == "tr":
            self._rule = self._row = self._scan = None
        if tag == "svg":
            self._chart = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if not self._stack:
            return
        tag, a = self._stack[-1]
        if tag == "title" and self._chart is None and not self.title:
            self.title = data
        if a.get("data-count"):
            self.counts[str(a["data-count"])] = int(data)
        elif self._rule and a.get("data-status"):
            self.rules[self._rule][str(a["data-status"])] = int(data)
        elif self._rule and tag == "a" and self._stack[-2][1].get("data-status"):
            self.rules[self._rule][str(self._stack[-2][1]["data-status"])] = int(data)
        elif a.get("data-group"):
            self.groups[str(a["data-group"])] = int(data)
        elif self.pairs and tag in ("a", "span") and a.get("class") == "path" \
                and any(t == "tr" and "data-pair" in b for t, b in self._stack):
            self.pairs[-1].append(data)
        elif self._scan and a.get("data-k"):
            self.history[self._scan][str(a["data-k"])] = int(data)
        elif self._row and tag == "td" and a.get("class") == "path":
            self.rows[self._row] = data
        elif self._row and tag == "small" and a.get("class") == "profile":
            self.profiles[self._row] = data
        elif self._chart and self._chart.startswith("chart-rules"):
            if tag == "title":
                self._bar = data
            elif tag == "text" and a.get("class") == "num" and self._bar:
                self.bars[self._bar] = int(data)


def sql(db: Path, statement: str) -> list[list[str]]:
    """Rows the sqlite3 command-line tool prints (``|``-separated columns)."""
    return [line.split("|") for line in run("sqlite3", db, statement).splitlines()]


def _stats(db: Path) -> dict[str, object]:
    proc = run_cli("catalog", "stats", "--json", "--catalog", str(db))
    assert proc.returncode == 0, proc.stderr
    stats: dict[str, object] = json.loads(proc.stdout)
    return stats


def _listed(db: Path, *filters: str) -> set[str]:
    proc = run_cli("catalog", "list", "--json", "--catalog", str(db), *filters)
    assert proc.returncode == 0, proc.stderr
    return {json.loads(line)["path"] for line in proc.stdout.splitlines()}


def _report(db: Path, out: Path, *filters: str) -> Path:
    proc = run_cli("report", "--catalog", str(db), *filters, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def page(catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _report(catalog, tmp_path_factory.mktemp("html-page") / "report.html")


def _open(page: Path, work: Path, *switches: str) -> Dom:
    """The page's DOM after Chromium ran its scripts; no request, no console error."""
    result = chromium(page, work, "--dump-dom", *switches)
    assert result.requests == [], result.requests
    assert console_errors(result.console) == []
    return Dom(result.stdout)


def test_counts_rows_and_no_network(catalog: Path, library: dict[str, tuple[Path, str | None]],
                                    page: Path, tmp_path: Path) -> None:
    stats = _stats(catalog)
    by_verdict = stats["by_verdict"]
    by_status = stats["by_status"]
    assert isinstance(by_verdict, dict) and isinstance(by_status, dict)
    # the library covers what the page must show
    assert set(by_verdict) == {"pass", "warn", "fail", "unchecked"}
    assert by_status["error"] == 2 and by_status["missing"] == 1
    dom = _open(page, tmp_path)
    assert {k: n for k, n in dom.counts.items() if k.startswith("verdict-")} == {
        f"verdict-{v}": by_verdict.get(v, 0) for v in ("fail", "warn", "unchecked", "pass")}
    assert dom.counts["status-error"] == by_status["error"]
    rules = stats["rules"]
    assert isinstance(rules, dict)
    assert dom.rules == {rule: {s: counts.get(s, 0) for s in
                                ("fail", "warn", "unknown", "manual", "pass")}
                         for rule, counts in rules.items()}
    assert dom.bars == {rule: n["fail"] for rule, n in rules.items() if n.get("fail")}
    assert dom.bars, "no rule failed: the chart is not exercised"
    # one row per image present, as `catalog list` lists them
    assert sorted(dom.rows.values()) == sorted(_listed(catalog))
    assert str(library["hostile"][0]) in dom.rows.values()
    # duplicates, as `catalog duplicates` finds them; qemu-img compare agrees that the
    # raw and the qcow2 base hold one disk
    proc = run_cli("catalog", "duplicates", "--json", "--catalog", str(catalog))
    dups = json.loads(proc.stdout)
    assert dom.groups == {g["fingerprint"]: g["count"] for g in dups["groups"]}
    assert dom.pairs == [[p["a"], p["b"]] for p in dups["pairs"]]
    assert dom.counts["dup-groups"] == len(dups["groups"]) >= 1
    assert dom.counts["dup-pairs"] == len(dups["pairs"]) >= 1
    run("qemu-img", "compare", library["base.raw"][0], library["base.qcow2"][0])
    group = {m["path"] for g in dups["groups"] for m in g["images"]}
    assert {str(library["base.raw"][0]), str(library["base.qcow2"][0])} <= group
    # the scan history, as the sqlite3 tool reads the scans table
    scans = sql(catalog, "SELECT id, coalesce(scanned, 0) + coalesce(errors, 0), "
                "(SELECT count(*) FROM images WHERE first_seen_scan = scans.id), unchanged, "
                "errors, missing FROM scans")
    assert dom.history == {int(i): {"read": int(read), "new": int(new),
                                    "changed": max(int(read) - int(new), 0),
                                    "unchanged": int(unchanged), "errors": int(errors),
                                    "missing": int(missing)}
                           for i, read, new, unchanged, errors, missing in scans}
    assert dom.history[2]["new"] == 1 and dom.history[2]["missing"] == 1
    # self-contained: nothing to fetch, every link inside the page; the script ran
    # (its sort buttons), so the Content-Security-Policy hash admitted it
    assert dom.sources == []
    assert all(h.startswith("#") for h in dom.hrefs), [h for h in dom.hrefs if h[:1] != "#"]
    assert dom.tags["button"] >= 8


def test_hostile_text_is_text(page: Path, library: dict[str, tuple[Path, str | None]],
                              tmp_path: Path) -> None:
    """The path and the volume label holding ``<script>`` and quotes are shown as
    text: the DOM has the page's one script element and nothing the strings hold."""
    dom = _open(page, tmp_path)
    assert dom.tags["script"] == 1
    assert dom.tags["img"] == 0
    text = "".join(dom.text)
    assert str(library["hostile"][0]) in text
    assert HOSTILE_LABEL in text
    # the path's script would have set the title
    assert dom.title.startswith("imgscan report: "), dom.title


def test_readable_without_javascript(page: Path, catalog: Path, tmp_path: Path) -> None:
    """The page with its one script element cut out (``--dump-dom`` itself needs
    scripts on, so Chromium cannot be told to run none): every row and count stays."""
    html = page.read_text(encoding="utf-8")
    start, end = html.index("<script>"), html.index("</script>") + len("</script>")
    assert "<script>" not in html[end:]
    bare = tmp_path / "bare.html"
    bare.write_text(html[:start] + html[end:], encoding="utf-8")
    dom = _open(bare, tmp_path)
    assert dom.tags["button"] == 0 and dom.tags["script"] == 0
    # a row's detail link leads to the shared detail, which the browser unfolds
    link = re.search(r'<a class=shared href=#(d\d+)>', html)
    assert link
    result = chromium(bare.resolve().as_uri() + "#" + link.group(1), tmp_path, "--dump-dom")
    opened = re.findall(r'<details class="shared"( open="")?><summary>.*?</summary>\s*'
                        r'<div class="body" id="(d\d+)">', result.stdout, re.S)
    assert [d for is_open, d in opened if is_open] == [link.group(1)], opened
    assert sorted(dom.rows.values()) == sorted(_listed(catalog))
    assert dom.counts["verdict-fail"] > 0


#: Clicks the header of the virtual-size column twice (descending), then the first
#: row's detail link; records the order of the rows' sizes.
CLICKS = ("var t=document.getElementById('image-table');"
          "var b=t.tHead.rows[0].cells[2].querySelector('button');b.click();b.click();"
          "t.tBodies[0].rows[0].querySelector('a.shared').click();"
          "document.body.setAttribute('data-sizes',Array.prototype.map.call("
          "t.querySelectorAll('tbody tr[id]'),function(r){return r.cells[2]"
          ".getAttribute('data-v')}).join(' '))")


def test_script_sorts_and_unfolds(page: Path, catalog: Path, tmp_path: Path) -> None:
    """The script's sorting (by the virtual-size header) and folding (a row's detail
    link copies the shared detail under the row)."""
    clicked = tmp_path / "clicked.html"
    clicked.write_text(with_script(page.read_text(encoding="utf-8"), CLICKS),
                       encoding="utf-8")
    result = chromium(clicked, tmp_path, "--dump-dom")
    assert console_errors(result.console) == []
    found = re.search(r'data-sizes="([-0-9 ]+)"', result.stdout)
    assert found
    sizes = [int(v) for v in found.group(1).split()]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == len(_listed(catalog))
    unfolded = re.search(r'<tr class="unfolded"><td colspan="9"><div class="body">(.*?)'
                         r'</div></td></tr>', result.stdout, re.S)
    assert unfolded and "<h4>Facts</h4>" in unfolded.group(1)


def test_filters_select_as_catalog_list(catalog: Path, tmp_path: Path) -> None:
    for filters in (("--verdict", "fail"), ("--rule", "bios-boot"), ("--status", "missing"),
                    ("--status", "error"), ("--format", "qcow2")):
        page = _report(catalog, tmp_path / "filtered.html", *filters)
        dom = _open(page, tmp_path / "chromium")
        assert sorted(dom.rows.values()) == sorted(_listed(catalog, *filters)), filters
        assert dom.rows, filters


def test_screenshot_is_not_blank(page: Path, tmp_path: Path) -> None:
    """Pixels of many colours, the failed-rule bars' vermilion among them (the style
    sheet was applied: the bars take their colour from it)."""
    from PIL import Image

    shot = tmp_path / "report.png"
    result = chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1000,1500")
    assert result.requests == []
    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        assert colours is not None
        assert len(colours) > 50
        white = max(n for n, c in colours if c == (255, 255, 255))
        assert white < 0.9 * rgb.width * rgb.height
        assert any(n > 500 for n, c in colours if c == (0xD5, 0x5E, 0x00))
        if os.environ.get("IMGSCAN_UPDATE_SCREENSHOT") == "1":
            README_SHOT.parent.mkdir(exist_ok=True)
            small = rgb.resize((rgb.width * 3 // 4, rgb.height * 3 // 4),
                               Image.Resampling.LANCZOS)
            small.quantize(colors=64, method=Image.Quantize.FASTOCTREE).save(
                README_SHOT, optimize=True)


def test_network_requests_are_counted(tmp_path: Path) -> None:
    """The request count above cannot pass by counting nothing: a page that fetches
    an image and a style sheet shows both."""
    probe = tmp_path / "probe.html"
    probe.write_text('<!DOCTYPE html><img src="http://imgscan-probe.invalid/a.png">'
                     '<link rel="stylesheet" href="https://imgscan-probe.invalid/b.css">')
    result = chromium(probe, tmp_path, "--dump-dom")
    assert sorted(result.requests) == ["http://imgscan-probe.invalid/a.png",
                                       "https://imgscan-probe.invalid/b.css"]


def test_console_errors_are_seen(tmp_path: Path) -> None:
    """The console check above cannot pass by reading nothing: a script the page's
    Content-Security-Policy refuses is reported."""
    page = tmp_path / "refused.html"
    page.write_text("<!DOCTYPE html><meta http-equiv=\"Content-Security-Policy\" "
                    "content=\"default-src 'none'\"><script>document.title='ran'</script>")
    result = chromium(page, tmp_path, "--dump-dom")
    assert any("Content Security Policy" in line for line in console_errors(result.console))


def test_check_html(library: dict[str, tuple[Path, str | None]], tmp_path: Path) -> None:
    """``check --html``: one row per image checked, the rule counts of ``check --json``."""
    images = [str(library[name][0]) for name in ("bios", "uefi", "hostile", "broken.qcow2")]
    out = tmp_path / "check.html"
    proc = run_cli("check", "--html", str(out), *images)
    assert proc.returncode == 2, proc.stderr          # broken.qcow2 cannot be read
    checked = json.loads("[" + ",".join(run_cli("check", "--json", *images)
                                        .stdout.splitlines()) + "]")
    rules: dict[str, Counter[str]] = {}
    for obj in checked:
        for rule in obj.get("rules", []):
            rules.setdefault(rule["id"], Counter())[rule["status"]] += 1
    verdicts = Counter(obj["verdict"] for obj in checked if "verdict" in obj)
    dom = _open(out, tmp_path)
    assert sorted(dom.rows.values()) == sorted(images)
    assert dom.rules == {r: {s: n[s] for s in ("fail", "warn", "unknown", "manual", "pass")}
                         for r, n in rules.items()}
    assert {k: n for k, n in dom.counts.items() if n} == {
        **{f"verdict-{v}": n for v, n in verdicts.items()}, "status-error": 1}


def test_info_and_check_do_not_import_jinja2(library: dict[str, tuple[Path, str | None]]
                                             ) -> None:
    image = str(library["bios"][0])
    code = ("import sys\n"
            "from imgscan.cli import main\n"
            f"main(['info', {image!r}])\n"
            f"main(['check', {image!r}])\n"
            "assert 'jinja2' not in sys.modules, 'jinja2 imported'\n"
            "assert 'imgscan.report.html' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=TESTS)
    assert proc.returncode == 0, proc.stderr


def test_without_jinja2_says_what_to_install(catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    code = ("import sys\n"
            "sys.modules['jinja2'] = None  # as if not installed\n"
            "from imgscan.cli import main\n"
            f"sys.exit(main(['report', '--catalog', {str(catalog)!r}, '-o', {str(out)!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=TESTS)
    assert proc.returncode == 2
    assert "pip install 'imgscan[html]'" in proc.stderr
    assert not out.exists()



#: The phone-like width the page is laid out at. Headless Chromium does not make its
#: window narrower than 500 pixels, so the page is shown in a frame this wide.
NARROW = 390
#: Posted to the frame's parent once the page has loaded: the page's width against
#: its window's, the elements that reach past the window's right edge outside a
#: container that scrolls them (a table's), and each chart's width against its
#: figure's (a chart that scales fits its figure; one that does not scrolls in it).
WIDTH_PROBE = """addEventListener('load', function () {
  var w = innerWidth, out = [], charts = [];
  document.querySelectorAll('body *').forEach(function (e) {
    if (e.closest('.scroll') || (e.closest('svg') && e.tagName !== 'svg')) return;
    var r = e.getBoundingClientRect();
    if (r.width && r.right > w + 0.5) out.push(e.tagName + ' ' + Math.round(r.right));
  });
  document.querySelectorAll('svg.chart').forEach(function (s) {
    charts.push([Math.round(s.getBoundingClientRect().width), s.parentNode.clientWidth]);
  });
  var d = document.documentElement;
  parent.postMessage(JSON.stringify({scroll: d.scrollWidth, body: document.body.scrollWidth,
    window: w, out: out, charts: charts}), '*');
})"""


def _framed(page: Path, work: Path) -> Path:
    """A page showing ``page`` in a frame :data:`NARROW` pixels wide that writes what
    the frame posts into its own DOM."""
    frame = work / "frame.html"
    frame.write_text(
        f'<!DOCTYPE html><body style="margin:0"><iframe src="{page.resolve().as_uri()}" '
        f'style="width:{NARROW}px;height:2000px;border:0"></iframe><script>'
        "addEventListener('message',function(e){document.body.setAttribute("
        "'data-width',e.data)})</script>", encoding="utf-8")
    return frame


def test_narrow_window(page: Path, tmp_path: Path) -> None:
    """At a phone's width the page does not scroll sideways: nothing but the tables'
    own scrolling containers reaches past the window, and every chart shrinks to its
    figure rather than scrolling inside it. The screenshot shows the page drawn."""
    from PIL import Image

    narrow = tmp_path / "narrow.html"
    narrow.write_text(with_script(page.read_text(encoding="utf-8"), WIDTH_PROBE),
                      encoding="utf-8")
    result = chromium(_framed(narrow, tmp_path), tmp_path / "dom", "--dump-dom",
                      "--virtual-time-budget=3000")
    assert result.requests == []
    assert console_errors(result.console) == []
    found = re.search(r'data-width="([^"]*)"', result.stdout)
    assert found, "the probe did not run"
    width = json.loads(found.group(1).replace("&quot;", '"'))
    assert width["window"] == NARROW, width
    assert width["out"] == [], width
    assert width["scroll"] <= NARROW and width["body"] <= NARROW, width
    assert width["charts"] and all(svg <= figure for svg, figure in width["charts"]), width
    shot = tmp_path / "narrow.png"
    framed = _framed(page, tmp_path)
    chromium(framed, tmp_path / "shot", f"--screenshot={shot}", "--window-size=500,2000",
             "--virtual-time-budget=3000")
    with Image.open(shot) as im:
        colours = im.convert("RGB").crop((0, 0, NARROW, im.height)).getcolors(1 << 20)
        assert colours is not None and len(colours) > 20
        assert any(n > 100 for n, c in colours if c == (0xD5, 0x5E, 0x00))


@pytest.mark.skipif(shutil.which("pdftotext") is None,
                    reason="pdftotext is not installed (Debian package poppler-utils; CI "
                    "installs it)")
def test_printable(page: Path, catalog: Path, tmp_path: Path) -> None:
    """Chromium's print of the page, read back by poppler's pdftotext: the verdict
    counts (as ``catalog stats`` counts them), every failed rule's name, every image's
    path (the table's rows, columns and all: a table that scrolls on screen must not be
    cut at the paper's edge), and none of the controls the script adds (filter box,
    fold buttons), which a screen load of the same page shows."""
    pdf = tmp_path / "report.pdf"
    result = chromium(page, tmp_path / "print", f"--print-to-pdf={pdf}",
                      "--no-pdf-header-footer")
    assert result.requests == []
    text = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
    # A path or rule name wraps anywhere in its narrow column: lines joined as one.
    joined = "".join(text.split())
    stats = _stats(catalog)
    by_verdict, by_status, rules = stats["by_verdict"], stats["by_status"], stats["rules"]
    assert isinstance(by_verdict, dict) and isinstance(by_status, dict)
    assert isinstance(rules, dict)
    cards = {o: int(n) for n, o in re.findall(r"^(\d+)\n\S+ (\w+)$", text, re.MULTILINE)
             if o in ("error", "fail", "warn", "unchecked", "pass")}
    assert cards == {"error": by_status["error"],
                     **{v: by_verdict.get(v, 0) for v in ("fail", "warn", "unchecked",
                                                          "pass")}}, text[:2000]
    failed = [rule for rule, n in rules.items() if n.get("fail")]
    assert failed and all(rule in joined for rule in failed)
    paths = _listed(catalog)
    assert paths and all("".join(p.split()) in joined for p in paths), \
        [p for p in paths if "".join(p.split()) not in joined]
    # the rows print whole: after a failing row's verdict (and the profile that judged
    # it: the images' profiles differ), its failed rules' names and its detail link (the
    # last column; cut columns lose them)
    profiles = [p for p, in sql(catalog, "SELECT DISTINCT profile FROM images "
                                "WHERE profile IS NOT NULL")]
    assert len(profiles) > 1
    rows = re.findall(r"\u2717fail([a-z-]*?)detail", joined)
    names = "(?:" + "|".join(map(re.escape, profiles)) + ")(?:" \
        + "|".join(map(re.escape, failed)) + ")+"
    assert len(rows) == by_verdict["fail"], rows
    assert all(re.fullmatch(names, r) for r in rows), rows
    shown = chromium(page, tmp_path / "screen", "--dump-dom").stdout
    for control in ("Unfold all", "Fold all", 'type="search"'):
        assert control in shown
    for control in ("Unfold all", "Fold all", "Filter: path"):
        assert control not in text


def test_check_html_several_profiles(windows_disks: dict[str, Path],
                                     library: dict[str, tuple[Path, str | None]],
                                     tmp_path: Path) -> None:
    """``check --html --profile all``: one row per image and profile, each with the
    verdict ``check --json`` of the same images gives that profile; the counts are of
    images (an unreadable one once), the verdict cards of judgements."""
    images = [str(p) for p in windows_disks.values()] + [str(library["broken.qcow2"][0])]
    out = tmp_path / "check.html"
    proc = run_cli("check", "--profile", "all", "--html", str(out), *images)
    assert proc.returncode == 2, proc.stderr          # broken.qcow2 cannot be read
    listed = [json.loads(line) for line in
              run_cli("check", "--profile", "all", "--json", *images).stdout.splitlines()]
    judged = [obj for obj in listed if "verdicts" in obj]
    assert judged and all(len(obj["verdicts"]) > 1 for obj in judged)
    expected = sorted((obj["path"], profile, verdict) for obj in judged
                      for profile, verdict in obj["verdicts"].items())
    dom = _open(out, tmp_path)
    assert sorted((dom.rows[row], dom.profiles[row], dom.verdicts[row])
                  for row in dom.rows if row in dom.profiles) == expected
    errors = [row for row in dom.rows if row not in dom.profiles]
    assert [(dom.rows[row], dom.verdicts[row]) for row in errors] == [
        (str(library["broken.qcow2"][0]), "error")]
    assert dom.counts["status-error"] == 1
    assert {k: n for k, n in dom.counts.items() if k.startswith("verdict-") and n} == {
        f"verdict-{v}": n for v, n in Counter(v for _, _, v in expected).items()}
    assert dom.title.endswith(f": {len(images)} images")


def test_template_cache_failing_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jinja2's cache of the compiled template: a page is the same with it, without it
    (no directory of this user's can be made), and when it cannot be written."""
    import jinja2

    from imgscan.report import html

    def page() -> str:
        return re.sub(r"at \S+\.</p>", "", html.Report("t", "s").render())

    cached = page()
    monkeypatch.setattr(jinja2.FileSystemBytecodeCache, "dump_bytecode",
                        lambda self, bucket: (_ for _ in ()).throw(OSError(28, "full")))
    monkeypatch.setattr(jinja2.FileSystemBytecodeCache, "load_bytecode",
                        lambda self, bucket: None)
    assert page() == cached

    def refuse(self: object) -> None:
        raise RuntimeError("the cache directory is not safe")

    monkeypatch.setattr(html._BytecodeCache, "__init__", refuse)
    assert html._bytecode_cache() is None
    assert page() == cached

"""Headless Chromium for the HTML report: the DOM after its scripts ran, a
screenshot, and every network request the page made.

Chromium runs in a network namespace of its own (``unshare -n``: no interface
but a loopback that is down) when this process may make one, else behind a
proxy that does not exist and a resolver that finds nothing; either way a
request cannot reach anything. Requests are counted from Chromium's own
NetLog (``--log-net-log``): a request the page starts is a
``URL_REQUEST_START_JOB`` event whose network isolation key is the page's
``file://`` site; Chromium's own background fetches (updates, clock) have
none and are not the page's. :func:`page_requests` is checked against a page
that does fetch (tests/report/test_html.py), so that it cannot pass by
counting nothing. Console messages (a Content-Security-Policy refusal among
them) come from ``--enable-logging=stderr``; :func:`console_errors` is checked
against a page whose script the policy refuses.

Each call starts one Chromium and waits for it to exit (``--dump-dom`` and
``--screenshot`` exit by themselves); one that does not within the timeout is
killed with its whole process group.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian package chromium; CI "
    "installs it)")
#: Seconds one Chromium run may take before it is killed.
TIMEOUT = 120
#: Switches that keep Chromium from its own background traffic and first-run work.
QUIET = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
         "--force-color-profile=srgb", "--enable-logging=stderr", "--v=0")
#: Where requests go when no network namespace can be made: nowhere.
BLOCKED = ("--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND")


@dataclass(frozen=True, slots=True)
class Run:
    """What one Chromium run left: its standard output (the DOM with ``--dump-dom``),
    the console (stderr), and the URLs the page requested."""

    stdout: str
    console: str
    requests: list[str]


@cache
def _isolation() -> tuple[str, ...]:
    """``unshare -n`` when it works here (root, or user namespaces), else nothing."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True,
                                  check=False).returncode == 0:
        return (unshare, "-n")
    return ()


def chromium(page: Path | str, work: Path, *switches: str) -> Run:
    """Run Chromium once on ``page`` (a file, or a ``file://`` URL with a fragment)
    with ``switches`` (``--dump-dom``, ``--screenshot=FILE``, ...)."""
    assert CHROMIUM is not None
    work.mkdir(parents=True, exist_ok=True)
    netlog = work / "netlog.json"
    netlog.unlink(missing_ok=True)
    url = page if isinstance(page, str) else page.resolve().as_uri()
    isolation = _isolation()
    cmd = [*isolation, CHROMIUM, *QUIET, *(() if isolation else BLOCKED),
           f"--user-data-dir={work / 'profile'}", f"--log-net-log={netlog}", *switches, url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=work)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"chromium did not finish within {TIMEOUT} s: {cmd}") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err[-2000:]}"
    return Run(out, err, page_requests(netlog))


def page_requests(netlog: Path) -> list[str]:
    """The URLs the page (a ``file://`` document) asked the network stack for."""
    text = netlog.read_text(encoding="utf-8")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:    # a log cut at exit lacks its closing brackets
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"]
            if e["type"] == start and "url" in e.get("params", {})
            and str(e["params"].get("network_isolation_key", "")).startswith("file://")]


def console_errors(console: str) -> list[str]:
    """The page's console messages (a refused load, a script error): those whose source
    is a ``file://`` document; Chromium's own pages (``chrome://``) log there too."""
    return [line for line in console.splitlines()
            if ":CONSOLE" in line and "source: file://" in line]


def with_script(html: str, script: str) -> str:
    """The report ``html`` with ``script`` run after its own (at the end of the body),
    admitted by adding its hash to the page's Content-Security-Policy."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    assert "script-src '" in html and "</body>" in html
    html = html.replace("script-src '", f"script-src 'sha256-{digest}' '", 1)
    head, _, tail = html.rpartition("</body>")
    return f"{head}<script>{script}</script></body>{tail}"

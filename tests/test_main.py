"""The ``imgscan`` process (imgscan/__main__.py): the command's output and exit status
whether the process leaves by the quick exit or, when something is left to run at exit,
the ordinary way."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

SAMPLE = str(resources.files("imgscan") / "samples" / "demo.qcow2")
#: Child interpreters run from the tests folder: the checkout's uncompiled imgscan/
#: must not shadow the installed package.
TESTS = Path(__file__).resolve().parent


def _child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -S -c CODE ARGS``, imgscan's and its dependencies' directories on
    PYTHONPATH: no site hook of this environment registers an exit handler first (this
    sandbox's .pth does; a clean install has none)."""
    import site

    import imgscan
    path = [str(Path(imgscan.__file__).resolve().parent.parent), *site.getsitepackages()]
    return subprocess.run([sys.executable, "-S", "-c", code, *args], capture_output=True,
                          text=True, check=False, cwd=TESTS,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(path)})


#: The console script's own lines (pip writes them for ``imgscan.__main__:run``).
SCRIPT = "import sys\nfrom imgscan.__main__ import run\nsys.exit(run())\n"


@pytest.mark.parametrize("before", [
    "",                                                         # the quick exit
    "import atexit; atexit.register(print, 'at exit')\n",       # the ordinary exit
    "import threading, time\n"                                 # a thread still running
    "threading.Thread(target=lambda: (time.sleep(0.3), print('thread'))).start()\n",
])
def test_the_output_and_status_are_the_command_s(before: str) -> None:
    """Every line written reaches the pipe and the status is main()'s, however the
    process leaves; an exit handler still runs, another thread still finishes."""
    proc = _child(before + SCRIPT, "info", "--json", SAMPLE, "missing.qcow2")
    out = proc.stdout.splitlines()
    lines = [line for line in out if line.startswith("{")]
    assert proc.returncode == 2 and len(lines) == 2
    assert json.loads(lines[0])["format"] == "qcow2"
    assert json.loads(lines[1])["error"]["type"] == "ImageError"
    assert "missing.qcow2" in proc.stderr
    if "atexit" in before:
        assert out[-1] == "at exit"
    if "threading" in before:
        assert "thread" in out


#: An object whose finaliser runs only in the interpreter's teardown.
TEARDOWN = "class Torn:\n    def __del__(self): print('teardown')\nkept = Torn()\n"


def test_the_quick_exit_skips_the_teardown() -> None:
    """Nothing left to run: the process leaves without the teardown (what it saves);
    with an exit handler, the teardown runs as before."""
    quick = _child(TEARDOWN + SCRIPT, "info", SAMPLE)
    ordinary = _child(TEARDOWN + "import atexit; atexit.register(int)\n" + SCRIPT, "info",
                      SAMPLE)
    assert quick.returncode == ordinary.returncode == 0
    assert quick.stdout.startswith(SAMPLE) and "teardown" not in quick.stdout
    assert ordinary.stdout == quick.stdout + "teardown\n"


def test_a_failed_flush_is_reported_as_before() -> None:
    """Standard output closed under the command: the ordinary exit reports it (Python's
    own status 120), not a quick exit that would drop it silently."""
    proc = _child("import os, sys\nsys.stdout = open(os.devnull, 'w')\nsys.stdout.close()\n"
                  "sys.stdout = open('/dev/full', 'w')\n" + SCRIPT, "info", SAMPLE)
    assert proc.returncode == 120, proc.stderr
    assert "No space left on device" in proc.stderr


def test_python_m_imgscan_is_the_same_process() -> None:
    proc = subprocess.run([sys.executable, "-m", "imgscan", "info", "--json", SAMPLE],
                          capture_output=True, text=True, check=False, cwd=TESTS)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["path"] == SAMPLE

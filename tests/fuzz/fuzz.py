"""Run one fuzz harness under atheris (libFuzzer).

    python tests/fuzz/fuzz.py HARNESS [libFuzzer flags] [CORPUS_DIR... | INPUT...]

HARNESS is a name in ``harnesses.HARNESSES`` (``python tests/fuzz/fuzz.py --list``);
the rest goes to libFuzzer as it is, e.g. ``-max_total_time=600 -timeout=1
-rss_limit_mb=512 corpus/ seeds/``. ``make fuzz`` runs every harness this way.

Every imgscan module is imported (and so instrumented for atheris' coverage
feedback) before fuzzing starts: the registry imports decoders lazily, and a
module first imported mid-run would be invisible to the fuzzer. The Cython
modules are C and give feedback only when built with ``-fsanitize=fuzzer-no-link``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

if os.environ.get("IMGSCAN_FUZZ_LIBFUZZER"):
    # Instrumented extensions call libFuzzer's coverage hooks: load a shared libFuzzer
    # with its symbols global before atheris, which then uses it rather than its own.
    import ctypes
    ctypes.CDLL(os.environ["IMGSCAN_FUZZ_LIBFUZZER"], mode=ctypes.RTLD_GLOBAL)

import atheris

# imgscan is whichever Python finds (the editable install, or PYTHONPATH: `make fuzz`
# points it at a copy whose extensions give coverage, see make fuzz-build).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["imgscan"]):
    import imgscan
    for _module in pkgutil.walk_packages(imgscan.__path__, "imgscan."):
        if not _module.name.endswith("__main__"):   # that one runs the CLI
            importlib.import_module(_module.name)

from harnesses import HARNESSES


def main() -> None:
    if sys.argv[1:2] == ["--list"]:
        print(" ".join(HARNESSES))
        return
    if len(sys.argv) < 2 or sys.argv[1] not in HARNESSES:
        sys.exit(__doc__.strip() + "\n\nharnesses: " + " ".join(HARNESSES))
    harness = HARNESSES[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], harness)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

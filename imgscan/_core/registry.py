"""Format detection by content: the one place where formats are registered.

Adding a container format is one new module exposing ``FORMAT`` and one line
in ``FORMATS`` below. Detection never looks at the file name: every probe
reads signatures from the file, the first match in ``FORMATS`` order decodes
the image, and raw is the fallback when nothing matches.
"""

from __future__ import annotations

from imgscan.findings import MULTIPLE_FORMATS

from . import qcow, qcow2, raw, vhd
from .container import Container, Format
from .source import Source

#: Probed in this order; a format whose signature is stronger comes first.
FORMATS: tuple[Format, ...] = (
    qcow2.FORMAT,  # "QFI\xfb" magic, any version but 1
    qcow.FORMAT,  # "QFI\xfb" magic and version 1 at offset 0
    vhd.FORMAT,  # footer at the end: weaker than a header magic, so late
)


def detect(source: Source) -> Container:
    """Decode ``source`` as the first registered format whose probe matches."""
    matches = [fmt for fmt in FORMATS if fmt.probe(source)]
    if not matches:
        return raw.FORMAT.open(source)
    container = matches[0].open(source)
    if len(matches) > 1:
        names = ", ".join(fmt.name for fmt in matches)
        container.add_finding(
            MULTIPLE_FORMATS, "error",
            f"the file carries the signatures of several formats ({names}); "
            f"decoded as {matches[0].name}, but another reader may choose differently",
        )
    return container

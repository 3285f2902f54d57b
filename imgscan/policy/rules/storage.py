"""Rules on where the image file is stored: the store's own word when the image was read
from object storage (the ``source`` object's ``storage_class``, from HEAD), otherwise what
the user tells (``--storage-class``, which also overrides the store).

Source: import-rules.md section 1.2 (Huawei IMS: OBS Standard storage).
"""

from __future__ import annotations

from imgscan.vocabulary import FAIL, MANUAL, PASS

from ..framework import Outcome, rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..framework import Facts


@rule("storage-class", "the OBS bucket and object use the Standard storage class")
def storage_class(f: Facts, *, allowed: Sequence[str]) -> Outcome:
    given, origin = f.storage_class, "--storage-class"
    source = f.info.get("source")
    if given is None and source:
        given, origin = source.get("storage_class"), f"HEAD {source['url']}"
    remedy = "obsutil chattr obs://BUCKET/OBJECT -sc=standard"
    if given is None:
        where = ("the server names no storage class" if source
                 else "an image cannot show where it is stored")
        return Outcome(MANUAL, f"{where}: check that the OBS "
                       f"bucket and object use the {'/'.join(allowed)} class (or pass "
                       "--storage-class)", {}, remedy)
    ev = {"storage_class": {"value": given, "from": origin}}
    if given.lower() in (a.lower() for a in allowed):
        return Outcome(PASS, f"storage class {given}", ev)
    return Outcome(FAIL, f"storage class {given}: the import needs {'/'.join(allowed)}", ev,
                   remedy)

"""Rules on where the image file is stored, which only the user can tell (``--storage-class``).

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
    given = f.storage_class
    remedy = "obsutil chattr obs://BUCKET/OBJECT -sc=standard"
    if given is None:
        return Outcome(MANUAL, "an image cannot show where it is stored: check that the OBS "
                       f"bucket and object use the {'/'.join(allowed)} class (or pass "
                       "--storage-class)", {}, remedy)
    ev = {"storage_class": {"value": given, "from": "--storage-class"}}
    if given.lower() in (a.lower() for a in allowed):
        return Outcome(PASS, f"storage class {given}", ev)
    return Outcome(FAIL, f"storage class {given}: the import needs {'/'.join(allowed)}", ev,
                   remedy)

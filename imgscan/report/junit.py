"""JUnit XML for CI systems: one ``testsuite`` per image (and profile, when an image is
judged by several: ``PATH [PROFILE]``), one ``testcase`` per rule.

The mapping CI dashboards understand: a failed rule is a ``<failure>``, a
warning passes with its message in ``<system-out>``, and ``unknown`` /
``manual`` rules are ``<skipped>`` with the reason (nothing was decided). An
image that could not be read is a suite with one ``<error>`` test case.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..vocabulary import PASS, STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any


def _text(rule: Mapping[str, Any]) -> str:
    lines = [f"{rule['status']}: {rule['message']}"]
    if rule.get("remedy"):
        lines.append(f"remedy: {rule['remedy']}")
    if rule.get("auto_fixed"):
        lines.append("the cloud fixes this itself at registration (automatic configuration)")
    return "\n".join(lines)


def _suite(root: ET.Element, check: Mapping[str, Any], several: bool) -> None:
    """One image's check; ``several``: the image is judged by several profiles, so the
    suite's name adds the profile (CI dashboards key suites by name)."""
    rules = check["rules"]
    counts = {s: sum(r["status"] == s for r in rules) for s in
              STATUSES if s != PASS}
    suite = ET.SubElement(root, "testsuite", {
        "name": f"{check['path']} [{check['profile']}]" if several else str(check["path"]),
        "tests": str(len(rules)),
        "failures": str(counts["fail"]),
        "errors": "0",
        "skipped": str(counts["unknown"] + counts["manual"]),
    })
    props = ET.SubElement(suite, "properties")
    for name in ("profile", "verdict"):
        ET.SubElement(props, "property", {"name": name, "value": str(check[name])})
    classname = f"imgscan.{check['profile']}"
    for rule in rules:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": rule["id"]})
        status = rule["status"]
        if status == "fail":
            failure = ET.SubElement(case, "failure", {"message": rule["message"],
                                                      "type": "fail"})
            failure.text = _text(rule)
        elif status in ("unknown", "manual"):
            ET.SubElement(case, "skipped", {"message": f"{status}: {rule['message']}"})
        elif status == "warn":
            out = ET.SubElement(case, "system-out")
            out.text = _text(rule)


def _error_suite(root: ET.Element, path: str, message: str) -> None:
    suite = ET.SubElement(root, "testsuite", {"name": path, "tests": "1", "failures": "0",
                                              "errors": "1", "skipped": "0"})
    case = ET.SubElement(suite, "testcase", {"classname": "imgscan", "name": "read-image"})
    error = ET.SubElement(case, "error", {"message": message, "type": "ImageError"})
    error.text = message


def junit_xml(checks: Iterable[Mapping[str, Any]],
              errors: Iterable[tuple[str, str]] = ()) -> bytes:
    """The XML document for the checks of several images (and the images that could
    not be read: ``(path, message)``)."""
    root = ET.Element("testsuites", {"name": "imgscan check"})
    checks = list(checks)
    paths = [c["path"] for c in checks]
    for check in checks:
        _suite(root, check, paths.count(check["path"]) > 1)
    for path, message in errors:
        _error_suite(root, path, message)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"

"""``imgscan info`` and ``imgscan check --json`` of two real Linux system disks, golden.

The disks are the Debian 12 fixtures (tests/fixtures/linux), rebuilt on every new
machine from Debian's mirror: what a rebuild changes is masked before the comparison
(UUIDs and LVM ids, the kernel's ABI number, sizes of the compressed qcow2 files,
the MBR disk id), so the golden files hold every fact the disk's content decides.
Regenerate with ``IMGSCAN_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from helpers import golden, run_cli

from imgscan.units import human_size

MASKS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "UUID"),
    (re.compile(r"\b[0-9A-Za-z]{6}(?:-[0-9A-Za-z]{4}){5}-[0-9A-Za-z]{6}\b"), "LVMID"),
    (re.compile(r"\b6\.1\.0-\d+-cloud-amd64\b"), "6.1.0-N-cloud-amd64"),
    (re.compile(r"\b0x[0-9a-f]{8}\b"), "0xDISKID"),
    # the free space of a root made by mmdebstrap moves with the packages' sizes
    (re.compile(r"\b\d+(?= free blocks of)"), "FREE"),
)


def masked(text: str, path: Path) -> str:
    """``text`` with the path as its file name and each rebuilt value numbered by first
    appearance (``<UUID-1>``), so equal values stay equal."""
    text = text.replace(str(path), path.name)
    for pattern, name in MASKS:
        text = pattern.sub(Numbering(name), text)
    return text


class Numbering:
    """A ``re.sub`` replacement naming each distinct match ``<NAME-n>`` in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: dict[str, str] = {}

    def __call__(self, match: re.Match[str]) -> str:
        return self.seen.setdefault(match.group(0), f"<{self.name}-{len(self.seen) + 1}>")


def run(*args: str) -> str:
    proc = run_cli(*args)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def test_info_text_of_the_ext4_disk(linux_disks: dict[str, Path]) -> None:
    disk = linux_disks["ext4-bios"]
    text = run("info", str(disk))
    lines = [ln for ln in text.splitlines()
             if not ln.lstrip().startswith(("file size", "allocated"))]
    golden("linux-info-ext4.txt", masked("\n".join(lines) + "\n", disk))


def test_check_json_of_the_lvm_disk(linux_disks: dict[str, Path]) -> None:
    disk = linux_disks["xfs-lvm-boot"]
    obj: dict[str, Any] = json.loads(run("check", "--json", str(disk)))
    # The check and the linux object; the rest of info has golden files of its own.
    kept = {"profile": obj["profile"], "verdict": obj["verdict"],
            "rules": [r for r in obj["rules"] if r["id"] != "file-size"],
            "linux": obj["info"]["linux"]}
    assert kept["linux"]["root_free_bytes"] > 0
    kept["linux"]["root_free_bytes"] = "<FREE>"     # see MASKS
    golden("linux-check-lvm.json",
           masked(json.dumps(kept, indent=1, sort_keys=True), disk) + "\n")


def test_profile_all_report_of_the_ext4_disk(linux_disks: dict[str, Path]) -> None:
    """``check --profile all``: the rule-by-cloud matrix of a real Debian 12 disk, what
    to change per cloud and the registration parameters."""
    disk = linux_disks["ext4-bios"]
    golden("linux-check-all-ext4.txt", masked(run("check", "--profile", "all", str(disk)),
                                              disk))


def test_profile_all_json_of_the_ext4_disk(linux_disks: dict[str, Path]) -> None:
    """``check --json --profile all`` of the same disk: every profile's check object and
    the verdicts; the ``info`` object has golden files of its own. The sizes a rebuild
    moves (the compressed file's, the root's free space) are masked where the rules
    quote them, as value and as message."""
    disk = linux_disks["ext4-bios"]
    obj: dict[str, Any] = json.loads(run("check", "--json", "--profile", "all", str(disk)))
    info = obj.pop("info")
    assert obj["path"] == info["path"] == str(disk)
    text = json.dumps(obj, indent=1, sort_keys=True)
    for name, size in (("FILE-SIZE", info["file_size"]),
                       ("FREE", info["linux"]["root_free_bytes"])):
        assert size > 0 and str(size) in text, name
        text = text.replace(human_size(size), f"<{name}>")  # "182 MiB (190840832 bytes)"
        text = re.sub(rf"\b{size}\b", f"<{name}>", text)
    golden("linux-check-all-ext4.json", masked(text, disk) + "\n")

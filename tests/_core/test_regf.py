"""Registry hive (regf) reader against hivex, on real Windows hives and hivex-made ones.

Oracles: ``hivexml`` (hivex's whole-hive dump: every key, value, type and
datum, in list order) for full walks, ``hivexget`` for single facts, and
``hivexregedit --merge`` to build hives from .reg text onto hivex's minimal
hive. The facts of ../shared/corpus/hives/MANIFEST.md are checked against
both imgscan and hivexget. Malformed hives are corrupted copies of real ones.
"""

from __future__ import annotations

import base64
import lzma
import os
import re
import shutil
import struct
import subprocess
import time
import xml.parsers.expat
from pathlib import Path
from typing import Any

import pytest
from helpers import promptly, sparse_copy
from oracles import SHARED

from imgscan import limits
from imgscan._core.regf import Hive, Key, lh_hash, regf_checksum
from imgscan.errors import CorruptImage, ImageError, LimitExceeded, TruncatedImage

HIVES = SHARED / "corpus" / "hives"
needs_hives = pytest.mark.skipif(not HIVES.is_dir(), reason=f"{HIVES} is absent")
HAVE_HIVEX = all(shutil.which(t) for t in ("hivexget", "hivexml", "hivexregedit"))
needs_hivex = pytest.mark.skipif(not HAVE_HIVEX, reason="hivex tools (libhivex-bin, "
                                 "libwin-hivex-perl) not installed")

SYSTEMS = ["regipy_SYSTEM", "regipy_SYSTEM_2", "regipy_SYSTEM_B", "regipy_SYSTEM_WIN_10_1709"]
SAMS = ["regipy_SAM", "plaso_regf_SAM", "turbinia_SAM"]
#: Every real hive hivexml reads whole (Software_Delta has a resident 2-byte REG_SZ
#: that hivex refuses with EFAULT: it is sampled with hivexget instead).
WALKED = [*SYSTEMS, *SAMS, "regipy_BCD", "minimal", "hivex_special"]
FILETIME_UNIX_EPOCH = 11644473600


# --------------------------------------------------------------------------
# fixtures and oracle helpers
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every corpus hive, decompressed into a session temp dir."""
    if not HIVES.is_dir():
        pytest.skip(f"{HIVES} is absent")
    out = tmp_path_factory.mktemp("hives")
    paths: dict[str, Path] = {}
    for src in sorted(HIVES.iterdir()):
        if src.name == "MANIFEST.md":
            continue
        name = src.name.removesuffix(".xz")
        dst = out / name
        data = src.read_bytes()
        dst.write_bytes(lzma.decompress(data) if src.suffix == ".xz" else data)
        paths[name] = dst
    return paths


def _open(path: Path) -> Hive:
    return Hive(path.read_bytes(), f"{path.name} hive")


def hivexget(path: Path, key: str, value: str | None = None) -> bytes | None:
    """hivexget's output (raw bytes), or None when it says the key/value is absent."""
    args = ["hivexget", str(path), key] + ([value] if value is not None else [])
    proc = subprocess.run(args, capture_output=True, check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout


def hivexget_text(path: Path, key: str, value: str) -> str | None:
    out = hivexget(path, key, value)
    return None if out is None else out.decode("utf-8").removesuffix("\n")


# Characters XML 1.0 cannot carry: hivexml writes them raw, so both sides map
# them (and the whitespace an XML parser normalises in attributes) alike.
_XML_CTRL = bytes(c for c in range(32) if c not in (9, 10, 13))
_NORMALISE = {c: "\ufffd" for c in _XML_CTRL} | {9: " ", 10: " ", 13: " "}


def _norm(text: str) -> str:
    text = text.split("\x00")[0]
    return text if text.isprintable() else text.translate(_NORMALISE)


def hivexml_tree(path: Path) -> dict[str, Any]:
    """The root node of ``hivexml``'s dump: {name, mtime, values, children}."""
    out = subprocess.run(["hivexml", str(path)], capture_output=True, check=True).stdout
    # cell positions, not compared: dropping them halves the parse
    out = re.sub(rb"<byte_runs>.*?</byte_runs>", b"", out)
    for c in _XML_CTRL:
        out = out.replace(bytes([c]), "\ufffd".encode())
    top: dict[str, Any] = {"children": []}
    stack = [top]
    state: dict[str, Any] = {"text": None}

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag == "node":
            node: dict[str, Any] = {"name": attrs["name"], "values": [], "children": [],
                                    "mtime": None}
            stack[-1]["children"].append(node)
            stack.append(node)
        elif tag == "value":
            stack[-1]["values"].append({"name": attrs.get("key", ""), "type": attrs["type"],
                                        "value": attrs.get("value"), "strings": []})
        elif tag == "string":
            stack[-1]["values"][-1]["strings"].append("")
            state["text"] = "string"
        elif tag == "mtime":
            state["text"] = "mtime"
            state["mtime"] = ""

    def end(tag: str) -> None:
        if tag == "node":
            stack.pop()
        elif tag == "mtime" and len(stack) > 1:
            stack[-1]["mtime"] = state["mtime"]
        state["text"] = None

    def text(data: str) -> None:
        if state["text"] == "string":
            stack[-1]["values"][-1]["strings"][-1] += data
        elif state["text"] == "mtime":
            state["mtime"] += data

    parser = xml.parsers.expat.ParserCreate()
    parser.buffer_text = True
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.Parse(out, True)
    root: dict[str, Any] = top["children"][0]
    return root


_HIVEX_KIND = {0: "none", 1: "string", 2: "expand", 3: "binary", 4: "int32", 5: "int32",
               6: "link", 7: "string-list", 8: "resource-list", 9: "resource-description",
               10: "resource-requirements", 11: "int64"}


def _iso(filetime: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ",
                         time.gmtime(filetime // 10**7 - FILETIME_UNIX_EPOCH))


def compare_with_hivexml(hive: Hive, path: Path) -> tuple[int, int]:
    """Walk the whole hive with imgscan and hivexml side by side; (keys, values) seen."""
    counts = [0, 0]

    def check_value(where: str, xv: dict[str, Any], value: Any) -> None:
        assert _norm(xv["name"]) == _norm(value.name), where
        kind = xv["type"]
        if kind.startswith("bad-"):           # hivex: invalid UTF-16; compare bytes
            assert base64.b64decode(xv["value"] or "") == value.raw, where
            return
        assert kind == _HIVEX_KIND.get(value.type, "unknown"), (where, value.name)
        data = value.data
        if kind in ("string", "expand", "link"):
            assert _norm(xv["value"] or "") == _norm(data), (where, value.name)
        elif kind == "string-list":
            # hivex 1.3.23 lists the terminating empty string too; Windows stops there
            expected = xv["strings"][:xv["strings"].index("")] if "" in xv["strings"] \
                else xv["strings"]
            assert [_norm(s) for s in expected] == [_norm(s) for s in data], (where, value.name)
        elif kind in ("int32", "int64"):
            bits = 32 if kind == "int32" else 64
            if isinstance(data, bytes):
                # a DWORD/QWORD of the wrong size: imgscan gives its bytes, as regedit
                # shows it; hivex reports -1 for it
                assert len(data) != bits // 8 and int(xv["value"]) == -1, (where, value.name)
            else:
                assert int(xv["value"]) % (1 << bits) == data, (where, value.name)
        else:
            assert base64.b64decode(xv["value"] or "") == value.raw, (where, value.name)

    def walk(node: dict[str, Any], key: Key, where: str) -> None:
        counts[0] += 1
        assert _norm(node["name"]) == _norm(key.name), where
        if node["mtime"] is not None:
            assert node["mtime"] == _iso(key.last_written), where
        values = list(key.values())
        assert len(values) == len(node["values"]) == key.value_count, where
        for xv, value in zip(node["values"], values, strict=True):
            counts[1] += 1
            check_value(where, xv, value)
        subkeys = list(key.subkeys())
        assert [_norm(c["name"]) for c in node["children"]] == [_norm(k.name) for k in subkeys], \
            where
        for child, sub in zip(node["children"], subkeys, strict=True):
            walk(child, sub, f"{where}\\{sub.name}")

    walk(hivexml_tree(path), hive.root, "")
    return counts[0], counts[1]


# --------------------------------------------------------------------------
# real hives: base block, whole-hive walks, lookups
# --------------------------------------------------------------------------

@needs_hives
@pytest.mark.parametrize("name", [*WALKED, "scancode_Software_Delta"])
def test_base_block_fields(hives: dict[str, Path], name: str) -> None:
    """Sequence numbers, version, root offset and checksum, read with struct as the oracle."""
    data = hives[name].read_bytes()
    primary, secondary, last, major, minor, ftype, _, root, bins = struct.unpack_from(
        "<IIQIIIIII", data, 4)
    hive = _open(hives[name])
    d = hive.details
    assert (d["primary_sequence"], d["secondary_sequence"]) == (primary, secondary)
    assert hive.dirty == (primary != secondary)
    assert (d["major_version"], d["minor_version"], d["file_type"]) == (major, minor, ftype)
    assert (d["root_cell_offset"], d["hive_bins_data_size"], d["last_written"]) == \
        (root, bins, last)
    words = struct.unpack_from("<127I", data)
    xor = 0
    for w in words:
        xor ^= w
    assert d["checksum_valid"] and d["checksum"] == struct.unpack_from("<I", data, 508)[0] == xor
    assert regf_checksum(data[:512]) == xor
    assert d["hive_bins_end"] == 4096 + bins
    assert [f.id for f in hive.findings] == (["dirty"] if hive.dirty else [])


@needs_hives
def test_dirty_hives_named(hives: dict[str, Path]) -> None:
    """The three Win8+ SYSTEM hives were copied with log entries pending; the Win7 one not."""
    assert [_open(hives[n]).dirty for n in SYSTEMS] == [False, True, True, True]
    finding = _open(hives["regipy_SYSTEM_2"]).findings[0]
    assert finding.id == "dirty" and "205" in finding.message and "204" in finding.message


@needs_hives
@needs_hivex
@pytest.mark.parametrize("name", WALKED)
def test_whole_hive_matches_hivexml(hives: dict[str, Path], name: str) -> None:
    """Every key (name, mtime, order) and value (name, type, data) equals hivexml's dump."""
    keys, values = compare_with_hivexml(_open(hives[name]), hives[name])
    assert keys >= 1
    if name in SYSTEMS:
        assert keys > 20000 and values > 49000


@needs_hives
@needs_hivex
def test_software_delta_sampled_with_hivexget(hives: dict[str, Path]) -> None:
    """Software_Delta, which hivexml refuses whole: every 25th key's values via hivexget."""
    path = hives["scancode_Software_Delta"]
    hive = _open(path)
    keys = list(hive.walk())
    assert len(keys) == 2946
    for where, key in keys[1::25]:
        listing = hivexget(path, where)
        if listing is None:         # hivex cannot read this key's values
            continue
        lines = listing.decode("utf-8").splitlines()
        # hivexget writes the default value as "@"
        names = [line.split('"=', 1)[0][1:] for line in lines if line.startswith('"')]
        names = ["" if n == "@" else n for n in names]
        expected = [v.name.replace("\\", "\\\\").replace('"', '\\"') for v in key.values()]
        assert sorted(names) == sorted(expected), where
    # the key hivex refuses: a resident 2-byte REG_SZ (an empty string) is valid
    folders = hive.open_key(r"Microsoft\Windows\CurrentVersion\Installer\Folders")
    assert folders is not None and folders.value_count == 187
    value = folders.value("C:\\Python\\")
    assert value is not None and value.raw == b"\x00\x00" and value.data == ""
    cv = hive.open_key(r"Microsoft\Windows NT\CurrentVersion")
    assert cv is not None and cv.value_count == 0 and cv.value("ProductName") is None
    assert [k.name for k in cv.subkeys()][:3] == ["AppCompatFlags", "GRE_Initialize",
                                                  "Notifications"]


@needs_hives
@pytest.mark.parametrize("name", [*SYSTEMS, "scancode_Software_Delta", *SAMS, "regipy_BCD"])
def test_every_key_found_by_name_any_case(hives: dict[str, Path], name: str) -> None:
    """Lookups through the lh hash / lf / ri lists find every key, whatever the case."""
    hive = _open(hives[name])
    n = 0
    for where, key in hive.walk():
        if not where:
            continue
        for spelling in (where, where.upper(), where.lower(), where.swapcase()):
            found = hive.open_key(spelling)
            assert found is not None and found.offset == key.offset, spelling
        assert key.path == where
        n += 1
    assert n > 10


@needs_hives
def test_lh_hashes_of_real_hives(hives: dict[str, Path]) -> None:
    """The stored lh hashes equal libregf's hash of the upper-cased name."""
    checked = 0
    for name in ("regipy_SYSTEM", "regipy_SYSTEM_WIN_10_1709"):
        data = hives[name].read_bytes()
        names = {key.offset: key.name for _, key in Hive(data, name).walk()}
        for nk in names:
            if not struct.unpack_from("<I", data, 4096 + nk + 4 + 20)[0]:
                continue
            lists = [struct.unpack_from("<I", data, 4096 + nk + 4 + 28)[0]]
            if data[4096 + lists[0] + 4:4096 + lists[0] + 6] == b"ri":
                n = struct.unpack_from("<H", data, 4096 + lists[0] + 6)[0]
                lists = list(struct.unpack_from(f"<{n}I", data, 4096 + lists[0] + 8))
            for off in lists:
                assert data[4096 + off + 4:4096 + off + 6] == b"lh"
                n = struct.unpack_from("<H", data, 4096 + off + 6)[0]
                for i in range(n):
                    sub, stored = struct.unpack_from("<II", data, 4096 + off + 8 + 8 * i)
                    assert lh_hash(names[sub]) == stored, names[sub]
                    checked += 1
    assert checked > 70000


# --------------------------------------------------------------------------
# facts of MANIFEST.md, against imgscan and hivexget
# --------------------------------------------------------------------------

SYSTEM_FACTS: dict[str, dict[str, Any]] = {
    "regipy_SYSTEM": {"select": (1, 1, 2, 0), "computer": "WKS-WIN732BITA", "arch": "x86",
                      "starts": {"atapi": 0, "intelide": 0, "pciide": 3, "msahci": 3,
                                 "storahci": None, "TermService": 3, "fvevol": 0},
                      "deny_ts": 0, "firmware": "multi(0)disk(0)rdisk(0)partition(1)",
                      "system": "multi(0)disk(0)rdisk(0)partition(1)",
                      "dhcp": (3, 0, 2, 1), "hiberboot": None, "c_len": 12},
    "regipy_SYSTEM_2": {"select": (1, 1, 1, 0), "computer": "SENSEI", "arch": "AMD64",
                        "starts": {"atapi": 0, "intelide": 0, "pciide": 0, "msahci": None,
                                   "storahci": 0, "TermService": 3, "fvevol": 0},
                        "deny_ts": 1, "firmware": "multi(0)disk(0)rdisk(0)partition(1)",
                        "system": "multi(0)disk(0)rdisk(0)partition(2)",
                        "dhcp": (3, 2, 0, 1), "hiberboot": 1, "c_len": 12},
    "regipy_SYSTEM_B": {"select": (1, 1, 1, 0), "computer": "DESKTOP-PM6C56D", "arch": "AMD64",
                        "starts": {"atapi": 0, "intelide": 0, "pciide": 0, "msahci": None,
                                   "storahci": 0, "TermService": 3, "fvevol": 0},
                        "deny_ts": 1, "firmware": "multi(0)disk(0)rdisk(1)partition(2)",
                        "system": "multi(0)disk(0)rdisk(1)partition(4)",
                        "dhcp": (6, 5, 0, 1), "hiberboot": 1, "c_len": 24},
    "regipy_SYSTEM_WIN_10_1709": {
        "select": (1, 1, 1, 0), "computer": "DESKTOP-2KGM189", "arch": "AMD64",
        "starts": {"atapi": 0, "intelide": 0, "pciide": 0, "msahci": None, "storahci": 0,
                   "TermService": 3, "fvevol": 0},
        "deny_ts": 1, "firmware": "multi(0)disk(0)rdisk(0)partition(1)",
        "system": "multi(0)disk(0)rdisk(0)partition(2)", "dhcp": (4, 3, 0, 1),
        "hiberboot": 1, "c_len": 12},
}


def _data(hive: Hive, key: str, value: str) -> Any:
    """The decoded data of ``key``'s ``value``; the test fails if either is missing."""
    k = hive.open_key(key)
    assert k is not None, key
    v = k.value(value)
    assert v is not None, (key, value)
    return v.data


def _dword(hive: Hive, key: str, value: str) -> int | None:
    k = hive.open_key(key)
    v = None if k is None else k.value(value)
    if v is None:
        return None
    data = v.data
    assert isinstance(data, int)
    return data


@needs_hives
@needs_hivex
@pytest.mark.parametrize("name", SYSTEMS)
def test_system_facts(hives: dict[str, Path], name: str) -> None:
    path = hives[name]
    facts = SYSTEM_FACTS[name]
    hive = _open(path)
    select = tuple(_dword(hive, "Select", v) for v in ("Current", "Default", "LastKnownGood",
                                                       "Failed"))
    assert select == facts["select"]
    assert hivexget_text(path, "Select", "current") == str(select[0])
    ccs = f"ControlSet{select[0]:03d}"
    # the case of the query does not matter (Windows compares names upper-cased)
    computer = hive.open_key(f"{ccs.lower()}\\CONTROL\\computername\\ComputerName")
    assert computer is not None
    assert computer.value("computername") is not None
    assert computer.value("ComputerName").data == facts["computer"]  # type: ignore[union-attr]
    assert hivexget_text(path, f"{ccs}\\Control\\ComputerName\\ComputerName",
                         "ComputerName") == facts["computer"]
    env = f"{ccs}\\Control\\Session Manager\\Environment"
    assert hive.open_key(env).value("PROCESSOR_ARCHITECTURE").data == facts["arch"]  # type: ignore[union-attr]
    for service, start in facts["starts"].items():
        assert _dword(hive, f"{ccs}\\Services\\{service}", "Start") == start, service
        oracle = hivexget_text(path, f"{ccs}\\Services\\{service}", "Start")
        assert oracle == (None if start is None else str(start)), service
    for absent in ("viostor", "vioscsi", "netkvm", "BALLOON", "xenvbd", "cloudbase-init"):
        assert hive.open_key(f"{ccs}\\Services\\{absent}") is None
        assert hivexget(path, f"{ccs}\\Services\\{absent}") is None
    ts = f"{ccs}\\Control\\Terminal Server"
    assert _dword(hive, ts, "fDenyTSConnections") == facts["deny_ts"]
    assert hivexget_text(path, ts, "fDenyTSConnections") == str(facts["deny_ts"])
    assert _dword(hive, f"{ts}\\WinStations\\RDP-Tcp", "PortNumber") == 3389
    control = hive.open_key(f"{ccs}\\Control")
    assert control is not None
    for value, fact in (("FirmwareBootDevice", "firmware"), ("SystemBootDevice", "system")):
        assert control.value(value).data == facts[fact]  # type: ignore[union-attr]
        assert hivexget_text(path, f"{ccs}\\Control", value) == facts[fact]
    interfaces = hive.open_key(f"{ccs}\\Services\\Tcpip\\Parameters\\Interfaces")
    assert interfaces is not None
    dhcp = [(k.name, k.value("EnableDHCP")) for k in interfaces.subkeys()]
    on = sum(1 for _, v in dhcp if v is not None and v.data == 1)
    off = sum(1 for _, v in dhcp if v is not None and v.data == 0)
    unset = sum(1 for _, v in dhcp if v is None)
    assert (len(dhcp), on, off, unset) == facts["dhcp"]
    for guid, v in dhcp:
        oracle = hivexget_text(path, f"{ccs}\\Services\\Tcpip\\Parameters\\Interfaces\\{guid}",
                               "EnableDHCP")
        assert oracle == (None if v is None else str(v.data)), guid
    power = f"{ccs}\\Control\\Session Manager\\Power"
    assert _dword(hive, power, "HiberbootEnabled") == facts["hiberboot"]
    assert _dword(hive, f"{ccs}\\Services\\partmgr\\Parameters", "SanPolicy") == 1
    mounted = hive.open_key("MountedDevices")
    assert mounted is not None
    c_drive = mounted.value("\\DosDevices\\C:")
    assert c_drive is not None and c_drive.type_name == "REG_BINARY"
    assert len(c_drive.raw) == facts["c_len"]
    assert hivexget(path, "MountedDevices", "\\DosDevices\\C:") == c_drive.raw


@needs_hives
@needs_hivex
@pytest.mark.parametrize(("name", "rids", "acb", "nt_len"), [
    ("regipy_SAM", ["000001F4", "000001F5", "000003E8"], 0x0211, 20),
    ("plaso_regf_SAM", ["000001F4", "000001F5", "000003E9"], 0x0211, 20),
    ("turbinia_SAM", ["000001F4", "000001F5", "000001F7", "000003E8", "000003EC", "000003ED"],
     0x0011, 56),
])
def test_sam_facts(hives: dict[str, Path], name: str, rids: list[str], acb: int,
                   nt_len: int) -> None:
    path = hives[name]
    hive = _open(path)
    users = hive.open_key(r"SAM\Domains\Account\Users")
    assert users is not None
    assert [k.name for k in users.subkeys() if k.name != "Names"] == rids
    admin = users.subkey("000001f4")
    assert admin is not None
    f = admin.value("F")
    v = admin.value("V")
    assert f is not None and v is not None
    assert f.raw == hivexget(path, r"SAM\Domains\Account\Users\000001F4", "F")
    assert v.raw == hivexget(path, r"SAM\Domains\Account\Users\000001F4", "V")
    assert struct.unpack_from("<H", f.raw, 0x38)[0] == acb
    assert struct.unpack_from("<I", v.raw, 0xAC)[0] == nt_len
    # Users\Names\<name>: the default value's *type* is the RID
    names = users.subkey("Names")
    assert names is not None
    admin_name = names.subkey("administrator")
    assert admin_name is not None and admin_name.name == "Administrator"
    default = admin_name.value("")
    assert default is not None and default.type == 0x1F4 and default.type_name == "0x000001f4"
    assert default.data == default.raw == b""


@needs_hives
@needs_hivex
def test_bcd_facts(hives: dict[str, Path]) -> None:
    path = hives["regipy_BCD"]
    hive = _open(path)
    objects = hive.open_key("Objects")
    assert objects is not None and objects.subkey_count == 17
    bootmgr = "Objects\\{9dea862c-5cdd-4e70-acc1-f32b344d4795}\\Elements"
    element = hive.open_key(f"{bootmgr}\\12000002").value("Element")  # type: ignore[union-attr]
    assert element is not None and element.data == r"\EFI\Microsoft\Boot\bootmgfw.efi"
    default = hive.open_key(f"{bootmgr}\\23000003").value("Element").data  # type: ignore[union-attr]
    assert default == "{733b62e5-f608-11eb-825c-c112f60133ab}"
    loader = f"Objects\\{default.upper()}\\Elements"      # looked up in another case
    assert _data(hive, f"{loader}\\12000002", "element") == r"\Windows\system32\winload.efi"
    assert hive.open_key(f"{loader}\\22000002").value("Element").data == r"\Windows"  # type: ignore[union-attr]
    assert hivexget_text(path, f"Objects\\{default}\\Elements\\12000004", "Element") == \
        "Windows 10"
    device = hive.open_key(f"{loader}\\11000001").value("Element")  # type: ignore[union-attr]
    assert device is not None and len(device.raw) == 0x58
    assert device.raw == hivexget(path, f"Objects\\{default}\\Elements\\11000001", "Element")


@needs_hives
def test_special_names(hives: dict[str, Path]) -> None:
    """hivex's special hive: Latin-1, UTF-16 and embedded-NUL key names."""
    hive = _open(hives["hivex_special"])
    names = [k.name for k in hive.root.subkeys()]
    assert names == ["abcd_äöüß", "weird™", "zero\x00key"]
    assert hive.open_key("ABCD_ÄÖÜß") is not None
    assert hive.open_key("WEIRD™") is not None
    assert hive.open_key("zero\x00KEY") is not None
    assert hive.open_key("zero") is None


@needs_hives
def test_security_and_class(hives: dict[str, Path]) -> None:
    hive = _open(hives["regipy_SYSTEM"])
    sd = hive.root.security_descriptor()
    assert sd is not None and sd[0] == 1          # SECURITY_DESCRIPTOR revision 1
    lsa = hive.open_key(r"ControlSet001\Control\Lsa")
    assert lsa is not None
    classes = [lsa.subkey(n).class_name for n in ("JD", "Skew1", "GBG", "Data")]  # type: ignore[union-attr]
    assert all(c is not None and len(c) == 8 and int(c, 16) >= 0 for c in classes)


# --------------------------------------------------------------------------
# the damaged SYSTEM hive
# --------------------------------------------------------------------------

@needs_hives
@needs_hivex
def test_corrupted_system_hive(hives: dict[str, Path]) -> None:
    """Readable in part, with a finding; where it is broken, a clear error, promptly."""
    path = hives["regipy_corrupted_system_hive"]
    assert subprocess.run(["hivexml", str(path)], capture_output=True).returncode != 0
    with promptly(5):
        hive = _open(path)
        assert [f.id for f in hive.findings] == ["corrupt"]
        assert "not hive bins" in hive.findings[0].message
        assert [k.name for k in hive.root.subkeys()] == [
            "ControlSet001", "ControlSet003", "LastKnownGoodRecovery", "MountedDevices", "Select",
            "Setup", "WPA"]
        services = hive.open_key(r"ControlSet001\Services")
        assert services is not None
        with pytest.raises(CorruptImage) as err:
            list(services.subkeys())
        assert err.value.path == "regipy_corrupted_system_hive hive"
        assert err.value.structure == "nk cell" and err.value.offset == 1016048
        assert "not inside a hive bin" in str(err.value)
        select = hive.open_key("Select")
        assert select is not None and select.value("Current") is not None
        with pytest.raises(ImageError):
            _read_all(hive)


# --------------------------------------------------------------------------
# hives built with hivexregedit
# --------------------------------------------------------------------------

def _hex(data: bytes) -> str:
    return ",".join(f"{b:02x}" for b in data)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


DEEP = "\\".join(f"Level{i:02d}" for i in range(60))
GENERATED: dict[str, list[str]] = {
    "Select": ['"Current"=dword:00000001', '"Default"=dword:00000001'],
    "ControlSet001\\Control\\ComputerName\\ComputerName": ['"ComputerName"="GEN-HOST"'],
    "ControlSet001\\Services\\viostor": [
        '"Start"=dword:00000000', '"Type"=dword:00000001', '"Group"="SCSI miniport"',
        '"ImagePath"=hex(2):' + _hex(_utf16("system32\\drivers\\viostor.sys\0"))],
    "ControlSet001\\Services\\atapi": ['"Start"=dword:00000000'],
    "Types": [
        '@="the default value"',
        '"Sz"="plain"',
        '"SzUnicode"=hex(1):' + _hex(_utf16("välue 値\0")),
        '"SzJunk"=hex(1):' + _hex(_utf16("cut\0junk after the NUL")),
        '"Expand"=hex(2):' + _hex(_utf16("%SystemRoot%\\x\0")),
        '"Multi"=hex(7):' + _hex(_utf16("one\0two\0\0three\0\0")),
        '"MultiEmpty"=hex(7):00,00',
        '"Dword"=dword:deadbeef',
        '"DwordBE"=hex(5):01,02,03,04',
        '"Qword"=hex(b):' + _hex((0x123456789ABCDEF0).to_bytes(8, "little")),
        '"Binary"=hex:de,ad,be,ef',
        '"Big"=hex:' + _hex(bytes(range(256)) * 80),
        '"None"=hex(0):',
        '"Link"=hex(6):' + _hex(_utf16("\\Registry\\Machine\\System")),
        '"Rid"=hex(1f4):',
        '"ShortDword"=hex(4):01,02',
        '"Wért"=dword:00000002',
    ],
    "Unicode\\äöüß": ['"naïve"=dword:00000003'],
    "Unicode\\日本語": ['"名前"=hex(1):' + _hex(_utf16("値\0"))],
    DEEP: ['"Depth"=dword:0000003c'],
    **{f"Many\\Sub{i:04d}": [] for i in range(700)},
}


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SYSTEM-like hive merged by hivexregedit onto hivex's minimal hive."""
    if not HAVE_HIVEX:
        pytest.skip("hivex tools not installed")
    if not HIVES.is_dir():
        pytest.skip(f"{HIVES} is absent")
    out = tmp_path_factory.mktemp("gen")
    keys: dict[str, list[str]] = {}
    for path, values in GENERATED.items():
        parts = path.split("\\")
        for i in range(1, len(parts)):
            keys.setdefault("\\".join(parts[:i]), [])
        keys.setdefault(path, []).extend(values)
    lines = ["Windows Registry Editor Version 5.00", ""]
    for path, values in keys.items():
        lines += [f"[HKEY_LOCAL_MACHINE\\SYSTEM\\{path}]", *values, ""]
    reg = out / "system.reg"
    reg.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    hive = out / "SYSTEM"
    sparse_copy(HIVES / "minimal", hive)
    os.chmod(hive, 0o644)
    subprocess.run(["hivexregedit", "--merge", "--prefix", "HKEY_LOCAL_MACHINE\\SYSTEM",
                    str(hive), str(reg)], check=True, capture_output=True)
    return hive


@needs_hivex
def test_generated_hive_matches_hivexml(generated: Path) -> None:
    keys, values = compare_with_hivexml(_open(generated), generated)
    assert keys == 1 + len({"\\".join(p.split("\\")[:i + 1]) for p in GENERATED
                            for i in range(len(p.split("\\")))})
    assert values == sum(len(v) for v in GENERATED.values())


@needs_hivex
def test_generated_values(generated: Path) -> None:
    hive = _open(generated)
    types = hive.open_key("TYPES")
    assert types is not None
    got = {v.name: (v.type_name, v.data) for v in types.values()}
    assert got == {
        "": ("REG_SZ", "the default value"),
        "Sz": ("REG_SZ", "plain"),
        "SzUnicode": ("REG_SZ", "välue 値"),
        "SzJunk": ("REG_SZ", "cut"),
        "Expand": ("REG_EXPAND_SZ", "%SystemRoot%\\x"),
        "Multi": ("REG_MULTI_SZ", ["one", "two"]),
        "MultiEmpty": ("REG_MULTI_SZ", []),
        "Dword": ("REG_DWORD", 0xDEADBEEF),
        "DwordBE": ("REG_DWORD_BIG_ENDIAN", 0x01020304),
        "Qword": ("REG_QWORD", 0x123456789ABCDEF0),
        "Binary": ("REG_BINARY", b"\xde\xad\xbe\xef"),
        "Big": ("REG_BINARY", bytes(range(256)) * 80),
        "None": ("REG_NONE", b""),
        "Link": ("REG_LINK", "\\Registry\\Machine\\System"),
        "Rid": ("0x000001f4", b""),
        "ShortDword": ("REG_DWORD", b"\x01\x02"),
        "Wért": ("REG_DWORD", 2),
    }
    for name in ("Sz", "Expand", "Dword", "Qword"):
        value = types.value(name)
        assert value is not None
        oracle = hivexget_text(generated, "Types", name)
        expected = value.data
        if name == "Dword":
            assert isinstance(expected, int)
            expected -= 1 << 32                      # hivexget prints a signed int32
        assert oracle == str(expected), name
    assert types.value("wÉRT") is not None and types.value("sz ") is None
    assert hivexget(generated, "Types", "Big") == types.value("big").raw  # type: ignore[union-attr]
    assert hive.open_key(DEEP.lower()).value("depth").data == 60  # type: ignore[union-attr]
    assert hivexget_text(generated, DEEP, "Depth") == "60"
    many = hive.open_key("Many")
    assert many is not None and many.subkey_count == 700
    assert many.subkey("sub0699") is not None and many.subkey("Sub0700") is None
    assert hive.open_key("unicode\\ÄÖÜSS") is None       # no length-changing case folds
    assert hive.open_key("UNICODE\\ÄÖÜß").value("NAÏVE").data == 3  # type: ignore[union-attr]
    assert hive.open_key("Unicode\\日本語").value("名前").data == "値"  # type: ignore[union-attr]
    assert _data(hive, r"ControlSet001\Services\viostor", "ImagePath") == \
        "system32\\drivers\\viostor.sys"
    assert hive.open_key("ControlSet001\\Services\\viostor\\") is not None
    assert hive.open_key("Nope\\viostor") is None


# --------------------------------------------------------------------------
# malformed hives
# --------------------------------------------------------------------------

def _read_all(hive: Hive) -> int:
    n = 0
    for _, key in hive.walk():
        for value in key.values():
            assert value.data is not None
            n += 1
    return n


def _cell(data: bytes | bytearray, off: int) -> int:
    """File position of the record in the cell at cell offset ``off``."""
    return 4096 + off + 4


def _nk_field(data: bytes | bytearray, off: int, field: int) -> int:
    value: int = struct.unpack_from("<I", data, _cell(data, off) + field)[0]
    return value


@needs_hives
def test_truncated_at_many_lengths(hives: dict[str, Path]) -> None:
    """Every cut of a SAM hive: an ImageError or a readable prefix, never a crash or hang."""
    data = hives["regipy_SAM"].read_bytes()
    with promptly(5):
        for length in [*range(0, 600, 37), *range(4096, 4200, 13), *range(4200, len(data), 1531)]:
            try:
                _read_all(Hive(data[:length], "cut"))
            except ImageError as exc:
                assert exc.path == "cut"
                if length < 4096 + 32:
                    assert isinstance(exc, TruncatedImage)


@needs_hives
def test_bad_signatures(hives: dict[str, Path]) -> None:
    data = bytearray(hives["regipy_SAM"].read_bytes())
    for pos, structure in ((0, "regf base block"), (4096, "hbin")):
        bad = bytearray(data)
        bad[pos:pos + 4] = b"XXXX"
        with pytest.raises(CorruptImage) as err:
            Hive(bytes(bad), "SAM hive")
        assert err.value.structure == structure
    root = struct.unpack_from("<I", data, 36)[0]
    bad = bytearray(data)
    bad[_cell(bad, root):_cell(bad, root) + 2] = b"xx"
    with pytest.raises(CorruptImage, match="SAM hive: nk cell at offset"):
        Hive(bytes(bad), "SAM hive")


@needs_hives
def test_checksum_mismatch_is_a_finding(hives: dict[str, Path]) -> None:
    data = bytearray(hives["regipy_SAM"].read_bytes())
    data[200] ^= 0xFF                      # inside the checksummed 508 bytes, unused
    hive = Hive(bytes(data), "SAM hive")
    assert not hive.details["checksum_valid"]
    assert [f.id for f in hive.findings] == ["corrupt"]
    assert _read_all(hive) == 70


@needs_hives
def test_cell_offsets_outside_the_hbins(hives: dict[str, Path]) -> None:
    data = hives["regipy_SAM"].read_bytes()
    hive = Hive(data, "SAM hive")
    sam = hive.open_key("SAM")
    assert sam is not None
    for bad_off in (0xFFFFFFF0, len(data), 0x7, 0x10, 0xFFFFFFFF):
        bad = bytearray(data)
        struct.pack_into("<I", bad, _cell(bad, sam.offset) + 28, bad_off)  # subkey list
        with pytest.raises(CorruptImage, match="subkey list"):
            Hive(bytes(bad), "SAM hive").open_key("SAM\\Domains")
    bad = bytearray(data)
    struct.pack_into("<I", bad, 36, len(data))                            # root cell
    with pytest.raises(CorruptImage, match="nk cell"):
        Hive(bytes(bad), "SAM hive")


@needs_hives
def test_subkey_list_pointing_to_itself(hives: dict[str, Path]) -> None:
    """A list whose element is the list, and a key that is its own subkey."""
    data = hives["regipy_SAM"].read_bytes()
    sam = Hive(data, "x").open_key("SAM")
    assert sam is not None
    lst = _nk_field(data, sam.offset, 28)
    bad = bytearray(data)
    struct.pack_into("<I", bad, _cell(bad, lst) + 4, lst)                # element -> list
    with pytest.raises(CorruptImage, match="nk cell"):
        list(Hive(bytes(bad), "SAM hive").open_key("SAM").subkeys())  # type: ignore[union-attr]
    bad = bytearray(data)
    struct.pack_into("<I", bad, _cell(bad, lst) + 4, sam.offset)         # child -> itself
    hive = Hive(bytes(bad), "SAM hive")
    assert hive.open_key("SAM\\SAM\\SAM\\SAM") is not None                # finite paths work
    with promptly(1), pytest.raises(CorruptImage, match="cycle"):
        _read_all(hive)


@needs_hives
def test_ri_nesting_forever(hives: dict[str, Path]) -> None:
    """An ri list whose element is the ri list itself."""
    data = hives["regipy_SYSTEM"].read_bytes()
    hive = Hive(data, "x")
    for _, key in hive.walk():
        lst = _nk_field(data, key.offset, 28) if key.subkey_count else None
        if lst is not None and data[_cell(data, lst):_cell(data, lst) + 2] == b"ri":
            break
    else:
        raise AssertionError("no ri list in the SYSTEM hive")
    bad = bytearray(data)
    struct.pack_into("<I", bad, _cell(bad, lst) + 4, lst)
    broken = Hive(bytes(bad), "SYSTEM hive")
    target = broken.open_key(key.path)
    assert target is not None
    with pytest.raises(CorruptImage, match="ri list inside an ri list"):
        list(target.subkeys())
    with pytest.raises(CorruptImage, match="ri list inside an ri list"):
        target.subkey("no such key")


@needs_hives
def test_absurd_counts(hives: dict[str, Path]) -> None:
    data = hives["regipy_SAM"].read_bytes()
    sam = Hive(data, "x").open_key(r"SAM\Domains\Account")
    assert sam is not None and sam.value_count > 0
    for field, count, error in ((36, 0xFFFFFFFF, LimitExceeded), (20, 0xFFFFFFFF, LimitExceeded),
                                (36, 50000, CorruptImage), (20, 50000, CorruptImage)):
        bad = bytearray(data)
        struct.pack_into("<I", bad, _cell(bad, sam.offset) + field, count)
        with pytest.raises(error):
            key = Hive(bytes(bad), "SAM hive").open_key(r"SAM\Domains\Account")
            assert key is not None
            list(key.values())
            list(key.subkeys())
    assert limits.REGF_MAX_VALUES < 0xFFFFFFFF and limits.REGF_MAX_SUBKEYS < 0xFFFFFFFF


@needs_hives
def test_db_with_absurd_segments(hives: dict[str, Path]) -> None:
    """Big-data values: too few segments, a segment list outside the hive, a size too big."""
    data = hives["regipy_SYSTEM_2"].read_bytes()
    hive = Hive(data, "x")
    key = hive.open_key(r"ControlSet001\Control\ProductOptions")
    assert key is not None
    value = key.value("ProductPolicy")
    assert value is not None and len(value.raw) == 23748
    vk = _cell(data, value.offset)
    db_off = struct.unpack_from("<I", data, vk + 8)[0]
    db = _cell(data, db_off)
    assert data[db:db + 2] == b"db"
    cases: list[tuple[int, bytes, type[ImageError], str]] = [
        (db + 2, struct.pack("<H", 1), CorruptImage, "segments cannot hold"),
        (db + 2, struct.pack("<H", 0xFFFF), LimitExceeded, "exceed the limit"),
        (db + 2, struct.pack("<H", 4000), CorruptImage, "db segment list"),
        (db + 4, struct.pack("<I", 0x7FFFFFF0), CorruptImage, "db segment list"),
        (vk + 4, struct.pack("<I", 0x7FFFFFFF), LimitExceeded, "exceed the limit"),
        (vk + 4, struct.pack("<I", 0x80000010), CorruptImage, "resident data"),
    ]
    for pos, patch, error, message in cases:
        bad = bytearray(data)
        bad[pos:pos + len(patch)] = patch
        broken = Hive(bytes(bad), "SYSTEM hive").open_key(r"ControlSet001\Control\ProductOptions")
        assert broken is not None
        v = broken.value("ProductPolicy")
        assert v is not None
        with pytest.raises(error, match=message):
            assert v.raw

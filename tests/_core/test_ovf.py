"""The OVF descriptor reader: what ovftool-style descriptors say, read as xmllint reads
them (tests/_core/test_ova.py compares with xmllint on real packages); hostile XML
(entity expansion, external entities, deep nesting, huge documents) refused with an
ImageError naming the cap or the reason, never expanded, fetched or recursed into."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.ova_packages import BILLION_LAUGHS, descriptor
from test_limits import _cap_boundary

from imgscan import limits
from imgscan._core import ovf
from imgscan.errors import CorruptImage, ImageError, LimitExceeded

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><Info>&x;</Info></Envelope>
"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Envelope SYSTEM "http://example.invalid/ovf.dtd">
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"/>
"""
ENVELOPE = '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" ' \
    'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">{}</Envelope>'


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD],
                         ids=["billion-laughs", "external-entity", "external-dtd"])
def test_doctypes_and_entities_are_refused(data: bytes) -> None:
    with pytest.raises(CorruptImage, match="DOCTYPE or entities"):
        ovf.parse(data, "x.ovf")


@pytest.mark.parametrize("data", [b"", b"<Envelope", b"<a></b>", b"\xff\xfe<"])
def test_malformed_xml_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptImage, match="not well-formed"):
        ovf.parse(data, "x.ovf")


@pytest.mark.parametrize("data", [b'<?xml version="1.0" encoding="UTF-x"?><Envelope/>',
                                  b'<?xml version="1.0" encoding="ascii"?><a>\xff</a>'])
def test_an_unknown_or_wrong_encoding_is_corrupt(data: bytes) -> None:
    """The declaration names the encoding: one Python lacks, or bytes not in it (a fuzz
    regression: LookupError escaped)."""
    with pytest.raises(CorruptImage):
        ovf.parse(data, "x.ovf")


def test_another_root_is_corrupt() -> None:
    with pytest.raises(ImageError, match="not Envelope"):
        ovf.read(b"<html/>", "x.ovf")


def test_depth_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    data = ENVELOPE.format("<a>" * 9 + "</a>" * 9).encode()     # 10 levels with Envelope
    exc = _cap_boundary(monkeypatch, "OVF_MAX_DEPTH", 10, lambda: ovf.parse(data, "x.ovf"),
                        located=False)
    assert "element depth" in str(exc)


def test_elements_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    data = ENVELOPE.format("<a/>" * 99).encode()
    _cap_boundary(monkeypatch, "OVF_MAX_ELEMENTS", 100, lambda: ovf.parse(data, "x.ovf"),
                  located=False)


def test_descriptor_bytes_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    data = ENVELOPE.format("").encode()
    _cap_boundary(monkeypatch, "OVF_MAX_DESCRIPTOR_BYTES", len(data),
                  lambda: ovf.parse(data, "x.ovf"), located=False)


def test_disks_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    disks = "".join(f'<Disk ovf:diskId="d{i}" ovf:capacity="1"/>' for i in range(3))
    data = ENVELOPE.format(f"<DiskSection>{disks}</DiskSection>").encode()
    _cap_boundary(monkeypatch, "OVF_MAX_DISKS", 3, lambda: ovf.read(data, "x.ovf"),
                  located=False)


def test_deep_nesting_past_the_cap_never_recurses() -> None:
    data = ENVELOPE.format("<a>" * 100000 + "</a>" * 100000).encode()
    with pytest.raises(LimitExceeded, match="OVF_MAX_DEPTH"):
        ovf.parse(data, "x.ovf")
    assert limits.OVF_MAX_DEPTH < 1000


@pytest.mark.parametrize(("capacity", "units", "expected"), [
    ("16", "byte * 2^30", 16 << 30),
    ("64", "byte * 2^20", 64 << 20),
    ("1000", "byte * 10^3", 1000000),
    ("4096", None, 4096),
    ("4096", "byte", 4096),
    ("2", "GigaBytes", 2 << 30),
    ("${disk.size}", "byte * 2^30", None),
    ("1", "furlong", None),
])
def test_capacity_units(capacity: str, units: str | None, expected: int | None) -> None:
    assert ovf.capacity_bytes(capacity, units) == expected


@pytest.mark.parametrize(("uri", "expected"), [
    ("http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized",
     ("vmdk", "streamOptimized")),
    ("http://www.vmware.com/specifications/vmdk.html#sparse", ("vmdk", "sparse")),
    ("http://technet.microsoft.com/en-us/library/bb676673.aspx", (None, None)),
    (None, (None, None)),
])
def test_format_uris(uri: str | None, expected: tuple[str | None, str | None]) -> None:
    assert ovf.format_name(uri) == expected


def test_problems_are_collected_not_raised(tmp_path: Path) -> None:
    """Repeated ids, a disk naming an undeclared file, an unreadable capacity, two
    firmware values: each a problem the package reports, the rest still read."""
    text = descriptor([("a.vmdk", tmp_path, 1 << 20)], firmware="efi")
    text = text.replace('ovf:fileRef="file1"', 'ovf:fileRef="nofile"')
    text = text.replace('ovf:capacity="1"', 'ovf:capacity="${size}"')
    text = text.replace("</VirtualHardwareSection>",
                        '<vmw:Config vmw:key="firmware" vmw:value="bios"/>'
                        "</VirtualHardwareSection>")
    d = ovf.read(text.encode(), "x.ovf")
    assert len(d.problems) == 3, d.problems
    assert d.firmware is None
    assert d.disks[0]["capacity"] is None and d.disks[0]["href"] is None
    assert d.os_type == "windows9Server64Guest"


@pytest.mark.parametrize("value", ["\u0661\u0662\u0663", "\u00b2", "\uff11\uff12",
                                   "1" * 21, "-1", "1e3"],
                         ids=["arabic-indic", "superscript", "fullwidth", "21-digits",
                              "negative", "exponent"])
@pytest.mark.parametrize(("before", "name", "where"), [
    ('ovf:capacity="1"', "capacity", "disk 'vmdisk1'"),
    ('ovf:diskId="vmdisk1"', "populatedSize", "disk 'vmdisk1'"),
    ('ovf:id="file1"', "size", "file 'file1'"),
    ('<OperatingSystemSection ovf:id="1"', "id", "OperatingSystemSection")])
def test_a_number_not_in_ascii_digits_is_a_problem_naming_it(
        tmp_path: Path, value: str, before: str, name: str, where: str) -> None:
    """OVF's counts and sizes are xs:long / xs:unsignedLong / xs:unsignedShort: ASCII
    digits only. Other scripts' digits pass ``str.isdigit``; ``int`` reads some
    (Arabic-Indic "١٢٣" as 123) and refuses others ("²"). Neither is taken as a number
    nor makes the whole descriptor unreadable: the value is left unread, and a problem
    names the attribute and the value."""
    disk = tmp_path / "a.vmdk"
    disk.write_bytes(b"x")
    text = descriptor([("a.vmdk", disk, 1 << 20)])
    if name in ("populatedSize", "size"):        # the helper writes none / a true size
        text = text.replace(f' ovf:{name}="1"', "")
        text = text.replace(before, f'{before} ovf:{name}="{value}"')
    else:
        text = text.replace(before, before.replace('"1"', f'"{value}"'))
    d = ovf.read(text.encode(), "x.ovf")
    assert d.problems == [f"{where}: ovf:{name} {value!r} is not a number (OVF's integers "
                          "are ASCII digits, at most 20)"]
    read = {"capacity": d.disks[0]["capacity"], "populatedSize": d.disks[0]["populated_size"],
            "size": d.files["file1"]["size"], "id": d.os_id}
    assert read[name] is None


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0), ("42", 42), (" 42\n", 42), ("9" * 20, int("9" * 20)), (None, None),
    ("", None), ("\u0661", None), ("\u00b2", None), ("\u00a042", None), ("+4", None)])
def test_xs_integer(text: str | None, expected: int | None) -> None:
    assert ovf.xs_integer(text) == expected


@pytest.mark.parametrize(("firmware", "expected"), [("EFI", "efi"), ("EFI64", "efi"),
                                                    ("BIOS", "bios")])
def test_virtualbox_firmware(firmware: str, expected: str) -> None:
    """VirtualBox's export: its own machine configuration inside the VirtualSystem, the
    OVF elements prefixed with ``ovf:`` (as VBoxManage export writes them)."""
    text = f"""<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1"
 xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
 xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
 xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <ovf:VirtualSystem ovf:id="vm">
    <ovf:OperatingSystemSection ovf:id="94"><ovf:Info>os</ovf:Info>
      <ovf:Description>Ubuntu_64</ovf:Description></ovf:OperatingSystemSection>
    <ovf:VirtualHardwareSection><ovf:Info>hw</ovf:Info>
      <ovf:Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>20</rasd:ResourceType>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType></ovf:Item>
      <ovf:Item><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType></ovf:Item>
    </ovf:VirtualHardwareSection>
    <vbox:Machine ovf:required="false" name="vm"><Hardware>
      <Firmware type="{firmware}"/></Hardware></vbox:Machine>
  </ovf:VirtualSystem>
</Envelope>"""
    d = ovf.read(text.encode(), "x.ovf")
    assert d.firmware == expected
    assert (d.os_id, d.os_description) == (94, "Ubuntu_64")
    assert [c["subtype"] for c in d.controllers] == ["AHCI"]
    assert [n["subtype"] for n in d.nics] == ["E1000"]

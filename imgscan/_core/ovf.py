"""The OVF descriptor: an OVF package's disks, firmware, guest OS and virtual hardware.

Source: DMTF DSP0243 "Open Virtualization Format Specification" 1.1 and 2.1
(§7 Envelope, §8 References, §9.1 DiskSection, §9.4 VirtualHardwareSection,
§9.6 OperatingSystemSection), DSP0004 Annex C for ``capacityAllocationUnits``
(``byte * 2^30``), CIM_ResourceAllocationSettingData for the hardware items'
``ResourceType`` (5 IDE, 6 parallel SCSI, 10 Ethernet, 17 disk drive, 20 other
storage: SATA, NVMe) and ``ResourceSubType``, and VMware's ovftool output for
its ``vmw:`` extensions (``vmw:osType``, ``<vmw:Config vmw:key="firmware"
vmw:value="efi"/>``). Elements are matched by local name, so OVF 1.x and 2.x
namespaces (and OVF 2's ``EthernetPortItem`` / ``StorageItem``) read alike.

The descriptor is untrusted XML, parsed with the standard library's expat
driven directly rather than ``xml.etree``'s own parse: no OVF descriptor has a
DOCTYPE, so any DOCTYPE, entity declaration or external entity is refused
outright (entity expansion, the "billion laughs", and external entities never
happen), and the element depth, element count and byte size are capped
(:data:`limits.OVF_MAX_DEPTH`, :data:`limits.OVF_MAX_ELEMENTS`,
:data:`limits.OVF_MAX_DESCRIPTOR_BYTES`). defusedxml would do the same with a
dependency more; expat's own guards are not relied on.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.parsers import expat

from imgscan import limits
from imgscan.errors import CorruptImage

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The ``ovf:`` namespaces of OVF 1.x and 2.x, and VMware's.
OVF_NAMESPACES = ("http://schemas.dmtf.org/ovf/envelope/1",
                  "http://schemas.dmtf.org/ovf/envelope/2")
VMW_NAMESPACE = "http://www.vmware.com/schema/ovf"

#: CIM_ResourceAllocationSettingData.ResourceType values the report names.
RESOURCE_TYPES = {5: "ide", 6: "scsi", 10: "ethernet", 17: "disk", 20: "storage"}
CONTROLLER_TYPES = (5, 6, 20)
NIC_TYPE = 10
DISK_DRIVE_TYPE = 17

#: DSP0004 programmatic units: ``byte``, ``byte * 2^30``, ``byte * 10^9``.
_UNITS = re.compile(r"^\s*byte\s*(?:\*\s*(2|10)\s*\^\s*(\d{1,2})\s*)?$",
                    re.IGNORECASE | re.ASCII)
#: Units some writers use instead (OVF 1.0 era).
_NAMED_UNITS = {"kilobytes": 1 << 10, "megabytes": 1 << 20, "gigabytes": 1 << 30,
                "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}
#: ``ovf:/disk/ID`` or ``/disk/ID``: a disk drive item's HostResource.
_DISK_REF = re.compile(r"^(?:ovf:)?/disk/(.+)$")


class _Refused(Exception):
    """Raised inside an expat handler to stop the parse (a DOCTYPE, an entity)."""


def parse(data: bytes, path: str, structure: str = "OVF descriptor") -> ET.Element:
    """The element tree of ``data``. Element tags are local names (``Disk``, ``Item``):
    every reader here matches by local name, so OVF 1.x and 2.x read alike, and the
    tree is walked without splitting names; attributes keep ``{namespace}local``.

    Raises :class:`ImageError` (``CorruptImage``, ``LimitExceeded``) for XML
    that is malformed, declares a DOCTYPE or entities, or passes a cap.
    """
    limits.enforce(len(data), "OVF_MAX_DESCRIPTOR_BYTES", path, structure, None,
                   "descriptor bytes")
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    builder = ET.TreeBuilder()
    depth = 0
    count = 0

    def refuse(*_: object) -> int:
        raise _Refused("it declares a DOCTYPE or entities, which no OVF descriptor has "
                       "(entity expansion and external entities are refused)")

    def attribute(name: str) -> str:
        return "{" + name if "}" in name else name

    # the caps read once per parse (a test that moves them still reaches this parse)
    max_depth, max_elements = limits.OVF_MAX_DEPTH, limits.OVF_MAX_ELEMENTS

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, count
        depth += 1
        count += 1
        if depth > max_depth or count > max_elements:
            limits.enforce(depth, "OVF_MAX_DEPTH", path, structure, None, "element depth")
            limits.enforce(count, "OVF_MAX_ELEMENTS", path, structure, None, "elements")
        builder.start(name.rpartition("}")[2],
                      {attribute(k): v for k, v in attrs.items()})

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(name.rpartition("}")[2])

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise CorruptImage(path, structure, None, str(exc)) from None
    except expat.ExpatError as exc:
        raise CorruptImage(path, structure, None,
                           f"not well-formed XML: {expat.ErrorString(exc.code)} at line "
                           f"{exc.lineno}, column {exc.offset}") from None
    except (LookupError, ValueError) as exc:
        # an encoding the declaration names that Python does not know, or bytes it cannot
        # decode in it
        raise CorruptImage(path, structure, None, f"unreadable text: {exc}") from None
    return builder.close()


def attr(element: ET.Element, name: str) -> str | None:
    """Attribute ``name`` in an ``ovf:`` namespace, or without one (some writers omit it)."""
    for ns in OVF_NAMESPACES:
        value = element.get(f"{{{ns}}}{name}")
        if value is not None:
            return value
    return element.get(name)


def children(element: ET.Element, name: str) -> list[ET.Element]:
    return element.findall(name)


def descendants(element: ET.Element, name: str) -> list[ET.Element]:
    return list(element.iter(name))


def child_text(element: ET.Element, name: str) -> str | None:
    c = element.find(name)
    return None if c is None else (c.text or "").strip()


#: The most digits of an ``xs:unsignedLong`` (2^64 - 1 has 20).
_MAX_DIGITS = 20
#: What XML Schema's ``whiteSpace="collapse"`` removes around a number.
_XML_SPACE = " \t\r\n"


def xs_integer(text: str | None) -> int | None:
    """``text`` as OVF types its counts and sizes (``xs:long``, ``xs:unsignedLong``,
    ``xs:unsignedShort``): ASCII digits, at most 20, with XML white space around them;
    None for anything else. ``str.isdigit`` alone is not enough: it also takes other
    scripts' digits, which ``int`` reads (Arabic-Indic ``"١٢٣"`` is 123) or refuses
    (superscript ``"²"``), and neither is a number in an OVF descriptor."""
    if text is None:
        return None
    digits = text.strip(_XML_SPACE)
    if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_DIGITS:
        return None
    return int(digits)


def capacity_bytes(capacity: str | None, units: str | None) -> int | None:
    """A disk's ``ovf:capacity`` in bytes under ``ovf:capacityAllocationUnits``
    (default ``byte``); None when either is not a plain number (:func:`xs_integer`) /
    known unit (a ``${property}`` reference, a typo)."""
    value = xs_integer(capacity)
    if value is None:
        return None
    if units is None:
        return value
    named = _NAMED_UNITS.get(units.strip().lower())
    if named is not None:
        return value * named
    m = _UNITS.match(units)
    if m is None:
        return None
    return value if m.group(1) is None else value * int(m.group(1)) ** int(m.group(2))


def format_name(uri: str | None) -> tuple[str | None, str | None]:
    """A disk's ``ovf:format`` URI as (format, subformat):
    ``...vmdk.html#streamOptimized`` -> ("vmdk", "streamOptimized")."""
    if not uri:
        return None, None
    page, _, fragment = uri.rpartition("#")
    if not page:
        page, fragment = uri, ""
    name = page.rstrip("/").rpartition("/")[2].lower()
    for known in ("vmdk", "vhdx", "vhd", "qcow2", "raw", "iso"):
        if name.startswith(known):
            return known, fragment or None
    return None, fragment or None


class Descriptor:
    """What an OVF descriptor says, as plain facts (``as_dict`` is the contract's ``ova``
    keys it supplies); ``problems`` are statements that could not be used."""

    def __init__(self, root: ET.Element, path: str) -> None:
        if root.tag != "Envelope":
            raise CorruptImage(path, "OVF descriptor", None,
                               f"the root element is {root.tag!r}, not Envelope")
        self.path = path
        self.problems: list[str] = []
        self.files = self._files(root)
        systems = descendants(root, "VirtualSystem")
        self.virtual_systems = len(systems)
        system = systems[0] if systems else root
        self.system_id = attr(system, "id") if systems else None
        self.disks = self._disks(root, system)
        self.os_id, self.os_type, self.os_description = self._os(system)
        self.firmware = self._firmware(system)
        self.virtual_system_type: str | None = None
        for s in descendants(system, "System"):
            self.virtual_system_type = child_text(s, "VirtualSystemType")
            break
        self.controllers, self.nics = self._hardware(system)

    def _files(self, root: ET.Element) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for refs in children(root, "References"):
            for f in children(refs, "File"):
                fid, href = attr(f, "id"), attr(f, "href")
                if fid is None or href is None:
                    self.problems.append("a References/File lacks ovf:id or ovf:href")
                    continue
                if fid in out:
                    self.problems.append(f"file id {fid!r} is declared twice")
                    continue
                out[fid] = {"href": href, "size": self._number(f, "size", f"file {fid!r}")}
        return out

    def _disks(self, root: ET.Element, system: ET.Element) -> list[dict[str, Any]]:
        disks: dict[str, dict[str, Any]] = {}
        for section in descendants(root, "DiskSection"):
            for d in children(section, "Disk"):
                limits.enforce(len(disks) + 1, "OVF_MAX_DISKS", self.path, "OVF DiskSection", None,
                               "disks")
                did = attr(d, "diskId")
                if did is None or did in disks:
                    self.problems.append(f"a Disk has a missing or repeated ovf:diskId "
                                         f"({did!r})")
                    continue
                capacity = attr(d, "capacity")
                units = attr(d, "capacityAllocationUnits")
                file_ref = attr(d, "fileRef")
                uri = attr(d, "format")
                disks[did] = {
                    "disk_id": did,
                    "file_ref": file_ref,
                    "href": (self.files.get(file_ref) or {}).get("href") if file_ref else None,
                    "capacity": capacity_bytes(capacity, units),
                    "capacity_text": capacity,
                    "capacity_units": units,
                    "format_uri": uri,
                    "populated_size": self._number(d, "populatedSize", f"disk {did!r}"),
                    "controller": None,
                }
                if capacity is not None and xs_integer(capacity) is None:
                    self._not_a_number(f"disk {did!r}", "capacity", capacity)
                elif capacity_bytes(capacity, units) is None:
                    self.problems.append(f"disk {did!r}: capacity {capacity!r} in units "
                                         f"{units!r} is not a size")
                if file_ref is not None and file_ref not in self.files:
                    self.problems.append(f"disk {did!r} names file {file_ref!r}, which "
                                         "References does not declare")
        # The VirtualSystem's order: its disk drive items, in document order.
        ordered: list[dict[str, Any]] = []
        items = _items(system)
        controllers = {child_text(i, "InstanceID"): i for i in items
                       if _resource_type(i) in CONTROLLER_TYPES}
        for item in items:
            if _resource_type(item) != DISK_DRIVE_TYPE:
                continue
            for host in item.findall("HostResource"):
                m = _DISK_REF.match((host.text or "").strip())
                disk = disks.get(m.group(1)) if m else None
                if disk is not None and disk not in ordered:
                    parent = controllers.get(child_text(item, "Parent"))
                    if parent is not None:
                        disk["controller"] = _controller_name(parent)
                    ordered.append(disk)
        ordered.extend(d for d in disks.values() if d not in ordered)
        return ordered

    def _number(self, element: ET.Element, name: str, where: str) -> int | None:
        """Attribute ``ovf:name`` of ``element`` as a number (:func:`xs_integer`); None
        when it is absent, or, as a problem, when it is not a number."""
        value = attr(element, name)
        number = xs_integer(value)
        if value is not None and number is None:
            self._not_a_number(where, name, value)
        return number

    def _not_a_number(self, where: str, name: str, value: str) -> None:
        self.problems.append(f"{where}: ovf:{name} {value!r} is not a number (OVF's "
                             f"integers are ASCII digits, at most {_MAX_DIGITS})")

    def _os(self, system: ET.Element) -> tuple[int | None, str | None, str | None]:
        for section in descendants(system, "OperatingSystemSection"):
            os_type = section.get(f"{{{VMW_NAMESPACE}}}osType")
            return (self._number(section, "id", "OperatingSystemSection"), os_type,
                    child_text(section, "Description"))
        return None, None, None

    def _firmware(self, system: ET.Element) -> str | None:
        """``efi`` or ``bios`` from ``vmw:Config key=firmware`` (or a ``vmw:firmware``
        attribute), or VirtualBox's ``<vbox:Machine>`` ``<Firmware type="EFI"/>``
        (EFI, EFI32, EFI64, EFIDUAL, BIOS); None when the descriptor does not say."""
        found: set[str] = set()
        for element in system.iter():
            value = element.get(f"{{{VMW_NAMESPACE}}}firmware")
            if value is None and element.tag == "Config" \
                    and element.get(f"{{{VMW_NAMESPACE}}}key") == "firmware":
                value = element.get(f"{{{VMW_NAMESPACE}}}value")
            if value is None and element.tag == "Firmware" and element.get("type"):
                kind = element.get("type", "").strip().lower()
                value = "efi" if kind.startswith("efi") else kind
            if value is not None:
                found.add(value.strip().lower())
        if len(found) > 1:
            self.problems.append(f"the firmware is given as several values ({sorted(found)})")
            return None
        return found.pop() if found else None

    @staticmethod
    def _hardware(system: ET.Element) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        controllers: list[dict[str, Any]] = []
        nics: list[dict[str, Any]] = []
        for item in _items(system):
            kind = _resource_type(item)
            if kind in CONTROLLER_TYPES:
                controllers.append({"type": RESOURCE_TYPES[kind],
                                    "subtype": child_text(item, "ResourceSubType"),
                                    "instance_id": child_text(item, "InstanceID")})
            elif kind == NIC_TYPE:
                nics.append({"subtype": child_text(item, "ResourceSubType"),
                             "connection": child_text(item, "Connection")})
        return controllers, nics


def _items(system: ET.Element) -> list[ET.Element]:
    out: list[ET.Element] = []
    for section in descendants(system, "VirtualHardwareSection"):
        out.extend(c for c in section if c.tag in ("Item", "EthernetPortItem", "StorageItem"))
    return out


def _resource_type(item: ET.Element) -> int | None:
    return xs_integer(child_text(item, "ResourceType"))


def _controller_name(item: ET.Element) -> str:
    kind = RESOURCE_TYPES.get(_resource_type(item) or 0, "other")
    sub = child_text(item, "ResourceSubType")
    return f"{kind}/{sub}" if sub else kind


def read(data: bytes, path: str) -> Descriptor:
    """The descriptor in ``data``; :class:`~imgscan.errors.ImageError` when it cannot be
    read at all."""
    root = parse(data, path)
    try:
        return Descriptor(root, path)
    except (ValueError, OverflowError) as exc:      # a number no reader could use
        raise CorruptImage(path, "OVF descriptor", None, str(exc)) from None


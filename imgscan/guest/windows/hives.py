"""Facts from the SYSTEM and SOFTWARE hives, each with the value that proves it.

Sources: ../shared/docs/windows-inspection.md sections 0-4 (libguestfs
daemon/inspect_fs_windows.ml for the keys it reads; virt-v2v and the
Huawei IMS guide for the rest). Paths are relative to the hive root; the
control set is ``ControlSet%03d % Select\\Current``, never a literal
``CurrentControlSet`` (it exists only in a live registry).

Every function here takes an open :class:`~imgscan._core.regf.Hive` and a
:class:`Facts` to fill, so the tests can feed them the real hives of the
corpus directly. A value that cannot be read (a damaged cell) becomes a
finding naming the fact, never an exception.
"""

from __future__ import annotations

import re

from imgscan import limits
from imgscan._core import regf_log
from imgscan._core.guid import guid_text  # Microsoft mixed-endian GUID text
from imgscan._core.regf import Hive
from imgscan.errors import ImageError
from imgscan.findings import CORRUPT, Finding, finding_id

from .structures import (
    DIGITAL_PRODUCT_ID4,
    MOUNTED_DEVICE_GPT,
    MOUNTED_DEVICE_GPT_MAGIC,
    MOUNTED_DEVICE_MBR,
    WINHTTP_PROXY_TYPE_PROXY,
    WINHTTP_SETTINGS_HEADER,
    field,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from imgscan._core.regf import Key

CURRENT_VERSION = "Microsoft\\Windows NT\\CurrentVersion"
OEM_INFORMATION = "Microsoft\\Windows\\CurrentVersion\\OEMInformation"
RDP_TCP = "Control\\Terminal Server\\WinStations\\RDP-Tcp"
RDP_POLICY = "Policies\\Microsoft\\Windows NT\\Terminal Services"

#: Storage, paravirtual and vendor driver services reported in ``drivers``
#: (doc sections C5, C6 and 7). Lookups are case-insensitive.
DRIVER_SERVICES = (
    # IDE / AHCI (C5)
    "atapi", "intelide", "pciide", "msahci", "storahci", "iaStorV",
    # KVM virtio-win (C6)
    "viostor", "vioscsi", "netkvm", "BALLOON", "vioser", "viorng", "pvpanic", "fwcfg",
    "qemufwcfg", "viofs", "vioinput",
    # Xen / Huawei UVP PV drivers (doc section 7) and Red Hat's old Xen driver
    "xenvbd", "xennet", "xenbus", "xenpci", "xenfilt", "xeniface", "rhelscsi",
    # Hyper-V (for contrast in reports)
    "vmbus", "storvsc",
    # agents some clouds want removed (import-rules.md 2.1: AWS VMware Tools, Alibaba qemu-ga)
    "VMTools", "QEMU-GA",
)
FIREWALL_POLICY = "Services\\SharedAccess\\Parameters\\FirewallPolicy"
#: The firewall profiles (Windows Firewall with Advanced Security), as the registry names
#: them and as the ``firewall_enabled`` fact does.
FIREWALL_PROFILES = {"DomainProfile": "domain", "StandardProfile": "private",
                     "PublicProfile": "public"}
RDP_PORT = "3389"
#: The inbound allow rules looked for besides RDP's: WinRM over HTTP and HTTPS (TCP 5985,
#: 5986) and ICMPv4 echo requests (``Protocol=1`` with ``ICMP4=8:*``, type 8), which
#: Azure asks the firewall to let in (prepare-for-upload-vhd-image.md).
WINRM_PORTS = ("5985", "5986")
ICMP_ECHO_REQUEST = "8"
#: The values that show a restart is owed (no pending Windows updates, AWS
#: prepare-vm-image): CBS's and Windows Update's reboot keys in SOFTWARE, the file
#: renames Session Manager performs at the next boot in SYSTEM.
CBS = "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
REBOOT_KEYS = (f"{CBS}\\RebootPending",
               "Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\RebootRequired")
#: The servicing packages of updates: ``Package_for_KB4474419~31bf3856ad364e35~...`` (also
#: ``Package_1_for_KB...``, ``Package_for_RollupFix...`` carries no KB number).
KB_PACKAGE = re.compile(r"Package(?:_\d+)?_for_(KB\d+)~", re.I)
#: .NET Framework 4.x: the Release DWORD of the full profile (378389 is 4.5).
NET_V4 = "Microsoft\\NET Framework Setup\\NDP\\v4\\Full"
#: The WinHTTP proxy setting netsh winhttp set/reset proxy writes.
WINHTTP_SETTINGS = "Microsoft\\Windows\\CurrentVersion\\Internet Settings\\Connections"
WINLOGON = "Microsoft\\Windows NT\\CurrentVersion\\Winlogon"


class Facts:
    """Facts with their evidence, and findings for those that could not be read."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.evidence: dict[str, str] = {}
        self.findings: list[Finding] = []

    def put(self, name: str, value: Any, evidence: str) -> None:
        self.values[name] = value
        self.evidence[name] = evidence

    def fail(self, name: str, why: str, fid: str = CORRUPT, severity: str = "warning") -> None:
        self.values.setdefault(name, None)
        self.findings.append(Finding(fid, severity,  # type: ignore[arg-type]
                                     f"windows: {name} not read: {why}"))


def value(hive: Hive, path: str, name: str) -> Any:
    """The decoded data of value ``name`` under key ``path``, None if either is absent."""
    key = hive.open_key(path)
    if key is None:
        return None
    v = key.value(name)
    return None if v is None else v.data


def _where(hive: Hive, path: str, name: str | None = None) -> str:
    return f"{hive.name}:{path}" + (f"\\{name}" if name is not None else "")


def _get(facts: Facts, fact: str, hive: Hive, path: str, name: str,
         kind: type | tuple[type, ...]) -> Any:
    """Read one value into ``facts`` (evidence: the hive path); None when absent."""
    try:
        data = value(hive, path, name)
    except ImageError as exc:
        facts.fail(fact, f"{_where(hive, path, name)}: {exc}", finding_id(exc))
        return None
    if data is not None and not isinstance(data, kind):
        facts.fail(fact, f"{_where(hive, path, name)} has an unexpected type "
                         f"({type(data).__name__})")
        return None
    if data is not None:
        facts.put(fact, data, _where(hive, path, name))
    return data


# -- SYSTEM --------------------------------------------------------------------

def control_set(hive: Hive, facts: Facts) -> str | None:
    """``ControlSet00N`` named by ``Select\\Current``, or None (a finding says why)."""
    try:
        current = value(hive, "Select", "Current")
    except ImageError as exc:
        facts.fail("control_set", f"{_where(hive, 'Select', 'Current')}: {exc}", finding_id(exc))
        return None
    if not isinstance(current, int) or not 0 < current < 1000:
        facts.fail("control_set", f"{_where(hive, 'Select', 'Current')} is {current!r}")
        return None
    name = f"ControlSet{current:03d}"
    if hive.open_key(name) is None:
        facts.fail("control_set", f"Select\\Current names {name}, which does not exist")
        return None
    facts.put("control_set", name, _where(hive, "Select", "Current"))
    return name


def system_facts(hive: Hive, facts: Facts) -> None:
    """Hostname, drivers, RDP, DHCP, boot devices, mounted devices, fast startup."""
    cs = control_set(hive, facts)
    if cs is None:
        return
    host = _get(facts, "hostname", hive, f"{cs}\\Services\\Tcpip\\Parameters", "Hostname", str)
    if not host:
        _get(facts, "hostname", hive, f"{cs}\\Control\\ComputerName\\ComputerName",
             "ComputerName", str)
    _drivers(hive, cs, facts)
    _rdp(hive, cs, facts)
    _dhcp(hive, cs, facts)
    _get(facts, "firmware_boot_device", hive, f"{cs}\\Control", "FirmwareBootDevice", str)
    _get(facts, "system_boot_device", hive, f"{cs}\\Control", "SystemBootDevice", str)
    _get(facts, "hiberboot_enabled", hive, f"{cs}\\Control\\Session Manager\\Power",
         "HiberbootEnabled", int)
    _get(facts, "processor_architecture", hive,
         f"{cs}\\Control\\Session Manager\\Environment", "PROCESSOR_ARCHITECTURE", str)
    _cloudbase_service(hive, cs, facts)
    _mounted_devices(hive, facts)
    rtu = _get(facts, "real_time_is_universal", hive, f"{cs}\\Control\\TimeZoneInformation",
               "RealTimeIsUniversal", int)
    if rtu is not None:
        facts.values["real_time_is_universal"] = rtu != 0
    elif "real_time_is_universal" not in facts.values:
        facts.put("real_time_is_universal", False,
                  _where(hive, f"{cs}\\Control\\TimeZoneInformation", "RealTimeIsUniversal")
                  + " absent (local time)")
    _firewall(hive, cs, facts)
    _azure_settings(hive, cs, facts)
    _memory_and_renames(hive, cs, facts)


def _absent(facts: Facts, fact: str, hive: Hive, path: str, name: str) -> None:
    """``fact`` is null because the value is not there (the evidence says so), unless a
    finding already says it could not be read."""
    if fact not in facts.values:
        facts.put(fact, None, _where(hive, path, name) + " absent")


def _azure_settings(hive: Hive, cs: str, facts: Facts) -> None:
    """``san_policy`` (partmgr's SanPolicy: 1 OnlineAll, 2 OfflineShared, 3 OfflineAll,
    4 OfflineInternal; windows-inspection.md "SanPolicy"), ``rdp_port`` and ``rdp_nla``
    (the RDP-Tcp listener's PortNumber and UserAuthentication, doc C8)."""
    for fact, path, name in (
            ("san_policy", f"{cs}\\Services\\partmgr\\Parameters", "SanPolicy"),
            ("rdp_port", f"{cs}\\{RDP_TCP}", "PortNumber"),
            ("rdp_nla", f"{cs}\\{RDP_TCP}", "UserAuthentication")):
        if _get(facts, fact, hive, path, name, int) is None:
            _absent(facts, fact, hive, path, name)
    if isinstance(facts.values.get("rdp_nla"), int):
        facts.values["rdp_nla"] = facts.values["rdp_nla"] != 0


def _memory_and_renames(hive: Hive, cs: str, facts: Facts) -> None:
    """``paging_files`` (Memory Management's PagingFiles lines: ``C:\\pagefile.sys MIN MAX``,
    ``?:\\pagefile.sys`` when Windows manages every drive's size) and
    ``pending_file_renames`` (how many names Session Manager's
    PendingFileRenameOperations holds: files an update replaces at the next boot)."""
    sm = f"{cs}\\Control\\Session Manager"
    pages = _get(facts, "paging_files", hive, f"{sm}\\Memory Management", "PagingFiles",
                 (list, str))
    if isinstance(pages, str):
        facts.values["paging_files"] = [pages]
    elif pages is None:
        _absent(facts, "paging_files", hive, f"{sm}\\Memory Management", "PagingFiles")
    # Read raw: its pairs (source, destination) use an empty destination for "delete",
    # which a REG_MULTI_SZ reader takes for the end of the list.
    where = _where(hive, sm, "PendingFileRenameOperations")
    try:
        key = hive.open_key(sm)
        renames = key.value("PendingFileRenameOperations") if key is not None else None
        raw = renames.raw if renames is not None else b""
    except ImageError as exc:
        facts.fail("pending_file_renames", f"{where}: {exc}", finding_id(exc))
        return
    names = raw[:len(raw) & ~1].decode("utf-16-le", "replace").split("\0")
    facts.put("pending_file_renames", sum(1 for n in names if n),
              where + ("" if renames is not None else " absent"))


def firewall_rule_fields(text: str) -> dict[str, list[str]]:
    """The ``Name=Value`` fields of one ``FirewallRules`` value
    (``v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=3389|...``); a name may
    repeat (several ``LPort``)."""
    fields: dict[str, list[str]] = {}
    for part in text.split("|")[1:]:
        name, eq, val = part.partition("=")
        if eq:
            fields.setdefault(name.lower(), []).append(val)
    return fields


def _allows(fields: dict[str, list[str]], protocol: str, ports: tuple[str, ...] = (),
            icmp4: str | None = None) -> bool:
    """Whether one rule's fields make it an active inbound allow rule for ``protocol``
    (6 TCP, 1 ICMPv4) and one of ``ports`` (TCP) or ICMPv4 type ``icmp4``."""
    def first(name: str) -> str:
        return (fields.get(name) or [""])[0].lower()

    if not (first("action") == "allow" and first("active") == "true" and first("dir") == "in"):
        return False
    if protocol == "6":
        return first("protocol") in ("6", "") and any(p in fields.get("lport", [])
                                                      for p in ports)
    types = [t.partition(":")[0] for t in fields.get("icmp4", [])]
    return first("protocol") == protocol and (not types or icmp4 in types or "*" in types)


#: The firewall facts of allow rules: fact -> (protocol, TCP ports, ICMPv4 type, what
#: the evidence says was looked for).
ALLOW_RULES: dict[str, tuple[str, tuple[str, ...], str | None, str]] = {
    "rdp_firewall_rules": ("6", (RDP_PORT,), None, "LPort=3389"),
    "winrm_firewall_rules": ("6", WINRM_PORTS, None, "LPort=5985 or 5986"),
    "icmp_firewall_rules": ("1", (), ICMP_ECHO_REQUEST, "Protocol=1, ICMP4=8 (echo request)"),
}


def _firewall(hive: Hive, cs: str, facts: Facts) -> None:
    """``firewall_enabled`` (profile -> EnableFirewall) and, per :data:`ALLOW_RULES`, the
    names of the active inbound rules allowing RDP (TCP 3389; doc section C8), WinRM
    (TCP 5985/5986) and ICMPv4 echo requests."""
    base = f"{cs}\\{FIREWALL_POLICY}"
    try:
        enabled: dict[str, bool] = {}
        for key, name in FIREWALL_PROFILES.items():
            data = value(hive, f"{base}\\{key}", "EnableFirewall")
            if isinstance(data, int):
                enabled[name] = data != 0
        rules_key = hive.open_key(f"{base}\\FirewallRules")
        allowed: dict[str, list[str]] = {fact: [] for fact in ALLOW_RULES}
        if rules_key is not None:
            for i, v in enumerate(rules_key.values()):
                if i >= limits.WINDOWS_MAX_ENTRIES:
                    break
                if not isinstance(v.data, str):
                    continue
                fields = firewall_rule_fields(v.data)
                for fact, (protocol, ports, icmp4, _) in ALLOW_RULES.items():
                    if _allows(fields, protocol, ports, icmp4):
                        allowed[fact].append(v.name)
    except ImageError as exc:
        facts.fail("firewall_enabled", f"{_where(hive, base)}: {exc}", finding_id(exc))
        return
    facts.put("firewall_enabled", enabled or None,
              _where(hive, base, "<Profile>\\EnableFirewall"))
    for fact, (_, _, _, looked_for) in ALLOW_RULES.items():
        facts.put(fact, allowed[fact] if rules_key is not None else None,
                  _where(hive, base, "FirewallRules") + f" (Action=Allow, Active=TRUE, Dir=In, "
                  f"{looked_for})")


def _drivers(hive: Hive, cs: str, facts: Facts) -> None:
    drivers: dict[str, int] = {}
    evidence = f"{hive.name}:{cs}\\Services\\<name>\\Start"
    for name in DRIVER_SERVICES:
        try:
            start = value(hive, f"{cs}\\Services\\{name}", "Start")
        except ImageError as exc:
            facts.fail(f"drivers.{name}", f"{cs}\\Services\\{name}\\Start: {exc}",
                       finding_id(exc))
            continue
        if isinstance(start, int):
            drivers[name] = start
    facts.put("drivers", drivers, evidence)


def _rdp(hive: Hive, cs: str, facts: Facts) -> None:
    ts = f"{cs}\\Control\\Terminal Server"
    deny = _get(facts, "fDenyTSConnections", hive, ts, "fDenyTSConnections", int)
    start = _get(facts, "termservice_start", hive, f"{cs}\\Services\\TermService", "Start", int)
    if deny is None:
        facts.put("rdp_enabled", None, f"{hive.name}:{ts}\\fDenyTSConnections absent")
        return
    enabled = deny == 0 and start != 4
    facts.put("rdp_enabled", enabled,
              f"{hive.name}:{ts}\\fDenyTSConnections={deny}, "
              f"{cs}\\Services\\TermService\\Start={start}")


def _dhcp(hive: Hive, cs: str, facts: Facts) -> None:
    """Every interface with an address configuration uses DHCP (doc C9).

    An interface counts when it says ``EnableDHCP=1`` or has a static
    ``IPAddress`` other than 0.0.0.0; tunnel and unconfigured adapters do not.
    """
    path = f"{cs}\\Services\\Tcpip\\Parameters\\Interfaces"
    try:
        key = hive.open_key(path)
        if key is None:
            facts.put("dhcp_enabled", None, f"{hive.name}:{path} absent")
            return
        interfaces: dict[str, bool] = {}
        for i, sub in enumerate(key.subkeys()):
            if i >= limits.WINDOWS_MAX_ENTRIES:
                break
            dhcp = sub.value("EnableDHCP")
            addr = sub.value("IPAddress")
            addrs = addr.data if addr is not None else None
            static = (isinstance(addrs, list) and any(a and a != "0.0.0.0" for a in addrs)) \
                or (isinstance(addrs, str) and addrs not in ("", "0.0.0.0"))
            if dhcp is not None and dhcp.data == 1:
                interfaces[sub.name] = True
            elif static:
                interfaces[sub.name] = False
    except ImageError as exc:
        facts.fail("dhcp_enabled", f"{hive.name}:{path}: {exc}", finding_id(exc))
        return
    facts.put("interfaces_dhcp", interfaces, f"{hive.name}:{path}\\<GUID>\\EnableDHCP")
    facts.put("dhcp_enabled", all(interfaces.values()) if interfaces else None,
              f"{hive.name}:{path}\\<GUID>\\EnableDHCP, IPAddress")


def _cloudbase_service(hive: Hive, cs: str, facts: Facts) -> None:
    path = f"{cs}\\Services\\cloudbase-init"
    _get(facts, "cloudbase_init_service_start", hive, path, "Start", int)
    _get(facts, "cloudbase_init_image_path", hive, path, "ImagePath", str)


def mounted_device(data: bytes) -> dict[str, Any]:
    """Decode one MountedDevices blob (libguestfs inspect_fs_windows.ml, doc section 0).

    12 bytes: MBR disk signature (u32) + partition byte offset (u64);
    ``DMIO:ID:`` + 16 bytes: a GPT partition GUID (mixed-endian).
    """
    if len(data) == MOUNTED_DEVICE_MBR.size:
        mbr = MOUNTED_DEVICE_MBR.unpack(data)
        return {"style": "mbr", "disk_signature": f"{mbr['disk_signature']:08x}",
                "offset": mbr["offset"]}
    if len(data) >= MOUNTED_DEVICE_GPT.size \
            and MOUNTED_DEVICE_GPT.field(data, "magic") == MOUNTED_DEVICE_GPT_MAGIC:
        return {"style": "gpt",
                "partition_guid": guid_text(MOUNTED_DEVICE_GPT.field(data, "partition_guid"))}
    return {"style": "other", "length": len(data)}


def _mounted_devices(hive: Hive, facts: Facts) -> None:
    try:
        key = hive.open_key("MountedDevices")
        out: dict[str, Any] = {}
        if key is not None:
            for i, v in enumerate(key.values()):
                if i >= limits.WINDOWS_MAX_ENTRIES:
                    break
                if v.name.upper().startswith("\\DOSDEVICES\\") and isinstance(v.data, bytes):
                    out[v.name[len("\\DosDevices\\"):]] = mounted_device(v.data)
    except ImageError as exc:
        facts.fail("mounted_devices", f"{hive.name}:MountedDevices: {exc}", finding_id(exc))
        return
    facts.put("mounted_devices", out, f"{hive.name}:MountedDevices\\\\DosDevices\\<letter>")


# -- SOFTWARE ------------------------------------------------------------------

def key_type(dpid4: bytes) -> str | None:
    """The licence channel (KeyType) of a DigitalProductId4 blob, None if empty."""
    if len(dpid4) < DIGITAL_PRODUCT_ID4.size:
        raise ValueError(f"{len(dpid4)} bytes, KeyType needs {DIGITAL_PRODUCT_ID4.size}")
    raw: bytes = DIGITAL_PRODUCT_ID4.field(dpid4, "KeyType")
    text = raw.decode("utf-16-le", "replace").split("\0", 1)[0]
    return text or None


def _int(text: Any) -> int | None:
    if isinstance(text, int):
        return text
    if isinstance(text, str) and text.strip().isdigit():
        return int(text.strip())
    return None


def software_facts(hive: Hive, facts: Facts) -> None:
    """Product, edition, version, build, licence channel and OEM branding."""
    cv = CURRENT_VERSION
    _get(facts, "product_name", hive, cv, "ProductName", str)
    _get(facts, "edition_id", hive, cv, "EditionID", str)
    _get(facts, "installation_type", hive, cv, "InstallationType", str)
    major = _get(facts, "major_version", hive, cv, "CurrentMajorVersionNumber", int)
    minor = _get(facts, "minor_version", hive, cv, "CurrentMinorVersionNumber", int)
    if major is None or minor is None:
        # Before Windows 10 only the "6.3" string exists (libguestfs does the same).
        text = _get(facts, "current_version", hive, cv, "CurrentVersion", str)
        parts = text.split(".") if isinstance(text, str) else []
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            facts.put("major_version", int(parts[0]), _where(hive, cv, "CurrentVersion"))
            facts.put("minor_version", int(parts[1]), _where(hive, cv, "CurrentVersion"))
    for name in ("CurrentBuildNumber", "CurrentBuild"):
        build = _int(_get(facts, "build_text", hive, cv, name, str))
        if build is not None:
            facts.put("build", build, _where(hive, cv, name))
            break
    facts.values.pop("build_text", None)
    facts.evidence.pop("build_text", None)
    _get(facts, "ubr", hive, cv, "UBR", int)
    _get(facts, "product_id", hive, cv, "ProductId", str)
    try:
        blob = value(hive, cv, "DigitalProductId4")
        if isinstance(blob, bytes):
            facts.put("license_channel", key_type(blob), _where(hive, cv, "DigitalProductId4"))
        else:
            facts.put("license_channel", None, _where(hive, cv, "DigitalProductId4") + " absent")
    except (ImageError, ValueError) as exc:
        facts.fail("license_channel", f"{_where(hive, cv, 'DigitalProductId4')}: {exc}",
                   finding_id(exc) if isinstance(exc, ImageError) else CORRUPT)
    try:
        key = hive.open_key(OEM_INFORMATION)
        if key is not None:
            oem = {v.name: v.data for v in key.values() if isinstance(v.data, str)}
            facts.put("oem", oem or None, _where(hive, OEM_INFORMATION))
    except ImageError as exc:
        facts.fail("oem", f"{_where(hive, OEM_INFORMATION)}: {exc}", finding_id(exc))
    _get(facts, "rdp_policy_deny", hive, RDP_POLICY, "fDenyTSConnections", int)
    logon = _get(facts, "autologon_text", hive, WINLOGON, "AutoAdminLogon", str)
    facts.values.pop("autologon_text", None)
    facts.evidence.pop("autologon_text", None)
    facts.put("autologon", (logon or "").strip() == "1",
              _where(hive, WINLOGON, "AutoAdminLogon") + ("" if logon is not None else " absent"))
    if _get(facts, "dotnet_release", hive, NET_V4, "Release", int) is None:
        _absent(facts, "dotnet_release", hive, NET_V4, "Release")
    _winhttp_proxy(hive, facts)
    _servicing(hive, facts)


def winhttp_proxy(blob: bytes) -> str | None:
    """The proxy server a WinHttpSettings value names, None for a direct connection
    (:data:`WINHTTP_SETTINGS_HEADER`); ValueError when the value is too short."""
    flags = field(WINHTTP_SETTINGS_HEADER, blob, "flags")
    length = field(WINHTTP_SETTINGS_HEADER, blob, "proxy_length")
    if not flags & WINHTTP_PROXY_TYPE_PROXY:
        return None
    start = WINHTTP_SETTINGS_HEADER.size
    if start + length > len(blob):
        raise ValueError(f"the proxy name ({length} bytes at 0x{start:x}) is past the "
                         f"{len(blob)}-byte value")
    return blob[start:start + length].decode("latin-1")


def _winhttp_proxy(hive: Hive, facts: Facts) -> None:
    """``winhttp_proxy``: the machine-wide WinHTTP proxy server, None when connections are
    direct (the value absent, or as ``netsh winhttp reset proxy`` leaves it)."""
    where = _where(hive, WINHTTP_SETTINGS, "WinHttpSettings")
    try:
        blob = value(hive, WINHTTP_SETTINGS, "WinHttpSettings")
        if not isinstance(blob, bytes):
            facts.put("winhttp_proxy", None, where + " absent (direct)")
            return
        facts.put("winhttp_proxy", winhttp_proxy(blob), where)
    except (ImageError, ValueError) as exc:
        facts.fail("winhttp_proxy", f"{where}: {exc}",
                   finding_id(exc) if isinstance(exc, ImageError) else CORRUPT)


def _servicing(hive: Hive, facts: Facts) -> None:
    """``reboot_pending`` (the reboot keys of :data:`REBOOT_KEYS` that exist) and
    ``installed_kbs`` (the KB numbers of Component Based Servicing's packages, sorted:
    how an update such as KB4474419 shows it is installed)."""
    try:
        found = [k.rsplit("\\", 1)[1] for k in REBOOT_KEYS if hive.open_key(k) is not None]
        facts.put("reboot_pending", found, ", ".join(_where(hive, k) for k in REBOOT_KEYS))
        path = f"{CBS}\\Packages"
        packages = hive.open_key(path)
        if packages is None:
            facts.put("installed_kbs", None, _where(hive, path) + " absent")
            return
        if packages.subkey_count > limits.WINDOWS_MAX_ENTRIES:
            # a list cut short would say an installed update is missing: not listed
            facts.put("installed_kbs", None, f"{_where(hive, path)}: {packages.subkey_count} "
                      f"packages, more than limits.WINDOWS_MAX_ENTRIES="
                      f"{limits.WINDOWS_MAX_ENTRIES}: not listed")
            return
        kbs: set[str] = set()
        for i, sub in enumerate(packages.subkeys()):
            if i >= limits.WINDOWS_MAX_ENTRIES:
                break
            m = KB_PACKAGE.match(sub.name)
            if m:
                kbs.add(m.group(1).upper())
        facts.put("installed_kbs", sorted(kbs), _where(hive, path) + "\\Package_for_KB<n>~...")
    except ImageError as exc:
        facts.fail("installed_kbs", f"{_where(hive, CBS)}: {exc}", finding_id(exc))


def apply_rdp_policy(facts: Facts) -> None:
    """A group policy ``fDenyTSConnections`` in SOFTWARE wins over SYSTEM's (doc C8)."""
    deny = facts.values.get("rdp_policy_deny")
    if isinstance(deny, int) and facts.values.get("rdp_enabled") is not None:
        facts.put("rdp_enabled", deny == 0 and facts.values["rdp_enabled"],
                  facts.evidence["rdp_policy_deny"] + " (policy) + "
                  + facts.evidence["rdp_enabled"])


#: The transaction logs of a hive, next to it: ``SYSTEM.LOG1`` then ``SYSTEM.LOG2``
#: (the order Windows applies them in; names compare case-insensitively on NTFS and FAT).
LOG_SUFFIXES = (".LOG1", ".LOG2")


def open_hive(data: bytes, name: str, read_log: Callable[[str], bytes | None] | None = None
              ) -> tuple[Hive, dict[str, Any]]:
    """The hive ``data`` as Windows would load it, and its log state (``hive_logs``).

    Only a dirty primary has its logs read: ``read_log(suffix)`` gives the bytes of
    the file named like the hive plus ``suffix``, or None when there is none (or it
    could not be read, which its caller reports). See :mod:`imgscan._core.regf_log`.
    """
    logs: list[tuple[str, bytes]] = []
    if read_log is not None and regf_log.is_dirty(data):
        for suffix in LOG_SUFFIXES:
            log = read_log(suffix)
            if log is not None:
                logs.append((name + suffix, log))
    return regf_log.open_hive(data, name, logs)


def subkey_names(key: Key) -> list[str]:
    return [k.name for k in key.subkeys()]

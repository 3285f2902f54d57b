"""Windows fixture disks whose registry was changed by the registry's own tools.

A copy of the nosysres fixture (tests/fixtures/windows) has its hives read out by
ntfs-3g's ``ntfscat``, edited by ``hivexregedit --merge`` (regedit 5.00 text, so a
value can also be deleted: ``"Name"=-``) and written back by ``ntfscp``: a real hive
in a real NTFS volume, and ``hivexget`` reads the same file back as the oracle.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.regf_logs import CONFIG, edit_windows_volume, ntfscp

#: The tools a registry-edited disk needs.
TOOLS = ("ntfscat", "ntfscp", "hivexregedit", "hivexget")
#: The nosysres fixture's control set (tests/fixtures/windows_reg.py).
CCS = "ControlSet001"


def needs_tools() -> None:
    if missing := [t for t in TOOLS if shutil.which(t) is None]:
        pytest.skip(f"{', '.join(missing)} absent (ntfs-3g, libhivex-bin, libwin-hivex-perl)")


def reg_text(keys: dict[str, dict[str, str]]) -> str:
    """regedit 5.00 text: key path (under the hive root) -> value name -> data as .reg
    writes it (``dword:00000001``, ``"text"``, ``hex:..``, ``hex(7):..``, ``-``)."""
    lines = ["Windows Registry Editor Version 5.00", ""]
    made: set[str] = set()
    for key, values in keys.items():
        parts = key.split("\\")
        for i in range(1, len(parts)):  # hivexregedit makes a key only under an existing one
            parent = "\\".join(parts[:i])
            if parent not in made:
                made.add(parent)
                lines += [f"[HKEY_LOCAL_MACHINE\\HIVE\\{parent}]", ""]
        made.add(key)
        lines.append(f"[HKEY_LOCAL_MACHINE\\HIVE\\{key}]")
        lines += [f'"{name}"={data}' for name, data in values.items()]
        lines.append("")
    return "\r\n".join(lines) + "\r\n"


def utf16_multi_sz(items: list[str]) -> str:
    """REG_MULTI_SZ data as .reg writes it (``hex(7):``, UTF-16LE, doubly terminated)."""
    data = ("".join(i + "\0" for i in items) + "\0").encode("utf-16-le")
    return "hex(7):" + ",".join(f"{b:02x}" for b in data)


def binary(data: bytes) -> str:
    return "hex:" + ",".join(f"{b:02x}" for b in data)


def edited_disk(fixture: Path, work: Path, hives: dict[str, dict[str, dict[str, str]]]
                ) -> tuple[Path, dict[str, Path]]:
    """A copy of the nosysres ``fixture`` with each hive of ``hives`` (``SYSTEM``,
    ``SOFTWARE`` -> :func:`reg_text` keys) merged in; and the edited hive files, for
    hivexget."""
    needs_tools()
    work.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def edit(volume: Path) -> None:
        for name, keys in hives.items():
            hive = work / name
            hive.write_bytes(subprocess.run(["ntfscat", str(volume), CONFIG + name],
                                            check=True, capture_output=True).stdout)
            text = work / f"{name}.reg"
            text.write_text(reg_text(keys))
            subprocess.run(["hivexregedit", "--merge", "--prefix", "HKEY_LOCAL_MACHINE\\HIVE",
                            str(hive), str(text)], check=True, capture_output=True)
            ntfscp(volume, hive, CONFIG + name)
            files[name] = hive

    return edit_windows_volume(fixture, work, edit), files


FIREWALL = f"{CCS}\\Services\\SharedAccess\\Parameters\\FirewallPolicy"
FIREWALL_ON = {f"{FIREWALL}\\{p}": {"EnableFirewall": "dword:00000001"}
               for p in ("DomainProfile", "StandardProfile", "PublicProfile")}
RDP_RULE = '"v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=3389|Name=RDP|"'
WINRM_RULE = '"v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=6|LPort=5985|Name=WinRM|"'
ICMP_RULE = '"v2.30|Action=Allow|Active=TRUE|Dir=In|Protocol=1|ICMP4=8:*|Name=Echo|"'
RDP_TCP = f"{CCS}\\Control\\Terminal Server\\WinStations\\RDP-Tcp"
SESSION_MANAGER = f"{CCS}\\Control\\Session Manager"
CV = "Microsoft\\Windows NT\\CurrentVersion"
CBS = "Microsoft\\Windows\\CurrentVersion\\Component Based Servicing"
WINHTTP = "Microsoft\\Windows\\CurrentVersion\\Internet Settings\\Connections"
NET_V4 = "Microsoft\\NET Framework Setup\\NDP\\v4\\Full"
#: WinHttpSettings as ``netsh winhttp reset proxy`` leaves it (direct access), and as
#: ``netsh winhttp set proxy proxy.example:8080 "<local>"`` writes it (version, counter,
#: flags 3 = direct + proxy, then the proxy and the bypass list, each after its length).
#: No Linux tool writes this value: the bytes follow its documented layout.
WINHTTP_DIRECT = bytes.fromhex("18000000" "00000000" "01000000" "00000000" "00000000")
PROXY = b"proxy.example:8080"
WINHTTP_PROXY = (bytes.fromhex("18000000" "02000000" "03000000") + len(PROXY).to_bytes(4, "little")
                 + PROXY + (7).to_bytes(4, "little") + b"<local>")
#: Windows 7 / Server 2008 R2: NT 6.1 in CurrentVersion, no Windows 10 DWORDs.
NT61 = {"ProductName": '"Windows Server 2008 R2 Datacenter"', "CurrentVersion": '"6.1"',
        "CurrentMajorVersionNumber": "-", "CurrentMinorVersionNumber": "-"}
KB_PACKAGE = "Package_for_KB{}~31bf3856ad364e35~amd64~~6.1.1.0"

#: Registry variants of the nosysres disk for the peers' Windows rules: ``ready`` has
#: every setting as AWS, Azure and Google ask; ``unready`` breaks each of them.
VARIANTS: dict[str, dict[str, dict[str, dict[str, str]]]] = {
    "ready": {
        "SYSTEM": {
            f"{CCS}\\Services\\partmgr\\Parameters": {"SanPolicy": "dword:00000001"},
            RDP_TCP: {"PortNumber": "dword:00000d3d", "UserAuthentication": "dword:00000001"},
            **FIREWALL_ON,
            f"{FIREWALL}\\FirewallRules": {"RemoteDesktop-UserMode-In-TCP": RDP_RULE,
                                           "WINRM-HTTP-In-TCP": WINRM_RULE,
                                           "FPS-ICMP4-ERQ-In": ICMP_RULE},
            f"{SESSION_MANAGER}\\Memory Management": {
                "PagingFiles": utf16_multi_sz(["C:\\pagefile.sys 4096 4096"])},
        },
        "SOFTWARE": {
            CV: NT61,
            WINHTTP: {"WinHttpSettings": binary(WINHTTP_DIRECT)},
            NET_V4: {"Release": "dword:00080ea8"},            # 528040: 4.8
            f"{CBS}\\Packages\\{KB_PACKAGE.format(4474419)}": {"CurrentState": "dword:00000070"},
            f"{CBS}\\Packages\\{KB_PACKAGE.format(976902)}": {"CurrentState": "dword:00000070"},
        },
    },
    "unready": {
        "SYSTEM": {
            f"{CCS}\\Services\\partmgr\\Parameters": {"SanPolicy": "dword:00000004"},
            RDP_TCP: {"PortNumber": "dword:00000d3e", "UserAuthentication": "dword:00000000"},
            **FIREWALL_ON,
            f"{FIREWALL}\\FirewallRules": {
                "RemoteDesktop-UserMode-In-TCP": RDP_RULE,
                "WINRM-HTTP-In-TCP": WINRM_RULE.replace("Active=TRUE", "Active=FALSE"),
                "FPS-ICMP6-ERQ-In": ICMP_RULE.replace("Protocol=1|ICMP4", "Protocol=58|ICMP6")},
            f"{SESSION_MANAGER}\\Memory Management": {
                "PagingFiles": utf16_multi_sz(["?:\\pagefile.sys"])},
            SESSION_MANAGER: {"PendingFileRenameOperations": utf16_multi_sz(
                ["\\??\\C:\\Windows\\WinSxS\\Temp\\a.dll", "!\\??\\C:\\Windows\\System32\\a.dll"])},
        },
        "SOFTWARE": {
            CV: NT61,
            WINHTTP: {"WinHttpSettings": binary(WINHTTP_PROXY)},
            f"{CBS}\\RebootPending": {"": '""'},
            f"{CBS}\\Packages\\{KB_PACKAGE.format(976902)}": {"CurrentState": "dword:00000070"},
        },
    },
}

"""Rules on the Windows installation: accounts, drivers, network, licence, shutdown state.

Source: import-rules.md sections 1.3-1.5 and 1.9 (Huawei IMS and its registration-time
automatic configuration). Each rule that reads the ``windows`` object declares it
(``needs_windows=True``): the framework answers ``unknown`` when there is none.
"""

from __future__ import annotations

from imgscan.units import human_size
from imgscan.vocabulary import FAIL, MANUAL, PASS, UNKNOWN, WARN, WINDOWS

from ..framework import GiB, Outcome, architecture, rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ..framework import Facts


@rule("administrator-account", "the built-in Administrator is enabled and has a password",
      needs_windows=True)
def administrator_account(f: Facts, w: Mapping[str, Any]) -> Outcome:
    admin = w.get("administrator") or {}
    ev = f.ev("windows.administrator")
    if not admin.get("exists"):
        return Outcome(FAIL, "no built-in Administrator account (RID 500)", ev,
                       "in the source VM: enable the built-in Administrator and set its "
                       "password (net user Administrator /active:yes; net user Administrator *)")
    problems = ([] if admin.get("enabled") else ["is disabled"]) + \
        ([] if admin.get("password_set") else ["has no password"])
    if problems:
        return Outcome(FAIL, f"the Administrator account {' and '.join(problems)}", ev,
                       "in the source VM: net user Administrator /active:yes; "
                       "net user Administrator *")
    return Outcome(PASS, "Administrator enabled with a password", ev)


@rule("login-credentials", "a password is set, or Cloudbase-Init is installed and enabled",
      needs_windows=True)
def login_credentials(f: Facts, w: Mapping[str, Any]) -> Outcome:
    admin = w.get("administrator") or {}
    cbi = w.get("cloudbase_init") or {}
    ev = {**f.ev("windows.administrator"), **f.ev("windows.cloudbase_init")}
    cbi_ok = bool(cbi.get("installed") and cbi.get("config_path")
                  and cbi.get("service_start") in (0, 1, 2, 3))
    if cbi_ok:
        return Outcome(PASS, f"Cloudbase-Init installed ({cbi['config_path']}), service "
                       f"start {cbi['service_start']}", ev)
    if admin.get("exists") and admin.get("enabled") and admin.get("password_set"):
        return Outcome(PASS, "the Administrator account has a password", ev)
    why = "Cloudbase-Init is not installed" if not cbi.get("installed") else \
        ("Cloudbase-Init has no configuration file" if not cbi.get("config_path") else
         f"the cloudbase-init service is disabled (start {cbi.get('service_start')})")
    return Outcome(FAIL, f"no way to log in: {why}, and no enabled Administrator with a "
                   "password", ev,
                   "install Cloudbase-Init (CloudbaseInitSetup_x64.msi) with its service set "
                   "to automatic (sc config cloudbase-init start= auto), or set a password: "
                   "net user Administrator *")


@rule("password-complexity", "the initial password is complex enough (not in the image)")
def password_complexity(f: Facts, *, special_characters: str) -> Outcome:
    remedy = "passwd root  (in the source VM; enter a password that meets the rule)" \
        if f.linux is not None else \
        "net user Administrator *  (enter a password that meets the rule)"
    return Outcome(MANUAL, "an image stores only password hashes: check by hand that the "
                   "initial password has upper and lower case letters, digits and one of "
                   f"{special_characters}", {}, remedy)


@rule("ide-driver", "the IDE disk drivers start at boot", auto_fixed=True, needs_windows=True)
def ide_driver(f: Facts, w: Mapping[str, Any], *, required: Sequence[str], any_of: Sequence[str],
               boot_start: int) -> Outcome:
    drivers = w.get("drivers")
    if drivers is None:
        return Outcome(UNKNOWN, "the SYSTEM hive's services could not be read",
                       f.ev("windows.drivers"))
    names = [*required, *any_of]
    ev = f.ev("windows.drivers", {n: drivers.get(n) for n in names})
    missing = [n for n in required if drivers.get(n) != boot_start]
    if any_of and not any(drivers.get(n) == boot_start for n in any_of):
        missing.append(" or ".join(any_of))
    if not missing:
        return Outcome(PASS, "IDE drivers start at boot: " + ", ".join(
            f"{n}={drivers[n]}" for n in names if n in drivers), ev)
    fix = "; ".join(f"reg add HKLM\\SYSTEM\\CurrentControlSet\\Services\\{n} /v Start "
                    f"/t REG_DWORD /d {boot_start} /f" for n in [*required, *any_of[:1]])
    return Outcome(FAIL, f"not started at boot (Start={boot_start}): {'; '.join(missing)}",
                   ev, fix)


@rule("guest-os-driver", "VirtIO or UVP PV storage drivers are installed", needs_windows=True)
def guest_os_driver(f: Facts, w: Mapping[str, Any], *, services: Sequence[str]) -> Outcome:
    drivers = w.get("drivers") or {}
    found = {n: drivers[n] for n in services if n in drivers}
    ev = f.ev("windows.drivers", found)
    if found:
        return Outcome(PASS, "PV drivers installed: " + ", ".join(
            f"{n} (start {v})" for n, v in found.items()), ev)
    return Outcome(FAIL, f"none of {', '.join(services)} is installed", ev,
                   "in the source VM: install the VirtIO drivers (msiexec /i "
                   "virtio-win-gt-x64.msi /qn) or Huawei UVP VMTools")


@rule("rdp-enabled", "Remote Desktop is enabled", needs_windows=True)
def rdp_enabled(f: Facts, w: Mapping[str, Any]) -> Outcome:
    ev = f.ev("windows.rdp_enabled")
    value = w.get("rdp_enabled")
    if value is None:
        return Outcome(UNKNOWN, "the Terminal Server settings could not be read", ev)
    if value:
        return Outcome(PASS, "Remote Desktop enabled", ev)
    return Outcome(FAIL, "Remote Desktop is disabled", ev,
                   "reg add \"HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\" "
                   "/v fDenyTSConnections /t REG_DWORD /d 0 /f; sc config TermService "
                   "start= demand")


@rule("dhcp", "every network interface uses DHCP", auto_fixed=True, needs_windows=True)
def dhcp(f: Facts, w: Mapping[str, Any]) -> Outcome:
    value = w.get("dhcp_enabled")
    ev = {**f.ev("windows.dhcp_enabled"),
          **f.ev("windows.interfaces_dhcp")}
    if value is None:
        return Outcome(UNKNOWN, "no TCP/IP interface settings could be read", ev)
    if value:
        return Outcome(PASS, "every interface uses DHCP", ev)
    static = [k for k, v in (w.get("interfaces_dhcp") or {}).items() if not v]
    return Outcome(FAIL, "static address on " + (", ".join(static) or "an interface"), ev,
                   "netsh interface ip set address name=\"Ethernet\" source=dhcp")


@rule("clean-shutdown", "not hibernated, volume, hives and image not dirty", guest="windows")
def clean_shutdown(f: Facts) -> Outcome:
    """Hibernation, a dirty NTFS volume, a dirty image and dirty registry hives.

    A dirty hive (a write Windows started and did not finish: a crash, a forced
    power-off, a snapshot of a running VM) whose logs imgscan replayed is a warning:
    Windows replays the same logs when it loads the hive and the facts shown are the
    replayed ones, but the VM was not shut down cleanly and an offline registry
    editor (virt-v2v, a cloud's driver injection) reads the primary alone. A dirty
    hive without a usable log fails: the changes only its logs held are lost, to
    Windows as to imgscan, and the facts read from it may be stale.
    """
    ev = f.ev("dirty", source="container header")
    problems, fixes, warnings = [], [], []
    if f.info.get("dirty"):
        problems.append("the image was not closed cleanly")
        fixes.append("qemu-img check -r all IMAGE")
    w = f.windows
    if w is None and not problems:
        return f.unreadable() or Outcome(UNKNOWN, "no Windows installation was found: "
                                         "hibernation cannot be judged", ev)
    if w is not None:
        ev.update({**f.ev("windows.hibernated"),
                   **f.ev("windows.volume_dirty", source="NTFS $Volume flags")})
        if w.get("hibernated"):
            problems.append("Windows is hibernated (hiberfil.sys holds an image; fast "
                            "startup)")
            fixes.append("in the source VM: powercfg /h off, then shut down fully "
                         "(shutdown /s /t 0)")
        if w.get("volume_dirty"):
            problems.append("the NTFS volume is marked dirty")
            fixes.append("chkdsk C: /f")
        hives = w.get("hive_logs") or {}
        replayed = [h for h, s in hives.items() if s.get("replayed")]
        lost = [h for h, s in hives.items() if s.get("dirty") and not s.get("replayed")]
        if hives:
            ev.update(f.ev("windows.hive_logs", hives, _hive_source(hives)))
        if lost:
            problems.append(f"registry hive {', '.join(lost)} not fully written and without "
                            "a usable transaction log (.LOG1/.LOG2): its latest changes are "
                            "lost and the facts read from it may be stale")
            fixes.append("in the source VM: shut down fully (shutdown /s /t 0), then export "
                         "the disk again with the hives' .LOG1/.LOG2 files")
        if replayed:
            pages = sum(int(hives[h].get("pages") or 0) for h in replayed)
            warnings.append(f"registry hive {', '.join(replayed)} not fully written: its "
                            f"transaction logs were replayed ({pages} dirty pages) and the "
                            "facts are the replayed ones")
        if not problems and not warnings and w.get("hibernated") is None:
            return Outcome(UNKNOWN, "hiberfil.sys could not be read", ev)
    if problems:
        return Outcome(FAIL, "; ".join(problems + warnings), ev, "; ".join(fixes))
    if warnings:
        return Outcome(WARN, "; ".join(warnings) + " (Windows replays them too; an offline "
                       "registry editor reads the primary files alone)", ev,
                       "in the source VM: shut down fully (shutdown /s /t 0) before the "
                       "export, so that the hives are written whole")
    return Outcome(PASS, "shut down cleanly: not hibernated, volume and hives clean", ev)


def _hive_source(hives: Mapping[str, Any]) -> str:
    """Where the hive states come from, naming the logs replayed."""
    replayed = [f"{h} from {', '.join(s.get('logs_replayed') or [])}"
                for h, s in hives.items() if s.get("replayed")]
    return "registry base blocks (sequence numbers, checksum)" + (
        f"; transaction logs replayed: {'; '.join(replayed)}" if replayed else "")


@rule("not-oem", "not an OEM-licensed edition", needs_windows=True)
def not_oem(f: Facts, w: Mapping[str, Any]) -> Outcome:
    channel = w.get("license_channel")
    ev = {**f.ev("windows.license_channel"), **f.ev("windows.oem")}
    if channel is None:
        return Outcome(UNKNOWN, "the licence channel could not be read (no DigitalProductId4)",
                       ev)
    if str(channel).upper().startswith("OEM"):
        return Outcome(FAIL, f"OEM licence channel {channel}", ev,
                       "install a Retail or Volume licence: slmgr /ipk <product key>; "
                       "slmgr /ato")
    return Outcome(PASS, f"licence channel {channel}", ev)


@rule("not-hardware-bound", "the OS is not bound to specific hardware", needs_windows=True)
def not_hardware_bound(f: Facts, w: Mapping[str, Any]) -> Outcome:
    channel = str(w.get("license_channel") or "")
    oem = w.get("oem")
    ev = {**f.ev("windows.license_channel"), **f.ev("windows.oem")}
    if channel.upper().startswith("OEM"):
        return Outcome(FAIL, f"activation bound to the firmware of the original machine "
                       f"({channel}: SLIC/MSDM)", ev,
                       "install a Retail or Volume licence: slmgr /ipk <product key>; "
                       "slmgr /ato")
    if oem:
        vendor = ", ".join(f"{k} {v}" for k, v in oem.items())
        return Outcome(WARN, f"a vendor (OEM) installation ({vendor}): it may carry "
                       "vendor boot-critical drivers", ev,
                       "remove vendor storage/chipset drivers (pnputil /delete-driver "
                       "oemNN.inf) or sysprep /generalize before export")
    return Outcome(MANUAL, "no OEM activation or vendor branding found; check by hand that "
                   "no vendor-specific boot-critical driver binds the OS to its hardware", ev,
                   "sysprep /generalize /oobe /shutdown removes hardware-specific state")


@rule("full-virtualization", "the OS runs fully virtualized (x86 / x86_64 Windows)",
      needs_windows=True)
def full_virtualization(f: Facts, w: Mapping[str, Any], *, arches: Sequence[str]) -> Outcome:
    return architecture(f, WINDOWS, arches,
                        "System32\\cmd.exe could not be read for its architecture",
                        "use an x86_64 build of Windows")


@rule("os-supported", "the Windows product is on the cloud's supported list", needs_windows=True)
def os_supported(f: Facts, w: Mapping[str, Any], *, products: Sequence[str],
                 products_32bit: Sequence[str]) -> Outcome:
    name, arch = w.get("product_name"), w.get("arch")
    ev = {**f.ev("windows.product_name"), **f.ev("windows.arch")}
    if name is None:
        return Outcome(UNKNOWN, "the product name could not be read from the SOFTWARE hive",
                       ev)

    def listed(names: Sequence[str]) -> bool:
        return any(name.lower().startswith(p.lower()) for p in names)

    if listed(products) and (arch == "x86_64" or listed(products_32bit)):
        return Outcome(PASS, f"{name} ({arch}) is supported", ev)
    why = f"{name} ({arch}) is 32-bit; only its 64-bit edition" if listed(products) \
        else f"{name} is not"
    return Outcome(FAIL, f"{why} is on the supported list: it registers as Other_Windows, "
                   "without automatic configuration", ev,
                   "register with os_version Other_Windows and prepare the drivers yourself, "
                   "or use a supported 64-bit Windows")


# -- the peers' Windows requirements (import-rules.md section 2.1) ----------------

@rule("real-time-is-universal", "the hardware clock is read as UTC (RealTimeIsUniversal=1)",
      needs_windows=True)
def real_time_is_universal(f: Facts, w: Mapping[str, Any]) -> Outcome:
    """AWS and Azure keep the instance's clock in UTC; a guest reading it as local
    time is off by its time zone after every boot."""
    value = w.get("real_time_is_universal")
    ev = f.ev("windows.real_time_is_universal")
    if value:
        return Outcome(PASS, "RealTimeIsUniversal=1: the clock is read as UTC", ev)
    return Outcome(FAIL, "RealTimeIsUniversal is not set: Windows reads the hardware clock "
                   "as local time", ev,
                   "reg add HKLM\\SYSTEM\\CurrentControlSet\\Control\\TimeZoneInformation "
                   "/v RealTimeIsUniversal /t REG_DWORD /d 1 /f")


@rule("autologon-disabled", "Windows does not log a user on automatically", needs_windows=True)
def autologon_disabled(f: Facts, w: Mapping[str, Any]) -> Outcome:
    value = w.get("autologon")
    ev = f.ev("windows.autologon")
    if value is None:
        return Outcome(UNKNOWN, "the Winlogon settings could not be read", ev)
    if not value:
        return Outcome(PASS, "automatic logon is off", ev)
    return Outcome(FAIL, "automatic logon is on (AutoAdminLogon=1)", ev,
                   "reg add \"HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon\" "
                   "/v AutoAdminLogon /t REG_SZ /d 0 /f")


@rule("rdp-firewall", "the firewall lets Remote Desktop (TCP 3389) in", needs_windows=True)
def rdp_firewall(f: Facts, w: Mapping[str, Any]) -> Outcome:
    """An enabled firewall profile with no active inbound allow rule for the RDP port
    blocks the first login even when Remote Desktop is on."""
    return _firewall_allows(f, w, "rdp_firewall_rules", "TCP 3389",
                            "netsh advfirewall firewall set rule group=\"remote desktop\" new "
                            "enable=Yes")


@rule("winrm-firewall", "the firewall lets WinRM (TCP 5985/5986) in", needs_windows=True)
def winrm_firewall(f: Facts, w: Mapping[str, Any]) -> Outcome:
    """Azure asks for the Windows Remote Management rules (its Run Command and remote
    repair reach the VM through them; prepare-for-upload-vhd-image.md)."""
    return _firewall_allows(f, w, "winrm_firewall_rules", "WinRM (TCP 5985 or 5986)",
                            "Enable-PSRemoting -Force; Enable-NetFirewallRule -DisplayGroup "
                            "'Windows Remote Management'")


@rule("icmp-firewall", "the firewall lets ICMPv4 echo requests (ping) in", needs_windows=True)
def icmp_firewall(f: Facts, w: Mapping[str, Any]) -> Outcome:
    """Azure asks for the ICMP echo rule (prepare-for-upload-vhd-image.md), which its
    diagnostics use."""
    return _firewall_allows(f, w, "icmp_firewall_rules", "ICMPv4 echo requests",
                            "Enable-NetFirewallRule -Name FPS-ICMP4-ERQ-In")


def _firewall_allows(f: Facts, w: Mapping[str, Any], fact: str, what: str,
                     remedy: str) -> Outcome:
    """Pass when every firewall profile is off or an active inbound rule (the names in
    the ``fact`` list) lets ``what`` in."""
    firewall = w.get("firewall_enabled")
    rules = w.get(fact)
    ev = {**f.ev("windows.firewall_enabled"), **f.ev(f"windows.{fact}")}
    if firewall is None or rules is None:
        return Outcome(UNKNOWN, "the firewall policy could not be read", ev)
    if not any(firewall.values()):
        return Outcome(PASS, "the firewall is off in every profile", ev)
    if rules:
        return Outcome(PASS, f"{what} allowed by {', '.join(rules)}", ev)
    on = ", ".join(k for k, v in firewall.items() if v)
    return Outcome(FAIL, f"the firewall is on ({on}) and no active rule lets {what} in", ev,
                   remedy)


@rule("firewall-off", "the Windows firewall is off in every profile", needs_windows=True)
def firewall_off(f: Facts, w: Mapping[str, Any]) -> Outcome:
    firewall = w.get("firewall_enabled")
    ev = f.ev("windows.firewall_enabled")
    if firewall is None:
        return Outcome(UNKNOWN, "the firewall policy could not be read", ev)
    on = [k for k, v in firewall.items() if v]
    if not on:
        return Outcome(PASS, "the firewall is off", ev)
    return Outcome(FAIL, f"the firewall is on: {', '.join(on)}", ev,
                   "netsh advfirewall set allprofiles state off")


@rule("services-absent", "the services the cloud wants removed are not installed",
      needs_windows=True)
def services_absent(f: Facts, w: Mapping[str, Any], *, services: Sequence[str]) -> Outcome:
    """``services``: service names (VMware Tools ``VMTools``, the QEMU guest agent
    ``QEMU-GA``) read from the SYSTEM hive like the drivers."""
    drivers = w.get("drivers") or {}
    lower = {k.lower(): k for k in drivers}
    found = {lower[s.lower()]: drivers[lower[s.lower()]] for s in services
             if s.lower() in lower}
    ev = f.ev("windows.drivers", found)
    if not found:
        return Outcome(PASS, f"none of {', '.join(services)} is installed", ev)
    return Outcome(FAIL, f"installed: {', '.join(found)}", ev,
                   "uninstall them in the source VM (Programs and Features), or sc delete "
                   + " / sc delete ".join(found))


@rule("windows-free-space", "the Windows volume has enough free space for the cloud's drivers",
      needs_windows=True)
def windows_free_space(f: Facts, w: Mapping[str, Any], *, min_gib: float) -> Outcome:
    free = w.get("free_bytes")
    ev = f.ev("windows.free_bytes")
    if free is None:
        return Outcome(UNKNOWN, "the NTFS $Bitmap could not be read", ev)
    shown = human_size(int(free))
    if free >= min_gib * GiB:
        return Outcome(PASS, f"{shown} free on the Windows volume (at least {min_gib:g} GiB)",
                       ev)
    return Outcome(FAIL, f"only {shown} free on the Windows volume: the import needs "
                   f"{min_gib:g} GiB", ev,
                   "free space in the source VM (cleanmgr, dism /online /cleanup-image "
                   "/startcomponentcleanup), or grow the disk (qemu-img resize) and extend C: "
                   "(diskpart: extend), then export again")


def _unread(f: Facts, fact: str) -> bool:
    """Whether the ``windows`` fact is null because it could not be read (no evidence: a
    finding says why), not because the value is absent."""
    return (f.windows or {}).get(fact) is None and f.source(WINDOWS, fact) is None


@rule("san-policy", "the SAN policy brings every disk online (OnlineAll)", needs_windows=True)
def san_policy(f: Facts, w: Mapping[str, Any]) -> Outcome:
    """partmgr's SanPolicy: 1 OnlineAll, 2 OfflineShared (Windows Server's default when
    the value is absent), 3 OfflineAll, 4 OfflineInternal. Anything but OnlineAll
    leaves Azure's data and resource disks offline (prepare-for-upload-vhd-image.md)."""
    value = w.get("san_policy")
    ev = f.ev("windows.san_policy")
    if _unread(f, "san_policy"):
        return Outcome(UNKNOWN, "partmgr's SanPolicy could not be read", ev)
    if value == 1:
        return Outcome(PASS, "SanPolicy 1 (OnlineAll)", ev)
    name = SAN_POLICIES.get(value, f"{value}") if value is not None else \
        "not set (Windows Server's default, OfflineShared)"
    return Outcome(FAIL, f"SanPolicy {name}: new disks stay offline", ev,
                   "diskpart: san policy=onlineall (or reg add HKLM\\SYSTEM\\CurrentControlSet"
                   "\\Services\\partmgr\\Parameters /v SanPolicy /t REG_DWORD /d 1 /f)")


SAN_POLICIES = {1: "OnlineAll", 2: "OfflineShared", 3: "OfflineAll", 4: "OfflineInternal"}


@rule("winhttp-proxy", "WinHTTP connects directly (no machine-wide proxy)", needs_windows=True)
def winhttp_proxy(f: Facts, w: Mapping[str, Any]) -> Outcome:
    """A WinHTTP proxy of the source network sends the guest agent's and Windows
    Update's traffic to a server the cloud cannot reach."""
    proxy = w.get("winhttp_proxy")
    ev = f.ev("windows.winhttp_proxy")
    if _unread(f, "winhttp_proxy"):
        return Outcome(UNKNOWN, "the WinHttpSettings value could not be read", ev)
    if proxy is None:
        return Outcome(PASS, "WinHTTP connects directly", ev)
    return Outcome(FAIL, f"WinHTTP goes through the proxy {proxy}", ev,
                   "netsh winhttp reset proxy")


@rule("rdp-nla", "Remote Desktop listens on its port with Network Level Authentication",
      needs_windows=True)
def rdp_nla(f: Facts, w: Mapping[str, Any], *, port: int) -> Outcome:
    """The RDP-Tcp listener's PortNumber and UserAuthentication (NLA), as Azure sets
    them (prepare-for-upload-vhd-image.md: port 3389, UserAuthentication 1)."""
    ev = {**f.ev("windows.rdp_port"), **f.ev("windows.rdp_nla")}
    if _unread(f, "rdp_port") or _unread(f, "rdp_nla"):
        return Outcome(UNKNOWN, "the RDP-Tcp listener settings could not be read", ev)
    problems = []
    if w.get("rdp_port") != port:
        problems.append(f"listens on port {w.get('rdp_port')}" if w.get("rdp_port") is not None
                        else "has no PortNumber")
    if not w.get("rdp_nla"):
        problems.append("does not require Network Level Authentication")
    if not problems:
        return Outcome(PASS, f"RDP-Tcp on port {port} with NLA", ev)
    key = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp"
    return Outcome(FAIL, f"the RDP-Tcp listener {' and '.join(problems)}", ev,
                   f"reg add \"{key}\" /v PortNumber /t REG_DWORD /d {port} /f; reg add "
                   f"\"{key}\" /v UserAuthentication /t REG_DWORD /d 1 /f")


@rule("pagefile-fixed", "the paging file has a fixed size", needs_windows=True)
def pagefile_fixed(f: Facts, w: Mapping[str, Any]) -> Outcome:
    """Memory Management's PagingFiles: ``C:\\pagefile.sys 4096 4096`` is fixed (the
    same initial and maximum size); ``?:\\pagefile.sys`` (every drive managed by
    Windows) or ``0 0`` (system managed) is not (AWS prepare-vm-image)."""
    lines = w.get("paging_files")
    ev = f.ev("windows.paging_files")
    if _unread(f, "paging_files"):
        return Outcome(UNKNOWN, "the PagingFiles value could not be read", ev)
    remedy = ("wmic computersystem set AutomaticManagedPagefile=False; wmic pagefileset where "
              "name=\"C:\\\\pagefile.sys\" set InitialSize=4096,MaximumSize=4096 (System "
              "Properties > Advanced > Virtual memory: Custom size, the same twice)")
    if not lines:
        return Outcome(FAIL, "no paging file is configured", ev, remedy)
    managed = [line for line in lines if not _fixed_size(line)]
    if managed:
        return Outcome(FAIL, f"paging file sized by Windows: {'; '.join(managed)}", ev, remedy)
    return Outcome(PASS, f"fixed paging file: {'; '.join(lines)}", ev)


def _fixed_size(line: str) -> bool:
    """A PagingFiles line ``PATH MIN MAX`` with MIN == MAX > 0 on a named drive."""
    parts = line.split()
    return (len(parts) == 3 and not parts[0].startswith("?") and parts[1].isdigit()
            and parts[1] == parts[2] and int(parts[1]) > 0)


#: .NET Framework 4.x Release values (Microsoft "How to: Determine which .NET Framework
#: versions are installed"), the lowest of each version.
NET_RELEASES = {378389: "4.5", 378675: "4.5.1", 379893: "4.5.2", 393295: "4.6",
                394254: "4.6.1", 394802: "4.6.2", 460798: "4.7", 461308: "4.7.1",
                461808: "4.7.2", 528040: "4.8", 533320: "4.8.1"}


def _net_version(release: int) -> str:
    below = [v for r, v in NET_RELEASES.items() if r <= release]
    return below[-1] if below else "4.0"


@rule("dotnet-version", ".NET Framework 4.5 or later is installed", needs_windows=True)
def dotnet_version(f: Facts, w: Mapping[str, Any], *, min_release: int) -> Outcome:
    """``min_release``: the lowest ``NDP\\v4\\Full\\Release`` accepted (378389 = 4.5;
    AWS installs its drivers with it)."""
    release = w.get("dotnet_release")
    ev = f.ev("windows.dotnet_release")
    if _unread(f, "dotnet_release"):
        return Outcome(UNKNOWN, "the .NET Framework setup key could not be read", ev)
    want = _net_version(min_release)
    if release is not None and release >= min_release:
        return Outcome(PASS, f".NET Framework {_net_version(release)} (Release {release})", ev)
    have = "no .NET Framework 4.x" if release is None else \
        f".NET Framework {_net_version(release)} (Release {release})"
    return Outcome(FAIL, f"{have}: the import needs {want} or later", ev,
                   f"install .NET Framework {want} or later (ndp48-x86-x64-allos-enu.exe /q) "
                   "in the source VM")


@rule("no-pending-reboot", "no update waits for a restart", needs_windows=True)
def no_pending_reboot(f: Facts, w: Mapping[str, Any]) -> Outcome:
    """Component Based Servicing's RebootPending, Windows Update's RebootRequired and
    Session Manager's PendingFileRenameOperations: an update half installed finishes
    at the next boot, on the cloud, where it may fail (AWS: no pending updates). The
    servicing keys fail; renames alone, which any installer may leave, warn."""
    keys = w.get("reboot_pending")
    renames = w.get("pending_file_renames")
    ev = {**f.ev("windows.reboot_pending"), **f.ev("windows.pending_file_renames")}
    if keys is None or renames is None:
        return Outcome(UNKNOWN, "the servicing keys could not be read", ev)
    remedy = ("restart the source VM (and again until Windows Update shows no "
              "pending restart), then shut it down and export")
    if keys:
        waiting = "; ".join(f"{k} is set" for k in keys)
        return Outcome(FAIL, f"an update waits for a restart: {waiting}", ev, remedy)
    if renames:
        # Installers of all kinds queue renames too (real hives often hold one or two),
        # so a rename alone says a restart is due, not that an update is half installed.
        return Outcome(WARN, f"{renames} file name(s) wait in PendingFileRenameOperations "
                       "for a restart", ev, remedy)
    return Outcome(PASS, "no restart pending", ev)


@rule("required-update", "an update the cloud needs on this Windows version is installed",
      needs_windows=True)
def required_update(f: Facts, w: Mapping[str, Any], *, kb: str, versions: Sequence[str],
                    why: str) -> Outcome:
    """``kb`` (e.g. KB4474419, SHA-2 code signing: Google's drivers are SHA-2 signed) is
    needed on the NT ``versions`` (``6.1``: Windows 7 and Server 2008 R2); installed
    means a Component Based Servicing package for it."""
    version = f"{w.get('major_version')}.{w.get('minor_version')}"
    kbs = w.get("installed_kbs")
    ev = {**f.ev("windows.major_version"), **f.ev("windows.minor_version"),
          **f.ev("windows.installed_kbs", [k for k in kbs or [] if k == kb.upper()])}
    if w.get("major_version") is None:
        return Outcome(UNKNOWN, "the Windows version could not be read", ev)
    if version not in versions:
        return Outcome(PASS, f"Windows {version} does not need {kb}", ev)
    if kbs is None:
        return Outcome(UNKNOWN, f"the servicing packages could not be listed, so {kb} "
                       "cannot be judged", ev)
    if kb.upper() in kbs:
        return Outcome(PASS, f"{kb} installed", ev)
    return Outcome(FAIL, f"Windows {version} without {kb} ({why})", ev,
                   f"install {kb} from the Microsoft Update Catalog (wusa {kb}.msu /quiet) "
                   "and restart the source VM")


#: The GPT partition types of a Windows dynamic disk (Logical Disk Manager).
LDM_TYPES = frozenset({"5808c8aa-7e8f-42e0-85d2-e1e90434cfb3",
                       "af9b60a0-1431-4f62-bc68-3311714a69ad"})


@rule("gpt-to-mbr", "a GPT Windows disk meets the conditions of AWS's conversion to MBR",
      needs_windows=True)
def gpt_to_mbr(f: Facts, w: Mapping[str, Any], *, max_bytes: int, max_partitions: int,
               formats: Sequence[str]) -> Outcome:
    """AWS VM Import converts a GPT system disk to MBR (to boot it by BIOS) only when no
    boot mode is given and the disk is under ``max_bytes``, has at most
    ``max_partitions`` partitions, is not a dynamic disk and is one of ``formats``
    (import-rules.md 2.1); otherwise the disk boots only by UEFI and must be imported
    with ``--boot-mode uefi``."""
    info = f.info
    table = info.get("partition_table")
    parts = info.get("partitions") or []
    ev = {**f.ev("partition_table", source="sector 0 / GPT header"),
          **f.ev("virtual_size", source="container header"),
          **f.ev("format", source="content (magic bytes)"),
          **f.ev("partitions[].type", [p.get("type") for p in parts], "partition entries")}
    if table != "gpt":
        return Outcome(PASS, f"{table} partition table: no conversion", ev)
    why = []
    size = int(info.get("virtual_size") or 0)
    if size >= max_bytes:
        why.append(f"{human_size(size)} is not under {human_size(max_bytes)}")
    if len(parts) > max_partitions:
        why.append(f"{len(parts)} partitions (at most {max_partitions})")
    if any(str(p.get("type")).lower() in LDM_TYPES for p in parts):
        why.append("a dynamic disk (LDM partitions)")
    if info.get("format") not in formats:
        why.append(f"{info.get('format')} (converted only from {', '.join(formats)})")
    if not why:
        return Outcome(PASS, "GPT disk AWS can convert to MBR for BIOS boot (or import it "
                       "with --boot-mode uefi)", ev)
    return Outcome(FAIL, f"GPT disk AWS does not convert to MBR: {'; '.join(why)}; it boots "
                   "only by UEFI", ev,
                   "aws ec2 import-image --boot-mode uefi (a UEFI-capable instance type), or "
                   "convert the disk to MBR in the source VM before export")

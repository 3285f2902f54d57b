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


@rule("clean-shutdown", "not hibernated, volume and image not dirty", guest="windows")
def clean_shutdown(f: Facts) -> Outcome:
    ev = f.ev("dirty", source="container header")
    problems, fixes = [], []
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
        if not problems and w.get("hibernated") is None:
            return Outcome(UNKNOWN, "hiberfil.sys could not be read", ev)
    if problems:
        return Outcome(FAIL, "; ".join(problems), ev, "; ".join(fixes))
    return Outcome(PASS, "shut down cleanly: not hibernated, volume clean", ev)


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
    firewall = w.get("firewall_enabled")
    rules = w.get("rdp_firewall_rules")
    ev = {**f.ev("windows.firewall_enabled"), **f.ev("windows.rdp_firewall_rules")}
    if firewall is None or rules is None:
        return Outcome(UNKNOWN, "the firewall policy could not be read", ev)
    if not any(firewall.values()):
        return Outcome(PASS, "the firewall is off in every profile", ev)
    if rules:
        return Outcome(PASS, f"inbound RDP allowed by {', '.join(rules)}", ev)
    on = ", ".join(k for k, v in firewall.items() if v)
    return Outcome(FAIL, f"the firewall is on ({on}) and no active rule lets TCP 3389 in", ev,
                   "netsh advfirewall firewall set rule group=\"remote desktop\" new "
                   "enable=Yes")


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

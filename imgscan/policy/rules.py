"""One small function per rule id: facts in (the ``info`` dict), an :class:`Outcome` out.

Sources: the Huawei Cloud IMS page "create a Windows private image from an
external image file" (the seed's constraints), its preparation guide and the
registration-time automatic configuration, as summarised in
../shared/docs/import-rules.md sections 1.2-1.5 and 1.9; the ``safe`` rules
follow the OpenStack ``format_inspector`` safety checks (threats.md).

Each function is testable alone, in the style of OpenStack's format_inspector
safety checks: ``rule(Facts(info), **parameters)``. Every number a rule
compares with is a keyword parameter that the profile supplies (the engine
reads the parameter names from the signature, so a profile naming an unknown
one is an error). A function returns ``fail`` for a violation; the profile's
severity decides whether that is reported as ``fail`` or ``warn``. ``unknown``
means the image should show the fact but could not be read far enough (the
message says why), ``manual`` that no image file can show it.

``auto_fixed`` in :data:`RULES` says whether the cloud repairs the rule itself
when it registers the image with automatic configuration (Huawei restores the
IDE driver, the PV driver keys and DHCP; import-rules.md section 1.3).
"""

from __future__ import annotations

from imgscan.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    RuleFunc = Callable[..., "Outcome"]

GiB = 1 << 30

PASS = "pass"
FAIL = "fail"
WARN = "warn"
UNKNOWN = "unknown"
MANUAL = "manual"


class Outcome:
    """What one rule concluded: status, a message for people, the evidence it used
    (fact path -> ``{"value": ..., "from": where the fact was read}``) and a remedy."""

    __slots__ = ("evidence", "message", "remedy", "status")

    def __init__(self, status: str, message: str, evidence: dict[str, Any] | None = None,
                 remedy: str | None = None) -> None:
        self.status = status
        self.message = message
        self.evidence: dict[str, Any] = evidence or {}
        self.remedy = remedy

    def __repr__(self) -> str:
        return f"Outcome({self.status!r}, {self.message!r})"


class Facts:
    """The ``info`` object a rule judges, plus what only the user can tell
    (``storage_class`` from ``--storage-class``)."""

    def __init__(self, info: Mapping[str, Any], storage_class: str | None = None) -> None:
        self.info = info
        self.storage_class = storage_class

    @property
    def windows(self) -> Mapping[str, Any] | None:
        w = self.info.get("windows")
        return w if w else None

    def windows_source(self, fact: str) -> str | None:
        """Where the windows object says ``fact`` was read (its ``evidence`` entry)."""
        w = self.windows or {}
        source = (w.get("evidence") or {}).get(fact)
        return str(source) if source else None

    def ev(self, fact: str, value: Any = None, source: str | None = None) -> dict[str, Any]:
        """One evidence entry; ``windows.X`` facts default to the windows object's
        own value and evidence, other facts to the top-level ``info`` key."""
        if fact.startswith("windows."):
            key = fact.split(".")[1]
            if value is None:
                value = (self.windows or {}).get(key)
            source = source or self.windows_source(key)
        elif value is None:
            value = self.info.get(fact)
        return {fact: {"value": value, "from": source}}

    def unreadable(self) -> Outcome | None:
        """``unknown`` with the reason when the guest could not be read far enough to
        know whether a Windows installation is there; None when it was read."""
        info = self.info
        if info.get("encrypted"):
            return Outcome(UNKNOWN, f"the container is encrypted ({info.get('encryption')}): "
                           "the guest disk cannot be read",
                           {**self.ev("encrypted", True, "container header"),
                            **self.ev("encryption", source="container header")})
        if info.get("partition_table") == "unknown":
            return Outcome(UNKNOWN, "the guest disk could not be read (partition table unknown)",
                           self.ev("partition_table", source="sector 0 / GPT header"))
        for p in info.get("partitions") or []:
            encrypted = p.get("encrypted") or p.get("filesystem") in ENCRYPTED_FILESYSTEMS
            if encrypted and self.windows is None:
                return Outcome(UNKNOWN, f"partition {p['number']} is encrypted "
                               f"({p.get('filesystem')}): a Windows installation in it "
                               "cannot be seen",
                               self.ev(f"partitions[{p['number']}].filesystem",
                                       p.get("filesystem"), "volume signature"))
        if self.windows is None:
            for f in info.get("findings") or []:
                if str(f.get("message", "")).startswith("windows:"):
                    return Outcome(UNKNOWN, f"Windows inspection failed: {f['message']}",
                                   self.ev("findings", [f], "windows inspection"))
        return None

    def need_windows(self) -> Mapping[str, Any] | Outcome:
        """The windows object, or the ``unknown`` outcome of a rule that needs it."""
        w = self.windows
        if w is not None:
            return w
        return self.unreadable() or Outcome(
            UNKNOWN, "no Windows installation was found (see system-disk-present), so this "
            "cannot be judged", self.ev("windows", None, "NTFS volumes searched for \\Windows"))


ENCRYPTED_FILESYSTEMS = frozenset({"BitLocker", "crypto_LUKS"})


class Rule:
    """A rule id bound to its function, what it checks, and whether the cloud fixes it."""

    __slots__ = ("auto_fixed", "func", "id", "summary")

    def __init__(self, id: str, func: RuleFunc, summary: str, auto_fixed: bool) -> None:
        self.id = id
        self.func = func
        self.summary = summary
        self.auto_fixed = auto_fixed

    def parameters(self) -> tuple[str, ...]:
        """The keyword parameters a profile must supply (from the signature)."""
        code = self.func.__code__
        return code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]


RULES: dict[str, Rule] = {}


def rule(id: str, summary: str, auto_fixed: bool = False) -> Callable[[RuleFunc], RuleFunc]:
    def register(func: RuleFunc) -> RuleFunc:
        RULES[id] = Rule(id, func, summary, auto_fixed)
        return func
    return register


def _gib(n: float) -> str:
    return f"{n:g} GiB"


# -- container (the file itself) ------------------------------------------------

@rule("format-supported", "the container format is one the cloud imports")
def format_supported(f: Facts, *, formats: Sequence[str]) -> Outcome:
    fmt = f.info.get("format")
    ev = f.ev("format", source="content (magic bytes), never the file name")
    if fmt in formats:
        return Outcome(PASS, f"{fmt} is a supported import format", ev)
    if fmt == "iso":
        return Outcome(FAIL, "an ISO file is registered as an ISO image, not imported as a "
                       "system disk", ev,
                       "register it as an ISO image (IMS: Create Image > ISO file), install "
                       "Windows on a temporary ECS and capture that system disk")
    return Outcome(FAIL, f"{fmt} is not a supported import format (supported: "
                   f"{', '.join(formats)})", ev,
                   "qemu-img convert -p -O qcow2 IMAGE IMAGE.qcow2")


@rule("qcow2-not-encrypted", "the container (QCOW2 or any other) is not encrypted")
def qcow2_not_encrypted(f: Facts) -> Outcome:
    ev = {**f.ev("encrypted", source="container header"),
          **f.ev("encryption", source="container header"),
          **f.ev("format", source="content (magic bytes)")}
    if not f.info.get("encrypted"):
        return Outcome(PASS, "the container is not encrypted", ev)
    fmt, how = f.info.get("format"), f.info.get("encryption")
    driver = "luks" if fmt == "luks" else f"{fmt},encrypt.key-secret=sec0"
    secret = "key-secret=sec0" if fmt == "luks" else ""
    opts = ",".join(x for x in (f"driver={driver}", secret, "file.filename=IMAGE") if x)
    return Outcome(FAIL, f"the {fmt} container is encrypted ({how})", ev,
                   "qemu-img convert --object secret,id=sec0,file=PASSPHRASE_FILE "
                   f"--image-opts {opts} -O qcow2 decrypted.qcow2")


@rule("file-size", "the file is small enough for a normal import (else fast import)")
def file_size(f: Facts, *, max_gib: float, fast_import_max_gib: float,
              fast_import_formats: Sequence[str]) -> Outcome:
    size, fmt = f.info.get("file_size") or 0, f.info.get("format")
    ev = {**f.ev("file_size", source="file system (apparent size of every file)"),
          **f.ev("virtual_size", source="container header")}
    if size <= max_gib * GiB:
        return Outcome(PASS, f"file size {human_size(size)} is at most {_gib(max_gib)}", ev)
    if fmt in fast_import_formats and size <= fast_import_max_gib * GiB:
        return Outcome(WARN, f"file size {human_size(size)} is above {_gib(max_gib)}: only "
                       f"fast import takes it ({fmt}; a RAW file needs its .mf bitmap; the "
                       "current API no longer fast-imports Windows)", ev,
                       "java -jar CreateMF.jar IMAGE.raw IMAGE.mf  (RAW), then use fast import")
    return Outcome(FAIL, f"file size {human_size(size)} is above {_gib(max_gib)}, and fast "
                   f"import takes only {' or '.join(fast_import_formats)} up to "
                   f"{_gib(fast_import_max_gib)}", ev,
                   "zero free space in the guest (sdelete -z C:), then "
                   "qemu-img convert -c -p -O qcow2 IMAGE smaller.qcow2; or "
                   "qemu-img-hw convert -p -O zvhd2 IMAGE IMAGE.zvhd2 for fast import")


@rule("system-disk-size", "the system disk (virtual size) is within the cloud's range")
def system_disk_size(f: Facts, *, min_gib: float, max_gib: float) -> Outcome:
    size = f.info.get("virtual_size") or 0
    ev = f.ev("virtual_size", source="container header")
    shown = human_size(size)
    if size > max_gib * GiB:
        return Outcome(FAIL, f"virtual size {shown} is above {_gib(max_gib)}", ev,
                       f"shrink C: in Disk Management (Shrink Volume) so every partition ends "
                       f"below {_gib(max_gib)}, then qemu-img resize --shrink IMAGE "
                       f"{max_gib:g}G")
    if size < min_gib * GiB:
        return Outcome(WARN, f"virtual size {shown} is below {_gib(min_gib)}: the cloud "
                       "disk will be larger than the image", ev,
                       f"none needed; set the system disk (min_disk) to at least "
                       f"{min_gib:g} GiB when registering, and extend C: after first boot")
    return Outcome(PASS, f"virtual size {shown} is within {_gib(min_gib)}..{_gib(max_gib)}",
                   ev)


@rule("self-contained", "no backing file, data file or external extent")
def self_contained(f: Facts) -> Outcome:
    info = f.info
    external = [x for x in info.get("findings") or [] if x.get("id") == "external-extent"]
    ev = {**f.ev("backing_file", source="container header"),
          **f.ev("data_file", source="container header")}
    if external:
        ev.update(f.ev("findings", external, "VMDK descriptor"))
    named = [f"backing file {info['backing_file']!r}"] if info.get("backing_file") else []
    named += [f"data file {info['data_file']!r}"] if info.get("data_file") else []
    named += ["external extents"] if external else []
    unnamed = _dependencies_without_a_name(info) if not named else []
    if unnamed:
        ev.update(f.ev("findings", unnamed, "container header"))
        named += [x["message"] for x in unnamed]
    if not named:
        return Outcome(PASS, "the image is self-contained", ev)
    return Outcome(FAIL, f"the image depends on other files: {', '.join(named)}", ev,
                   "qemu-img convert -p -O qcow2 IMAGE standalone.qcow2  (with the other "
                   "files in place: it copies the whole chain into one file)")


def _dependencies_without_a_name(info: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``backing-file`` / ``data-file`` findings of an image whose facts name no file.

    A dependency is not always a file name: a differencing VDI names its parent only
    by UUID, and a qcow2 may set the external-data-file bit without the extension
    that names the file (``data_file`` is then empty). The finding still says the
    disk is read from elsewhere, so the image is not self-contained.
    """
    return [x for x in info.get("findings") or []
            if x.get("id") in ("backing-file", "data-file") and x.get("severity") != "info"]


@rule("consistent-headers", "no header copies that disagree, truncation or ambiguous format")
def consistent_headers(f: Facts, *, finding_ids: Sequence[str]) -> Outcome:
    bad = [x for x in f.info.get("findings") or [] if x.get("id") in finding_ids]
    ev = f.ev("findings", bad, "container and partition table decoders")
    if not bad:
        return Outcome(PASS, "the headers are consistent", ev)
    return Outcome(FAIL, "; ".join(f"{x['id']}: {x['message']}" for x in bad), ev,
                   "qemu-img convert -p -O qcow2 IMAGE rewritten.qcow2  (after checking the "
                   "converted disk's contents), or rebuild the image from its source")


@rule("no-error-findings", "no finding of the given severities")
def no_error_findings(f: Facts, *, severities: Sequence[str]) -> Outcome:
    bad = [x for x in f.info.get("findings") or [] if x.get("severity") in severities]
    ev = f.ev("findings", bad, "imgscan info")
    if not bad:
        return Outcome(PASS, f"no finding of severity {'/'.join(severities)}", ev)
    return Outcome(FAIL, "; ".join(f"{x['id']}: {x['message']}" for x in bad), ev,
                   "fix the image as each finding says (imgscan info IMAGE), or rebuild it")


# -- the system disk ---------------------------------------------------------------

@rule("system-disk-present", "the file holds a Windows system disk")
def system_disk_present(f: Facts) -> Outcome:
    w = f.windows
    if w is not None:
        ev = {**f.ev("windows.partition", source="NTFS volume holding \\Windows"),
              **f.ev("windows.systemroot", source="NTFS directory lookup"),
              **f.ev("windows.product_name")}
        return Outcome(PASS, f"{w.get('product_name') or 'Windows'} in {w.get('systemroot')} "
                       f"on partition {w.get('partition')}", ev)
    reason = f.unreadable()
    if reason is not None:
        return reason
    return Outcome(FAIL, "no Windows installation found: this is not a Windows system disk",
                   {**f.ev("windows", None, "NTFS volumes searched for \\Windows"),
                    **f.ev("partitions", [p.get("filesystem") for p in
                                          f.info.get("partitions") or []], "partition table")},
                   "export the VM's system disk (the one holding C:\\Windows); import data "
                   "disks as data-disk images")


@rule("boot-system-same-disk", "the boot partition (BCD, bootmgr) and Windows are on this disk")
def boot_system_same_disk(f: Facts) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
    ev = {**f.ev("windows.boot_partition"), **f.ev("windows.partition")}
    if w.get("boot_partition") is None:
        return Outcome(FAIL, "no BCD store or bootmgr on this disk: the boot partition is on "
                       "another disk", ev,
                       "in the source VM: bcdboot C:\\Windows /s C: /f BIOS, then export "
                       "the system disk again")
    return Outcome(PASS, f"boot files on partition {w['boot_partition']}, Windows on "
                   f"partition {w.get('partition')}", ev)


@rule("bios-boot", "the disk boots by BIOS, not UEFI only")
def bios_boot(f: Facts) -> Outcome:
    mode = f.info.get("boot_mode")
    seen = "; ".join(f.info.get("boot_evidence") or []) or "no boot path"
    ev = f.ev("boot_mode", source=seen)
    w = f.windows or {}
    loader = (w.get("bcd") or {}).get("loader")
    if loader:
        ev.update(f.ev("windows.bcd.loader", loader, f.windows_source("bcd")))
    if mode in ("bios", "hybrid"):
        return Outcome(PASS, f"boot mode {mode} ({seen})", ev)
    if mode == "uefi" or loader == "winload.efi":
        return Outcome(FAIL, f"UEFI boot only ({seen})", ev,
                       "convert the source VM to BIOS/MBR boot before export (e.g. "
                       "bcdboot C:\\Windows /f BIOS on an MBR disk), or register with "
                       "hw_firmware_type=uefi where the OS is on the UEFI list")
    unknown = f.unreadable()
    if unknown is not None:
        return unknown
    windows_says = f" although Windows boots through {loader} (BIOS)" if loader else ""
    return Outcome(FAIL, f"no BIOS boot path ({seen}){windows_says}", ev,
                   "write the Windows MBR boot code: bootsect /nt60 SYS /mbr (Windows "
                   "setup media) or ms-sys -7 /dev/sdX")


@rule("no-disk-encryption", "no BitLocker, LUKS or other volume encryption")
def no_disk_encryption(f: Facts) -> Outcome:
    info = f.info
    unreadable = f.unreadable() if info.get("encrypted") or \
        info.get("partition_table") == "unknown" else None
    if unreadable is not None:
        return unreadable
    encrypted = [p for p in info.get("partitions") or []
                 if p.get("encrypted") or p.get("filesystem") in ENCRYPTED_FILESYSTEMS]
    whole = info.get("filesystem") in ENCRYPTED_FILESYSTEMS
    ev = f.ev("partitions[].encrypted", {p["number"]: p.get("filesystem") for p in encrypted},
              "volume signatures (-FVE-FS-, LUKS magic)")
    if whole:
        ev.update(f.ev("filesystem", source="volume signature"))
    if not encrypted and not whole:
        return Outcome(PASS, "no encrypted volume", ev)
    where = [f"partition {p['number']} ({p.get('filesystem')})" for p in encrypted]
    where += [f"the whole disk ({info.get('filesystem')})"] if whole else []
    return Outcome(FAIL, f"encrypted: {', '.join(where)}", ev,
                   "in the source VM: manage-bde -off C: (wait for decryption to finish), "
                   "then export again")


# -- the Windows guest --------------------------------------------------------------

@rule("administrator-account", "the built-in Administrator is enabled and has a password")
def administrator_account(f: Facts) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
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


@rule("login-credentials", "a password is set, or Cloudbase-Init is installed and enabled")
def login_credentials(f: Facts) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
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
    return Outcome(MANUAL, "an image stores only password hashes: check by hand that the "
                   "initial password has upper and lower case letters, digits and one of "
                   f"{special_characters}", {},
                   "net user Administrator *  (enter a password that meets the rule)")


@rule("ide-driver", "the IDE disk drivers start at boot", auto_fixed=True)
def ide_driver(f: Facts, *, required: Sequence[str], any_of: Sequence[str],
               boot_start: int) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
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


@rule("guest-os-driver", "VirtIO or UVP PV storage drivers are installed")
def guest_os_driver(f: Facts, *, services: Sequence[str]) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
    drivers = w.get("drivers") or {}
    found = {n: drivers[n] for n in services if n in drivers}
    ev = f.ev("windows.drivers", found)
    if found:
        return Outcome(PASS, "PV drivers installed: " + ", ".join(
            f"{n} (start {v})" for n, v in found.items()), ev)
    return Outcome(FAIL, f"none of {', '.join(services)} is installed", ev,
                   "in the source VM: install the VirtIO drivers (msiexec /i "
                   "virtio-win-gt-x64.msi /qn) or Huawei UVP VMTools")


@rule("rdp-enabled", "Remote Desktop is enabled")
def rdp_enabled(f: Facts) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
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


@rule("dhcp", "every network interface uses DHCP", auto_fixed=True)
def dhcp(f: Facts) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
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


@rule("clean-shutdown", "not hibernated, volume and image not dirty")
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


@rule("not-oem", "not an OEM-licensed edition")
def not_oem(f: Facts) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
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


@rule("not-hardware-bound", "the OS is not bound to specific hardware")
def not_hardware_bound(f: Facts) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
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


@rule("full-virtualization", "the OS runs fully virtualized (x86 / x86_64 Windows)")
def full_virtualization(f: Facts, *, arches: Sequence[str]) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
    arch = w.get("arch")
    ev = f.ev("windows.arch")
    if arch is None:
        return Outcome(UNKNOWN, "System32\\cmd.exe could not be read for its architecture", ev)
    if arch in arches:
        return Outcome(PASS, f"{arch} Windows", ev)
    return Outcome(FAIL, f"{arch} Windows: only {', '.join(arches)} run fully virtualized "
                   "here", ev, "use an x86_64 build of Windows")


@rule("os-supported", "the Windows product is on the cloud's supported list")
def os_supported(f: Facts, *, products: Sequence[str], products_32bit: Sequence[str]) -> Outcome:
    w = f.need_windows()
    if isinstance(w, Outcome):
        return w
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

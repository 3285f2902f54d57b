"""Windows inspection: find the installation, read its facts, say where each came from.

Sources: ../shared/docs/windows-inspection.md (constraint by constraint,
which file or registry value proves each fact) and libguestfs
``daemon/inspect_fs_windows.ml`` (how a Windows root is recognised). The
result is the JSON contract's ``windows`` object plus extension keys
(``evidence``, ``findings``, ``ubr``, ``product_id``, ``oem``, ``bcd``, ...).

A Windows root is an NTFS volume holding, case-insensitively, one of
``\\Windows \\WINNT \\WIN32 \\WIN \\ReactOS`` with ``System32``,
``System32\\config`` and the *file* ``System32\\cmd.exe`` (libguestfs
requires cmd.exe so that a data disk with a stray ``\\Windows`` folder is not
taken for a system). The hives are read once each, when a fact first needs
them; the boot store is looked for on the active MBR partition
(``\\Boot\\BCD`` + ``\\bootmgr``) and on EFI system partitions
(``\\EFI\\Microsoft\\Boot\\BCD``).

Nothing here raises for a damaged guest: a fact that cannot be read is null
and a finding names it and why.
"""

from __future__ import annotations

from imgscan import limits
from imgscan._core.fat import FatVolume
from imgscan._core.ntfs import NtfsVolume
from imgscan._core.parttypes import GPT_TYPE_EFI_SYSTEM, MBR_TYPE_EFI_SYSTEM
from imgscan.errors import ImageError
from imgscan.findings import CORRUPT, DIRTY, Finding, finding_id

from .. import roots
from . import bcd as bcd_mod
from . import cloudbaseinit, pe, sam
from .hives import Facts, apply_rdp_policy, open_hive, software_facts, system_facts

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from imgscan._core.regf import Hive
    from imgscan.disk_image import Prefetch
    from imgscan.layout import Layout

    Read = Callable[[int, int], bytes]

#: Names of the system root libguestfs accepts (is_windows_systemroot).
SYSTEMROOT_NAMES = ("Windows", "WINNT", "WIN32", "WIN", "ReactOS")
CONFIG = "System32\\config"
HIVES = ("SYSTEM", "SOFTWARE", "SAM")
HIBERFIL = "\\hiberfil.sys"
#: Header signatures of a hibernation file holding an image (ntfs-3g's
#: ntfs_volume_check_hiberfile tests "hibr"; Windows 8+ writes "HIBR"; "wake"
#: / "RSTR" mark a resume in progress). A zeroed header means no image.
HIBERNATION_SIGNATURES = (b"hibr", b"wake", b"rstr")
HIBERFIL_HEADER = 4096
BCD_BIOS = "\\Boot\\BCD"
BOOTMGR_BIOS = "\\bootmgr"
BCD_UEFI = "\\EFI\\Microsoft\\Boot\\BCD"
ESP_TYPES = (GPT_TYPE_EFI_SYSTEM, f"{MBR_TYPE_EFI_SYSTEM:#04x}")
#: How much of each file the inspection reads is announced before it is read (the
#: hives' base blocks and first bins, the BCD store, cmd.exe's PE header): a constant,
#: never a size the volume claims.
ANNOUNCE_FILE_BYTES = 64 * 1024
FAT_NAMES = ("vfat", "fat", "msdos")
#: The MFT record of ``$Bitmap``, the volume's cluster allocation bitmap (one bit per
#: cluster, set = in use; ntfs-3g's FILE_Bitmap), and how much of it is read at once.
BITMAP_RECORD = 6
BITMAP_CHUNK = 1024 * 1024


def find_systemroot(vol: NtfsVolume) -> str | None:
    """``\\Windows`` (as named on disk) when ``vol`` holds a Windows root, else None."""
    for name in SYSTEMROOT_NAMES:
        root = "\\" + name
        if not vol.is_dir(root):
            continue
        cmd = vol.lookup(root + "\\System32\\cmd.exe")
        if vol.is_dir(root + "\\System32") and vol.is_dir(root + "\\" + CONFIG) \
                and cmd is not None and not cmd.is_dir:
            f = vol.lookup(root)
            names = f.names if f is not None else []
            stored = next((n for _, ns, n in names if ns != 2), name)
            return "\\" + stored
    return None


class WindowsGuest:
    """One Windows installation on an NTFS volume; facts read on demand."""

    def __init__(self, vol: NtfsVolume, systemroot: str, partition: int | None) -> None:
        self.vol = vol
        self.systemroot = systemroot
        self.partition = partition
        self.facts = Facts()
        self._hives: dict[str, Hive | None] = {}
        #: Per hive read, whether it was dirty and what its logs gave (``hive_logs``).
        self.hive_logs: dict[str, dict[str, Any]] = {}

    def path(self, rel: str) -> str:
        return f"{self.systemroot}\\{rel}"

    def hive(self, name: str) -> Hive | None:
        """The hive ``System32\\config\\NAME``, read once; None (and a finding) if unreadable."""
        if name in self._hives:
            return self._hives[name]
        path = self.path(f"{CONFIG}\\{name}")
        hive = None
        try:
            f = self.vol.lookup(path)
            if f is None or f.is_dir:
                self.facts.fail(f"{name} hive", f"{path} does not exist")
            else:
                limits.enforce(f.size, "WINDOWS_MAX_HIVE_BYTES", path, "hive file", None,
                               "size")
                hive, self.hive_logs[name] = open_hive(
                    f.read(), path, lambda suffix: _read_log(self.vol, path + suffix,
                                                             self.facts))
                _file_findings(hive, self.facts)
        except ImageError as exc:
            self.facts.fail(f"{name} hive", f"{path}: {exc}", finding_id(exc))
        self._hives[name] = hive
        return hive

    # -- facts -----------------------------------------------------------------
    def arch(self) -> None:
        path = self.path("System32\\cmd.exe")
        try:
            header = self.vol.open(path).read(0, pe.HEADER_BYTES)
            machine = pe.machine(header)
        except (ImageError, ValueError) as exc:
            self.facts.fail("arch", f"{path}: {exc}",
                            finding_id(exc) if isinstance(exc, ImageError) else CORRUPT)
            return
        self.facts.put("arch", pe.MACHINES.get(machine),
                       f"{path} PE Machine 0x{machine:04x}")

    def hibernation(self) -> None:
        try:
            f = self.vol.lookup(HIBERFIL)
            if f is None or f.is_dir:
                self.facts.put("hibernated", False, f"{HIBERFIL} absent")
                return
            head = f.read(0, min(HIBERFIL_HEADER, f.size))
        except ImageError as exc:
            self.facts.fail("hibernated", f"{HIBERFIL}: {exc}", finding_id(exc))
            return
        sig = head[:4]
        hibernated = sig.lower() in HIBERNATION_SIGNATURES
        shown = sig.decode("latin-1") if sig.isascii() and sig.isalpha() else sig.hex()
        self.facts.put("hibernated", hibernated,
                       f"{HIBERFIL} header signature {shown!r}")

    def cloudbase_init(self) -> None:
        info: dict[str, Any] = {"installed": False, "config_path": None, "service_start": None}
        evidence = []
        start = self.facts.values.get("cloudbase_init_service_start")
        if isinstance(start, int):
            info["service_start"] = start
            evidence.append(self.facts.evidence["cloudbase_init_service_start"])
        for base in cloudbaseinit.INSTALL_DIRS:
            path = f"\\{base}\\{cloudbaseinit.PRODUCT_DIR}\\{cloudbaseinit.CONF}"
            try:
                f = self.vol.lookup(path)
                if f is None or f.is_dir:
                    continue
                limits.enforce(f.size, "WINDOWS_MAX_CONFIG_BYTES", path, "configuration file",
                               None, "size")
                text = f.read().decode("utf-8", "replace")
                info["installed"] = True
                info["config_path"] = path
                evidence.insert(0, path)
                info["config"] = cloudbaseinit.parse_conf(text)
            except ImageError as exc:
                self.facts.fail("cloudbase_init", f"{path}: {exc}", finding_id(exc))
            except ValueError as exc:
                self.facts.fail("cloudbase_init", f"{path}: not an INI file: {exc}")
            if info["installed"]:
                break
        if not info["installed"] and info["service_start"] is not None:
            info["installed"] = True
        self.facts.put("cloudbase_init", info,
                       ", ".join(evidence) or "no cloudbase-init.conf, no cloudbase-init service")

    def free_space(self) -> None:
        """``free_bytes``: the clear bits of ``$Bitmap`` over the volume's clusters, times
        the cluster size (what ``ntfsinfo -m`` reports as free clusters). AWS wants
        6 GiB free on the root volume for its drivers (import-rules.md 2.1)."""
        where = f"partition {self.partition} $Bitmap (MFT record {BITMAP_RECORD})"
        try:
            f = self.vol.open_record(BITMAP_RECORD)
            limits.enforce(f.size, "WINDOWS_MAX_BITMAP_BYTES", where, "$Bitmap", None, "size")
            clusters = self.vol.total_clusters
            need = -(-clusters // 8)
            if f.size < need:
                self.facts.fail("free_bytes", f"{where}: {f.size} bytes for {clusters} "
                                "clusters")
                return
            used = 0
            for pos in range(0, need, BITMAP_CHUNK):
                chunk = f.read(pos, min(BITMAP_CHUNK, need - pos))
                used += int.from_bytes(chunk, "little").bit_count()
            tail = clusters % 8
            if tail:  # bits past the last cluster do not count
                last = f.read(need - 1, 1)[0]
                used -= (last >> tail).bit_count()
        except ImageError as exc:
            self.facts.fail("free_bytes", f"{where}: {exc}", finding_id(exc))
            return
        self.facts.put("free_bytes", (clusters - used) * self.vol.cluster_size,
                       f"{where}: {clusters - used} of {clusters} clusters clear")

    def collect(self) -> None:
        self.arch()
        software = self.hive("SOFTWARE")
        if software is not None:
            software_facts(software, self.facts)
        system = self.hive("SYSTEM")
        if system is not None:
            system_facts(system, self.facts)
        apply_rdp_policy(self.facts)
        sam_hive = self.hive("SAM")
        if sam_hive is not None:
            sam.administrator(sam_hive, self.facts)
            sam.administrators_members(sam_hive, self.facts)
        self.cloudbase_init()
        self.hibernation()
        self.free_space()
        if self.vol.dirty:
            self.facts.findings.append(Finding(
                DIRTY, "warning", f"windows: the NTFS volume of partition {self.partition} "
                "is marked dirty ($Volume flags): it was not unmounted cleanly"))
        if self.facts.values.get("hibernated"):
            self.facts.findings.append(Finding(
                DIRTY, "warning", f"windows: {HIBERFIL} holds a hibernation image "
                "(hibernated or fast startup): the volume's state is in memory, not on disk"))


def _file_findings(hive: Hive, facts: Facts) -> None:
    """The hive's own findings (dirty, replayed, damaged base block) as Windows findings."""
    for finding in hive.findings:
        facts.findings.append(Finding(finding.id, finding.severity,
                                      f"windows: {finding.message}"))


def _read_log(vol: NtfsVolume, path: str, facts: Facts) -> bytes | None:
    """A transaction log's bytes, None when absent or unreadable (a finding says why)."""
    try:
        f = vol.lookup(path)
        if f is None or f.is_dir:
            return None
        limits.enforce(f.size, "WINDOWS_MAX_HIVE_BYTES", path, "hive log file", None, "size")
        return f.read()
    except ImageError as exc:
        facts.findings.append(Finding(finding_id(exc), "warning",
                                      f"windows: {path} not read: {exc}"))
        return None


# -- the boot store ------------------------------------------------------------

def _boot_candidates(layout: Layout) -> list[tuple[dict[str, Any], str]]:
    """(partition, BCD path) pairs to look at, active MBR partitions and ESPs first."""
    out = []
    for p in layout.partitions:
        fs = p.get("filesystem")
        if p.get("type") in ESP_TYPES and fs in (*FAT_NAMES, "ntfs"):
            out.append((p, BCD_UEFI))
        elif p.get("bootable") and fs == "ntfs" and layout.partition_table == "mbr":
            out.append((p, BCD_BIOS))
    return out


def _read_boot_file(read: Read, p: dict[str, Any], path: str,
                    volumes: dict[int, NtfsVolume]) -> tuple[bytes | None, bool,
                                                             Callable[[str], bytes | None]]:
    """(the BCD bytes or None, bootmgr present, a reader of the files beside the BCD
    such as its logs: bytes or None when absent) on partition ``p``."""
    name = f"partition {p['number']}"
    if p.get("filesystem") == "ntfs":
        vol = volumes.get(p["number"]) or _ntfs(read, p)

        def read_ntfs(file: str) -> bytes | None:
            f = vol.lookup(file)
            if f is None or f.is_dir:
                return None
            # the same cap as on a FAT volume
            limits.enforce(f.size, "FAT_MAX_FILE_BYTES", name, f"file {file!r}", None, "size")
            return f.read()

        return read_ntfs(path), path == BCD_UEFI or vol.exists(BOOTMGR_BIOS), read_ntfs
    fat = FatVolume(read, p["start"], p["size"], name)
    return fat.read_file(path), True, fat.read_file


def _ntfs(read: Read, p: dict[str, Any]) -> NtfsVolume:
    return NtfsVolume(read, p["start"], p["size"], f"partition {p['number']}")


def _match_device(dev: dict[str, Any] | None, layout: Layout) -> int | None:
    """The partition number a BCD device names on this disk, None if another disk."""
    if not dev or "style" not in dev:
        return None
    details = layout.details or {}
    if dev["style"] == "gpt":
        gpt = details.get("gpt") or {}
        disk = ((gpt.get("primary") or {}).get("disk_guid") or "").lower()
        if dev["disk_guid"] != disk:
            return None
        return next((p["number"] for p in layout.partitions
                     if (p.get("guid") or "").lower() == dev["partition_guid"]), None)
    if dev["style"] == "mbr":
        mbr = details.get("mbr") or {}
        if (mbr.get("disk_signature") or "").lower() != dev["disk_signature"]:
            return None
        return next((p["number"] for p in layout.partitions if p["start"] == dev["offset"]), None)
    return None


def boot_store(read: Read, layout: Layout, facts: Facts,
               volumes: dict[int, NtfsVolume], hive_logs: dict[str, dict[str, Any]]) -> None:
    """``boot_partition`` and the ``bcd`` facts from the first BCD store found on this disk."""
    for p, path in _boot_candidates(layout):
        where = f"partition {p['number']}:{path}"
        try:
            data, bootmgr, read_beside = _read_boot_file(read, p, path, volumes)
        except ImageError as exc:
            facts.fail("boot_partition", f"{where}: {exc}", finding_id(exc))
            continue
        if data is None or not bootmgr:
            continue
        facts.put("boot_partition", p["number"], where)

        def read_log(suffix: str, where: str = where, path: str = path,
                     read_beside: Callable[[str], bytes | None] = read_beside) -> bytes | None:
            try:
                return read_beside(path + suffix)
            except ImageError as exc:
                facts.findings.append(Finding(finding_id(exc), "warning",
                                              f"windows: {where}{suffix} not read: {exc}"))
                return None

        try:
            hive, hive_logs["BCD"] = open_hive(data, where, read_log)
        except ImageError as exc:
            facts.fail("bcd", f"{where}: {exc}", finding_id(exc))
            return
        _file_findings(hive, facts)
        bcd_mod.store_facts(hive, facts)
        store = facts.values.get("bcd")
        if isinstance(store, dict):
            store["path"] = path
            store["partition"] = p["number"]
            store["bootmgr_partition"] = _match_device(store.get("bootmgr_device"), layout)
            store["loader_partition"] = _match_device(
                store.get("os_device") or store.get("loader_device"), layout)
        return
    facts.put("boot_partition", None,
              "no \\Boot\\BCD + \\bootmgr on an active partition, "
              "no \\EFI\\Microsoft\\Boot\\BCD on an EFI system partition")


# -- the whole inspection --------------------------------------------------------

def _announce_files(guest: WindowsGuest, layout: Layout, volumes: dict[int, NtfsVolume],
                    prefetch: Prefetch) -> None:
    """Announce the first ANNOUNCE_FILE_BYTES of the files the inspection reads one after
    the other (cmd.exe, the hives, hiberfil.sys, $Bitmap, the BCD store on an NTFS boot
    partition), so that a remote source fetches them in one round trip. Only looks
    names up (the lookups are kept for the reads); a file that cannot be found or
    looked up is left to the read, which reports it."""
    found: list[tuple[NtfsVolume, str | int]] = [
        (guest.vol, guest.path(rel))
        for rel in ("System32\\cmd.exe", *(f"{CONFIG}\\{name}" for name in HIVES))]
    found += [(guest.vol, HIBERFIL), (guest.vol, BITMAP_RECORD)]
    found += [(volumes[p["number"]], path) for p, path in _boot_candidates(layout)
              if p.get("filesystem") == "ntfs" and p["number"] in volumes]
    ranges: list[tuple[int, int]] = []
    for vol, name in found:
        try:
            f = vol.lookup(name) if isinstance(name, str) else vol.open_record(name)
        except ImageError:
            continue
        if f is None or f.is_dir:
            continue
        want = min(f.size, ANNOUNCE_FILE_BYTES)
        cluster = vol.cluster_size
        for vcn, lcn, count in f.runs():
            start = vcn * cluster
            if start >= want:
                break
            if lcn >= 0:
                ranges.append((vol.offset + lcn * cluster, min(count * cluster, want - start)))
    if ranges:
        prefetch(ranges, "Windows files", [])


def _opened(read: Read, start: int, size: int, number: int | None,
            prefetch: Prefetch | None) -> NtfsVolume | ImageError:
    """The NTFS volume at ``start``, or why it cannot be opened (reported when the
    search reaches it)."""
    name = f"partition {number}" if number is not None else "whole disk"
    try:
        return NtfsVolume(read, start, size, name, prefetch)
    except ImageError as exc:
        return exc


def _announce_lookups(read: Read, layout: Layout, volumes: list[NtfsVolume],
                      prefetch: Prefetch) -> None:
    """Announce what every volume's first lookup by name reads ($UpCase's first page,
    the root's index; a FAT boot partition's FAT and root directory), all at once: the
    search for the Windows root and the boot partition's BCD look names up on each
    volume in turn, which would otherwise cost a round trip per volume. A volume that
    cannot be read is left to the search, which reports it."""
    ranges: list[tuple[int, int]] = []
    near: list[tuple[int, int]] = []
    found: list[NtfsVolume | FatVolume] = [*volumes]
    for p, _ in _boot_candidates(layout):
        if p.get("filesystem") in FAT_NAMES:
            try:
                found.append(FatVolume(read, p["start"], p["size"], f"partition {p['number']}"))
            except ImageError:
                continue
    for vol in found:
        try:
            upcase, index = vol.lookup_announcement()
        except ImageError:
            continue
        ranges += upcase
        near += index
    if ranges or near:
        prefetch(ranges, "NTFS $UpCase, root indexes and boot FAT", near)


def inspect(read: Read, layout: Layout, prefetch: Prefetch | None = None
            ) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The ``windows`` object for the disk ``read`` reads (None when no Windows root
    exists) and the findings of the inspection (also listed in the object).
    ``prefetch``: where the disk takes announcements of what is read next
    (``GuestBytes.prefetch``), passed to each NTFS volume searched."""
    findings: list[Finding] = []
    volumes: dict[int, NtfsVolume] = {}
    guest: WindowsGuest | None = None
    opened = [(number, _opened(read, start, size, number, prefetch))
              for number, start, size in roots.volumes(layout, "ntfs")]
    if prefetch is not None:
        _announce_lookups(read, layout, [vol for _, vol in opened if isinstance(vol, NtfsVolume)],
                          prefetch)
    for number, vol in opened:
        name = f"partition {number}" if number is not None else "whole disk"
        try:
            if isinstance(vol, ImageError):
                raise vol
            if number is not None:
                volumes[number] = vol
            root = find_systemroot(vol)
        except ImageError as exc:
            findings.append(Finding(finding_id(exc), "warning",
                                    f"windows: {name}: NTFS not readable, not searched for "
                                    f"a Windows installation: {exc}"))
            continue
        if root is not None:
            guest = WindowsGuest(vol, root, number)
            break
    if guest is None:
        return None, findings
    if prefetch is not None:
        _announce_files(guest, layout, volumes, prefetch)
    guest.collect()
    facts = guest.facts
    facts.findings[:0] = findings
    boot_store(read, layout, facts, volumes, guest.hive_logs)
    # each one is also an ``encrypted`` finding of the layout (imgscan.layout)
    bitlocker = [p["number"] for p in layout.partitions if p.get("filesystem") == "BitLocker"]
    v = facts.values
    return {
        # 0: an unpartitioned disk whose whole volume is the Windows NTFS.
        "partition": guest.partition if guest.partition is not None else 0,
        "systemroot": guest.systemroot,
        "product_name": v.get("product_name"),
        "edition_id": v.get("edition_id"),
        "installation_type": v.get("installation_type"),
        "major_version": v.get("major_version"),
        "minor_version": v.get("minor_version"),
        "build": v.get("build"),
        "arch": v.get("arch"),
        "hostname": v.get("hostname"),
        "license_channel": v.get("license_channel"),
        "administrator": {k: bool((v.get("administrator") or {}).get(k))
                          for k in ("exists", "enabled", "password_set")},
        "cloudbase_init": {k: (v.get("cloudbase_init") or {}).get(k)
                           for k in ("installed", "config_path", "service_start")},
        "drivers": v.get("drivers") or {},
        "rdp_enabled": v.get("rdp_enabled"),
        "dhcp_enabled": v.get("dhcp_enabled"),
        "boot_partition": v.get("boot_partition"),
        "hibernated": v.get("hibernated"),
        # -- extension keys ------------------------------------------------------
        "ubr": v.get("ubr"),
        "product_id": v.get("product_id"),
        "oem": v.get("oem"),
        "control_set": v.get("control_set"),
        "firmware_boot_device": v.get("firmware_boot_device"),
        "system_boot_device": v.get("system_boot_device"),
        "mounted_devices": v.get("mounted_devices"),
        "hiberboot_enabled": v.get("hiberboot_enabled"),
        "administrator_details": v.get("administrator"),
        "administrators": v.get("administrators"),
        "cloudbase_init_config": (v.get("cloudbase_init") or {}).get("config"),
        "interfaces_dhcp": v.get("interfaces_dhcp"),
        "bcd": v.get("bcd"),
        "bitlocker_partitions": bitlocker,
        "volume_dirty": guest.vol.dirty,
        "free_bytes": v.get("free_bytes"),
        "real_time_is_universal": v.get("real_time_is_universal"),
        "autologon": v.get("autologon"),
        "firewall_enabled": v.get("firewall_enabled"),
        "rdp_firewall_rules": v.get("rdp_firewall_rules"),
        "winrm_firewall_rules": v.get("winrm_firewall_rules"),
        "icmp_firewall_rules": v.get("icmp_firewall_rules"),
        "rdp_port": v.get("rdp_port"),
        "rdp_nla": v.get("rdp_nla"),
        "san_policy": v.get("san_policy"),
        "winhttp_proxy": v.get("winhttp_proxy"),
        "paging_files": v.get("paging_files"),
        "dotnet_release": v.get("dotnet_release"),
        "reboot_pending": v.get("reboot_pending"),
        "pending_file_renames": v.get("pending_file_renames"),
        "installed_kbs": v.get("installed_kbs"),
        "hive_logs": guest.hive_logs,
        "evidence": facts.evidence,
        "findings": [f.as_dict() for f in facts.findings],
    }, facts.findings

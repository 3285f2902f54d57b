"""Compact, aligned text renderings of ``info`` objects and extent maps."""

from __future__ import annotations

from itertools import chain, compress, repeat
from operator import itemgetter

from ..units import human_size
from ..vocabulary import STATUSES, VIOLATIONS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    from imgscan._core.extents import Extent


def _yes_no(flag: bool, detail: str | None = None) -> str:
    if not flag:
        return "no"
    return f"yes ({detail})" if detail else "yes"


def _named(name: str | None, fmt: str | None) -> str:
    if name is None:
        return "-"
    return f"{name} ({fmt})" if fmt else name


def fetched(source: Mapping[str, Any]) -> str:
    """What reading a remote image cost: bytes fetched, range requests, storage class."""
    return (f"{human_size(source['bytes_read'])} in {source['requests']} range requests "
            f"(storage class {source['storage_class'] or '-'})")


def info_text(info: Mapping[str, Any]) -> str:
    """The ``imgscan info`` summary of one contract object."""
    rows = info_rows(info)
    width = max(len(label) for label, _ in rows) + 2
    lines = [info["path"]]
    lines += [f"  {label:<{width}}{value}" for label, value in rows]
    findings = info["findings"]
    if not findings:
        lines.append(f"  {'findings':<{width}}none")
    for i, finding in enumerate(findings):
        label = "findings" if i == 0 else ""
        lines.append(f"  {label:<{width}}{finding['severity']:<8} {finding['id']}: "
                     f"{finding['message']}")
    return "\n".join(lines)


def info_rows(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The facts of ``imgscan info`` as (label, value) rows; labels of the rows that
    detail the one above start with two spaces (the HTML report shows them too)."""
    fmt = info["format"] + (f" ({info['subformat']})" if info.get("subformat") else "")
    rows = [
        ("format", fmt),
        ("virtual size", human_size(info["virtual_size"])),
        ("file size", human_size(info["file_size"])),
        ("allocated", human_size(info["allocated_size"])),
        ("cluster size", human_size(info["cluster_size"])),
        ("encrypted", _yes_no(info["encrypted"], info["encryption"])),
        ("backing file", _named(info["backing_file"], info["backing_format"])),
        ("data file", _named(info["data_file"], None)),
        ("snapshots", str(info["snapshots"])),
        ("dirty", _yes_no(info["dirty"])),
    ]
    if info.get("source"):
        rows.append(("fetched", fetched(info["source"])))
    if info.get("ova"):
        rows += package_rows(info["ova"], info.get("disks") or [])
    rows += layout_rows(info)
    if info.get("windows"):
        rows += windows_rows(info["windows"])
    if info.get("linux"):
        rows += linux_rows(info["linux"])
    return rows


def package_rows(ova: Mapping[str, Any], disks: list[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """An OVF package: its descriptor's facts, manifest and every disk (the system disk
    marked), before the system disk's own layout rows."""
    rows = [("package", f"{ova['kind'].upper()}, descriptor {ova['descriptor']}")]
    os_type = ova.get("os_type") or (f"OVF id {ova['os_id']}" if ova.get("os_id") is not None
                                     else None)
    rows.append(("ovf guest os", os_type or "not stated"))
    rows.append(("ovf firmware", ova.get("firmware") or "not stated"))
    hw = [f"{c['type']}/{c['subtype']}" if c.get("subtype") else c["type"]
          for c in ova.get("controllers") or []]
    rows.append(("controllers", ", ".join(hw) or "none"))
    rows.append(("nics", ", ".join(n.get("subtype") or "?" for n in ova.get("nics") or [])
                 or "none"))
    mf = ova.get("manifest")
    if mf is None:
        rows.append(("manifest", "none"))
    else:
        state = {None: "not verified (--verify-manifest)", True: "verified"}.get(
            mf["verified"], f"MISMATCH: {', '.join(mf['mismatches'])}")
        rows.append(("manifest", f"{mf['name']}, {mf['entries']} files, {state}"))
    rows.append(("signature", _signature_text(ova.get("signature"))))
    for d in disks:
        label = "disks" if d["index"] == 0 else ""
        mark = " (system disk)" if d.get("system") else ""
        if "error" in d:
            rows.append((label, f"{d['index']}: {d.get('href')}{mark}: {d['error']}"))
            continue
        fmt = d["format"] + (f" {d['subformat']}" if d.get("subformat") else "")
        rows.append((label, f"{d['index']}: {d.get('href')}{mark}: {fmt}, "
                     f"{_short_size(d['virtual_size'])}, {d['partition_table']}, boot "
                     f"{d['boot_mode']}"))
    return rows


def _signature_text(sig: Mapping[str, Any] | None) -> str:
    """The package's certificate file in one line: who signed, and whether it holds."""
    if sig is None:
        return "none (unsigned)"
    state = {True: "verifies", False: "DOES NOT VERIFY"}.get(
        sig["verified"], f"not verified: {sig['unverified']}")
    cert = sig.get("certificate")
    who = (f", signed by {cert['subject']} until {cert['not_after'][:10]}"
           " (chain of trust not checked)" if cert else "")
    return f"{sig['name']}, {sig['algorithm'] or '?'}{who}, {state}"


def _short_size(n: int) -> str:
    """``16777216`` -> ``16 MiB``: for table columns, where the exact count would crowd."""
    return human_size(n).split(" (")[0]


def layout_rows(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Partition table, one row per partition, the whole-disk filesystem and the boot mode."""
    table = info.get("partition_table", "unknown")
    parts = info.get("partitions") or []
    rows = [("partitions", table if not parts else f"{table}, {len(parts)}")]
    shown: dict[str, str] = {}
    for p in parts:
        fs = p.get("filesystem") or "-"
        label = f" '{p['label']}'" if p.get("label") else ""
        flags = "  active" if p.get("bootable") else ""
        rows.append(("", f"{p['number']:>2}  {_short_size(p['size']):>9} at "
                         f"{_short_size(p['start']):<9} {p.get('type_name') or p['type']}: "
                         f"{fs}{label}{flags}"))
        rows += lvm_rows(p.get("lvm"), "      ", shown, f"partition {p['number']}")
    if info.get("filesystem"):
        rows.append(("filesystem", info["filesystem"]))
        rows += lvm_rows((info.get("volume") or {}).get("lvm"), "  ", shown, "the disk")
    evidence = "; ".join(info.get("boot_evidence") or [])
    rows.append(("boot mode", info.get("boot_mode", "unknown") + (f" ({evidence})" if evidence
                                                                  else "")))
    return rows


def lvm_rows(pv: Mapping[str, Any] | None, indent: str, shown: dict[str, str],
             where: str) -> list[tuple[str, str]]:
    """The VG of an LVM2 physical volume and one row per logical volume, under the first
    of its PVs (``shown``: the VGs listed already, by uuid, and where)."""
    if not pv:
        return []
    if pv.get("vg") is None:
        return [("", f"{indent}PV {pv['pv_uuid']}: no volume group read")]
    head = f"{indent}VG {pv['vg']} (PV {pv['pv_uuid']}"
    if pv["vg_uuid"] in shown:
        return [("", f"{head}; LVs under {shown[pv['vg_uuid']]})")]
    shown[pv["vg_uuid"]] = where
    rows = [("", head + ")")]
    for lv in pv["lvs"]:
        kinds = ",".join(dict.fromkeys(s["type"] for s in lv["segments"])) or "-"
        if lv["readable"]:
            what = (lv.get("filesystem") or "-") + (f" '{lv['label']}'" if lv.get("label")
                                                    else "")
        else:
            what = f"not read: {lv['why']}"
        rows.append(("", f"{indent}  {lv['name']:<12} {_short_size(lv['size']):>9} "
                         f"{kinds}: {what}"))
    return rows


def _known(value: object, yes: str = "yes", no: str = "no") -> str:
    return "unknown" if value is None else (yes if value else no)


def windows_rows(w: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The Windows block of ``imgscan info``: one fact per row, "-" when not read."""
    product = w.get("product_name") or "Windows (product unknown)"
    kind = ", ".join(x for x in (w.get("edition_id"), w.get("installation_type")) if x)
    version = ""
    if w.get("major_version") is not None:
        version = f"{w['major_version']}.{w.get('minor_version') or 0}"
    if w.get("build") is not None:
        version += f" build {w['build']}" + (f".{w['ubr']}" if w.get("ubr") is not None else "")
    admin = w.get("administrator") or {}
    if not admin.get("exists"):
        admin_text = "absent (no RID 500)"
    else:
        admin_text = ("enabled" if admin.get("enabled") else "disabled") + ", " + \
            ("password stored" if admin.get("password_set") else "no password")
    cbi = w.get("cloudbase_init") or {}
    if cbi.get("installed"):
        cbi_text = f"installed ({cbi.get('config_path') or 'no config'})"
        if cbi.get("service_start") is not None:
            cbi_text += f", service start {cbi['service_start']}"
    else:
        cbi_text = "not installed"
    drivers = " ".join(f"{k}={v}" for k, v in (w.get("drivers") or {}).items()) or "none found"
    bcd = w.get("bcd") or {}
    if w.get("boot_partition") is not None:
        boot = f"partition {w['boot_partition']}"
        details = ", ".join(str(x) for x in (bcd.get("path"), bcd.get("loader")) if x)
        boot += f" ({details})" if details else ""
    else:
        boot = "not on this disk"
    bitlocker = w.get("bitlocker_partitions") or []
    rows = [
        ("windows", f"{product}" + (f" ({kind})" if kind else "")),
        ("  version", f"{version or '-'}  arch {w.get('arch') or '-'}"),
        ("  root", f"partition {w.get('partition')} {w.get('systemroot')}"),
        ("  hostname", w.get("hostname") or "-"),
        ("  licence", w.get("license_channel") or "-"),
        ("  administrator", admin_text),
        ("  cloudbase-init", cbi_text),
        ("  drivers", drivers),
        ("  rdp", _known(w.get("rdp_enabled"), "enabled", "disabled")),
        ("  dhcp", _known(w.get("dhcp_enabled"), "all interfaces", "static address")),
        ("  boot store", boot),
        ("  hibernated", _known(w.get("hibernated"))),
    ]
    if bitlocker:
        rows.append(("  bitlocker", "partitions " + ", ".join(map(str, bitlocker))))
    return rows


def _virtio(states: Mapping[str, Any]) -> str:
    """``virtio_blk=initramfs virtio_net=builtin ...`` with "-" for a driver not found."""
    return " ".join(f"{name}={state or '-'}" for name, state in states.items())


def linux_rows(lx: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The Linux block of ``imgscan info``: one fact per row, "-" when not read."""
    root = lx.get("root") or {}
    where = f"logical volume {root['lvm']} (partition {root.get('partition')})" \
        if root.get("lvm") else (f"partition {root.get('partition')}" if root.get("partition")
                                 else "the whole disk")
    sub = f", subvolume {root['subvolume']}" if root.get("subvolume") else ""
    release = lx.get("pretty_name") or " ".join(
        str(x) for x in (lx.get("distro"), lx.get("version_id")) if x) or "Linux (release unknown)"
    rows = [
        ("linux", f"{release}" + (f" ({lx['distro']})" if lx.get("distro") else "")),
        ("  arch", lx.get("arch") or "-"),
        ("  root", f"{root.get('filesystem') or '-'} on {where}{sub}"),
        ("  clean", _known(lx.get("clean"), "yes", "no (not unmounted cleanly)")),
        ("  boot loader", f"{lx.get('bootloader') or '-'}"
                          + (f", /boot on partition {lx['boot_partition']}"
                             if lx.get("boot_partition") is not None else "")),
        ("  default kernel", lx.get("default_kernel") or "-"),
        ("  command line", lx.get("kernel_cmdline") or "-"),
        ("  root named by", lx.get("root_device_by") or "-"),
    ]
    for k in lx.get("kernels") or []:
        xen = ", Xen PV drivers" if k.get("xen_pv") else ""
        rows.append(("  kernel", f"{k.get('version')}: {_virtio(k.get('virtio') or {})}{xen}"))
    for e in lx.get("fstab") or []:
        disk = {True: "", False: ", not on this disk", None: ""}[e.get("on_this_disk")]
        rows.append(("  fstab", f"{e.get('mountpoint')} {e.get('type')} by {e.get('by')}"
                                f" ({e.get('spec')}){disk}"
                                + (", nofail" if e.get("nofail") else "")))
    ci = lx.get("cloud_init") or {}
    if ci.get("installed"):
        ci_text = "installed, " + _known(ci.get("enabled"), "enabled", "disabled")
        if ci.get("datasources"):
            ci_text += f" ({', '.join(ci['datasources'])})"
    else:
        ci_text = "not installed"
    network = ", ".join(f"{n.get('interface')} {n.get('method')}"
                        for n in lx.get("network") or []) or "none configured"
    rows += [
        ("  cloud-init", ci_text),
        ("  network", network),
        ("  net rules", ", ".join(lx.get("persistent_net_rules") or []) or "none"),
        ("  root password", lx.get("root_password") or "-"),
        ("  selinux", lx.get("selinux") or "-"),
    ]
    return rows


def map_text(extents: Iterable[Extent]) -> str:
    """An aligned table of extents: guest range, kind and where it is stored."""
    header = ("start", "length", "kind", "host offset", "file")
    rows = [header]
    for e in extents:
        host = "-" if e.host is None else f"{e.host:#x}"
        rows.append((f"{e.start:#x}", f"{e.length:#x}", e.kind, host, str(e.file)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) if i != 2 else cell.ljust(w)
                  for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    )


_id, _status = itemgetter("id"), itemgetter("status")
_VIOLATION = frozenset(VIOLATIONS).__contains__


def check_text(check: Mapping[str, Any]) -> str:
    """The ``imgscan check`` report: a header, one aligned line per rule (id, status,
    message), the remedy under each rule that did not pass, and a one-line verdict."""
    info = check["info"]
    fmt = info["format"] + (f" ({info['subformat']})" if info.get("subformat") else "")
    lines = [f"{check['path']}: {fmt}, {human_size(info['virtual_size'])}, "
             f"profile {check['profile']}"]
    if info.get("source"):
        lines.append(f"  fetched {fetched(info['source'])}")
    rules = check["rules"]
    width = max((len(r["id"]) for r in rules), default=0) + 2
    indent = " " * (2 + width + 9)
    for r in rules:
        lines.append(f"  {r['id']:<{width}}{r['status']:<9}{r['message']}")
        if r["status"] != "pass" and r.get("remedy"):
            lines.append(f"{indent}remedy: {r['remedy']}")
        if r["status"] != "pass" and r.get("auto_fixed"):
            lines.append(f"{indent}(the cloud fixes this itself at registration)")
    statuses = list(map(_status, rules))
    counts = {s: statuses.count(s) for s in STATUSES}
    summary = ", ".join(f"{n} {label}" for label, n in (
        ("failed", counts["fail"]), ("warned", counts["warn"]), ("unknown", counts["unknown"]),
        ("manual", counts["manual"]), ("passed", counts["pass"])) if n)
    lines += _registration_lines(check, "")
    lines.append(f"verdict: {check['verdict']} ({summary or 'no rules'})")
    return "\n".join(lines)


def _registration_lines(check: Mapping[str, Any], indent: str) -> list[str]:
    params = check.get("registration") or {}
    if not params:
        return []
    shown = ", ".join(f"{k}={v['value']}" for k, v in params.items())
    return [f"{indent}register with: {shown}"]


def matrix_text(checks: Sequence[Mapping[str, Any]]) -> str:
    """The ``imgscan check --profile A,B`` report of one image: a table of every rule
    (rows, in first-seen order) by profile (columns; ``-``: not in that profile or not
    run on this guest), one verdict per profile, then per profile what to change (the
    remedy of each rule that failed or warned) and the registration parameters."""
    info = checks[0]["info"]
    fmt = info["format"] + (f" ({info['subformat']})" if info.get("subformat") else "")
    names = [c["profile"] for c in checks]
    lines = [f"{checks[0]['path']}: {fmt}, {human_size(info['virtual_size'])}, "
             f"{len(checks)} profiles"]
    # The cells are made by C code (map, zip, str.ljust): ``--profile all`` has some 50
    # rows of 7 cells, a loop in Python over them cost more than judging the rules.
    status = [dict(zip(map(_id, c["rules"]), map(_status, c["rules"]), strict=True))
              for c in checks]
    rows = list(dict.fromkeys(chain.from_iterable(status)))
    width = max(map(len, rows), default=0) + 2
    cols = [max(len(n), 7) + 2 for n in names]
    lines.append((f"  {'rule':<{width}}" + "".join(map(str.ljust, names, cols))).rstrip())
    cells = (map(str.ljust, map(s.get, rows, repeat("-")), repeat(w))
             for s, w in zip(status, cols, strict=True))
    lines += map(str.rstrip, map("".join, zip(
        repeat("  "), map(str.ljust, rows, repeat(width)), *cells)))
    lines.append(f"  {'verdict':<{width}}" + "".join(
        f"{c['verdict']:<{w}}" for c, w in zip(checks, cols, strict=True)).rstrip())
    for c in checks:
        todo = list(compress(c["rules"], map(_VIOLATION, map(_status, c["rules"]))))
        lines.append("")
        lines.append(f"{c['profile']}: {c['verdict']}" + (
            f", {len(todo)} to change" if todo else ", nothing to change"))
        for r in todo:
            fixed = " (the cloud fixes this itself)" if r.get("auto_fixed") else ""
            lines.append(f"  {r['id']} ({r['status']}): {r['message']}{fixed}")
            if r.get("remedy"):
                lines.append(f"    remedy: {r['remedy']}")
        lines += _registration_lines(c, "  ")
    return "\n".join(lines)

"""Rules on the container file itself: format, encryption, sizes, dependencies, consistency.

Sources: import-rules.md sections 1.2-1.5 (Huawei IMS); 2.1 (the peers: Azure's fixed
VHD with its footer at the end and a whole number of MiB, Glance's VMDK subformats and
``require_image_format_match``); the ``safe`` rules follow the OpenStack
``format_inspector`` safety checks (threats.md).
"""

from __future__ import annotations

from imgscan.units import human_size
from imgscan.vocabulary import CONTAINER, FAIL, PASS, WARN

from ..framework import GiB, Outcome, rule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ..framework import Facts

MiB = 1 << 20
#: How qemu-img writes a format (and a subformat of it): the remedies' conversions.
CONVERT_TO = {"vhd": "-O vpc -o subformat={sub},force_size",
              "vmdk": "-O vmdk -o subformat={sub}", "vhdx": "-O vhdx -o subformat={sub}"}


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
    target = "qcow2" if "qcow2" in formats else formats[0]
    how = CONVERT_TO.get(target, f"-O {target}").format(sub="fixed" if target == "vhd" else
                                                        "streamOptimized")
    return Outcome(FAIL, f"{fmt} is not a supported import format (supported: "
                   f"{', '.join(formats)})", ev,
                   f"qemu-img convert -p {how} IMAGE IMAGE.{target}")


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


@rule("luks-version", "a LUKS container is of a version the cloud accepts")
def luks_version(f: Facts, *, versions: Sequence[int]) -> Outcome:
    """OpenStack's format inspector (import-rules.md 2.1 "LUKS: v1 only") refuses a
    LUKS container of another version; a file that is not LUKS passes."""
    fmt, sub = f.info.get("format"), str(f.info.get("subformat") or "")
    ev = {**f.ev("format", source="content (magic bytes)"),
          **f.ev("subformat", source="LUKS header version")}
    if fmt != "luks":
        return Outcome(PASS, f"{fmt}: not a LUKS container", ev)
    version = int(sub.removeprefix("luks")) if sub.removeprefix("luks").isdigit() else None
    if version in versions:
        return Outcome(PASS, f"LUKS version {version}", ev)
    return Outcome(FAIL, f"LUKS version {version}: the cloud takes only version "
                   f"{' or '.join(str(v) for v in versions)}", ev,
                   "cryptsetup convert --type luks1 IMAGE (on a copy; a LUKS2 header with "
                   "Argon2 keyslots must first get PBKDF2 ones: cryptsetup luksConvertKey "
                   "--pbkdf pbkdf2 IMAGE)")


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
def system_disk_size(f: Facts, *, min_gib: float, max_gib: float, uefi_max_gib: float = 0,
                     below_min: str = WARN) -> Outcome:
    """``uefi_max_gib``: the larger maximum of a disk that boots by UEFI (Azure Gen2;
    0: the same); ``below_min``: what a smaller disk is (``warn``: the cloud makes the
    disk larger; ``fail``: the upload is refused)."""
    size = f.info.get("virtual_size") or 0
    ev = f.ev("virtual_size", source="container header")
    if uefi_max_gib and f.info.get("boot_mode") == "uefi":
        max_gib = uefi_max_gib
        ev.update(f.ev("boot_mode", source="partition table and boot code"))
    shown = human_size(size)
    linux = f.linux is not None
    if size < min_gib * GiB and below_min == FAIL:
        return Outcome(FAIL, f"virtual size {shown} is below {_gib(min_gib)}, the smallest "
                       "disk the cloud takes", ev,
                       f"qemu-img resize IMAGE {_gib(min_gib).replace(' GiB', 'G')}  (then "
                       "convert as the format rule says)")
    if size > max_gib * GiB:
        shrink = "shrink the root filesystem and its partition (resize2fs, then parted " \
            "resizepart; XFS cannot shrink: copy it to a smaller one)" if linux else \
            "shrink C: in Disk Management (Shrink Volume)"
        return Outcome(FAIL, f"virtual size {shown} is above {_gib(max_gib)}", ev,
                       f"{shrink} so every partition ends below {_gib(max_gib)}, then "
                       f"qemu-img resize --shrink IMAGE {max_gib:g}G")
    if size < min_gib * GiB:
        grow = "grow the root partition and filesystem after first boot (cloud-init's " \
            "growpart does it)" if linux else "extend C: after first boot"
        return Outcome(WARN, f"virtual size {shown} is below {_gib(min_gib)}: the cloud "
                       "disk will be larger than the image", ev,
                       f"none needed; set the system disk (min_disk) to at least "
                       f"{min_gib:g} GiB when registering, and {grow}")
    return Outcome(PASS, f"virtual size {shown} is within {_gib(min_gib)}..{_gib(max_gib)}",
                   ev)


@rule("self-contained", "no backing file, data file or external extent")
def self_contained(f: Facts) -> Outcome:
    info = f.info
    # an info one restates why the guest was not read; the warning or error names the file
    external = [x for x in info.get("findings") or []
                if x.get("id") == "external-extent" and x.get("severity") != "info"]
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
def consistent_headers(f: Facts, *, finding_ids: Sequence[str], severities: Sequence[str],
                       stages: Sequence[str]) -> Outcome:
    """Findings of the listed ids, severities and stages (the image's own structures:
    container, partition table, volumes). An ``info`` finding is a fact the tools
    that made the image always leave (a Hyper-V VHD's CHS geometry short of its
    size), so a profile leaves it out of ``severities``."""
    return _none_of(f, _findings(f, finding_ids, severities, stages),
                    "container and partition table decoders", "the headers are consistent",
                    "qemu-img convert -p -O qcow2 IMAGE rewritten.qcow2  (after checking the "
                    "converted disk's contents), or rebuild the image from its source")


@rule("guest-findings", "the guest inspection found its volumes closed cleanly and whole")
def guest_findings(f: Facts, *, finding_ids: Sequence[str], severities: Sequence[str],
                   stages: Sequence[str]) -> Outcome:
    """Findings of the guest inspection (``stages``: windows, linux): a dirty or
    hibernated volume, a hive or file that could not be read. They say the guest's
    state may be stale, not that the file is unsafe to open."""
    return _none_of(f, _findings(f, finding_ids, severities, stages), "guest inspection",
                    "the guest inspection found nothing stale or unreadable",
                    "shut the guest down cleanly (no hibernation or fast startup) before "
                    "exporting the disk")


def _none_of(f: Facts, bad: list[Mapping[str, Any]], source: str, clean: str,
             remedy: str) -> Outcome:
    """Pass (saying ``clean``) when there is no ``bad`` finding; else fail, naming each
    finding, with ``remedy``. The evidence is the findings, from ``source``."""
    ev = f.ev("findings", bad, source)
    if not bad:
        return Outcome(PASS, clean, ev)
    return Outcome(FAIL, "; ".join(f"{x['id']}: {x['message']}" for x in bad), ev, remedy)


def _findings(f: Facts, finding_ids: Sequence[str], severities: Sequence[str],
              stages: Sequence[str]) -> list[Mapping[str, Any]]:
    """The findings with one of ``finding_ids`` and ``severities``, made by one of
    ``stages`` (the contract's ``finding_stages``; a finding whose stage is not
    recorded counts as the container's, the strictest reading)."""
    found = f.info.get("findings") or []
    made_by = list(f.info.get("finding_stages") or [])
    made_by += [CONTAINER] * (len(found) - len(made_by))
    return [x for x, stage in zip(found, made_by, strict=False)
            if x.get("id") in finding_ids and x.get("severity") in severities
            and (stage or CONTAINER) in stages]


@rule("no-error-findings", "no finding of the given severities")
def no_error_findings(f: Facts, *, severities: Sequence[str]) -> Outcome:
    return _none_of(f, [x for x in f.info.get("findings") or []
                        if x.get("severity") in severities], "imgscan info",
                    f"no finding of severity {'/'.join(severities)}",
                    "fix the image as each finding says (imgscan info IMAGE), or rebuild it")


def _gib(n: float) -> str:
    return f"{n:g} GiB"


@rule("subformat-supported", "the container's subformat is one the cloud imports "
      "(fixed VHD, streamOptimized VMDK, ...)")
def subformat_supported(f: Facts, *, allowed: Sequence[str]) -> Outcome:
    """``allowed``: ``"FORMAT SUBFORMAT"`` entries; a format no entry names takes any
    subformat (the format rule judges the format itself)."""
    fmt, sub = f.info.get("format"), f.info.get("subformat")
    ev = {**f.ev("format", source="content (magic bytes)"),
          **f.ev("subformat", source="container header")}
    subs = [e.partition(" ")[2] for e in allowed if e.partition(" ")[0] == fmt]
    if not subs:
        return Outcome(PASS, f"any {fmt} subformat is taken", ev)
    if sub in subs:
        return Outcome(PASS, f"{fmt} {sub} is a supported subformat", ev)
    how = CONVERT_TO.get(str(fmt), "-O " + str(fmt)).format(sub=subs[0])
    return Outcome(FAIL, f"{fmt} {sub}: only {' or '.join(subs)} {fmt} is taken", ev,
                   f"qemu-img convert -p {how} IMAGE converted.{fmt}")


@rule("vhd-footer", "a VHD whose 512-byte footer (cookie conectix) ends the file")
def vhd_footer(f: Facts) -> Outcome:
    """Azure reads the footer at the end of the page blob only: a VHD from an old tool
    with a 511-byte footer, or one whose footer is only at offset 0, is refused."""
    info = f.info
    spec = info.get("format_specific") or {}
    ev = {**f.ev("format", source="content (magic bytes)"),
          **f.ev("format_specific.footer_offset", spec.get("footer_offset"), "VHD footer"),
          **f.ev("file_size", source="file system")}
    if info.get("format") != "vhd":
        return Outcome(FAIL, f"not a VHD ({info.get('format')}): no conectix footer", ev,
                       "qemu-img convert -p -O vpc -o subformat=fixed,force_size IMAGE "
                       "IMAGE.vhd")
    broken = [x for x in info.get("findings") or []
              if x.get("id") in ("truncated", "footer-mismatch")]
    at_end = spec.get("footer_offset") == (info.get("file_size") or 0) - 512 and \
        "footer_length" not in spec
    if broken:
        ev.update(f.ev("findings", broken, "VHD footer"))
    if (at_end or info.get("subformat") != "fixed") and not broken:
        return Outcome(PASS, "the conectix footer ends the file (512 bytes)", ev)
    why = "; ".join(x["message"] for x in broken) or \
        f"the footer is at offset {spec.get('footer_offset')}, " \
        f"{spec.get('footer_length', 512)} bytes, not the last 512 bytes of the file"
    return Outcome(FAIL, why, ev, "qemu-img convert -p -O vpc -o subformat=fixed,force_size "
                   "IMAGE fixed.vhd")


@rule("virtual-size-aligned", "the virtual size is a whole number of MiB")
def virtual_size_aligned(f: Facts, *, multiple_mib: int = 1) -> Outcome:
    size = int(f.info.get("virtual_size") or 0)
    unit = multiple_mib * MiB
    ev = f.ev("virtual_size", source="container header (VHD: current size)")
    if size % unit == 0:
        return Outcome(PASS, f"virtual size {size} is {size // MiB} MiB", ev)
    rounded = -(-size // unit) * unit
    return Outcome(FAIL, f"virtual size {size} is not a multiple of {multiple_mib} MiB "
                   "(a VHD written by qemu-img without force_size is rounded to a CHS "
                   "geometry)", ev,
                   f"qemu-img convert -p -O raw IMAGE disk.raw; qemu-img resize -f raw "
                   f"disk.raw {rounded // MiB}M; qemu-img convert -p -O vpc -o "
                   "subformat=fixed,force_size disk.raw disk.vhd")


#: File name suffixes and the ``format`` each declares (OpenStack users pass it as
#: ``--disk-format``); ``.img`` names anything and is not judged.
SUFFIX_FORMATS = {".qcow2": "qcow2", ".qcow": "qcow", ".vmdk": "vmdk", ".vhd": "vhd",
                  ".vpc": "vhd", ".vhdx": "vhdx", ".vdi": "vdi", ".raw": "raw",
                  ".iso": "iso", ".qed": "qed"}


@rule("name-matches-content", "the file name's suffix names the format the content is")
def name_matches_content(f: Facts) -> Outcome:
    """Glance refuses an upload whose content is not the declared ``disk_format``
    (``require_image_format_match``, 2025.1); the declared one usually comes from the
    suffix."""
    path = str(f.info.get("path") or "")
    fmt = f.info.get("format")
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    ev = {**f.ev("format", source="content (magic bytes)"),
          **f.ev("path", source="as given")}
    named = SUFFIX_FORMATS.get(suffix)
    if named is None:
        return Outcome(PASS, f"the name says no format; the content is {fmt}", ev)
    if named == fmt:
        return Outcome(PASS, f"{suffix} and the content agree: {fmt}", ev)
    return Outcome(FAIL, f"the name says {named} ({suffix}) but the content is {fmt}: an "
                   f"upload declared as {named} is refused", ev,
                   f"declare --disk-format {fmt} (or rename the file to .{fmt})")


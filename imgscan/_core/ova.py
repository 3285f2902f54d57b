"""OVF packages: an OVA (one tar file) or an OVF descriptor with its files beside it.

Source: DMTF DSP0243 (OVF 2.1) §5: a package is a descriptor (``.ovf``), an
optional manifest (``.mf``: ``SHA256(name)= hex`` per file, or ``SHA1``), an
optional certificate (``.cert``) and the files the descriptor's References
name, usually streamOptimized VMDKs. As an OVA it is a ustar archive whose
first member is the descriptor (§5.3; one found later is read, with a finding);
:mod:`imgscan._core.tar` locates the members. Nothing is extracted: each disk
is a window of the archive (:func:`imgscan.remote.open_window`: of the file, or of
a remote object through its reader, fetching only what the decoders read),
decoded by the container decoders as a file of its own.

A standalone ``.ovf`` names files beside it; they are opened only in the
descriptor's own directory (never absolute, ``..`` or through a symlink out
of it, :func:`~imgscan._core.paths.resolve_external`).

What a package states but cannot back up is a finding on the package
(``package-member``, ``package-order``, ``manifest-mismatch``, ``corrupt``,
``size-mismatch``, and the signature's of :mod:`imgscan._core.ova_cert`), never an
exception: a disk that cannot be located is reported as such, and
the package is read as far as it goes.
"""

from __future__ import annotations

import os
import re

from imgscan import limits
from imgscan.errors import CorruptImage, ImageError, RemoteError, UnsupportedFeature
from imgscan.findings import (
    CORRUPT,
    MANIFEST_MISMATCH,
    PACKAGE_MEMBER,
    PACKAGE_ORDER,
    SIZE_MISMATCH,
    Finding,
    finding_id,
)
from imgscan.remote import is_url, open_window
from imgscan.remote.opening import open_source

from . import ova_cert, tar
from .c_tar import BLOCK
from .paths import resolve_external, unsafe_reason
from .source import Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imgscan.findings import Severity

    from . import ovf

#: ``SHA256(disk1.vmdk)= 3f...``: the manifest line of DSP0243 §5.1 (SHA1 in OVF 1.x).
_MANIFEST_LINE = re.compile(r"^(SHA1|SHA256|SHA512)\((.+)\)\s*=\s*([0-9A-Fa-f]+)\s*$")
_DIGEST_SIZES = {"SHA1": 40, "SHA256": 64, "SHA512": 128}
#: Bytes hashed per step while a manifest is verified (read from the map, then dropped).
HASH_CHUNK = 4 * 1024 * 1024
#: The first bytes of a standalone descriptor looked at to recognise it.
_XML_HEAD = 4096


def is_ovf(head: bytes) -> bool:
    """Whether ``head`` is the start of an OVF descriptor (XML naming the OVF namespace
    and an Envelope)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return (text.startswith(b"<") and b"schemas.dmtf.org/ovf/envelope" in head
            and b"Envelope" in head)


def probe(source: Source) -> tuple[str, tar.Archive | None] | None:
    """``("ova", its archive)``, ``("ovf", None)`` or None: whether ``source`` is an OVF
    package. An OVA is a tar archive holding a ``.ovf`` member: DSP0243 §5.3 puts it
    first, but third-party tools put pax or GNU long-name headers before it, or other
    members (the package then has a ``package-order`` finding), so the archive's
    headers are walked (:data:`limits.OVA_MAX_MEMBERS` of them at most) to find it."""
    head = source.read(0, min(_XML_HEAD, source.size), "format signature")
    if tar.is_ustar(head[:BLOCK]) and tar.header_checksum_ok(head[:BLOCK]):
        archive = tar.Archive(source)
        if any(m.name.lower().endswith(".ovf") for m in archive.members):
            return "ova", archive
        return None
    if is_ovf(head):
        return "ovf", None
    return None


class PackageDisk:
    """One disk of the package: what the descriptor says of it and where its bytes are."""

    __slots__ = ("facts", "file", "member", "why_not")

    def __init__(self, facts: dict[str, Any]) -> None:
        #: The descriptor's statements (disk id, href, capacity, format URI, controller).
        self.facts = facts
        #: The tar member holding it (OVA) or the file beside the descriptor (OVF).
        self.member: tar.Member | None = None
        self.file: str | None = None
        #: Why its bytes cannot be read (None when they can).
        self.why_not: str | None = None


class Package:
    """An OVF package read in place: its descriptor, manifest and disks.

    ``disks`` are in the order of the first VirtualSystem's disk drives (then
    any other disk the DiskSection declares); without a usable descriptor they
    are the archive's other members, in archive order.
    """

    def __init__(self, source: Source, kind: str, *, verify_manifest: bool = False,
                 archive: tar.Archive | None = None) -> None:
        self.source = source
        self.path = source.path
        self.kind = kind
        self.findings: list[Finding] = []
        self.archive = archive or (tar.Archive(source) if kind == "ova" else None)
        if self.archive is not None:
            self.findings.extend(self.archive.findings)
        self.descriptor_name: str | None = None
        self.descriptor = self._descriptor()
        self.disks = self._disks()
        self.manifest_name: str | None = None
        self.manifest: dict[str, tuple[str, str]] = {}
        self.manifest_verified: bool | None = None
        self.manifest_mismatches: list[str] = []
        manifest = self._manifest(verify_manifest)
        self.signature = self._signature(manifest, verify_manifest)

    def _finding(self, id: str, severity: Severity, message: str) -> None:
        self.findings.append(Finding(id, severity, f"{self.path}: {message}"))

    # -- descriptor ---------------------------------------------------------------
    def _descriptor(self) -> ovf.Descriptor | None:
        from . import ovf  # xml.etree and pyexpat cost milliseconds: only for a package

        try:
            data = self._descriptor_bytes()
            descriptor = ovf.read(data, f"{self.path} [{self.descriptor_name}]"
                                  if self.archive is not None else self.path)
        except ImageError as exc:
            self.findings.append(Finding(finding_id(exc), "error", str(exc)))
            return None
        for problem in descriptor.problems:
            self._finding(CORRUPT, "warning", f"OVF descriptor: {problem}")
        return descriptor

    def _descriptor_bytes(self) -> bytes:
        if self.archive is None:
            limits.enforce(self.source.size, "OVF_MAX_DESCRIPTOR_BYTES", self.path,
                           "OVF descriptor", None, "descriptor bytes")
            return self.source.read(0, self.source.size, "OVF descriptor")
        members = self.archive.members
        first = next((m for m in members if m.name.lower().endswith(".ovf")), None)
        if first is None:
            raise CorruptImage(self.path, "OVF descriptor", 0,
                               "the archive holds no readable .ovf descriptor")
        if first is not members[0]:
            self._finding(PACKAGE_ORDER, "warning",
                          f"the OVF descriptor {first.name!r} is not the archive's first "
                          f"member ({members[0].name!r} is; DSP0243 §5.3): it is read, "
                          "but importers that stream the archive, as ovftool does, refuse it")
        self.descriptor_name = first.name
        limits.enforce(first.size, "OVF_MAX_DESCRIPTOR_BYTES", self.path, "OVF descriptor",
                       first.offset, "descriptor bytes")
        return self.source.read(first.offset, first.size, "OVF descriptor")

    # -- disks -----------------------------------------------------------------------
    def _disks(self) -> list[PackageDisk]:
        if self.descriptor is not None:
            disks = [PackageDisk(facts) for facts in self.descriptor.disks]
            for disk in disks:
                self._locate(disk)
            if not disks:
                self._finding(PACKAGE_MEMBER, "error", "the OVF descriptor declares no disk")
            return disks
        if self.archive is None:
            return []
        # No usable descriptor: the archive's other members, which are its disks.
        out: list[PackageDisk] = []
        for m in self.archive.members:
            if m.name.lower().endswith((".mf", ".cert", ".ovf")):
                continue
            if len(out) >= limits.OVF_MAX_DISKS:
                break
            disk = PackageDisk({"disk_id": None, "file_ref": None, "href": m.name,
                                "capacity": None, "format_uri": None, "controller": None})
            disk.member = m
            out.append(disk)
        return out

    def _locate(self, disk: PackageDisk) -> None:
        href = disk.facts["href"]
        label = disk.facts["disk_id"]
        if href is None:
            disk.why_not = f"disk {label!r} names no file (a blank disk the import creates)"
            return
        unsafe = unsafe_reason(href)
        if unsafe is not None:
            disk.why_not = f"disk {label!r}: file {href!r}: {unsafe}"
            self._finding(PACKAGE_MEMBER, "error", disk.why_not)
            return
        if self.archive is None:
            try:
                disk.file = resolve_external(self.path, "OVF disk file", href,
                                             _directory_of(self.path))
            except ImageError as exc:
                disk.why_not = exc.problem
                self._finding(PACKAGE_MEMBER, "error", f"disk {label!r}: {exc.problem}")
            return
        member = self.archive.member(href)
        if member is None:
            refused = self.archive.refused.get(href)
            disk.why_not = (f"disk {label!r}: file {href!r}: {refused}" if refused else
                            f"disk {label!r}: file {href!r} is not in the archive")
            self._finding(PACKAGE_MEMBER, "error", disk.why_not)
            return
        disk.member = member
        declared = (self.descriptor.files.get(disk.facts["file_ref"]) or {}).get("size") \
            if self.descriptor is not None else None
        if declared is not None and declared != member.size:
            self._finding(SIZE_MISMATCH, "warning",
                          f"file {href!r} is {member.size} bytes in the archive, the "
                          f"descriptor's References say {declared}")

    def open_disk(self, index: int) -> Source:
        """The bytes of disk ``index`` as a source of their own: a window of the source
        the OVA was read from (a file, or a remote object through its reader)."""
        disk = self.disks[index]
        if disk.member is not None:
            try:
                return open_window(self.source, disk.member.offset, disk.member.size,
                                   f"{self.path} [{disk.member.name}]")
            except OSError as exc:
                raise ImageError(self.path, f"OVA member {disk.member.name!r}",
                                 disk.member.offset, exc.strerror or str(exc)) from exc
        if disk.file is not None:
            return _open_file(self.path, "OVF disk file", disk.file)
        raise UnsupportedFeature(self.path, "OVF disk", None,
                                 disk.why_not or "the disk's bytes are not in the package")

    @property
    def size(self) -> int:
        """Bytes of the whole package: the OVA, or the descriptor and the files it names
        that are beside it (``file_size`` of a multi-file image)."""
        if self.archive is not None:
            return self.source.size
        total = self.source.size
        for d in self.disks:
            if d.file is not None:
                with _open_file(self.path, "OVF disk file", d.file) as src:
                    total += src.size
        return total

    # -- manifest --------------------------------------------------------------------
    def _files(self) -> dict[str, tuple[int, int] | str]:
        """Every file of the package by name: (offset, size) in an OVA, a path for an OVF."""
        if self.archive is not None:
            return {m.name: (m.offset, m.size) for m in self.archive.members}
        out: dict[str, tuple[int, int] | str] = {os.path.basename(self.path): self.path}
        for disk in self.disks:
            if disk.file is not None:
                out[disk.facts["href"]] = disk.file
        return out

    def _side_file(self, suffix: str, cap: str, structure: str) -> tuple[str, bytes] | None:
        """The package's file ending in ``suffix`` (``.mf``, ``.cert``): its name and
        bytes, at most ``limits.<cap>`` of them; None when there is none. In an OVA the
        first member so named; beside a descriptor, the file of its name and ``suffix``."""
        if self.archive is not None:
            for m in self.archive.members:
                if m.name.lower().endswith(suffix):
                    limits.enforce(m.size, cap, self.path, structure, m.offset,
                                   f"{structure} bytes")
                    return m.name, self.source.read(m.offset, m.size, structure)
            return None
        name = os.path.splitext(self.path)[0] + suffix
        src: Source
        if is_url(name):
            try:
                src = open_source(name)
            except RemoteError as exc:
                if exc.problem == RemoteError.NO_SUCH_OBJECT:
                    return None
                raise
        elif not os.path.isfile(name):
            return None
        else:
            src = _open_file(name, structure, name)
        with src:
            limits.enforce(src.size, cap, name, structure, None, f"{structure} bytes")
            return os.path.basename(name), src.read(0, src.size, structure)

    def _manifest(self, verify: bool) -> bytes | None:
        """Read the manifest (and with ``verify`` check every digest); its bytes, which
        the certificate's signature covers."""
        try:
            found = self._side_file(".mf", "OVA_MAX_MANIFEST_BYTES", "manifest")
        except ImageError as exc:
            self.findings.append(Finding(finding_id(exc), "error", str(exc)))
            return None
        if found is None:
            return None
        self.manifest_name, data = found
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            m = _MANIFEST_LINE.match(line)
            if m is None or len(m.group(3)) != _DIGEST_SIZES[m.group(1)]:
                self._finding(CORRUPT, "warning",
                              f"manifest {self.manifest_name!r} line {number} is not "
                              "'SHA256(name)= digest': ignored")
                continue
            algorithm, name, digest = m.groups()
            if name in self.manifest:
                self._finding(MANIFEST_MISMATCH, "error",
                              f"manifest {self.manifest_name!r} lists {name!r} twice")
            self.manifest[name] = (algorithm, digest.lower())
        files = self._files()
        for name in self.manifest:
            if name not in files:
                self._finding(MANIFEST_MISMATCH, "error",
                              f"manifest {self.manifest_name!r} lists {name!r}, which the "
                              "package does not hold")
        if verify:
            self._verify(files)
        return data

    def _signature(self, manifest: bytes | None, verify: bool) -> ova_cert.Signature | None:
        """The certificate file's signature of the manifest (None when unsigned); with
        ``verify`` checked against its certificate (:mod:`imgscan._core.ova_cert`)."""
        try:
            found = self._side_file(".cert", "OVA_MAX_CERT_BYTES", "certificate file")
        except ImageError as exc:
            self.findings.append(Finding(finding_id(exc), "error", str(exc)))
            return None
        if found is None:
            return None
        name, data = found
        label = (f"{self.path} [{name}]" if self.archive is not None
                 else os.path.join(os.path.dirname(self.path), name))
        signature = ova_cert.read(data, name, label, self.manifest_name)
        if verify and manifest is not None:
            from datetime import UTC, datetime
            ova_cert.verify(signature, manifest, datetime.now(UTC))
        self.findings.extend(signature.findings)
        return signature

    def _verify(self, files: dict[str, tuple[int, int] | str]) -> None:
        """Hash every file the manifest lists, in place, and compare."""
        for name, (algorithm, digest) in self.manifest.items():
            where = files.get(name)
            if where is None:
                self.manifest_mismatches.append(name)
                continue
            try:
                got = self._digest(algorithm, where)
            except (ImageError, OSError) as exc:
                self.manifest_mismatches.append(name)
                self._finding(MANIFEST_MISMATCH, "error", f"{name!r} could not be read to "
                              f"verify its {algorithm}: {exc}")
                continue
            if got != digest:
                self.manifest_mismatches.append(name)
                self._finding(MANIFEST_MISMATCH, "error",
                              f"{name!r}: its {algorithm} is {got}, the manifest says {digest}")
        self.manifest_verified = not self.manifest_mismatches

    def _digest(self, algorithm: str, where: tuple[int, int] | str) -> str:
        import hashlib  # only when a manifest is verified

        h = hashlib.new(algorithm.lower())
        if isinstance(where, str):
            with _open_file(self.path, "manifest-listed file", where) as src:
                _hash_range(h, src, 0, src.size)
        else:
            _hash_range(h, self.source, *where)
        return h.hexdigest()

    # -- the contract ----------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """The ``ova`` object of the info contract (an extension)."""
        d = self.descriptor
        return {
            "kind": self.kind,
            "descriptor": self.descriptor_name if self.archive is not None
            else os.path.basename(self.path),
            "virtual_systems": d.virtual_systems if d else None,
            "virtual_system_id": d.system_id if d else None,
            "virtual_system_type": d.virtual_system_type if d else None,
            "firmware": d.firmware if d else None,
            "os_id": d.os_id if d else None,
            "os_type": d.os_type if d else None,
            "os_description": d.os_description if d else None,
            "controllers": d.controllers if d else [],
            "nics": d.nics if d else [],
            "members": [{"name": m.name, "offset": m.offset, "size": m.size}
                        for m in self.archive.members] if self.archive is not None else [],
            "manifest": None if self.manifest_name is None else {
                "name": self.manifest_name,
                "entries": len(self.manifest),
                "algorithms": sorted({a for a, _ in self.manifest.values()}),
                "verified": self.manifest_verified,
                "mismatches": self.manifest_mismatches,
            },
            "signature": None if self.signature is None else self.signature.as_dict(),
        }


def _hash_range(h: Any, source: Source, offset: int, size: int) -> None:
    end = offset + size
    pos = offset
    while pos < end:
        n = min(HASH_CHUNK, end - pos)
        h.update(source.view(pos, n, "manifest-listed file"))
        source.drop(pos, n)
        pos += n


def _directory_of(path: str) -> str:
    """Where the files a standalone descriptor names are: its directory, or the URL
    prefix it is under."""
    if is_url(path):
        return path.rsplit("/", 1)[0] + "/"
    return os.path.dirname(os.path.abspath(path))


def _open_file(package: str, structure: str, path: str) -> Source:
    """The file (or remote object) beside a standalone descriptor at ``path``."""
    if is_url(path):
        return open_source(path)
    try:
        return Source(path)
    except OSError as exc:
        raise ImageError(package, structure, None,
                         f"{path}: {exc.strerror or exc}") from exc


def open_package(source: Source, *, verify_manifest: bool = False) -> Package | None:
    """The package in ``source``, or None when it is not one."""
    found = probe(source)
    if found is None:
        return None
    kind, archive = found
    return Package(source, kind, verify_manifest=verify_manifest, archive=archive)

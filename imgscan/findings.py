"""Findings: what an image says about itself that a reader should worry about.

A finding is a fact, not an error: the image was read, and this is what it
revealed. Ids are stable (they are part of the JSON contract) and listed in
the README; severities are ``error``, ``warning`` or ``info``
(:mod:`imgscan.vocabulary`). Each finding also names the pipeline stage that
made it, so a later layer (the policy rules) can tell "the guest inspection
stopped" from "the container is damaged" without parsing message text.
"""

from __future__ import annotations

from imgscan.errors import (
    EncryptedImage,
    ImageError,
    LimitExceeded,
    TruncatedImage,
    UnsupportedFeature,
)

# typing costs milliseconds of start-up on the single-image path; annotations
# need it only under a type checker (mypy treats this name as typing's).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from imgscan.vocabulary import Severity as Severity
    from imgscan.vocabulary import Stage

    class _Facts(Protocol):
        backing_file: str | None
        data_file: str | None
        encrypted: bool
        encryption: str | None
        dirty: bool

BACKING_FILE = "backing-file"
DATA_FILE = "data-file"
EXTERNAL_EXTENT = "external-extent"
DESCRIPTOR_AMBIGUOUS = "descriptor-ambiguous"
FOOTER_MISMATCH = "footer-mismatch"
MULTIPLE_FORMATS = "multiple-formats"
TRUNCATED = "truncated"
SIZE_MISMATCH = "size-mismatch"
RESOURCE_EXHAUSTION = "resource-exhaustion"
UNKNOWN_FEATURE = "unknown-feature"
ENCRYPTED = "encrypted"
DIRTY = "dirty"
COMPRESSION_BOMB = "compression-bomb"
CORRUPT = "corrupt"
PACKAGE_MEMBER = "package-member"
MANIFEST_MISMATCH = "manifest-mismatch"
#: An OVA's files not in DSP0243's order (the descriptor not the first member): read all
#: the same, but importers that stream the archive refuse it.
PACKAGE_ORDER = "package-order"
FIRMWARE_MISMATCH = "firmware-mismatch"
#: An OVF package's certificate file (.cert): a signature that does not verify or is
#: malformed, or one of another manifest; a certificate that does not parse; one not
#: valid at scan time (a warning).
SIGNATURE_INVALID = "signature-invalid"
CERTIFICATE_INVALID = "certificate-invalid"
CERTIFICATE_EXPIRED = "certificate-expired"
#: A dirty registry hive was read through its transaction logs (info: the facts are the
#: replayed ones; a dirty hive without a usable log stays a ``dirty`` warning).
HIVE_REPLAYED = "hive-replayed"


class Finding:
    """One finding: a stable id, a severity and a message naming the evidence.

    ``stage`` is the pipeline stage that made it (None until the pipeline
    files it: the decoders do not know which stage calls them). It is not part
    of a finding's identity, nor of its contract object.
    """

    __slots__ = ("id", "message", "severity", "stage")

    def __init__(self, id: str, severity: Severity, message: str,
                 stage: Stage | None = None) -> None:
        self.id = id
        self.severity: Severity = severity
        self.message = message
        self.stage: Stage | None = stage

    def at(self, stage: Stage) -> Finding:
        """This finding filed under ``stage`` (itself when it already names one)."""
        return self if self.stage is not None else Finding(self.id, self.severity,
                                                           self.message, stage)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Finding):
            return NotImplemented
        return (self.id, self.severity, self.message) == (other.id, other.severity, other.message)

    def __hash__(self) -> int:
        return hash((self.id, self.severity, self.message))

    def __repr__(self) -> str:
        return f"Finding({self.id!r}, {self.severity!r}, {self.message!r})"

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "severity": self.severity, "message": self.message}


def fact_findings(facts: _Facts) -> list[Finding]:
    """Findings that follow from a container's facts alone, whatever its format."""
    out: list[Finding] = []
    if facts.backing_file is not None:
        # imported for an image with a backing file only (start-up of `imgscan info`)
        from imgscan._core.paths import unsafe_reason
        unsafe = unsafe_reason(facts.backing_file)
        out.append(Finding(
            BACKING_FILE, "warning" if unsafe is None else "error",
            f"the disk reads through backing file {facts.backing_file!r}; "
            + ("it is not self-contained" if unsafe is None else unsafe),
        ))
    if facts.data_file is not None:
        out.append(Finding(
            DATA_FILE, "error",
            f"guest data is stored in external data file {facts.data_file!r}" if facts.data_file
            else "guest data is stored in an external data file the image does not name "
                 "(qemu opens whichever file its caller names)",
        ))
    if facts.encrypted:
        out.append(Finding(ENCRYPTED, "error",
                           f"the container is encrypted ({facts.encryption})"))
    if facts.dirty:
        out.append(Finding(DIRTY, "warning", "the image was not closed cleanly"))
    return out


def finding_id(exc: ImageError) -> str:
    """The finding id for a structure that could not be decoded, by the error's kind."""
    if isinstance(exc, EncryptedImage):
        return ENCRYPTED
    if isinstance(exc, TruncatedImage):
        return TRUNCATED
    if isinstance(exc, UnsupportedFeature):
        return UNKNOWN_FEATURE
    if isinstance(exc, LimitExceeded):
        return RESOURCE_EXHAUSTION
    return CORRUPT

"""The signature of an OVF package: its certificate file (``.cert``).

Source: DMTF DSP0243 (OVF 2.1) §5.2: the certificate file holds the signature
of the manifest, on a line shaped like the manifest's own,
``SHA256(package.mf)= <hex signature>`` (``SHA1`` in OVF 1.x, ``SHA512``),
followed by the signer's X.509 certificate in base64 PEM (RFC 7468). VMware's
ovftool writes it with ``--privateKey``: an RSA PKCS#1 v1.5 signature over the
manifest's bytes with the digest named, what ``openssl dgst -sha256 -sign
key.pem`` computes and ``openssl dgst -verify`` checks.

Its form is checked always, from its text (cheap, like the manifest's lines):
the signature line, the manifest it names, a PEM certificate block. With
``verify`` (``--verify-manifest``: a signature proves something only of a
manifest whose digests are checked too) the certificate is parsed, its
validity compared with the scan's time, and the signature checked against its
public key. Whether the certificate chains to a trusted root is not checked:
that takes a trust store and a revocation policy, the importer's to hold
(vCenter asks its user); imgscan reports who signed, not whether to trust them.

The ``cryptography`` package (the ``ova`` extra) parses and verifies; it is
imported only here, only when a certificate is verified. Without it the
signature is reported unverified and says why, never an exception.
"""

from __future__ import annotations

import re

from imgscan.findings import (
    CERTIFICATE_EXPIRED,
    CERTIFICATE_INVALID,
    SIGNATURE_INVALID,
    Finding,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

    from imgscan.findings import Severity

#: ``SHA256(package.mf)= 3f...``: the signature line (DSP0243 §5.2).
_SIGNATURE_LINE = re.compile(r"^(SHA1|SHA256|SHA512)\((.+)\)\s*=\s*(\S*)\s*$")
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
#: The PEM block of an X.509 certificate (RFC 7468); the first one is the signer's.
PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
PEM_END = b"-----END CERTIFICATE-----"
#: Bytes of an RSA signature from a 512-bit key to a 16384-bit one: what a signature
#: line's hex may decode to before any key is known.
SIGNATURE_BYTES = (64, 2048)
#: How imgscan names the extra that verifies signatures, for the message without it.
MISSING_PACKAGE = ("the cryptography package is not installed "
                   "(pip install 'imgscan[ova]')")


class Signature:
    """What a package's ``.cert`` says and, when verified, whether it holds."""

    __slots__ = ("algorithm", "certificate", "findings", "label", "manifest", "name",
                 "pem", "signature", "unverified", "verified")

    def __init__(self, name: str, label: str) -> None:
        #: The certificate file's name, and how messages name it (package and file).
        self.name = name
        self.label = label
        #: The signature line's digest and the manifest it names.
        self.algorithm: str | None = None
        self.manifest: str | None = None
        self.signature: bytes | None = None
        self.pem: bytes | None = None
        #: Subject, issuer, validity and key of the certificate (once parsed).
        self.certificate: dict[str, Any] | None = None
        #: True / False once checked; None with ``unverified`` saying why not.
        self.verified: bool | None = None
        self.unverified: str | None = "not asked (--verify-manifest)"
        self.findings: list[Finding] = []

    def _finding(self, id: str, severity: Severity, message: str) -> None:
        self.findings.append(Finding(id, severity, f"{self.label}: {message}"))

    def as_dict(self) -> dict[str, Any]:
        """The ``ova.signature`` object of the info contract (an extension)."""
        return {"name": self.name, "manifest": self.manifest, "algorithm": self.algorithm,
                "certificate": self.certificate, "verified": self.verified,
                "unverified": self.unverified}


def read(data: bytes, name: str, label: str, manifest_name: str | None) -> Signature:
    """The form of a ``.cert`` file: its signature line, the manifest it names (the
    package's, ``manifest_name``), its PEM block. Each fault is a finding."""
    sig = Signature(name, label)
    lines = data.split(b"\n", 1)
    first = lines[0].decode("ascii", "replace").strip()
    m = _SIGNATURE_LINE.match(first)
    if m is None:
        sig._finding(SIGNATURE_INVALID, "error", f"the first line {first[:80]!r} is not "
                     "'SHA256(name.mf)= signature'")
    else:
        algorithm, signed, hex_text = m.groups()
        sig.algorithm, sig.manifest = algorithm, signed
        if not _HEX.match(hex_text):
            sig._finding(SIGNATURE_INVALID, "error", f"the signature {hex_text[:40]!r} is "
                         "not an even number of hex digits")
        elif not SIGNATURE_BYTES[0] <= len(hex_text) // 2 <= SIGNATURE_BYTES[1]:
            sig._finding(SIGNATURE_INVALID, "error", f"the signature is {len(hex_text) // 2} "
                         f"bytes; an RSA one is {SIGNATURE_BYTES[0]} to {SIGNATURE_BYTES[1]}")
        else:
            sig.signature = bytes.fromhex(hex_text)
        if signed != manifest_name:
            sig._finding(SIGNATURE_INVALID, "error", f"it signs {signed!r}, but the package's "
                         "manifest is " + (repr(manifest_name) if manifest_name
                                           else "absent"))
    sig.pem = _pem_block(data)
    if sig.pem is None:
        sig._finding(CERTIFICATE_INVALID, "error", "it holds no PEM certificate "
                     "('-----BEGIN CERTIFICATE-----' ... '-----END CERTIFICATE-----')")
    if sig.findings:
        sig.unverified = "the certificate file is malformed (see its findings)"
    return sig


def _pem_block(data: bytes) -> bytes | None:
    """The first BEGIN ... END CERTIFICATE block, found by two linear scans (a pattern
    with a lazy ``.*?`` would rescan the rest of the file from every BEGIN marker)."""
    begin = data.find(PEM_BEGIN)
    if begin < 0:
        return None
    end = data.find(PEM_END, begin + len(PEM_BEGIN))
    return None if end < 0 else data[begin:end + len(PEM_END)]


def _key_name(key: object) -> str:
    """``RSA 2048``, ``EC secp256r1``, or the key's class for another kind."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def verify(sig: Signature, manifest: bytes, now: datetime) -> None:
    """Parse the certificate, compare its validity with ``now`` and check the signature
    of ``manifest`` (the manifest's bytes) against its public key. A file :func:`read`
    found malformed is not verified (its findings say why)."""
    if sig.findings or sig.pem is None or sig.signature is None or sig.algorithm is None:
        return
    try:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError:
        sig.unverified = MISSING_PACKAGE
        return
    try:
        cert = x509.load_pem_x509_certificate(sig.pem)
        key = cert.public_key()
        facts = {"subject": cert.subject.rfc4514_string(),
                 "issuer": cert.issuer.rfc4514_string(),
                 "not_before": cert.not_valid_before_utc.isoformat(),
                 "not_after": cert.not_valid_after_utc.isoformat(),
                 "key": _key_name(key)}
    except UnsupportedAlgorithm as exc:     # a public key of an algorithm OID unknown
        sig._finding(CERTIFICATE_INVALID, "error", f"the certificate's key cannot be read: {exc}")
        sig.unverified = "the certificate's key cannot be read"
        return
    except (ValueError, KeyError) as exc:     # the DER, a name or a date that does not decode
        # cryptography (48) raises KeyError, holding the tag, for a name's attribute of
        # an ASN.1 string type it does not know
        why = (f"a name's attribute is of an unknown string type (tag {exc})"
               if isinstance(exc, KeyError) else str(exc))
        sig._finding(CERTIFICATE_INVALID, "error", f"the certificate does not parse: {why}")
        sig.unverified = "the certificate does not parse"
        return
    sig.certificate = facts
    if now > cert.not_valid_after_utc or now < cert.not_valid_before_utc:
        sig._finding(CERTIFICATE_EXPIRED, "warning",
                     f"the certificate of {facts['subject']!r} is valid from "
                     f"{facts['not_before']} to {facts['not_after']}, not at "
                     f"{now.isoformat(timespec='seconds')}")
    if not isinstance(key, rsa.RSAPublicKey):
        sig.unverified = (f"the certificate's key is {facts['key']}; OVF signatures are "
                          "RSA PKCS#1 v1.5")
        return
    sig.unverified = None
    expected = (key.key_size + 7) // 8
    if len(sig.signature) != expected:
        sig.verified = False
        sig._finding(SIGNATURE_INVALID, "error", f"the signature is {len(sig.signature)} "
                     f"bytes, the certificate's {facts['key']} key makes {expected}")
        return
    digest: dict[str, hashes.HashAlgorithm] = {
        "SHA1": hashes.SHA1(), "SHA256": hashes.SHA256(), "SHA512": hashes.SHA512()}
    try:
        key.verify(sig.signature, manifest, padding.PKCS1v15(), digest[sig.algorithm])
    except (InvalidSignature, ValueError):
        sig.verified = False
        sig._finding(SIGNATURE_INVALID, "error", f"the {sig.algorithm} signature of "
                     f"{sig.manifest!r} does not verify with the certificate of "
                     f"{facts['subject']!r}: the manifest or the signature was changed")
        return
    sig.verified = True

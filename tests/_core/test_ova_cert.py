"""An OVF package's certificate file (``.cert``), signed as ovftool's ``--privateKey``
signs, checked against OpenSSL.

Keys and certificates are made by ``openssl req -x509 -newkey rsa:2048`` (an expired
one by ``openssl ca -selfsign`` with its start and end dates), the manifest signed by
``openssl dgst -sign``; the oracle of every verdict is ``openssl dgst -verify`` with
the certificate's public key (``openssl x509 -pubkey``), and of the certificate's facts
``openssl x509 -subject -issuer -dates``. Only malformed certificate files are edited
by hand.
"""

from __future__ import annotations

import datetime
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import MiB, sparse_file
from helpers.ova_packages import (
    build_ova,
    certificate_file,
    dated_signer,
    signer,
    unknown_key_algorithm,
    unknown_name_string_type,
)
from oracles import needs_qemu, run

import imgscan
from imgscan._core import ova_cert

pytestmark = [needs_qemu, pytest.mark.skipif(shutil.which("openssl") is None,
                                             reason="openssl not installed")]


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small blank disk: the signature covers the manifest, not the guest."""
    return sparse_file(tmp_path_factory.mktemp("disk") / "disk.img", 4 * MiB)


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return signer(tmp_path_factory.mktemp("signer"), "/CN=imgscan signer/O=Example Corp")


def _info(path: Path, verify: bool = True) -> dict[str, Any]:
    with imgscan.open(path, verify_manifest=verify) as img:
        return img.info()


def _container(info: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["id"], f["severity"]) for f, stage in
            zip(info["findings"], info["finding_stages"], strict=True) if stage == "container"]


def _openssl_verifies(d: Path, name: str, cert: Path) -> bool:
    """``openssl dgst -verify`` of ``d/name.cert``'s signature of ``name.mf`` with the
    public key of ``cert``."""
    line = (d / f"{name}.cert").read_text().splitlines()[0]
    algorithm = line.split("(", 1)[0].lower()
    (d / "sig.bin").write_bytes(bytes.fromhex(line.rsplit("= ", 1)[1]))
    (d / "pub.pem").write_text(run("openssl", "x509", "-pubkey", "-noout", "-in", cert))
    import subprocess
    done = subprocess.run(["openssl", "dgst", f"-{algorithm}", "-verify", "pub.pem",
                           "-signature", "sig.bin", f"{name}.mf"], cwd=d, capture_output=True,
                          text=True, check=False)
    assert done.stdout.strip() in ("Verified OK", "Verification failure"), done
    return done.stdout.strip() == "Verified OK"


def _repack(d: Path, name: str, *members: str) -> Path:
    ova = d / f"{name}.ova"
    ova.unlink()
    run("tar", "--format=ustar", "-cf", ova, *members, cwd=d)
    return ova


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "sha512"])
def test_signature_verified_as_openssl_verifies(tmp_path: Path, disk: Path,
                                                key_pair: tuple[Path, Path],
                                                algorithm: str) -> None:
    d = tmp_path / "p"
    build_ova(d, "p", [("p.vmdk", disk)], signed_by=key_pair)
    (d / "p.cert").write_text(certificate_file(d, "p.mf", *key_pair, algorithm))
    ova = _repack(d, "p", "p.ovf", "p.mf", "p.cert", "p.vmdk")
    assert _openssl_verifies(d, "p", key_pair[1])
    info = _info(ova)
    sig = info["ova"]["signature"]
    cert = key_pair[1]
    dates = dict(line.split("=", 1) for line in
                 run("openssl", "x509", "-noout", "-dates", "-in", cert).splitlines())
    assert sig["name"] == "p.cert" and sig["manifest"] == "p.mf"
    assert sig["algorithm"] == algorithm.upper()
    assert sig["verified"] is True and sig["unverified"] is None
    assert sig["certificate"]["subject"] == run(
        "openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", cert
    ).strip().removeprefix("subject=")
    assert sig["certificate"]["issuer"] == sig["certificate"]["subject"]   # self-signed
    for key, field in (("not_before", "notBefore"), ("not_after", "notAfter")):
        stated = datetime.datetime.strptime(dates[field], "%b %d %H:%M:%S %Y %Z")
        assert sig["certificate"][key] == stated.replace(tzinfo=datetime.UTC).isoformat()
    assert sig["certificate"]["key"] == "RSA 2048"
    assert _container(info) == []
    # not asked: the form is read, nothing verified, cryptography not imported for it
    unasked = _info(ova, verify=False)["ova"]["signature"]
    assert unasked["verified"] is None and unasked["certificate"] is None
    assert unasked["unverified"] == "not asked (--verify-manifest)"
    assert unasked["algorithm"] == algorithm.upper()


def test_an_unsigned_package_has_no_signature(tmp_path: Path, disk: Path) -> None:
    ova = build_ova(tmp_path, "u", [("u.vmdk", disk)])
    assert _info(ova)["ova"]["signature"] is None


@pytest.mark.parametrize("change", ["manifest", "other-key"])
def test_a_signature_that_does_not_verify(tmp_path: Path, disk: Path,
                                          key_pair: tuple[Path, Path], change: str) -> None:
    """The manifest edited after signing (its digests still right: a line reordered), or
    the certificate of another key: openssl and imgscan both refuse the signature."""
    d = tmp_path / "p"
    build_ova(d, "p", [("p.vmdk", disk)], signed_by=key_pair)
    cert = key_pair[1]
    if change == "manifest":
        mf = d / "p.mf"
        mf.write_text("".join(reversed(mf.read_text().splitlines(keepends=True))))
    else:
        _, cert = signer(tmp_path / "other", "/CN=someone else")
        text = (d / "p.cert").read_text()
        (d / "p.cert").write_text(text.split("-----BEGIN", 1)[0] + cert.read_text())
    ova = _repack(d, "p", "p.ovf", "p.mf", "p.cert", "p.vmdk")
    assert not _openssl_verifies(d, "p", cert)
    info = _info(ova)
    assert info["ova"]["signature"]["verified"] is False
    assert info["ova"]["manifest"]["verified"] is True
    assert _container(info) == [("signature-invalid", "error")]
    assert "does not verify" in info["findings"][0]["message"]


@pytest.mark.parametrize(("start", "end"), [("20200101000000Z", "20210101000000Z"),
                                            ("20900101000000Z", "20910101000000Z")],
                         ids=["expired", "not-yet-valid"])
def test_a_certificate_out_of_its_dates_is_a_warning(tmp_path: Path, disk: Path, start: str,
                                                     end: str) -> None:
    """A certificate valid only in 2020, or only in 2090 (``openssl ca -selfsign``): the
    signature still verifies (openssl agrees), the certificate is not valid at scan
    time."""
    key, cert = dated_signer(tmp_path / "ca", start, end)
    d = tmp_path / "p"
    ova = build_ova(d, "p", [("p.vmdk", disk)], signed_by=(key, cert))
    assert _openssl_verifies(d, "p", cert)
    info = _info(ova)
    sig = info["ova"]["signature"]
    assert sig["verified"] is True
    assert sig["certificate"]["not_after"] == f"{end[:4]}-01-01T00:00:00+00:00"
    assert _container(info) == [("certificate-expired", "warning")]
    assert f"valid from {start[:4]}-01-01" in info["findings"][0]["message"]


def test_a_key_that_is_not_rsa_is_reported_unverified(tmp_path: Path, disk: Path) -> None:
    """An EC key (``openssl req -x509 -newkey ec``; openssl verifies its ECDSA signature):
    OVF signatures are RSA PKCS#1 v1.5, so the signature is reported not verified, naming
    the key, and the certificate's facts are kept."""
    d = tmp_path / "k"
    d.mkdir()
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d / "key.pem", "-out",
        d / "cert.pem", "-subj", "/CN=ec signer", "-days", "30")
    p = tmp_path / "p"
    ova = build_ova(p, "p", [("p.vmdk", disk)], signed_by=(d / "key.pem", d / "cert.pem"))
    assert _openssl_verifies(p, "p", d / "cert.pem")
    info = _info(ova)
    sig = info["ova"]["signature"]
    assert sig["verified"] is None and sig["certificate"]["key"] == "EC secp256r1"
    assert "EC secp256r1; OVF signatures are RSA PKCS#1 v1.5" in sig["unverified"]
    assert _container(info) == []


def test_a_certificate_file_of_another_manifest(tmp_path: Path, disk: Path,
                                                key_pair: tuple[Path, Path]) -> None:
    d = tmp_path / "p"
    build_ova(d, "p", [("p.vmdk", disk)], signed_by=key_pair)
    (d / "other.mf").write_bytes((d / "p.mf").read_bytes())
    (d / "p.cert").write_text(certificate_file(d, "other.mf", *key_pair))
    ova = _repack(d, "p", "p.ovf", "p.mf", "p.cert", "p.vmdk")
    for verify in (False, True):
        info = _info(ova, verify)
        assert _container(info) == [("signature-invalid", "error")]
        assert "signs 'other.mf', but the package's manifest is 'p.mf'" in \
            info["findings"][0]["message"]
        assert info["ova"]["signature"]["verified"] is None


def _hostile(d: Path, key_pair: tuple[Path, Path], disk: Path, edit: Any) -> dict[str, Any]:
    build_ova(d, "p", [("p.vmdk", disk)], signed_by=key_pair)
    cert = d / "p.cert"
    cert.write_text(edit(cert.read_text()))
    return _info(_repack(d, "p", "p.ovf", "p.mf", "p.cert", "p.vmdk"))


def _line(text: str) -> tuple[str, str]:
    first, rest = text.split("\n", 1)
    return first, rest


@pytest.mark.parametrize(("case", "edit", "found", "words"), [
    ("bad-pem", lambda t: t.replace(t.split("\n")[3], "!" * 64), "certificate-invalid",
     "does not parse"),
    ("no-pem", lambda t: _line(t)[0] + "\n", "certificate-invalid", "no PEM certificate"),
    ("bad-hex", lambda t: t.replace("= ", "= zz", 1), "signature-invalid", "hex digits"),
    ("odd-hex", lambda t: t.replace("= ", "= a", 1), "signature-invalid", "hex digits"),
    ("too-short", lambda t: _line(t)[0][:-4] + "\n" + _line(t)[1], "signature-invalid",
     "the certificate's RSA 2048 key makes 256"),
    ("tiny", lambda t: "SHA256(p.mf)= abcd\n" + _line(t)[1], "signature-invalid",
     "an RSA one is 64 to 2048"),
    ("no-line", lambda t: "not a signature\n" + _line(t)[1], "signature-invalid",
     "is not 'SHA256(name.mf)= signature'"),
    ("binary", lambda t: "\x00\xff" * 40, "signature-invalid", "is not 'SHA256"),
    ("unknown-key-algorithm", unknown_key_algorithm, "certificate-invalid",
     "key cannot be read: Unknown key type: 1.2.840.113549.1.1.99"),
    ("unknown-name-string-type", unknown_name_string_type, "certificate-invalid",
     "does not parse"),
    # a BEGIN marker after BEGIN marker and no END, up to the cap: found in one scan
    ("begin-markers", lambda t: _line(t)[0] + "\n" + "-----BEGIN CERTIFICATE-----\n" * 2000,
     "certificate-invalid", "no PEM certificate"),
])
def test_hostile_certificate_files(tmp_path: Path, disk: Path, key_pair: tuple[Path, Path],
                                   case: str, edit: Any, found: str, words: str,
                                   prompt: None) -> None:
    info = _hostile(tmp_path / "p", key_pair, disk, edit)
    ids = [i for i, _ in _container(info)]
    assert found in ids, info["findings"]
    assert all(i in ("signature-invalid", "certificate-invalid") for i in ids)
    assert any(words in f["message"] for f in info["findings"]), info["findings"]
    assert info["ova"]["signature"]["verified"] is not True
    assert info["ova"]["manifest"]["verified"] is True     # the rest of the package stands


def test_cert_bytes_cap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, disk: Path,
                        key_pair: tuple[Path, Path]) -> None:
    from test_limits import _finding_boundary, _findings
    d = tmp_path / "p"
    ova = build_ova(d, "p", [("p.vmdk", disk)], signed_by=key_pair)
    _finding_boundary(monkeypatch, "OVA_MAX_CERT_BYTES", (d / "p.cert").stat().st_size,
                      _findings(ova))


def test_without_the_cryptography_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          disk: Path, key_pair: tuple[Path, Path]) -> None:
    """The ``ova`` extra not installed: the signature is unverified and says why; the
    package is read, no finding is made of it."""
    ova = build_ova(tmp_path, "p", [("p.vmdk", disk)], signed_by=key_pair)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    info = _info(ova)
    assert info["ova"]["signature"]["verified"] is None
    assert info["ova"]["signature"]["unverified"] == ova_cert.MISSING_PACKAGE
    assert _container(info) == []


def test_standalone_ovf_with_its_certificate_beside_it(tmp_path: Path, disk: Path,
                                                       key_pair: tuple[Path, Path]) -> None:
    build_ova(tmp_path, "s", [("s.vmdk", disk)], signed_by=key_pair)
    info = _info(tmp_path / "s.ovf")
    assert info["ova"]["kind"] == "ovf"
    assert info["ova"]["signature"]["verified"] is True
    mf = tmp_path / "s.mf"
    mf.write_text(mf.read_text() + "\n")
    info = _info(tmp_path / "s.ovf")
    assert _container(info) == [("signature-invalid", "error")]
    assert info["findings"][0]["message"].startswith(str(tmp_path / "s.cert"))


def test_info_text_and_json_show_the_signature(tmp_path: Path, disk: Path,
                                               key_pair: tuple[Path, Path]) -> None:
    from helpers import run_cli
    ova = build_ova(tmp_path, "p", [("p.vmdk", disk)], signed_by=key_pair)
    text = run_cli("info", "--verify-manifest", str(ova))
    assert text.returncode == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if "signature" in line)
    assert "p.cert, SHA256, signed by O=Example Corp,CN=imgscan signer until" in row
    assert "(chain of trust not checked), verifies" in row
    unasked = run_cli("info", str(ova)).stdout
    assert "p.cert, SHA256, not verified: not asked (--verify-manifest)" in unasked
    import json
    proc = run_cli("check", "--json", "--verify-manifest", str(ova))
    assert json.loads(proc.stdout)["info"]["ova"]["signature"]["verified"] is True

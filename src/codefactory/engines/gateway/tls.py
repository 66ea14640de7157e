"""The factory's own CA and the gateway's certificate (X.509, RFC 5280), with `cryptography`.

Under a folder (mode 0700) the first start writes

    ca.pem   ca.key        an ECDSA P-256 CA, valid 10 years (key 0600)
    gateway.pem gateway.key  the gateway's leaf (key 0600), signed by that CA, valid 90 days,
                           SANs: the gateway host name, `localhost`, 127.0.0.1 and ::1

and later starts reuse them; the leaf is renewed when fewer than 30 days are left, when the
host name changed, or when it no longer chains to `ca.pem`. Engines trust `ca.pem` through
`SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS` and `CODEX_CA_CERTIFICATE`.
P-256 rather than Ed25519 because Node's and Python's TLS stacks both accept it as a server
key; the extensions (key usages, key identifiers) satisfy Python 3.13's strict X.509 checks.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 90
RENEW_WITHIN_DAYS = 30


@dataclass(frozen=True, kw_only=True)
class GatewayCertificates:
    """PEM files: the CA certificate engines trust, the gateway's chain and its key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
    temporary.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an ECDSA key")
    return key


def _make_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Code Factory gateway CA")])
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(folder / "ca.key", _key_pem(key))
    (folder / "ca.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key


def _load_or_make_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if (folder / "ca.pem").is_file() and (folder / "ca.key").is_file():
        certificate = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        if certificate.not_valid_after_utc > _now() + datetime.timedelta(days=LEAF_DAYS):
            return certificate, _load_key(folder / "ca.key")
    return _make_ca(folder)


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(host), x509.DNSName("localhost")]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    return names


def _leaf_is_current(path: Path, ca: x509.Certificate, host: str) -> bool:
    if not path.is_file():
        return False
    leaf = x509.load_pem_x509_certificate(path.read_bytes())
    if leaf.not_valid_after_utc < _now() + datetime.timedelta(days=RENEW_WITHIN_DAYS):
        return False
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if host not in san.get_values_for_type(x509.DNSName):
        return False
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _make_leaf(
    folder: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, host: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(folder / "gateway.key", _key_pem(key))
    (folder / "gateway.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def ensure_certificates(folder: Path, host: str) -> GatewayCertificates:
    """The CA and the gateway leaf for `host` under `folder`, created or renewed as needed.

    Raises ValueError for an unreadable key; the folder is created 0700."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca, ca_key = _load_or_make_ca(folder)
    if not _leaf_is_current(folder / "gateway.pem", ca, host):
        _make_leaf(folder, ca, ca_key, host)
    return GatewayCertificates(
        ca_file=folder / "ca.pem",
        cert_file=folder / "gateway.pem",
        key_file=folder / "gateway.key",
    )


def ssl_context_from(ca_file: Path | None) -> ssl.SSLContext:
    """A client context that verifies peers (hostname and chain) against the system's trust
    store plus `ca_file`; verification is never turned off."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context

"""The factory CA and the gateway certificate: created once, reused, renewed when needed."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509

from codefactory.engines.gateway.tls import ensure_certificates, ssl_context_from


def sans(path: Path) -> x509.SubjectAlternativeName:
    leaf = x509.load_pem_x509_certificate(path.read_bytes())
    return leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_created_with_private_modes_and_the_right_names(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "gateway"
    made = ensure_certificates(folder, "gateway.codefactory.internal")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for key in (folder / "ca.key", made.key_file):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    names = sans(made.cert_file)
    assert names.get_values_for_type(x509.DNSName) == ["gateway.codefactory.internal", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    ca = x509.load_pem_x509_certificate(made.ca_file.read_bytes())
    leaf = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
    leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ssl_context_from(made.ca_file)  # loads as a trust anchor


def test_reused_then_renewed_for_a_new_host_name(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path, "gw.one")
    ca, leaf = first.ca_file.read_bytes(), first.cert_file.read_bytes()
    again = ensure_certificates(tmp_path, "gw.one")
    assert (again.ca_file.read_bytes(), again.cert_file.read_bytes()) == (ca, leaf)
    renamed = ensure_certificates(tmp_path, "gw.two")
    assert renamed.ca_file.read_bytes() == ca and renamed.cert_file.read_bytes() != leaf
    assert "gw.two" in sans(renamed.cert_file).get_values_for_type(x509.DNSName)


def test_a_new_ca_renews_the_leaf(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path, "gw")
    leaf = first.cert_file.read_bytes()
    first.ca_file.unlink()
    second = ensure_certificates(tmp_path, "gw")
    ca = x509.load_pem_x509_certificate(second.ca_file.read_bytes())
    assert second.cert_file.read_bytes() != leaf
    x509.load_pem_x509_certificate(second.cert_file.read_bytes()).verify_directly_issued_by(ca)

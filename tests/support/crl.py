"""A revoked client certificate and the CRL that revokes it, from the session CA (--client-crl-file tests)."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.tls import CertPaths, ClientTLS


def revoked_client(certs: CertPaths, folder: Path) -> tuple[ClientTLS, int]:
    """Another client certificate from the session CA; returns its TLS material and serial."""
    ca_key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "revoked")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    (folder / "revoked.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "revoked-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ClientTLS(ca=certs.ca, cert=folder / "revoked.pem", key=folder / "revoked-key.pem"), cert.serial_number


def write_crl(certs: CertPaths, serial: int, dest: Path) -> Path:
    """A CRL from the session CA that revokes ``serial``, written to ``dest``."""
    ca_key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(certs.ca.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    revoked = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(now)
           .next_update(now + datetime.timedelta(days=1)).add_revoked_certificate(revoked)
           .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    dest.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return dest

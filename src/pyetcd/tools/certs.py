"""Write a throwaway CA plus server, peer and client certificates for mutual TLS.

Used by ``pyetcdutl certs`` (``make run``) and by the test harness, so that pyetcd and real
etcd are always started with the same kind of certificates. The layout follows etcd's own
security guide: server and peer certificates carry both serverAuth and clientAuth (a member
dials its peers with its peer certificate), the client certificate is CN ``client``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# name -> (common name, extended key usages, carries the host SANs)
_LEAVES: dict[str, tuple[str, list[x509.ObjectIdentifier], bool]] = {
    "server": ("pyetcd-server", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], True),
    "peer": ("pyetcd-peer", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], True),
    "client": ("client", [ExtendedKeyUsageOID.CLIENT_AUTH], False),
}
FILES = ("ca.pem", "ca-key.pem", *(f"{n}{s}" for n in _LEAVES for s in (".pem", "-key.pem")))


class CertsExistError(FileExistsError):
    """Raised instead of silently replacing certificates that running members may use."""


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by Go's crypto/tls (real etcd), OpenSSL and gRPC's BoringSSL, and fast.
    return ec.generate_private_key(ec.SECP256R1())


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pyetcd"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(cn: str, issuer: x509.Name, pub: ec.EllipticCurvePublicKey, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )


def _self_signed_ca(cn: str, key: ec.EllipticCurvePrivateKey, days: int) -> x509.CertificateBuilder:
    """A certificate that is its own issuer and may sign others (the CA; --auto-tls's single cert)."""
    return (_builder(cn, _name(cn), key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True))


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # O_CREAT's mode is filtered by umask and ignored for existing files


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_certs(directory: Path, hosts: list[str], *, days: int = 3650, force: bool = False) -> dict[str, Path]:
    """Write ca/server/peer/client certificates and keys into directory; return name -> path.

    Names are the file stems (``ca``, ``ca-key``, ``server``, ``server-key`` ...). Keys are
    written 0600. Raises CertsExistError if any target file exists and force is False.
    """
    if not hosts:
        raise ValueError("at least one host (DNS name or IP) is needed for the SANs")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name.removesuffix(".pem"): directory / name for name in FILES}
    existing = [p for p in paths.values() if p.exists()]
    if existing and not force:
        raise CertsExistError(f"refusing to overwrite {', '.join(str(p) for p in existing)}; "
                              "pass --force (force=True) to replace them, or choose another --dir")

    ca_key = _key()
    ca_name = _name("pyetcd-ca")
    ca_cert = (
        _self_signed_ca("pyetcd-ca", ca_key, days)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(paths["ca"], ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(paths["ca-key"], _key_pem(ca_key), 0o600)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value

    for name, (cn, ekus, with_sans) in _LEAVES.items():
        key = _key()
        builder = (
            _builder(cn, ca_name, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
        )
        if with_sans:
            builder = builder.add_extension(_san(hosts), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(paths[name], cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(paths[f"{name}-key"], _key_pem(key), 0o600)
    return paths


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyetcdutl certs",
                                description="Write a CA and server/peer/client certificates for mutual TLS.")
    p.add_argument("--dir", required=True, type=Path, help="directory to write the PEM files into")
    p.add_argument("--hosts", required=True,
                   help="comma-separated DNS names and IPs for the server/peer SANs, e.g. localhost,127.0.0.1")
    p.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    p.add_argument("--force", action="store_true", help="overwrite existing certificate files")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``pyetcdutl certs``; returns a process exit status."""
    args = _parser().parse_args(argv)
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    if not hosts:
        print("pyetcdutl certs: --hosts needs at least one DNS name or IP", file=sys.stderr)
        return 2
    if args.days <= 0:
        print("pyetcdutl certs: --days must be positive", file=sys.stderr)
        return 2
    try:
        paths = write_certs(args.dir, hosts, days=args.days, force=args.force)
    except CertsExistError as e:
        print(f"pyetcdutl certs: {e}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"wrote {path}" + (" (0600)" if name.endswith("-key") else ""))
    print(f"SANs of server.pem and peer.pem: {', '.join(hosts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def write_self_signed(directory: Path, hosts: list[str], *, days: int = 365) -> tuple[Path, Path]:
    """--auto-tls / --peer-auto-tls: one self-signed certificate (its own CA) and key, as etcd's
    transport.SelfCert writes. Being its own issuer, a peer that fetched it can trust it as is
    (etcd's clients skip verification instead; gRPC cannot)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = _key()
    cert = (
        _self_signed_ca("pyetcd-auto-tls", key, days)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                                     content_commitment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(_san(hosts), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(key_path, _key_pem(key), 0o600)
    return cert_path, key_path

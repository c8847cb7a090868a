"""pyetcdutl certs: the chain verifies with openssl, and real etcd serves mutual TLS with it."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pyetcd.tools.certs import FILES, CertsExistError, main, write_certs
from support import Member, etcdctl


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _openssl_verify(ca: Path, cert: Path, purpose: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca), "-purpose", purpose, str(cert)],
                          capture_output=True, text=True, check=False)


def test_chain_verifies_with_openssl(tmp_path: Path) -> None:
    p = write_certs(tmp_path, ["localhost", "127.0.0.1", "::1"])
    for name in ("server", "peer"):
        for purpose in ("sslserver", "sslclient"):
            r = _openssl_verify(p["ca"], p[name], purpose)
            assert r.returncode == 0 and ": OK" in r.stdout, (name, purpose, r.stdout, r.stderr)
    assert _openssl_verify(p["ca"], p["client"], "sslclient").returncode == 0
    # the client certificate is not a server certificate
    assert _openssl_verify(p["ca"], p["client"], "sslserver").returncode != 0
    # keys match their certificates (openssl compares the public keys)
    for name in ("ca", "server", "peer", "client"):
        pub_cert = subprocess.run(["openssl", "x509", "-in", str(p[name]), "-noout", "-pubkey"],
                                  capture_output=True, text=True, check=True).stdout
        pub_key = subprocess.run(["openssl", "pkey", "-in", str(p[f"{name}-key"]), "-pubout"],
                                 capture_output=True, text=True, check=True).stdout
        assert pub_cert == pub_key, name


def test_another_ca_does_not_verify(tmp_path: Path) -> None:
    a = write_certs(tmp_path / "a", ["localhost"])
    b = write_certs(tmp_path / "b", ["localhost"])
    r = _openssl_verify(a["ca"], b["client"], "sslclient")
    assert r.returncode != 0, r.stdout


def test_sans_ekus_and_modes(tmp_path: Path) -> None:
    p = write_certs(tmp_path, ["localhost", "example.test", "127.0.0.1", "10.0.0.7"], days=30)
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(FILES)
    for name in ("server", "peer"):
        c = _cert(p[name])
        san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["localhost", "example.test"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "10.0.0.7"]
        eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        assert 29 <= (c.not_valid_after_utc - c.not_valid_before_utc).days <= 31
    client = _cert(p["client"])
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "client"
    assert list(client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = _cert(p["ca"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name, path in p.items():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if name.endswith("-key") else 0o644), (name, oct(mode))


def test_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", str(tmp_path), "--hosts", "localhost,127.0.0.1"]) == 0
    out = capsys.readouterr().out
    assert all(f"wrote {tmp_path / f}" in out for f in FILES), out
    before = (tmp_path / "ca.pem").read_bytes()

    assert main(["--dir", str(tmp_path), "--hosts", "localhost"]) == 1
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "--force" in err
    assert (tmp_path / "ca.pem").read_bytes() == before
    with pytest.raises(CertsExistError):
        write_certs(tmp_path, ["localhost"])

    assert main(["--dir", str(tmp_path), "--hosts", "localhost", "--force"]) == 0
    assert (tmp_path / "ca.pem").read_bytes() != before
    r = _openssl_verify(tmp_path / "ca.pem", tmp_path / "server.pem", "sslserver")
    assert r.returncode == 0, r.stderr


def test_bad_arguments(tmp_path: Path) -> None:
    assert main(["--dir", str(tmp_path), "--hosts", " , "]) == 2
    assert main(["--dir", str(tmp_path), "--hosts", "localhost", "--days", "0"]) == 2
    assert not any(tmp_path.iterdir())


def test_real_etcd_serves_mtls_with_these_certs(real_etcd: Member) -> None:
    """The session certificates (written by write_certs) are accepted by Go's TLS stack in etcd."""
    etcdctl(real_etcd, "put", "certs-key", "v1")
    assert etcdctl(real_etcd, "get", "certs-key", "--print-value-only").stdout.strip() == "v1"
    health = etcdctl(real_etcd, "endpoint", "health")
    assert "is healthy" in health.stdout + health.stderr
    # peers use peer.pem for both ends: the member list shows the https peer URL it was given
    assert real_etcd.peer_url in etcdctl(real_etcd, "member", "list").stdout

"""TLS refusal (issue 9, item 7): etcd answers a client certificate it rejects with a TLS alert
(``bad certificate``, alert 42), and clients print it.

grpc's TLS handshaker drops the alert it wrote and just closes the connection, so pyetcd's
front ends TLS itself (gateway/_tlsend.c) and sends etcd's alert, in TLS 1.2 and TLS 1.3, for a
missing certificate and for one from another CA, where OpenSSL on its own would send
handshake_failure, certificate_required or unknown_ca. Each case runs against real etcd too.
(Without the native relay, gateway/tlsalert.py's rule covers TLS 1.2 only: the last tests.)
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from pyetcd.gateway.tlsalert import ServerRecords, alert_record
from support import CertPaths, EtcdctlError, Member, etcdctl
from support.tlsrecords import (
    ALERT,
    APPLICATION_DATA,
    BAD_CERTIFICATE_ALERT,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    HELLO_FLIGHT,
    record,
)

BAD_CERTIFICATE = "alert bad certificate"


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return CertPaths.create(tmp_path_factory.mktemp("other-ca-alert"))


def _s_client(m: Member, version: str, *args: str, until_closed: bool = True) -> str:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to see the TLS alert"
    # -ign_eof: read until the server closes, so an alert that follows the handshake (TLS 1.3) is
    # seen too; an accepted client is not closed, so it stops at the end of its input instead
    wait = ["-ign_eof"] if until_closed else []
    r = subprocess.run([openssl, "s_client", "-connect", m.grpc_target, "-CAfile", str(m.certs.ca),
                        "-alpn", "h2", *wait, version, *args], input=b"", capture_output=True, timeout=30)
    return (r.stdout + r.stderr).decode(errors="replace")


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
@pytest.mark.parametrize("case", ["no client certificate", "certificate from another CA"])
def test_refused_client_gets_bad_certificate_alert(any_member: Member, other_ca: CertPaths, case: str,
                                                   version: str) -> None:
    args = [] if case == "no client certificate" else ["-cert", str(other_ca.client),
                                                       "-key", str(other_ca.client_key)]
    out = _s_client(any_member, version, *args)
    assert BAD_CERTIFICATE in out, out


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_accepted_client_gets_no_alert(any_member: Member, version: str) -> None:
    out = _s_client(any_member, version, "-cert", str(any_member.certs.client),
                    "-key", str(any_member.certs.client_key), until_closed=False)
    assert "alert" not in out.lower() and "Verify return code: 0 (ok)" in out


def test_without_the_native_relay_grpc_ends_tls_and_tls12_refusals_still_get_the_alert(
        member_factory: Callable[..., Member], other_ca: CertPaths) -> None:
    """The fallback when gateway/_pump is not built (here forced with PYETCD_FRONT_RELAY=python):
    bytes are relayed still encrypted, gRPC does TLS and sees the client's certificate itself (the
    CN as user works), and gateway/tlsalert.py adds the alert a TLS 1.2 refusal needs."""
    m = member_factory("pyetcd", env={"PYETCD_FRONT_RELAY": "python"})
    etcdctl(m, "put", "k", "v")
    assert etcdctl(m, "get", "k", "--print-value-only").stdout.strip() == "v"
    etcdctl(m, "user", "add", "root:rootpw")
    etcdctl(m, "user", "add", "client:pw")  # the client certificate's CN
    etcdctl(m, "role", "add", "reader")
    etcdctl(m, "role", "grant-permission", "reader", "read", "k")
    etcdctl(m, "user", "grant-role", "client", "reader")
    etcdctl(m, "user", "grant-role", "root", "root")
    etcdctl(m, "auth", "enable")
    assert etcdctl(m, "get", "k", "--print-value-only").stdout.strip() == "v"  # as "client", by its CN
    with pytest.raises(EtcdctlError, match="permission denied"):
        etcdctl(m, "put", "k", "w")
    out = _s_client(m, "-tls1_2", "-cert", str(other_ca.client), "-key", str(other_ca.client_key))
    assert BAD_CERTIFICATE in out, out
    # TLS 1.3 is where this mode falls short (grpc holds the keys and sends no alert): the reason
    # the native relay ends TLS itself
    assert "alert" not in _s_client(m, "-tls1_3")


def test_records_in_fragments_find_the_refusal_point() -> None:
    flight = HELLO_FLIGHT
    rec = ServerRecords()
    assert rec.refusal_alert() is None  # nothing sent yet: not a refused certificate
    for i in range(0, len(flight), 7):  # records split across reads, headers too
        rec.feed(flight[i:i + 7])
    assert rec.refusal_alert() == alert_record(b"\x03\x03") == BAD_CERTIFICATE_ALERT
    rec.feed(record(CHANGE_CIPHER_SPEC, b"\x01"))  # ChangeCipherSpec: the handshake went on, no alert to add
    assert rec.refusal_alert() is None


def test_server_alert_or_tls13_records_settle_it() -> None:
    for after_hello in (record(CHANGE_CIPHER_SPEC, b"\x01"), record(ALERT, b"\x02\x28"),
                        record(APPLICATION_DATA, b"x" * 40)):
        rec = ServerRecords()
        rec.feed(record(HANDSHAKE, b"\x02" + b"h" * 90) + after_hello)
        assert rec.settled and rec.refusal_alert() is None

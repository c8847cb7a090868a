"""TLS refusal (issue 9, item 7): etcd answers a client certificate it rejects with a TLS alert
(``bad certificate``, alert 42), and clients print it.

grpc's TLS handshaker drops the alert it wrote and just closes the connection, so pyetcd's
front sends it on grpc's behalf (gateway/_pump.c follows the server's TLS 1.2 records) when the
refusal happens while the handshake is still plaintext. (main's version of this file, with
gateway/tlsalert.py, supersedes this one when merged.)
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support import CertPaths, Member

BAD_CERTIFICATE = "alert bad certificate"


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return CertPaths.create(tmp_path_factory.mktemp("other-ca-alert"))


def _s_client(m: Member, *args: str) -> str:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to see the TLS alert"
    r = subprocess.run([openssl, "s_client", "-connect", m.grpc_target, "-CAfile", str(m.certs.ca),
                        "-alpn", "h2", "-tls1_2", *args], input=b"", capture_output=True, timeout=30)
    return (r.stdout + r.stderr).decode(errors="replace")


@pytest.mark.parametrize("case", ["no client certificate", "certificate from another CA"])
def test_refused_client_gets_bad_certificate_alert(any_member: Member, other_ca: CertPaths, case: str) -> None:
    args = [] if case == "no client certificate" else ["-cert", str(other_ca.client),
                                                       "-key", str(other_ca.client_key)]
    assert BAD_CERTIFICATE in _s_client(any_member, *args)

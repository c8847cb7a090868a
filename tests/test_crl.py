"""--client-crl-file: a client whose certificate the CRL revokes is refused, others are served
(as real etcd does; etcd's e2e TestCtlV3GetRevokedCRL checks the same with its fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import CertPaths, etcdctl
from support.crl import revoked_client, write_crl


@pytest.mark.parametrize("kind", ["etcd", "pyetcd"])
def test_revoked_client_is_refused(kind: str, member_factory: object, certs: CertPaths, tmp_path: Path) -> None:
    revoked_tls, serial = revoked_client(certs, tmp_path)
    crl = write_crl(certs, serial, tmp_path / "revoke.crl")
    m = member_factory(kind, extra_args=["--client-crl-file", str(crl)])  # type: ignore[operator]
    refused = etcdctl(m, "put", "k", "v", tls=revoked_tls, check=False, timeout=30)
    assert refused.returncode != 0 and "Error:" in refused.stderr
    assert etcdctl(m, "put", "k", "v").stdout == "OK\n"  # the usual client cert is not revoked
    got = etcdctl(m, "get", "k", "--print-value-only").stdout
    assert got == "v\n"

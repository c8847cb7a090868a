"""Mutual TLS: with --client-cert-auth a member refuses clients without a certificate from its CA.

Runs against real etcd (to prove the test) and pyetcd (skipped only while its server is absent).
"""

from __future__ import annotations

import grpc
import pytest

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import CertPaths, ClientTLS, Member, etcdctl, grpc_channel

_FAST = ("--dial-timeout=2s", "--command-timeout=4s")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    """A second, unrelated CA with its own client certificate (same CN "client")."""
    return CertPaths.create(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture
def member(any_member: Member) -> Member:
    return any_member


def _range(m: Member, tls: ClientTLS) -> rpc_pb2.RangeResponse:
    with grpc_channel(m, tls=tls) as ch:
        resp: rpc_pb2.RangeResponse = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5)
        return resp


def _bad_clients(m: Member, other_ca: CertPaths) -> dict[str, ClientTLS]:
    return {
        "no client certificate": ClientTLS(ca=m.certs.ca),
        "client certificate from another CA": ClientTLS(ca=m.certs.ca, cert=other_ca.client,
                                                        key=other_ca.client_key),
    }


def test_good_client_is_served(member: Member) -> None:
    """Control: the refusals below are about the certificate, not a dead member."""
    etcdctl(member, "put", "k", "v", *_FAST)
    assert etcdctl(member, "get", "k", "--print-value-only", *_FAST).stdout.strip() == "v"
    assert [kv.value for kv in _range(member, member.client_tls()).kvs] == [b"v"]


@pytest.mark.parametrize("case", ["no client certificate", "client certificate from another CA"])
def test_etcdctl_is_refused(member: Member, other_ca: CertPaths, case: str) -> None:
    etcdctl(member, "put", "k", "secret", *_FAST)
    r = etcdctl(member, "get", "k", *_FAST, tls=_bad_clients(member, other_ca)[case], check=False)
    assert r.returncode != 0, (case, r.stdout)
    assert "secret" not in r.stdout


@pytest.mark.parametrize("case", ["no client certificate", "client certificate from another CA"])
def test_grpc_is_refused_unavailable(member: Member, other_ca: CertPaths, case: str) -> None:
    with pytest.raises(grpc.RpcError) as e:
        _range(member, _bad_clients(member, other_ca)[case])
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, (case, e.value.code(), e.value.details())


def test_client_that_does_not_trust_the_server_ca_fails(member: Member, other_ca: CertPaths) -> None:
    """The other direction: the server's certificate is checked by the client too."""
    tls = ClientTLS(ca=other_ca.ca, cert=member.certs.client, key=member.certs.client_key)
    with pytest.raises(grpc.RpcError) as e:
        _range(member, tls)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE

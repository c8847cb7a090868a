"""Shared harness for conformance, differential, TLS, e2e tests and bench/: real processes, real sockets.

Everything a test needs to start real etcd or pyetcd with mutual TLS, talk to it with etcdctl or
gRPC, and stop it by pid. bench/ imports this package too (it puts ``tests/`` on sys.path), so
process management lives in exactly one place.

In a test (fixtures from tests/conftest.py)::

    def test_x(any_member):                      # runs on real etcd and on pyetcd
        etcdctl(any_member, "put", "k", "v")
        with grpc_channel(any_member) as ch:
            KVStub(ch).Range(RangeRequest(key=b"k"))
        any_member.kill9(); any_member.restart()

Elsewhere: ``start_real_etcd(dir, CertPaths.create(cert_dir))``, ``start_pyetcd(...)``,
``start_cluster("etcd", dir, certs, size=3)``; every Member has ``stop()`` (SIGTERM, then SIGKILL).
``PYETCD_CMD`` overrides the pyetcd command (shell words), e.g. to run a profiler around it.
"""

from support.clients import (
    Background,
    Conn,
    EtcdctlError,
    connect,
    etcdctl,
    etcdctl_argv,
    etcdctl_env,
    grpc_channel,
)
from support.member import (
    ETCD_BIN,
    ETCDCTL_BIN,
    SERVER_KINDS,
    Member,
    MemberStartError,
    pyetcd_command,
    pyetcd_unavailable_reason,
    start_cluster,
    start_member,
    start_pyetcd,
    start_real_etcd,
    stop_all,
)
from support.ports import free_port
from support.tls import CertPaths, ClientTLS

__all__ = [
    "ETCDCTL_BIN", "ETCD_BIN", "SERVER_KINDS", "Background", "CertPaths", "ClientTLS", "Conn", "EtcdctlError", "Member",
    "MemberStartError", "connect", "etcdctl", "etcdctl_argv", "etcdctl_env", "free_port", "grpc_channel", "pyetcd_command", "pyetcd_unavailable_reason", "start_cluster", "start_member",
    "start_pyetcd", "start_real_etcd", "stop_all",
]

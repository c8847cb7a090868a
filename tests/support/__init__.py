"""Shared harness for conformance, differential, TLS, e2e tests and bench/: real processes, real sockets.

Everything a test needs to start real etcd or pyetcd with mutual TLS, talk to it with etcdctl or
gRPC, and stop it by pid. bench/ imports this package too (it puts ``tests/`` on sys.path), so
process management lives in exactly one place.
"""

from support.clients import EtcdctlError, etcdctl, grpc_channel
from support.member import (
    ETCD_BIN,
    ETCDCTL_BIN,
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
    "ETCDCTL_BIN", "ETCD_BIN", "CertPaths", "ClientTLS", "EtcdctlError", "Member", "MemberStartError",
    "etcdctl", "free_port", "grpc_channel", "pyetcd_command", "pyetcd_unavailable_reason", "start_cluster", "start_member",
    "start_pyetcd", "start_real_etcd", "stop_all",
]

"""The list of client-facing services a member serves: one line per service."""

from __future__ import annotations

from pyetcd.server.etcd_server import EtcdServer
from pyetcd.server.recipes import Recipes

from .auth import AuthService
from .authguard import Identify, grpc_identity
from .cluster import ClusterService
from .election import ElectionService
from .kv import KVService
from .lease import LeaseService
from .lock import LockService
from .maintenance import MaintenanceService
from .watch import WatchService


def client_services(s: EtcdServer, identify: Identify = grpc_identity) -> list[tuple[str, object]]:
    """(service name as in the .proto, servicer) pairs; ``identify`` finds a call's client certificate."""
    recipes = Recipes(s)
    return [
        ("KV", KVService(s)),
        ("Maintenance", MaintenanceService(s)),
        ("Cluster", ClusterService(s)),
        ("Watch", WatchService(s, identify)),
        ("Lease", LeaseService(s)),
        ("Auth", AuthService(s)),
        ("Lock", LockService(recipes)),
        ("Election", ElectionService(recipes)),
    ]

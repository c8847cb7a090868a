"""The list of client-facing services a member serves: one line per service."""

from __future__ import annotations

from pyetcd.server.etcd_server import EtcdServer
from pyetcd.server.recipes import Recipes

from .auth import AuthService
from .cluster import ClusterService
from .election import ElectionService
from .kv import KVService
from .lease import LeaseService
from .lock import LockService
from .maintenance import MaintenanceService
from .watch import WatchService


def client_services(s: EtcdServer) -> list[tuple[str, object]]:
    """(service name as in the .proto, servicer) pairs."""
    recipes = Recipes(s)
    return [
        ("KV", KVService(s)),
        ("Maintenance", MaintenanceService(s)),
        ("Cluster", ClusterService(s)),
        ("Watch", WatchService(s)),
        ("Lease", LeaseService(s)),
        ("Auth", AuthService(s)),
        ("Lock", LockService(recipes)),
        ("Election", ElectionService(recipes)),
    ]

"""Build every subsystem of a member and recover it from disk.

The server owns its state here, in one place: the key-value store and its backend, the raft
log, membership, alarms, auth, leases, the watch hub and the change feed. rpc/ and the HTTP
gateway never build any of it; they call the facade (``etcd_server.EtcdServer``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pyetcd.api import internal_pb2
from pyetcd.auth.store import AuthStore
from pyetcd.mvcc import KVStore
from pyetcd.mvcc.store import Change
from pyetcd.storage.backend import DEFAULT_QUOTA, Backend
from pyetcd.storage.etcdimport import import_etcd_data_dir
from pyetcd.storage.raftlog import RaftLog
from pyetcd.watch import WatchHub

from .alarms import Alarms
from .apply import Applier
from .bootstrap import RemoteCluster, bootstrap
from .changefeed import ChangeFeed
from .config import ServerConfig
from .install import finish_interrupted_install
from .leases import ServerLeases
from .membership import Membership
from .subsystems import Subsystems, read_applied


def compose(cfg: ServerConfig, propose: Callable[[internal_pb2.InternalRequest], Awaitable[Any]],
            remote: RemoteCluster | None = None) -> Subsystems:
    """Open the stores in ``cfg.data_dir`` (``member/snap`` for the key-value store,
    ``member/raft`` for the raft log), bootstrap or join a cluster if they are new, finish a
    snapshot install a crash interrupted, and build the subsystems on them."""
    import_etcd_data_dir(cfg.data_dir)  # etcd's own data dir (bbolt + WAL), converted at first start
    member = cfg.data_dir / "member"
    raftlog = RaftLog(member / "raft")
    raftlog.load()
    finish_interrupted_install(member / "snap", raftlog)
    backend = Backend(member / "snap", cfg.quota_backend_bytes or DEFAULT_QUOTA)
    members = Membership(backend)
    raftlog.commit_at_least(read_applied(backend, raftlog)[0])  # before --force-new-cluster cuts at it
    bootstrap(cfg, raftlog, backend, members, remote)
    kv = KVStore(backend)
    applier = Applier()
    applier.register("member_attributes", members.apply_attributes)
    applier.register("member_update", members.apply_update)
    alarms = Alarms(backend)
    applier.register("alarm", alarms.apply)
    applier.guards.append(alarms.check_capped)
    auth = AuthStore(backend, token_ttl=cfg.auth_token_ttl, token_config=cfg.auth_token)
    auth.register(applier)
    leases = ServerLeases(cfg, backend, kv, applier, raftlog.member_id, propose)
    hub = WatchHub(kv)
    change_listeners: list[Callable[[list[Change]], None]] = [leases.lessor.on_changes, hub.on_changes]
    feed = ChangeFeed(change_listeners)
    return Subsystems(cfg=cfg, backend=backend, raftlog=raftlog, kv=kv, members=members, applier=applier,
                      alarms=alarms, auth=auth, leases=leases, hub=hub, feed=feed,
                      change_listeners=change_listeners)

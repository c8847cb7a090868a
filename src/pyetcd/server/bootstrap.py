"""How a member's stores come to be: a new cluster, a member joining one, a restart, or
--force-new-cluster — decided as etcd decides it.

- New data dir, ``--initial-cluster-state new``: every member of --initial-cluster with etcd's
  ids (sha1 of peer URLs and token), the cluster id from them, raft voters at index 0.
- New data dir, ``existing``: the member list and cluster id come from a running member
  (``RemoteCluster``, fetched over the peer transport by the caller); this member's id is the
  one whose peer URLs are ours; raft starts from the running members' configuration and
  catches up from the leader's log or snapshot.
- Existing data dir: the initial flags are ignored (etcd logs the same).
- ``--force-new-cluster`` on an existing data dir: this member alone, the others removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import lmdb

from pyetcd.api import internal_pb2
from pyetcd.raft import ConfState
from pyetcd.storage.backend import Backend
from pyetcd.storage.raftlog import RaftLog, WalBatch
from pyetcd.tls import ConfigError

from .config import ServerConfig
from .membership import Membership, member_id

log = logging.getLogger("pyetcd.server")


@dataclass
class RemoteCluster:
    """What a running member told us about its cluster (peer ``Members`` call)."""

    cluster_id: int
    members: list[internal_pb2.MemberRecord] = field(default_factory=list)


def local_name_urls(cfg: ServerConfig) -> list[str]:
    initial = cfg.initial_members()
    urls = initial.get(cfg.name)
    if urls is None:
        raise ConfigError(f"couldn't find local name {cfg.name!r} in the initial cluster configuration")
    if sorted(urls) != sorted(cfg.initial_advertise_peer_urls):
        raise ConfigError(f"--initial-cluster has {cfg.name}={','.join(sorted(urls))} but "
                          f"--initial-advertise-peer-urls has {','.join(sorted(cfg.initial_advertise_peer_urls))} "
                          "(they must match)")
    return urls


def bootstrap(cfg: ServerConfig, raftlog: RaftLog, backend: Backend, members: Membership,
              remote: RemoteCluster | None) -> None:
    if not raftlog.is_new:
        log.info("restarting member %x in cluster %x from %s (the initial cluster flags are ignored)",
                 raftlog.member_id, members.cluster_id, cfg.data_dir)
        if cfg.force_new_cluster:
            _force_new_cluster(raftlog, backend, members)
        return
    urls = local_name_urls(cfg)
    with _both_stores(raftlog, backend) as (rtxn, ktxn):
        if cfg.initial_cluster_state == "existing":
            if remote is None:
                raise ConfigError("--initial-cluster-state=existing needs a running member among --initial-cluster")
            mine = [m for m in remote.members if sorted(m.peer_urls) == sorted(urls)]
            if not mine:
                raise ConfigError(f"member with peer URLs {','.join(urls)} is not in the cluster's member list: "
                                  "add it first with `etcdctl member add`")
            own_id = mine[0].ID
            members.adopt(ktxn, remote.cluster_id, list(remote.members))
            # the configuration as the running members have it; the log (or the leader's
            # snapshot) then brings this member up to date, as a new voter or learner
            raftlog.bootstrap(rtxn, own_id, members.conf_state())
            log.info("joining cluster %x as member %x", remote.cluster_id, own_id)
        else:
            members.bootstrap(ktxn, cfg.initial_members(), cfg.initial_cluster_token)
            own_id = member_id(urls, cfg.initial_cluster_token)
            raftlog.bootstrap(rtxn, own_id, members.conf_state())
            log.info("starting member %x in new cluster %x", own_id, members.cluster_id)


@contextmanager
def _both_stores(raftlog: RaftLog, backend: Backend) -> Iterator[tuple[WalBatch, lmdb.Transaction]]:
    """Write transactions on the raft log and the store, committed together (raft log first)
    or not at all."""
    rtxn = raftlog.begin_write()
    ktxn = backend.begin_write()
    try:
        yield rtxn, ktxn
        rtxn.commit()
        ktxn.commit()
    except BaseException:
        rtxn.abort()
        ktxn.abort()
        raise


def _force_new_cluster(raftlog: RaftLog, backend: Backend, members: Membership) -> None:
    """This member alone: others are dropped from the member list and the raft configuration,
    uncommitted entries are discarded (as etcd's --force-new-cluster does)."""
    own = raftlog.member_id
    me = members.members.get(own)
    if me is None:
        raise ConfigError(f"--force-new-cluster: member {own:x} is not in its own member list")
    applied_conf = ConfState(voters=(own,))
    others = [m for m in members.members if m != own]
    hs, last = raftlog.hard_state, raftlog.last_index()
    with _both_stores(raftlog, backend) as (rtxn, ktxn):
        for mid in others:
            members.delete(ktxn, mid)
        raftlog.truncate_after(rtxn, hs.commit)
        raftlog.persist(rtxn, [], hs)  # its commit index as raised to what the store applied, across the reload
        raftlog.persist_conf_state(rtxn, applied_conf)
    raftlog.reload()
    members.reload()
    log.warning("forcing a new cluster: removed %d other member(s), discarded %d uncommitted entries",
                len(others), max(0, last - hs.commit))

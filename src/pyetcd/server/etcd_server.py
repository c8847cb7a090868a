"""EtcdServer: the facade that rpc/ and the HTTP gateway call — one member of a cluster.

Writes go propose -> raft -> persist -> apply (``node_loop``); reads are served from the MVCC
store, after a ReadIndex round when linearizable; lease renewals and lease queries are answered
by the leader's lessor (a follower forwards them over the peer transport, as etcd does).
Building the subsystems is ``compose``'s job, driving raft the node loop's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyetcd import ETCD_API_VERSION, errors, failpoints
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.auth import context as auth_context
from pyetcd.auth.state import AuthState
from pyetcd.auth.tokens import JWTTokens, SimpleTokens
from pyetcd.mvcc import KVStore
from pyetcd.mvcc.store import Change
from pyetcd.raft import ConfChange, ConfChangeType, Config, Message, RawNode
from pyetcd.storage.backend import DEFAULT_QUOTA
from pyetcd.storage.etcdexport import write_etcd_db
from pyetcd.watch import WatchHub

from . import kvops, node_loop, reconfig
from .alarms import Quota
from .autocompact import AutoCompactor
from .bootstrap import RemoteCluster
from .changefeed import ChangeFeed
from .compose import compose
from .config import ServerConfig
from .defraglog import DefragLog
from .install import SnapshotInstaller
from .node_loop import NodeLoop
from .ports import NoPeers, PeerSender
from .proposals import Proposals
from .storehash import store_hash
from .subsystems import Subsystems

log = logging.getLogger("pyetcd.server")

# etcd's default (--experimental-snapshot-catchup-entries): applied entries kept in the log
# after a snapshot, so a briefly lagging follower catches up from the log, not a snapshot.
SNAPSHOT_CATCHUP_ENTRIES = 5000


@dataclass
class ServerMetrics:
    """What /metrics reports of the server, read at scrape time."""

    member_id: int
    version: str
    has_leader: bool
    is_leader: bool
    leader_changes: int
    committed: int
    applied: int
    proposals_pending: int
    proposals_failed: int
    db_size: int
    db_size_in_use: int
    keys: int
    quota_bytes: int


@dataclass
class StatusInfo:
    leader: int
    raft_index: int
    raft_term: int
    applied_index: int
    is_learner: bool
    db_size: int
    db_size_in_use: int
    errors: list[str]


class EtcdServer:
    def __init__(self, cfg: ServerConfig, peers: PeerSender | None = None,
                 remote: RemoteCluster | None = None) -> None:
        self.cfg = cfg
        self.peers: PeerSender = peers or NoPeers()
        self.parts: Subsystems = compose(cfg, self.propose, remote)
        parts = self.parts
        self.id = parts.raftlog.member_id
        applied, _ = parts.applied
        self.proposals = Proposals(self.id, cfg.request_timeout)
        node = RawNode(Config(id=self.id, storage=parts.raftlog, election_tick=cfg.election_ticks,
                              heartbeat_tick=1, applied=applied, lazy_commit=node_loop.COMMIT_NEWS_DELAY > 0,
                              stable_news=node_loop.STABLE_NEWS))
        self.installer = SnapshotInstaller(parts)
        self.loop = NodeLoop(parts, node, self.peers, self.installer, self.proposals,
                             tick_seconds=cfg.heartbeat_interval_ms / 1000.0, snapshot_count=cfg.snapshot_count,
                             catchup_entries=cfg.snapshot_catchup_entries or SNAPSHOT_CATCHUP_ENTRIES)
        self.loop.leader_listeners.append(parts.leases.on_leader)
        self.quota = Quota(parts.backend, cfg.quota_backend_bytes or DEFAULT_QUOTA, self.id, self.propose)
        self.peers.set_peers(parts.members.peer_urls(exclude=self.id))
        self.autocompactor = AutoCompactor.from_config(
            cfg.auto_compaction_mode, cfg.auto_compaction_retention, current_rev=lambda: self.kv.current_rev,
            compact=lambda rev: self.compact(rpc_pb2.CompactionRequest(revision=rev)),
            is_leader=lambda: self.is_leader)
        self._stopped = False
        self.proposals_failed = 0  # dropped, timed out or stopped before applied (for /metrics)

    # ---- what the rest of the process reads -------------------------------------------------
    @property
    def cluster_id(self) -> int:
        return self.parts.members.cluster_id

    @property
    def term(self) -> int:
        return self.loop.term

    @property
    def leader(self) -> int:
        return self.loop.leader

    @property
    def is_leader(self) -> bool:
        return self.loop.is_leader

    @property
    def kv(self) -> KVStore:
        return self.parts.kv

    @property
    def watch_hub(self) -> WatchHub:
        return self.parts.hub

    @property
    def change_feed(self) -> ChangeFeed:
        return self.parts.feed

    @property
    def change_listeners(self) -> list[Callable[[list[Change]], None]]:
        return self.parts.change_listeners

    @property
    def version(self) -> str:
        return ETCD_API_VERSION

    @property
    def removed(self) -> asyncio.Event:
        """Set when this member was removed from the cluster: the process should stop."""
        return self.loop.removed

    @property
    def failed(self) -> asyncio.Event:
        """Set when the raft node loop died of an error: the process must stop (and say so)."""
        return self.loop.failed

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Run the node loop and return once a leader is known (with several members, that
        needs the peer transport serving already)."""
        self.loop.start()
        if self.loop.conf_state.voters == (self.id,):
            self.loop.campaign()
        await self.loop.ready_event.wait()
        asyncio.create_task(self._publish_attributes())
        if self.autocompactor is not None:
            self.autocompactor.start()

    async def _publish_attributes(self) -> None:
        attrs = internal_pb2.MemberAttributes(ID=self.id, name=self.cfg.name,
                                              client_urls=self.cfg.advertise_client_urls)
        for _ in range(30):
            try:
                await self.propose(internal_pb2.InternalRequest(member_attributes=attrs))
                log.info("published local member to cluster through raft")
                return
            except errors.EtcdError as e:
                if self._stopped:
                    return
                log.warning("failed to publish member attributes: %s (retrying)", e)
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        self._stopped = True
        if self.autocompactor is not None:
            await self.autocompactor.stop()
        await self.parts.leases.stop()
        await self.installer.stop()
        await self.loop.stop()
        self.proposals.fail_all(errors.ErrStopped())
        await self.parts.hub.close()
        self.parts.close()

    # ---- proposals ---------------------------------------------------------------------------
    def header(self, revision: int | None = None) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(cluster_id=self.cluster_id, member_id=self.id, raft_term=self.term,
                                      revision=self.kv.current_rev if revision is None else revision)

    def member_header(self) -> rpc_pb2.ResponseHeader:
        """The header etcd's Cluster service answers with: ids and term, no revision."""
        return rpc_pb2.ResponseHeader(cluster_id=self.cluster_id, member_id=self.id, raft_term=self.term)

    def fill_header(self, h: rpc_pb2.ResponseHeader) -> rpc_pb2.ResponseHeader:
        """etcd's header.fill: ids and term always; the revision only where apply left none."""
        h.cluster_id, h.member_id, h.raft_term = self.cluster_id, self.id, self.term
        if not h.revision:
            h.revision = self.kv.current_rev
        return h

    async def propose(self, req: internal_pb2.InternalRequest) -> Any:
        """Replicate ``req`` and wait until it is applied; returns its response or raises its error."""
        rid = self._request_id()
        req.header.ID = rid
        who = auth_context.current.get()
        if who is not None:  # the caller as the rpc guard resolved it: re-checked at apply
            req.header.username, req.header.auth_revision = who.username, who.revision
        data = req.SerializeToString()
        if len(data) > self.cfg.max_request_bytes:
            raise errors.ErrRequestTooLarge()
        fut = self.proposals.register(rid)
        self.loop.propose(rid, data)
        return await self._applied(rid, fut)

    async def _applied(self, rid: int, fut: asyncio.Future[Any]) -> Any:
        """The applied result of proposal ``rid``; failures are counted for /metrics."""
        try:
            return await fut
        except (errors.ErrTimeout, errors.ErrNoLeader, errors.ErrStopped):
            self.proposals_failed += 1
            raise
        finally:
            self.proposals.forget(rid)

    async def _change_membership(self, kind: ConfChangeType, node_id: int,
                                 member: internal_pb2.MemberRecord | None = None) -> list[rpc_pb2.Member]:
        rid = self._request_id()
        ctx = internal_pb2.ConfChangeContext(request_id=rid, member=member)
        fut = self.proposals.register(rid)
        self.loop.propose_conf_change(rid, ConfChange(kind, node_id, ctx.SerializeToString()))
        members: list[rpc_pb2.Member] = await self._applied(rid, fut)
        return members

    def _request_id(self) -> int:
        if self._stopped:
            raise errors.ErrStopped()
        return self.proposals.ids.next()

    async def linearizable_read(self) -> None:
        """Wait until this member has applied everything committed when the read began (ReadIndex),
        unless it is the only voter and leads (NodeLoop.reads_are_local)."""
        if self.loop.reads_are_local:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.proposals.deadlines.track(fut)
        self.loop.read(fut)
        await fut

    # ---- KV ------------------------------------------------------------------------------------
    async def range(self, r: rpc_pb2.RangeRequest) -> kvops.RangeReply:
        if not r.serializable:
            await self.linearizable_read()
        if failpoints.hit("bug.stale_read") and not r.revision:  # deliberate bug (selftest): an old view
            r.revision = max(1, self.kv.compact_rev, self.kv.current_rev - 3)
        return kvops.execute_range(self.kv, r)

    async def put(self, r: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        await self.quota.check(r)
        resp: rpc_pb2.PutResponse = await self.propose(internal_pb2.InternalRequest(put=r))
        self.fill_header(resp.header)
        return resp

    async def delete_range(self, r: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        resp: rpc_pb2.DeleteRangeResponse = await self.propose(internal_pb2.InternalRequest(delete_range=r))
        self.fill_header(resp.header)
        return resp

    async def txn(self, r: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        if kvops.is_txn_read_only(r):
            if not kvops.txn_serializable(r):
                await self.linearizable_read()
            path = kvops.compare_path(self.kv, r)
            kvops.check_txn(self.kv, r, path, None)
            resp = rpc_pb2.TxnResponse()
            kvops.execute_txn_ops(self.kv, r, path, resp)
            resp.header.revision = self.kv.current_rev
        else:
            await self.quota.check(r)
            req = internal_pb2.InternalRequest()
            req.txn.CopyFrom(r)  # not InternalRequest(txn=r): that merges by re-parsing, within upb's 100 levels
            resp = await self.propose(req)
        self.fill_header(resp.header)
        return resp

    async def compact(self, r: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        resp: rpc_pb2.CompactionResponse = await self.propose(internal_pb2.InternalRequest(compaction=r))
        self.fill_header(resp.header)
        return resp

    # ---- leases --------------------------------------------------------------------------------
    def new_lease_id(self) -> int:
        return self.parts.leases.ids.next()

    async def lease_grant(self, r: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        if r.ID == 0:  # no id given: the server chooses one (positive, never 0)
            r.ID = self.new_lease_id()
        await self.quota.check(r)
        resp: rpc_pb2.LeaseGrantResponse = await self.propose(internal_pb2.InternalRequest(lease_grant=r))
        self.fill_header(resp.header)
        return resp

    async def lease_revoke(self, r: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        resp: rpc_pb2.LeaseRevokeResponse = await self.propose(internal_pb2.InternalRequest(lease_revoke=r))
        self.fill_header(resp.header)
        return resp

    def lease_keys(self, lease_id: int) -> list[bytes]:
        """The keys attached to a lease, as this member knows them (auth checks use them)."""
        lease = self.parts.leases.lessor.lookup(lease_id)
        return sorted(lease.keys) if lease is not None else []

    async def lease_renew(self, r: rpc_pb2.LeaseKeepAliveRequest) -> rpc_pb2.LeaseKeepAliveResponse:
        """KeepAlive: the leader restarts the lease's countdown; a follower forwards to it."""
        if not self.is_leader:
            return await self._on_leader(self.peers.forward_keepalive, r)
        # the header is taken before the renewal, as etcd does: a revoke at revision R
        # is never followed by a keep-alive answer claiming success at a revision > R
        resp = rpc_pb2.LeaseKeepAliveResponse(ID=r.ID, header=self.header())
        try:
            resp.TTL = await self.parts.leases.lessor.renew(r.ID)
        except errors.ErrLeaseNotFound:
            resp.TTL = 0
        return resp

    async def lease_time_to_live(self, r: rpc_pb2.LeaseTimeToLiveRequest) -> rpc_pb2.LeaseTimeToLiveResponse:
        if not self.is_leader:
            return await self._on_leader(self.peers.forward_time_to_live, r)
        lessor = self.parts.leases.lessor
        resp = rpc_pb2.LeaseTimeToLiveResponse(ID=r.ID)
        lease = lessor.lookup(r.ID)
        if lease is None:
            resp.TTL = -1  # etcd answers an unknown lease with TTL -1, not an error
        else:
            resp.TTL = lessor.remaining_seconds(lease)
            resp.grantedTTL = lease.ttl
            if r.keys:
                resp.keys.extend(sorted(lease.keys))
        self.fill_header(resp.header)
        return resp

    async def lease_leases(self, r: rpc_pb2.LeaseLeasesRequest) -> rpc_pb2.LeaseLeasesResponse:
        if not self.is_leader:
            return await self._on_leader(self.peers.forward_leases, r)
        resp = rpc_pb2.LeaseLeasesResponse()
        resp.leases.extend(rpc_pb2.LeaseStatus(ID=lease.id) for lease in self.parts.leases.lessor.by_expiry())
        self.fill_header(resp.header)
        return resp

    async def _on_leader(self, forward: Callable[[int, Any], Awaitable[Any]], r: Any) -> Any:
        """A lease call answered by the leader's lessor (only the leader runs lease clocks)."""
        resp = await forward(self._leader_or_fail(), r)
        self.fill_header(resp.header)
        return resp

    def _leader_or_fail(self) -> int:
        if not self.leader:
            raise errors.ErrNoLeader()
        return self.leader

    # ---- membership ----------------------------------------------------------------------------
    async def member_list(self, linearizable: bool) -> list[rpc_pb2.Member]:
        if linearizable:
            await self.linearizable_read()
        return self.parts.members.as_proto()

    async def member_add(self, peer_urls: list[str], is_learner: bool) -> tuple[rpc_pb2.Member, list[rpc_pb2.Member]]:
        members = self.parts.members
        rec = members.new_member(peer_urls, is_learner)
        if self.cfg.strict_reconfig_check and not is_learner:
            reconfig.check_add(members.members, self.id, self.peers)
        kind = ConfChangeType.ADD_LEARNER_NODE if is_learner else ConfChangeType.ADD_NODE
        after = await self._change_membership(kind, rec.ID, rec)
        added = rpc_pb2.Member(ID=rec.ID, peerURLs=list(rec.peer_urls), isLearner=rec.is_learner)
        return added, after

    async def member_remove(self, member_id: int) -> list[rpc_pb2.Member]:
        members = self.parts.members
        members.check_remove(member_id, self.id)
        if self.cfg.strict_reconfig_check:
            reconfig.check_remove(members.members, member_id, self.id, self.peers)
        return await self._change_membership(ConfChangeType.REMOVE_NODE, member_id)

    async def member_update(self, r: rpc_pb2.MemberUpdateRequest) -> list[rpc_pb2.Member]:
        self.parts.members.check_update(r)
        resp: rpc_pb2.MemberUpdateResponse = await self.propose(internal_pb2.InternalRequest(member_update=r))
        return list(resp.members)

    async def member_promote(self, member_id: int) -> list[rpc_pb2.Member]:
        members = self.parts.members
        members.check_promote(member_id)
        if not await self._learner_ready(member_id):
            raise errors.ErrLearnerNotReady()
        if self.cfg.strict_reconfig_check:
            reconfig.check_promote(members.members)
        return await self._change_membership(ConfChangeType.ADD_NODE, member_id)

    async def _learner_ready(self, member_id: int) -> bool:
        """etcd's isLearnerReady: the learner's log matches at least 90 % of the leader's;
        only the leader knows (a follower asks it over the peer transport)."""
        if self.is_leader:
            return self.learner_ready_here(member_id)
        return await self.peers.learner_ready(self._leader_or_fail(), member_id)

    def learner_ready_here(self, member_id: int) -> bool:
        if not self.is_leader:
            raise errors.ErrNotLeader()
        progress = self.loop.node.status().progress
        learner, leader = progress.get(member_id), progress.get(self.id)
        if learner is None or leader is None:
            return True  # not a member of raft's configuration: apply decides
        return learner.match >= leader.match * reconfig.LEARNER_READY_PERCENT

    def peer_status(self, member_id: int) -> str | None:
        members = self.parts.members
        if member_id in members.removed:
            return "the member has been permanently removed from the cluster"
        if member_id not in members.members:
            return f"member {member_id:x} is not (yet) in this member's member list"
        return None

    def step(self, m: Message) -> None:
        """A raft message from a peer: into the node loop's inbox."""
        self.loop.step(m)

    def report_unreachable(self, member_id: int) -> None:
        self.loop.report_unreachable(member_id)

    def snapshot_receive_path(self, index: int) -> Path:
        return self.installer.receive_path(index)

    def members_snapshot(self) -> tuple[int, list[internal_pb2.MemberRecord]]:
        """Cluster id and member records, for a member joining through the peer transport."""
        return self.cluster_id, list(self.parts.members.members.values())

    # ---- maintenance ---------------------------------------------------------------------------
    def status(self) -> StatusInfo:
        sizes = self.parts.backend.sizes()
        me = self.parts.members.members.get(self.id)
        return StatusInfo(leader=self.leader, raft_index=self.loop.commit_index, raft_term=self.term,
                          applied_index=self.loop.applied_index, is_learner=bool(me and me.is_learner),
                          db_size=sizes.db_size, db_size_in_use=sizes.db_size_in_use,
                          errors=[_alarm_text(a) for a in self.parts.alarms.members()])

    def metrics(self) -> ServerMetrics:
        loop, sizes = self.loop, self.parts.backend.sizes()
        return ServerMetrics(
            member_id=self.id, version=self.version, has_leader=bool(self.leader), is_leader=self.is_leader,
            leader_changes=loop.leader_changes, committed=loop.commit_index, applied=loop.applied_index,
            proposals_pending=len(self.proposals), proposals_failed=self.proposals_failed,
            db_size=sizes.db_size, db_size_in_use=sizes.db_size_in_use,
            keys=self.kv.index.live_count(), quota_bytes=self.quota.quota)

    def observe_commits(self, wal: Callable[[float], None], backend: Callable[[float], None]) -> None:
        """Call ``wal`` with the seconds each raft log commit (fsync) took, ``backend`` with the store's."""
        self.loop.wal_observers.append(wal)
        self.loop.backend_observers.append(backend)

    def alarms(self) -> list[rpc_pb2.AlarmMember]:
        return self.parts.alarms.members()

    async def alarm(self, r: rpc_pb2.AlarmRequest) -> rpc_pb2.AlarmResponse:
        # every alarm request, GET included, goes through raft as in etcd
        resp: rpc_pb2.AlarmResponse = await self.propose(internal_pb2.InternalRequest(alarm=r))
        resp.header.CopyFrom(self.header())
        return resp

    def store_hash(self) -> int:
        """Maintenance.Hash: the whole replicated store (storehash.py says what it covers). On the
        event loop, like HashKV: no defragmentation can swap the file meanwhile."""
        return store_hash(self.parts.backend)

    def hash_kv(self, revision: int) -> tuple[int, int, int]:
        """(hash, revision it covers, compact revision), as etcd's HashKV."""
        return self.kv.hash_kv(revision)

    async def defragment(self) -> None:
        """Rewrite the backend compactly, as etcd's defrag: writes wait, reads go on meanwhile.

        The copy runs on the apply thread while no turn can start; the swap (close, rename,
        reopen) runs on the event loop, where no read transaction can be open at that moment."""
        backend = self.parts.backend
        async with self.loop.disk:
            report = DefragLog(log, backend)
            tmp = await self.loop.run_on_apply_thread(lambda: backend.defrag_copy(report.progress))
            backend.defrag_swap(tmp)
            report.finished()

    def snapshot_to(self, dest: Path) -> None:
        """The store as etcd's bbolt file ``dest`` (Maintenance.Snapshot), from one read
        transaction: `etcdctl snapshot status/restore` read it, real etcd starts on it."""
        write_etcd_db(self.parts.backend, dest)

    @property
    def scratch_dir(self) -> Path:
        """Where large temporary files go: beside the store (a tmpfs /tmp would hold them in memory)."""
        return self.parts.backend.path

    async def move_leader(self, transferee: int) -> None:
        """etcd's MoveLeader: only the leader may hand leadership to a voting member."""
        if not self.is_leader:
            raise errors.ErrNotLeader()
        member = self.parts.members.members.get(transferee)
        if member is None or member.is_learner:
            raise errors.ErrBadLeaderTransferee()
        log.info("leadership transfer starting: %x -> %x", self.id, transferee)
        self.loop.transfer_leader(transferee)
        deadline = time.monotonic() + self.cfg.request_timeout
        tick = self.cfg.heartbeat_interval_ms / 1000.0
        while self.leader != transferee:
            if time.monotonic() > deadline:
                raise errors.ErrTimeoutLeaderTransfer()
            await asyncio.sleep(tick)
        log.info("leadership transfer finished: %x -> %x", self.id, transferee)

    # ---- auth ----------------------------------------------------------------------------------
    @property
    def auth_state(self) -> AuthState:
        """The auth store as of the last applied entry (an immutable value)."""
        return self.parts.auth.state

    @property
    def auth_tokens(self) -> SimpleTokens | JWTTokens:
        return self.parts.auth.tokens


_ALARM_NAMES = {v: k for k, v in rpc_pb2.AlarmType.items()}


def _alarm_text(a: rpc_pb2.AlarmMember) -> str:
    """etcd's AlarmMember.String(), as Status lists raised alarms in ``errors`` (an alarm type
    etcd has no name for is printed as its number, as gogo's EnumName does)."""
    return f"memberID:{a.memberID} alarm:{_ALARM_NAMES.get(a.alarm, a.alarm)} "

"""EtcdServer: one member. Proposals go propose -> raft -> persist -> apply, reads are served
from the MVCC store (after a ReadIndex round when linearizable).

The node loop is an asyncio task. Each turn it feeds the raft core (ticks, proposals, read
requests), then handles every Ready: the persist and the apply of committed entries happen
in ONE LMDB write transaction on the apply thread (one fsync for everything ready: group
commit); once durable, the batch is published on the event loop (index, leases, watchers),
waiting clients are answered, and the core is told with ``advance``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pyetcd import ETCD_API_VERSION, errors, failpoints
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.auth import context as auth_context
from pyetcd.auth.store import AuthStore
from pyetcd.mvcc import KVStore
from pyetcd.mvcc.store import Change
from pyetcd.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    EntryType,
    ProposalDroppedError,
    RawNode,
    Ready,
    StateType,
)
from pyetcd.storage.backend import DEFAULT_QUOTA, META, Backend
from pyetcd.storage.raftlog import RaftLog

from . import kvops
from .alarms import Alarms, Quota
from .apply import Applier
from .batch import AppliedResult, ApplyBatch, RaftOutput, needs_disk
from .config import ServerConfig
from .leases import ServerLeases
from .membership import Membership, member_id
from .waiting import Deadlines, Wakeup

log = logging.getLogger("pyetcd.server")

_U64 = struct.Struct(">Q")
_META_APPLIED = b"consistent_index"
_META_APPLIED_TERM = b"term"
# Keep this many applied entries in the raft log (etcd's SnapshotCatchUpEntries).
_LOG_KEEP = 5000
# ... but never more than this many bytes of them: large values would otherwise fill the
# environment and memory (etcd keeps its WAL in separate files; ours shares the LMDB map).
_LOG_MAX_BYTES = 64 * 1024 * 1024
_LOG_KEEP_WHEN_LARGE = 16
# A turn drains Readies until the core is quiet; this bounds it should the core never be.
_MAX_READIES_PER_TURN = 64


@dataclass
class StatusInfo:
    leader: int
    raft_index: int
    raft_term: int
    applied_index: int


class EtcdServer:
    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.backend = Backend(cfg.data_dir / "member" / "snap", cfg.quota_backend_bytes or DEFAULT_QUOTA)
        self.kv = KVStore(self.backend)
        self.raftlog = RaftLog(self.backend)
        self.raftlog.load()
        self.members = Membership(self.backend)
        self.applier = Applier()
        self.applier.register("member_attributes", self.members.apply_attributes)
        self.applier.register("member_update", self.members.apply_update)
        self.alarms = Alarms(self.backend)
        self.applier.register("alarm", self.alarms.apply)
        self.applier.guards.append(self.alarms.check_capped)
        self.auth = AuthStore(self.backend, token_ttl=cfg.auth_token_ttl)
        self.auth.register(self.applier)
        initial = cfg.initial_members()
        self.id = member_id(initial.get(cfg.name, cfg.initial_advertise_peer_urls), cfg.initial_cluster_token)
        if self.raftlog.is_new:
            self._bootstrap(initial)
        self.quota = Quota(self.backend, cfg.quota_backend_bytes or DEFAULT_QUOTA, self.id, self.propose)
        self.conf_state = self.raftlog.snapshot().metadata.conf_state
        self.applied_index, self.applied_term = self._load_applied()
        self.node = RawNode(Config(id=self.id, storage=self.raftlog,
                                   election_tick=max(2, cfg.election_timeout_ms // cfg.heartbeat_interval_ms),
                                   heartbeat_tick=1, applied=self.applied_index))
        self.term = self.raftlog.hard_state.term
        self.commit_index = self.raftlog.hard_state.commit
        self.leader = 0
        self._apply_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply")
        self._ids = itertools.count((time.time_ns() >> 16) << 16)
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._proposals: list[tuple[int, bytes]] = []
        self._conf_proposals: list[tuple[int, ConfChange]] = []
        self._reads: list[asyncio.Future[None]] = []
        self._read_waiting: dict[bytes, list[asyncio.Future[None]]] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._read_seq = itertools.count(1)
        self._wake = Wakeup()
        self._deadlines = Deadlines(cfg.request_timeout, errors.ErrTimeout)
        self._disk = asyncio.Lock()  # held by a turn's write transaction, or by defragmentation
        self._deferred_txn: Any = None  # only ever set by the selftest's deliberate bug.ack_before_commit
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.change_listeners: list[Callable[[list[Change]], None]] = []
        self.leader_listeners: list[Callable[[bool], None]] = []
        self.ready_event = asyncio.Event()
        self.leases = ServerLeases(self)

    # ---- bootstrap and recovery ---------------------------------------------------------
    def _bootstrap(self, initial: dict[str, list[str]]) -> None:
        txn = self.backend.begin_write()
        try:
            self.members.bootstrap(txn, initial, self.cfg.initial_cluster_token)
            self.raftlog.bootstrap(txn, ConfState(voters=tuple(sorted(self.members.members))))
            txn.commit()
        except BaseException:
            txn.abort()
            raise

    def _load_applied(self) -> tuple[int, int]:
        meta = self.backend.db(META)
        with self.backend.read() as txn:
            raw = txn.get(_META_APPLIED, db=meta)
            raw_term = txn.get(_META_APPLIED_TERM, db=meta)
        index = _U64.unpack(bytes(raw))[0] if raw is not None else 0
        term = _U64.unpack(bytes(raw_term))[0] if raw_term is not None else 0
        return max(index, self.raftlog.snapshot().metadata.index), term

    @property
    def cluster_id(self) -> int:
        return self.members.cluster_id

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="raft-node-loop")
        if self.conf_state.voters == (self.id,):
            self.node.campaign()
            self._wake.set()
        await self.ready_event.wait()
        asyncio.create_task(self._publish_attributes())

    async def _publish_attributes(self) -> None:
        attrs = internal_pb2.MemberAttributes(ID=self.id, name=self.cfg.name,
                                              client_urls=self.cfg.advertise_client_urls)
        try:
            await self.propose(internal_pb2.InternalRequest(member_attributes=attrs))
            log.info("published local member to cluster through raft")
        except errors.EtcdError as e:
            log.warning("failed to publish member attributes: %s", e)

    async def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        await self.leases.stop()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        self._deadlines.fail_all(errors.ErrStopped())
        self._apply_thread.shutdown(wait=True)
        self.backend.close()

    # ---- client-facing -------------------------------------------------------------------
    def header(self, revision: int | None = None) -> rpc_pb2.ResponseHeader:
        return rpc_pb2.ResponseHeader(cluster_id=self.cluster_id, member_id=self.id, raft_term=self.term,
                                      revision=self.kv.current_rev if revision is None else revision)

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
        self._proposals.append((rid, data))
        return await self._wait_applied(rid)

    async def change_membership(self, kind: ConfChangeType, node_id: int,
                                member: internal_pb2.MemberRecord | None = None) -> list[rpc_pb2.Member]:
        """Replicate a raft conf change and wait until it is applied; returns the members after it."""
        rid = self._request_id()
        ctx = internal_pb2.ConfChangeContext(request_id=rid, member=member)
        self._conf_proposals.append((rid, ConfChange(kind, node_id, ctx.SerializeToString())))
        members: list[rpc_pb2.Member] = await self._wait_applied(rid)
        return members

    def _request_id(self) -> int:
        if self._stopped:
            raise errors.ErrStopped()
        return next(self._ids)

    async def _wait_applied(self, rid: int) -> Any:
        """Wake the node loop for the request just queued and wait for its applied result."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self._wake.set()
        try:
            return await self._deadlines.track(fut)
        finally:
            self._waiters.pop(rid, None)

    async def linearizable_read(self) -> None:
        """Wait until this member has applied everything committed when the read began (ReadIndex)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reads.append(fut)
        self._wake.set()
        await self._deadlines.track(fut)

    def range(self, r: rpc_pb2.RangeRequest) -> kvops.RangeReply:
        if failpoints.hit("bug.stale_read") and not r.revision:  # deliberate bug (selftest): an old view
            r.revision = max(1, self.kv.compact_rev, self.kv.current_rev - 3)
        return kvops.execute_range(self.kv, r)

    def txn_read_only(self, t: rpc_pb2.TxnRequest) -> rpc_pb2.TxnResponse:
        path = kvops.compare_path(self.kv, t)
        kvops.check_txn(self.kv, t, path, None)
        resp = rpc_pb2.TxnResponse()
        kvops.execute_txn_ops(self.kv, t, path, resp)
        resp.header.revision = self.kv.current_rev
        return resp

    async def defragment(self) -> None:
        """Rewrite the backend compactly, as etcd's defrag: writes wait, reads go on meanwhile.

        The copy runs on the apply thread while no turn can start; the swap (close, rename,
        reopen) runs on the event loop, where no read transaction can be open at that moment."""
        async with self._disk:
            tmp = await asyncio.get_running_loop().run_in_executor(self._apply_thread, self.backend.defrag_copy)
            self.backend.defrag_swap(tmp)

    def status(self) -> StatusInfo:
        return StatusInfo(leader=self.leader, raft_index=self.commit_index, raft_term=self.term,
                          applied_index=self.applied_index)

    @property
    def version(self) -> str:
        return ETCD_API_VERSION

    @property
    def is_leader(self) -> bool:
        return self.leader == self.id

    # ---- the node loop -------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self.cfg.heartbeat_interval_ms / 1000.0
        next_tick = loop.time() + tick
        while not self._stopped:
            await self._wake.wait(max(0.0, next_tick - loop.time()))
            now = loop.time()
            if now >= next_tick:
                self._deadlines.expire(now)
            while now >= next_tick:
                self.node.tick()
                next_tick += tick
            self._feed_proposals()
            self._feed_reads()
            if self.node.has_ready() and not self._stopped:
                rd = self.node.ready()
                if needs_disk(rd):
                    async with self._disk:
                        batch = await loop.run_in_executor(self._apply_thread, self._turn, rd)
                    self._publish(batch)
                else:  # only read states, leadership news or messages: no transaction needed
                    out = RaftOutput()
                    out.absorb(rd)
                    self.node.advance(rd)
                    self._publish_raft(out)
                    self._serve_reads(out)

    def _feed_proposals(self) -> None:
        props, self._proposals = self._proposals, []
        for rid, data in props:
            try:
                self.node.propose(data)
            except ProposalDroppedError:
                self._fail(rid, errors.ErrNoLeader())
        confs, self._conf_proposals = self._conf_proposals, []
        for rid, cc in confs:
            try:
                self.node.propose_conf_change(cc)
            except ProposalDroppedError:  # no leader, or a change is still pending
                self._fail(rid, errors.ErrNoLeader() if not self.leader else errors.ErrTimeout())

    def _fail(self, rid: int, err: errors.EtcdError) -> None:
        fut = self._waiters.get(rid)
        if fut is not None and not fut.done():
            fut.set_exception(err)

    def _feed_reads(self) -> None:
        if not self._reads:
            return
        reads, self._reads = self._reads, []
        ctx = _U64.pack(next(self._read_seq))
        self._read_waiting[ctx] = reads
        self.node.read_index(ctx)

    def _turn(self, first: Ready) -> ApplyBatch:
        """Apply thread: drain every Ready into ONE write transaction, then commit it (one fsync).

        The apply thread owns the raft node for the turn (the event loop only queues proposals
        meanwhile). Each Ready's entries and hard state are written, its committed entries
        applied, and ``advance`` is called before the commit: the core may then commit what this
        turn persisted (a single voter does at once) and hand it out in the next Ready of the same
        turn. That is safe because nothing of the turn leaves the process before the commit:
        messages, client answers and read states wait in the batch until it is durable, and if
        the commit fails the member stops.
        """
        failpoints.hit("turn.before_persist")
        if self._deferred_txn is not None:  # deliberate bug only (see below): the previous turn commits now
            self._deferred_txn.commit()
            self._deferred_txn = None
        txn = self.backend.begin_write()
        try:
            batch = ApplyBatch(txn=txn, kv=self.kv.writer(txn))
            rd: Ready | None = first
            for _ in range(_MAX_READIES_PER_TURN):
                if rd is None:
                    break
                self.raftlog.persist(txn, rd.entries, rd.hard_state,
                                     rd.snapshot.metadata if rd.snapshot is not None else None)
                self.raftlog.publish(rd.entries, rd.hard_state)  # the core reads its log through this
                self._apply_committed(batch, rd)
                batch.raft.absorb(rd)
                self.node.advance(rd)
                rd = self.node.ready() if self.node.has_ready() else None
            if batch.applied_index:
                meta = self.backend.db(META)
                txn.put(_META_APPLIED, _U64.pack(batch.applied_index), db=meta)
                txn.put(_META_APPLIED_TERM, _U64.pack(batch.applied_term), db=meta)
                self._maybe_compact_log(batch)
            batch.kv.finish()
            if failpoints.hit("bug.ack_before_commit"):  # deliberate bug (selftest): answer now, commit next turn
                self._deferred_txn = txn
                return batch
            txn.commit()
            failpoints.hit("turn.after_persist")
            self.backend.refresh_size()
            return batch
        except BaseException:
            txn.abort()
            log.critical("persisting a raft turn failed; the member must stop", exc_info=True)
            os._exit(2)  # the core already advanced past state that is not on disk: never continue

    def _apply_committed(self, batch: ApplyBatch, rd: Ready) -> None:
        applied = max(self.applied_index, batch.applied_index)
        for entry in rd.committed_entries:
            if entry.index <= applied:
                continue
            failpoints.hit("apply.before")
            if entry.type == EntryType.NORMAL and entry.data:
                batch.entry_index = entry.index
                self._apply_entry(batch, entry.data)
            elif entry.type == EntryType.CONF_CHANGE:
                self._apply_conf_change(batch, entry.data)
            batch.applied_index, batch.applied_term = entry.index, entry.term

    def _apply_conf_change(self, batch: ApplyBatch, data: bytes) -> None:
        """Apply thread (which owns the node during a turn): the core and the member list change together."""
        cc = ConfChange.decode(data)
        ctx = internal_pb2.ConfChangeContext.FromString(cc.context)
        conf_state = self.node.apply_conf_change(cc)
        self.raftlog.persist_conf_state(batch.txn, conf_state)
        members = self.members.apply_conf_change(batch, cc, ctx)
        batch.on_publish(lambda: setattr(self, "conf_state", conf_state))
        batch.results.append(AppliedResult(ctx.request_id, response=members))

    def _apply_entry(self, batch: ApplyBatch, data: bytes) -> None:
        req = internal_pb2.InternalRequest.FromString(data)
        result = AppliedResult(req.header.ID)
        try:
            result.response = self.applier.apply(batch, req)
        except errors.EtcdError as e:
            result.error = e
        batch.results.append(result)

    def _maybe_compact_log(self, batch: ApplyBatch) -> None:
        first = self.raftlog.first_index()
        too_large = self.raftlog.bytes_since_compaction >= _LOG_MAX_BYTES
        if batch.applied_index - first < 2 * _LOG_KEEP and not too_large:
            return
        index = max(first, batch.applied_index - (_LOG_KEEP_WHEN_LARGE if too_large else _LOG_KEEP))
        term = self.raftlog.term(index)
        self.raftlog.persist_compaction(batch.txn, index, term, self.conf_state)
        self.raftlog.publish_compaction(index, self.conf_state)

    def _publish(self, batch: ApplyBatch) -> None:
        """Event loop, after the commit: make the batch visible and answer its clients."""
        self.kv.publish(batch.kv)
        for hook in batch.publish_hooks:
            hook()
        if batch.applied_index:
            self.applied_index = batch.applied_index
        self._publish_raft(batch.raft)
        if batch.changes:
            for listen in self.change_listeners:
                listen(batch.changes)
        for res in batch.results:
            fut = self._waiters.get(res.request_id)
            if fut is None or fut.done():
                continue
            if res.error is not None:
                fut.set_exception(res.error)
            else:
                fut.set_result(res.response)
        self._serve_reads(batch.raft)

    def _publish_raft(self, out: RaftOutput) -> None:
        """Act on the core's outputs once they are durable: term and leadership."""
        # (messages to peers, out.messages, would be sent here: after the persist)
        if out.hard_state is not None:
            self.term = out.hard_state.term
            self.commit_index = out.hard_state.commit
        if out.soft_state is not None:
            was_leader = self.is_leader
            self.leader = out.soft_state.lead
            if out.soft_state.raft_state == StateType.LEADER or self.leader:
                self.ready_event.set()
            if was_leader != self.is_leader:
                for listener in self.leader_listeners:
                    listener(self.is_leader)

    def _serve_reads(self, out: RaftOutput) -> None:
        for rs in out.read_states:
            waiting = self._read_waiting.pop(rs.request_ctx, None)
            if waiting is not None:
                self._applied_waiters.extend((rs.index, f) for f in waiting)
        if self._applied_waiters:
            still = []
            for index, fut in self._applied_waiters:
                if fut.done():
                    continue
                if index <= self.applied_index:
                    fut.set_result(None)
                else:
                    still.append((index, fut))
            self._applied_waiters = still

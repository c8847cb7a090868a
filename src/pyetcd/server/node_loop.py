"""The node loop: the only code that drives the raft node.

Everything that reaches the core goes through ONE inbox, drained once per turn: client
proposals and conf changes, read requests, messages from peers, and the transport's reports
(unreachable peer, snapshot status), plus leadership transfers and campaigns. Handlers on the
event loop only queue; the apply thread owns the node while a turn persists and applies.

A turn: tick, drain the inbox into the core, then take every Ready. The raft side (entries,
hard state, compaction) is written in one transaction of the raft log's environment and the
applied entries in one transaction of the key-value store, each committed with one fsync
(group commit; none for a raft log batch that only moves the commit index), the raft log
first: an entry is durable before its effect is. Messages to
peers leave as soon as the raft log's commit returns (they promise only what that commit made
durable); a leader's appends and heartbeats leave even before it, in parallel with its own
write (those of the turn's first Ready before the write begins), as raft allows (the leader
counts its own entries toward commit only in a later turn).
Everything else of the turn leaves the process only after both commits, published in this
order: the key index and the subsystems' hook, the raft outputs (term, leader), watchers and
change listeners, client answers, linearizable reads.

While a lone client is all there is (group_commit.LoneClient), the store's transaction is
instead left open when a turn ends, and the next turns go on writing in it; it commits after
HOLD_SECONDS, HOLD_ENTRIES or HOLD_BYTES, when load returns, or as soon as anything reads the
store (storage/deferred.py), as etcd's backend commits every 100 ms. Such a turn publishes once
its raft log commit returns: answers rest on the raft log alone, and a crash before the store
commits is repaired at restart by replaying the log from the store's last applied index.

A leader's new commit index reaches the followers with its next append, or COMMIT_NEWS_DELAY
later with an append of its own (raft Config.lazy_commit; etcd sends one at once); a follower
whose forwarded proposal was committed is told at once, as its client is waiting. Sooner still
(raft Config.stable_news, STABLE_NEWS): once the leader's log is durable past a forwarded
proposal it says so (MSG_STABLE, sent after its raft log commit like every message that
promises durability), and the follower commits the proposal as soon as its own copy is durable
too, a round trip before the commit index would reach it.

Under load, the loop may wait a few milliseconds after a busy turn so that the next one carries
more (server/group_commit.py decides, by measuring).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pyetcd import errors, failpoints
from pyetcd.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    EntryType,
    Message,
    MessageType,
    ProposalDroppedError,
    RawNode,
    Ready,
    StateType,
)
from pyetcd.storage.backend import META
from pyetcd.storage.deferred import Request

from .apply import decode_conf_change
from .batch import AppliedResult, ApplyBatch, RaftOutput, needs_disk
from .group_commit import GroupCommit, LoneClient
from .install import SnapshotInstaller
from .ports import PeerSender
from .proposals import Proposals
from .read_index import ReadIndex
from .subsystems import META_APPLIED, META_APPLIED_TERM, Subsystems
from .waiting import Wakeup

log = logging.getLogger("pyetcd.server")

_U64 = struct.Struct(">Q")
# Never keep more than this many bytes of applied entries in the log: large values would
# otherwise fill the environment and memory.
_LOG_MAX_BYTES = 64 * 1024 * 1024
_LOG_KEEP_WHEN_LARGE = 16
# A turn drains Readies until the core is quiet; this bounds it should the core never be.
_MAX_READIES_PER_TURN = 64
# What a turn sends before its raft log commit (a leader's), and then before the store's commit.
_LEADER_PARALLEL = frozenset({MessageType.MSG_APP, MessageType.MSG_HEARTBEAT})
_AFTER_LOG = frozenset(MessageType) - {MessageType.MSG_SNAP}
# Peer messages waiting in the inbox beyond this are dropped (raft tolerates lost messages):
# a flood from peers must not grow memory without bound.
MAX_PEER_MESSAGES = 10_000
# The most the loop waits after a busy turn (group_commit.py). A pyetcd-only knob, for A/B runs
# in bench/kv.py (``--variant off:PYETCD_GROUP_COMMIT_MS=0`` never waits).
GROUP_COMMIT_WINDOW = float(os.environ.get("PYETCD_GROUP_COMMIT_MS", "6")) / 1000
# A lone client's turns run on the event loop (group_commit.LoneClient.inline says where); "0": never.
INLINE_TURNS = os.environ.get("PYETCD_INLINE_TURNS", "1") != "0"
# A lone client's turns hold the store's transaction open this long at most, with at most this
# many entries (etcd's backend batch interval and limit), before it commits; "0": never hold.
HOLD_SECONDS = float(os.environ.get("PYETCD_STORE_HOLD_MS", "100")) / 1000
HOLD_ENTRIES = 10_000
# ...and with at most this many bytes of applied entries: a transaction's pages stay in memory
# until it commits, and one long transaction lays large values out more tightly than etcd's
# bbolt does, which would let a quota take more of them than etcd's (tests/test_quota_alarm.py)
HOLD_BYTES = 1 << 20
# A leader's new commit index reaches the followers with its next append, or this long after it
# was committed if no append came (raft Config.lazy_commit); a follower whose forwarded proposal
# it commits is told at once. "0": at once, with an append of its own, as etcd does.
COMMIT_NEWS_DELAY = float(os.environ.get("PYETCD_COMMIT_NEWS_MS", "2")) / 1000
# A follower whose client waits commits once its log and the leader's are durable (raft
# Config.stable_news), a round trip sooner than the leader's commit index reaches it. "0": off.
STABLE_NEWS = os.environ.get("PYETCD_STABLE_NEWS", "1") != "0"


@dataclass(frozen=True, slots=True)
class _Propose:
    rid: int
    data: bytes


@dataclass(frozen=True, slots=True)
class _ProposeConf:
    rid: int
    change: ConfChange


@dataclass(frozen=True, slots=True)
class _Step:
    message: Message


@dataclass(frozen=True, slots=True)
class _Call:
    """A request on the node that is not a proposal: campaign, transfer, unreachable, snapshot status."""

    fn: Callable[[RawNode], None]


class NodeLoop:
    def __init__(self, parts: Subsystems, node: RawNode, peers: PeerSender, installer: SnapshotInstaller,
                 proposals: Proposals, tick_seconds: float, snapshot_count: int, catchup_entries: int) -> None:
        self.parts = parts
        self.node = node
        self.peers = peers
        self.installer = installer
        self.proposals = proposals
        self.reads = ReadIndex(proposals.ids.next)
        self.tick_seconds = tick_seconds
        self.snapshot_count = snapshot_count
        self.catchup_entries = catchup_entries
        raftlog = parts.raftlog
        self.id = raftlog.member_id
        self.term = raftlog.hard_state.term
        self.commit_index = raftlog.hard_state.commit
        self.leader = 0
        self.raft_state = StateType.FOLLOWER
        self.applied_index, self.applied_term = parts.applied
        # the applied index of the store's last commit, and of the one before it: with the store's
        # metasync off only the latter is sure to survive a power loss (storage/backend.py)
        self._store_last_applied = self._store_durable_applied = self.applied_index
        # a lone client's turns leave the store's transaction open for the next (storage/deferred.py):
        # it, the applied index written into it, when it was begun, how many entries (and bytes) it holds
        self._held_txn: Any = None
        self._held_applied = 0
        self._held_since = 0.0
        self._held_entries = self._held_bytes = 0
        self.conf_state: ConfState = raftlog.initial_state()[1]
        self.leader_listeners: list[Callable[[bool], None]] = []
        self.leader_changes = 0  # etcd_server_leader_changes_seen_total
        # seconds each commit took: the raft log's (etcd's WAL fsync) and the store's (backend commit)
        self.wal_observers: list[Callable[[float], None]] = []
        self.backend_observers: list[Callable[[float], None]] = []
        self.removed = asyncio.Event()  # set when a committed change removed this member
        self.failed = asyncio.Event()  # set when the loop died of an error: the member must stop
        self.ready_event = asyncio.Event()  # set once a leader is known
        # held by a turn's transactions, a snapshot install, or defragmentation (the latter two first
        # commit a store transaction that turns left open: _commit_held_store)
        self.disk = asyncio.Lock()
        self._inbox: deque[Any] = deque()
        self._peer_messages = 0
        self._wake = Wakeup()
        self._apply_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apply")
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._leftover: Ready | None = None
        self._deferred: tuple[Any, Any] | None = None  # see _commit_deferred
        self._deferred_thread = 0  # ... and the thread that began them (LMDB's write transactions are the thread's)
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._commit_news_at: float | None = None  # when followers are told the commit index (lazy commit)
        self.group_commit = GroupCommit(GROUP_COMMIT_WINDOW)
        self.lone_client = LoneClient(INLINE_TURNS)

    # ---- the inbox: what handlers and the transport may do -----------------------------
    def propose(self, rid: int, data: bytes) -> None:
        self._put(_Propose(rid, data))

    def propose_conf_change(self, rid: int, cc: ConfChange) -> None:
        self._put(_ProposeConf(rid, cc))

    def read(self, fut: asyncio.Future[None]) -> None:
        self.reads.add(fut)
        self._wake.set()

    def step(self, m: Message) -> None:
        if self._peer_messages >= MAX_PEER_MESSAGES:
            log.debug("inbox full: dropping %s from %x", m.type.name, m.frm)
            return
        self._peer_messages += 1
        self._put(_Step(m))

    def report_unreachable(self, member_id: int) -> None:
        self._put(_Call(lambda n: n.report_unreachable(member_id)))

    def report_snapshot(self, member_id: int, failed: bool) -> None:
        self._put(_Call(lambda n: n.report_snapshot(member_id, failed)))

    def transfer_leader(self, transferee: int) -> None:
        self._put(_Call(lambda n: n.transfer_leader(transferee)))

    def campaign(self) -> None:
        self._put(_Call(lambda n: n.campaign()))

    def _put(self, item: Any) -> None:
        self._inbox.append(item)
        self._wake.set()

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="raft-node-loop")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A loop that dies of an error would leave the member up but deaf (nothing would step
        the node again): it is logged and ``failed`` is set, and the process exits, as etcd's
        panics do."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.critical("the raft node loop failed; stopping the member: %r", error, exc_info=error)
        self.failed.set()

    async def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self._commit_held_store()
        self._apply_thread.shutdown(wait=True)

    async def run_on_apply_thread(self, fn: Callable[[], Any]) -> Any:
        """Run blocking store work (defragmentation's copy) where turns run, while none can."""
        await self._commit_held_store()
        return await asyncio.get_running_loop().run_in_executor(self._apply_thread, fn)

    async def _commit_held_store(self) -> None:
        """Commit the store transaction turns left open, on the thread that began it."""
        deferred = self.parts.backend.deferred
        if deferred.owned_here():
            deferred.flush()
        elif deferred.pending:
            await asyncio.get_running_loop().run_in_executor(self._apply_thread, deferred.flush)

    @property
    def is_leader(self) -> bool:
        return self.leader == self.id and self.id != 0

    @property
    def reads_are_local(self) -> bool:
        """Whether a linearizable read may be served from what is published, without a ReadIndex
        round: this member leads and is the only voter, so no other member can be elected or
        commit, and it has applied all it knows committed (after a restart, not before its log is
        replayed). A member answers a write only once it has published the write's effect, so
        every write answered before the read began is then visible to it. (etcd asks its raft
        core all the same; a lone voter's core answers at once with its commit index.)"""
        return self.is_leader and self.applied_index >= self.commit_index and len(self.conf_state.voters) == 1

    # ---- the loop ----------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + self.tick_seconds
        while not self._stopped:
            if failpoints.hit("bug.node_loop_raises"):  # deliberate failure: test_failpoints
                raise RuntimeError("failpoint bug.node_loop_raises")
            held = self.reads.held_until(loop.time())  # a read round waiting for company (read_index.py)
            until = min(next_tick, held) if held else next_tick
            if self._commit_news_at is not None:
                until = min(until, self._commit_news_at)
            if self._held_txn is not None:
                until = min(until, loop.time() + self._hold_left())
            await self._wake.wait(max(0.0, until - loop.time()))
            now = loop.time()
            if now >= next_tick:
                self.proposals.deadlines.expire(now)
            while now >= next_tick:
                self.node.tick()
                next_tick += self.tick_seconds
            if self._commit_news_at is not None and now >= self._commit_news_at:
                self.node.send_commit_news()
            if self._held_txn is not None and self._hold_left() <= 0:
                await self._commit_held_store()
            self._drain_inbox()
            while not self._stopped and (self._leftover is not None or self.node.has_ready()):
                rd = self._leftover or self.node.ready()
                self._leftover = None
                if rd.snapshot is not None:
                    async with self.disk:
                        await self._install(rd)
                elif needs_disk(rd):
                    async with self.disk:
                        members = len(self.conf_state.voters) + len(self.conf_state.learners)
                        lone = self.lone_client
                        inline = lone.inline(len(rd.entries) + len(rd.committed_entries), len(self.proposals), members,
                                             self.peers.sends_directly)
                        if self._deferred is not None:  # the deliberate bug's: committed where they began
                            inline = self._deferred_thread == threading.get_ident()
                        deferred = self.parts.backend.deferred
                        hold = lone.hold(deferred.reads_waited)
                        if deferred.pending and deferred.owned_here() != inline:  # the open txn is the other thread's
                            await self._commit_held_store()
                        if inline:
                            batch = self._turn(rd, hold, loop.call_soon_threadsafe)
                        else:
                            batch = await loop.run_in_executor(self._apply_thread, self._turn, rd, hold,
                                                               self._apply_thread.submit)
                    self._publish(batch)
                    if wait := self.group_commit.after_turn(batch.entries_touched, members, len(self.proposals),
                                                            self.proposals.registered):
                        await asyncio.sleep(wait)
                else:  # only read states, leadership news or messages: no transaction needed
                    out = RaftOutput()
                    out.absorb(rd)
                    self.node.advance(rd)
                    self._publish_raft(out)
                    self.reads.answered(out.read_states, self.applied_index)
                if self._inbox or self.reads.ready_for_round(loop.time()):
                    break  # feed what arrived meanwhile before the next Ready
            if self.reads.ready_for_round(loop.time()):  # a round ended with reads waiting: the next one now
                self._wake.set()
            self._schedule_commit_news(loop.time())

    def _schedule_commit_news(self, now: float) -> None:
        """Lazy commit: while a follower has not been told the commit index, tell it
        COMMIT_NEWS_DELAY after it fell behind, unless an append (which carries it) goes first.
        Followers answer their own clients only once they apply, so the delay is kept short;
        in return a lone client's put costs each follower one message and one turn, not two."""
        if not COMMIT_NEWS_DELAY or not self.is_leader or not self.node.commit_news_owed():
            self._commit_news_at = None
        elif self._commit_news_at is None or now >= self._commit_news_at:
            self._commit_news_at = now + COMMIT_NEWS_DELAY

    def _drain_inbox(self) -> None:
        inbox, node = self._inbox, self.node
        self._peer_messages = 0
        while inbox:
            item = inbox.popleft()
            if isinstance(item, _Propose):
                self._propose_run(item)
            elif isinstance(item, _Step):
                node.step(item.message)
            elif isinstance(item, _ProposeConf):
                try:
                    node.propose_conf_change(item.change)
                except ProposalDroppedError:  # no leader, or a change is still pending
                    err = errors.ErrNoLeader() if not self.leader else errors.ErrTimeout()
                    self.proposals.resolve(item.rid, error=err)
            else:
                item.fn(node)
        ctx = self.reads.next_round(asyncio.get_running_loop().time())
        if ctx is not None:
            node.read_index(ctx)

    def _propose_run(self, first: _Propose) -> None:
        """Propose ``first`` and the proposals queued right behind it as one MsgProp: one
        append on a leader, one forwarded message on a follower, instead of one each."""
        run = [first]
        inbox = self._inbox
        while inbox and isinstance(nxt := inbox[0], _Propose):
            inbox.popleft()
            run.append(nxt)
        try:
            self.node.propose(*(p.data for p in run))
        except ProposalDroppedError:
            for p in run:
                self.proposals.resolve(p.rid, error=errors.ErrNoLeader())

    # ---- one turn: on the apply thread (a lone client's on the event loop: LoneClient) ---
    def _turn(self, first: Ready, hold: bool, request: Request) -> ApplyBatch:
        """Drain every Ready into one raft-log transaction and one store transaction.

        With ``hold`` (a lone client: group_commit.LoneClient) the store's transaction stays
        open when the turn ends, for the next turn to go on with, until HOLD_SECONDS, HOLD_ENTRIES
        or HOLD_BYTES pass, a turn runs without ``hold``, or a reader settles it: the store's
        commit then leaves the path of every answer (storage/deferred.py; ``request`` runs a
        function on this thread, for those readers). The raft log still commits every turn.

        ``advance`` is called before the commits: the core may then commit what this turn
        persisted (a single voter does at once) and hand it out in the next Ready of the same
        turn. That is safe because nothing of the turn leaves the process before the raft log's
        commit (nor before the store's, unless held); if a commit fails the member stops. A Ready
        carrying a snapshot ends the turn and is
        installed next, on its own.
        """
        parts = self.parts
        self._send_appends_first(first)
        failpoints.hit("turn.before_persist")
        self._commit_deferred()
        rtxn = parts.raftlog.begin_write()
        if self._held_txn is not None:
            parts.backend.deferred.take()
            ktxn = self._held_txn
        else:
            ktxn = parts.backend.begin_write()
        try:
            batch = ApplyBatch(txn=ktxn, kv=parts.kv.writer(ktxn), raft_txn=rtxn)
            rd: Ready | None = first
            for _ in range(_MAX_READIES_PER_TURN):
                if rd is None:
                    break
                if rd.snapshot is not None:
                    self._leftover = rd
                    break
                parts.raftlog.persist(rtxn, rd.entries, rd.hard_state)
                parts.raftlog.publish(rd.entries, rd.hard_state)  # the core reads its log through this
                batch.touch(rd.entries)
                batch.touch(rd.committed_entries)
                self._apply_committed(batch, rd)
                batch.raft.absorb(rd)
                self.node.advance(rd)
                rd = self.node.ready() if self.node.has_ready() else None
            self._maybe_compact_log(rtxn, batch)
            if batch.applied_index:
                meta = parts.backend.db(META)
                ktxn.put(META_APPLIED, _U64.pack(batch.applied_index), db=meta)
                ktxn.put(META_APPLIED_TERM, _U64.pack(batch.applied_term), db=meta)
                batch.kv.finish()
            if failpoints.hit("bug.ack_before_commit"):  # deliberate bug (selftest): answer now, commit next turn
                self._held_txn = None  # the store's transaction commits with the next turn, not held
                parts.backend.deferred.release()
                self._deferred, self._deferred_thread = (rtxn, ktxn), threading.get_ident()
                return batch
            # a leader's appends and heartbeats of the later Readies go out while its own log is
            # being written (raft thesis 10.2.1; the first Ready's went before: _send_appends_first):
            # the core counts the leader's own entries toward commit only in a later turn, after
            # this commit; any other message waits until the log is durable
            self._send_early(batch, _LEADER_PARALLEL)
            _timed(rtxn.commit, self.wal_observers)
            self._send_early(batch, _AFTER_LOG)
            failpoints.hit("turn.between_commits")
            self._end_store_txn(ktxn, batch, hold, request)
            failpoints.hit("turn.after_persist")
            return batch
        except BaseException:
            rtxn.abort()
            ktxn.abort()
            log.critical("persisting a raft turn failed; the member must stop", exc_info=True)
            os._exit(2)  # the core already advanced past state that is not on disk: never continue

    def _end_store_txn(self, ktxn: Any, batch: ApplyBatch, hold: bool, request: Request) -> None:
        """Commit the turn's store transaction, or hold it open (see ``_turn``)."""
        if batch.applied_index:
            if self._held_txn is None:
                self._held_since, self._held_entries, self._held_bytes = time.monotonic(), 0, 0
            self._held_txn, self._held_applied = ktxn, batch.applied_index
            self._held_entries += len(batch.results)
            self._held_bytes += batch.applied_bytes
        if self._held_txn is None:
            ktxn.abort()
            return
        deferred = self.parts.backend.deferred
        deferred.defer(self._commit_held_txn, request)
        if (not hold or self._held_entries >= HOLD_ENTRIES or self._held_bytes >= HOLD_BYTES
                or self._hold_left() <= 0):
            deferred.flush()  # commits here, and lets go whoever waited for it

    def _hold_left(self) -> float:
        """Seconds until the open store transaction must commit."""
        return self._held_since + HOLD_SECONDS - time.monotonic()

    def _commit_held_txn(self) -> None:
        """Commit the store transaction turns wrote (on the thread that began it)."""
        ktxn, self._held_txn = self._held_txn, None
        if ktxn is None:
            return
        try:
            failpoints.hit("turn.before_store_commit")
            _timed(ktxn.commit, self.backend_observers)
        except BaseException:
            ktxn.abort()
            log.critical("committing the store's transaction failed; the member must stop", exc_info=True)
            os._exit(2)  # answered entries are in the raft log: a restart replays them
        self._store_durable_applied, self._store_last_applied = self._store_last_applied, self._held_applied
        self.parts.backend.refresh_size()

    def _send_appends_first(self, rd: Ready) -> None:
        """A leader's appends and heartbeats in the turn's first Ready leave before anything of
        the turn is written: raft lets followers persist an entry before its leader does (the core
        counts the leader's own copy only once advance says it is durable), and a follower's fsync
        then starts that much sooner (put at one client: +4 % at the leader and at a follower)."""
        rd.messages = self._send_now(rd.messages, _LEADER_PARALLEL)

    def _send_early(self, batch: ApplyBatch, kinds: frozenset[MessageType]) -> None:
        """Hand the turn's raft messages of ``kinds`` to the transport before the store's commit:
        no message promises anything about applied state, so peers need not wait for it."""
        batch.raft.messages = self._send_now(batch.raft.messages, kinds)

    def _send_now(self, messages: list[Message], kinds: frozenset[MessageType]) -> list[Message]:
        """Hand the messages of ``kinds`` to the transport now; the others are returned, for later."""
        early = [m for m in messages if m.type in kinds]
        if not early or self._event_loop is None:
            return messages
        self.peers.send_from_thread(early, self._event_loop)
        return [m for m in messages if m.type not in kinds]

    def _commit_deferred(self) -> None:
        """Only ever set by the selftest's deliberate bug.ack_before_commit: the previous turn
        commits now, after its clients were answered."""
        if self._deferred is not None:
            for txn in self._deferred:
                txn.commit()
            self._deferred = None

    def _apply_committed(self, batch: ApplyBatch, rd: Ready) -> None:
        applied = max(self.applied_index, batch.applied_index)
        for entry in rd.committed_entries:
            if entry.index <= applied:
                continue
            failpoints.hit("apply.before")
            if entry.type == EntryType.NORMAL and entry.data:
                batch.entry_index = entry.index
                batch.applied_bytes += len(entry.data)
                batch.results.append(self.parts.applier.apply_entry(batch, entry.data))
            elif entry.type == EntryType.CONF_CHANGE:
                self._apply_conf_change(batch, entry.data)
            batch.applied_index, batch.applied_term = entry.index, entry.term

    def _apply_conf_change(self, batch: ApplyBatch, data: bytes) -> None:
        """The core and the member list change together (the apply thread owns the node)."""
        if (decoded := decode_conf_change(data)) is None:
            return  # a committed entry is applied whatever it holds: what cannot be read is skipped
        cc, ctx = decoded
        conf_state = self.node.apply_conf_change(cc)
        assert batch.raft_txn is not None
        self.parts.raftlog.persist_conf_state(batch.raft_txn, conf_state)
        members = self.parts.members.apply_conf_change(batch, cc, ctx)
        batch.on_publish(lambda: self._membership_changed(conf_state))
        if cc.type == ConfChangeType.REMOVE_NODE and cc.node_id == self.id:
            batch.on_publish(self.removed.set)
        batch.results.append(AppliedResult(ctx.request_id, response=members))

    def _membership_changed(self, conf_state: ConfState) -> None:
        self.conf_state = conf_state
        self.peers.set_peers(self.parts.members.peer_urls(exclude=self.id))

    def _maybe_compact_log(self, rtxn: Any, batch: ApplyBatch) -> None:
        """etcd's snapshot + compaction: past --snapshot-count applied entries since the last
        compaction, keep only the catch-up entries (lagging followers beyond them get a
        snapshot). Only entries the store holds durably may go: those applied by its commit
        before the last one, as its last commit is durable only once the next one syncs."""
        raftlog = self.parts.raftlog
        first = raftlog.first_index()
        durable = self._store_durable_applied
        too_large = raftlog.bytes_since_compaction >= _LOG_MAX_BYTES
        if durable - (first - 1) <= self.snapshot_count and not too_large:
            return
        index = durable - (_LOG_KEEP_WHEN_LARGE if too_large else self.catchup_entries)
        if index < first:
            return
        conf = self.conf_state
        raftlog.persist_compaction(rtxn, index, raftlog.term(index), conf)
        batch.on_publish(lambda: raftlog.publish_compaction(index, conf))

    # ---- a snapshot from the leader ----------------------------------------------------
    async def _install(self, rd: Ready) -> None:
        """Replace the store with the leader's, then let the core go on from the snapshot.

        The store file arrived over the transport before the core saw the message. The raft
        side is made durable first; should the member crash before the store is swapped, the
        start-up check finishes the swap (install.SnapshotInstaller.recover)."""
        assert rd.snapshot is not None
        snap = rd.snapshot
        loop = asyncio.get_running_loop()
        parts = self.parts
        await self._commit_held_store()

        def persist_raft() -> None:
            rtxn = parts.raftlog.begin_write()
            try:
                parts.raftlog.persist(rtxn, [], None, snap.metadata)
                parts.raftlog.persist(rtxn, rd.entries, rd.hard_state)
                rtxn.commit()
            except BaseException:
                rtxn.abort()
                log.critical("persisting a snapshot's raft state failed; the member must stop", exc_info=True)
                os._exit(2)

        await loop.run_in_executor(self._apply_thread, persist_raft)
        seen_rev = parts.kv.current_rev
        self.installer.install(snap.metadata.index)
        parts.raftlog.publish_snapshot(snap)
        parts.raftlog.publish(rd.entries, rd.hard_state)
        self.applied_index, self.applied_term = snap.metadata.index, snap.metadata.term
        self._store_last_applied = self._store_durable_applied = self.applied_index  # the swap synced it
        parts.hub.restore(seen_rev)
        self._membership_changed(snap.metadata.conf_state)
        log.info("applied snapshot at index %d (term %d) from the leader; revision %d",
                 snap.metadata.index, snap.metadata.term, parts.kv.current_rev)
        out = RaftOutput()
        out.absorb(rd)
        self.node.advance(rd)
        self._publish_raft(out)
        self.reads.answered(out.read_states, self.applied_index)

    # ---- event loop, after the commits -------------------------------------------------
    def _publish(self, batch: ApplyBatch) -> None:
        parts = self.parts
        parts.kv.publish(batch.kv)
        for hook in batch.publish_hooks:
            hook()
        if batch.applied_index:
            self.applied_index, self.applied_term = batch.applied_index, batch.applied_term
        self._publish_raft(batch.raft)
        if batch.changes:
            for listen in parts.change_listeners:
                listen(batch.changes)
        for res in batch.results:
            self.proposals.resolve(res.request_id, res.response, res.error)
        self.reads.answered(batch.raft.read_states, self.applied_index)

    def _publish_raft(self, out: RaftOutput) -> None:
        """Act on the core's outputs once they are durable: term, leadership, messages."""
        if out.hard_state is not None:
            self.term = out.hard_state.term
            self.commit_index = out.hard_state.commit
        if out.soft_state is not None:
            was_leader = self.is_leader
            if out.soft_state.lead != self.leader:
                self.reads.retry_all()
                self._wake.set()
                if out.soft_state.lead:
                    self.leader_changes += 1
            self.leader = out.soft_state.lead
            self.raft_state = out.soft_state.raft_state
            if self.leader:
                self.ready_event.set()
            if was_leader != self.is_leader:
                for listener in self.leader_listeners:
                    listener(self.is_leader)
        if out.messages:
            regular = [m for m in out.messages if m.type is not MessageType.MSG_SNAP]
            if regular:
                self.peers.send(regular)
            for m in out.messages:
                if m.type is MessageType.MSG_SNAP:
                    self.installer.send(m, self.peers, self.report_snapshot)


def _timed(commit: Callable[[], object], observers: list[Callable[[float], None]]) -> None:
    started = time.perf_counter()
    commit()
    if observers:
        took = time.perf_counter() - started
        for observe in observers:
            observe(took)

"""RawNode: the application's handle on the core, and the Ready/advance contract.

The application drives a node with a loop like::

    while True:
        feed node.tick() on a timer, node.step(m) for each message from peers,
        node.propose(...) / read_index(...) for clients
        if node.has_ready():
            rd = node.ready()
            1. persist rd.snapshot (if any), then rd.entries, then rd.hard_state (if any),
               in that order, and fsync when rd.must_sync.  All of it BEFORE step 2:
               a message may promise that these are durable (a vote, an append ack).
            2. send rd.messages.
            3. apply rd.snapshot to the state machine (if any), then rd.committed_entries
               in order; for a CONF_CHANGE entry call apply_conf_change(ConfChange.decode(data)).
               Serve reads whose ReadState.index <= applied (rd.read_states).
            4. node.advance(rd).

`ready()` hands out each message, read state and unstable entry once; committed entries
are handed out until `advance` records them applied, so keep one Ready outstanding at a
time and call `advance` before the next `ready`. `step`, `tick` and `propose` may be called
while a Ready is being persisted (entries replaced meanwhile are simply not marked stable).  A leader counts its own log toward a quorum only after `advance` reports it
persisted, so a single voter commits exactly when its entry is durable.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from .config import Config
from .progress import Progress
from .raft import Raft
from .types import (
    LOCAL_MESSAGES,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProposalDroppedError,
    ReadState,
    Snapshot,
    SoftState,
    StateType,
    StepLocalMsgError,
)


@dataclass
class Ready:
    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    read_states: list[ReadState] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    must_sync: bool = False


@dataclass
class Status:
    id: int
    hard_state: HardState
    soft_state: SoftState
    applied: int
    progress: dict[int, Progress]
    lead_transferee: int
    conf_state: ConfState


class RawNode:
    def __init__(self, config: Config) -> None:
        self.raft = Raft(config)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()

    # -- inputs ---------------------------------------------------------------------
    def tick(self) -> None:
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (pre-vote first if enabled); a single voter wins at once."""
        self.raft.step(Message(type=MessageType.MSG_HUP, frm=self.raft.id))

    def propose(self, *data: bytes) -> None:
        """Propose entries, all in one MsgProp: a leader appends them at once, a follower
        forwards them to the leader as one message. All are taken, or all dropped."""
        self._propose(*(Entry(0, 0, EntryType.NORMAL, d) for d in data))

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change. Only one may be pending at a time: a leader with an
        unapplied change (or no applied entry of its own term yet) raises
        ProposalDroppedError; one forwarded from a follower in that state is replaced by an
        empty entry instead (etcd's rule), so it never applies."""
        r = self.raft
        if r.state is StateType.LEADER and r.pending_conf_index > r.log.applied:
            raise ProposalDroppedError("a membership change is already pending")
        self._propose(Entry(0, 0, EntryType.CONF_CHANGE, cc.encode()))

    def _propose(self, *entries: Entry) -> None:
        self.raft.step(Message(type=MessageType.MSG_PROP, frm=self.raft.id, entries=entries))

    def step(self, m: Message) -> None:
        """Feed a message received from a peer."""
        if m.type in LOCAL_MESSAGES:
            raise StepLocalMsgError(f"cannot step local message {m.type.name}")
        # A forwarded proposal that cannot be taken is lost, like a lost message.
        with contextlib.suppress(ProposalDroppedError):
            self.raft.step(m)

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read point; the answer arrives as a ReadState with ctx."""
        self.raft.step(Message(type=MessageType.MSG_READ_INDEX, frm=self.raft.id, context=ctx))

    def commit_news_owed(self) -> bool:
        """With Config.lazy_commit: whether a follower has not been told the commit index yet."""
        return self.raft.commit_news_owed()

    def send_commit_news(self) -> None:
        """With Config.lazy_commit: tell the followers owed it the commit index now."""
        self.raft.send_commit_news()

    def transfer_leader(self, transferee: int) -> None:
        self.raft.step(Message(type=MessageType.MSG_TRANSFER_LEADER, frm=transferee))

    def report_unreachable(self, id_: int) -> None:
        self.raft.step(Message(type=MessageType.MSG_UNREACHABLE, frm=id_))

    def report_snapshot(self, id_: int, failed: bool) -> None:
        self.raft.step(Message(type=MessageType.MSG_SNAP_STATUS, frm=id_, reject=failed))

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        return self.raft.apply_conf_change(cc)

    # -- outputs --------------------------------------------------------------------
    def has_ready(self) -> bool:
        r = self.raft
        r.flush()
        if r.msgs or r.read_states:
            return True
        log = r.log
        if log.unstable.entries or log.unstable.snapshot is not None or log.has_next_ents():
            return True
        ps, ph = self._prev_soft, self._prev_hard
        # Field by field: this runs on every turn of the application's loop.
        return (
            r.lead != ps.lead
            or r.state is not ps.raft_state
            or r.term != ph.term
            or r.vote != ph.vote
            or log.committed != ph.commit
        )

    def ready(self) -> Ready:
        r = self.raft
        r.flush()
        rd = Ready(
            entries=r.log.unstable_entries(),
            committed_entries=r.log.next_ents(),
            messages=r.msgs,
            read_states=r.read_states,
            snapshot=r.log.unstable.snapshot,
        )
        soft = r.soft_state()
        if soft != self._prev_soft:
            rd.soft_state = soft
            self._prev_soft = soft
        hs = r.hard_state()
        if hs != self._prev_hard:
            rd.hard_state = hs
            rd.must_sync = hs.term != self._prev_hard.term or hs.vote != self._prev_hard.vote
            self._prev_hard = hs
        rd.must_sync = rd.must_sync or bool(rd.entries) or rd.snapshot is not None
        r.msgs = []
        r.read_states = []
        return rd

    def advance(self, rd: Ready) -> None:
        """The application persisted and applied `rd`."""
        log = self.raft.log
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.metadata.index)
        if rd.entries:
            e = rd.entries[-1]
            log.stable_to(e.index, e.term)
        applied = 0
        if rd.committed_entries:
            applied = rd.committed_entries[-1].index
        elif rd.snapshot is not None:
            applied = rd.snapshot.metadata.index
        if applied > log.applied:
            log.applied_to(applied)
        self.raft.on_persisted()

    def status(self) -> Status:
        r = self.raft
        return Status(
            id=r.id,
            hard_state=r.hard_state(),
            soft_state=r.soft_state(),
            applied=r.log.applied,
            progress=dict(r.tracker.progress) if r.lead == r.id else {},
            lead_transferee=r.lead_transferee,
            conf_state=r.tracker.conf_state(),
        )

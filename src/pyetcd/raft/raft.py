"""The Raft state machine: one node's role, term, log and view of its peers.

Everything enters through `step` (messages, including local ones like MSG_HUP) or
`tick`; everything leaves through `msgs`, `read_states` and the log's unstable and
committed entries, which RawNode packages as a Ready. Nothing here performs I/O, reads a
clock or starts a thread; randomness comes only from the seeded `random.Random`.

Membership changes take effect when the application applies them (etcd's rule), one at a
time: a leader accepts a new conf change only after the previous one has been applied,
and a new leader only after an entry of its own term is committed; a node does not
campaign while a committed conf change awaits application. A leader that removes itself
keeps replicating until a remaining voter holds its whole log, then hands leadership to it.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

from .config import Config
from .log import RaftLog
from .progress import Progress, ProgressState
from .quorum import VoteResult
from .read_only import ReadOnly
from .tracker import ProgressTracker
from .types import (
    KNOWS_STABLE,
    NONE,
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    ProposalDroppedError,
    RaftError,
    ReadState,
    Snapshot,
    SnapshotTemporarilyUnavailableError,
    SoftState,
    StateType,
    UnavailableError,
    decode_voters,
    encode_voters,
    entries_size,
    vote_response_type,
)
from .types import (
    MessageType as M,
)

CAMPAIGN_TRANSFER = b"CampaignTransfer"


class CampaignType(enum.Enum):
    PRE_ELECTION = 0
    ELECTION = 1
    TRANSFER = 2


class Raft:
    def __init__(self, c: Config) -> None:
        c.validate()
        self.id = c.id
        self.log = RaftLog(c.storage, c.max_committed_size_per_ready or c.max_size_per_msg)
        hs, cs = c.storage.initial_state()
        self.max_msg_size = c.max_size_per_msg
        self.tracker = ProgressTracker(c.max_inflight_msgs, c.max_inflight_bytes)
        self.tracker.restore(cs, self.log.last_index() + 1)
        self.is_learner = self.id in self.tracker.learners
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.state = StateType.FOLLOWER
        self.msgs: list[Message] = []
        self.bcast_pending = False
        self.lazy_commit = c.lazy_commit
        self.stable_news = c.stable_news
        # leader: the highest durable index it told a follower this term (MSG_STABLE);
        # follower: the leader's durable index and the voters it counts, as told this term
        self.stable_told = 0
        self.leader_stable = 0
        self.leader_voters: frozenset[int] = frozenset()
        self.read_states: list[ReadState] = []
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.handoff_pending = False
        self.read_only = ReadOnly()
        self.pending_read_index: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.check_quorum = c.check_quorum
        self.pre_vote = c.pre_vote
        self.heartbeat_timeout = c.heartbeat_tick
        self.election_timeout = c.election_tick
        self.randomized_election_timeout = c.election_tick
        self.rng = random.Random(c.seed if c.seed is not None else c.id)
        self._step: Callable[[Message], None] = self._step_follower
        self._tick: Callable[[], None] = self._tick_election
        if not hs.is_empty():
            self._load_state(hs)
        if c.applied > 0:
            self.log.applied_to(c.applied)
        self.become_follower(self.term, NONE)

    # -- state snapshots for Ready ---------------------------------------------------
    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.state)

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _load_state(self, hs: HardState) -> None:
        if hs.commit < self.log.committed or hs.commit > self.log.last_index():
            raise RaftError(
                f"commit {hs.commit} out of range [{self.log.committed}, {self.log.last_index()}]"
            )
        self.log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def promotable(self) -> bool:
        """Only a voter of the configuration it has applied may campaign, or a removed leader
        that has not handed off yet (see _maybe_hand_off); its own vote then counts for nothing."""
        if self.handoff_pending:
            return bool(self.tracker.voters)
        return self.id in self.tracker.voters and not self.is_learner

    # -- sending ----------------------------------------------------------------------
    def send(self, m: Message) -> None:
        if m.frm == NONE:
            m.frm = self.id
        if m.type in (M.MSG_VOTE, M.MSG_VOTE_RESP, M.MSG_PRE_VOTE, M.MSG_PRE_VOTE_RESP):
            if m.term == 0:
                raise RaftError(f"term should be set when sending {m.type.name}")
        elif m.type not in (M.MSG_PROP, M.MSG_READ_INDEX):
            m.term = self.term
        self.msgs.append(m)

    def send_append(self, to: int) -> None:
        self.maybe_send_append(to, True)

    def maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send to `to` what it is missing (entries, or a snapshot if they are compacted)."""
        pr = self.tracker.progress[to]
        if pr.is_paused():
            return False
        try:
            term = self.log.term(pr.next - 1)
            ents = self.log.entries(pr.next, self.max_msg_size)
        except (CompactedError, UnavailableError):
            return self._send_snapshot(to)
        if not ents and not send_if_empty:
            return False
        index = pr.next - 1
        self.send(
            Message(
                type=M.MSG_APP,
                to=to,
                index=index,
                log_term=term,
                entries=tuple(ents),
                commit=self.log.committed,
            )
        )
        pr.told_commit(min(self.log.committed, index + len(ents)))  # what the follower may commit
        if ents:
            if pr.state is ProgressState.REPLICATE:
                last = ents[-1].index
                pr.optimistic_update(last)
                pr.inflights.add(last, entries_size(ents))
            elif pr.state is ProgressState.PROBE:
                pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int) -> bool:
        pr = self.tracker.progress[to]
        if not pr.recent_active:
            return False
        try:
            snap = self.log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            return False
        if snap.is_empty():
            raise RaftError("need a non-empty snapshot to send")
        pr.become_snapshot(snap.metadata.index)
        self.send(Message(type=M.MSG_SNAP, to=to, snapshot=snap))
        return True

    def send_heartbeat(self, to: int, ctx: bytes) -> None:
        # Never tell a follower to commit past what it is known to have (it may lack it).
        pr = self.tracker.progress[to]
        commit = min(pr.match, self.log.committed)
        self.send(Message(type=M.MSG_HEARTBEAT, to=to, commit=commit, context=ctx))
        pr.told_commit(commit)

    def bcast_append(self) -> None:
        for i, _ in self.tracker.peers(self.id):
            self.send_append(i)

    def bcast_append_soon(self) -> None:
        """Broadcast when the next Ready is collected: many proposals or acknowledgements
        between two Readies then cost one MsgApp per follower instead of one each."""
        self.bcast_pending = True

    def flush(self) -> None:
        if self.bcast_pending:
            self.bcast_pending = False
            if self.state is StateType.LEADER:
                self.bcast_append()

    def commit_advanced(self) -> None:
        """Tell the followers of a new commit index: with an append of its own for each
        (etcd), or, with lazy_commit, only those whose forwarded proposal it commits; the
        others learn it from the next append or heartbeat, or from send_commit_news."""
        if not self.lazy_commit:
            self.bcast_append_soon()
            return
        committed = self.log.committed
        for i, pr in self.tracker.peers(self.id):
            if pr.owes_forwarded(committed):
                self.send_append(i)

    def commit_news_owed(self) -> bool:
        """Whether a follower that could be sent an append now is owed the commit index (a
        paused one is not counted: the application would wake for nothing)."""
        if self.state is not StateType.LEADER:
            return False
        committed = self.log.committed
        return any(pr.owes_commit(committed) and not pr.is_paused() for _, pr in self.tracker.peers(self.id))

    def send_commit_news(self) -> None:
        """An append (empty if nothing else is due) to each follower owed the commit index."""
        if self.state is not StateType.LEADER:
            return
        committed = self.log.committed
        for i, pr in self.tracker.peers(self.id):
            if pr.owes_commit(committed):
                self.send_append(i)

    def bcast_heartbeat(self, ctx: bytes | None = None) -> None:
        if ctx is None:
            ctx = self.read_only.last_pending_request_ctx()
        for i, _ in self.tracker.peers(self.id):
            self.send_heartbeat(i, ctx)

    # -- commit ---------------------------------------------------------------------------
    def maybe_commit(self) -> bool:
        if self.log.maybe_commit(self.tracker.committed(), self.term):
            self._release_pending_read_index()
            return True
        return False

    def on_persisted(self) -> None:
        """Our own log became durable up to log.persisted: as leader, count ourselves (and tell
        the followers waiting on it, with stable_news); as follower, see whether the leader's
        durable log and ours now make a quorum."""
        if self.state is not StateType.LEADER:
            if self.leader_stable:
                self._maybe_commit_stable()
            return
        pr = self.tracker.progress.get(self.id)
        if pr is None or not pr.maybe_update(self.log.persisted):
            return
        if self.maybe_commit():
            self.commit_advanced()
        if self.stable_news:
            self._send_stable_news()

    def _send_stable_news(self) -> None:
        """MSG_STABLE to each voter whose forwarded proposal is durable here but not committed:
        it may commit it as soon as its own copy is durable. Not while a conf change waits to be
        applied, so that every change up to the index told is in the voters sent."""
        stable, committed = self.log.persisted, self.log.committed
        if self.pending_conf_index > self.log.applied:
            return
        voters = b""
        for i, pr in self.tracker.peers(self.id):
            if pr.knows_stable and i in self.tracker.voters and any(committed < f <= stable for f in pr.forwarded):
                voters = voters or encode_voters(self.tracker.voters)
                self.send(Message(type=M.MSG_STABLE, to=i, index=stable, context=voters))
                self.stable_told = pr.stable_sent = stable

    def _count_stable_commit(self, pr: Progress) -> None:
        """A follower told our durable index commits what it also holds durably: count it told
        that commit, so no append goes just to tell it. (One whose voters are not yet ours, which
        therefore commits nothing itself, learns it from the next append or heartbeat.)"""
        index = min(pr.stable_sent, pr.match)
        if index > pr.sent_commit and self.log.zero_term_on_compacted(index) == self.term:
            pr.told_commit(index)

    def _maybe_commit_stable(self) -> None:
        """Follower: commit what both our durable log and the leader's (as it told, this term)
        hold, when the two of us are a quorum of the voters it counts and those are ours. Raft's
        rule: an entry of the leader's term on a quorum is committed; matching its term here
        means our log equals the leader's up to it."""
        index = min(self.leader_stable, self.log.persisted)
        if index <= self.log.committed:
            return
        voters = self.tracker.voters
        if voters != self.leader_voters or self.id not in voters or self.lead not in voters:
            return
        if not self.tracker.has_quorum({self.id, self.lead}):
            return
        if self.log.zero_term_on_compacted(index) == self.term:
            self.log.commit_to(index)

    def committed_entry_in_current_term(self) -> bool:
        return self.log.zero_term_on_compacted(self.log.committed) == self.term

    # -- role changes -----------------------------------------------------------------
    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.reset_randomized_election_timeout()
        self.abort_leader_transfer()
        self.tracker.reset_votes()
        last = self.log.last_index()
        for i, pr in self.tracker.progress.items():
            pr.match = 0
            pr.next = last + 1
            pr.state = ProgressState.PROBE
            pr.probe_sent = False
            pr.pending_snapshot = 0
            pr.recent_active = False
            pr.inflights.reset()
            pr.sent_commit = pr.stable_sent = 0
            pr.forwarded.clear()
            if i == self.id:
                pr.match = self.log.persisted
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_read_index = []
        self.stable_told = self.leader_stable = 0
        self.leader_voters = frozenset()

    def reset_randomized_election_timeout(self) -> None:
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(self.election_timeout)

    def become_follower(self, term: int, lead: int) -> None:
        self._step = self._step_follower
        self._reset(term)
        self._tick = self._tick_election
        self.lead = lead
        self.state = StateType.FOLLOWER

    def become_candidate(self) -> None:
        if self.state is StateType.LEADER:
            raise RaftError("invalid transition [leader -> candidate]")
        self._step = self._step_candidate
        self._reset(self.term + 1)
        self._tick = self._tick_election
        self.vote = self.id
        self.state = StateType.CANDIDATE

    def become_pre_candidate(self) -> None:
        if self.state is StateType.LEADER:
            raise RaftError("invalid transition [leader -> pre-candidate]")
        # Pre-vote changes neither term nor vote: a node that cannot win disturbs nobody.
        self._step = self._step_candidate
        self.tracker.reset_votes()
        self._tick = self._tick_election
        self.lead = NONE
        self.state = StateType.PRE_CANDIDATE

    def become_leader(self) -> None:
        if self.state is StateType.FOLLOWER:
            raise RaftError("invalid transition [follower -> leader]")
        self._step = self._step_leader
        self._reset(self.term)
        self._tick = self._tick_heartbeat
        self.lead = self.id
        self.state = StateType.LEADER
        pr = self.tracker.progress.get(self.id)
        if pr is not None:
            pr.become_replicate()
            pr.recent_active = True
        self.append_entry([Entry(0, 0)])
        # No conf change until this empty entry of our term is applied: with one change at
        # a time, a leader must commit in its own term first (the single-server-change fix).
        self.pending_conf_index = self.log.last_index()

    def append_entry(self, es: list[Entry]) -> None:
        li = self.log.last_index()
        ents = [Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(es)]
        self.log.append(ents)
        # Our own progress advances in on_persisted, once the entries are durable.

    # -- ticks ------------------------------------------------------------------------
    def tick(self) -> None:
        self._tick()

    def past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.past_election_timeout():
            self.election_elapsed = 0
            self.step(Message(type=M.MSG_HUP, frm=self.id))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self.step(Message(type=M.MSG_CHECK_QUORUM, frm=self.id))
            if self.state is StateType.LEADER and self.lead_transferee != NONE:
                self.abort_leader_transfer()
        if self.state is not StateType.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self.step(Message(type=M.MSG_BEAT, frm=self.id))

    # -- elections ----------------------------------------------------------------------
    def hup(self, t: CampaignType) -> None:
        if self.state is StateType.LEADER:
            return
        if not self.promotable():
            return
        if self.log.committed > self.log.applied:
            # Campaigning with an unapplied committed conf change could count the wrong quorum.
            pending = self.log.slice(self.log.applied + 1, self.log.committed + 1)
            if any(e.type is EntryType.CONF_CHANGE for e in pending):
                return
        self.campaign(t)

    def campaign(self, t: CampaignType) -> None:
        if t is CampaignType.PRE_ELECTION:
            self.become_pre_candidate()
            vote_msg = M.MSG_PRE_VOTE
            term = self.term + 1
        else:
            self.become_candidate()
            vote_msg = M.MSG_VOTE
            term = self.term
        if self.poll(self.id, True) is VoteResult.WON:
            # A single voter wins at once, through the same path as any election.
            if t is CampaignType.PRE_ELECTION:
                self.campaign(CampaignType.ELECTION)
            else:
                self.become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if t is CampaignType.TRANSFER else b""
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for i in sorted(self.tracker.voters):
            if i == self.id:
                continue
            self.send(
                Message(type=vote_msg, to=i, term=term, index=last_index, log_term=last_term, context=ctx)
            )

    def poll(self, id_: int, granted: bool) -> VoteResult:
        self.tracker.record_vote(id_, granted)
        return self.tracker.vote_result()

    # -- the one entry point ------------------------------------------------------------
    def step(self, m: Message) -> None:
        if m.term == 0:
            pass  # local message
        elif m.term > self.term:
            if m.type in (M.MSG_VOTE, M.MSG_PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum and self.lead != NONE and self.election_elapsed < self.election_timeout
                )
                if not force and in_lease:
                    # We heard from a live leader recently: a rejoining node must not depose it.
                    return
            if m.type is M.MSG_PRE_VOTE:
                pass  # a pre-vote never changes our term
            elif m.type is M.MSG_PRE_VOTE_RESP and not m.reject:
                pass  # our term rises only when the pre-campaign wins
            elif m.type in (M.MSG_APP, M.MSG_HEARTBEAT, M.MSG_SNAP):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and m.type in (M.MSG_HEARTBEAT, M.MSG_APP):
                # A stale leader (e.g. rejoining after a partition) learns our term from this,
                # and steps down; otherwise it would never find out.
                self.send(Message(type=M.MSG_APP_RESP, to=m.frm))
            elif m.type is M.MSG_PRE_VOTE:
                self.send(Message(type=M.MSG_PRE_VOTE_RESP, to=m.frm, term=self.term, reject=True))
            return

        if m.type is M.MSG_HUP:
            self.hup(CampaignType.PRE_ELECTION if self.pre_vote else CampaignType.ELECTION)
        elif m.type in (M.MSG_VOTE, M.MSG_PRE_VOTE):
            can_vote = (
                self.vote == m.frm
                or (self.vote == NONE and self.lead == NONE)
                or (m.type is M.MSG_PRE_VOTE and m.term > self.term)
            )
            resp = vote_response_type(m.type)
            if can_vote and self.log.is_up_to_date(m.index, m.log_term):
                self.send(Message(type=resp, to=m.frm, term=m.term))
                if m.type is M.MSG_VOTE:
                    self.election_elapsed = 0
                    self.vote = m.frm
            else:
                # Our last entry rides along (etcd leaves these zero): a removed leader still
                # trying to hand off learns from it that the cluster has moved past it.
                last_index, last_term = self.log.last_index(), self.log.last_term()
                self.send(
                    Message(
                        type=resp, to=m.frm, term=self.term, reject=True, index=last_index, log_term=last_term
                    )
                )
        else:
            self._step(m)

    # -- leader ---------------------------------------------------------------------------
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t is M.MSG_BEAT:
            self.bcast_heartbeat()
            return
        if t is M.MSG_CHECK_QUORUM:
            if not self.tracker.quorum_active(self.id):
                self.become_follower(self.term, NONE)
            for i, p in self.tracker.progress.items():
                if i != self.id:
                    p.recent_active = False
            return
        if t is M.MSG_PROP:
            self._leader_propose(m)
            return
        if t is M.MSG_READ_INDEX:
            self._leader_read_index(m)
            return
        pr = self.tracker.progress.get(m.frm)
        if pr is None:
            return
        if t is M.MSG_APP_RESP:
            self._handle_append_response(m)
        elif t is M.MSG_HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first_one()
            if pr.match < self.log.last_index():
                self.send_append(m.frm)
            if m.context:
                self._read_index_ack(m)
        elif t is M.MSG_SNAP_STATUS:
            if pr.state is not ProgressState.SNAPSHOT:
                return
            if m.reject:
                pr.pending_snapshot = 0
            pr.become_probe()
            # Wait for the follower's next answer (or a heartbeat) before probing again.
            pr.probe_sent = True
        elif t is M.MSG_UNREACHABLE:
            if pr.state is ProgressState.REPLICATE:
                pr.become_probe()
        elif t is M.MSG_TRANSFER_LEADER:
            self._handle_transfer_leader(m)

    def _leader_propose(self, m: Message) -> None:
        if not m.entries:
            raise RaftError("stepped empty MsgProp")
        if self.id not in self.tracker.progress:
            raise ProposalDroppedError("this node was removed from the configuration")
        if self.lead_transferee != NONE:
            raise ProposalDroppedError(f"leadership is being transferred to {self.lead_transferee}")
        ents = list(m.entries)
        for i, e in enumerate(ents):
            if e.type is EntryType.CONF_CHANGE:
                if self.pending_conf_index > self.log.applied:
                    # One change at a time: refuse (as an empty entry) until the last is applied.
                    ents[i] = Entry(0, 0)
                else:
                    self.pending_conf_index = self.log.last_index() + i + 1
        self.append_entry(ents)
        if (self.lazy_commit or self.stable_news) and m.frm != self.id and (origin := self.tracker.progress.get(m.frm)) is not None:
            origin.forwarded.append(self.log.last_index())  # its client waits for this commit
        self.bcast_append_soon()

    def _leader_read_index(self, m: Message) -> None:
        if self.tracker.voters == {self.id}:
            if self.committed_entry_in_current_term():
                self._respond_read_index(m, self.log.committed)
            else:
                self.pending_read_index.append(m)
            return
        if not self.committed_entry_in_current_term():
            # Our commit index may lag the old leader's until our first entry commits.
            self.pending_read_index.append(m)
            return
        # a follower may have committed up to what we told it is durable here (stable_news)
        self.read_only.add_request(max(self.log.committed, self.stable_told), m)
        self.read_only.recv_ack(self.id, m.context)
        self.bcast_heartbeat(m.context)

    def _release_pending_read_index(self) -> None:
        if not self.pending_read_index or not self.committed_entry_in_current_term():
            return
        pending, self.pending_read_index = self.pending_read_index, []
        for m in pending:
            self._leader_read_index(m)

    def _read_index_ack(self, m: Message) -> None:
        acks = self.read_only.recv_ack(m.frm, m.context)
        if acks is None or not self.tracker.has_quorum(acks):
            return
        for rs in self.read_only.advance(m.context):
            self._respond_read_index(rs.req, rs.index)

    def _respond_read_index(self, req: Message, index: int) -> None:
        if req.frm in (NONE, self.id):
            self.read_states.append(ReadState(index, req.context))
        else:
            self.send(Message(type=M.MSG_READ_INDEX_RESP, to=req.frm, index=index, context=req.context))

    def _handle_append_response(self, m: Message) -> None:
        pr = self.tracker.progress[m.frm]
        pr.recent_active = True
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                # Skip every entry of the follower's conflicting term in one round trip.
                next_probe = self.log.find_conflict_by_term(m.reject_hint, m.log_term)[0]
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self.send_append(m.frm)
            return
        pr.knows_stable = m.context == KNOWS_STABLE
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if pr.stable_sent and pr.knows_stable:
            self._count_stable_commit(pr)
        committed = self.maybe_commit()
        if committed:
            self.commit_advanced()
        if old_paused and (not committed or self.lazy_commit):  # etcd's broadcast reaches it otherwise
            self.send_append(m.frm)
        while self.maybe_send_append(m.frm, False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self.send(Message(type=M.MSG_TIMEOUT_NOW, to=m.frm))
        self._maybe_hand_off()

    def _handle_transfer_leader(self, m: Message) -> None:
        pr = self.tracker.progress[m.frm]
        if pr.is_learner:
            return
        transferee = m.frm
        if self.lead_transferee != NONE:
            if self.lead_transferee == transferee:
                return
            self.abort_leader_transfer()
        if transferee == self.id:
            return
        # The transfer must finish within one election timeout or it is abandoned.
        self.election_elapsed = 0
        self.lead_transferee = transferee
        if pr.match == self.log.last_index():
            self.send(Message(type=M.MSG_TIMEOUT_NOW, to=transferee))
        else:
            self.send_append(transferee)

    def abort_leader_transfer(self) -> None:
        self.lead_transferee = NONE

    # -- candidate ------------------------------------------------------------------------
    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = M.MSG_PRE_VOTE_RESP if self.state is StateType.PRE_CANDIDATE else M.MSG_VOTE_RESP
        if t is M.MSG_PROP:
            raise ProposalDroppedError("no leader")
        if t is M.MSG_APP:
            self.become_follower(m.term, m.frm)
            self._handle_append_entries(m)
        elif t is M.MSG_HEARTBEAT:
            self.become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif t is M.MSG_SNAP:
            self.become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif t is my_resp:
            if m.reject and (m.log_term, m.index) > (self.log.last_term(), self.log.last_index()):
                self.handoff_pending = False  # voters hold entries we lack: others lead now
            res = self.poll(m.frm, not m.reject)
            if res is VoteResult.WON:
                if self.state is StateType.PRE_CANDIDATE:
                    self.campaign(CampaignType.ELECTION)
                else:
                    self.become_leader()
                    self.bcast_append()
            elif res is VoteResult.LOST:
                self.become_follower(self.term, NONE)

    # -- follower -------------------------------------------------------------------------
    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t is M.MSG_PROP:
            if self.lead == NONE:
                raise ProposalDroppedError("no leader")
            self.send(Message(type=M.MSG_PROP, to=self.lead, entries=m.entries))
        elif t is M.MSG_APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append_entries(m)
        elif t is M.MSG_HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_heartbeat(m)
        elif t is M.MSG_SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t is M.MSG_TRANSFER_LEADER:
            if self.lead != NONE:
                self.send(Message(type=M.MSG_TRANSFER_LEADER, to=self.lead, frm=m.frm))
        elif t is M.MSG_TIMEOUT_NOW:
            # The leader chose us: campaign at once, skipping pre-vote, forcing the vote.
            self.hup(CampaignType.TRANSFER)
        elif t is M.MSG_READ_INDEX:
            if self.lead != NONE:
                self.send(Message(type=M.MSG_READ_INDEX, to=self.lead, context=m.context))
        elif t is M.MSG_READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))
        elif t is M.MSG_STABLE and m.frm == self.lead and m.index > self.leader_stable:
            self.leader_stable, self.leader_voters = m.index, decode_voters(m.context)
            self._maybe_commit_stable()

    def _handle_append_entries(self, m: Message) -> None:
        self.handoff_pending = False  # a leader exists: nothing left to hand off
        knows = KNOWS_STABLE if self.stable_news else b""
        if m.index < self.log.committed:
            self.send(Message(type=M.MSG_APP_RESP, to=m.frm, index=self.log.committed, context=knows))
            return
        last, ok = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if ok:
            self.send(Message(type=M.MSG_APP_RESP, to=m.frm, index=last, context=knows))
            return
        hint_index = min(m.index, self.log.last_index())
        hint_index, hint_term = self.log.find_conflict_by_term(hint_index, m.log_term)
        self.send(
            Message(
                type=M.MSG_APP_RESP,
                to=m.frm,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.handoff_pending = False
        self.log.commit_to(m.commit)
        self.send(Message(type=M.MSG_HEARTBEAT_RESP, to=m.frm, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        self.handoff_pending = False
        assert m.snapshot is not None
        if self.restore(m.snapshot):
            self.send(Message(type=M.MSG_APP_RESP, to=m.frm, index=self.log.last_index()))
        else:
            self.send(Message(type=M.MSG_APP_RESP, to=m.frm, index=self.log.committed))

    def restore(self, s: Snapshot) -> bool:
        """Adopt a snapshot from the leader; False if it brings nothing new."""
        meta = s.metadata
        if meta.index <= self.log.committed:
            return False
        if self.state is not StateType.FOLLOWER:
            self.become_follower(self.term + 1, NONE)
            return False
        cs = meta.conf_state
        # A snapshot may predate the change that added us: we then learn our membership
        # from the log entries after it, as a member bootstrapped empty would.
        if self.log.match_term(meta.index, meta.term):
            # We already have the entries: just fast-forward the commit index.
            self.log.commit_to(meta.index)
            return False
        self.log.restore(s)
        self.tracker.restore(cs, self.log.last_index() + 1)
        self.is_learner = self.id in self.tracker.learners
        pr = self.tracker.progress.get(self.id)
        if pr is not None:
            pr.match = self.log.persisted
        return True

    # -- membership -------------------------------------------------------------------
    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        if cc.node_id != NONE:
            if cc.type is ConfChangeType.ADD_NODE:
                self._add_node(cc.node_id, learner=False)
            elif cc.type is ConfChangeType.ADD_LEARNER_NODE:
                self._add_node(cc.node_id, learner=True)
            elif cc.type is ConfChangeType.REMOVE_NODE:
                self._remove_node(cc.node_id)
        return self.tracker.conf_state()

    def _add_node(self, id_: int, learner: bool) -> None:
        tr = self.tracker
        pr = tr.progress.get(id_)
        if pr is None:
            pr = tr.init_progress(id_, 0, self.log.last_index() + 1, learner)
            (tr.learners if learner else tr.voters).add(id_)
        elif pr.is_learner and not learner:
            # Promotion: the learner already has the log; it simply starts counting.
            pr.is_learner = False
            tr.learners.discard(id_)
            tr.voters.add(id_)
        else:
            return  # already a voter (a voter is never demoted), or already a learner
        if id_ == self.id:
            self.is_learner = learner
        # A new member has had no chance to answer yet; do not let check-quorum count it out.
        pr.recent_active = True
        if self.state is StateType.LEADER and not learner and self.maybe_commit():
            self.bcast_append_soon()

    def _remove_node(self, id_: int) -> None:
        tr = self.tracker
        if id_ not in tr.progress:
            return
        del tr.progress[id_]
        tr.voters.discard(id_)
        tr.learners.discard(id_)
        if not tr.voters:
            return
        if self.state is StateType.LEADER:
            if self.maybe_commit():
                self.bcast_append_soon()
            if self.lead_transferee == id_:
                self.abort_leader_transfer()
            if id_ == self.id:
                self.handoff_pending = True
                self.bcast_append_soon()
                self._maybe_hand_off()

    def _maybe_hand_off(self) -> None:
        """A leader that applied its own removal keeps replicating (taking no proposals) until a
        remaining voter holds its whole log, then tells that voter to campaign and steps down.

        Stepping down at once could leave two voters stuck: the survivor, not yet knowing the
        removal committed, still counts the removed node, whose vote it cannot get while that
        node's log is longer than its own. For the same reason, should it lose leadership first
        (check-quorum, a higher term), it may still campaign, counting only the remaining voters,
        until it hands off or hears from another leader."""
        if self.state is not StateType.LEADER or self.id in self.tracker.progress:
            return
        last = self.log.last_index()
        for i in sorted(self.tracker.voters):
            if self.tracker.progress[i].match == last:
                self.send(Message(type=M.MSG_TIMEOUT_NOW, to=i))
                self.handoff_pending = False
                self.become_follower(self.term, NONE)
                return

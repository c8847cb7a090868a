"""A seeded, deterministic simulator for the Raft core.

3 to 7 voters (plus spare ids that may join) run the pure core in one process. The
network drops, delays, duplicates, reorders and partitions messages (both ways or one
way, at random or around the current leader); clocks skew; nodes crash and restart from
what they persisted, some the moment they win an election; clients propose, change
membership (also through followers), transfer leadership and ask for ReadIndex. Some
seeds turn pre-vote or check-quorum off. Invariants are checked at every step:

* election safety: at most one leader per term;
* log matching: entries that share (index, term) carry the same data and the same
  predecessor term, which by induction makes the logs identical up to them (checked on
  every entry any node persists);
* leader append-only: a leader's log never loses or rewrites an entry during its term;
* commitment rule (§5.4.2): a leader moves its commit index only onto an entry of its
  own term (the rule whose absence Figure 8 exploits);
* leader completeness / no committed entry lost: every leader holds the highest entry
  any node has applied, with the same term;
* state machine safety: every node applies the same sequence (a hash chain per index);
* ReadIndex: every answer is at least the highest commit index known anywhere at the
  time of the request.

After the faults heal, a leader must appear and every entry in its log, plus fresh
proposals, must be applied by every member within a bounded number of ticks.

Every run is a function of its seed: ``python -m tests.raft.sim SEED`` replays one.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import sys
from collections import Counter
from dataclasses import dataclass, field

from pyetcd.raft import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDroppedError,
    RawNode,
    Ready,
    Snapshot,
    StateType,
)

ELECTION_TICK = 10


class SimFailure(AssertionError):
    """An invariant broke; the message says how to replay the run."""


@dataclass(frozen=True)
class SimParams:
    seed: int
    voters: int = 3
    spares: int = 2
    chaos_ticks: int = 300
    drop: float = 0.05
    dup: float = 0.02
    max_delay: int = 3
    partition_rate: float = 0.01
    crash_rate: float = 0.005
    propose_rate: float = 0.4
    conf_change_rate: float = 0.02
    transfer_rate: float = 0.01
    read_rate: float = 0.1
    compact_rate: float = 0.05
    max_inflight_msgs: int = 4
    max_inflight_bytes: int = 0
    max_size_per_msg: int = 256
    # Faults aimed at whoever leads right now (crash it, or cut it off with a minority).
    leader_fault_rate: float = 0.0
    # Chance that a node crashes the moment it becomes leader, before sending anything.
    new_leader_fault: float = 0.0
    pre_vote: bool = True
    check_quorum: bool = True
    # Share of partitions that cut one direction only; chance a clock skips a tick.
    one_way_share: float = 0.0
    tick_skew: float = 0.0
    heal_bound: int = 40 * ELECTION_TICK
    # Config.lazy_commit, with the leader's owed commit news sent at random moments.
    lazy_commit: bool = False
    # Config.stable_news: followers commit from the leader's durable index and their own.
    stable_news: bool = False

    @classmethod
    def from_seed(cls, seed: int, chaos_ticks: int = 300) -> SimParams:
        """Everything about a run derives from its seed, so the seed alone replays it."""
        r = random.Random(seed ^ 0x5EED)
        return cls(
            seed=seed,
            voters=r.randint(3, 7),
            spares=r.randint(0, 3),
            chaos_ticks=chaos_ticks,
            drop=r.choice([0.0, 0.02, 0.1, 0.25]),
            dup=r.choice([0.0, 0.02, 0.1]),
            max_delay=r.choice([0, 1, 3, 8]),
            partition_rate=r.choice([0.0, 0.01, 0.03]),
            crash_rate=r.choice([0.0, 0.003, 0.01]),
            propose_rate=r.choice([0.2, 0.5, 1.0]),
            conf_change_rate=r.choice([0.0, 0.01, 0.05, 0.2]),
            transfer_rate=r.choice([0.0, 0.005, 0.02]),
            read_rate=r.choice([0.0, 0.05, 0.2]),
            compact_rate=r.choice([0.0, 0.02, 0.1]),
            max_inflight_msgs=r.choice([1, 4, 64]),
            max_inflight_bytes=r.choice([0, 0, 200, 2000]),
            max_size_per_msg=r.choice([0, 64, 256, 1 << 20]),
            leader_fault_rate=r.choice([0.0, 0.0, 0.02, 0.08]),
            new_leader_fault=r.choice([0.0, 0.0, 0.2, 0.5]),
            pre_vote=r.random() < 0.75,
            check_quorum=r.random() < 0.75,
            one_way_share=r.choice([0.0, 0.3]),
            tick_skew=r.choice([0.0, 0.0, 0.1, 0.3]),
            lazy_commit=r.random() < 0.5,  # drawn last: the draws above stay what they were
            stable_news=r.random() < 0.5,
        )


def chain_hash(prev: bytes, e: Entry) -> bytes:
    h = hashlib.blake2b(prev, digest_size=8)
    h.update(e.term.to_bytes(8, "big"))
    h.update(e.type.value.to_bytes(1, "big"))
    h.update(e.data)
    return h.digest()


GENESIS = b"\0" * 8


@dataclass
class App:
    """The replicated state machine of one node: how far it applied, and the hash chain."""

    applied: int = 0
    chain: bytes = GENESIS
    conf_state: ConfState = field(default_factory=ConfState)

    def snapshot_data(self) -> bytes:
        return self.applied.to_bytes(8, "big") + self.chain

    @classmethod
    def from_snapshot(cls, snap: Snapshot) -> App:
        if snap.is_empty():
            return cls(0, GENESIS, snap.metadata.conf_state)
        return cls(snap.metadata.index, snap.data[8:], snap.metadata.conf_state)


class Sim:
    def __init__(self, p: SimParams) -> None:
        self.p = p
        self.rng = random.Random(p.seed)
        self.ids = list(range(1, p.voters + p.spares + 1))
        bootstrap = ConfState(voters=tuple(range(1, p.voters + 1)))
        self.storage = {i: MemoryStorage(bootstrap) for i in self.ids}
        self.apps = {i: App(conf_state=bootstrap) for i in self.ids}
        self.nodes: dict[int, RawNode | None] = {}
        self.restarts: Counter[int] = Counter()
        for i in self.ids:
            self.nodes[i] = self._boot(i)
        self.now = 0
        self.seq = 0
        self.net: list[tuple[int, int, Message]] = []
        self.partition: dict[int, int] | None = None
        self.one_way = False
        self.faults = True
        self.stats: Counter[str] = Counter()
        self.removed: set[int] = set()
        # invariant bookkeeping
        self.leader_of_term: dict[int, int] = {}
        self.leader_log: dict[int, tuple[int, int, int, int]] = {}  # node -> (term, last, last term, commit)
        self.entry_at: dict[tuple[int, int], tuple[EntryType, bytes, int]] = {}
        self.chain: dict[int, bytes] = {0: GENESIS}
        self.applied_term: dict[int, int] = {0: 0}
        self.max_applied = 0
        self.commit_by_term: dict[int, tuple[int, int]] = {}
        self.max_commit = 0
        self.reads: dict[bytes, int] = {}
        self.proposed = 0

    # -- nodes ---------------------------------------------------------------------------
    def _boot(self, i: int) -> RawNode:
        st = self.storage[i]
        app = App.from_snapshot(st.snapshot())
        self.apps[i] = app
        p = self.p
        cfg = Config(
            id=i,
            storage=st,
            election_tick=ELECTION_TICK,
            heartbeat_tick=1,
            applied=app.applied,
            max_size_per_msg=p.max_size_per_msg,
            max_inflight_msgs=p.max_inflight_msgs,
            max_inflight_bytes=p.max_inflight_bytes,
            seed=p.seed * 1009 + i * 31 + self.restarts[i],
            pre_vote=p.pre_vote,
            check_quorum=p.check_quorum,
            lazy_commit=p.lazy_commit,
            stable_news=p.stable_news,
        )
        return RawNode(cfg)

    def crash(self, i: int) -> None:
        self.nodes[i] = None
        self.leader_log.pop(i, None)
        self.stats["crashes"] += 1

    def restart(self, i: int) -> None:
        self.restarts[i] += 1
        self.nodes[i] = self._boot(i)
        self.stats["restarts"] += 1

    def live(self) -> list[tuple[int, RawNode]]:
        return [(i, n) for i, n in self.nodes.items() if n is not None]

    def leader(self) -> tuple[int, RawNode] | None:
        best: tuple[int, RawNode] | None = None
        for i, n in self.live():
            if n.raft.state is StateType.LEADER and (best is None or n.raft.term > best[1].raft.term):
                best = (i, n)
        return best

    # -- failures -------------------------------------------------------------------------
    def fail(self, what: str) -> SimFailure:
        return SimFailure(
            f"{what}\n  at tick {self.now}; replay with: python -m tests.raft.sim {self.p.seed}\n"
            f"  keep it in test_sim.REGRESSIONS as: {self.p!r}"
        )

    # -- network --------------------------------------------------------------------------
    def cut(self, a: int, b: int) -> bool:
        if self.partition is None:
            return False
        ga, gb = self.partition.get(a, 0), self.partition.get(b, 0)
        # A one-way partition only loses what group 0 sends to group 1.
        return ga != gb and (not self.one_way or ga == 0)

    def send(self, m: Message) -> None:
        self.stats["msgs"] += 1
        if self.faults and (self.cut(m.frm, m.to) or self.rng.random() < self.p.drop):
            self._dropped(m)
            return
        copies = 2 if self.faults and self.rng.random() < self.p.dup else 1
        self.stats["duplicated"] += copies - 1
        for _ in range(copies):
            delay = self.rng.randint(0, self.p.max_delay) if self.faults else 0
            self.seq += 1
            heapq.heappush(self.net, (self.now + delay, self.seq, m))

    def _dropped(self, m: Message) -> None:
        self.stats["dropped"] += 1
        sender = self.nodes.get(m.frm)
        if sender is None:
            return
        if m.type is MessageType.MSG_SNAP:
            sender.report_snapshot(m.to, failed=True)
        elif self.rng.random() < 0.3:
            sender.report_unreachable(m.to)

    def deliver_due(self) -> int:
        n = 0
        while self.net and self.net[0][0] <= self.now:
            _, _, m = heapq.heappop(self.net)
            node = self.nodes.get(m.to)
            if node is None or (self.faults and self.cut(m.frm, m.to)):
                self._dropped(m)
                continue
            n += 1
            committed = node.raft.log.committed
            node.step(m)
            if m.type is MessageType.MSG_STABLE and node.raft.log.committed > committed:
                self.stats["stable_commits"] += 1  # a follower committed on the leader's word (stable_news)
            if m.type is MessageType.MSG_SNAP:
                self.stats["snapshots_sent"] += 1
                sender = self.nodes.get(m.frm)
                if sender is not None:
                    sender.report_snapshot(m.to, failed=False)
            elif m.type is MessageType.MSG_TIMEOUT_NOW:
                self.stats["timeout_now"] += 1
        return n

    # -- the node loop (what a server does with a Ready) --------------------------------
    def process(self, i: int, node: RawNode) -> None:
        rd = node.ready()
        st = self.storage[i]
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
            self.stats["snapshots_applied"] += 1
        if rd.entries:
            self.check_persisted_entries(i, st, rd.entries)
            st.append(rd.entries)
        if rd.hard_state is not None:
            if rd.hard_state.commit < st.hard_state.commit:
                raise self.fail(f"node {i}: durable commit went back {st.hard_state} -> {rd.hard_state}")
            if rd.hard_state.term < st.hard_state.term:
                raise self.fail(f"node {i}: durable term went back {st.hard_state} -> {rd.hard_state}")
            st.set_hard_state(rd.hard_state)
        if self.faults and (
            self.rng.random() < self.p.crash_rate / 4
            or (
                rd.soft_state is not None
                and rd.soft_state.raft_state is StateType.LEADER
                and self.rng.random() < self.p.new_leader_fault
            )
        ):
            # Persisted, but crashed before sending or applying. Aimed at fresh leaders, this
            # leaves logs ending in an entry of a term nobody else saw (Figure 8's S5).
            self.crash(i)
            self.stats["crashes_before_send"] += 1
            return
        for m in rd.messages:
            self.send(m)
        self.apply(i, node, rd)
        node.advance(rd)
        self.maybe_compact(i)

    def check_persisted_entries(self, i: int, st: MemoryStorage, ents: list[Entry]) -> None:
        try:
            prev_term = st.term(ents[0].index - 1) if ents[0].index > 1 else 0
        except CompactedError as err:
            raise self.fail(f"node {i}: persisting {ents[0].index} below its snapshot") from err
        for e in ents:
            key = (e.index, e.term)
            val = (e.type, e.data, prev_term)
            seen = self.entry_at.setdefault(key, val)
            if seen != val:
                raise self.fail(f"log matching: node {i} entry {key} = {val}, elsewhere {seen}")
            prev_term = e.term

    def apply(self, i: int, node: RawNode, rd: Ready) -> None:
        app = self.apps[i]
        if rd.snapshot is not None:
            restored = App.from_snapshot(rd.snapshot)
            idx = restored.applied
            if self.chain.get(idx, restored.chain) != restored.chain:
                raise self.fail(f"node {i}: snapshot at {idx} differs from applied history")
            app = self.apps[i] = restored
        for e in rd.committed_entries:
            if e.index != app.applied + 1:
                raise self.fail(f"node {i}: applied {e.index} after {app.applied}")
            app.chain = chain_hash(app.chain, e)
            app.applied = e.index
            seen = self.chain.setdefault(e.index, app.chain)
            if seen != app.chain:
                raise self.fail(f"state machine safety: node {i} applied a different entry at {e.index}")
            self.applied_term.setdefault(e.index, e.term)
            if e.index > self.max_applied:
                self.max_applied = e.index
                self.stats["committed"] += 1
            if e.type is EntryType.CONF_CHANGE:
                cc = ConfChange.decode(e.data)
                app.conf_state = node.apply_conf_change(cc)
                self.stats[f"conf_{cc.type.name.lower()}_applied"] += 1
        for rs in rd.read_states:
            floor = self.reads.pop(rs.request_ctx, None)
            if floor is None:
                continue  # a duplicate answer
            if rs.index < floor:
                raise self.fail(f"ReadIndex {rs.index} below commit index {floor} at request time")
            self.stats["reads_answered"] += 1

    def maybe_compact(self, i: int) -> None:
        if not self.faults or self.rng.random() >= self.p.compact_rate:
            return
        st, app = self.storage[i], self.apps[i]
        if app.applied <= st.snapshot().metadata.index:
            return
        st.create_snapshot(app.applied, app.conf_state, app.snapshot_data())
        keep = self.rng.randint(0, 5)
        if app.applied - keep >= st.first_index():
            st.compact(app.applied - keep)
        self.stats["compactions"] += 1

    # -- invariants checked at every step -------------------------------------------------
    def check(self) -> None:
        for i, n in self.live():
            r = n.raft
            if r.log.committed > self.max_commit:
                self.max_commit = r.log.committed
            if r.state is not StateType.LEADER:
                self.leader_log.pop(i, None)
                continue
            other = self.leader_of_term.setdefault(r.term, i)
            if other != i:
                raise self.fail(f"election safety: nodes {other} and {i} both lead term {r.term}")
            last, committed = r.log.last_index(), r.log.committed
            prev = self.leader_log.get(i)
            if prev is not None and prev[0] == r.term:
                if last < prev[1] or r.log.zero_term_on_compacted(prev[1]) not in (prev[2], 0):
                    raise self.fail(f"leader append-only: node {i} log went {prev[:3]} -> last {last}")
                if committed > prev[3] and r.log.term(committed) != r.term:
                    # §5.4.2: counting replicas commits only entries of the leader's own term.
                    raise self.fail(
                        f"commitment rule: leader {i} of term {r.term} committed {committed} of term "
                        f"{r.log.term(committed)} by counting replicas"
                    )
            self.leader_log[i] = (r.term, last, r.log.last_term(), committed)
            # Leader completeness: whatever leaders of earlier terms committed, we hold.
            rec = self.commit_by_term.get(r.term)
            if rec is None or r.log.committed > rec[0]:
                self.commit_by_term[r.term] = (r.log.committed, r.log.zero_term_on_compacted(r.log.committed))
            for u, (c, t) in self.commit_by_term.items():
                if u >= r.term or c < r.log.first_index():
                    continue  # later terms, or inside our snapshot (which only holds committed state)
                if r.log.term(c) != t:
                    raise self.fail(
                        f"leader completeness: leader {i} of term {r.term} has term {r.log.term(c)} at {c},"
                        f" committed with term {t} in term {u}"
                    )

    # -- one tick of the world ------------------------------------------------------------
    def step_world(self) -> None:
        self.now += 1
        if self.faults:
            self.inject_faults()
        for _, n in self.live():
            if not self.faults or self.rng.random() >= self.p.tick_skew:
                n.tick()  # with skew, some clocks run slow this tick
        if self.faults:
            self.client_ops()
        # Healed, the network is fast next to a tick: run each tick until quiet, so that a
        # backlog built up by the faults drains in a number of ticks independent of its size.
        for _ in range(10 if self.faults else 500):
            busy = False
            for i, n in self.live():
                if n.has_ready():
                    busy = True
                    self.process(i, n)
            self.check()
            if self.deliver_due():
                busy = True
            if not busy:
                break

    def inject_faults(self) -> None:
        p, rng = self.p, self.rng
        if rng.random() < p.leader_fault_rate:
            ld = self.leader()
            if ld is not None:
                if rng.random() < 0.5:
                    self.crash(ld[0])
                    self.stats["leader_crashes"] += 1
                else:
                    # Cut the leader off with at most a minority of the others.
                    others = [i for i in self.ids if i != ld[0]]
                    rng.shuffle(others)
                    minority = set(others[: rng.randint(0, (len(others) - 1) // 2)])
                    self.partition = {i: (0 if i == ld[0] or i in minority else 1) for i in self.ids}
                    self.one_way = False
                    self.stats["leader_isolations"] += 1
        if self.partition is None:
            if rng.random() < p.partition_rate:
                ids = list(self.ids)
                rng.shuffle(ids)
                k = rng.randint(1, len(ids) - 1)
                self.partition = {i: (0 if n < k else 1) for n, i in enumerate(ids)}
                self.one_way = rng.random() < p.one_way_share
                self.stats["one_way_partitions" if self.one_way else "partitions"] += 1
        elif rng.random() < 0.05:
            self.partition = None
        for i, n in list(self.nodes.items()):
            if n is None:
                if rng.random() < 0.1:
                    self.restart(i)
            elif rng.random() < p.crash_rate:
                self.crash(i)

    def client_ops(self) -> None:
        p, rng = self.p, self.rng
        live = self.live()
        if not live:
            return
        if rng.random() < p.propose_rate:
            _, n = rng.choice(live)
            self.propose(n)
        if rng.random() < p.read_rate:
            _, n = rng.choice(live)
            self.proposed += 1
            ctx = f"read-{self.proposed}".encode()
            self.reads[ctx] = max(self.max_commit, *(m.raft.log.committed for _, m in live))
            n.read_index(ctx)
            self.stats["reads_requested"] += 1
        ld = self.leader()
        if ld is None:
            return
        if p.lazy_commit and rng.random() < 0.3 and ld[1].commit_news_owed():
            ld[1].send_commit_news()
            self.stats["commit_news"] += 1
        if rng.random() < p.conf_change_rate:
            self.conf_change(ld[1])
        if rng.random() < p.transfer_rate:
            voters = [v for v in ld[1].raft.tracker.voters if v != ld[0]]
            if voters:
                ld[1].transfer_leader(rng.choice(sorted(voters)))
                self.stats["transfers_requested"] += 1

    def propose(self, n: RawNode) -> bool:
        self.proposed += 1
        try:
            n.propose(f"{self.p.seed}:{self.proposed}".encode() + b"x" * self.rng.randint(0, 40))
        except ProposalDroppedError:
            self.stats["proposals_dropped"] += 1
            return False
        self.stats["proposals"] += 1
        return True

    def conf_change(self, n: RawNode) -> None:
        cs = n.raft.tracker.conf_state()
        members = set(cs.voters) | set(cs.learners)
        spares = [i for i in self.ids if i not in members and i not in self.removed]
        options: list[ConfChange] = []
        for s in spares:
            options += [
                ConfChange(ConfChangeType.ADD_LEARNER_NODE, s),
                ConfChange(ConfChangeType.ADD_NODE, s),
            ]
        options += [ConfChange(ConfChangeType.ADD_NODE, lr) for lr in cs.learners]
        options += [ConfChange(ConfChangeType.REMOVE_NODE, lr) for lr in cs.learners]
        if len(cs.voters) > 2:
            options += [ConfChange(ConfChangeType.REMOVE_NODE, v) for v in cs.voters]
        if not options:
            return
        cc = self.rng.choice(options)
        if cc.type is ConfChangeType.REMOVE_NODE:
            self.removed.add(cc.node_id)  # ids are never reused, whether or not this commits
        if self.rng.random() < 0.3:
            n = self.rng.choice(self.live())[1]  # through a follower, forwarded to the leader
        try:
            n.propose_conf_change(cc)
            self.stats["conf_changes_proposed"] += 1
        except ProposalDroppedError:
            pass

    # -- the run --------------------------------------------------------------------------
    def run(self) -> Counter[str]:
        for _ in range(self.p.chaos_ticks):
            self.step_world()
        self.heal()
        self.stats["terms_with_leader"] = len(self.leader_of_term)
        return self.stats

    def heal(self) -> None:
        """No more faults: a leader must appear and everything it holds must commit."""
        self.faults = False
        self.partition = None
        for i, n in list(self.nodes.items()):
            if n is None:
                self.restart(i)
        start = self.now
        bound = self.p.heal_bound
        target = 0
        proposals = 0
        proposed_to: tuple[int, int] | None = None
        while self.now - start < bound:
            self.step_world()
            # A stale leader of an older term may linger (without check-quorum, one that was
            # removed never hears of the new term): the newest one is the one that counts.
            ld = self.leader()
            if ld is None:
                continue
            lid, ln = ld
            r = ln.raft
            if r.lead_transferee != 0 or not r.committed_entry_in_current_term():
                continue
            if proposed_to != (lid, r.term):
                # Whatever went to an earlier leader may legitimately be lost; start over.
                proposed_to, proposals, target = (lid, r.term), 0, 0
            if proposals < 3:
                if self.propose(ln):
                    proposals += 1
                    target = max(target, r.log.last_index())
                continue
            members = set(r.tracker.voters) | set(r.tracker.learners)
            if all(self.apps[m].applied >= target for m in members if self.nodes.get(m) is not None):
                self.stats["heal_ticks_max"] = max(self.stats["heal_ticks_max"], self.now - start)
                return
        lead = self.leader()
        raise self.fail(
            f"liveness: after healing, not everything committed within {bound} ticks "
            f"(leader {lead[0] if lead else None}, target {target}, "
            f"applied {{{', '.join(f'{i}: {a.applied}' for i, a in self.apps.items())}}})"
        )


def run_seed(seed: int, chaos_ticks: int = 300) -> Counter[str]:
    return Sim(SimParams.from_seed(seed, chaos_ticks)).run()


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(arg, dict(run_seed(int(arg))))

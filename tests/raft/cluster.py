"""A small synchronous cluster for unit tests: every node's Ready is handled as a server
would (persist, send, apply, advance) and messages are delivered at once, except over
links the test has cut. Tests drive time explicitly with `tick`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pyetcd.raft import (
    ConfChange,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    ReadState,
    Ready,
    StateType,
)
from pyetcd.raft.raft import Raft

MsgFilter = Callable[[Message], bool]


def persist(st: MemoryStorage, rd: Ready) -> None:
    """Step 1 of the Ready contract: snapshot, entries, hard state."""
    if rd.snapshot is not None:
        st.apply_snapshot(rd.snapshot)
    st.append(rd.entries)
    if rd.hard_state is not None:
        st.set_hard_state(rd.hard_state)


class Cluster:
    def __init__(
        self,
        voters: Iterable[int],
        learners: Iterable[int] = (),
        spares: Iterable[int] = (),
        *,
        pre_vote: bool = True,
        check_quorum: bool = True,
        election_tick: int = 10,
        logs: dict[int, list[int]] | None = None,
        terms: dict[int, int] | None = None,
        **cfg: int,
    ) -> None:
        """`logs` pre-fills a node's durable log with entries of the given terms (index 1..);
        `terms` sets its durable current term."""
        cs = ConfState(voters=tuple(voters), learners=tuple(learners))
        self.cfg = dict(cfg)
        self.pre_vote = pre_vote
        self.check_quorum = check_quorum
        self.election_tick = election_tick
        ids = [*cs.voters, *cs.learners, *spares]
        self.storage = {i: MemoryStorage(cs) for i in ids}
        for i, log in (logs or {}).items():
            self.storage[i].append([Entry(t, n + 1, data=f"{i}:{n + 1}".encode()) for n, t in enumerate(log)])
        for i, t in (terms or {}).items():
            self.storage[i].set_hard_state(HardState(term=t))
        self.nodes: dict[int, RawNode] = {}
        self.applied: dict[int, list[Entry]] = {i: [] for i in ids}
        self.read_states: dict[int, list[ReadState]] = {i: [] for i in ids}
        self.down: set[int] = set()
        self.cut_links: set[tuple[int, int]] = set()
        self.filters: list[MsgFilter] = []
        self.queue: list[Message] = []
        self.sent: list[Message] = []  # every message delivered, for assertions
        for i in ids:
            self.nodes[i] = self._boot(i)

    def _boot(self, i: int, applied: int = 0) -> RawNode:
        return RawNode(
            Config(
                i,
                self.storage[i],
                election_tick=self.election_tick,
                pre_vote=self.pre_vote,
                check_quorum=self.check_quorum,
                applied=applied,
                seed=i,
                **self.cfg,
            )
        )

    def raft(self, i: int) -> Raft:
        return self.nodes[i].raft

    def state(self, i: int) -> StateType:
        return self.raft(i).state

    def leader(self) -> int:
        leaders = [
            i for i, n in self.nodes.items() if i not in self.down and n.raft.state is StateType.LEADER
        ]
        assert leaders, "no leader"
        return max(leaders, key=lambda i: self.raft(i).term)

    # -- faults ---------------------------------------------------------------------------
    def cut(self, a: int, b: int) -> None:
        self.cut_links |= {(a, b), (b, a)}

    def isolate(self, i: int) -> None:
        for j in self.nodes:
            if j != i:
                self.cut(i, j)

    def heal(self) -> None:
        self.cut_links.clear()
        self.filters.clear()

    def crash(self, i: int) -> None:
        self.down.add(i)

    def restart(self, i: int) -> None:
        self.down.discard(i)
        self.applied[i] = []
        self.nodes[i] = self._boot(i, applied=self.storage[i].snapshot().metadata.index)

    # -- the loop ---------------------------------------------------------------------
    def handle(self, i: int) -> None:
        n, st = self.nodes[i], self.storage[i]
        rd = n.ready()
        persist(st, rd)
        self.queue.extend(rd.messages)
        self.read_states[i].extend(rd.read_states)
        for e in rd.committed_entries:
            self.applied[i].append(e)
            if e.type is EntryType.CONF_CHANGE:
                n.apply_conf_change(ConfChange.decode(e.data))
        n.advance(rd)

    def stabilize(self, max_rounds: int = 10_000) -> None:
        """Handle Readies and deliver messages until the cluster is quiet."""
        for _ in range(max_rounds):
            busy = False
            for i, n in self.nodes.items():
                if i not in self.down and n.has_ready():
                    busy = True
                    self.handle(i)
            queue, self.queue = self.queue, []
            for m in queue:
                busy = True
                self.deliver(m)
            if not busy:
                return
        raise AssertionError("cluster did not stabilize")

    def deliver(self, m: Message) -> None:
        if m.to in self.down or (m.frm, m.to) in self.cut_links:
            return
        if any(not f(m) for f in self.filters):
            return
        self.sent.append(m)
        self.nodes[m.to].step(m)
        if m.type is MessageType.MSG_SNAP and m.frm not in self.down:
            self.nodes[m.frm].report_snapshot(m.to, failed=False)

    def tick(self, n: int = 1, ids: Iterable[int] | None = None) -> None:
        for _ in range(n):
            for i in list(ids) if ids is not None else list(self.nodes):
                if i not in self.down:
                    self.nodes[i].tick()
            self.stabilize()

    def elect(self, i: int, attempts: int = 3) -> None:
        """Campaign until elected (a first attempt may lose to a term already voted in)."""
        for _ in range(attempts):
            self.nodes[i].campaign()
            self.stabilize()
            if self.state(i) is StateType.LEADER:
                return
        assert self.state(i) is StateType.LEADER, f"{i} is {self.state(i)}"

    def propose(self, i: int, data: bytes) -> None:
        self.nodes[i].propose(data)
        self.stabilize()

    def leave_behind(self, i: int, lead: int, n: int) -> None:
        """Commit n entries through `lead` while node i is down, then restart i."""
        self.crash(i)
        for k in range(n):
            self.propose(lead, b"v%d" % k)
        self.restart(i)

    def data(self, i: int) -> list[bytes]:
        return [e.data for e in self.applied[i] if e.type is EntryType.NORMAL and e.data]

    def log_terms(self, i: int) -> list[tuple[int, int]]:
        log = self.raft(i).log
        return [(e.index, e.term) for e in log.slice(log.first_index(), log.last_index() + 1)]

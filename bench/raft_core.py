"""Entries committed per second through the pure Raft core (no I/O): the ceiling the
core sets for the server.

N in-memory nodes in one process; the leader takes `batch` proposals per loop turn,
then every node handles its Ready (MemoryStorage persist, send, apply, advance) and
messages are delivered until the cluster is quiet. An entry counts once the leader has
applied it, which needs a majority to have persisted it.

    .venv/bin/python bench/raft_core.py [--entries N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import time

from pyetcd.raft import Config, ConfState, MemoryStorage, Message, RawNode, StateType


class Bench:
    def __init__(self, n: int) -> None:
        cs = ConfState(voters=tuple(range(1, n + 1)))
        self.storage = {i: MemoryStorage(cs) for i in cs.voters}
        self.nodes = {i: RawNode(Config(i, self.storage[i], seed=i)) for i in cs.voters}
        self.applied = 0
        self.nodes[1].campaign()
        self.settle()
        assert self.nodes[1].raft.state is StateType.LEADER

    def settle(self) -> None:
        inbox: list[Message] = []
        while True:
            busy = False
            for i, node in self.nodes.items():
                if not node.has_ready():
                    continue
                busy = True
                rd = node.ready()
                st = self.storage[i]
                st.append(rd.entries)
                if rd.hard_state is not None:
                    st.set_hard_state(rd.hard_state)
                inbox.extend(rd.messages)
                if i == 1:
                    self.applied += sum(1 for e in rd.committed_entries if e.data)
                node.advance(rd)
            for m in inbox:
                self.nodes[m.to].step(m)
            busy = busy or bool(inbox)
            inbox = []
            if not busy:
                return

    def run(self, entries: int, batch: int, size: int) -> float:
        data = b"x" * size
        leader = self.nodes[1]
        start = time.perf_counter()
        proposed = 0
        while proposed < entries:
            for _ in range(min(batch, entries - proposed)):
                leader.propose(data)
                proposed += 1
            self.settle()
        elapsed = time.perf_counter() - start
        assert self.applied == entries, (self.applied, entries)
        return entries / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=100, help="bytes of data per entry")
    args = ap.parse_args()
    print(f"pure Raft core, {args.entries} entries of {args.size} B, in-memory storage, no I/O")
    print(f"{'nodes':>5} {'batch':>6} {'entries/s':>12}")
    for n in (3, 5):
        for batch in (1, 16, 256):
            rate = Bench(n).run(args.entries, batch, args.size)
            print(f"{n:>5} {batch:>6} {rate:>12,.0f}")


if __name__ == "__main__":
    main()

"""One apply batch: everything a node-loop turn writes, in one LMDB transaction.

The apply thread fills the batch; nothing shared with readers changes until the turn has
committed (server/node_loop.py: the raft log always; the store too, unless a lone client's
turns hold its transaction open, and then every reader of the store commits it first). Then,
on the event loop, ``publish`` runs the batch's publish hooks in order: the key index, leases,
watchers. Subsystems whose apply-time checks need state touched
earlier in the same batch read it back from ``txn`` (LMDB shows a transaction its own writes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lmdb

from pyetcd.mvcc.store import Change, StoreWriter
from pyetcd.raft import Entry, HardState, Message, ReadState, Ready, SoftState
from pyetcd.storage.raftlog import WalBatch


@dataclass
class AppliedResult:
    """The outcome of one applied proposal, for the client waiting on it."""

    request_id: int
    response: Any = None
    error: Exception | None = None


@dataclass
class RaftOutput:
    """What the raft core handed out during a turn, acted on once the turn is durable."""

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    read_states: list[ReadState] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    def absorb(self, rd: Ready) -> None:
        """Keep a Ready's outputs (the latest soft and hard state win)."""
        if rd.soft_state is not None:
            self.soft_state = rd.soft_state
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state
        self.read_states.extend(rd.read_states)
        self.messages.extend(rd.messages)


def needs_disk(rd: Ready) -> bool:
    """Whether a Ready has anything to persist or apply (else it is served without a txn)."""
    return bool(rd.entries or rd.committed_entries or rd.snapshot is not None
                or (rd.hard_state is not None))


@dataclass
class ApplyBatch:
    txn: lmdb.Transaction  # the key-value store's
    kv: StoreWriter
    raft_txn: WalBatch | None = None  # the raft log's, for conf state written at apply
    results: list[AppliedResult] = field(default_factory=list)
    publish_hooks: list[Callable[[], None]] = field(default_factory=list)
    applied_index: int = 0
    entry_index: int = 0  # raft index of the entry being applied (auth tokens carry it)
    applied_term: int = 0
    applied_bytes: int = 0  # the size of the entries applied
    raft: RaftOutput = field(default_factory=RaftOutput)
    first_touched: int = 0  # the lowest and highest raft index the turn persisted or applied
    last_touched: int = 0

    def touch(self, entries: Sequence[Entry]) -> None:
        if entries:
            first, last = entries[0].index, entries[-1].index
            self.first_touched = min(self.first_touched, first) if self.first_touched else first
            self.last_touched = max(self.last_touched, last)

    @property
    def entries_touched(self) -> int:
        """How many entries the turn persisted or applied, each counted once (see group_commit.py)."""
        return self.last_touched - self.first_touched + 1 if self.last_touched else 0

    def on_publish(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on the event loop once this batch's turn has committed (see above)."""
        self.publish_hooks.append(hook)

    @property
    def changes(self) -> list[Change]:
        return self.kv.changes

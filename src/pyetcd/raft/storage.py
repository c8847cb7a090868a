"""The storage interface the core reads its stable log through, and an in-memory one.

The core only reads from storage; the application writes to it while handling a Ready
(entries, hard state, snapshot) and compacts it when it takes snapshots. The durable
LMDB implementation lives in the server; `MemoryStorage` serves tests and the simulator.
"""

from __future__ import annotations

from typing import Protocol

from .types import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
    SnapshotOutOfDateError,
    UnavailableError,
    entry_size,
)


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership as of the latest snapshot."""
        ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries in [lo, hi), at least one if any, at most max_size bytes beyond the first."""
        ...

    def term(self, i: int) -> int:
        """Term of entry i; valid for first_index()-1 (the snapshot's) through last_index()."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


def limit_size(ents: list[Entry], max_size: int | None) -> list[Entry]:
    """Cut `ents` to fit max_size bytes, always keeping the first entry (progress over limits)."""
    if max_size is None or not ents:
        return ents
    size = entry_size(ents[0])
    for n in range(1, len(ents)):
        size += entry_size(ents[n])
        if size > max_size:
            return ents[:n]
    return ents


class MemoryStorage:
    """Storage held in a list. `_ents[0]` is a dummy carrying the snapshot's index and term."""

    def __init__(self, conf_state: ConfState | None = None) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot(b"", SnapshotMetadata(0, 0, conf_state or ConfState()))
        self._ents: list[Entry] = [Entry(0, 0)]

    # -- Storage protocol ------------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def term(self, i: int) -> int:
        offset = self._ents[0].index
        if i < offset:
            raise CompactedError(f"index {i} compacted (first {offset + 1})")
        if i - offset >= len(self._ents):
            raise UnavailableError(f"index {i} beyond last {self.last_index()}")
        return self._ents[i - offset].term

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(f"index {lo} compacted (first {offset + 1})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"entries [{lo}, {hi}) beyond last {self.last_index()}")
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writes (the application's side) --------------------------------------------
    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log with `snap` (a follower catching up from the leader)."""
        if snap.metadata.index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(
                f"snapshot {snap.metadata.index} not newer than {self._snapshot.metadata.index}"
            )
        self._snapshot = snap
        self._ents = [Entry(snap.metadata.term, snap.metadata.index)]

    def create_snapshot(self, index: int, conf_state: ConfState | None, data: bytes) -> Snapshot:
        """Record a snapshot of the applied state at `index`; the log is not compacted here."""
        if index <= self._snapshot.metadata.index:
            raise SnapshotOutOfDateError(f"snapshot {index} not newer than {self._snapshot.metadata.index}")
        if index > self.last_index():
            raise UnavailableError(f"snapshot {index} beyond last {self.last_index()}")
        cs = conf_state if conf_state is not None else self._snapshot.metadata.conf_state
        self._snapshot = Snapshot(data, SnapshotMetadata(index, self.term(index), cs))
        return self._snapshot

    def compact(self, index: int) -> None:
        """Discard entries before `index`; `index` becomes the new dummy entry."""
        offset = self._ents[0].index
        if index <= offset:
            raise CompactedError(f"index {index} already compacted (first {offset + 1})")
        if index > self.last_index():
            raise UnavailableError(f"compact {index} beyond last {self.last_index()}")
        i = index - offset
        self._ents = [Entry(self._ents[i].term, index), *self._ents[i + 1 :]]

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append entries, replacing any conflicting suffix; compacted ones are ignored."""
        if not entries:
            return
        first = self.first_index()
        last = entries[0].index + len(entries) - 1
        if last < first:
            return
        ents = list(entries)
        if first > ents[0].index:
            ents = ents[first - ents[0].index :]
        offset = ents[0].index - self._ents[0].index
        if offset > len(self._ents):
            raise UnavailableError(
                f"missing log entries [last {self.last_index()}, append at {ents[0].index}]"
            )
        del self._ents[offset:]
        self._ents.extend(ents)

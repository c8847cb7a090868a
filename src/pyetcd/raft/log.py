"""The Raft log as the core sees it: stable entries in Storage plus an unstable tail.

Unstable entries (and an incoming snapshot) are handed to the application in Ready and
become stable once it reports them persisted in `advance`. `persisted` tracks how much
of our own log is durable, because a leader may only count itself toward a quorum for
entries it has written.
"""

from __future__ import annotations

from .storage import Storage, limit_size
from .types import CompactedError, Entry, RaftError, Snapshot, UnavailableError


class Unstable:
    """Entries and snapshot not yet persisted; `offset` is the index of entries[0]."""

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        return self.snapshot.metadata.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        return self.snapshot.metadata.index if self.snapshot is not None else None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == i:
                return self.snapshot.metadata.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> bool:
        """Drop entries up to i if entry i still has term t (it may have been replaced)."""
        if i < self.offset or self.maybe_term(i) != t:
            return False
        del self.entries[: i + 1 - self.offset]
        self.offset = i + 1
        return True

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == i:
            self.snapshot = None

    def restore(self, s: Snapshot) -> None:
        self.offset = s.metadata.index + 1
        self.entries = []
        self.snapshot = s

    def truncate_and_append(self, ents: list[Entry] | tuple[Entry, ...]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            self.offset = after
            self.entries = list(ents)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    def __init__(self, storage: Storage, max_next_ents_size: int) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1
        self.persisted = last
        self.max_next_ents_size = max_next_ents_size

    def __repr__(self) -> str:
        return (
            f"RaftLog(committed={self.committed}, applied={self.applied}, persisted={self.persisted}, "
            f"unstable.offset={self.unstable.offset}, len(unstable)={len(self.unstable.entries)})"
        )

    # -- indexes and terms ----------------------------------------------------------
    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def term(self, i: int) -> int:
        """Term of entry i; 0 beyond the last index; CompactedError before the first."""
        if i > self.last_index():
            return 0
        if i < self.first_index() - 1:
            raise CompactedError(f"index {i} compacted")
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        try:
            return self.storage.term(i)
        except UnavailableError:
            return 0

    def zero_term_on_compacted(self, i: int) -> int:
        try:
            return self.term(i)
        except CompactedError:
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, i: int, t: int) -> bool:
        try:
            return self.term(i) == t
        except CompactedError:
            return False

    def is_up_to_date(self, lasti: int, term: int) -> bool:
        """Is a candidate whose log ends at (lasti, term) at least as up to date as ours?"""
        lt = self.last_term()
        return term > lt or (term == lt and lasti >= self.last_index())

    # -- appending ------------------------------------------------------------------
    def maybe_append(
        self, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]
    ) -> tuple[int, bool]:
        """Follower side of MsgApp: append if our log matches at (index, log_term)."""
        if not self.match_term(index, log_term):
            return 0, False
        lastnewi = index + len(ents)
        ci = self.find_conflict(ents)
        if ci != 0:
            if ci <= self.committed:
                raise RaftError(f"entry {ci} conflicts with committed entry (committed {self.committed})")
            self.append(ents[ci - (index + 1) :])
        self.commit_to(min(committed, lastnewi))
        return lastnewi, True

    def append(self, ents: list[Entry] | tuple[Entry, ...]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise RaftError(f"append after {after} is out of range (committed {self.committed})")
        if after < self.persisted:
            # Durable entries past `after` are about to be overwritten; they no longer count.
            self.persisted = after
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        """Index of the first entry that is new or conflicts with ours; 0 if all present."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, term(i)) with i <= index and term(i) <= term: a probe target that
        lets the leader skip a whole conflicting term at once instead of one entry per round."""
        while index > 0:
            try:
                t = self.term(index)
            except CompactedError:
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    # -- reading --------------------------------------------------------------------
    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def next_ents(self) -> list[Entry]:
        """Committed entries not yet applied, bounded by max_next_ents_size."""
        off = max(self.applied + 1, self.first_index())
        if self.committed + 1 > off:
            return self.slice(off, self.committed + 1, self.max_next_ents_size)
        return []

    def has_next_ents(self) -> bool:
        return self.committed + 1 > max(self.applied + 1, self.first_index())

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def entries(self, i: int, max_size: int | None) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_size)

    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        if lo > hi:
            raise RaftError(f"invalid slice {lo} > {hi}")
        fi = self.first_index()
        if lo < fi:
            raise CompactedError(f"slice from {lo} compacted (first {fi})")
        if hi > self.last_index() + 1:
            raise RaftError(f"slice [{lo}, {hi}) out of bound (last {self.last_index()})")
        if lo == hi:
            return []
        ents: list[Entry] = []
        uoff = self.unstable.offset
        if lo < uoff:
            ents = self.storage.entries(lo, min(hi, uoff), max_size)
            if len(ents) < min(hi, uoff) - lo:
                return ents  # size-limited by storage
        if hi > uoff:
            ents = ents + self.unstable.slice(max(lo, uoff), hi)
        return limit_size(ents, max_size)

    # -- progress of commit / apply / persistence -----------------------------------
    def commit_to(self, tocommit: int) -> None:
        if self.committed < tocommit:
            if self.last_index() < tocommit:
                raise RaftError(f"commit {tocommit} beyond last index {self.last_index()}")
            self.committed = tocommit

    def maybe_commit(self, max_index: int, term: int) -> bool:
        """Leader side: commit up to max_index only if that entry is from our term (§5.4.2)."""
        if max_index > self.committed and self.zero_term_on_compacted(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        if self.committed < i or i < self.applied:
            raise RaftError(f"applied {i} out of range [{self.applied}, {self.committed}]")
        self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        if self.unstable.stable_to(i, t):
            self.persisted = max(self.persisted, i)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)
        if self.persisted < i:
            self.persisted = i

    def restore(self, s: Snapshot) -> None:
        self.committed = s.metadata.index
        self.persisted = min(self.persisted, s.metadata.index - 1)
        self.unstable.restore(s)

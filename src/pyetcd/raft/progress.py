"""What the leader knows about each follower's log, and the flow control that bounds
how much it sends ahead of acknowledgements.

A follower is in one of three states: PROBE (we do not know where its log ends: send one
MsgApp per heartbeat until it answers), REPLICATE (stream optimistically, bounded by the
in-flight window), SNAPSHOT (a snapshot is on its way: send nothing else).
"""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.Enum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """MsgApps sent but not yet acknowledged: at most `size` messages and `max_bytes` bytes."""

    def __init__(self, size: int, max_bytes: int = 0) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._q: deque[tuple[int, int]] = deque()  # (last index in message, bytes)
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._q)

    def add(self, index: int, nbytes: int) -> None:
        if self.full():
            raise OverflowError("cannot add into a full inflights window")
        self._q.append((index, nbytes))
        self.bytes += nbytes

    def free_le(self, index: int) -> None:
        """Forget every message whose last index is <= index (acknowledged)."""
        q = self._q
        while q and q[0][0] <= index:
            self.bytes -= q.popleft()[1]

    def free_first_one(self) -> None:
        if self._q:
            self.bytes -= self._q.popleft()[1]

    def full(self) -> bool:
        return len(self._q) >= self.size or (self.max_bytes > 0 and self.bytes >= self.max_bytes)

    def reset(self) -> None:
        self._q.clear()
        self.bytes = 0


class Progress:
    def __init__(self, match: int, next_: int, inflights: Inflights, is_learner: bool = False) -> None:
        self.match = match
        self.next = next_
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0
        # Heard from recently (check-quorum, and whether a snapshot is worth sending).
        self.recent_active = False
        # In PROBE, one MsgApp has been sent and we wait for an answer or a heartbeat.
        self.probe_sent = False
        self.inflights = inflights
        self.is_learner = is_learner
        # The commit index the follower was last told, as far as its log reaches (lazy commit).
        self.sent_commit = 0
        # Last indexes of the proposals it forwarded whose commit it was not told yet (lazy commit,
        # stable news).
        self.forwarded: deque[int] = deque()
        # Whether its last append answer said it takes MSG_STABLE, and the durable index of ours
        # it was last told (raft Config.stable_news).
        self.knows_stable = False
        self.stable_sent = 0

    def __repr__(self) -> str:
        return (
            f"Progress(match={self.match}, next={self.next}, state={self.state.name}, "
            f"learner={self.is_learner}, inflight={len(self.inflights)})"
        )

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """An acknowledgement up to n arrived; False if it is stale."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def optimistic_update(self, n: int) -> None:
        self.next = n + 1

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A MsgApp probing at `rejected` was refused; step `next` back. False if stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), 1)
        self.probe_sent = False
        return True

    def told_commit(self, commit: int) -> None:
        """The follower was sent ``commit`` (capped at what the message lets it have)."""
        if commit > self.sent_commit:
            self.sent_commit = commit
            fwd = self.forwarded
            while fwd and fwd[0] <= commit:
                fwd.popleft()

    def owes_commit(self, committed: int) -> bool:
        """Whether it was not told the commit index as far as its log reaches."""
        return self.sent_commit < min(committed, self.match)

    def owes_forwarded(self, committed: int) -> bool:
        """Whether a proposal it forwarded is committed and it has not been told, nor told
        that our log holds it durably (it then commits it itself: raft Config.stable_news)."""
        told = self.stable_sent if self.knows_stable else 0
        for f in self.forwarded:
            if f > committed:
                return False
            if f > told:
                return True
        return False

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True

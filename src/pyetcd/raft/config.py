"""Configuration of one Raft node."""

from __future__ import annotations

from dataclasses import dataclass

from .storage import Storage
from .types import NONE


@dataclass
class Config:
    id: int
    storage: Storage
    # Ticks without hearing from a leader before campaigning; randomized in [n, 2n).
    election_tick: int = 10
    # Ticks between heartbeats; must be well below election_tick.
    heartbeat_tick: int = 1
    # Last applied index when restarting; committed entries after it are handed out again.
    applied: int = 0
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    # Bytes in flight per follower; 0 = unlimited.
    max_inflight_bytes: int = 0
    check_quorum: bool = True
    pre_vote: bool = True
    # Seed of the node's random.Random (election timeouts); None = seeded with the id.
    seed: int | None = None
    # Bytes of committed entries per Ready; 0 = max_size_per_msg.
    max_committed_size_per_ready: int = 0
    # A leader tells followers of a new commit index only with its next append, or when the
    # application calls RawNode.send_commit_news, instead of with an append of its own at once
    # (etcd's behaviour, False). A follower whose forwarded proposal was committed is told at once.
    lazy_commit: bool = False
    # Not etcd's. Once a leader's log is durable past a proposal a follower forwarded, it tells
    # that follower how far (MSG_STABLE); the follower then commits, without waiting a round
    # trip for the leader's commit index, what both hold when the two are a quorum of the same
    # voters: Raft's commit rule, checked where the client waits. A leader's read index then
    # covers what it told, so a read never misses a write a follower answered.
    stable_news: bool = False

    def validate(self) -> None:
        if self.id == NONE:
            raise ValueError("cannot use 0 as a node id")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be greater than 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be greater than 0")
        if self.max_inflight_bytes < 0:
            raise ValueError("max_inflight_bytes must not be negative")

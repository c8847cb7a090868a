"""One lease as the lessor keeps it in memory, and etcd's TTL limits."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

MAX_LEASE_TTL = 9_000_000_000  # etcd's lease.MaxLeaseTTL (seconds)
FOREVER = math.inf


def min_lease_ttl(election_ticks: int, heartbeat_ms: int) -> int:
    """etcd's minimum TTL: a lease must outlive a leader election, or it would expire while
    the cluster has no leader to renew it. ``ceil((3 * electionTicks / 2) * heartbeat)`` s."""
    return math.ceil((3 * election_ticks // 2) * heartbeat_ms / 1000)


@dataclass(eq=False)
class Lease:
    """Granted ``ttl`` seconds; ``expiry`` is a monotonic time, FOREVER on a non-leader
    (only the leader's clock decides expiry). ``keys`` are the live keys attached to it."""

    id: int
    ttl: int
    remaining_ttl: int = 0  # from a checkpoint; used instead of ttl at the next refresh
    expiry: float = FOREVER
    keys: set[bytes] = field(default_factory=set)
    revoked: asyncio.Event = field(default_factory=asyncio.Event)

    def refresh(self, now: float, extend: float = 0.0) -> None:
        """Restart the countdown from ``now`` (plus ``extend``, as on a new leader)."""
        self.expiry = now + extend + (self.remaining_ttl if self.remaining_ttl > 0 else self.ttl)

    def remaining(self, now: float) -> float:
        return self.expiry - now

    def expired(self, now: float) -> bool:
        return self.expiry <= now

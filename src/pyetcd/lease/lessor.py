"""The lessor: lease state, its apply-time half (grant, revoke, checkpoint inside the batch's
LMDB transaction) and its event-loop half (renew, look-ups, expiry, key attachment).

Apply never touches the in-memory leases: it writes the LEASE bucket (so later requests of
the same batch see it through ``batch.txn``) and schedules the in-memory change with
``on_publish``, which runs once the batch is durable. Attachment of keys to leases is not
persisted, as in etcd: it follows the key space's changes and is rebuilt from the key index
at start.

A revoke reads the published attachment sets from the apply thread. That is safe because the
node loop never applies a batch while the previous one is being published (publish, then the
next apply); a node loop that overlapped them would have to hand the lessor a snapshot.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import lmdb

from pyetcd import errors
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.storage.backend import Backend

from .expiry import ExpiryQueue
from .lease import FOREVER, MAX_LEASE_TTL, Lease
from .record import LeaseRecords

# etcd's leaseRevokeRate: at most this many expiries per second, so a storm cannot starve writes.
REVOKE_RATE = 1000
# etcd's expiredLeaseRetryInterval: an expired lease whose revoke did not land is retried after this.
RETRY_INTERVAL = 3.0


class KeyChange(Protocol):
    """A change of the key space (``pyetcd.mvcc.store.Change``)."""

    key: bytes
    lease: int
    prev_lease: int


class _TxnWrite(Protocol):
    def delete_range(self, key: bytes, end: bytes | None) -> tuple[int, int]: ...

    def end(self) -> object: ...


class _KeyWriter(Protocol):
    @property
    def rev(self) -> int: ...

    @property
    def changes(self) -> Sequence[KeyChange]: ...

    def begin(self) -> _TxnWrite: ...


class ApplyContext(Protocol):
    """What the lessor needs of an apply batch (``pyetcd.server.batch.ApplyBatch``)."""

    @property
    def txn(self) -> lmdb.Transaction: ...

    @property
    def kv(self) -> _KeyWriter: ...

    def on_publish(self, hook: Callable[[], None]) -> None: ...


class Lessor:
    """All leases of one member; ``primary`` (the raft leader) alone runs their clocks."""

    def __init__(self, backend: Backend, min_ttl: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.records = LeaseRecords(backend)
        self.min_ttl = min_ttl
        self.clock = clock
        self.leases: dict[int, Lease] = {}
        self.primary = False
        self.queue = ExpiryQueue()
        self._demoted = asyncio.Event()
        self._load()

    def _load(self) -> None:
        self.leases = {rec.ID: Lease(rec.ID, max(rec.TTL, self.min_ttl), rec.RemainingTTL)
                       for rec in self.records.load()}

    def reload(self, live_keys: Iterable[tuple[bytes, int]]) -> None:
        """The store was replaced by the leader's snapshot: take its leases. Only a follower
        installs snapshots, and a follower runs no lease clocks, so none are restarted."""
        self._load()
        self.recover_attachments(live_keys)
        self.queue.clear()

    # ---- start ---------------------------------------------------------------------------
    def recover_attachments(self, live_keys: Iterable[tuple[bytes, int]]) -> None:
        """Attach each live key to its lease, from the key index at start (etcd does the same)."""
        for key, lease_id in live_keys:
            lease = self.leases.get(lease_id)
            if lease is not None:
                lease.keys.add(key)

    # ---- apply thread: every member, same result -----------------------------------------
    def exists(self, batch: ApplyContext, lease_id: int) -> bool:
        return self.records.exists(batch.txn, lease_id)

    def grant(self, batch: ApplyContext, r: rpc_pb2.LeaseGrantRequest) -> rpc_pb2.LeaseGrantResponse:
        if r.ID == 0:
            raise errors.ErrLeaseNotFound()
        if r.TTL > MAX_LEASE_TTL:
            raise errors.ErrLeaseTTLTooLarge()
        if self.exists(batch, r.ID):
            raise errors.ErrLeaseExist()
        ttl = max(r.TTL, self.min_ttl)
        self.records.put(batch.txn, internal_pb2.LeaseRecord(ID=r.ID, TTL=ttl))
        lease_id = r.ID
        batch.on_publish(lambda: self._add(Lease(lease_id, ttl)))
        resp = rpc_pb2.LeaseGrantResponse(ID=r.ID, TTL=ttl)
        resp.header.revision = _current_rev(batch)
        return resp

    def revoke(self, batch: ApplyContext, r: rpc_pb2.LeaseRevokeRequest) -> rpc_pb2.LeaseRevokeResponse:
        if not self.exists(batch, r.ID):
            raise errors.ErrLeaseNotFound()
        keys = sorted(self._keys_in_batch(batch, r.ID))  # sorted: same deletes on every member
        if keys:
            t = batch.kv.begin()
            for key in keys:
                t.delete_range(key, None)
            t.end()
        self.records.delete(batch.txn, r.ID)
        lease_id = r.ID
        batch.on_publish(lambda: self._remove(lease_id))
        resp = rpc_pb2.LeaseRevokeResponse()
        resp.header.revision = _current_rev(batch)
        return resp

    def checkpoint(self, batch: ApplyContext, r: rpc_pb2.LeaseCheckpointRequest) -> rpc_pb2.LeaseCheckpointResponse:
        for cp in r.checkpoints:
            rec = self.records.get(batch.txn, cp.ID)
            if rec is None:
                continue
            rec.RemainingTTL = cp.remaining_TTL
            self.records.put(batch.txn, rec)
            batch.on_publish(functools.partial(self._set_remaining, cp.ID, cp.remaining_TTL))
        resp = rpc_pb2.LeaseCheckpointResponse()
        resp.header.revision = _current_rev(batch)
        return resp

    def _keys_in_batch(self, batch: ApplyContext, lease_id: int) -> set[bytes]:
        """Keys attached to the lease as of this point of the batch: the published set,
        updated by the batch's own earlier changes (not yet published)."""
        lease = self.leases.get(lease_id)
        keys = set(lease.keys) if lease is not None else set()
        for ch in batch.kv.changes:
            if ch.prev_lease == lease_id:
                keys.discard(ch.key)
            if ch.lease == lease_id:
                keys.add(ch.key)
        return keys

    # ---- publish hooks and listeners: event loop, after the batch is durable ------------
    def _add(self, lease: Lease) -> None:
        self.leases[lease.id] = lease
        if self.primary:
            lease.refresh(self.clock())
            self.queue.register(lease.id, lease.expiry)

    def _remove(self, lease_id: int) -> None:
        lease = self.leases.pop(lease_id, None)
        self.queue.unregister(lease_id)
        if lease is not None:
            lease.revoked.set()

    def _set_remaining(self, lease_id: int, remaining: int) -> None:
        lease = self.leases.get(lease_id)
        if lease is not None:
            lease.remaining_ttl = remaining

    def on_changes(self, changes: Iterable[KeyChange]) -> None:
        """Follow key<->lease attachment through every durable change of the key space."""
        leases = self.leases
        for ch in changes:
            if ch.prev_lease and ch.prev_lease != ch.lease:
                old = leases.get(ch.prev_lease)
                if old is not None:
                    old.keys.discard(ch.key)
            if ch.lease:
                new = leases.get(ch.lease)
                if new is not None:
                    new.keys.add(ch.key)

    def on_leader_change(self, is_leader: bool, extend: float) -> None:
        if is_leader:
            self.promote(extend)
        else:
            self.demote()

    # ---- leadership ------------------------------------------------------------------------
    def promote(self, extend: float) -> None:
        """Become the member whose clock expires leases: every lease gets its full TTL again
        (plus ``extend``, an election timeout), and piles of leases due in the same second
        are spread out, as etcd's Promote does, so a restart does not expire them en masse."""
        self.primary = True
        self._demoted = asyncio.Event()
        now = self.clock()
        for lease in self.leases.values():
            lease.refresh(now, extend)
        if len(self.leases) >= REVOKE_RATE:
            self._spread(now, extend)
        self.queue.clear()
        for lease in self.leases.values():
            self.queue.register(lease.id, lease.expiry)

    def _spread(self, now: float, extend: float) -> None:
        leases = sorted(self.leases.values(), key=lambda lease: lease.expiry)
        base = leases[0].remaining(now)
        next_window = base + 1.0
        expires = 0
        target = (3 * REVOKE_RATE) // 4  # leave room in the revoke rate for leases not piled up
        for lease in leases:
            remaining = lease.remaining(now)
            if remaining > next_window:
                base, next_window, expires = remaining, remaining + 1.0, 1
                continue
            expires += 1
            if expires <= target:
                continue
            delay = expires / target - (remaining - base)
            next_window = base + delay
            lease.refresh(now, delay + extend)

    def demote(self) -> None:
        """Another member runs the clocks now: ours stop (leases never expire here)."""
        self.primary = False
        for lease in self.leases.values():
            lease.expiry = FOREVER
        self.queue.clear()
        self._demoted.set()

    # ---- client requests (event loop) --------------------------------------------------
    async def renew(self, lease_id: int) -> int:
        """KeepAlive: restart the lease's countdown; returns its TTL. An expired lease whose
        revoke is in flight is not renewed: we wait for the revoke and report it not found."""
        if not self.primary:
            raise errors.ErrNoLeader()
        lease = self.leases.get(lease_id)
        if lease is None:
            raise errors.ErrLeaseNotFound()
        if lease.expired(self.clock()):
            revoked = asyncio.ensure_future(lease.revoked.wait())
            demoted = asyncio.ensure_future(self._demoted.wait())
            try:
                await asyncio.wait({revoked, demoted}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                revoked.cancel()
                demoted.cancel()
            if lease.revoked.is_set():
                raise errors.ErrLeaseNotFound()
            raise errors.ErrNoLeader()
        lease.remaining_ttl = 0
        lease.refresh(self.clock())
        self.queue.register(lease.id, lease.expiry)
        return lease.ttl

    def lookup(self, lease_id: int) -> Lease | None:
        return self.leases.get(lease_id)

    def remaining_seconds(self, lease: Lease) -> int:
        """etcd's TimeToLive TTL: whole seconds left, truncated."""
        return int(max(0.0, lease.remaining(self.clock()))) if lease.expiry != FOREVER else lease.ttl

    def by_expiry(self) -> list[Lease]:
        """All leases, soonest expiry first (etcd's LeaseLeases order)."""
        return sorted(self.leases.values(), key=lambda lease: lease.expiry)

    def take_expired(self, limit: int) -> list[int]:
        """Expired leases to revoke now; each is looked at again after RETRY_INTERVAL in
        case its revoke proposal is lost (etcd's expiredLeaseRetryInterval)."""
        if not self.primary:
            return []
        now = self.clock()
        due = [i for i in self.queue.pop_due(now, limit) if i in self.leases]
        for lease_id in due:
            self.queue.register(lease_id, now + RETRY_INTERVAL)
        return due


def _current_rev(batch: ApplyContext) -> int:
    return batch.kv.rev

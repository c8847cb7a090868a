"""The leader's expiry loop: every half second, expired leases become LeaseRevoke proposals.

Expiry goes through raft like any write, so every member deletes the same keys at the same
revision. Rate-limited as etcd does (at most REVOKE_RATE/2 leases per half-second round, at
most MAX_PENDING revokes in flight): an expiry storm is spread over time and client writes
keep flowing between the revokes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pyetcd import errors

from .lessor import REVOKE_RATE, Lessor

log = logging.getLogger("pyetcd.lease")

INTERVAL = 0.5  # etcd's lessor runLoop period
MAX_PENDING = 16  # etcd's maxPendingRevokes


class Revoker:
    def __init__(self, lessor: Lessor, revoke: Callable[[int], Awaitable[object]]) -> None:
        self.lessor = lessor
        self.revoke = revoke
        self._slots = asyncio.Semaphore(MAX_PENDING)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the loop (idempotent); it idles while this member is not the leader."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="lease-expiry")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            for lease_id in self.lessor.take_expired(REVOKE_RATE // 2):
                await self._slots.acquire()
                task = asyncio.get_running_loop().create_task(self._revoke_one(lease_id))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _revoke_one(self, lease_id: int) -> None:
        try:
            await self.revoke(lease_id)
        except errors.ErrLeaseNotFound:
            pass  # revoked by a client meanwhile
        except errors.EtcdError as e:
            log.warning("failed to revoke expired lease %x: %s (retried later)", lease_id, e)
        finally:
            self._slots.release()

"""Proposals in flight: request ids, the futures waiting for their entry to apply, deadlines.

Ids come from etcd's idutil generator (the one leases use): the member id's low 16 bits on
top, then the start time and a counter, so ids from different members never collide — every
member applies every entry and looks its id up among its own waiters.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyetcd import errors
from pyetcd.lease import IdGenerator

from .waiting import Deadlines


class Proposals:
    """Futures of this member's proposals by request id, each failed by its deadline."""

    def __init__(self, member_id: int, timeout: float) -> None:
        self.ids = IdGenerator(member_id)
        self.deadlines = Deadlines(timeout, errors.ErrTimeout)
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self.registered = 0  # a running count, for the arrival rate (group_commit.py)

    def __len__(self) -> int:
        return len(self._waiters)

    def register(self, rid: int) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self.registered += 1
        self.deadlines.track(fut)
        return fut

    def forget(self, rid: int) -> None:
        self._waiters.pop(rid, None)

    def resolve(self, rid: int, response: Any = None, error: BaseException | None = None) -> None:
        fut = self._waiters.get(rid)
        if fut is None or fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(response)

    def fail_all(self, err: BaseException) -> None:
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(err)
        self.deadlines.fail_all(err)

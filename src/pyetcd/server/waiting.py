"""Waiting on the node loop, cheaply: one wake-up for the loop, one deadline heap for requests.

``asyncio.wait_for`` costs a timer, callbacks and (for a coroutine) a task per call; at thousands
of requests a second that showed up in profiles of the event loop. Instead every waiting request
puts its future on one heap that the node loop sweeps once per tick, and the loop itself sleeps
on a single future that any producer can resolve.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Any


class Deadlines:
    """Futures to fail with a timeout error if nothing resolved them in time."""

    def __init__(self, timeout: float, error: Callable[[], BaseException]) -> None:
        self.timeout = timeout
        self.error = error
        self._heap: list[tuple[float, int, asyncio.Future[Any]]] = []
        self._seq = itertools.count()

    def track(self, fut: asyncio.Future[Any]) -> asyncio.Future[Any]:
        heapq.heappush(self._heap, (fut.get_loop().time() + self.timeout, next(self._seq), fut))
        return fut

    def expire(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            fut = heapq.heappop(heap)[2]
            if not fut.done():
                fut.set_exception(self.error())

    def fail_all(self, err: BaseException) -> None:
        for _, _, fut in self._heap:
            if not fut.done():
                fut.set_exception(err)
        self._heap.clear()


class Wakeup:
    """A flag the node loop sleeps on, with a timeout, without a task per sleep."""

    def __init__(self) -> None:
        self._set = False
        self._sleeper: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        if self._sleeper is not None and not self._sleeper.done():
            self._sleeper.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Return when set (at once if already set) or after ``timeout`` seconds; clears the flag."""
        if not self._set:
            loop = asyncio.get_running_loop()
            sleeper = self._sleeper = loop.create_future()
            timer = loop.call_later(timeout, _resolve, sleeper)
            try:
                await sleeper
            finally:
                timer.cancel()
                self._sleeper = None
        self._set = False


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)

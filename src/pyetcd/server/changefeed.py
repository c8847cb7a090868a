"""Server-side subscriptions to key-space changes, for the Lock and Election recipes.

A recipe reads the store and subscribes in the same event-loop step (no ``await`` between),
so no change can fall between its read and its subscription: everything published later is
queued. This is what clientv3's "Get, then Watch from the Get's revision" achieves, without a
Watch stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from pyetcd.mvcc.store import Change


class Subscription:
    """Changes to keys in [key, end) (``end`` None: the one key) since the subscription."""

    def __init__(self, feed: ChangeFeed, key: bytes, end: bytes | None) -> None:
        self.feed, self.key, self.end = feed, key, end
        self.queue: asyncio.Queue[Change] = asyncio.Queue()

    def matches(self, key: bytes) -> bool:
        if self.end is None:
            return key == self.key
        return self.key <= key and (not self.end or key < self.end)

    async def next(self) -> Change:
        return await self.queue.get()

    def close(self) -> None:
        self.feed.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChangeFeed:
    """Subscriptions by exact key (a lock waiter's one predecessor) are looked up per change;
    only range subscriptions (Observe) are scanned, so many waiters cost little per write."""

    def __init__(self, change_listeners: list[Callable[[list[Change]], None]]) -> None:
        self.by_key: dict[bytes, set[Subscription]] = {}
        self.ranges: set[Subscription] = set()
        change_listeners.append(self.publish)

    def subscribe(self, key: bytes, end: bytes | None = None) -> Subscription:
        sub = Subscription(self, key, end)
        if end is None:
            self.by_key.setdefault(key, set()).add(sub)
        else:
            self.ranges.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.end is not None:
            self.ranges.discard(sub)
            return
        subs = self.by_key.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.by_key[sub.key]

    def publish(self, changes: Iterable[Change]) -> None:
        if not self.by_key and not self.ranges:
            return
        for ch in changes:
            for sub in self.by_key.get(ch.key, ()):
                sub.queue.put_nowait(ch)
            for sub in self.ranges:
                if sub.matches(ch.key):
                    sub.queue.put_nowait(ch)

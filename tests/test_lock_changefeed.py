"""The server-side change feed the Lock and Election recipes wait on: exact-key and range
subscriptions get exactly their changes, in order, and nothing after they close."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pyetcd.mvcc.store import DELETE, PUT, Change
from pyetcd.server.changefeed import ChangeFeed, Subscription
from pyetcd.server.recipes import prefix_end


def _changes(*items: tuple[int, bytes, int]) -> list[Change]:
    return [Change(kind, key, rev, b"") for kind, key, rev in items]


def test_subscriptions_get_their_changes_only() -> None:
    async def scenario() -> None:
        listeners: list[Callable[[list[Change]], None]] = []
        feed = ChangeFeed(listeners)
        one = feed.subscribe(b"lk/a")
        pfx = feed.subscribe(b"lk/", prefix_end(b"lk/"))
        everything = feed.subscribe(b"", b"")
        for listen in listeners:
            listen(_changes((PUT, b"lk/a", 2), (PUT, b"lk/b", 2), (PUT, b"lz", 3), (DELETE, b"lk/a", 4)))
        assert [(c.key, c.rev) for c in _drain(one)] == [(b"lk/a", 2), (b"lk/a", 4)]
        assert [(c.key, c.rev) for c in _drain(pfx)] == [(b"lk/a", 2), (b"lk/b", 2), (b"lk/a", 4)]
        assert len(_drain(everything)) == 4
        one.close()
        pfx.close()
        everything.close()
        assert feed.by_key == {} and feed.ranges == set()
        for listen in listeners:
            listen(_changes((PUT, b"lk/a", 5)))
        assert _drain(one) == [] and _drain(pfx) == []
        with feed.subscribe(b"k") as sub:
            listeners[0](_changes((DELETE, b"k", 6)))
            assert (await asyncio.wait_for(sub.next(), 1)).type == DELETE

    asyncio.run(scenario())


def _drain(sub: Subscription) -> list[Change]:
    out = []
    q = sub.queue
    while not q.empty():
        out.append(q.get_nowait())
    return out


def test_prefix_end_is_clientv3s() -> None:
    assert prefix_end(b"a/") == b"a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\x00"

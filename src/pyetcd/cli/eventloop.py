"""Which asyncio event loop runs a member: uvloop's (libuv, in C) where it is installed.

Under load a member's event loop runs a few handles per request: grpc.aio's completions, the
proposal's future, the node loop's wake-ups. asyncio's own loop spends Python code on each
(``_run_once``, ``call_soon``, the selector); uvloop does the same in C. Same-run A/B with etcd's
benchmark tool, medians (bench/kv.py's harness, asyncio's loop against uvloop's): one member,
serializable range at 100 clients +15 % req/s (CPU per request -12 %), put at 100 clients +2 %
(-6 %), put at 1 client +3 % (-4 %); three members, put at 100 clients +3 % (better in 5 rounds
of 5, -2 % CPU). Issue 13's first measurement, before gRPC's EventEngine was turned off for the
client port, found no clear win: each request then woke more threads, which hid the loop's
share. ``PYETCD_EVENT_LOOP=asyncio`` keeps asyncio's loop (for such A/B runs), as does a Python
without uvloop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory() -> tuple[str, LoopFactory | None]:
    """The event loop's name (for the start-up log line) and its factory for ``asyncio.Runner``
    (None: asyncio's own loop)."""
    if os.environ.get("PYETCD_EVENT_LOOP", "uvloop") == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop

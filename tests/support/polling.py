"""Waiting for a condition that another thread or process makes true, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll cond every 10 ms; fail the test if it is still false after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)

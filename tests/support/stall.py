"""Back-pressure checks for relays: send into one end, read nothing at the other, see where it stops."""

from __future__ import annotations

import os
import socket
import time

PATTERN = os.urandom(1 << 20)


def send_until_stalled(sock: socket.socket, limit: int = 64 << 20, quiet: float = 0.5) -> int:
    """Send PATTERN over and over (non-blocking) until the other end takes nothing for ``quiet``
    seconds, or ``limit`` bytes went; returns how many went. ``expected(n)`` is what they were."""
    sock.setblocking(False)
    sent = 0
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet and sent < limit:
        try:
            sent += sock.send(PATTERN[sent % len(PATTERN):])
            quiet_since = time.monotonic()
        except BlockingIOError:
            time.sleep(0.01)
    sock.setblocking(True)
    return sent


def expected(n: int) -> bytes:
    """The first n bytes send_until_stalled sent."""
    return (PATTERN * (n // len(PATTERN) + 1))[:n]

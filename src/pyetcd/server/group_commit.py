"""Whether the node loop waits for more work after a busy turn: chosen by measuring, not by rule.

A turn costs about the same whether it carries one entry or fifty (two LMDB commits, a hop to the
apply thread and back, the GIL changing hands around each fsync), so fewer, larger turns save
CPU. Waiting a few milliseconds after a busy turn makes them larger. Measured on one member
with etcd's benchmark tool (puts, 2 cores), a fixed 6 ms wait raised puts/s by half at 100
clients and cut them by almost half at 16: with few clients each of them waits out the window,
with many the server was spending its time on turns. Nothing seen from inside the server (batch
sizes, the event loop's CPU) told the two apart reliably, so this tries both: while turns are
busy it alternates between waiting and not, for a short trial each, keeps the setting that
applied more entries per second, and tests again after a while, as load changes.

A lone client is never affected: its turns touch one or two entries (its put, and on a cluster
the previous one's apply), never a busy turn's four.
"""

from __future__ import annotations

import time
from collections.abc import Callable

BUSY_TURN_ENTRIES = 4  # entries a turn persisted or applied (each counted once) to count as busy
TRIAL_SECONDS = 0.2  # each setting is measured this long...
HOLD_SECONDS = 2.0  # ...and the better one kept this long before measuring again
IDLE_SECONDS = 1.0  # a pause this long means load changed: measure afresh
MARGIN = 1.05  # waiting must apply this much more per second to be kept (it costs latency)


class GroupCommit:
    """Call ``after_turn`` once per turn; wait the seconds it returns before the next one."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.waiting = False  # the setting in use
        self._phase = "trial-off"  # trial-off -> trial-on -> hold -> trial-off ...
        self._started = clock()
        self._entries = 0
        self._rate_off = 0.0
        self._last_turn = self._started

    def after_turn(self, entries: int) -> float:
        if not self.window:
            return 0.0
        now = self.clock()
        if now - self._last_turn > IDLE_SECONDS:
            self._begin("trial-off", now)
        self._last_turn = now
        self._entries += entries
        if now - self._started >= (HOLD_SECONDS if self._phase == "hold" else TRIAL_SECONDS):
            self._next_phase(now)
        return self.window if self.waiting and entries >= BUSY_TURN_ENTRIES else 0.0

    def _next_phase(self, now: float) -> None:
        rate = self._entries / (now - self._started)
        if self._phase == "trial-off":
            self._rate_off = rate
            self._begin("trial-on", now)
        elif self._phase == "trial-on":
            self._begin("hold", now)
            self.waiting = rate > self._rate_off * MARGIN
        else:
            self._begin("trial-off", now)

    def _begin(self, phase: str, now: float) -> None:
        self._phase = phase
        self._started = now
        self._entries = 0
        if phase != "hold":
            self.waiting = phase == "trial-on"

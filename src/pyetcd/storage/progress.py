"""Progress of long operations (index rebuild at start, defragmentation), logged as etcd logs.

An operator watching a member that takes minutes to start or to defragment should see it
move: a line at the start, one every few seconds with how far it got, one at the end with
what it took. Durations are written as Go prints them (``1.5s``, ``1h0m0s``), as in etcd's logs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pyetcd.tools.durations import go_duration


class Progress:
    """Logs ``msg`` with ``done``/``total`` at most every ``interval`` seconds, then a final line."""

    def __init__(self, log: logging.Logger, msg: str, total: int, unit: str, interval: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, *, started: str = "", finished: str = "",
                 start_fields: dict[str, object] | None = None) -> None:
        self.log, self.msg, self.total, self.unit = log, msg, total, unit
        self.finished_msg = finished or f"{msg} finished"  # etcd's own wording where etcd logs the operation
        self.interval = interval
        self._clock = clock
        self.started = clock()
        self._next = self.started + interval
        self.reports = 0
        log.info(started or f"{msg} started", stacklevel=2,
                 extra={"fields": {**(start_fields or {}), f"total-{unit}": total}})

    def update(self, done: int) -> None:
        """Cheap to call often: logs only when ``interval`` has passed since the last line."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self.interval
        self.reports += 1
        percent = 100.0 * done / self.total if self.total else 100.0
        self.log.info(f"{self.msg} in progress", stacklevel=2, extra={"fields": {
            self.unit: done, f"total-{self.unit}": self.total, "percent": round(percent, 1),
            "took": go_duration(now - self.started)}})

    def finish(self, done: int, **fields: object) -> None:
        self.log.info(self.finished_msg, stacklevel=2, extra={"fields": {
            self.unit: done, "took": go_duration(self._clock() - self.started), **fields}})


class FileGrowth:
    """Reports, from a background thread, how far a file being written has grown (defrag's copy)."""

    def __init__(self, progress: Progress, path: Path, poll: float = 0.5) -> None:
        self.progress, self.path, self.poll = progress, path, poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            self.progress.update(self._size())

    def __enter__(self) -> FileGrowth:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

"""``--auto-compaction-mode`` / ``--auto-compaction-retention``: etcd's two compactors.

Both follow etcd 3.4/3.5 (etcdserver/api/v3compactor), schedule and log lines included:

* periodic, retention ``period`` (``"1h"``, ``"30m"``, or a bare number of hours): every
  ``min(period, 1h) / 10`` note the current revision, keeping the notes of the last ``period``;
  once ``period`` has passed since the last success (the first time) or ``min(period, 1h)``
  (afterwards), compact at the oldest note, i.e. keep about ``period`` of history.
* revision, retention ``n``: every 5 minutes compact at ``current - n`` unless that is not
  positive or the same as last time.

Only the leader compacts: a compaction is a proposal, and etcd pauses the compactor on
followers. ``ErrCompacted`` (someone compacted further already) counts as success.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pyetcd import errors
from pyetcd.tools.durations import go_duration, parse_go_duration

log = logging.getLogger("pyetcd.server.autocompact")

PERIODIC, REVISION = "periodic", "revision"
REVISION_INTERVAL = 300.0  # etcd's revInterval: 5 minutes between revision-mode checks
_RETRY_DIVISOR = 10
_HOUR = 3600.0


def parse_retention(mode: str, text: str) -> float:
    """etcd's parseCompactionRetention: seconds (periodic) or revisions (revision); 0 = off."""
    if mode not in (PERIODIC, REVISION):
        raise ValueError(f"unknown auto-compaction-mode {mode!r}: expected 'periodic' or 'revision'")
    text = text.strip()
    if text.isdigit():
        return float(int(text)) * (_HOUR if mode == PERIODIC else 1)
    try:
        seconds = parse_go_duration(text)
    except ValueError as e:
        raise ValueError(f"error parsing auto-compaction-retention {text!r}: a duration like 1h or 30m, "
                         "or a whole number (hours in periodic mode, revisions in revision mode)") from e
    # etcd keeps the Duration's nanoseconds as the revision count in revision mode; do the same
    return seconds if mode == PERIODIC else float(round(seconds * 1e9))


Compact = Callable[[int], Awaitable[object]]


class AutoCompactor:
    """Runs one of etcd's compactors as an asyncio task; ``stop()`` ends it."""

    def __init__(self, mode: str, retention: float, compact: Compact, current_rev: Callable[[], int],
                 is_leader: Callable[[], bool], *, revision_interval: float = REVISION_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.mode, self.retention = mode, retention
        self._compact, self._current_rev, self._is_leader = compact, current_rev, is_leader
        self.revision_interval = revision_interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.compacted: list[int] = []  # revisions compacted at, for status and tests

    @classmethod
    def from_config(cls, mode: str, retention_text: str, compact: Compact, current_rev: Callable[[], int],
                    is_leader: Callable[[], bool]) -> AutoCompactor | None:
        """The compactor the flags ask for, or None when auto compaction is off (retention 0)."""
        retention = parse_retention(mode, retention_text)
        return cls(mode, retention, compact, current_rev, is_leader) if retention > 0 else None

    def start(self) -> None:
        run = self._periodic if self.mode == PERIODIC else self._revision
        self._task = asyncio.create_task(run(), name=f"auto-compaction-{self.mode}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _try(self, rev: int) -> bool:
        try:
            await self._compact(rev)
        except errors.ErrCompacted:
            pass
        except (errors.EtcdError, OSError) as e:
            self._failed(rev, e)
            return False
        self.compacted.append(rev)
        return True

    def _failed(self, rev: int, e: Exception) -> None:
        retry = self.period_retry() if self.mode == PERIODIC else self.revision_interval
        fields = {"revision": rev, **self._retention_field(), "retry-interval": go_duration(retry), "error": str(e)}
        log.warning(f"failed auto {self.mode} compaction", extra={"fields": fields})

    def _retention_field(self) -> dict[str, object]:
        if self.mode == PERIODIC:
            return {"compact-period": go_duration(self.retention)}
        return {"revision-compaction-retention": int(self.retention)}

    # ---- periodic (v3compactor/periodic.go) ---------------------------------------------------
    def period_interval(self) -> float:
        return min(self.retention, _HOUR)

    def period_retry(self) -> float:
        return self.period_interval() / _RETRY_DIVISOR

    async def _periodic(self) -> None:
        retry = self.period_retry()
        keep = int(self.retention / retry) + 1
        revs: list[int] = []
        last_success = self._clock()
        base = self.retention
        while True:
            revs.append(self._current_rev())
            if len(revs) > keep:
                revs.pop(0)  # revs[0] is always the revision one period ago
            await asyncio.sleep(retry)
            if not self._is_leader():
                continue
            if self._clock() - last_success < base:
                continue
            if base == self.retention:
                base = self.period_interval()  # after the first wait, every min(period, 1h)
            rev = revs[0]
            log.info("starting auto periodic compaction", extra={"fields": {"revision": rev, **self._retention_field()}})
            if await self._try(rev):
                log.info("completed auto periodic compaction", extra={"fields": {
                    "revision": rev, **self._retention_field(), "took": go_duration(self._clock() - last_success)}})
                last_success = self._clock()

    # ---- revision (v3compactor/revision.go) ------------------------------------------------
    async def _revision(self) -> None:
        prev = 0
        while True:
            await asyncio.sleep(self.revision_interval)
            if not self._is_leader():
                continue
            rev = self._current_rev() - int(self.retention)
            if rev <= 0 or rev == prev:
                continue
            began = self._clock()
            log.info("starting auto revision compaction", extra={"fields": {"revision": rev, **self._retention_field()}})
            if await self._try(rev):
                prev = rev
                log.info("completed auto revision compaction", extra={"fields": {
                    "revision": rev, **self._retention_field(), "took": go_duration(self._clock() - began)}})

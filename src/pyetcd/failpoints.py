"""Named failpoints, armed by the ``PYETCD_FAILPOINTS`` environment variable (off: one dict lookup).

The robustness suite (tests/robustness) crashes or slows a member at exact places inside it —
before and after a raft turn is persisted, before apply, during defragmentation and compaction —
as etcd's gofail failpoints do. The selftest also switches on deliberate bugs (``bug.*`` points)
to prove the checkers catch them. A production member never sets the variable.

Syntax, gofail's terms plus a skip count::

    PYETCD_FAILPOINTS="turn.before_persist=30>panic,defrag.copy=50%sleep(200),bug.stale_read=5%on"

A term is ``[K>][P%][N*]action[(arg)]``: ignore the first K hits, then fire with probability P
percent, at most N times. Actions: ``panic`` (exit at once with status 3, as a crash: nothing is
flushed), ``sleep(ms)``, ``on`` (``hit`` returns True: the call site acts, for ``bug.*`` points),
``off``. The random choice is seeded from ``PYETCD_FAILPOINTS_SEED`` when set.
"""

from __future__ import annotations

import os
import random
import re
import sys
import threading
import time
from dataclasses import dataclass

ENV = "PYETCD_FAILPOINTS"
PANIC_STATUS = 3
_TERM = re.compile(r"^(?:(\d+)>)?(?:(\d+(?:\.\d+)?)%)?(?:(\d+)\*)?(panic|sleep|on|off)(?:\((\d+)\))?$")


@dataclass
class Failpoint:
    """One armed failpoint: what it does and how often."""

    name: str
    action: str
    arg: int = 0
    skip: int = 0
    percent: float = 100.0
    times: int = -1  # -1: unlimited
    hits: int = 0


def parse(spec: str) -> dict[str, Failpoint]:
    """``name=term,...`` into failpoints; ValueError names the bad term and the syntax."""
    points: dict[str, Failpoint] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, term = part.partition("=")
        m = _TERM.match(term.strip())
        if not sep or not name or m is None:
            raise ValueError(f"{ENV}: bad failpoint {part!r}; write name=[K>][P%][N*]panic|sleep(ms)|on|off")
        skip, percent, times, action, arg = m.groups()
        points[name.strip()] = Failpoint(name.strip(), action, int(arg or 0), int(skip or 0),
                                         float(percent) if percent else 100.0, int(times) if times else -1)
    return points


_points: dict[str, Failpoint] = parse(os.environ.get(ENV, ""))
_lock = threading.Lock()
_rng = random.Random(os.environ.get(f"{ENV}_SEED"))


def configure(spec: str) -> None:
    """Replace the armed failpoints (tests in one process; members read the variable at start)."""
    global _points
    _points = parse(spec)


def hit(name: str) -> bool:
    """Pass the failpoint ``name``: act if it is armed. True when an ``on`` action fired."""
    fp = _points.get(name)
    if fp is None:
        return False
    with _lock:
        fp.hits += 1
        if fp.action == "off" or fp.hits <= fp.skip or fp.times == 0:
            return False
        if fp.percent < 100.0 and _rng.random() * 100.0 >= fp.percent:
            return False
        if fp.times > 0:
            fp.times -= 1
    if fp.action == "panic":
        sys.stderr.write(f"failpoint {name}: panic\n")
        sys.stderr.flush()
        os._exit(PANIC_STATUS)
    if fp.action == "sleep":
        time.sleep(fp.arg / 1000.0)
        return False
    return fp.action == "on"

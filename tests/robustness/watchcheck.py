"""etcd's watch guarantees, checked on recorded watch streams against the linearized history.

The truth is the event list the model produced while replaying the checker's linearization
(``model.replay``), up to the final revision F every member reached. For each watcher:

- ordered: event revisions never go down;  unique: no (revision, key) delivered twice;
- atomic: every event of a revision arrives in one response;
- reliable (and resumable): from the start revision up to the last revision it was told it has
  (events or progress), exactly the truth's matching events, field by field, prev_kv included
  when asked for (and absent otherwise, or when a compaction had removed it, as etcd does),
  across every resumed stream;
- progress notifications never ahead: no event at or below a progress revision after it, and
  no progress revision beyond F;
- complete: a watcher not cancelled by compaction reached F.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from robustness.history import WatchRecord
from robustness.model import Event


def _matches(w: WatchRecord, key: str) -> bool:
    if w.end is None:
        return key == w.key
    return key >= w.key and (w.end == "\0" or key < w.end)


def _fmt(ev: tuple[object, ...]) -> str:
    return f"{ev[0]} {ev[1]} prev={ev[2]}"


def check_watcher(w: WatchRecord, truth: dict[int, list[Event]], final_rev: int,
                  compactions: Sequence[tuple[int, float]] = ()) -> list[str]:
    """Violations of etcd's guarantees by one watcher (empty: none).

    ``compactions``: (revision, invoke time) of every compaction that may have happened. etcd
    reads an event's prev_kv at the revision before it when it sends the event, so a compaction
    at or past the event's own revision, requested before the event arrived, excuses a missing
    prev_kv (never a wrong one)."""
    where = f"watch {w.id} [{w.key!r}, {w.end!r}) from {w.start_rev}{f' on {w.member}' if w.member else ''}"
    found: list[str] = []
    got: list[tuple[str, tuple[object, ...], tuple[object, ...] | None]] = []
    arrived: dict[tuple[int, str], float] = {}
    last_rev, progress_floor = 0, 0
    seen: set[tuple[int, str]] = set()
    resp_of_rev: dict[int, int] = {}
    for i, r in enumerate(w.responses):
        if r.progress:
            if r.rev > final_rev:
                found.append(f"{where}: progress notification at {r.rev} is ahead of the history (F={final_rev})")
            progress_floor = max(progress_floor, r.rev)
            continue
        for ev in r.events:
            rev, key = ev[1][3], ev[1][0]
            if rev < last_rev:
                found.append(f"{where}: out of order, revision {rev} after {last_rev}")
            if rev <= progress_floor:
                found.append(f"{where}: event at {rev} after a progress notification at {progress_floor}")
            if (rev, key) in seen:
                found.append(f"{where}: duplicate event {key!r} at {rev}")
            if resp_of_rev.setdefault(rev, i) != i:
                found.append(f"{where}: revision {rev} split across responses")
            if r.rev and r.rev < rev:
                found.append(f"{where}: response header revision {r.rev} behind its event at {rev}")
            seen.add((rev, key))
            last_rev = max(last_rev, rev)
            got.append(ev)
            arrived[(rev, key)] = r.t
    upto = min(w.last_seen(), final_rev)
    want = [(e.type, e.kv, e.prev if w.prev_kv else None)
            for rev in range(w.start_rev, upto + 1) for e in truth.get(rev, ()) if _matches(w, e.kv[0])]
    got_upto = [ev for ev in got if ev[1][3] <= upto]  # type: ignore[operator]
    for n, (a, b) in enumerate(zip(want, got_upto, strict=False)):
        mod, key = b[1][3], b[1][0]
        excused = (b[2] is None and (a[0], a[1]) == (b[0], tuple(b[1]))
                   and any(at >= mod and t < arrived[(mod, key)] for at, t in compactions))  # type: ignore[operator]
        if tuple(a) != (b[0], tuple(b[1]), tuple(b[2]) if b[2] else None) and not excused:
            found.append(f"{where}: event #{n} should be {_fmt(a)}, got {_fmt(b)}")
            break
    else:
        if len(want) != len(got_upto):
            longer, what = (want, "missing") if len(want) > len(got_upto) else (got_upto, "unexpected")
            found.append(f"{where}: {what} events from #{min(len(want), len(got_upto))}: "
                         f"{_fmt(longer[min(len(want), len(got_upto))])} ({len(want)} expected, {len(got_upto)} got)")
    if not w.compacted() and w.last_seen() < final_rev:
        found.append(f"{where}: never reached the final revision {final_rev} (last complete at {w.last_seen()})")
    return found


def check_watches(watches: Iterable[WatchRecord], truth: dict[int, list[Event]], final_rev: int,
                  compactions: Sequence[tuple[int, float]] = ()) -> list[str]:
    return [v for w in watches for v in check_watcher(w, truth, final_rev, compactions)]

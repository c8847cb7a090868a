"""What the clients and watchers of one run saw, recorded as it happened, and saved as JSON.

Every request is recorded at invoke and at return (monotonic seconds since the run began); a
request that failed with an error that does not prove it had no effect (a timeout, an
unavailable member) keeps output None: an unknown outcome. ``patch`` then settles what it can,
as etcd's robustness suite does: every put writes a value used once, so a value seen by any
read or watcher proves that put (or txn) happened, at that revision; one never seen at all,
with a watcher that saw every revision, did not happen and leaves the history.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robustness.linearizability import Operation

READS = ("get", "keepalive", "ttl")  # requests that change nothing: an unknown outcome leaves the history


def _tuples(x: Any) -> Any:
    """JSON lists back to the tuples the model compares with."""
    return tuple(_tuples(i) for i in x) if isinstance(x, list) else x


@dataclass
class WatchResponse:
    """One response on a watch stream: events are (type, kv, prev kv or None) tuples."""

    t: float
    rev: int
    events: list[tuple[str, tuple[Any, ...], tuple[Any, ...] | None]]
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0

    @property
    def progress(self) -> bool:
        return not self.events and not self.created and not self.canceled


@dataclass
class WatchRecord:
    """One logical watcher: a key range watched from start_rev, resumed after every broken stream."""

    id: int
    key: str
    end: str | None
    prev_kv: bool
    start_rev: int
    responses: list[WatchResponse] = field(default_factory=list)
    resumes: list[tuple[float, int]] = field(default_factory=list)  # (time, start revision) per stream
    errors: list[str] = field(default_factory=list)
    member: str = ""  # the member it watched through (a cluster run spreads watchers)

    def last_seen(self) -> int:
        """The highest revision this watcher is known to be complete up to (events or progress)."""
        seen = self.start_rev - 1
        for r in self.responses:
            if r.events:
                seen = max(seen, r.events[-1][1][3])
            elif r.progress:
                seen = max(seen, r.rev)
        return seen

    def compacted(self) -> bool:
        return any(r.canceled and r.compact_revision for r in self.responses)


class History:
    """Thread-safe log of operations and watchers for one run."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.ops: list[Operation] = []
        self.watches: list[WatchRecord] = []
        self.crashes: list[tuple[float, float]] = []  # (killed at, serving again at) of a single member
        self.members = 1  # the cluster size: one member has one lease clock (see ``expiry``)
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def invoke(self, client: int, input: tuple[Any, ...]) -> Operation:
        with self._lock:
            op = Operation(len(self.ops), client, input, None, self.now(), None)
            self.ops.append(op)
        return op

    def done(self, op: Operation, output: tuple[Any, ...] | None) -> None:
        """Record the answer; None (unknown outcome) leaves the return time open."""
        op.output = output
        op.ret = self.now() if output is not None else None

    def watch(self, key: str, end: str | None, prev_kv: bool, start_rev: int) -> WatchRecord:
        with self._lock:
            w = WatchRecord(len(self.watches), key, end, prev_kv, start_rev)
            self.watches.append(w)
        return w

    def crashed(self, down: float, up: float) -> None:
        """The (only) member died at ``down`` and served again from ``up`` (see ``patch``)."""
        self.crashes.append((down, up))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"ops": [asdict(o) for o in self.ops], "crashes": self.crashes,
                                    "members": self.members,
                                    "watches": [asdict(w) for w in self.watches]}))

    @classmethod
    def load(cls, path: Path) -> History:
        raw = json.loads(path.read_text())
        h = cls()
        h.crashes = [tuple(c) for c in raw.get("crashes", [])]  # type: ignore[misc]
        h.members = raw.get("members", 1)
        h.ops = [Operation(o["id"], o["client"], _tuples(o["input"]), _tuples(o["output"]), o["call"], o["ret"])
                 for o in raw["ops"]]
        for w in raw["watches"]:
            rec = WatchRecord(w["id"], w["key"], w["end"], w["prev_kv"], w["start_rev"],
                              resumes=[tuple(r) for r in w["resumes"]], errors=w["errors"],  # type: ignore[misc]
                              member=w.get("member", ""))
            rec.responses = [WatchResponse(r["t"], r["rev"], _tuples(r["events"]), r["created"], r["canceled"],
                                           r["compact_revision"]) for r in w["responses"]]
            h.watches.append(rec)
        return h


def observed_values(h: History) -> dict[str, tuple[int, float]]:
    """value -> (revision it was written at, earliest time anyone saw it), from reads and watchers."""
    seen: dict[str, tuple[int, float]] = {}

    def note(kv: tuple[Any, ...], t: float) -> None:
        value, mod = kv[1], kv[3]
        if value and (value not in seen or t < seen[value][1]):
            seen[value] = (mod, t)

    for op in h.ops:
        if op.output is None or op.output[0] != "ok" or op.ret is None:
            continue
        if op.input[0] == "get":
            for kv in op.output[2]:
                note(kv, op.ret)
        elif op.input[0] == "txn":
            for res in op.output[3]:
                for kv in res if res and isinstance(res[0], tuple) else ():
                    note(kv, op.ret)
    for w in h.watches:
        for r in w.responses:
            for _, kv, prev in r.events:
                if kv[1]:
                    note(kv, r.t)
                if prev:
                    note(prev, r.t)
    return seen


def complete_watcher(h: History) -> WatchRecord | None:
    """The run's watcher of every key from revision 1 with prev_kv (the first such), if any."""
    return next((w for w in h.watches if w.key == "\0" and w.end == "\0" and w.start_rev == 1 and w.prev_kv), None)


def _deleted_nothing(h: History) -> Callable[[Operation], bool]:
    """A test for an unknown-outcome delete: True when it cannot have deleted anything, because the
    complete watcher, which saw every revision up to the highest any answer carried, received no
    DELETE of a key in its range after the delete was invoked (an event arrives after it happened,
    which is after the call). A delete that deletes nothing changes nothing, revision included: it
    may leave the history, which spares the search an operation it could place anywhere."""
    w = complete_watcher(h)
    top = max((op.output[1] for op in h.ops if op.output is not None and op.output[0] == "ok"), default=0)
    if w is None or w.compacted() or w.last_seen() < top:
        return lambda op: False
    deletes = [(r.t, kv[0]) for r in w.responses for typ, kv, _ in r.events if typ == "DELETE"]

    def nothing(op: Operation) -> bool:
        key, end = op.input[1], op.input[2]
        hit = (lambda k: k == key) if end is None else (lambda k: key <= k and (not end or k < end))
        return not any(t >= op.call and hit(k) for t, k in deletes)
    return nothing


def _written_values(inp: tuple[Any, ...]) -> list[str]:
    if inp[0] == "put":
        return [inp[2]]
    if inp[0] == "txn":
        return [o[2] for o in inp[2] if o[0] == "put"]
    return []


def patch(h: History, trust_watcher: bool = True) -> list[Operation]:
    """The history the checker gets: unknown reads dropped, unknown puts/txns settled by their values.

    A put (or a txn whose success branch puts) with an unknown outcome whose value was observed
    took effect at the observed revision, before it was first observed; one never observed had
    no effect (a txn whose compare failed has none either) and is dropped. Other unknown writes
    (deletes, lease grants and revokes, compactions) stay unknown: they may or may not have happened,
    but one in flight when a single member crashed took effect before the member served again, or
    never (a restarted member replays its log before it answers): that bounds its return time,
    which keeps the search from trying it at every later point. An unknown delete that cannot have
    deleted anything (``_deleted_nothing``, unless ``trust_watcher`` is False: a watch bug must not
    read as a linearizability violation) is dropped, so is an unknown lease grant of a lease no
    request used (a grant moves no revision), and so is a request never sent.
    """
    seen = observed_values(h)
    deleted_nothing = _deleted_nothing(h) if trust_watcher else (lambda op: False)
    used_leases = {op.input[1] for op in h.ops if op.input[0] in ("revoke", "keepalive", "ttl")} | {
        op.input[3] for op in h.ops if op.input[0] == "put" and op.input[3]}
    out: list[Operation] = []
    for op in h.ops:
        if op.output == ("err", "not_sent"):
            continue
        if op.output is None and op.input[0] == "delete" and deleted_nothing(op):
            continue
        if op.output is None and op.input[0] == "grant" and op.input[1] not in used_leases:
            continue  # a lease nobody used: granted or not, nothing observable depends on it
        if op.output is not None:
            out.append(op)
            continue
        bound = next((up for down, up in h.crashes if op.call < down), None)
        if bound is not None and op.input[0] not in READS and not _written_values(op.input):
            out.append(Operation(op.id, op.client, op.input, None, op.call, None))
            out[-1].ret = bound  # known return time, unknown output: see Operation.unknown
            continue
        kind = op.input[0]
        if kind in READS:
            continue
        values = _written_values(op.input)
        if not values:
            out.append(op)
            continue
        hit = [seen[v] for v in values if v in seen]
        if not hit:
            continue
        rev, t = min(hit, key=lambda x: x[1])
        if kind == "put":
            output: tuple[Any, ...] = ("ok", rev)
        else:
            output = ("ok", rev, True, tuple(() for _ in op.input[2]))
        out.append(Operation(op.id, op.client, op.input, output, op.call, max(t, op.call)))
    return out

"""etcd as a sequential object, for the linearizability checker and the watch checks.

The state is what a client can observe: the revision counter, the compacted revision, every
live key (value, create/mod revision, version, lease) and the live leases. ``apply`` runs one
request as etcd's apply does and returns the answer and the events it makes (what a watcher
of that revision must receive); ``EtcdModel.step`` accepts an observed answer only if it is
exactly that answer. Answers carry the header revision, which pins each operation to one place
in the revision order and keeps the search almost linear.

Requests and answers are plain tuples (JSON-friendly, hashable):

- ``("get", key, end, serializable)`` -> ``("ok", rev, kvs)``; end None: one key; kvs sorted by key,
  each ``(key, value, create, mod, version, lease)``
- ``("put", key, value, lease)`` -> ``("ok", rev)`` | ``("err", "lease_not_found")``
- ``("delete", key, end)`` -> ``("ok", rev, deleted)``
- ``("txn", (key, target, value), success_ops, failure_ops)`` with target "mod"/"value"/"version"
  -> ``("ok", rev, succeeded, results)``: a put gives ``()``, a delete ``(deleted,)``, a get ``kvs``
- ``("grant", lease[, ttl])`` / ``("revoke", lease)`` -> ``("ok", rev)`` | ``("err", "lease_not_found")``;
  a grant with a TTL is a short lease, which the server may revoke by itself (expiry)
- ``("expire", lease)`` -> ``("ok",)`` | ``("err", "lease_not_found")``: the server's own revoke of an
  expired lease, which no client issues (``expiry`` adds them to the history): like a revoke, every key
  of the lease deleted in one revision, but no revision in the answer (nobody received one)
- ``("keepalive", lease)`` / ``("ttl", lease)`` -> ``("ok", alive)``: a keep-alive (alive: answered with
  TTL > 0) or a time-to-live (alive: a granted TTL in the answer) finds the lease not yet revoked
- ``("compact", rev)`` -> ``("ok", rev)`` | ``("err", "compacted")`` | ``("err", "future")``
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from robustness.linearizability import Operation

KV = tuple[str, str, int, int, int, int]  # key, value, create, mod, version, lease


@dataclass(frozen=True)
class Event:
    """One watch event as the model makes it: PUT/DELETE of kv at revision kv[3], and the previous kv."""

    type: str
    kv: KV
    prev: KV | None


class State:
    """An immutable etcd state; hashed once, compared in full (the checker's cache key)."""

    __slots__ = ("rev", "compact", "kvs", "leases", "_hash")

    def __init__(self, rev: int, compact: int, kvs: dict[str, KV], leases: frozenset[int]) -> None:
        self.rev, self.compact, self.kvs, self.leases = rev, compact, kvs, leases
        self._hash = hash((rev, compact, frozenset(kvs.values()), leases))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, State) and self._hash == other._hash and self.rev == other.rev
                and self.compact == other.compact and self.leases == other.leases and self.kvs == other.kvs)

    def range(self, key: str, end: str | None) -> tuple[KV, ...]:
        return _range(self.kvs, key, end)

    def __repr__(self) -> str:
        return f"State(rev={self.rev}, compact={self.compact}, kvs={sorted(self.kvs.values())}, leases={sorted(self.leases)})"


INITIAL = State(1, 0, {}, frozenset())


def _range(kvs: dict[str, KV], key: str, end: str | None) -> tuple[KV, ...]:
    """etcd's range: one key (end None), [key, end), or every key from key on (end "\\0")."""
    if end is None:
        kv = kvs.get(key)
        return (kv,) if kv else ()
    return tuple(kvs[k] for k in sorted(kvs) if key <= k and (end == "\0" or k < end))


class _Writer:
    """The changes of one request: they share one revision, taken only if something changed."""

    def __init__(self, s: State) -> None:
        self.s = s
        self.kvs = s.kvs
        self.copied = False
        self.events: list[Event] = []

    @property
    def write_rev(self) -> int:
        return self.s.rev + 1

    def _own(self) -> None:
        if not self.copied:
            self.kvs, self.copied = dict(self.kvs), True

    def put(self, key: str, value: str, lease: int) -> None:
        self._own()
        prev = self.kvs.get(key)
        create, version = (prev[2], prev[4] + 1) if prev else (self.write_rev, 1)
        kv = (key, value, create, self.write_rev, version, lease)
        self.kvs[key] = kv
        self.events.append(Event("PUT", kv, prev))

    def delete(self, key: str, end: str | None) -> int:
        doomed = [kv[0] for kv in self.range(key, end)]
        for k in doomed:
            self._own()
            prev = self.kvs.pop(k)
            self.events.append(Event("DELETE", (k, "", 0, self.write_rev, 0, 0), prev))
        return len(doomed)

    def range(self, key: str, end: str | None) -> tuple[KV, ...]:
        return _range(self.kvs, key, end)

    def done(self, leases: frozenset[int] | None = None, compact: int | None = None) -> State:
        rev = self.write_rev if self.events else self.s.rev
        if not self.copied and leases is None and compact is None:
            return self.s
        return State(rev, self.s.compact if compact is None else compact, self.kvs,
                     self.s.leases if leases is None else leases)


def _compare(s: _Writer, cmp: tuple[str, str, Any]) -> bool:
    key, target, want = cmp
    kv = s.range(key, None)
    if target == "mod":
        return (kv[0][3] if kv else 0) == want
    if target == "version":
        return (kv[0][4] if kv else 0) == want
    return bool(kv) and kv[0][1] == want


def apply(s: State, req: tuple[Any, ...]) -> tuple[State, tuple[Any, ...], list[Event]]:
    """Run ``req`` on ``s``: the new state, etcd's answer and the events of its revision."""
    kind = req[0]
    w = _Writer(s)
    if kind == "get":
        return s, ("ok", s.rev, s.range(req[1], req[2])), []
    if kind == "put":
        _, key, value, lease = req
        if lease and lease not in s.leases:
            return s, ("err", "lease_not_found"), []
        w.put(key, value, lease)
        new = w.done()
        return new, ("ok", new.rev), w.events
    if kind == "delete":
        n = w.delete(req[1], req[2])
        new = w.done()
        return new, ("ok", new.rev, n), w.events
    if kind == "txn":
        _, cmp, success, failure = req
        ok = _compare(w, cmp)
        results: list[Any] = []
        for op in success if ok else failure:
            if op[0] == "put":
                if op[3] and op[3] not in s.leases:
                    return s, ("err", "lease_not_found"), []
                w.put(op[1], op[2], op[3])
                results.append(())
            elif op[0] == "delete":
                results.append((w.delete(op[1], op[2]),))
            else:
                results.append(w.range(op[1], op[2]))
        new = w.done()
        return new, ("ok", new.rev, ok, tuple(results)), w.events
    if kind == "grant":
        new = w.done(leases=s.leases | {req[1]})
        return new, ("ok", new.rev), []
    if kind in ("revoke", "expire"):
        lease = req[1]
        if lease not in s.leases:
            return s, ("err", "lease_not_found"), []
        for k in sorted(k for k, kv in s.kvs.items() if kv[5] == lease):
            w.delete(k, None)
        new = w.done(leases=s.leases - {lease})
        return new, ("ok", new.rev) if kind == "revoke" else ("ok",), w.events
    if kind in ("keepalive", "ttl"):
        return s, ("ok", req[1] in s.leases), []
    if kind == "compact":
        at = req[1]
        if at <= s.compact:
            return s, ("err", "compacted"), []
        if at > s.rev:
            return s, ("err", "future"), []
        new = w.done(compact=at)
        return new, ("ok", new.rev), []
    raise ValueError(f"unknown request {req!r}")


class EtcdModel:
    """The checker's view of etcd: exact answers, unknown outcomes accept any effect.

    ``observed``: revision -> the events a complete watcher received for it, as (type, kv, prev)
    tuples. When given, a write is placed at a revision only if it makes exactly those events:
    two unknown-outcome deletes could otherwise be linearized in either order, and the watch
    checks need the one that happened (etcd's robustness suite patches its history with the
    watch the same way). A watcher that lies then makes the history fail to linearize: the
    caller checks again without it to tell which is wrong."""

    def __init__(self, observed: dict[int, tuple[tuple[Any, ...], ...]] | None = None) -> None:
        self.observed = observed or {}

    def init(self) -> State:
        return INITIAL

    def step(self, state: State, input: tuple[Any, ...], output: tuple[Any, ...] | None) -> State | None:
        new, answer, events = apply(state, input)
        if output is not None and answer != output:
            return None
        if events and self.observed:
            want = self.observed.get(new.rev)
            if want is not None and want != tuple((e.type, e.kv, e.prev) for e in events):
                return None
        return new

    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        """Not partitioned: every write moves the one revision counter every answer carries."""
        return [list(ops)]


def replay(ops_in_order: Sequence[Operation]) -> tuple[dict[int, State], dict[int, list[Event]]]:
    """Run a linearization: the state after every revision and the events each revision made."""
    state = INITIAL
    states = {state.rev: state}
    events: dict[int, list[Event]] = {}
    for op in ops_in_order:
        state, _, evs = apply(state, op.input)
        states[state.rev] = state  # a later non-writing op (compaction) may replace it: same kvs
        if evs:
            events[state.rev] = evs
    return states, events

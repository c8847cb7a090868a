"""The robustness suite's checkers on histories known to be linearizable and known not to be.

The linearizability checker is exercised on a register (partitioned by key) and on the etcd
model, including unknown outcomes (timeouts), crash-bounded unknowns, and a generated history
of thousands of operations; the watch checker on streams with each guarantee broken in turn.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from robustness.evaluate import evaluate, lost_writes
from robustness.history import History, WatchRecord, WatchResponse, patch
from robustness.linearizability import Operation, check
from robustness.model import INITIAL, EtcdModel, apply, replay
from robustness.watchcheck import check_watcher

INF = None


def ops(*rows: tuple[Any, ...]) -> list[Operation]:
    """(client, input, output, call, ret) rows -> operations."""
    return [Operation(i, c, inp, out, call, ret) for i, (c, inp, out, call, ret) in enumerate(rows)]


class Register:
    """One register per key: ("w", key, v) -> "ok", ("r", key) -> v; partitioned by key (sound here)."""

    def init(self) -> tuple[()]:
        return ()

    def step(self, state: tuple[tuple[str, int], ...], inp: tuple[Any, ...], out: Any) -> Any:
        d = dict(state)
        if inp[0] == "w":
            d[inp[1]] = inp[2]
            return tuple(sorted(d.items()))
        return state if out is None or d.get(inp[1], 0) == out else None

    def partition(self, history: Sequence[Operation]) -> list[list[Operation]]:
        keys: dict[str, list[Operation]] = {}
        for op in history:
            keys.setdefault(op.input[1], []).append(op)
        return list(keys.values())


def test_register_concurrent_write_and_reads_are_linearizable() -> None:
    h = ops((0, ("w", "x", 1), "ok", 0, 10), (1, ("r", "x"), 1, 2, 7), (2, ("r", "x"), 0, 1, 3),
            (3, ("w", "y", 5), "ok", 0, 1), (3, ("r", "y"), 5, 2, 3))
    res = check(Register(), h)
    assert res.ok is True and len(res.order) == 2


def test_register_read_that_goes_back_in_time_is_not_linearizable() -> None:
    # the new value was read, then (strictly later) the old one again
    h = ops((0, ("w", "x", 1), "ok", 0, 10), (1, ("r", "x"), 1, 1, 2), (2, ("r", "x"), 0, 3, 4))
    assert check(Register(), h).ok is False


def test_register_unknown_write_may_or_may_not_have_happened() -> None:
    took = ops((0, ("w", "x", 1), None, 0, INF), (1, ("r", "x"), 1, 5, 6))
    did_not = ops((0, ("w", "x", 1), None, 0, INF), (1, ("r", "x"), 0, 5, 6))
    assert check(Register(), took).ok is True
    assert check(Register(), did_not).ok is True


# ---- the etcd model ----------------------------------------------------------------------------------

def kv(key: str, value: str, create: int, mod: int, version: int = 1, lease: int = 0) -> tuple[Any, ...]:
    return (key, value, create, mod, version, lease)


def test_etcd_sequential_history_is_linearizable_and_replays_to_its_events() -> None:
    h = ops((0, ("put", "a", "1", 0), ("ok", 2), 0, 1),
            (0, ("get", "a", None, False), ("ok", 2, (kv("a", "1", 2, 2),)), 2, 3),
            (0, ("put", "a", "2", 0), ("ok", 3), 4, 5),
            (0, ("delete", "a", None), ("ok", 4, 1), 6, 7),
            (0, ("get", "a", "\0", False), ("ok", 4, ()), 8, 9))
    res = check(EtcdModel(), h)
    assert res.ok is True
    states, events = replay([h[i] for i in res.order[0]])
    assert [e.type for r in sorted(events) for e in events[r]] == ["PUT", "PUT", "DELETE"]
    assert events[3][0].prev == kv("a", "1", 2, 2) and states[4].kvs == {}


def test_etcd_stale_read_after_an_acknowledged_write_is_not_linearizable() -> None:
    h = ops((0, ("put", "a", "1", 0), ("ok", 2), 0, 1),
            (1, ("get", "a", None, False), ("ok", 1, ()), 2, 3))
    assert check(EtcdModel(), h).ok is False


def test_etcd_two_cas_on_the_same_revision_cannot_both_succeed() -> None:
    cas = lambda v: ("txn", ("a", "mod", 2), (("put", "a", v, 0),), (("get", "a", None),))  # noqa: E731
    h = ops((0, ("put", "a", "0", 0), ("ok", 2), 0, 1),
            (1, cas("x"), ("ok", 3, True, ((),)), 2, 5),
            (2, cas("y"), ("ok", 4, True, ((),)), 2, 5))
    assert check(EtcdModel(), h).ok is False
    h[2].output = ("ok", 3, False, ((kv("a", "x", 2, 3, 2),),))
    assert check(EtcdModel(), h).ok is True


def test_etcd_revoke_deletes_the_lease_keys_in_one_revision() -> None:
    h = ops((0, ("grant", 7), ("ok", 1), 0, 1),
            (0, ("put", "a", "1", 7), ("ok", 2), 2, 3),
            (0, ("put", "b", "2", 7), ("ok", 3), 4, 5),
            (0, ("revoke", 7), ("ok", 4), 6, 7),
            (1, ("get", "a", "\0", False), ("ok", 4, ()), 8, 9),
            (1, ("put", "c", "3", 7), ("err", "lease_not_found"), 10, 11))
    assert check(EtcdModel(), h).ok is True
    h[4].output = ("ok", 4, (kv("a", "1", 2, 2, 1, 7),))
    assert check(EtcdModel(), h).ok is False


def test_etcd_compaction_answers() -> None:
    s, out, _ = apply(apply(INITIAL, ("put", "a", "1", 0))[0], ("compact", 2))
    assert out == ("ok", 2) and s.compact == 2
    assert apply(s, ("compact", 2))[1] == ("err", "compacted")
    assert apply(s, ("compact", 9))[1] == ("err", "future")


def test_etcd_unknown_delete_bounded_by_a_crash_may_or_may_not_have_happened() -> None:
    base = [(0, ("put", "a", "1", 0), ("ok", 2), 0, 1),
            (1, ("delete", "a", None), None, 2, 5)]  # in flight when the member died; serving again at 5
    took = ops(*base, (2, ("get", "a", None, False), ("ok", 3, ()), 6, 7))
    did_not = ops(*base, (2, ("get", "a", None, False), ("ok", 2, (kv("a", "1", 2, 2),)), 6, 7))
    assert check(EtcdModel(), took).ok is True
    res = check(EtcdModel(), did_not)
    assert res.ok is True and res.order[0] == [0, 2]  # the witness leaves the delete out


def test_patch_settles_unknown_puts_by_their_values_and_drops_requests_never_sent() -> None:
    h = History()
    seen_put = h.invoke(0, ("put", "a", "v1", 0))
    h.done(seen_put, None)
    lost_put = h.invoke(1, ("put", "b", "v2", 0))
    h.done(lost_put, None)
    refused = h.invoke(2, ("delete", "a", None))
    h.done(refused, ("err", "not_sent"))
    get = h.invoke(3, ("get", "a", None, False))
    h.done(get, ("ok", 2, (kv("a", "v1", 2, 2),)))
    patched = {op.id: op for op in patch(h)}
    assert set(patched) == {seen_put.id, get.id}
    assert patched[seen_put.id].output == ("ok", 2) and patched[seen_put.id].ret == get.ret


def test_patch_drops_unknown_deletes_that_deleted_nothing_and_grants_nobody_used() -> None:
    """With no crash bound (clusters), unknown deletes and grants sit at +infinity and blow up the
    search; those with no possible effect leave the history. Only while the complete watcher saw
    every revision: a DELETE of the key it received after the call keeps the delete in."""
    h = History()
    put = h.invoke(0, ("put", "a", "v1", 0))
    h.done(put, ("ok", 2))
    oracle = h.watch("\0", "\0", True, 1)
    oracle.responses.append(WatchResponse(h.now(), 2, [("PUT", kv("a", "v1", 2, 2), None)]))
    nothing = h.invoke(1, ("delete", "b", None))  # b never existed, and no DELETE of b arrived later
    h.done(nothing, None)
    maybe = h.invoke(2, ("delete", "a", "b"))  # a DELETE of a arrives after it: it may have been this one
    h.done(maybe, None)
    unused = h.invoke(3, ("grant", 77))
    h.done(unused, None)
    used = h.invoke(4, ("grant", 78))
    h.done(used, None)
    with_lease = h.invoke(5, ("put", "c", "v2", 78))
    h.done(with_lease, ("err", "lease_not_found"))
    h.done(h.invoke(6, ("delete", "a", None)), ("ok", 3, 1))
    oracle.responses.append(WatchResponse(h.now(), 3, [("DELETE", ("a", "", 0, 3, 0, 0), kv("a", "v1", 2, 2))]))
    assert {op.id for op in patch(h)} == {put.id, maybe.id, used.id, with_lease.id, 6}
    oracle.responses.pop()  # the watcher is no longer complete up to revision 3: nothing may be dropped
    assert {nothing.id, maybe.id} <= {op.id for op in patch(h)}


def test_lost_write_counts_an_acknowledged_revision_that_was_reused() -> None:
    h = History()
    put = h.invoke(0, ("put", "a", "acked", 0))
    h.done(put, ("ok", 2))
    assert lost_writes(h, ("ok", 2, (kv("a", "acked", 2, 2),))) == []
    assert len(lost_writes(h, ("ok", 2, (kv("a", "other", 2, 2),)))) == 1
    assert len(lost_writes(h, ("ok", 1, ()))) == 1
    again = h.invoke(1, ("put", "b", "after-restart", 0))  # the member crashed and reused revision 2
    h.done(again, ("ok", 2))
    lost = lost_writes(h, ("ok", 2, (kv("a", "acked", 2, 2), kv("b", "after-restart", 2, 2))))
    assert len(lost) == 1 and "a=acked" in lost[0] and f"#{again.id}" in lost[0]


# ---- generated histories: speed, and a single corruption is caught ---------------------------------

def generate(n: int, clients: int, seed: int) -> list[Operation]:
    """A linearizable history: each op takes effect at a random instant inside its [call, ret]."""
    rng = random.Random(seed)
    state, t, out = INITIAL, 0.0, []
    free = [0.0] * clients
    for i in range(n):
        c = rng.randrange(clients)
        call = max(free[c], t - rng.uniform(0, 0.003))
        key = f"k{rng.randrange(6)}"
        r = rng.random()
        if r < 0.4:
            req: tuple[Any, ...] = ("get", key, None, False)
        elif r < 0.5:
            req = ("get", "k", "l", False)
        elif r < 0.8:
            req = ("put", key, f"v{i}", 0)
        elif r < 0.9:
            req = ("delete", key, None)
        else:
            cur = state.kvs.get(key)
            req = ("txn", (key, "mod", cur[3] if cur and rng.random() < 0.7 else 0),
                   (("put", key, f"v{i}", 0),), (("get", key, None),))
        t = max(t, call) + rng.uniform(0.0001, 0.001)
        state, answer, _ = apply(state, req)
        ret = t + rng.uniform(0, 0.003)
        free[c] = ret
        timeout = req[0] != "get" and rng.random() < 0.01
        out.append(Operation(i, c, req, None if timeout else answer, call, None if timeout else ret))
    return out


def test_generated_history_of_3000_operations_checks_fast() -> None:
    h = generate(3000, 8, seed=1)
    start = time.monotonic()
    res = check(EtcdModel(), h, timeout=60)
    assert res.ok is True, res
    assert time.monotonic() - start < 20


def test_generated_history_with_one_corrupted_read_is_not_linearizable() -> None:
    h = generate(1500, 8, seed=2)
    read = next(op for op in h[700:] if op.input[0] == "get" and op.output and op.output[2])
    k = read.output[2][0]
    read.output = ("ok", read.output[1], ((k[0], "never-written", *k[2:]),))
    assert check(EtcdModel(), h, timeout=60).ok is False


# ---- watches -----------------------------------------------------------------------------------------

def _truth() -> tuple[dict[int, Any], int]:
    h = ops((0, ("put", "a", "1", 0), ("ok", 2), 0, 1), (0, ("put", "b", "2", 0), ("ok", 3), 1, 2),
            (0, ("put", "a", "3", 0), ("ok", 4), 2, 3), (0, ("delete", "a", "c"), ("ok", 5, 2), 3, 4))
    _, events = replay(h)
    return events, 5


def _watcher(responses: list[WatchResponse], prev_kv: bool = True, start: int = 2) -> WatchRecord:
    w = WatchRecord(0, "a", "c", prev_kv, start)
    w.responses = responses
    return w


def _ev(events: dict[int, Any], rev: int, i: int = 0, prev: bool = True) -> tuple[Any, ...]:
    e = events[rev][i]
    return (e.type, e.kv, e.prev if prev else None)


def test_watch_complete_stream_passes_and_each_broken_guarantee_is_named() -> None:
    events, final = _truth()
    good = [WatchResponse(1, 3, [_ev(events, 2), _ev(events, 3)]), WatchResponse(2, 4, [_ev(events, 4)]),
            WatchResponse(3, 4, []), WatchResponse(4, 5, [_ev(events, 5, 0), _ev(events, 5, 1)])]
    assert check_watcher(_watcher(good), events, final) == []
    dropped = [good[0], good[3]]
    assert "event #2 should be PUT ('a', '3'" in " ".join(check_watcher(_watcher(dropped), events, final))
    assert "missing events from #2" in " ".join(check_watcher(_watcher([good[0], good[2]]), events, 4))
    dup = [good[0], good[0], *good[1:]]
    assert "duplicate" in " ".join(check_watcher(_watcher(dup), events, final))
    split = [*good[:3], WatchResponse(4, 5, [_ev(events, 5, 0)]), WatchResponse(5, 5, [_ev(events, 5, 1)])]
    assert "split" in " ".join(check_watcher(_watcher(split), events, final))
    ahead = [good[0], WatchResponse(1.5, 4, []), *good[1:]]
    assert "after a progress notification" in " ".join(check_watcher(_watcher(ahead), events, final))
    no_prev = [good[0], WatchResponse(2, 4, [_ev(events, 4, prev=False)]), *good[2:]]
    assert "should be" in " ".join(check_watcher(_watcher(no_prev), events, final))
    short = good[:2]
    assert "never reached the final revision" in " ".join(check_watcher(_watcher(short), events, final))


def test_saved_history_is_judged_the_same_after_loading(tmp_path: Any) -> None:
    h = History()
    for req, out in [(("put", "a", "1", 0), ("ok", 2)), (("get", "\0", "\0", False), ("ok", 2, (kv("a", "1", 2, 2),)))]:
        h.done(h.invoke(0, req), out)
    w = h.watch("\0", "\0", True, 1)
    w.responses.append(WatchResponse(h.now(), 2, [("PUT", kv("a", "1", 2, 2), None)]))
    h.save(tmp_path / "h.json")
    again = History.load(tmp_path / "h.json")
    final = again.ops[-1].output
    assert not evaluate(again, final).failed
    again.watches[0].responses[0].events = []
    assert evaluate(again, final).watch


def test_unknown_writes_are_placed_in_the_order_the_complete_watcher_saw() -> None:
    """Regression (seed 1028, pause): two deletes timed out during a pause; the checker's witness put
    them in the other order than the member applied them, and the watch check then blamed the watch."""
    h = History()
    for req, out in [(("put", "a", "1", 0), ("ok", 2)), (("put", "b", "2", 0), ("ok", 3))]:
        h.done(h.invoke(0, req), out)
    for client, key in ((1, "a"), (2, "b")):  # both timed out: unknown outcome
        h.done(h.invoke(client, ("delete", key, None)), None)
    h.done(h.invoke(0, ("get", "\0", "\0", False)), ("ok", 5, ()))
    w = h.watch("\0", "\0", True, 1)
    w.responses = [WatchResponse(1, 3, [("PUT", kv("a", "1", 2, 2), None), ("PUT", kv("b", "2", 3, 3), None)]),
                   WatchResponse(2, 4, [("DELETE", ("b", "", 0, 4, 0, 0), kv("b", "2", 3, 3))]),
                   WatchResponse(3, 5, [("DELETE", ("a", "", 0, 5, 0, 0), kv("a", "1", 2, 2))])]
    assert not evaluate(h, h.ops[-1].output).failed
    w.responses[1:] = [WatchResponse(2, 5, [("DELETE", ("b", "", 0, 5, 0, 0), kv("b", "2", 3, 3))])]  # rev 4 lost
    assert "event #2 should be DELETE ('a'" in " ".join(evaluate(h, h.ops[-1].output).watch)
    w.responses[1:] = [WatchResponse(2, 4, [("DELETE", ("a", "", 0, 4, 0, 0), kv("a", "1", 2, 2))]),
                       WatchResponse(3, 5, [("DELETE", ("a", "", 0, 5, 0, 0), kv("a", "1", 2, 2))])]  # impossible
    assert "fit no linearization" in " ".join(evaluate(h, h.ops[-1].output).watch)


def test_missing_prev_kv_is_excused_only_by_a_compaction_past_it() -> None:
    """Regression (seed 2017, kill): a watcher started at the compacted revision 435 got the event at
    435 without prev_kv; etcd reads prev_kv at 434 when it sends, which that compaction removed."""
    events, final = _truth()
    stream = [WatchResponse(1, 3, [_ev(events, 2), _ev(events, 3)]),
              WatchResponse(2, 4, [_ev(events, 4, prev=False)]),  # a's prev_kv (at 3) left out
              WatchResponse(3, 5, [_ev(events, 5, 0), _ev(events, 5, 1)])]
    assert "should be" in " ".join(check_watcher(_watcher(stream), events, final, compactions=[(3, 0.5)]))
    assert check_watcher(_watcher(stream), events, final, compactions=[(4, 1.5)]) == []
    assert check_watcher(_watcher(stream), events, final, compactions=[(4, 2.5)]) != []  # asked for too late

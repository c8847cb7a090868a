"""Lease expiry in the robustness checkers: the server's own revokes placed as operations.

Histories built by hand (known linearizable and known not), checked through
``robustness.expiry.expirations`` and the etcd model, and one through ``evaluate`` with a complete
watcher, so the expiry's deletes are the truth every watcher is held to.
"""

from __future__ import annotations

from typing import Any

from robustness.evaluate import evaluate
from robustness.expiry import SERVER, expirations
from robustness.history import History, WatchResponse
from robustness.linearizability import Operation, check
from robustness.model import INITIAL, EtcdModel, apply, replay

L = 0x77


def kv(key: str, value: str, create: int, mod: int, version: int = 1, lease: int = 0) -> tuple[Any, ...]:
    return (key, value, create, mod, version, lease)


def history(*rows: tuple[Any, ...]) -> list[Operation]:
    """(client, input, output, call, ret) rows -> operations."""
    return [Operation(i, c, inp, out, call, ret) for i, (c, inp, out, call, ret) in enumerate(rows)]


def with_expiries(ops: list[Operation], members: int = 1) -> tuple[list[Operation], list[str]]:
    got = expirations(ops, members, len(ops))
    return ops + got.ops, got.problems


# a short lease (TTL 2 s) with two keys, kept alive once, then the member paused from 1.5 s to 4.5 s
PAUSED = [(9, ("grant", L, 2), ("ok", 1), 0.0, 0.1),
          (9, ("put", "k/a", "v1", L), ("ok", 2), 0.1, 0.2),
          (9, ("put", "k/b", "v2", L), ("ok", 3), 0.2, 0.3),
          (9, ("keepalive", L), ("ok", True), 0.9, 1.0),
          (9, ("keepalive", L), ("ok", False), 1.6, 4.6),  # sent during the pause, answered on resume
          (1, ("put", "k/c", "v3", L), ("err", "lease_not_found"), 4.7, 4.8)]


def test_expire_deletes_every_key_of_the_lease_in_one_revision_and_keep_alive_reads_liveness() -> None:
    s = INITIAL
    for req in (("grant", L, 2), ("put", "a", "1", L), ("put", "b", "2", L), ("put", "c", "3", 0)):
        s = apply(s, req)[0]
    assert apply(s, ("keepalive", L))[1] == ("ok", True) and apply(s, ("ttl", L))[1] == ("ok", True)
    after, answer, events = apply(s, ("expire", L))
    assert answer == ("ok",) and after.rev == s.rev + 1 and sorted(after.kvs) == ["c"]
    assert [(e.type, e.kv[0], e.kv[3]) for e in events] == [("DELETE", "a", 5), ("DELETE", "b", 5)]
    assert apply(after, ("keepalive", L))[1] == ("ok", False)
    assert apply(after, ("expire", L))[1] == ("err", "lease_not_found")
    assert apply(after, ("put", "a", "4", L))[1] == ("err", "lease_not_found")


def test_an_expiry_during_a_pause_is_placed_in_its_window_and_replays_to_its_deletes() -> None:
    ops, problems = with_expiries(history(*PAUSED, (1, ("get", "k/", "k0", False), ("ok", 4, ()), 4.9, 5.0)))
    assert not problems
    expire = ops[-1]
    assert expire.client == SERVER and expire.input == ("expire", L) and expire.output == ("ok",)
    assert (round(expire.call, 2), expire.ret) == (2.85, 4.6)  # after keep-alive + TTL; before it was found gone
    res = check(EtcdModel(), ops)
    assert res.ok is True
    _, events = replay([ops[i] for i in res.order[0]])
    assert [(e.type, e.kv[0]) for e in events[4]] == [("DELETE", "k/a"), ("DELETE", "k/b")]


def test_keys_removed_one_revision_at_a_time_are_not_an_expiry() -> None:
    """The selftest's bug.lease_expiry_split: k/a deleted at 4, k/b at 5, nothing any client asked for."""
    split = history(*PAUSED, (1, ("get", "k/", "k0", False), ("ok", 5, ()), 4.9, 5.0))
    ops, problems = with_expiries(split)
    assert not problems and check(EtcdModel(), ops).ok is False
    halfway = history(*PAUSED, (1, ("get", "k/", "k0", False), ("ok", 4, (kv("k/b", "v2", 3, 3, 1, L),)), 4.9, 5.0))
    assert check(EtcdModel(), with_expiries(halfway)[0]).ok is False


def test_a_keep_alive_answered_after_the_lease_was_found_gone_rules_out_every_linearization() -> None:
    _, problems = with_expiries(history(*PAUSED, (9, ("keepalive", L), ("ok", True), 5.0, 5.1)))
    assert len(problems) == 1 and "found alive by #6" in problems[0] and "found it gone" in problems[0]


def test_an_expiry_before_the_ttl_ran_out_is_named_on_one_member_not_on_a_cluster() -> None:
    """Gone at 2.5 s, renewed at 0.9 s with TTL 2: too early on one member (one lease clock). On a
    cluster that renewal may have come from a deposed leader, so only the grant's clock bounds it."""
    early = history(*PAUSED[:4], (9, ("keepalive", L), ("ok", False), 2.4, 2.5))
    _, problems = with_expiries(early, members=1)
    assert len(problems) == 1 and "before it could expire" in problems[0] and "#3" in problems[0]
    ops, problems = with_expiries(early, members=3)
    assert not problems and round(ops[-1].call, 2) == 1.95
    grant_clock = history(*PAUSED[:3], (9, ("keepalive", L), ("ok", False), 1.0, 1.5))
    assert "before it could expire" in with_expiries(grant_clock, members=3)[1][0]


def test_an_expiry_nobody_saw_or_a_client_may_have_done_has_an_unknown_outcome() -> None:
    unseen, _ = with_expiries(history(*PAUSED[:4]))
    assert unseen[-1].output is None and unseen[-1].ret is None
    revoked = history(*PAUSED[:4], (2, ("revoke", L), None, 1.1, None),
                      (9, ("keepalive", L), ("ok", False), 3.5, 3.6))
    ops, problems = with_expiries(revoked)
    assert not problems and ops[-1].output is None and ops[-1].ret == 3.6
    revoked[-1].call, revoked[-1].ret = 1.2, 1.3  # gone before the TTL ran out: the client's revoke did it
    ops, problems = with_expiries(revoked)
    assert not problems and ops[-1].input != ("expire", L)
    assert check(EtcdModel(), ops).ok is True


def test_evaluate_holds_watchers_to_the_expiry_deletes() -> None:
    h = History()
    oracle = h.watch("\0", "\0", True, 1)
    for client, inp, out, call, ret in PAUSED:
        op = h.invoke(client, inp)
        op.call = call
        h.done(op, out)
        op.ret = ret
    a, b = kv("k/a", "v1", 2, 2, 1, L), kv("k/b", "v2", 3, 3, 1, L)
    oracle.responses += [WatchResponse(0.2, 2, [("PUT", a, None)]), WatchResponse(0.3, 3, [("PUT", b, None)])]
    final = ("ok", 4, ())
    oracle.responses.append(WatchResponse(4.6, 4, [("DELETE", ("k/a", "", 0, 4, 0, 0), a),
                                                   ("DELETE", ("k/b", "", 0, 4, 0, 0), b)]))
    v = evaluate(h, final)
    assert v.linearizable is True and not v.watch and not v.failed, v.findings()
    oracle.responses[-1].events.pop()  # the watcher missed one of the two deletes
    v = evaluate(h, final)
    assert v.failed and any("watch" in f for f in v.findings()), v.findings()

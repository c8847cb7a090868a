"""etcd's v3 JSON gateway, differentially: the same requests to real etcd 3.4 and to pyetcd over
HTTPS (curl, mutual TLS), every gateway path, responses compared field by field.

Masked before comparing (they differ between any two clusters, not between implementations):
cluster/member ids, raft term and indexes, db sizes, the server version, hashes, auth tokens,
member names and URLs, a lease's remaining TTL. Everything else — field names and presence,
int64-as-string, base64, defaults omitted, revisions, error codes and messages, HTTP status —
must be equal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

from support import Member
from support.http import curl, curl_argv, post

MASKED = {"cluster_id", "member_id", "raft_term", "leader", "raftIndex", "raftTerm", "raftAppliedIndex", "dbSize",
          "dbSizeInUse", "version", "hash", "token", "name", "peerURLs", "clientURLs"}


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def mask(v: Any, extra: frozenset[str] = frozenset()) -> Any:
    if isinstance(v, dict):
        out = {k: "<masked>" if k in MASKED | extra else mask(x, extra) for k, x in v.items()}
        if "members" in out:  # listed by id, and new member ids are random
            out["members"] = sorted(out["members"], key=json.dumps)
        return out
    if isinstance(v, list):
        return [mask(x, extra) for x in v]
    return v


@dataclass
class Step:
    path: str
    body: dict[str, Any] = field(default_factory=dict)
    token_of: str | None = None  # use the token an earlier Authenticate step saved under this name
    save_token: str | None = None
    masked: frozenset[str] = frozenset()  # more fields to mask for this step only
    raw: str | None = None  # a body that is not JSON
    # a known divergence, named with its reason: these fields are dropped from both sides
    # ("header.revision" drops one field of the header) before comparing
    drop: frozenset[str] = frozenset()
    why: str = ""


NO_HEADER_34 = "etcd 3.4 answers Alarm and Defragment without a header; pyetcd fills it as etcd 3.5 does for Alarm"


def script() -> list[Step]:
    learner = {"peerURLs": ["http://127.0.0.1:1"], "isLearner": True}
    return [
        Step("/v3/kv/put", {"key": b64("foo"), "value": b64("bar")}),
        Step("/v3/kv/put", {"key": b64("foo2"), "value": b64("bar2"), "prev_kv": True}),
        Step("/v3/kv/put", {"key": b64("foo2"), "value": b64("bar3"), "prev_kv": True}),
        Step("/v3/kv/range", {"key": b64("foo")}),
        Step("/v3/kv/range", {"key": b64("foo"), "range_end": b64("fop")}),
        Step("/v3/kv/range", {"key": b64("foo"), "range_end": b64("fop"), "limit": 1}),
        Step("/v3/kv/range", {"key": b64("foo"), "range_end": b64("fop"), "keys_only": True, "revision": 3}),
        Step("/v3/kv/range", {"key": b64("foo"), "range_end": b64("fop"), "count_only": True}),
        Step("/v3/kv/range", {"key": b64("foo"), "revision": 99}),
        Step("/v3/kv/range", {"key": b64("nope"), "serializable": True}),
        Step("/v3/kv/put", {"value": b64("x")}),
        Step("/v3/kv/put", {"key": b64("big"), "value": b64("v" * 1_400_000)}),
        Step("/v3/kv/put", {"key": b64("big"), "value": b64("v" * 1_900_000)}),
        Step("/v3/kv/deleterange", {"key": b64("big")}),
        Step("/v3/kv/range", raw="{not json"),
        Step("/v3/kv/txn", {"compare": [{"key": b64("foo"), "target": "VALUE", "value": b64("bar")}],
                            "success": [{"request_put": {"key": b64("foo"), "value": b64("baz")}},
                                        {"request_range": {"key": b64("foo")}}],
                            "failure": [{"request_delete_range": {"key": b64("foo")}}]}),
        Step("/v3/kv/txn", {"compare": [{"key": b64("foo"), "target": "VERSION", "result": "GREATER",
                                         "version": 5}],
                            "failure": [{"request_range": {"key": b64("foo2")}}]}),
        Step("/v3/kv/deleterange", {"key": b64("foo2"), "prev_kv": True}),
        Step("/v3/kv/compaction", {"revision": 3}),
        Step("/v3/kv/range", {"key": b64("foo"), "revision": 2}),
        Step("/v3/lease/grant", {"TTL": 60, "ID": 100}),
        Step("/v3/kv/put", {"key": b64("leased"), "value": b64("v"), "lease": 100}),
        Step("/v3/lease/timetolive", {"ID": 100, "keys": True}, masked=frozenset({"TTL"})),
        Step("/v3/kv/lease/timetolive", {"ID": 100}, masked=frozenset({"TTL"})),
        Step("/v3/lease/leases"),
        Step("/v3/kv/lease/leases"),
        Step("/v3/lease/keepalive", {"ID": 100}),
        Step("/v3/lease/revoke", {"ID": 100}),
        Step("/v3/kv/lease/revoke", {"ID": 100}),
        Step("/v3/lease/timetolive", {"ID": 100}),
        Step("/v3/lease/grant", {"TTL": 60, "ID": 200}),
        Step("/v3/lock/lock", {"name": b64("mylock"), "lease": 200}),
        Step("/v3/lock/unlock", {"key": b64("mylock/" + format(200, "x"))}),
        Step("/v3/election/campaign", {"name": b64("el"), "lease": 200, "value": b64("me")}),
        Step("/v3/election/leader", {"name": b64("el")}),
        Step("/v3/election/proclaim", {"leader": {"name": b64("el"), "key": b64("el/" + format(200, "x")),
                                                  "rev": 0, "lease": 200}, "value": b64("again")}),
        Step("/v3/election/resign", {"leader": {"name": b64("el"), "key": b64("el/" + format(200, "x")),
                                                "lease": 200}}),
        Step("/v3/cluster/member/list", masked=frozenset({"ID"})),
        Step("/v3/cluster/member/add", learner, masked=frozenset({"ID"})),
        Step("/v3/cluster/member/promote", {"ID": 1}),
        Step("/v3/cluster/member/update", {"ID": 1, "peerURLs": ["http://127.0.0.1:2"]}),
        Step("/v3/cluster/member/remove", {"ID": 1}),
        Step("/v3/maintenance/alarm", {"action": "GET"}, drop=frozenset({"header"}), why=NO_HEADER_34),
        Step("/v3/maintenance/status"),
        Step("/v3/maintenance/defragment", drop=frozenset({"header"}), why=NO_HEADER_34),
        # etcd routes /v3/maintenance/hash to Hash; the value hashes its bolt file, ours the buckets
        Step("/v3/maintenance/hash", masked=frozenset({"hash"})),
        Step("/v3/auth/authenticate", {"name": "root", "password": "rpw"}),
        Step("/v3/auth/user/add", {"name": "root", "password": "rpw"}),
        Step("/v3/auth/user/grant", {"user": "root", "role": "root"}),
        Step("/v3/auth/role/add", {"name": "r1"}),
        Step("/v3/auth/role/grant", {"name": "r1", "perm": {"permType": "READWRITE", "key": b64("a"),
                                                           "range_end": b64("b")}}),
        Step("/v3/auth/user/add", {"name": "u1", "password": "p1"}),
        Step("/v3/auth/user/grant", {"user": "u1", "role": "r1"}),
        Step("/v3/auth/user/get", {"name": "u1"}),
        Step("/v3/auth/role/get", {"role": "r1"}),
        Step("/v3/auth/user/list"),
        Step("/v3/auth/role/list"),
        Step("/v3/auth/enable"),
        Step("/v3/auth/authenticate", {"name": "u1", "password": "p1"}, save_token="u1"),
        Step("/v3/auth/authenticate", {"name": "u1", "password": "wrong"}),
        Step("/v3/kv/put", {"key": b64("a1"), "value": b64("v")}, token_of="u1"),
        Step("/v3/kv/range", {"key": b64("a1")}, token_of="u1"),
        Step("/v3/kv/put", {"key": b64("c1"), "value": b64("v")}, token_of="u1"),
        Step("/v3/auth/user/list", token_of="u1"),
        Step("/v3/kv/range", {"key": b64("a1")}),
        Step("/v3/auth/authenticate", {"name": "root", "password": "rpw"}, save_token="root"),
        Step("/v3/auth/disable", token_of="root"),
        Step("/v3/auth/user/changepw", {"name": "u1", "password": "p2"}),
        Step("/v3/auth/role/revoke", {"role": "r1", "key": b64("a"), "range_end": b64("b")}),
        Step("/v3/auth/user/revoke", {"name": "u1", "role": "r1"}),
        Step("/v3/auth/user/delete", {"name": "u1"}),
        Step("/v3/auth/role/delete", {"role": "r1"}),
        Step("/v3/auth/role/delete", {"role": "r1"}),
    ]


def run_script(m: Member) -> list[tuple[str, int, Any]]:
    tokens: dict[str, str] = {}
    out = []
    for step in script():
        token = tokens.get(step.token_of) if step.token_of else None
        if step.raw is not None:
            reply = curl(m, step.path, data=step.raw)
        else:
            reply = post(m, step.path, step.body, token=token)
        body = reply.lines() if step.path == "/v3/lease/keepalive" else reply.json()
        if step.save_token and isinstance(body, dict) and "token" in body:
            tokens[step.save_token] = body["token"]
        if step.raw is not None and isinstance(body, dict):  # Go's and Python's parser messages differ
            body = {k: v for k, v in body.items() if k == "code"}
        out.append((step.path, reply.status, drop(mask(body, step.masked), step.drop)))
    return out


def drop(body: Any, fields: frozenset[str]) -> Any:
    if not isinstance(body, dict):
        return body
    body = dict(body)
    for f in fields:
        top, _, sub = f.partition(".")
        if sub and isinstance(body.get(top), dict):
            body[top] = {k: v for k, v in body[top].items() if k != sub}
        elif not sub:
            body.pop(top, None)
    return body


def test_known_divergences_are_few_and_named() -> None:
    known = {s.why for s in script() if s.drop}
    assert known == {NO_HEADER_34}


def watch_lines(m: Member) -> list[Any]:
    """A watch over HTTP sees puts made while it is open: one JSON result per line."""
    body = json.dumps({"create_request": {"key": b64("w"), "prev_kv": True}})
    argv = curl_argv(m.client_url + "/v3/watch", tls=m.client_tls(), max_time=6, data=body)
    proc = subprocess.Popen([argv[0], "-N", *argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # -N: each line as it comes
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(body)
    proc.stdin.close()
    created = proc.stdout.readline()  # the watch exists: what is put now must reach it
    for v in ("1", "2"):
        post(m, "/v3/kv/put", {"key": b64("w"), "value": b64(v)})
    rest = proc.stdout.read()  # until curl's --max-time ends the stream
    proc.wait(10)
    lines = [created, *rest.splitlines()[:-1]]  # (the last line is curl's status code)
    return [mask(json.loads(line)) for line in lines if line.strip()]


def test_gateway_matches_real_etcd(member_factory) -> None:
    # without --client-cert-auth: with it and auth on, etcd refuses gateway calls from a client
    # certificate that has a CommonName (test_gateway_refuses_a_common_name_under_auth)
    etcd, py = (member_factory(kind, client_cert_auth=False) for kind in ("etcd", "pyetcd"))
    want, got = run_script(etcd), run_script(py)
    mismatches = [f"{w[0]}:\n  etcd   {w[1]} {json.dumps(w[2])}\n  pyetcd {g[1]} {json.dumps(g[2])}"
                  for w, g in zip(want, got, strict=True) if w != g]
    assert not mismatches, "\n".join(mismatches)
    want_lines = watch_lines(etcd)
    events = [e for line in want_lines for e in line["result"].get("events", [])]
    assert want_lines[0]["result"]["created"] and len(events) == 2  # the test sees what it means to
    assert watch_lines(py) == want_lines


def test_snapshot_streams_the_backend(pyetcd_member: Member) -> None:
    """/v3/maintenance/snapshot: base64 chunks as results, the last one the SHA-256 (etcd's format)."""
    lines = curl(pyetcd_member, "/v3/maintenance/snapshot", data="{}").lines()
    blobs = [base64.b64decode(x["result"]["blob"]) for x in lines]
    assert len(blobs) >= 2 and lines[-1]["result"].get("remaining_bytes") is None
    assert hashlib.sha256(b"".join(blobs[:-1])).digest() == blobs[-1]


def test_gateway_refuses_a_common_name_under_auth(member_factory) -> None:
    """etcd's accessController: --client-cert-auth, auth enabled, a client certificate with a CN."""
    def steps(m: Member) -> list[tuple[int, str]]:
        out = []
        for path, body in (("/v3/auth/user/add", {"name": "root", "password": "rpw"}),
                           ("/v3/auth/user/grant", {"user": "root", "role": "root"}), ("/v3/auth/enable", {}),
                           ("/v3/kv/range", {"key": b64("k")}), ("/v3beta/kv/range", {"key": b64("k")})):
            r = post(m, path, body)
            out.append((r.status, r.body if r.status == 400 else ""))
        h = curl(m, "/health")
        out.append((h.status, ""))
        return out
    assert steps(member_factory("etcd")) == steps(member_factory("pyetcd"))

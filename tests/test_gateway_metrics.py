"""/metrics read with prometheus-client's own text parser: etcd's names, types and labels, and
values that move as writes happen (over gRPC and over the JSON gateway alike)."""

from __future__ import annotations

import base64

from prometheus_client.parser import text_string_to_metric_families

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support import Member, grpc_channel
from support.http import curl, post

REQUIRED = {
    "etcd_server_has_leader": "gauge", "etcd_server_is_leader": "gauge",
    "etcd_server_leader_changes_seen": "counter", "etcd_server_proposals_committed_total": "gauge",
    "etcd_server_proposals_applied_total": "gauge", "etcd_server_proposals_pending": "gauge",
    "etcd_server_proposals_failed": "counter", "etcd_mvcc_db_total_size_in_bytes": "gauge",
    "etcd_mvcc_db_total_size_in_use_in_bytes": "gauge", "etcd_debugging_mvcc_keys_total": "gauge",
    "etcd_mvcc_put": "counter", "etcd_mvcc_range": "counter", "etcd_mvcc_delete": "counter",
    "etcd_mvcc_txn": "counter", "etcd_disk_backend_commit_duration_seconds": "histogram",
    "etcd_disk_wal_fsync_duration_seconds": "histogram", "etcd_network_peer_round_trip_time_seconds": "histogram",
    "etcd_network_peer_sent_bytes": "counter", "etcd_debugging_mvcc_watcher_total": "gauge",
    "grpc_server_started": "counter", "grpc_server_handled": "counter", "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge", "process_open_fds": "gauge",
}


def scrape(m: Member) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = curl(m, "/metrics")
    assert reply.status == 200
    samples = {}
    for fam in text_string_to_metric_families(reply.body):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def families(m: Member) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(curl(m, "/metrics").body)}


def test_etcd_metric_names_and_types(pyetcd_member: Member) -> None:
    got = families(pyetcd_member)
    assert {name: got.get(name) for name in REQUIRED} == REQUIRED


def test_metric_families_exist_on_real_etcd_too(real_etcd: Member) -> None:
    """The names pyetcd uses are etcd's (real etcd 3.4 has each one, of the same type)."""
    got = families(real_etcd)
    missing = {n: t for n, t in REQUIRED.items() if got.get(n) != t and not n.startswith("etcd_network_peer")}
    assert missing == {}


KV = ("etcdserverpb.KV", "unary")


def _grpc(method: str, code: str | None = None) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = {"grpc_method": method, "grpc_service": KV[0], "grpc_type": KV[1]}
    if code:
        labels["grpc_code"] = code
    return ("grpc_server_handled_total" if code else "grpc_server_started_total", tuple(sorted(labels.items())))


def test_values_move_as_writes_happen(pyetcd_member: Member) -> None:
    before = scrape(pyetcd_member)
    assert before[("etcd_server_has_leader", ())] == 1 and before[("etcd_server_is_leader", ())] == 1
    with grpc_channel(pyetcd_member) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(5):
            kv.Put(rpc_pb2.PutRequest(key=f"m{i}".encode(), value=b"x" * 1000), timeout=10)
        kv.Range(rpc_pb2.RangeRequest(key=b"m0"), timeout=10)
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"m4"), timeout=10)
    post(pyetcd_member, "/v3/kv/put", {"key": base64.b64encode(b"m9").decode(), "value": "eA=="})
    post(pyetcd_member, "/v3/kv/put", {})  # refused: "key is not provided"
    after = scrape(pyetcd_member)

    def grew(key: tuple[str, tuple[tuple[str, str], ...]]) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert grew(_grpc("Put")) == 7 and grew(_grpc("Put", "OK")) == 6 and grew(_grpc("Put", "InvalidArgument")) == 1
    assert grew(_grpc("Range", "OK")) >= 1 and grew(_grpc("DeleteRange", "OK")) == 1
    assert grew(("etcd_mvcc_put_total", ())) == 6 and grew(("etcd_mvcc_delete_total", ())) == 1
    assert grew(("etcd_debugging_mvcc_keys_total", ())) == 5  # m0..m3 and m9
    assert grew(("etcd_server_proposals_applied_total", ())) >= 7
    assert grew(("etcd_server_proposals_committed_total", ())) >= 7
    assert grew(("etcd_disk_backend_commit_duration_seconds_count", ())) >= 1
    assert after[("etcd_mvcc_db_total_size_in_use_in_bytes", ())] > 0

"""/metrics with etcd's metric names, types and labels (prometheus-client).

Server state (leader, indexes, db sizes, keys, watchers) is read when scraped, by a custom
collector, so the write path pays nothing for it. Calls are counted where every transport
wraps its handlers (rpc/service.wrap_handler): go-grpc-prometheus's grpc_server_started_total and
grpc_server_handled_total, and etcd's mvcc op counters. Commit times come from the node loop's
``commit_observers``; pyetcd's raft log and key-value store share one LMDB commit, so the same
duration is observed as etcd's backend commit and as its WAL fsync.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pyetcd.rpc.grpcserver import ClientAPI
from pyetcd.server.etcd_server import EtcdServer
from pyetcd.watch import WatchHub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MVCC_OPS = {"Range": "range", "Put": "put", "DeleteRange": "delete", "Txn": "txn"}


def _go_code(name: str) -> str:
    """grpc_code as go-grpc-prometheus writes it: InvalidArgument, not INVALID_ARGUMENT."""
    return "".join(p.capitalize() for p in name.split("_")) if name != "OK" else "OK"


class _MethodStats:
    def __init__(self, metrics: Metrics, service: str, method: str, kind: str) -> None:
        self._started = metrics.started.labels(kind, service, method)
        self._handled = metrics.handled
        self._labels = (kind, service, method)
        self._by_code: dict[str, Counter] = {}
        op = _MVCC_OPS.get(method) if service == "etcdserverpb.KV" else None
        self._op = metrics.mvcc_ops[op] if op else None

    def start(self) -> None:
        self._started.inc()

    def done(self, code: str) -> None:
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._handled.labels(*self._labels, _go_code(code))
        child.inc()
        if self._op is not None and code == "OK":
            self._op.inc()


class ServerCollector(Collector):
    """etcd's server and mvcc gauges, read from the member when scraped."""

    def __init__(self, server: EtcdServer, watchers: Callable[[], int]) -> None:
        self.s = server
        self.watchers = watchers

    def collect(self) -> Iterator[Metric]:
        s = self.s.metrics()

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.",
                    1 if s.has_leader else 0)
        yield gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.",
                    1 if s.is_leader else 0)
        yield CounterMetricFamily("etcd_server_leader_changes_seen", "The number of leader changes seen.",
                                  value=s.leader_changes)
        yield gauge("etcd_server_proposals_committed_total", "The total number of consensus proposals committed.",
                    s.committed)
        yield gauge("etcd_server_proposals_applied_total", "The total number of consensus proposals applied.",
                    s.applied)
        yield gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.",
                    s.proposals_pending)
        yield CounterMetricFamily("etcd_server_proposals_failed", "The total number of failed proposals seen.",
                                  value=s.proposals_failed)
        yield gauge("etcd_mvcc_db_total_size_in_bytes",
                    "Total size of the underlying database physically allocated in bytes.", s.db_size)
        yield gauge("etcd_mvcc_db_total_size_in_use_in_bytes",
                    "Total size of the underlying database logically in use in bytes.", s.db_size_in_use)
        yield gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", s.keys)
        yield gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.", self.watchers())
        yield gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.",
                    s.quota_bytes)
        id_gauge = GaugeMetricFamily("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' "
                                     "label with current ID.", labels=["server_id"])
        id_gauge.add_metric([f"{s.member_id:x}"], 1)
        yield id_gauge
        version = GaugeMetricFamily("etcd_server_version", "Which version is running. 1 for 'server_version' "
                                    "label with current version.", labels=["server_version"])
        version.add_metric([s.version], 1)
        yield version


def watcher_count(api: ClientAPI) -> Callable[[], int]:
    """Watchers open on the member: the Watch servicer's hub holds them all."""
    hub = getattr(dict(api.services)["Watch"], "hub", None)
    assert isinstance(hub, WatchHub)
    return lambda: hub.watcher_count


class Metrics:
    """The registry /metrics serves, and the CallObserver the rpc layer counts calls with."""

    def __init__(self, server: EtcdServer, watchers: Callable[[], int]) -> None:
        reg = self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=reg)
        self.started = Counter("grpc_server_started", "Total number of RPCs started on the server.",
                               ["grpc_type", "grpc_service", "grpc_method"], registry=reg)
        self.handled = Counter("grpc_server_handled", "Total number of RPCs completed on the server, "
                               "regardless of success or failure.",
                               ["grpc_type", "grpc_service", "grpc_method", "grpc_code"], registry=reg)
        self.mvcc_ops = {op: Counter(f"etcd_mvcc_{op}", f"Total number of {op}s seen by this member.",
                                     registry=reg) for op in ("range", "put", "delete", "txn")}
        commit = [0.001 * 2**i for i in range(14)]
        self.backend_commit = Histogram("etcd_disk_backend_commit_duration_seconds",
                                        "The latency distributions of commit called by backend.",
                                        buckets=commit, registry=reg)
        self.wal_fsync = Histogram("etcd_disk_wal_fsync_duration_seconds",
                                   "The latency distributions of fsync called by WAL.", buckets=commit, registry=reg)
        # a single member has no peers: the families are declared, with no series yet
        Histogram("etcd_network_peer_round_trip_time_seconds", "Round-Trip-Time histogram between peers",
                  ["To"], buckets=[0.0001 * 2**i for i in range(16)], registry=reg)
        Counter("etcd_network_peer_sent_bytes", "The total number of bytes sent to peers.", ["To"], registry=reg)
        reg.register(ServerCollector(server, watchers))
        server.observe_commits(wal=self.wal_fsync.observe, backend=self.backend_commit.observe)

    def bind(self, service: str, method: str, kind: str) -> _MethodStats:
        return _MethodStats(self, service, method, kind)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

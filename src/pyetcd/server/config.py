"""The server's configuration: etcd's settings with etcd's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyetcd.auth.tokens import TokenConfig
from pyetcd.tls import TLSInfo

__all__ = ["ServerConfig", "TLSInfo"]


@dataclass
class ServerConfig:
    name: str = "default"
    data_dir: Path = Path("default.etcd")
    listen_client_urls: list[str] = field(default_factory=lambda: ["http://localhost:2379"])
    advertise_client_urls: list[str] = field(default_factory=lambda: ["http://localhost:2379"])
    listen_peer_urls: list[str] = field(default_factory=lambda: ["http://localhost:2380"])
    initial_advertise_peer_urls: list[str] = field(default_factory=lambda: ["http://localhost:2380"])
    initial_cluster: str = ""
    initial_cluster_state: str = "new"
    initial_cluster_token: str = "etcd-cluster"
    client_tls: TLSInfo = field(default_factory=TLSInfo)
    peer_tls: TLSInfo = field(default_factory=TLSInfo)
    max_txn_ops: int = 128
    max_request_bytes: int = 1536 * 1024
    quota_backend_bytes: int = 0  # 0 = etcd's default, 2 GiB
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    snapshot_count: int = 100_000
    strict_reconfig_check: bool = True  # etcd's default
    force_new_cluster: bool = False
    snapshot_catchup_entries: int = 5000  # etcd's --experimental-snapshot-catchup-entries
    listen_metrics_urls: list[str] = field(default_factory=list)
    client_http: bool = True  # HTTP beside gRPC on each client URL (gateway/front.py)
    auto_compaction_retention: str = "0"
    auto_compaction_mode: str = "periodic"
    log_level: str = "info"
    watch_progress_notify_interval: float = 600.0  # seconds; etcd's default 10m
    bcrypt_cost: int = 10  # etcd's default (bcrypt.DefaultCost)
    auth_token_ttl: int = 300  # seconds a simple token lives after its last use
    auth_token: TokenConfig = field(default_factory=TokenConfig)  # --auth-token: simple, or jwt and its keys

    @property
    def request_timeout(self) -> float:
        """etcd's: 5 s plus two election timeouts."""
        return 5.0 + 2 * self.election_timeout_ms / 1000.0

    @property
    def election_ticks(self) -> int:
        return max(2, self.election_timeout_ms // self.heartbeat_interval_ms)

    def initial_members(self) -> dict[str, list[str]]:
        """--initial-cluster as name -> peer URLs (this member alone when not given)."""
        if not self.initial_cluster:
            return {self.name: list(self.initial_advertise_peer_urls)}
        members: dict[str, list[str]] = {}
        for part in self.initial_cluster.split(","):
            name, _, url = part.partition("=")
            members.setdefault(name.strip(), []).append(url.strip())
        return members

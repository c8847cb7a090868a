"""etcd's server flags, their ``ETCD_*`` environment variables and their defaults.

Precedence is etcd's: a flag on the command line wins over its environment variable, which
wins over the default. Unknown flags and bad values stop the server at start with a message
that names the flag.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyetcd.server.config import ServerConfig, TLSInfo


class FlagError(Exception):
    """A flag value that cannot work; the message says which flag and why."""


def parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "t", "true", "yes", "on"):
        return True
    if v in ("0", "f", "false", "no", "off", ""):
        return False
    raise ValueError(f"invalid boolean {value!r}")


def parse_urls(value: str) -> list[str]:
    urls = [u.strip() for u in value.split(",") if u.strip()]
    for u in urls:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https", "unix", "unixs") or not parts.netloc:
            raise ValueError(f"URL scheme must be http, https, unix, or unixs: {u}")
    return urls


def parse_size(value: str) -> int:
    n = int(value)
    if n < 0:
        raise ValueError("must not be negative")
    return n


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")


def parse_duration(value: str) -> float:
    """A Go duration (``100ms``, ``5s``, ``1m30s``, ``0``) in seconds."""
    v = value.strip()
    sign = -1.0 if v.startswith("-") else 1.0
    v = v.lstrip("+-")
    if v == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(v):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not v or pos != len(v):
        raise ValueError(f"invalid duration {value!r}")
    return sign * total


@dataclass(frozen=True)
class Flag:
    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    boolean: bool = False
    supported: bool = True  # False: accepted for compatibility, has no effect yet (a warning says so)

    @property
    def env(self) -> str:
        return "ETCD_" + self.name.upper().replace("-", "_")

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


def _b(name: str, help: str, supported: bool = True) -> Flag:
    return Flag(name, parse_bool, False, help, boolean=True, supported=supported)


def _s(name: str, default: str, help: str, supported: bool = True) -> Flag:
    return Flag(name, str, default, help, supported=supported)


FLAGS: list[Flag] = [
    _s("name", "default", "Human-readable name for this member."),
    _s("data-dir", "", "Path to the data directory (default '<name>.etcd')."),
    _s("wal-dir", "", "Dedicated WAL directory (pyetcd keeps its log in the data dir).", supported=False),
    Flag("listen-client-urls", parse_urls, ["http://localhost:2379"], "URLs to listen on for client traffic."),
    Flag("advertise-client-urls", parse_urls, ["http://localhost:2379"], "Client URLs advertised to the cluster."),
    Flag("listen-peer-urls", parse_urls, ["http://localhost:2380"], "URLs to listen on for peer traffic."),
    Flag("initial-advertise-peer-urls", parse_urls, ["http://localhost:2380"], "Peer URLs advertised to the cluster."),
    _s("initial-cluster", "", "Initial cluster configuration for bootstrapping (name=peerURL,...)."),
    _s("initial-cluster-state", "new", "'new' or 'existing'."),
    _s("initial-cluster-token", "etcd-cluster", "Initial cluster token used during bootstrap."),
    _s("cert-file", "", "Path to the client server TLS cert file."),
    _s("key-file", "", "Path to the client server TLS key file."),
    _s("trusted-ca-file", "", "Path to the client server TLS trusted CA cert file."),
    _b("client-cert-auth", "Enable client cert authentication."),
    _b("auto-tls", "Client TLS using generated certificates."),
    _s("client-crl-file", "", "Path to the client certificate revocation list file."),
    _s("peer-cert-file", "", "Path to the peer server TLS cert file."),
    _s("peer-key-file", "", "Path to the peer server TLS key file."),
    _s("peer-trusted-ca-file", "", "Path to the peer server TLS trusted CA file."),
    _b("peer-client-cert-auth", "Enable peer client cert authentication."),
    _b("peer-auto-tls", "Peer TLS using generated certificates."),
    _s("peer-cert-allowed-cn", "", "Allowed CN for inter peer authentication.", supported=False),
    _s("peer-cert-allowed-hostname", "", "Allowed TLS hostname for inter peer authentication.", supported=False),
    _s("cipher-suites", "", "Comma-separated list of supported TLS cipher suites.", supported=False),
    Flag("max-txn-ops", int, 128, "Maximum number of operations permitted in a transaction."),
    Flag("max-request-bytes", int, 1536 * 1024, "Maximum client request size in bytes the server will accept."),
    Flag("quota-backend-bytes", parse_size, 0, "Raise alarms when backend size exceeds the given quota (0 = 2 GiB)."),
    Flag("heartbeat-interval", int, 100, "Time (in milliseconds) of a heartbeat interval."),
    Flag("election-timeout", int, 1000, "Time (in milliseconds) for an election to timeout."),
    Flag("snapshot-count", int, 100000, "Number of committed transactions to trigger a snapshot to disk."),
    _s("log-level", "info", "Configures log level: debug, info, warn, error, panic, or fatal."),
    _s("logger", "zap", "'zap' for structured logging or 'capnslog'."),
    _s("log-outputs", "default", "'default', 'stderr', 'stdout', or file paths (comma-separated)."),
    _b("debug", "Enable debug-level logging."),
    Flag("listen-metrics-urls", parse_urls, [], "Additional URLs to serve /metrics and /health."),
    Flag("client-urls-http", parse_bool, True, "Serve HTTP (health, metrics, the JSON gateway) beside gRPC on "
         "every client URL (pyetcd only; false: gRPC alone, with no relay in front of it).", boolean=True),
    _s("auto-compaction-retention", "0", "Auto compaction retention (0 = off).", supported=False),
    _s("auto-compaction-mode", "periodic", "'periodic' or 'revision'.", supported=False),
    _b("enable-v2", "Accept etcd V2 client requests (pyetcd serves v3 only).", supported=False),
    _b("enable-pprof", "Enable runtime profiling data via HTTP server.", supported=False),
    _b("strict-reconfig-check", "Reject reconfiguration requests that would cause quorum loss.", supported=False),
    _b("force-new-cluster", "Force to create a new one member cluster.", supported=False),
    _b("experimental-initial-corrupt-check", "Check data corruption before serving.", supported=False),
    _s("auth-token", "simple", "Auth token type: 'simple' or 'jwt,...'.", supported=False),
    Flag("bcrypt-cost", int, 10, "Specify bcrypt algorithm cost factor for auth password hashing."),
    Flag("auth-token-ttl", int, 300, "The lifetime in seconds of the auth token."),
    Flag("max-concurrent-streams", int, 2**32 - 1, "Maximum concurrent streams per gRPC connection.", supported=False),
    _s("config-file", "", "Path to the server configuration file.", supported=False),
    Flag("experimental-watch-progress-notify-interval", parse_duration, 600.0,
         "Duration of periodic watch progress notifications."),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise FlagError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pyetcd", description="pyetcd: an etcd v3 server", allow_abbrev=False)
    parser.add_argument("--version", action="store_true", help="Print the version and exit.")
    for f in FLAGS:
        if f.boolean:
            parser.add_argument(f"--{f.name}", dest=f.dest, nargs="?", const="true", default=None, help=f.help)
        else:
            parser.add_argument(f"--{f.name}", dest=f.dest, default=None, help=f.help)
    return parser


@dataclass
class Resolved:
    values: dict[str, Any]
    unsupported: list[str]  # flags set that are accepted but have no effect yet
    unknown_env: list[str]  # ETCD_* variables that match no flag (etcd warns about them too)
    version: bool


def resolve(argv: list[str], environ: dict[str, str] | None = None) -> Resolved:
    """Flag values after the environment and the defaults."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    unsupported: list[str] = []
    known_env = {f.env for f in FLAGS} | {"ETCD_UNSUPPORTED_ARCH"}
    unknown_env = sorted(k for k in env if k.startswith("ETCD_") and k not in known_env)
    for f in FLAGS:
        raw = getattr(args, f.dest)
        source = f"--{f.name}"
        if raw is None and f.env in env:
            raw, source = env[f.env], f.env
        if raw is None:
            values[f.dest] = f.default
            continue
        try:
            values[f.dest] = f.parse(raw)
        except ValueError as e:
            raise FlagError(f"invalid value {raw!r} for {source}: {e}") from e
        if not f.supported and values[f.dest] not in (f.default, False, "", []):
            unsupported.append(f.name)
    return Resolved(values, unsupported, unknown_env, bool(args.version))


def to_config(v: dict[str, Any]) -> ServerConfig:
    if v["initial_cluster_state"] not in ("new", "existing"):
        raise FlagError(f"invalid value {v['initial_cluster_state']!r} for --initial-cluster-state: "
                        "expected 'new' or 'existing'")
    if v["max_txn_ops"] <= 0:
        raise FlagError("--max-txn-ops must be greater than 0")
    if v["max_request_bytes"] <= 0:
        raise FlagError("--max-request-bytes must be greater than 0")
    if v["heartbeat_interval"] <= 0 or v["election_timeout"] < 5 * v["heartbeat_interval"]:
        raise FlagError("--election-timeout must be at least 5 times --heartbeat-interval "
                        f"(got {v['election_timeout']} and {v['heartbeat_interval']})")
    if v["log_level"] not in ("debug", "info", "warn", "error", "panic", "fatal"):
        raise FlagError(f"invalid value {v['log_level']!r} for --log-level: expected debug, info, warn, error, "
                        "panic or fatal")
    joining = v["initial_cluster_state"] == "existing" and not Path(
        v["data_dir"] or f"{v['name']}.etcd", "member").exists()
    if len([m for m in v["initial_cluster"].split(",") if m.strip()]) > 1 or joining:
        raise FlagError("pyetcd serves single-member clusters only for now (the peer transport is not built "
                        "yet): drop --initial-cluster's other members and --initial-cluster-state=existing")
    client_tls = TLSInfo(v["cert_file"], v["key_file"], v["trusted_ca_file"], v["client_cert_auth"], v["auto_tls"],
                         crl_file=v["client_crl_file"])
    if bool(client_tls.cert_file) != bool(client_tls.key_file):
        raise FlagError("--cert-file and --key-file must be given together")
    peer_tls = TLSInfo(v["peer_cert_file"], v["peer_key_file"], v["peer_trusted_ca_file"],
                       v["peer_client_cert_auth"], v["peer_auto_tls"])
    return ServerConfig(
        name=v["name"],
        data_dir=Path(v["data_dir"] or f"{v['name']}.etcd"),
        listen_client_urls=v["listen_client_urls"],
        advertise_client_urls=v["advertise_client_urls"],
        listen_peer_urls=v["listen_peer_urls"],
        initial_advertise_peer_urls=v["initial_advertise_peer_urls"],
        initial_cluster=v["initial_cluster"],
        initial_cluster_state=v["initial_cluster_state"],
        initial_cluster_token=v["initial_cluster_token"],
        client_tls=client_tls,
        peer_tls=peer_tls,
        max_txn_ops=v["max_txn_ops"],
        max_request_bytes=v["max_request_bytes"],
        quota_backend_bytes=v["quota_backend_bytes"],
        heartbeat_interval_ms=v["heartbeat_interval"],
        election_timeout_ms=v["election_timeout"],
        snapshot_count=v["snapshot_count"],
        listen_metrics_urls=v["listen_metrics_urls"],
        client_http=v["client_urls_http"],
        log_level="debug" if v["debug"] else v["log_level"],
        watch_progress_notify_interval=v["experimental_watch_progress_notify_interval"],
        # etcd falls back to the default cost when the given one is outside bcrypt's range
        bcrypt_cost=v["bcrypt_cost"] if 4 <= v["bcrypt_cost"] <= 31 else 10,
        auth_token_ttl=v["auth_token_ttl"],
    )

"""etcd's server flags, their ``ETCD_*`` environment variables and their defaults.

Precedence is etcd's: a flag on the command line wins over its environment variable, which
wins over the default. Unknown flags and bad values stop the server at start with a message
that names the flag.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyetcd.auth.tokens import JWT_TTL, TokenConfig, make_token_provider, parse_token_options
from pyetcd.server.autocompact import parse_retention
from pyetcd.server.config import ServerConfig, TLSInfo
from pyetcd.tools.durations import parse_go_duration as parse_duration

from .configfile import ConfigFileError, read_config_file


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


def parse_auth_token(value: str) -> TokenConfig:
    """--auth-token as etcd parses it; the keys are loaded now, so a bad one stops the start."""
    kind, options = parse_token_options(value)
    ttl = parse_duration(options["ttl"]) if options.get("ttl") else JWT_TTL
    cfg = TokenConfig(kind, tuple(sorted(options.items())), ttl)
    make_token_provider(cfg)
    return cfg


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
    _s("peer-cert-allowed-cn", "", "Allowed CN for inter peer authentication."),
    _s("peer-cert-allowed-hostname", "", "Allowed TLS hostname for inter peer authentication.", supported=False),
    _s("cipher-suites", "", "Comma-separated list of supported TLS cipher suites.", supported=False),
    Flag("max-txn-ops", int, 128, "Maximum number of operations permitted in a transaction."),
    Flag("max-request-bytes", int, 1536 * 1024, "Maximum client request size in bytes the server will accept."),
    Flag("quota-backend-bytes", parse_size, 0, "Raise alarms when backend size exceeds the given quota (0 = 2 GiB)."),
    Flag("heartbeat-interval", int, 100, "Time (in milliseconds) of a heartbeat interval."),
    Flag("election-timeout", int, 1000, "Time (in milliseconds) for an election to timeout."),
    Flag("snapshot-count", int, 100000, "Number of committed transactions to trigger a snapshot to disk."),
    Flag("experimental-snapshot-catchup-entries", int, 5000,
         "Number of entries for a slow follower to catch up after compacting the raft storage entries."),
    _s("log-level", "info", "Configures log level: debug, info, warn, error, panic, or fatal."),
    _s("logger", "zap", "'zap' for structured logging or 'capnslog'."),
    _s("log-outputs", "default", "'default', 'stderr', 'stdout', or file paths (comma-separated)."),
    _b("debug", "Enable debug-level logging."),
    Flag("listen-metrics-urls", parse_urls, [], "Additional URLs to serve /metrics and /health."),
    Flag("client-urls-http", parse_bool, True, "Serve HTTP (health, metrics, the JSON gateway) beside gRPC on "
         "every client URL (pyetcd only; false: gRPC alone, with no relay in front of it).", boolean=True),
    _s("auto-compaction-retention", "0", "Auto compaction retention: a duration ('1h', '30m'; a bare number "
       "is hours) in periodic mode, a number of revisions in revision mode. 0 disables auto compaction."),
    _s("auto-compaction-mode", "periodic", "Interpret 'auto-compaction-retention' as 'periodic' (a duration) "
       "or 'revision' (a count)."),
    _b("enable-v2", "Accept etcd V2 client requests (pyetcd serves v3 only).", supported=False),
    _b("enable-pprof", "Enable runtime profiling data via HTTP server.", supported=False),
    Flag("strict-reconfig-check", parse_bool, True, "Reject reconfiguration requests that would cause quorum loss.",
         boolean=True),
    _b("force-new-cluster", "Force to create a new one member cluster."),
    _b("experimental-initial-corrupt-check", "Check data corruption before serving.", supported=False),
    Flag("auth-token", parse_auth_token, TokenConfig(),
         "Auth token type: 'simple' or 'jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m'."),
    Flag("bcrypt-cost", int, 10, "Specify bcrypt algorithm cost factor for auth password hashing."),
    Flag("auth-token-ttl", int, 300, "The lifetime in seconds of the auth token."),
    Flag("max-concurrent-streams", int, 2**32 - 1, "Maximum concurrent streams per gRPC connection.", supported=False),
    _s("config-file", "", "Path to the server configuration file (etcd's YAML keys); other flags and ETCD_* "
       "variables are then ignored."),
    Flag("experimental-watch-progress-notify-interval", parse_duration, 600.0,
         "Duration of periodic watch progress notifications."),
]
_BY_NAME = {f.name: f for f in FLAGS}


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
    config_file: str = ""  # the YAML file the values came from (flags and ETCD_* ignored then)
    unknown_keys: list[str] = field(default_factory=list)  # keys of that file pyetcd does not know


def resolve(argv: list[str], environ: dict[str, str] | None = None) -> Resolved:
    """Flag values after the environment and the defaults, or from ``--config-file`` (etcd's rule:
    a configuration file replaces every other flag and ETCD_* variable)."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    known_env = {f.env for f in FLAGS} | {"ETCD_UNSUPPORTED_ARCH"}
    unknown_env = sorted(k for k in env if k.startswith("ETCD_") and k not in known_env)
    config_file = args.config_file or env.get("ETCD_CONFIG_FILE", "")
    if config_file:
        try:
            settings, unknown = read_config_file(config_file)
        except ConfigFileError as e:
            raise FlagError(str(e)) from e
        unknown += sorted(k for k in settings if k not in _BY_NAME)
        raws = {f.name: (settings.get(f.name), f"{f.name} in {config_file}") for f in FLAGS if f.name != "config-file"}
        values, unsupported = _parse_all(raws)
        values["config_file"] = config_file
        return Resolved(values, unsupported, [], bool(args.version), config_file, unknown)
    raws = {}
    for f in FLAGS:
        raw, source = getattr(args, f.dest), f"--{f.name}"
        if raw is None and f.env in env:
            raw, source = env[f.env], f.env
        raws[f.name] = (raw, source)
    values, unsupported = _parse_all(raws)
    return Resolved(values, unsupported, unknown_env, bool(args.version))


def _parse_all(raws: dict[str, tuple[str | None, str]]) -> tuple[dict[str, Any], list[str]]:
    """Each flag's value from its raw text (None: the default), and the unsupported ones set."""
    values: dict[str, Any] = {}
    unsupported: list[str] = []
    for f in FLAGS:
        raw, source = raws.get(f.name, (None, ""))
        if raw is None:
            values[f.dest] = f.default
            continue
        try:
            values[f.dest] = f.parse(raw)
        except ValueError as e:
            raise FlagError(f"invalid value {raw!r} for {source}: {e}") from e
        if not f.supported and values[f.dest] not in (f.default, False, "", []):
            unsupported.append(f.name)
    return values, unsupported


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
    if v["logger"] not in ("zap", "capnslog"):
        raise FlagError(f"invalid value {v['logger']!r} for --logger: expected 'zap' (JSON lines) or 'capnslog'")
    try:
        retention = parse_retention(v["auto_compaction_mode"], v["auto_compaction_retention"])
    except ValueError as e:
        raise FlagError(f"{e} (--auto-compaction-mode / --auto-compaction-retention)") from e
    client_tls = TLSInfo(v["cert_file"], v["key_file"], v["trusted_ca_file"], v["client_cert_auth"], v["auto_tls"],
                         crl_file=v["client_crl_file"])
    if bool(client_tls.cert_file) != bool(client_tls.key_file):
        raise FlagError("--cert-file and --key-file must be given together")
    peer_tls = TLSInfo(v["peer_cert_file"], v["peer_key_file"], v["peer_trusted_ca_file"],
                       v["peer_client_cert_auth"], v["peer_auto_tls"], allowed_cn=v["peer_cert_allowed_cn"])
    if bool(peer_tls.cert_file) != bool(peer_tls.key_file):
        raise FlagError("--peer-cert-file and --peer-key-file must be given together")
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
        strict_reconfig_check=v["strict_reconfig_check"],
        force_new_cluster=v["force_new_cluster"],
        snapshot_catchup_entries=v["experimental_snapshot_catchup_entries"],
        listen_metrics_urls=v["listen_metrics_urls"],
        client_http=v["client_urls_http"],
        log_level="debug" if v["debug"] else v["log_level"],
        watch_progress_notify_interval=v["experimental_watch_progress_notify_interval"],
        # etcd falls back to the default cost when the given one is outside bcrypt's range
        bcrypt_cost=v["bcrypt_cost"] if 4 <= v["bcrypt_cost"] <= 31 else 10,
        auth_token_ttl=v["auth_token_ttl"],
        auto_compaction_mode=v["auto_compaction_mode"],
        auto_compaction_retention=v["auto_compaction_retention"] if retention else "0",
        auth_token=v["auth_token"],
    )

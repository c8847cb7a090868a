"""The `pyetcd` server: run one etcd member, configured by etcd's flags and ETCD_* variables (the
command itself starts in cli/launch.py, which must run before grpc is imported)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from urllib.parse import urlsplit

from pyetcd import ETCD_API_VERSION, __version__
from pyetcd.gateway.identities import RelayedIdentities
from pyetcd.gateway.metrics import Metrics, watcher_count
from pyetcd.gateway.serve import HTTPSide
from pyetcd.h2.server import native_server
from pyetcd.rpc.grpcserver import build_server, client_api
from pyetcd.server.config import ServerConfig
from pyetcd.server.etcd_server import EtcdServer
from pyetcd.storage.etcdimport import EtcdDataDirError
from pyetcd.storage.raftlog import RaftLog
from pyetcd.tls import ConfigError, TLSInfo
from pyetcd.transport import PeerTransport, fetch_remote_cluster

from .eventloop import loop_factory
from .flags import FlagError, resolve, to_config
from .sdnotify import notify
from .zaplog import setup_logging

log = logging.getLogger("pyetcd")


def _self_signed(cfg: ServerConfig, urls: list[str], kind: str) -> TLSInfo:
    """--auto-tls / --peer-auto-tls: a self-signed certificate for the listen hosts, kept in
    the data dir (as etcd does)."""
    from pyetcd.tools.certs import write_self_signed

    hosts = sorted({urlsplit(u).hostname or "localhost" for u in urls} | {"localhost"})
    folder = cfg.data_dir / "fixtures" / kind
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        write_self_signed(folder, hosts)
    return TLSInfo(str(cert), str(key), "", client_cert_auth=False, auto_tls=True)


def auto_tls(cfg: ServerConfig) -> None:
    if cfg.client_tls.auto_tls and not cfg.client_tls.cert_file:
        cfg.client_tls = _self_signed(cfg, cfg.listen_client_urls, "client")
    if cfg.peer_tls.auto_tls and not cfg.peer_tls.cert_file:
        cfg.peer_tls = _self_signed(cfg, cfg.listen_peer_urls, "peer")


GC_THRESHOLDS = (20_000, 50, 100)  # gen0 allocations, gen0 runs per gen1, gen1 runs per gen2
NODE_LOOP_FAILED = 2  # the exit status when the raft node loop died of an error (a Go panic exits 2 too)


def tune_gc() -> None:
    """Keep the cyclic collector off the hot path. Under load it took ~12% of the event loop's
    time (bench/profile.py --native): every request allocates tasks and futures, and each 700
    allocations ran a young collection. Start-up's objects are frozen out of collections, and
    collections run less often; reference counting still frees almost everything at once.
    Measured (bench/kv.py, 4 A/B runs, both orders): put at 100 clients +14-17 % with p99 down by
    a third; reads within noise (serializable range at 100 clients -15 to +6 %)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(cfg: ServerConfig) -> None:
    """Run one member until SIGTERM/SIGINT or until it is removed from the cluster (either way the
    process then exits 0, as etcd's does: etcdmain exits 0 once its server stopped, whatever
    stopped it)."""
    transport = PeerTransport(cfg)
    remote = None
    if cfg.initial_cluster_state == "existing" and not RaftLog.exists(cfg.data_dir / "member" / "raft"):
        remote = await fetch_remote_cluster(cfg)
    server = EtcdServer(cfg, transport, remote)
    transport.attach(server)
    stop = asyncio.Event()

    def removed(why: str) -> None:
        log.error("%s; the data-dir used by this member must be removed before it can rejoin", why)
        stop.set()

    transport.on_removed = removed
    identities = RelayedIdentities()  # clients whose TLS the front ends, reported by it
    api = client_api(server, identify=identities.of)
    api.observer = metrics = Metrics(server, watcher_count(api))
    http = HTTPSide(server, api, metrics, identities)
    try:
        # gRPC and HTTP share each client URL: the front takes the port, gRPC serves behind it.
        # A port that is taken fails here, before the member joins anything.
        backends = http.bind_client_urls(cfg.listen_client_urls) if cfg.client_http else None
        grpc_server = native_server(server, api, backends) or build_server(server, api=api, listen=backends)
    except BaseException:
        await http.stop()
        await server.stop()
        raise
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[object]] = []
    failing = asyncio.create_task(server.failed.wait())
    try:
        await transport.serve()
        await http.start(cfg.listen_metrics_urls)
        starting = asyncio.create_task(server.start())
        removal = asyncio.create_task(server.removed.wait())
        stopping = asyncio.create_task(stop.wait())
        tasks = [starting, removal, stopping, failing]  # type: ignore[list-item]
        await asyncio.wait({starting, stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and not starting.exception():
            # as etcd: clients are served once the member knows a leader (until then they retry
            # another endpoint rather than get "no leader")
            await grpc_server.start()
            log.info("serving client traffic", extra={"fields": {"listen-client-urls": cfg.listen_client_urls}})
            log.info("ready to serve client requests", extra={"fields": {
                "local-member-id": f"{server.id:x}", "cluster-id": f"{server.cluster_id:x}",
                "advertise-client-urls": cfg.advertise_client_urls}})
            notify("READY=1")
            tune_gc()
            await asyncio.wait({removal, stopping, failing}, return_when=asyncio.FIRST_COMPLETED)
            if removal.done():
                removed("the member has been permanently removed from the cluster")
        if stopping.done():
            log.info("received signal; shutting down", extra={"fields": {"signal": "terminated"}})
    finally:
        for task in tasks:
            task.cancel()
        await http.stop()
        await grpc_server.stop(grace=1.0)
        await transport.close()
        await server.stop()
    log.info("closed etcd server", extra={"fields": {"name": cfg.name, "data-dir": str(cfg.data_dir)}})
    if failing.done() and not failing.cancelled():
        raise SystemExit(NODE_LOOP_FAILED)


def main(argv: list[str] | None = None) -> int:
    try:
        resolved = resolve(sys.argv[1:] if argv is None else argv)
        if resolved.version:
            print(f"pyetcd Version: {__version__}\netcd API Version: {ETCD_API_VERSION}")
            return 0
        cfg = to_config(resolved.values)
    except FlagError as e:
        print(f"pyetcd: error verifying flags, {e}. See 'pyetcd --help'.", file=sys.stderr)
        return 1
    try:
        setup_logging(resolved.values["logger"], cfg.log_level, resolved.values["log_outputs"])
    except OSError as e:
        print(f"pyetcd: cannot open --log-outputs {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    if resolved.config_file:
        log.info("loaded server configuration, other configuration command line flags and environment "
                 "variables will be ignored if provided", extra={"fields": {"path": resolved.config_file}})
    for key in resolved.unknown_keys:
        log.warning("unknown key in the configuration file; ignored", extra={"fields": {"key": key}})
    for name in resolved.unknown_env:
        log.warning("unrecognized environment variable", extra={"fields": {"environment-variable": name}})
    for name in resolved.unsupported:
        log.warning("flag accepted for compatibility but has no effect in pyetcd yet", extra={"fields": {"flag": name}})
    loop_name, new_loop = loop_factory()
    log.info("starting an etcd server", extra={"fields": {
        "etcd-version": ETCD_API_VERSION, "pyetcd-version": __version__, "python-version": sys.version.split()[0],
        "name": cfg.name, "data-dir": str(cfg.data_dir), "member-initialized": (cfg.data_dir / "member").exists(),
        "initial-cluster": cfg.initial_cluster, "initial-cluster-state": cfg.initial_cluster_state,
        "quota-backend-bytes": cfg.quota_backend_bytes, "auto-compaction-mode": cfg.auto_compaction_mode,
        "auto-compaction-retention": cfg.auto_compaction_retention, "event-loop": loop_name}})
    auto_tls(cfg)
    try:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(serve(cfg))
        return 0
    except (ConfigError, EtcdDataDirError) as e:
        log.error("%s", e, extra={"fields": {"error": str(e)}})
        return 1


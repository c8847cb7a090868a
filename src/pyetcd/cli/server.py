"""``pyetcd``: run one etcd member, configured by etcd's flags and ETCD_* variables."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from urllib.parse import urlsplit

from pyetcd import ETCD_API_VERSION, __version__
from pyetcd.rpc.grpcserver import ConfigError, build_server
from pyetcd.server.config import ServerConfig, TLSInfo
from pyetcd.server.server import EtcdServer

from .flags import FlagError, resolve, to_config
from .sdnotify import notify
from .zaplog import setup_logging

log = logging.getLogger("pyetcd")


def auto_tls(cfg: ServerConfig) -> None:
    """--auto-tls: a self-signed certificate for the listen hosts, kept in the data dir (as etcd does)."""
    from pyetcd.tools.certs import write_certs

    hosts = sorted({urlsplit(u).hostname or "localhost" for u in cfg.listen_client_urls} | {"localhost"})
    folder = cfg.data_dir / "fixtures" / "client"
    if not (folder / "server.pem").exists():
        write_certs(folder, hosts, force=True)
    cfg.client_tls = TLSInfo(str(folder / "server.pem"), str(folder / "server-key.pem"), "",
                             client_cert_auth=False, auto_tls=True)


async def serve(cfg: ServerConfig) -> None:
    server = EtcdServer(cfg)
    grpc_server = build_server(server)
    await grpc_server.start()
    log.info("serving client traffic", extra={"fields": {"listen-client-urls": cfg.listen_client_urls}})
    await server.start()
    log.info("ready to serve client requests", extra={"fields": {
        "local-member-id": f"{server.id:x}", "cluster-id": f"{server.cluster_id:x}",
        "advertise-client-urls": cfg.advertise_client_urls}})
    notify("READY=1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("received signal; shutting down", extra={"fields": {"signal": "terminated"}})
    await grpc_server.stop(grace=1.0)
    await server.stop()
    log.info("closed etcd server", extra={"fields": {"name": cfg.name, "data-dir": str(cfg.data_dir)}})


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
    log.info("starting an etcd server", extra={"fields": {
        "etcd-version": ETCD_API_VERSION, "pyetcd-version": __version__, "python-version": sys.version.split()[0],
        "name": cfg.name, "data-dir": str(cfg.data_dir), "member-initialized": (cfg.data_dir / "member").exists(),
        "initial-cluster": cfg.initial_cluster, "initial-cluster-state": cfg.initial_cluster_state,
        "quota-backend-bytes": cfg.quota_backend_bytes, "auto-compaction-mode": cfg.auto_compaction_mode,
        "auto-compaction-retention": cfg.auto_compaction_retention}})
    if cfg.client_tls.auto_tls and not cfg.client_tls.cert_file:
        auto_tls(cfg)
    try:
        asyncio.run(serve(cfg))
    except ConfigError as e:
        log.error("%s", e, extra={"fields": {"error": str(e)}})
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``pyetcd``: run one etcd member, configured by etcd's flags and ETCD_* variables."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from urllib.parse import urlsplit

from pyetcd import ETCD_API_VERSION, __version__
from pyetcd.gateway.metrics import Metrics, watcher_count
from pyetcd.gateway.serve import HTTPSide
from pyetcd.rpc.grpcserver import ConfigError, build_server, client_api
from pyetcd.server.config import ServerConfig, TLSInfo
from pyetcd.server.server import EtcdServer

from .flags import FlagError, resolve, to_config

log = logging.getLogger("pyetcd")


def setup_logging(level: str, outputs: str) -> None:
    py_level = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
                "panic": logging.CRITICAL, "fatal": logging.CRITICAL}[level]
    handlers: list[logging.Handler] = []
    for out in (outputs or "default").split(","):
        out = out.strip()
        if out in ("default", "stderr", ""):
            handlers.append(logging.StreamHandler(sys.stderr))
        elif out == "stdout":
            handlers.append(logging.StreamHandler(sys.stdout))
        else:
            handlers.append(logging.FileHandler(out))
    logging.basicConfig(level=py_level, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
    api = client_api(server)
    api.observer = metrics = Metrics(server, watcher_count(api))
    http = HTTPSide(server, api, metrics)
    # gRPC and HTTP share each client URL: the front takes the port, gRPC serves behind it
    backends = http.bind_client_urls(cfg.listen_client_urls) if cfg.client_http else None
    grpc_server = build_server(server, api=api, listen=backends)
    await grpc_server.start()
    await http.start(cfg.listen_metrics_urls)
    log.info("serving client traffic on %s", ",".join(cfg.listen_client_urls))
    await server.start()
    log.info("ready to serve client requests; member %x in cluster %x", server.id, server.cluster_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("received signal; shutting down")
    await http.stop()
    await grpc_server.stop(grace=1.0)
    await server.stop()


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
    setup_logging(cfg.log_level, resolved.values["log_outputs"])
    for name in resolved.unknown_env:
        log.warning("unrecognized environment variable %s", name)
    for name in resolved.unsupported:
        log.warning("--%s is accepted for compatibility but has no effect in pyetcd yet", name)
    if cfg.client_tls.auto_tls and not cfg.client_tls.cert_file:
        auto_tls(cfg)
    try:
        asyncio.run(serve(cfg))
    except ConfigError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

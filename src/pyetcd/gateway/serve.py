"""Everything HTTP a member serves: the gateway behind a front on each --listen-client-urls URL,
and /metrics and /health on each --listen-metrics-urls URL (as etcd serves them)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pyetcd.rpc.grpcserver import ClientAPI, ConfigError
from pyetcd.rpc.limits import GRPC_OVERHEAD_BYTES
from pyetcd.server.config import TLSInfo
from pyetcd.server.etcd_server import EtcdServer
from pyetcd.tls import parse_url, pump_settings

from .access import access_controller
from .front import native_relay
from .handover import ClientURL, RelayProcess
from .health import Health
from .identities import RelayedIdentities
from .jsongw import JSONGateway
from .metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("pyetcd.gateway")


def http_tls(tls: TLSInfo) -> ssl.SSLContext:
    """The HTTP side's TLS: the gRPC side's certificate and client-certificate rules, HTTP/1.1 by ALPN."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.trusted_ca_file:
            ctx.load_verify_locations(tls.trusted_ca_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the client TLS files for HTTP: {e}") from e
    ctx.verify_mode = ssl.CERT_REQUIRED if tls.client_cert_auth and tls.trusted_ca_file else ssl.CERT_NONE
    if tls.crl_file and ctx.verify_mode == ssl.CERT_REQUIRED:
        _load_crl(ctx, tls.crl_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _load_crl(ctx: ssl.SSLContext, crl_file: str) -> None:
    """--client-crl-file for HTTP: a revoked client certificate fails the handshake, as in etcd."""
    try:
        raw = Path(crl_file).read_bytes()
        if b"-----BEGIN" not in raw:  # DER: OpenSSL's store loads CRLs from PEM files only
            raw = x509.load_der_x509_crl(raw).public_bytes(serialization.Encoding.PEM)
        with tempfile.NamedTemporaryFile(suffix=".pem") as pem:
            pem.write(raw)
            pem.flush()
            ctx.load_verify_locations(cafile=pem.name)
    except (OSError, ValueError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load --client-crl-file {crl_file}: {e}") from e
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


async def _accept_http(factory: Callable[[], asyncio.BaseProtocol], conn: socket.socket,
                       tls: ssl.SSLContext | None) -> None:
    try:
        await asyncio.get_running_loop().connect_accepted_socket(factory, conn, ssl=tls)
    except OSError as e:  # a failed TLS handshake (no or wrong client certificate) among others
        log.debug("HTTP client connection failed: %s", e)
        conn.close()


class HTTPSide:
    def __init__(self, server: EtcdServer, api: ClientAPI, metrics: Metrics, identities: RelayedIdentities) -> None:
        self.s, self.metrics = server, metrics
        health = Health(server)
        # a request etcd would take over gRPC fits, base64 and all; what is too large then gets
        # etcd's own "request is too large" from the server, as over gRPC
        max_body = (server.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES) * 4 // 3 + 64 * 1024
        app = web.Application(middlewares=[access_controller(server)], client_max_size=max_body)
        health.add_routes(app)
        app.router.add_get("/metrics", self.serve_metrics)
        JSONGateway(api).add_routes(app)
        # handler_cancellation: a watch stream whose client left ends at once, not at its next event
        self.client_runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        metrics_app = web.Application()
        health.add_routes(metrics_app, probes=False)
        metrics_app.router.add_get("/metrics", self.serve_metrics)
        self.metrics_runner = web.AppRunner(metrics_app, access_log=None)
        self.relay = RelayProcess(self._serve_http, identities)
        self._tls: ssl.SSLContext | None = None
        self._handing: set[asyncio.Task[None]] = set()

    def tls(self) -> ssl.SSLContext:
        if self.s.cfg.client_tls.empty:
            raise ConfigError("an https:// URL needs --cert-file and --key-file (or --auto-tls)")
        self._tls = self._tls or http_tls(self.s.cfg.client_tls)
        return self._tls

    async def serve_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    def bind_client_urls(self, urls: list[str]) -> list[tuple[str, bool]]:
        """Bind each client URL for the front; returns the private (address, tls) pairs gRPC must serve
        (plaintext behind an https URL whose TLS the front ends)."""
        backends = []
        for url in urls:
            addr = parse_url(url)
            if addr.secure:
                self.tls()
                if native_relay():
                    self.relay.tls_end = pump_settings(self.s.cfg.client_tls)
            try:
                u = self.relay.bind(url, addr.host, addr.port, addr.secure)
            except OSError as e:
                raise ConfigError(f"cannot listen on {url}: {e.strerror}") from e
            backends.append((u.grpc_address, addr.secure and self.relay.tls_end is None))
        return backends

    def _serve_http(self, url: ClientURL, conn: socket.socket) -> None:
        """An HTTP connection the front handed over, nothing read from it yet."""
        factory = self.client_runner.server
        assert factory is not None
        conn.setblocking(False)
        task = asyncio.get_running_loop().create_task(
            _accept_http(factory, conn, self._tls if url.tls else None))
        self._handing.add(task)
        task.add_done_callback(self._handing.discard)

    async def start(self, metrics_urls: list[str]) -> None:
        await self.client_runner.setup()
        await self.metrics_runner.setup()
        if self.relay.urls:
            await self.relay.start()
        for url in metrics_urls:
            addr = parse_url(url)
            site = web.TCPSite(self.metrics_runner, addr.host, addr.port,
                               ssl_context=self.tls() if addr.secure else None)
            try:
                await site.start()
            except OSError as e:
                raise ConfigError(f"cannot listen on --listen-metrics-urls {url}: {e.strerror}") from e

    async def stop(self) -> None:
        await self.relay.stop()
        await self.client_runner.cleanup()
        await self.metrics_runner.cleanup()

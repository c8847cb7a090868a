"""Build the client-facing gRPC server: etcd's services on every --listen-client-urls URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import grpc

from pyetcd.api import rpc_pb2, v3election_pb2, v3lock_pb2
from pyetcd.server.config import TLSInfo
from pyetcd.server.server import EtcdServer

from .authguard import CallGuard
from .crl import RevocationCheck
from .service import generic_handler
from .services import client_services

# etcd lets a request exceed --max-request-bytes by this much at the gRPC layer, so that an
# oversized request reaches the server and gets etcd's own "request is too large".
GRPC_OVERHEAD_BYTES = 512 * 1024


class ConfigError(Exception):
    """A setting that cannot work; the message says what to change."""


def server_credentials(tls: TLSInfo) -> grpc.ServerCredentials:
    try:
        key = Path(tls.key_file).read_bytes()
        cert = Path(tls.cert_file).read_bytes()
        ca = Path(tls.trusted_ca_file).read_bytes() if tls.trusted_ca_file else None
    except OSError as e:
        raise ConfigError(f"cannot read TLS file {e.filename}: {e.strerror}") from e
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=bool(tls.client_cert_auth and ca))


def listen_address(url: str) -> tuple[str, bool]:
    """host:port to bind for a client URL, and whether it is TLS."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise ConfigError(f"invalid listen URL {url!r}: expected http(s)://host:port")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}", parts.scheme == "https"


def build_server(s: EtcdServer, extra_services: list[tuple[str, object]] | None = None) -> grpc.aio.Server:
    options = [
        ("grpc.max_receive_message_length", s.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_concurrent_streams", 2**31 - 1),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    services = [*client_services(s), *(extra_services or [])]
    descriptors = {**rpc_pb2.DESCRIPTOR.services_by_name, **v3lock_pb2.DESCRIPTOR.services_by_name,
                   **v3election_pb2.DESCRIPTOR.services_by_name}
    try:
        crl = RevocationCheck(s.cfg.client_tls.crl_file) if s.cfg.client_tls.crl_file else None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load --client-crl-file {s.cfg.client_tls.crl_file}: {e}") from e
    guard = CallGuard(s, crl)
    server.add_generic_rpc_handlers([generic_handler(descriptors[name], impl, guard)
                                     for name, impl in services])
    creds = None
    for url in s.cfg.listen_client_urls:
        addr, secure = listen_address(url)
        if secure:
            if s.cfg.client_tls.empty:
                raise ConfigError(f"{url} is https but no --cert-file/--key-file (or --auto-tls) was given")
            creds = creds or server_credentials(s.cfg.client_tls)
            port = server.add_secure_port(addr, creds)
        else:
            port = server.add_insecure_port(addr)
        if port == 0:
            raise ConfigError(f"cannot listen on {url}: address in use or not available")
    return server

"""Build the client-facing gRPC server: etcd's services on every --listen-client-urls URL."""

from __future__ import annotations

import grpc

from pyetcd.api import rpc_pb2, v3election_pb2, v3lock_pb2
from pyetcd.server.etcd_server import EtcdServer
from pyetcd.tls import ConfigError, parse_url, server_credentials

from .authguard import CallGuard
from .crl import RevocationCheck
from .limits import GRPC_OVERHEAD_BYTES
from .service import generic_handler
from .services import client_services

__all__ = ["ConfigError", "build_server"]


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
        addr = parse_url(url)
        if addr.secure:
            if s.cfg.client_tls.empty:
                raise ConfigError(f"{url} is https but no --cert-file/--key-file (or --auto-tls) was given")
            creds = creds or server_credentials(s.cfg.client_tls)
            port = server.add_secure_port(addr.host_port, creds)
        else:
            port = server.add_insecure_port(addr.host_port)
        if port == 0:
            raise ConfigError(f"cannot listen on {url}: address in use or not available")
    return server

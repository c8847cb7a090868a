"""Build the client-facing gRPC server: etcd's services on every --listen-client-urls URL (or on
the private socket the HTTP front relays gRPC connections to)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from pyetcd.server.etcd_server import EtcdServer
from pyetcd.tls import ConfigError, parse_url, server_credentials

from .authguard import CallGuard, Identify, grpc_identity
from .crl import RevocationCheck
from .limits import GRPC_OVERHEAD_BYTES
from .service import DESCRIPTORS, CallObserver, generic_handler
from .services import client_services

__all__ = ["ClientAPI", "ConfigError", "build_server", "client_api", "listen_address"]


def listen_address(url: str) -> tuple[str, bool]:
    """host:port to bind for a client URL, and whether it is TLS."""
    addr = parse_url(url)
    return addr.host_port, addr.secure


@dataclass
class ClientAPI:
    """What gRPC and the HTTP gateway share: the servicers, the guard in front of every call and
    the call counters, so both sides validate, check and count alike."""

    services: list[tuple[str, object]]
    guard: CallGuard
    observer: CallObserver | None = None


def client_api(s: EtcdServer, extra_services: list[tuple[str, object]] | None = None,
               observer: CallObserver | None = None, identify: Identify = grpc_identity) -> ClientAPI:
    """``identify``: how a call's client certificate is found (gateway/identities.py when the front ends TLS)."""
    try:
        crl = RevocationCheck(s.cfg.client_tls.crl_file) if s.cfg.client_tls.crl_file else None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load --client-crl-file {s.cfg.client_tls.crl_file}: {e}") from e
    return ClientAPI([*client_services(s, identify), *(extra_services or [])], CallGuard(s, crl, identify), observer)


def build_server(s: EtcdServer, extra_services: list[tuple[str, object]] | None = None, *,
                 api: ClientAPI | None = None, listen: list[tuple[str, bool]] | None = None) -> grpc.aio.Server:
    """etcd's services on ``listen`` ((address, tls) pairs; default: every --listen-client-urls URL)."""
    options = [
        ("grpc.max_receive_message_length", s.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.max_concurrent_streams", 2**31 - 1),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    api = api or client_api(s, extra_services)
    server.add_generic_rpc_handlers([generic_handler(DESCRIPTORS[name], impl, api.guard, api.observer)
                                     for name, impl in api.services])
    creds = None
    for addr, secure in listen if listen is not None else map(listen_address, s.cfg.listen_client_urls):
        if secure:
            if s.cfg.client_tls.empty:
                raise ConfigError(f"{addr} is https but no --cert-file/--key-file (or --auto-tls) was given")
            creds = creds or server_credentials(s.cfg.client_tls)
            port = server.add_secure_port(addr, creds)
        else:
            port = server.add_insecure_port(addr)
        if port == 0:
            raise ConfigError(f"cannot listen on {addr}: address already in use or not available")
    return server

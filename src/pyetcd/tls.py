"""TLS credentials and URL parsing shared by the client side (rpc/), the peer side (transport/)
and the HTTP gateway: one place that knows etcd's --*-cert-file/--*-key-file/--*-trusted-ca-file
rules and what a listen URL may look like."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc


class ConfigError(Exception):
    """A setting that cannot work; the message says what to change."""


@dataclass
class TLSInfo:
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    auto_tls: bool = False
    crl_file: str = ""
    allowed_cn: str = ""

    @property
    def empty(self) -> bool:
        return not (self.cert_file or self.key_file or self.auto_tls)


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {e.filename}: {e.strerror}") from e


def server_credentials(tls: TLSInfo) -> grpc.ServerCredentials:
    """Server side: our certificate; with client_cert_auth, clients must show one from the CA."""
    key, cert = _read(tls.key_file, "TLS key file"), _read(tls.cert_file, "TLS cert file")
    ca = _read(tls.trusted_ca_file, "trusted CA file") if tls.trusted_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=bool(tls.client_cert_auth and ca))


def pump_settings(tls: TLSInfo) -> dict[str, object]:
    """How a native relay (gateway/_pump.c's Pump keywords) ends TLS: grpc's rules (server_credentials)."""
    return {"cert": tls.cert_file, "key": tls.key_file, "ca": tls.trusted_ca_file or "",
            "verify_client": bool(tls.client_cert_auth and tls.trusted_ca_file)}


def channel_credentials(tls: TLSInfo) -> grpc.ChannelCredentials:
    """Client side of a peer connection: trust the CA (or the system's), show our certificate."""
    ca = _read(tls.trusted_ca_file, "trusted CA file") if tls.trusted_ca_file else None
    key = _read(tls.key_file, "TLS key file") if tls.key_file else None
    cert = _read(tls.cert_file, "TLS cert file") if tls.cert_file else None
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


@dataclass(frozen=True)
class ListenAddress:
    host_port: str  # what grpc binds or dials: host:port, IPv6 in brackets
    secure: bool
    host: str
    port: int


def parse_url(url: str) -> ListenAddress:
    """host:port of an http(s)://host:port URL, and whether it is TLS."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise ConfigError(f"invalid URL {url!r}: expected http(s)://host:port")
    host = parts.hostname
    bracketed = f"[{host}]" if ":" in host else host
    return ListenAddress(f"{bracketed}:{parts.port}", parts.scheme == "https", host, parts.port)

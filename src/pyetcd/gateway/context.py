"""A servicer context for calls that arrive over HTTP: what rpc/ handlers and the CallGuard read
from a gRPC context (metadata, the TLS peer, abort) taken from the HTTP request instead."""

from __future__ import annotations

import ssl
from typing import Any, NoReturn

import grpc

from .identities import certificate_identity


class GatewayAbort(Exception):
    """A handler refused the call; the gateway answers with etcd's JSON error."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.status = code
        self.details = details


def peer_identity(ssl_object: ssl.SSLObject | None) -> dict[str, list[bytes]]:
    """The gRPC auth-context keys the guard reads (client CN, PEM certificate) for a TLS peer."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return certificate_identity(der) if der else {}


class GatewayContext:
    """The subset of grpc.aio.ServicerContext that pyetcd's handlers use."""

    def __init__(self, token: str | None, identity: dict[str, list[bytes]], peer: str) -> None:
        # grpc-gateway forwards the Authorization header as the "authorization" metadata
        self._metadata = (("authorization", token),) if token else ()
        self._identity = identity
        self._peer = peer
        self._code: grpc.StatusCode | None = None
        self._details = ""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._identity

    def peer(self) -> str:
        return self._peer

    async def abort(self, code: grpc.StatusCode, details: str = "", *_: Any) -> NoReturn:
        self._code, self._details = code, details
        raise GatewayAbort(code, details)

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False

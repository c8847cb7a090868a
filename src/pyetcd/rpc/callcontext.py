"""The servicer context of a call that grpcio does not carry: the HTTP gateway's (gateway/jsongw.py)
and the native gRPC transport's (h2/). It is the subset of grpc.aio.ServicerContext that
pyetcd's handlers and the CallGuard use: metadata, the client's certificate, the peer, abort."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import grpc

Metadata = Sequence[tuple[str, str]]


class CallAborted(Exception):
    """A handler refused the call (``context.abort``); the transport answers with this status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.status = code
        self.details = details


class CallContext:
    __slots__ = ("_code", "_details", "_identity", "_metadata", "_peer", "cancelled_by_client")

    def __init__(self, metadata: Metadata, identity: Mapping[str, list[bytes]], peer: str) -> None:
        self._metadata = metadata
        self._identity = identity
        self._peer = peer
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self.cancelled_by_client = False

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def auth_context(self) -> Mapping[str, list[bytes]]:
        return self._identity

    def peer(self) -> str:
        return self._peer

    async def abort(self, code: grpc.StatusCode, details: str = "", *_: Any) -> NoReturn:
        self._code, self._details = code, details
        raise CallAborted(code, details)

    def set_status(self, code: grpc.StatusCode, details: str) -> None:
        """The status the transport ended the call with when no handler chose one (a deadline, say)."""
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def cancelled(self) -> bool:
        return self.cancelled_by_client

    def done(self) -> bool:
        return self._code is not None

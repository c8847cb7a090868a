"""JSON as etcd's grpc-gateway (v1, ``JSONPb{OrigName: true}``) writes and reads it: proto field
names, int64 as strings, bytes as base64, defaults omitted, unknown request fields ignored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

# the HTTPStatusFromCode of the grpc-gateway etcd vendors (FailedPrecondition is 412 there)
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 408, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 412, "ABORTED": 409, "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
}


def dumps(msg: Message) -> bytes:
    return json.dumps(json_format.MessageToDict(msg, preserving_proto_field_name=True),
                      separators=(",", ":")).encode()


def loads(raw: bytes | str | dict[str, Any], msg: Message) -> Message:
    """Fill ``msg`` from a JSON body (empty = the empty request); ParseError when malformed."""
    if isinstance(raw, dict):
        return json_format.ParseDict(raw, msg, ignore_unknown_fields=True)
    if raw.strip():
        json_format.Parse(raw, msg, ignore_unknown_fields=True)
    return msg


def error_body(code: grpc.StatusCode, message: str) -> bytes:
    """A unary call's error, as the gateway's errorBody."""
    return json.dumps({"error": message, "message": message, "code": code.value[0]},
                      separators=(",", ":")).encode()


def stream_error(code: grpc.StatusCode, message: str) -> bytes:
    """An error that ends a stream, as the gateway's streamError line."""
    status = HTTP_STATUS.get(code.name, 500)
    return json.dumps({"error": {"grpc_code": code.value[0], "http_code": status, "message": message,
                                 "http_status": _REASONS.get(status, "")}}, separators=(",", ":")).encode()


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            408: "Request Timeout", 409: "Conflict", 412: "Precondition Failed", 429: "Too Many Requests", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable", 504: "Gateway Timeout"}


async def objects(chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """JSON objects one after another in a request body (a client stream), as they arrive."""
    decoder = json.JSONDecoder()
    buf = ""
    async for chunk in chunks:
        buf += chunk.decode()
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = decoder.raw_decode(buf)
            except json.JSONDecodeError:
                break  # incomplete: wait for more
            buf = buf[end:]
            yield obj
    if buf.strip():
        raise ValueError(f"unexpected end of JSON input: {buf[:60]!r}")

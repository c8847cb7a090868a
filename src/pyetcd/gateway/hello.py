"""Which protocols a TLS client offers (ALPN), read from its ClientHello before any handshake.

gRPC clients offer only ``h2`` (grpc-go: etcdctl, clientv3) or ``grpc-exp``/``h2`` (grpc-core);
HTTP clients (curl, browsers, Go's net/http, requests) also offer ``http/1.1`` or no ALPN at all.
That is how the front tells a gRPC connection from an HTTP one without decrypting it.
"""

from __future__ import annotations

import struct

RECORD_HEADER = 5  # a TLS record: content type, version (2 bytes), length (2 bytes)
HANDSHAKE = 0x16  # the content type of handshake records
_CLIENT_HELLO = 0x01
_ALPN_EXTENSION = 16


def record_length(head: bytes) -> int | None:
    """Bytes the first TLS record spans (header included); None if ``head`` is not a TLS handshake."""
    if len(head) < RECORD_HEADER or head[0] != HANDSHAKE:
        return None
    return RECORD_HEADER + int.from_bytes(head[3:5], "big")


def offered_alpn(record: bytes) -> list[bytes]:
    """The ALPN protocol names of a ClientHello record; [] when none or when it cannot be read."""
    try:
        return _alpn(memoryview(record))
    except (IndexError, struct.error, ValueError):
        return []


def _alpn(rec: memoryview) -> list[bytes]:
    if record_length(bytes(rec[:RECORD_HEADER])) is None or rec[RECORD_HEADER] != _CLIENT_HELLO:
        return []
    pos = RECORD_HEADER + 4 + 2 + 32  # handshake header, client_version, random
    pos += 1 + rec[pos]  # session id
    pos += 2 + int.from_bytes(rec[pos:pos + 2], "big")  # cipher suites
    pos += 1 + rec[pos]  # compression methods
    end = pos + 2 + int.from_bytes(rec[pos:pos + 2], "big")
    pos += 2
    if end > len(rec):
        raise ValueError("truncated ClientHello")
    while pos + 4 <= end:
        kind, size = struct.unpack_from(">HH", rec, pos)
        pos += 4
        if kind == _ALPN_EXTENSION:
            names, p = [], pos + 2
            while p < pos + size:
                n = rec[p]
                names.append(bytes(rec[p + 1:p + 1 + n]))
                p += 1 + n
            return names
        pos += size
    return []


def is_grpc(alpn: list[bytes]) -> bool:
    return b"h2" in alpn and b"http/1.1" not in alpn

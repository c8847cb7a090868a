"""Hand-made TLS records: a server's hello flight and what may follow it, for the tests of the
front's refusal alert (gateway/tlsalert.py and its twin in gateway/_pump.c)."""

from __future__ import annotations

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23


def record(kind: int, body: bytes, version: bytes = b"\x03\x03") -> bytes:
    """One TLS record: content type, version, length, body."""
    return bytes([kind]) + version + len(body).to_bytes(2, "big") + body


# a TLS 1.2 server's flight up to ServerHelloDone: a ServerHello-sized record, then ServerHelloDone
HELLO_FLIGHT = record(HANDSHAKE, b"\x02" + b"h" * 300) + record(HANDSHAKE, b"\x0e\x00\x00\x00")
# what etcd sends a refused TLS 1.2 client: fatal (2) bad_certificate (42), TLS 1.2's version
BAD_CERTIFICATE_ALERT = b"\x15\x03\x03\x00\x02\x02\x2a"

"""The TLS alert grpc does not send: ``bad certificate`` to a client whose certificate it refused.

etcd answers a rejected client certificate with a fatal ``bad_certificate`` alert, so clients
print why they were refused. grpc's TLS handshaker drops the alert it wrote and just closes the
connection. The front relays gRPC connections byte for byte, so it sees the server's records go
by: if the server closes the connection after it sent its handshake flight (it had asked for a
certificate) and before its ChangeCipherSpec (its handshake never completed), the handshake was
refused after the client's certificate, and the front sends the alert on the server's behalf.

That is sound only while the server's records are not yet encrypted, which is TLS 1.2: there the
whole handshake up to ChangeCipherSpec is plaintext, and an alert in plaintext is what the server
would have sent. TLS 1.3 encrypts the rest of the handshake after ServerHello (its servers send
a compatibility ChangeCipherSpec right after it), so no alert is forged there: a refused TLS 1.3
client still sees only the close.
"""

from __future__ import annotations

from .hello import HANDSHAKE, RECORD_HEADER

ALERT = 21  # the content type of alert records
_FATAL = 2
BAD_CERTIFICATE = 42


def alert_record(version: bytes, description: int = BAD_CERTIFICATE) -> bytes:
    """A plaintext fatal alert record in the server's record ``version``."""
    return bytes([ALERT]) + version + (2).to_bytes(2, "big") + bytes([_FATAL, description])


class ServerRecords:
    """Follows the record headers of what the server sends, until its handshake completes."""

    def __init__(self) -> None:
        self._header = b""
        self._skip = 0  # bytes of the current record's body still to pass
        self.version = b""
        self.handshake_sent = False  # the server sent handshake records (its hello flight)
        self.settled = False  # ChangeCipherSpec, application data or an alert: nothing to add

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data) and not self.settled:
            if self._skip:
                step = min(self._skip, len(data) - pos)
                self._skip -= step
                pos += step
                continue
            take = RECORD_HEADER - len(self._header)
            self._header += data[pos:pos + take]
            pos += take
            if len(self._header) < RECORD_HEADER:
                return
            kind, self.version = self._header[0], self._header[1:3]
            self._skip = int.from_bytes(self._header[3:5], "big")
            self._header = b""
            if kind == HANDSHAKE:
                self.handshake_sent = True
            else:  # CCS (TLS 1.2 success, or TLS 1.3's encrypted rest), data, or the server's own alert
                self.settled = True

    def refusal_alert(self) -> bytes | None:
        """The alert to send if the server closes now: only mid-handshake, after its hello flight."""
        if self.settled or not self.handshake_sent:
            return None
        return alert_record(self.version)

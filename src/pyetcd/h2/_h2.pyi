"""Types of the native gRPC transport (h2/_h2.c)."""

OPEN: int
MSG: int
HALF: int
GONE: int
BIG: int
DRAINED: int
READY: int  # a call of ours: the server's HTTP/2 SETTINGS arrived
CLOSED: int  # a call of ours ended: (CLOSED, key, grpc-status or -1, grpc-message)
CLOSE: int  # an op's status: close a call of ours and its connection

class Transport:
    # listen_fd -1: calls of ours only; keepalive_ms: PING a call's silent connection, close it when
    # the PING goes unanswered for keepalive_timeout_ms (0: never)
    def __init__(self, listen_fd: int, max_recv: int, keepalive_ms: int = 0, keepalive_timeout_ms: int = 0) -> None: ...
    def start(self) -> None: ...
    def fileno(self) -> int: ...
    # (OPEN, key, path, metadata, peer) | (MSG, key, compressed, data) | (BIG, key, size) | (CLOSED, key, status, message) | (kind, key)
    def take(self) -> list[tuple]: ...  # type: ignore[type-arg]
    # direct: written from this thread when the HTTP/2 thread is idle (else queued for it)
    def send(self, ops: list[tuple[int, bytes, int, str | None, bool]], direct: bool = False) -> None: ...
    def call(self, fd: int, authority: str, path: str) -> int: ...
    def goaway(self) -> None: ...
    def close(self) -> None: ...

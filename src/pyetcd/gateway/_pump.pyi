"""Types of the native relay (gateway/_pump.c)."""

class Pump:
    """Relays pairs of connected sockets byte for byte on a native thread; len() is the open pairs."""

    def __init__(self, *, cert: str | None = None, key: str | None = None, ca: str = "",
                 verify_client: bool = False, identity_fd: int = -1) -> None:
        """``cert`` and ``key`` (with ``ca`` and ``verify_client``): end the clients' TLS
        (gateway/_tlsend.c), telling the member who each client is on ``identity_fd``."""
    def add(self, client: int, server: int, tls: bool = False, /) -> None:
        """Relay between two descriptors, which the pump owns from now on (closed even on error);
        ``tls``: send the client the alert of a TLS handshake the server refused (gateway/tlsalert.py)."""
    def close(self) -> None:
        """Close every relayed connection and stop the thread."""
    def __len__(self) -> int: ...

"""Types of the native relay (gateway/_pump.c)."""

class Pump:
    """Relays pairs of connected sockets byte for byte on a native thread; len() is the open pairs."""

    def __init__(self) -> None: ...
    def add(self, client: int, server: int, tls: bool = False, /) -> None:
        """Relay between two descriptors, which the pump owns from now on (closed even on error);
        ``tls``: send the client the alert of a TLS handshake the server refused (gateway/tlsalert.py)."""
    def close(self) -> None:
        """Close every relayed connection and stop the thread."""
    def __len__(self) -> int: ...

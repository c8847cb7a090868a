"""Types of the native relay (gateway/_pump.c)."""

class Pump:
    """Relays pairs of connected sockets byte for byte on a native thread; len() is the open pairs."""

    def __init__(self, *, cert: str | None = None, key: str | None = None, ca: str = "",
                 verify_client: bool = False, identity_fd: int = -1, connect: bool = False,
                 verify_server: bool = True) -> None:
        """``cert`` and ``key`` (with ``ca`` and ``verify_client``): end the clients' TLS
        (gateway/_tlsend.c), telling the member who each client is on ``identity_fd``.
        ``connect``: be the TLS client instead, our certificate shown if given, the server's
        checked against ``ca`` (or the system's CAs) unless ``verify_server`` is False."""
    def add(self, client: int, server: int, host: str | None = None, /) -> None:
        """Relay between two descriptors, which the pump owns from now on (closed even on error):
        ``client`` is the TLS side when the pump does TLS. ``host``: with ``connect``, the name
        or address the server's certificate must show."""
    def close(self) -> None:
        """Close every relayed connection and stop the thread."""
    def __len__(self) -> int: ...

"""Types of the native relay (gateway/_pump.c)."""

class Pump:
    """Relays pairs of connected sockets byte for byte on a native thread; len() is the open pairs."""

    def __init__(self) -> None: ...
    def add(self, a: int, b: int, /) -> None:
        """Relay between descriptors a and b; the pump owns them from now on (closed even on error)."""
    def close(self) -> None:
        """Close every relayed connection and stop the thread."""
    def __len__(self) -> int: ...

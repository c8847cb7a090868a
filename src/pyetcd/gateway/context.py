"""What a call that arrives over HTTP tells the handlers: the TLS peer's certificate as the
gRPC auth-context keys (the context itself is rpc/callcontext.py, shared with the native transport)."""

from __future__ import annotations

import ssl

from .identities import certificate_identity


def peer_identity(ssl_object: ssl.SSLObject | None) -> dict[str, list[bytes]]:
    """The gRPC auth-context keys the guard reads (client CN, PEM certificate) for a TLS peer."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return certificate_identity(der) if der else {}

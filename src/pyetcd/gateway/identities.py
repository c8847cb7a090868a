"""Who the clients are whose TLS the front ended (gateway/_tlsend.c), for the gRPC server behind it.

The front ends a client's TLS itself and relays plaintext to the member's private gRPC listener,
so grpc's auth context holds no certificate. Before any of a client's bytes reach that listener
the front sends the member the client's certificate with the name its private connection is
bound to, which grpc reports as the call's peer (``unix-abstract:<name>``). The guard's checks
(CN as user with --client-cert-auth, the CRL) read the same keys grpc would have given them.
A handshake the front refused is reported too, and logged as etcd logs a rejected connection.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

Identity = Mapping[str, list[bytes]]
PEER_PREFIX = "unix-abstract:"
LEARNED, FORGOTTEN, REFUSED = ord("I"), ord("G"), ord("R")  # the kinds of the front's messages
log = logging.getLogger("pyetcd.gateway")


def certificate_identity(der: bytes) -> dict[str, list[bytes]]:
    """The gRPC auth-context keys the guard reads (client CN, PEM certificate) for a certificate."""
    cert = x509.load_der_x509_certificate(der)
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    ident = {"x509_pem_cert": [ssl.DER_cert_to_PEM_cert(der).encode()]}
    if names:
        ident["x509_common_name"] = [str(names[0]).encode()]
    return ident


class RelayedIdentities:
    """Certificates of the front's TLS clients by their connection's peer name, as the front reports them."""

    def __init__(self) -> None:
        self._by_peer: dict[str, Identity] = {}
        # reads what the front sent and is not read yet (gateway/handover.py sets it)
        self.catch_up: Callable[[], None] = lambda: None

    def __len__(self) -> int:
        return len(self._by_peer)

    def message(self, msg: bytes) -> None:
        """One of the front's messages: kind, name length, name, and for LEARNED the DER
        certificate, for REFUSED the client's address and why."""
        kind, n = msg[0], msg[1]
        peer = PEER_PREFIX + msg[2:2 + n].decode()
        if kind == REFUSED:
            log.warning("rejected connection from %s", msg[2 + n:].decode(errors="replace"))
        elif kind == LEARNED:
            self._by_peer[peer] = certificate_identity(msg[2 + n:])
        elif kind == FORGOTTEN:
            self._by_peer.pop(peer, None)

    def forget_all(self) -> None:
        self._by_peer.clear()

    def of(self, context: Any) -> Identity:
        """The call's client identity: grpc's own when grpc ended TLS, else what the front said."""
        ident: Identity = context.auth_context()
        if "x509_pem_cert" in ident:
            return ident
        peer = context.peer()
        if not peer.startswith(PEER_PREFIX):
            return ident
        found = self._by_peer.get(peer)
        if found is None:
            # the front told us before it passed a byte on, but its message may still be unread
            self.catch_up()
            found = self._by_peer.get(peer, ident)
        return found

"""Certificate paths for members and clients, from pyetcd.tools.certs.write_certs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyetcd.tools.certs import write_certs


@dataclass(frozen=True)
class CertPaths:
    """The files write_certs produces: one CA, server/peer/client certificates and keys."""

    dir: Path
    ca: Path
    ca_key: Path
    server: Path
    server_key: Path
    peer: Path
    peer_key: Path
    client: Path
    client_key: Path

    @classmethod
    def create(cls, directory: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> CertPaths:
        """Write a fresh CA and certificates into directory (replacing any there)."""
        p = write_certs(directory, list(hosts), force=True)
        return cls(dir=Path(directory), ca=p["ca"], ca_key=p["ca-key"], server=p["server"],
                   server_key=p["server-key"], peer=p["peer"], peer_key=p["peer-key"],
                   client=p["client"], client_key=p["client-key"])

    def client_tls(self) -> ClientTLS:
        """What a well-behaved client presents: this CA and the client certificate."""
        return ClientTLS(ca=self.ca, cert=self.client, key=self.client_key)


@dataclass(frozen=True)
class ClientTLS:
    """TLS material for one client; cert/key None means the client presents no certificate."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

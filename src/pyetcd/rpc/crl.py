"""--client-crl-file: refuse calls from clients whose certificate the CRL revokes.

gRPC's Python TLS stack takes no revocation list, so the check runs per call on the peer
certificate gRPC hands us (parsed once per distinct certificate).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509


class RevocationCheck:
    def __init__(self, crl_file: str) -> None:
        raw = Path(crl_file).read_bytes()
        self.crl = x509.load_pem_x509_crl(raw) if b"-----BEGIN" in raw else x509.load_der_x509_crl(raw)
        self._seen: dict[bytes, bool] = {}

    def revoked(self, pem: bytes) -> bool:
        verdict = self._seen.get(pem)
        if verdict is None:
            serial = x509.load_pem_x509_certificate(pem).serial_number
            verdict = self.crl.get_revoked_certificate_by_serial_number(serial) is not None
            if len(self._seen) < 10_000:
                self._seen[pem] = verdict
        return verdict

    async def check(self, context: grpc.aio.ServicerContext[Any, Any], identity: Mapping[str, list[bytes]]) -> None:
        """Abort the call when the client's certificate (``identity``, as grpc's auth context) is revoked."""
        for pem in identity.get("x509_pem_cert", []):
            if self.revoked(pem):
                await context.abort(grpc.StatusCode.UNAVAILABLE, "tls: client certificate revoked")

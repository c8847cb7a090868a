"""The keys of ``--auth-token jwt,priv-key=...,pub-key=...`` as etcd loads them (auth/options.go):
PEM files; a public key may also be given as a certificate (jwt-go's ParseRSAPublicKeyFromPEM
accepts one); HMAC methods use the private key file's bytes as the secret. With only a
public key the member can verify tokens but not issue them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {what} {path!r}: {e.strerror}") from e


def _public(pem: bytes, path: str) -> Any:
    try:
        return serialization.load_pem_public_key(pem)
    except ValueError:
        pass
    try:
        return x509.load_pem_x509_certificate(pem).public_key()
    except ValueError as e:
        raise ValueError(f"pub-key {path!r} is neither a PEM public key nor a certificate") from e


def load_jwt_keys(method: str, priv_path: str | None, pub_path: str | None) -> tuple[Any, Any]:
    """(signing key or None, verifying key) for ``method``; ValueError saying what is wrong."""
    if method.startswith("HS"):
        if not priv_path:
            raise ValueError(f"sign-method {method} needs priv-key (the shared secret)")
        secret = _read(priv_path, "priv-key")
        return secret, secret
    kind = rsa.RSAPrivateKey if method[:2] in ("RS", "PS") else ec.EllipticCurvePrivateKey
    priv: Any = None
    pub: Any = None
    if priv_path:
        try:
            priv = serialization.load_pem_private_key(_read(priv_path, "priv-key"), password=None)
        except (ValueError, TypeError) as e:
            raise ValueError(f"priv-key {priv_path!r} is not an unencrypted PEM private key: {e}") from e
        if not isinstance(priv, kind):
            raise ValueError(f"priv-key {priv_path!r} does not fit sign-method {method}")
    if pub_path:
        pub = _public(_read(pub_path, "pub-key"), pub_path)
    if priv is None and pub is None:
        raise ValueError(f"sign-method {method} needs priv-key and/or pub-key")
    if priv is not None and pub is not None and priv.public_key().public_numbers() != pub.public_numbers():
        raise ValueError("pub-key does not match priv-key")
    return priv, pub if pub is not None else priv.public_key()

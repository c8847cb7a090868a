"""``--auth-token jwt,...`` on both servers: the same claims, the same refusals (a forged or an
expired token), and pyetcd's start refusing options etcd refuses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from pyetcd.auth.tokens import TokenConfig, make_token_provider, parse_token_options
from support import etcdctl, grpc_channel

PYETCD = str(Path(sys.executable).parent / "pyetcd")


def _keys(d: Path) -> tuple[rsa.RSAPrivateKey, Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv, pub = d / "jwt.key", d / "jwt.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, priv, pub


@pytest.mark.parametrize("kind", ["etcd", "pyetcd"])
def test_jwt_tokens_as_etcd_issues_and_checks_them(kind: str, member_factory: object, tmp_path: Path) -> None:
    key, priv, pub = _keys(tmp_path)
    opts = f"jwt,pub-key={pub},priv-key={priv},sign-method=RS256,ttl=3s"
    m = member_factory(kind, extra_args=["--auth-token", opts])  # type: ignore[operator]
    etcdctl(m, "user", "add", "root:rootpw")
    etcdctl(m, "auth", "enable")
    with grpc_channel(m) as ch:
        token = rpc_pb2_grpc.AuthStub(ch).Authenticate(
            rpc_pb2.AuthenticateRequest(name="root", password="rootpw")).token
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        claims = jwt.decode(token, key.public_key(), algorithms=["RS256"])
        assert set(claims) == {"username", "revision", "exp"} and claims["username"] == "root"
        assert 0 < claims["exp"] - time.time() <= 3
        kv = rpc_pb2_grpc.KVStub(ch)
        kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), metadata=[("token", token)])
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode({**claims, "exp": int(time.time()) + 60}, other, algorithm="RS256")
        expired_at = claims["exp"]
        for bad in (forged, "not-a-token"):
            with pytest.raises(grpc.RpcError) as e:
                kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"x"), metadata=[("token", bad)])
            assert e.value.details() == "etcdserver: invalid auth token"
        time.sleep(max(0.0, expired_at - time.time()) + 1.1)
        with pytest.raises(grpc.RpcError) as e:
            kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"y"), metadata=[("token", token)])
        assert e.value.details() == "etcdserver: invalid auth token"


def test_auth_token_options_parse_as_etcds(tmp_path: Path) -> None:
    assert parse_token_options("simple") == ("simple", {})
    assert parse_token_options("jwt,sign-method=RS256,ttl=1s") == ("jwt", {"sign-method": "RS256", "ttl": "1s"})
    for bad in ("jwt,ttl", "jwt,ttl=1s,ttl=2s", "paseto"):
        with pytest.raises(ValueError):
            parse_token_options(bad)
    _, priv, pub = _keys(tmp_path)
    verify_only = make_token_provider(TokenConfig("jwt", (("pub-key", str(pub)), ("sign-method", "RS256"))))
    assert verify_only.sign_key is None  # type: ignore[union-attr]
    cases = {f"jwt,priv-key={priv}": "sign-method", "jwt,sign-method=RS256": "priv-key",
             f"jwt,priv-key={tmp_path}/missing,sign-method=RS256": "cannot read",
             f"jwt,priv-key={pub},sign-method=RS256": "not an unencrypted PEM private key"}
    for opts, why in cases.items():
        res = subprocess.run([PYETCD, "--data-dir", str(tmp_path / "d"), "--auth-token", opts],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 1 and "--auth-token" in res.stderr and why in res.stderr, (opts, res.stderr)

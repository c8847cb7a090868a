"""etcd's auth tokens, chosen by ``--auth-token`` (auth/store.go NewTokenProvider).

``simple``: a random 16-letter prefix, a dot, and the raft index of the
Authenticate entry that issued it (auth/simple_token.go).

The proposer draws the prefix (so every member assigns the same token when it applies the
entry); each member then remembers token -> user. A token lives 5 minutes after its last use,
and all tokens die when auth is disabled, a user's when it is deleted or its password changes.
Expiry is checked lazily on use (plus a sweep on issue), which needs no timer task.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass

import jwt

from pyetcd import errors

from .jwtkeys import load_jwt_keys

LETTERS = string.ascii_lowercase + string.ascii_uppercase
PREFIX_LENGTH = 16
TOKEN_TTL = 300.0  # seconds, etcd's simpleTokenTTLDefault
_SWEEP_EVERY = 1024


def token_prefix() -> str:
    return "".join(secrets.choice(LETTERS) for _ in range(PREFIX_LENGTH))


class SimpleTokens:
    """token -> (user, expiry). Touched only on the event loop (apply hands changes over on publish)."""

    def __init__(self, ttl: float = TOKEN_TTL) -> None:
        self.ttl = ttl
        self._tokens: dict[str, tuple[str, float]] = {}
        self._issued = 0

    def assign(self, user: str, prefix: str, index: int) -> str:
        token = f"{prefix}.{index}"
        self._tokens[token] = (user, time.monotonic() + self.ttl)
        self._issued += 1
        if self._issued % _SWEEP_EVERY == 0:
            self._sweep()
        return token

    def user(self, token: str) -> str | None:
        """The user a live token belongs to (and its life starts over), else None."""
        entry = self._tokens.get(token)
        if entry is None:
            return None
        now = time.monotonic()
        if now > entry[1]:
            del self._tokens[token]
            return None
        self._tokens[token] = (entry[0], now + self.ttl)
        return entry[0]

    def issue(self, user: str, prefix: str, index: int, revision: int) -> str:
        """The token an applied Authenticate entry answers with (``assign`` remembers it on publish)."""
        return f"{prefix}.{index}"

    def info(self, token: str, revision: int) -> tuple[str, int] | None:
        """(user, auth revision) of a live token: a simple token is as current as the store."""
        user = self.user(token)
        return None if user is None else (user, revision)

    def invalidate_user(self, user: str) -> None:
        self._tokens = {t: e for t, e in self._tokens.items() if e[0] != user}

    def clear(self) -> None:
        self._tokens = {}

    def _sweep(self) -> None:
        now = time.monotonic()
        self._tokens = {t: e for t, e in self._tokens.items() if e[1] >= now}


JWT_TTL = 300.0  # seconds, etcd's jwt DefaultTTL


@dataclass(frozen=True)
class TokenConfig:
    """``--auth-token`` parsed: the type, its options, and a jwt ``ttl`` in seconds."""

    kind: str = "simple"
    options: tuple[tuple[str, str], ...] = ()
    jwt_ttl: float = JWT_TTL


def parse_token_options(opts: str) -> tuple[str, dict[str, str]]:
    """etcd's decomposeOpts: ``type,key=value,...`` with no duplicate or malformed pairs."""
    kind, *pairs = opts.split(",")
    out: dict[str, str] = {}
    for pair in pairs:
        parts = pair.split("=")
        if len(parts) != 2:
            raise ValueError(f"invalid token option {pair!r}: expected key=value")
        if parts[0] in out:
            raise ValueError(f"duplicated token option {parts[0]!r}")
        out[parts[0]] = parts[1]
    if kind not in ("simple", "jwt"):
        raise ValueError(f"unknown token type {kind!r}: expected 'simple' or 'jwt,...'")
    return kind, out


def make_token_provider(cfg: TokenConfig, simple_ttl: float = TOKEN_TTL) -> SimpleTokens | JWTTokens:
    """The provider ``--auth-token`` names; ValueError (naming the problem) when it cannot work."""
    if cfg.kind == "jwt":
        return JWTTokens(dict(cfg.options), cfg.jwt_ttl)
    return SimpleTokens(simple_ttl)


class JWTTokens:
    """etcd's ``jwt`` tokens (auth/jwt.go, auth/options.go): signed claims ``username``,
    ``revision`` (the auth revision when issued, checked like a simple token's) and ``exp``.
    Stateless: any member holding the key verifies them; nothing to remember or invalidate."""

    def __init__(self, options: dict[str, str], ttl: float = JWT_TTL) -> None:
        self.ttl = ttl
        method = options.get("sign-method", "")
        if method not in jwt.algorithms.get_default_algorithms() or method == "none":
            raise ValueError(f"invalid sign-method {method!r} (RS256, PS256, ES256, HS256, ...)")
        self.method = method
        self.sign_key, self.verify_key = load_jwt_keys(method, options.get("priv-key"), options.get("pub-key"))

    def issue(self, user: str, prefix: str, index: int, revision: int) -> str:
        if self.sign_key is None:
            raise errors.ErrAuthFailed()  # etcd: ErrVerifyOnly, a pub-key alone cannot sign
        claims = {"username": user, "revision": revision, "exp": int(time.time() + self.ttl)}
        return jwt.encode(claims, self.sign_key, algorithm=self.method)

    def info(self, token: str, revision: int) -> tuple[str, int] | None:
        try:
            claims = jwt.decode(token, self.verify_key, algorithms=[self.method])
            return str(claims["username"]), int(claims["revision"])
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
            return None

    def assign(self, user: str, prefix: str, index: int) -> str:
        return ""  # nothing to remember

    def user(self, token: str) -> str | None:
        found = self.info(token, 0)
        return None if found is None else found[0]

    def invalidate_user(self, user: str) -> None:
        pass  # a signed token cannot be revoked before it expires (etcd's behaviour)

    def clear(self) -> None:
        pass

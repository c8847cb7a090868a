"""etcd's ``simple`` auth tokens: a random 16-letter prefix, a dot, and the raft index of the
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

    def invalidate_user(self, user: str) -> None:
        self._tokens = {t: e for t, e in self._tokens.items() if e[0] != user}

    def clear(self) -> None:
        self._tokens = {}

    def _sweep(self) -> None:
        now = time.monotonic()
        self._tokens = {t: e for t, e in self._tokens.items() if e[1] >= now}

"""Passwords as etcd keeps them: bcrypt hashes, checked before an Authenticate is proposed."""

from __future__ import annotations

import bcrypt

from pyetcd import errors

from .state import AuthState

BCRYPT_COST = 10  # etcd's default --bcrypt-cost (bcrypt.DefaultCost)
# bcrypt reads at most 72 bytes of a password. Go's bcrypt, in the etcd 3.4 we compare with,
# uses the first 72 and ignores the rest; Python's refuses longer ones (ValueError). Do as etcd.
BCRYPT_MAX_BYTES = 72


def _bcrypt_input(password: str) -> bytes:
    return password.encode()[:BCRYPT_MAX_BYTES]


def hash_password(password: str, cost: int = BCRYPT_COST) -> str:
    """A bcrypt hash in Go's ``$2a$`` form, so a data dir's hashes read like etcd's."""
    return bcrypt.hashpw(_bcrypt_input(password), bcrypt.gensalt(cost, prefix=b"2a")).decode()


def check_password(st: AuthState, name: str, password: str) -> int:
    """The auth revision the password was checked at (etcd's CheckPassword). Slow (bcrypt):
    run it off the event loop, on a published snapshot."""
    if not st.enabled:
        raise errors.ErrAuthNotEnabled()
    user = st.users.get(name)
    if user is None or user.options.no_password:
        raise errors.ErrAuthFailed()
    try:
        ok = bcrypt.checkpw(_bcrypt_input(password), user.password)
    except ValueError:
        ok = False
    if not ok:
        raise errors.ErrAuthFailed()
    return st.revision

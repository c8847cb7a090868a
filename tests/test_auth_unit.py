"""Range permissions and the auth state's checks, in process: etcd's interval semantics
(single keys, ranges, prefixes, "\\0" = from key on) and its order of errors."""

from __future__ import annotations

import pytest

from pyetcd import errors
from pyetcd.api import auth_pb2
from pyetcd.auth.context import AuthInfo
from pyetcd.auth.passwords import hash_password
from pyetcd.auth.perms import READ, READWRITE, WRITE, RangeSet, UserPerms
from pyetcd.auth.state import AuthState
from pyetcd.auth.tokens import SimpleTokens, token_prefix


def perm(kind: int, key: bytes, end: bytes = b"") -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=kind, key=key, range_end=end)  # type: ignore[arg-type]


def role(name: str, *perms: auth_pb2.Permission) -> auth_pb2.Role:
    return auth_pb2.Role(name=name.encode(), keyPermission=perms)


def test_union_covers_only_whole_requests() -> None:
    s = RangeSet.of([(b"a", b"c"), (b"c", b"e"), (b"x", None), (b"m", b"n")])
    assert s.starts == (b"a", b"m", b"x")  # adjacent intervals merge
    assert s.covers((b"a", b"e")) and s.covers((b"b", b"d"))
    assert not s.covers((b"a", b"f")) and not s.covers((b"0", b"b"))
    assert s.covers((b"x", None)) and s.covers((b"zzz", None)) and not s.covers((b"w", None))
    assert not s.covers((b"e", b"e\0")) and s.covers((b"m", b"m\0"))
    assert not RangeSet.of([]).covers((b"a", b"b"))


def test_merged_user_permissions() -> None:
    p = UserPerms.merge([
        role("r1", perm(READ, b"foo"), perm(WRITE, b"k1", b"k5")),
        role("r2", perm(READWRITE, b"pre/", b"pre0"), perm(READ, b"z", b"\0")),
    ])
    assert p.allows(b"foo", b"", READ) and not p.allows(b"foo", b"", WRITE)
    assert not p.allows(b"foo", b"fop", READ)  # a range, even a tiny one, is more than one key
    assert p.allows(b"k1", b"k5", WRITE) and not p.allows(b"k1", b"k6", WRITE)
    assert p.allows(b"pre/x", b"", READ) and p.allows(b"pre/", b"pre0", WRITE)
    assert p.allows(b"zz", b"\0", READ) and not p.allows(b"y", b"\0", READ)


def test_check_order_like_etcd() -> None:
    users = {"root": auth_pb2.User(name=b"root", roles=["root"]), "u": auth_pb2.User(name=b"u", roles=["r"])}
    st = AuthState(enabled=True, revision=3).with_changes(users, {"r": role("r", perm(READ, b"a"))})
    st.check_op(AuthInfo("root", 3), b"any", b"\0", WRITE)
    st.check_op(AuthInfo("u", 4), b"a", b"", READ)
    with pytest.raises(errors.ErrUserEmpty):
        st.check_op(AuthInfo(), b"a", b"", READ)
    with pytest.raises(errors.ErrAuthOldRevision):
        st.check_op(AuthInfo("u", 2), b"a", b"", READ)
    with pytest.raises(errors.ErrPermissionDenied):
        st.check_op(AuthInfo("ghost", 3), b"a", b"", READ)
    with pytest.raises(errors.ErrPermissionDenied):
        st.check_op(AuthInfo("u", 3), b"a", b"", WRITE)
    with pytest.raises(errors.ErrUserNotFound):
        st.check_admin(AuthInfo("ghost", 3))
    with pytest.raises(errors.ErrPermissionDenied):
        st.check_admin(AuthInfo("u", 3))
    st.check_admin(AuthInfo("root", 1))  # admin checks do not look at the revision
    AuthState(enabled=False).check_op(AuthInfo(), b"a", b"", WRITE)  # auth off: everything goes


def test_simple_tokens_expire_and_die_with_their_user() -> None:
    prefix = token_prefix()
    assert len(prefix) == 16 and prefix.isalpha()
    t = SimpleTokens(ttl=0.0)
    tok = t.assign("u", prefix, 7)
    assert tok == f"{prefix}.7"
    assert t.user(tok) is None  # expired at once
    t = SimpleTokens()
    a, b = t.assign("u", "p", 1), t.assign("v", "p", 2)
    t.invalidate_user("u")
    assert t.user(a) is None and t.user(b) == "v"
    t.clear()
    assert t.user(b) is None


def test_bcrypt_cost_and_token_ttl_flags() -> None:
    from pyetcd.cli.flags import resolve, to_config

    default = to_config(resolve([], {}).values)
    assert (default.bcrypt_cost, default.auth_token_ttl) == (10, 300)
    cfg = to_config(resolve(["--bcrypt-cost", "4"], {"ETCD_AUTH_TOKEN_TTL": "2"}).values)
    assert (cfg.bcrypt_cost, cfg.auth_token_ttl) == (4, 2)
    assert to_config(resolve(["--bcrypt-cost", "99"], {}).values).bcrypt_cost == 10  # out of range: etcd's default
    assert hash_password("pw", 4).startswith("$2a$04$")  # Go's bcrypt form, as etcd stores it

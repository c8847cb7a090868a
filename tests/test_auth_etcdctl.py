"""Auth with the real etcdctl 3.4, side by side: real etcd and pyetcd must answer alike.

One scenario walks etcd's auth guide on both servers (users, roles, permissions over single
keys, ranges, prefixes and from-key; enable; operations as root, as a limited user, as the
client certificate's CN, with a wrong password; the root rules; password change; disable).
Every command's exit status, stdout and stderr must match once ids and ports are masked, and
checks on pyetcd's own output keep the comparison from passing on two broken outputs.
"""

from __future__ import annotations

import subprocess

import pytest

from support import Member, etcdctl
from support.masks import mask


def errors_only(stderr: str) -> str:
    """etcdctl's error lines, without clientv3's JSON retry logs (timestamps, targets)."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not line.startswith('{"level"'))


def run(m: Member, *args: str, user: str | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = [f"--user={user}"] if user else []
    return etcdctl(m, *extra, *args, input=input, check=False)


class Pair:
    """Run each command on real etcd, then pyetcd; the masked results must be identical."""

    def __init__(self, real: Member, py: Member) -> None:
        self.real, self.py = real, py

    def __call__(self, *args: str, user: str | None = None, input: str | None = None,
                 ok: bool = True) -> str:
        a = run(self.real, *args, user=user, input=input)
        b = run(self.py, *args, user=user, input=input)
        what = f"etcdctl {user or ''} {' '.join(args)}"
        assert (b.returncode == 0) == (a.returncode == 0), f"{what}: real {a!r} pyetcd {b!r}"
        assert mask(b.stdout) == mask(a.stdout), what
        assert mask(errors_only(b.stderr)) == mask(errors_only(a.stderr)), what
        assert (b.returncode == 0) == ok, f"{what}: {b!r}"
        return b.stdout + errors_only(b.stderr)


@pytest.fixture
def pair(member_factory: object) -> Pair:
    return Pair(member_factory("etcd", name="m-etcd"), member_factory("pyetcd", name="m-pyet"))  # type: ignore[operator]


DENIED = "Error: etcdserver: permission denied\n"
ROOT = "root:rootpw"


def test_users_roles_and_permissions_like_etcd(pair: Pair) -> None:
    # before auth: the management API works for anyone
    assert pair("auth", "enable", ok=False) == "Error: etcdserver: root user does not exist\n"
    assert pair("user", "add", "root", "--new-user-password=rootpw") == "User root created\n"
    assert pair("user", "add", "root", "--new-user-password=x", ok=False).endswith("user name already exists\n")
    assert pair("role", "add", "root") == "Role root created\n"
    assert pair("user", "grant-role", "root", "root") == "Role root is granted to user root\n"
    assert pair("user", "add", "alice", "--new-user-password=alicepw") == "User alice created\n"
    pair("user", "add", "bob", "--new-user-password=bobpw")
    pair("role", "add", "reader")
    pair("role", "add", "reader", ok=False)
    assert pair("role", "grant-permission", "reader", "read", "foo") == "Role reader updated\n"
    pair("role", "grant-permission", "reader", "readwrite", "--prefix=true", "pre/")
    pair("role", "grant-permission", "reader", "write", "k1", "k5")
    pair("role", "grant-permission", "reader", "read", "--from-key", "z")
    pair("role", "grant-permission", "nosuch", "read", "foo", ok=False)
    out = pair("role", "get", "reader")
    assert "[pre/, pre0) (prefix pre/)" in out and "KV Write:" in out
    pair("user", "grant-role", "alice", "reader")
    pair("user", "grant-role", "alice", "nosuch", ok=False)
    assert pair("user", "get", "alice") == "User: alice\nRoles: reader\n"
    pair("user", "get", "nobody", ok=False)
    assert pair("user", "list") == "alice\nbob\nroot\n"
    assert pair("role", "list") == "reader\nroot\n"

    assert pair("auth", "enable") == "Authentication Enabled\n"
    assert pair("put", "foo", "bar", user=ROOT) == "OK\n"
    pair("put", "pre/a", "1", user=ROOT)
    pair("put", "zz", "2", user=ROOT)
    # alice: read foo, read-write pre/*, write [k1, k5), read from z on
    assert pair("get", "foo", user="alice:alicepw") == "foo\nbar\n"
    assert pair("put", "foo", "x", user="alice:alicepw", ok=False) == DENIED
    pair("put", "pre/b", "3", user="alice:alicepw")
    assert pair("get", "--prefix", "pre/", user="alice:alicepw") == "pre/a\n1\npre/b\n3\n"
    pair("get", "--prefix", "pre", user="alice:alicepw", ok=False)
    pair("put", "k3", "v", user="alice:alicepw")
    pair("put", "k5", "v", user="alice:alicepw", ok=False)
    pair("del", "k1", "k5", user="alice:alicepw")
    pair("del", "--prev-kv", "k1", "k5", user="alice:alicepw", ok=False)  # needs read as well
    pair("get", "--from-key", "zz", user="alice:alicepw")
    pair("get", "--from-key", "y", user="alice:alicepw", ok=False)
    pair("txn", user="alice:alicepw", input='value("foo") = "bar"\n\nput pre/c 4\n\nget pre/c\n\n')
    pair("txn", user="alice:alicepw", ok=False, input='value("foo") = "bar"\n\nput foo 6\n\n\n')
    assert pair("get", "foo", user="bob:bobpw", ok=False) == DENIED
    assert pair("get", "foo", user="alice:wrong", ok=False) == \
        "Error: etcdserver: authentication failed, invalid user ID or password\n"
    # no --user: the client certificate's CN ("client") is the user, and it does not exist
    assert pair("get", "foo", ok=False) == DENIED
    assert pair("user", "list", ok=False) == "Error: etcdserver: user name not found\n"
    # administration needs root
    pair("user", "list", user="alice:alicepw", ok=False)
    pair("user", "get", "alice", user="alice:alicepw")  # one's own record
    pair("role", "get", "reader", user="alice:alicepw")  # one's own roles
    pair("role", "get", "root", user="alice:alicepw", ok=False)
    pair("role", "add", "x", user="alice:alicepw", ok=False)
    # root rules while enabled
    assert pair("user", "delete", "root", user=ROOT, ok=False) == "Error: etcdserver: invalid auth management\n"
    pair("user", "revoke-role", "root", "root", user=ROOT, ok=False)
    pair("role", "delete", "root", user=ROOT, ok=False)
    # the CN becomes a user: then it needs no password at all
    pair("user", "add", "client", "--new-user-password=c", user=ROOT)
    pair("user", "grant-role", "client", "reader", user=ROOT)
    assert pair("get", "foo") == "foo\nbar\n"
    pair("put", "foo", "y", ok=False)
    # changes and revocations take effect at once
    assert pair("role", "revoke-permission", "reader", "foo", user=ROOT) == \
        "Permission of key foo is revoked from role reader\n"
    pair("role", "revoke-permission", "reader", "foo", user=ROOT, ok=False)
    pair("get", "foo", user="alice:alicepw", ok=False)
    assert pair("user", "revoke-role", "alice", "reader", user=ROOT) == "Role reader is revoked from user alice\n"
    pair("user", "revoke-role", "alice", "reader", user=ROOT, ok=False)
    pair("get", "--prefix", "pre/", user="alice:alicepw", ok=False)
    pair("user", "passwd", "alice", "--interactive=false", user=ROOT, input="newpw\n")
    pair("get", "pre/a", user="alice:alicepw", ok=False)
    pair("user", "grant-role", "alice", "reader", user=ROOT)
    assert pair("get", "pre/a", user="alice:newpw") == "pre/a\n1\n"
    assert pair("role", "delete", "reader", user=ROOT) == "Role reader deleted\n"
    assert pair("user", "get", "alice", user=ROOT) == "User: alice\nRoles:\n"
    assert pair("user", "delete", "bob", user=ROOT) == "User bob deleted\n"
    pair("auth", "disable", user="alice:newpw", ok=False)
    assert pair("auth", "disable", user=ROOT) == "Authentication Disabled\n"
    assert pair("get", "foo") == "foo\nbar\n"
    assert pair("user", "delete", "root") == "User root deleted\n"

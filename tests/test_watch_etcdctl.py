"""Watch through the real etcdctl 3.4, against real etcd and pyetcd: the printed output must be
exactly what real etcd makes etcdctl print (the expected strings below pass on both).

A live watch (no --rev) is started, then given a moment to reach the server before the writes;
--rev watches replay history and need no such wait.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from support import ETCDCTL_BIN, SERVER_KINDS, Member, etcdctl

SETTLE = 1.0  # time for a live watch to be created before the writes start


def _argv(m: Member, *args: str) -> list[str]:
    tls = m.client_tls()
    return [ETCDCTL_BIN, f"--endpoints={m.client_url}", f"--cacert={tls.ca}", f"--cert={tls.cert}",
            f"--key={tls.key}", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


def watch_output(m: Member, args: list[str], writes: Callable[[], None], want_lines: int,
                 stdin: str | None = None, live: bool = True, timeout: float = 15.0) -> tuple[str, str, int | None]:
    """Run ``etcdctl watch args``, do ``writes``, return (stdout, stderr, exit code or None if it was still running)."""
    proc = subprocess.Popen(_argv(m, "watch", *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    code = None
    try:
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.flush()
        if live:
            time.sleep(SETTLE)
        writes()
        deadline = time.monotonic() + timeout
        while sum(x.count("\n") for x in lines) < want_lines and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # anything extra would show up now
    finally:
        code = proc.poll()
        if code is None:
            proc.terminate()
        _, err = proc.communicate(timeout=10)
        reader.join(5)
    return "".join(lines), err, code


def put(m: Member, key: str, value: str) -> None:
    etcdctl(m, "put", key, value)


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_watch_key(member_factory: Callable[..., Member], kind: str) -> None:
    m = member_factory(kind)

    def writes() -> None:
        put(m, "foo", "bar")
        put(m, "foob", "not watched")
        put(m, "foo", "baz")
        etcdctl(m, "del", "foo")

    out, _, _ = watch_output(m, ["foo"], writes, 8)
    assert out == "PUT\nfoo\nbar\nPUT\nfoo\nbaz\nDELETE\nfoo\n\n"


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_watch_prefix_and_range(member_factory: Callable[..., Member], kind: str) -> None:
    m = member_factory(kind)

    def writes() -> None:
        for k, v in [("key1", "val1"), ("other", "x"), ("key3", "val3"), ("key2", "val2")]:
            put(m, k, v)
        etcdctl(m, "del", "key", "--prefix")

    out, _, _ = watch_output(m, ["key", "--prefix"], writes, 18)
    assert out == ("PUT\nkey1\nval1\nPUT\nkey3\nval3\nPUT\nkey2\nval2\n"
                   "DELETE\nkey1\n\nDELETE\nkey2\n\nDELETE\nkey3\n\n")
    # a range [key1, key3) replayed from revision 1: key3 is outside it
    out, _, _ = watch_output(m, ["key1", "key3", "--rev=1"], lambda: None, 12, live=False)
    assert out == "PUT\nkey1\nval1\nPUT\nkey2\nval2\nDELETE\nkey1\n\nDELETE\nkey2\n\n"


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_watch_rev_replays_history(member_factory: Callable[..., Member], kind: str) -> None:
    m = member_factory(kind)
    for i in (1, 2, 3):
        put(m, "etcd", f"revision_{i}")
    out, _, _ = watch_output(m, ["etcd", "--rev=3"], lambda: None, 6, live=False)
    assert out == "PUT\netcd\nrevision_2\nPUT\netcd\nrevision_3\n"
    # a future revision waits for it
    out, _, _ = watch_output(m, ["etcd", "--rev=6"], lambda: [put(m, "etcd", f"later_{i}") for i in (4, 5, 6)],
                             6, live=False)
    assert out == "PUT\netcd\nlater_5\nPUT\netcd\nlater_6\n"


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_watch_prev_kv(member_factory: Callable[..., Member], kind: str) -> None:
    m = member_factory(kind)
    put(m, "a", "1")

    def writes() -> None:
        put(m, "a", "2")
        etcdctl(m, "del", "a")
        put(m, "a", "3")

    out, _, _ = watch_output(m, ["a", "--prev-kv"], writes, 12)
    assert out == "PUT\na\n1\na\n2\nDELETE\na\n2\na\n\nPUT\na\n3\n"


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_watch_compacted_revision(member_factory: Callable[..., Member], kind: str) -> None:
    m = member_factory(kind)
    for i in range(5):
        put(m, "c", str(i))
    etcdctl(m, "compact", "4")
    out, err, code = watch_output(m, ["c", "--rev=2"], lambda: None, 1, live=False, timeout=5)
    assert out == ""
    assert "watch was canceled (etcdserver: mvcc: required revision has been compacted)" in err
    assert code == 4 or "watch is canceled by the server" in err
    out, _, _ = watch_output(m, ["c", "--rev=4"], lambda: None, 6, live=False)
    assert out == "PUT\nc\n2\nPUT\nc\n3\nPUT\nc\n4\n"  # revisions 4, 5, 6: 4 is kept by the compaction


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_watch_exec_command(member_factory: Callable[..., Member], kind: str) -> None:
    m = member_factory(kind)
    put(m, "x", "one")
    script = 'echo "got $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY=$ETCD_WATCH_VALUE at $ETCD_WATCH_REVISION"'
    out, _, _ = watch_output(m, ["x", "--rev=2", "--", "sh", "-c", script], lambda: put(m, "x", "two"), 8)
    assert out == ('PUT\nx\none\ngot "PUT" "x"="one" at 2\n'
                   'PUT\nx\ntwo\ngot "PUT" "x"="two" at 3\n')


@pytest.mark.parametrize("kind", SERVER_KINDS)
def test_watch_interactive(member_factory: Callable[..., Member], kind: str) -> None:
    m = member_factory(kind)
    put(m, "i1", "old")

    def writes() -> None:
        put(m, "i1", "new")
        put(m, "i2/x", "p")

    out, _, _ = watch_output(m, ["-i"], writes, 9, stdin="watch i1 --rev=2\nwatch i2 --prefix\n")
    assert out == "PUT\ni1\nold\nPUT\ni1\nnew\nPUT\ni2/x\np\n"
    # progress on a stream whose watchers are synced: the current revision
    out, _, _ = watch_output(m, ["-i"], lambda: None, 1, stdin="watch i1\nprogress\n")
    assert out == "progress notify: 4\n"

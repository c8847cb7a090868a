"""support.proxy.FaultProxy on real sockets: pass-through (TLS included), cut, blackhole, delay, drop, heal."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from support.procstat import socket_owner
from support.proxy import FORWARD, FaultProxy
from support.tls import CertPaths


def _serve(sock: socket.socket, wrap: ssl.SSLContext | None) -> None:
    """Echo server: each connection echoes what it receives, on its own thread."""
    def echo(conn: socket.socket) -> None:
        try:
            if wrap is not None:
                conn = wrap.wrap_socket(conn, server_side=True)
            while data := conn.recv(4096):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    sock = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve, args=(sock, None), daemon=True).start()
    yield sock.getsockname()[:2]
    sock.close()


@pytest.fixture
def proxy(echo_server: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(echo_server, seed=1) as p:
        yield p


def _roundtrip(p: FaultProxy, payload: bytes = b"ping", timeout: float = 2.0) -> bytes:
    """What came back for payload; b"" when the connection was closed or reset on the way."""
    got = b""
    try:
        with socket.create_connection(p.address, timeout=timeout) as s:
            s.sendall(payload)
            while len(got) < len(payload):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    return got


def test_bytes_pass_through_until_cut_then_heal(proxy: FaultProxy) -> None:
    assert _roundtrip(proxy) == b"ping"
    held = socket.create_connection(proxy.address, timeout=2)
    held.sendall(b"x")
    assert held.recv(1) == b"x"
    proxy.cut()
    assert held.recv(1) == b""  # the open connection was closed by the partition
    held.close()
    assert _roundtrip(proxy) == b""  # and new ones are closed at accept
    proxy.heal()
    assert _roundtrip(proxy) == b"ping"


def test_blackhole_keeps_the_connection_but_delivers_nothing(proxy: FaultProxy) -> None:
    proxy.blackhole(FORWARD)
    with socket.create_connection(proxy.address, timeout=0.5) as s:
        s.sendall(b"lost")
        with pytest.raises(TimeoutError):
            s.recv(4)
    proxy.heal()
    assert _roundtrip(proxy) == b"ping"


def test_delay_adds_latency_each_way(proxy: FaultProxy) -> None:
    start = time.monotonic()
    assert _roundtrip(proxy) == b"ping"
    fast = time.monotonic() - start
    proxy.delay(0.15)
    start = time.monotonic()
    assert _roundtrip(proxy) == b"ping"
    assert time.monotonic() - start >= 0.3 > fast


def test_drop_resets_connections(proxy: FaultProxy) -> None:
    proxy.drop(1.0)
    assert _roundtrip(proxy) == b""
    proxy.heal()
    assert _roundtrip(proxy) == b"ping"


def test_tls_passes_through_end_to_end(certs: CertPaths) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs.peer, certs.peer_key)
    sock = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve, args=(sock, server_ctx), daemon=True).start()
    client_ctx = ssl.create_default_context(cafile=str(certs.ca))
    try:
        with FaultProxy(sock.getsockname()[:2]) as p, socket.create_connection(p.address, timeout=3) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"over tls")
            assert s.recv(64) == b"over tls"
            assert s.getpeercert() is not None  # the server's own certificate, verified through the proxy
    finally:
        sock.close()


def test_cut_from_partitions_one_source_and_socket_owner_names_it(echo_server: tuple[str, int]) -> None:
    """Connections are told apart by who dialled them (here: this process, found through /proc, and
    a source not listed); cut_from closes and refuses only the named source's connections."""
    me = {os.getpid(): "me"}
    with FaultProxy(echo_server, identify=lambda port, ours: socket_owner(port, ours, me)) as p:
        held = socket.create_connection(p.address, timeout=2)
        held.sendall(b"x")
        assert held.recv(1) == b"x"
        p.cut_from({"someone else"})
        assert _roundtrip(p) == b"ping"
        held.sendall(b"y")
        assert held.recv(1) == b"y"  # still open: not from the cut source
        p.cut_from({"me"})
        assert held.recv(1) == b""  # closed: this process dialled it
        held.close()
        assert _roundtrip(p) == b""  # and refused at accept
        p.heal()
        assert _roundtrip(p) == b"ping"
    with FaultProxy(echo_server, identify=lambda port, ours: socket_owner(port, ours, {1: "init"})) as p:
        p.cut_from({"init"})
        assert _roundtrip(p) == b"ping"  # pid 1 holds no such socket: unknown sources pass

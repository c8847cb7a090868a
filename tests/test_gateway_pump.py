"""The native relay of the client-port front (gateway/_pump.c) over real sockets.

Each pair is what the front relays: a TCP connection a client made (its accepted end given to
the pump) and a unix socket to the "gRPC server" (here the test's own end of a socketpair).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from pyetcd.gateway import front
from pyetcd.gateway._pump import Pump
from support.polling import wait_until
from support.ports import free_port
from support.stall import expected, send_until_stalled


@pytest.fixture
def pump() -> Iterator[Pump]:
    p = Pump()
    yield p
    p.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", free_port())) as srv:
        yield srv


def relayed(pump: Pump, listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """(client, server): a TCP client and the unix end the pump relays it to."""
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    ours, theirs = socket.socketpair()
    pump.add(accepted.detach(), theirs.detach())
    client.settimeout(10)
    ours.settimeout(10)
    return client, ours


def recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(1 << 16):
        chunks.append(data)
    return b"".join(chunks)


def test_large_transfers_both_ways_at_once_then_half_close(pump: Pump, listener: socket.socket) -> None:
    client, server = relayed(pump, listener)
    up, down = os.urandom(24 << 20), os.urandom(24 << 20)
    got: dict[str, bytes] = {}

    def send_then_shut(sock: socket.socket, data: bytes) -> None:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # the pump passes the end on; the other way stays open

    def receive(name: str, sock: socket.socket) -> None:
        got[name] = recv_all(sock)

    threads = [threading.Thread(target=send_then_shut, args=(client, up)),
               threading.Thread(target=send_then_shut, args=(server, down)),
               threading.Thread(target=receive, args=("server", server)),
               threading.Thread(target=receive, args=("client", client))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert hashlib.sha256(got["server"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got["client"]).digest() == hashlib.sha256(down).digest()
    wait_until(lambda: len(pump) == 0)  # both ways ended: the pump closed the pair
    client.close()
    server.close()


def test_half_close_keeps_the_other_direction(pump: Pump, listener: socket.socket) -> None:
    client, server = relayed(pump, listener)
    client.sendall(b"request")
    client.shutdown(socket.SHUT_WR)
    assert recv_all(server) == b"request"  # end of stream passed on
    time.sleep(0.1)
    server.sendall(b"answer after the client's end")
    assert client.recv(100) == b"answer after the client's end"
    assert len(pump) == 1
    server.close()
    assert client.recv(100) == b""
    wait_until(lambda: len(pump) == 0)
    client.close()


@pytest.mark.parametrize("reset", [True, False], ids=["client resets", "server closes"])
def test_one_side_going_away_closes_the_other(pump: Pump, listener: socket.socket, reset: bool) -> None:
    client, server = relayed(pump, listener)
    gone, other = (client, server) if reset else (server, client)
    gone.sendall(b"last words")
    if reset:  # a reset may drop what was not relayed yet: let it arrive first
        assert other.recv(100) == b"last words"
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    gone.close()  # a server closing right after it sent: what it sent still arrives
    assert recv_all(other) == (b"" if reset else b"last words")
    wait_until(lambda: len(pump) == 0)
    other.close()


def test_back_pressure_bounds_what_the_pump_holds(pump: Pump, listener: socket.socket) -> None:
    client, server = relayed(pump, listener)
    sent = send_until_stalled(client)
    # the server side read nothing: all that was sent sits in the socket buffers and the
    # pump's one held read, not in an ever-growing buffer
    assert sent < 32 << 20
    client.shutdown(socket.SHUT_WR)
    received = recv_all(server)
    assert hashlib.sha256(received).digest() == hashlib.sha256(expected(sent)).digest()
    client.close()
    server.close()


def test_many_connections(pump: Pump, listener: socket.socket) -> None:
    pairs = [relayed(pump, listener) for _ in range(300)]
    assert len(pump) == 300
    for i, (client, _) in enumerate(pairs):
        client.sendall(b"ping %d" % i)
    for i, (_, server) in enumerate(pairs):
        assert server.recv(100) == b"ping %d" % i
        server.sendall(b"pong %d" % i)
    for i, (client, _) in enumerate(pairs):
        assert client.recv(100) == b"pong %d" % i
    for client, server in pairs:
        client.close()
        assert server.recv(100) == b""
        server.close()
    wait_until(lambda: len(pump) == 0)


def test_close_ends_every_connection_and_refuses_more(listener: socket.socket) -> None:
    pump = Pump()
    pairs = [relayed(pump, listener) for _ in range(5)]
    pump.close()
    for client, server in pairs:
        assert client.recv(100) == b""
        assert server.recv(100) == b""
        client.close()
        server.close()
    a, b = socket.socketpair()
    fd = a.detach()
    with pytest.raises(ValueError, match="closed"):
        pump.add(fd, b.detach())
    with pytest.raises(OSError):  # given to the pump, so closed even though add failed
        os.fstat(fd)


@pytest.mark.parametrize("native", [True, False], ids=["pump", "python-relay"])
def test_the_front_relays_grpc_and_its_stop_closes_the_connection(native: bool) -> None:
    """gateway/front.py with a stand-in gRPC listener (an echo server on its abstract socket):
    an HTTP/2 preface is relayed both ways, HTTP goes to on_http, Front.stop ends the relay."""

    async def main() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
            writer.close()

        backend = front.backend_name()
        server = await asyncio.start_unix_server(echo, path="\0" + backend)
        handed: asyncio.Queue[socket.socket] = asyncio.Queue()

        async def on_http(conn: socket.socket) -> None:
            await handed.put(conn)

        f = front.Front(front.bind("127.0.0.1", free_port()), False, backend, on_http, native)
        f.start()
        assert (f._pump is not None) == native
        addr = f.sock.getsockname()
        reader, writer = await asyncio.open_connection(*addr)
        message = front.PREFACE + os.urandom(1 << 20)
        writer.write(message)
        assert await asyncio.wait_for(reader.readexactly(len(message)), 10) == message

        _, http_writer = await asyncio.open_connection(*addr)
        http_writer.write(b"GET /health HTTP/1.1\r\n\r\n")
        conn = await asyncio.wait_for(handed.get(), 10)
        assert conn.recv(100, socket.MSG_PEEK).startswith(b"GET /health")  # handed over unread
        conn.close()
        http_writer.close()

        await f.stop()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the relayed connection was closed
        writer.close()
        f.sock.close()
        server.close()

    asyncio.run(main())

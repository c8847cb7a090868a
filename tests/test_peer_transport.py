"""The native peer transport: raft message streams made by h2/_h2.c's client calls, their TLS
done by the pump in connect mode (transport/links.py), and the peer port served natively
(transport/peerserver.py), over real sockets.

The streams are checked against grpc.aio's server, so what they put on the wire is the gRPC any
server takes; the cluster tests check the native server against grpc.aio's streams and the
identity path behind --peer-cert-allowed-cn.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from pyetcd.api import peer_pb2, peer_pb2_grpc
from pyetcd.tls import TLSInfo
from pyetcd.transport import links
from support import CertPaths, Member, etcdctl
from support.cluster import wait_leader
from support.polling import wait_until

pytestmark = pytest.mark.skipif(not links.available(), reason="the native extensions were not built")
REFUSAL = "refused: 100% of the time, for the test"  # '%' comes percent-encoded in grpc-message


class _Collector(peer_pb2_grpc.PeerServicer):
    """Takes ``limit`` batches, then refuses the stream as a member refuses a removed peer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.got: list[int] = []

    async def Stream(self, requests: AsyncIterator[peer_pb2.MessageBatch], context: Any) -> peer_pb2.StreamAck:
        async for batch in requests:
            self.got.extend(m.index for m in batch.messages)
            if len(self.got) >= self.limit:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, REFUSAL)
        return peer_pb2.StreamAck()


def _batch(index: int) -> bytes:
    return peer_pb2.MessageBatch(messages=[peer_pb2.RaftMessage(index=index, context=b"x" * 300)]).SerializeToString()


async def _serving(servicer: _Collector, body: Callable[[int], Awaitable[None]],
                   credentials: grpc.ServerCredentials | None = None, addr: str = "127.0.0.1:0") -> None:
    server = grpc.aio.server()
    peer_pb2_grpc.add_PeerServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_secure_port(addr, credentials) if credentials else server.add_insecure_port(addr)
    await server.start()
    try:
        await body(port)
    finally:
        await server.stop(0)


def test_a_stream_delivers_every_message_in_order_and_ends_with_the_servers_status() -> None:
    """Messages sent at once after the call opens (before nghttp2 has even sent its HEADERS)
    arrive, in order; a refusal mid-stream ends the call with its code and decoded message."""
    servicer = _Collector(limit=500)

    async def body(port: int) -> None:
        ls = links.Links(TLSInfo())
        try:
            link = await ls.open(f"http://127.0.0.1:{port}")
            for i in range(1, 501):
                link.send(_batch(i))
            ended = await asyncio.wait_for(link.ended, 10)
            assert link.ready.done() and not link.ready.cancelled()
            assert (ended.code, ended.message) == (grpc.StatusCode.FAILED_PRECONDITION.value[0], REFUSAL)
            assert not link.writable()
        finally:
            ls.close()

    asyncio.run(_serving(servicer, body))
    assert servicer.got == list(range(1, 501))


def test_direct_and_queued_sends_keep_the_order_they_were_sent_in() -> None:
    """send(direct=True) frames and writes from the caller's thread when the HTTP/2 thread is idle,
    after whatever was queued before it; when that thread is busy (here: reading the server's
    window updates) it queues. Alternating the two, from the event loop and from another thread
    taking turns with it, every message still arrives in the order sent."""
    total = 3000
    servicer = _Collector(limit=total)

    async def body(port: int) -> None:
        ls = links.Links(TLSInfo())
        try:
            link = await ls.open(f"http://127.0.0.1:{port}")

            def send(i: int) -> None:
                data = _batch(i)
                ls.transport.send([(link.key, b"\0" + len(data).to_bytes(4, "big") + data, -1, None, False)],
                                  i % 3 != 0)

            loop = asyncio.get_running_loop()
            for start in range(1, total + 1, 100):
                chunk = range(start, min(start + 100, total + 1))
                if start % 200 == 1:
                    for i in chunk:
                        send(i)
                else:
                    await loop.run_in_executor(None, lambda c=chunk: [send(i) for i in c])  # type: ignore[misc]
            ended = await asyncio.wait_for(link.ended, 20)
            assert ended.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        finally:
            ls.close()

    asyncio.run(_serving(servicer, body))
    assert servicer.got == list(range(1, total + 1))


def test_a_connection_that_breaks_ends_the_stream_without_a_status() -> None:
    """A peer port that accepts and closes (a member dying mid-stream, say): the stream ends with
    no status, never having been ready, and stops taking messages."""
    async def run() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        ls = links.Links(TLSInfo())
        try:
            link = await ls.open(f"http://127.0.0.1:{listener.getsockname()[1]}")
            link.send(_batch(1))
            conn, _ = await loop.sock_accept(listener)
            assert (await loop.sock_recv(conn, 24)).startswith(b"PRI * HTTP/2.0")
            conn.close()
            ended = await asyncio.wait_for(link.ended, 10)
            assert ended.code is None and link.ready.cancelled() and not link.writable()
        finally:
            ls.close()
            listener.close()

    asyncio.run(run())


def test_keepalive_closes_a_silent_connection_and_keeps_a_live_one() -> None:
    """A peer whose network went silent (a blackhole: the connection stays up, nothing comes
    back) is PINGed once quiet, and the stream ends when the PING goes unanswered; a live peer
    answers its PINGs and the stream stays open however long it is idle."""
    servicer = _Collector(limit=10**9)

    async def body(port: int) -> None:
        loop = asyncio.get_running_loop()
        silent = socket.create_server(("127.0.0.1", 0))
        silent.setblocking(False)
        ls = links.Links(TLSInfo(), keepalive_ms=200, keepalive_timeout_ms=400)
        try:
            live = await ls.open(f"http://127.0.0.1:{port}")
            dead = await ls.open(f"http://127.0.0.1:{silent.getsockname()[1]}")
            conn, _ = await loop.sock_accept(silent)  # accepted, read by nobody, never answered
            live.send(_batch(1))
            dead.send(_batch(1))
            opened = loop.time()
            ended = await asyncio.wait_for(dead.ended, 10)
            assert ended.code is None and dead.ready.cancelled()
            assert loop.time() - opened >= 0.6  # quiet 200 ms, then the PING unanswered 400 ms
            await asyncio.sleep(2.5)  # many keepalive periods, idle
            assert not live.ended.done() and live.writable()
            live.send(_batch(2))
            while len(servicer.got) < 2:
                await asyncio.sleep(0.01)
            conn.close()
        finally:
            ls.close()
            silent.close()

    asyncio.run(_serving(servicer, body))
    assert servicer.got == [1, 2]


def _tls_server(certs: CertPaths) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials([(certs.peer_key.read_bytes(), certs.peer.read_bytes())],
                                       root_certificates=certs.ca.read_bytes(), require_client_auth=True)


def _peer_tls(certs: CertPaths, trusted: CertPaths | None = None, auto: bool = False) -> TLSInfo:
    return TLSInfo(cert_file=str(certs.peer), key_file=str(certs.peer_key),
                   trusted_ca_file=str((trusted or certs).ca), auto_tls=auto)


async def _outcome(port: int, tls: TLSInfo, host: str = "127.0.0.1") -> tuple[bool, int | None]:
    """(ready, status) of a stream to a TLS server: one message, then the server refuses it."""
    ls = links.Links(tls)
    try:
        link = await ls.open(f"https://{host}:{port}")
        link.send(_batch(1))
        ended = await asyncio.wait_for(link.ended, 10)
        return link.ready.done() and not link.ready.cancelled(), ended.code
    finally:
        ls.close()


@pytest.mark.parametrize("case", ["trusted", "other CA", "name not in the certificate", "auto TLS"])
def test_a_tls_stream_checks_the_servers_certificate(certs: CertPaths, tmp_path: Path, case: str) -> None:
    """Mutual TLS through the pump in connect mode: our peer certificate shown (the server
    requires one), the server's checked against the trusted CA and the URL's host, except under
    --peer-auto-tls, where etcd checks nobody's."""
    refused_at_once = grpc.StatusCode.FAILED_PRECONDITION.value[0]
    tls, host = _peer_tls(certs), "127.0.0.1"
    if case == "other CA":
        tls = _peer_tls(certs, trusted=CertPaths.create(tmp_path / "other"))
    elif case == "name not in the certificate":
        host = "127.0.0.2"  # the certificate names localhost and 127.0.0.1 only
    elif case == "auto TLS":
        tls = _peer_tls(certs, trusted=CertPaths.create(tmp_path / "other"), auto=True)
    servicer = _Collector(limit=1)
    seen: list[tuple[bool, int | None]] = []

    async def body(port: int) -> None:
        seen.append(await _outcome(port, tls, host))

    asyncio.run(_serving(servicer, body, _tls_server(certs), addr="0.0.0.0:0"))
    if case in ("trusted", "auto TLS"):
        assert seen == [(True, refused_at_once)] and servicer.got == [1]
    else:
        assert seen == [(False, None)] and servicer.got == []


def test_members_on_either_peer_transport_form_one_cluster(cluster_factory: object) -> None:
    """A member whose peer streams and server are grpc.aio's (PYETCD_PEER_GRPC=grpcio) and
    members on the native transport talk both ways: the wire is the same gRPC."""
    members: list[Member] = cluster_factory("pyetcd")  # type: ignore[operator]
    wait_leader(members)
    odd = members[2]
    odd.stop()
    odd.env["PYETCD_PEER_GRPC"] = "grpcio"
    odd.start(timeout=60)
    wait_leader(members)
    for i, m in enumerate(members * 2):
        etcdctl(m, "put", f"k{i}", f"v{i}")
    for m in members:
        kvs = json.loads(etcdctl(m, "get", "k", "--prefix", "--consistency=s", "-w", "json").stdout).get("kvs", [])
        assert len(kvs) == 6, (m.name, kvs)
    assert "grpc.aio" not in odd.log_tail(50)  # no transport errors either way


def test_peer_cert_allowed_cn_reads_the_certificate_the_pump_saw(cluster_factory: object) -> None:
    """--peer-cert-allowed-cn is checked against the certificate the native server's TLS pump
    reported: the peers' CN (pyetcd-peer) lets a cluster form; a member that allows another CN
    refuses them with FAILED_PRECONDITION and says why."""
    members: list[Member] = cluster_factory("pyetcd", extra_args=("--peer-cert-allowed-cn", "pyetcd-peer"))  # type: ignore[operator]
    wait_leader(members)
    etcdctl(members, "put", "k", "v")
    strict = members[2]
    strict.stop()
    strict.extra_args = ("--peer-cert-allowed-cn", "someone-else")
    strict.spawn()
    try:
        wait_leader(members[:2])
        wait_until(lambda: "is not the allowed CN 'someone-else'" in strict.log_tail(200), timeout=20)
        assert "peer certificate CN ['pyetcd-peer'] is not the allowed CN 'someone-else'" in strict.log_tail(200)
    finally:
        strict.stop()

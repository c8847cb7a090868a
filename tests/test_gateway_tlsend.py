"""The native relay ending its clients' TLS (gateway/_tlsend.c) over real sockets.

Each pair is what the front relays on an https URL: a TCP connection from a TLS client, and a
unix socket bound to an abstract name, connected to the test's stand-in gRPC listener, which
sees plaintext. The pump reports each client's certificate on the identity socket, named by
that unix socket, and forgets it when the pair closes (gateway/identities.py reads these).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pyetcd.gateway._pump import Pump
from pyetcd.gateway.identities import RelayedIdentities
from support import CertPaths
from support.polling import wait_until
from support.ports import free_port
from support.stall import expected, send_until_stalled

VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
_names = count()


class TLSRelay:
    """A pump ending TLS with the test CA's server certificate, its listener, and the stand-in server."""

    def __init__(self, certs: CertPaths, verify_client: bool = True) -> None:
        self.certs = certs
        self.ids, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ids.setblocking(False)
        # the front's end of the identity socket, as the test may also write it (to fill it up)
        self.front_end = socket.socket(fileno=os.dup(theirs.fileno()))
        self.pump = Pump(cert=str(certs.server), key=str(certs.server_key), ca=str(certs.ca),
                         verify_client=verify_client, identity_fd=theirs.detach())
        self.listener = socket.create_server(("127.0.0.1", free_port()))
        self.backend = f"pyetcd-test-{os.getpid()}-{next(_names)}"
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind("\0" + self.backend)
        self.server.listen()

    def relayed(self) -> tuple[socket.socket, str]:
        """(a TCP client the pump now relays, before any TLS; the name the server will see)."""
        raw = socket.create_connection(self.listener.getsockname())
        accepted, _ = self.listener.accept()
        name = f"{self.backend}-c{next(_names)}"
        backend = socket.socket(socket.AF_UNIX)
        backend.bind("\0" + name)
        backend.connect("\0" + self.backend)
        self.pump.add(accepted.detach(), backend.detach())
        return raw, name

    def connect(self, version: ssl.TLSVersion, with_cert: bool = True) -> tuple[ssl.SSLSocket, socket.socket, str]:
        """(TLS client, the server's end of the relayed connection, the name the server sees)."""
        ctx = ssl.create_default_context(cafile=str(self.certs.ca))
        if with_cert:
            ctx.load_cert_chain(self.certs.client, self.certs.client_key)
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_alpn_protocols(["h2"])
        raw, name = self.relayed()
        client = ctx.wrap_socket(raw, server_hostname="localhost")
        server, _ = self.server.accept()
        client.settimeout(10)
        server.settimeout(10)
        return client, server, name

    def messages(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.ids.recv(1 << 16))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.pump.close()
        for s in (self.ids, self.front_end, self.listener, self.server):
            s.close()


class PlaintextCall:
    """What grpc shows of a call on the plaintext listener behind the front: its peer, no certificate."""

    def __init__(self, peer: str) -> None:
        self._peer = peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def peer(self) -> str:
        return self._peer


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return CertPaths.create(tmp_path_factory.mktemp("tlsend-certs"))


@pytest.fixture
def relay(certs: CertPaths) -> Iterator[TLSRelay]:
    r = TLSRelay(certs)
    yield r
    r.close()


def exchange(client: ssl.SSLSocket, data: bytes, want: int, timeout: float = 20.0) -> bytes:
    """Send data and read want bytes at once, from one thread: an SSL socket must not be read in
    one thread while another writes it (OpenSSL's rule; Python releases the GIL around both)."""
    client.setblocking(False)
    received = bytearray()
    sent = 0
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(client, selectors.EVENT_READ | selectors.EVENT_WRITE)
        while sent < len(data) or len(received) < want:
            assert time.monotonic() < deadline, f"stalled: sent {sent}, received {len(received)}"
            sel.select(0.5)
            with contextlib.suppress(ssl.SSLWantWriteError, ssl.SSLWantReadError):
                if sent < len(data):
                    sent += client.send(data[sent:sent + (1 << 16)])
            with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLWantWriteError):
                while chunk := client.recv(1 << 20):
                    received += chunk
            if sent == len(data):
                sel.modify(client, selectors.EVENT_READ)
    client.setblocking(True)
    client.settimeout(10)
    return bytes(received)


def wait_until_empty(pump: Pump) -> None:
    wait_until(lambda: len(pump) == 0)


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
def test_plaintext_both_ways_and_the_client_reported_then_forgotten(relay: TLSRelay, version: ssl.TLSVersion) -> None:
    client, server, name = relay.connect(version)
    assert client.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert client.selected_alpn_protocol() == "h2"
    up, down = os.urandom(8 << 20), os.urandom(8 << 20)
    got: dict[str, bytes] = {}

    def serve() -> None:  # a plain socket may be read and written from two threads
        writer = threading.Thread(target=server.sendall, args=(down,))
        writer.start()
        buf = bytearray()
        while len(buf) < len(up) and (chunk := server.recv(1 << 20)):
            buf += chunk
        got["up"] = bytes(buf)
        writer.join()
    serving = threading.Thread(target=serve)
    serving.start()
    got["down"] = exchange(client, up, len(down))
    serving.join()
    assert hashlib.sha256(got["up"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got["down"]).digest() == hashlib.sha256(down).digest()

    ids = RelayedIdentities()
    learned = relay.messages()
    assert len(learned) == 1
    ids.message(learned[0])
    cert = x509.load_pem_x509_certificate(Path(relay.certs.client).read_bytes())
    seen = ids.of(PlaintextCall(f"unix-abstract:{name}"))
    assert seen["x509_pem_cert"][0].decode().strip() == Path(relay.certs.client).read_text().strip()
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert seen["x509_common_name"] == [str(cn).encode()]

    server.close()  # the server ends: the client reads the end after all the data
    assert client.recv(100) == b""
    client.close()
    wait_until_empty(relay.pump)
    for msg in relay.messages():
        ids.message(msg)
    assert len(ids) == 0 and ids.of(PlaintextCall(f"unix-abstract:{name}")) == {}


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
def test_client_close_notify_reaches_the_server_as_its_end(relay: TLSRelay, version: ssl.TLSVersion) -> None:
    client, server, _ = relay.connect(version)
    client.sendall(b"last request")
    # close_notify: the client is done sending (unwrap returns on the server's own close_notify)
    unwrapped: list[socket.socket] = []
    closing = threading.Thread(target=lambda: unwrapped.append(client.unwrap()))
    closing.start()
    buf = b""
    while chunk := server.recv(100):
        buf += chunk
    assert buf == b"last request"
    server.close()  # the server's end: the pump answers with its close_notify
    closing.join(10)
    assert unwrapped, "the client's TLS shutdown did not complete"
    unwrapped[0].close()
    wait_until_empty(relay.pump)


def test_back_pressure_bounds_what_the_pump_keeps_for_a_slow_client(relay: TLSRelay) -> None:
    client, server, _ = relay.connect(ssl.TLSVersion.TLSv1_3)
    sent = send_until_stalled(server)
    # the client read nothing: what was sent sits in socket buffers and at most a read's worth
    # of records in the pump, not in an ever-growing buffer
    assert sent < 32 << 20
    threading.Thread(target=server.close, daemon=True).start()
    received = bytearray()
    while chunk := client.recv(1 << 20):
        received += chunk
    assert hashlib.sha256(received).digest() == hashlib.sha256(expected(sent)).digest()
    client.close()


def test_a_client_waits_while_the_member_has_no_room_for_its_identity(relay: TLSRelay) -> None:
    """The identity socket full (a member busy while many clients connect): the client's bytes
    wait for its identity message, which goes once the member reads; a client that left while it
    waited is reported and forgotten in that order (it is not read, so not known gone, until then)."""
    relay.front_end.setblocking(False)
    filler = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            relay.front_end.send(b"x" * 500)
            filler += 1
    client, server, name = relay.connect(ssl.TLSVersion.TLSv1_3)
    leaving, left_server, left_name = relay.connect(ssl.TLSVersion.TLSv1_2)
    client.sendall(b"first request")
    server.settimeout(0.5)
    with pytest.raises(TimeoutError):
        server.recv(100)  # not before the member can know who sent it
    leaving.close()
    time.sleep(0.2)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < filler + 1 and time.monotonic() < deadline:
        got.extend(relay.messages())  # the member reads: room again
        time.sleep(0.01)
    assert got[filler][:1] == b"I" and name.encode() in got[filler]  # first in, first out
    server.settimeout(10)
    assert server.recv(100) == b"first request"
    assert left_server.recv(100) == b""  # its end reached the server once it was read
    left_server.close()
    wait_until(lambda: len(relay.pump) == 1)  # the one that left is closed
    about_left = [m[:1] for m in got + relay.messages() if left_name.encode() in m]
    assert about_left in ([], [b"I", b"G"])
    client.close()
    server.close()
    wait_until_empty(relay.pump)


def test_a_refused_client_is_reported_as_refused_only_and_reaches_no_server(relay: TLSRelay) -> None:
    """No identity for a refused client: one REFUSED report, with its address and OpenSSL's reason."""
    with pytest.raises((ssl.SSLError, ConnectionError)):
        client, _, _ = relay.connect(ssl.TLSVersion.TLSv1_3, with_cert=False)
        client.recv(100)  # TLS 1.3: the client learns of the refusal when it reads
    wait_until_empty(relay.pump)
    reports = relay.messages()
    assert [m[0] for m in reports] == [ord("R")], reports
    text = reports[0][2 + reports[0][1]:].decode()
    assert re.match(r"127\.0\.0\.1:\d+: TLS handshake failed: .*peer did not return a certificate", text), text


def test_without_client_verification_no_certificate_is_asked_for(certs: CertPaths) -> None:
    relay = TLSRelay(certs, verify_client=False)
    try:
        client, server, _ = relay.connect(ssl.TLSVersion.TLSv1_3, with_cert=False)
        client.sendall(b"hello")
        assert server.recv(100) == b"hello"
        assert relay.messages() == []  # no certificate: nothing to report
        client.close()
        server.close()
        wait_until_empty(relay.pump)
    finally:
        relay.close()


def test_a_bad_certificate_file_is_a_clear_error(certs: CertPaths, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match="cannot set up TLS"):
        Pump(cert=str(missing), key=str(certs.server_key))


def test_a_call_before_the_front_s_message_was_read_catches_up(certs: CertPaths) -> None:
    """grpc may run a call before the member's loop read the front's message: the lookup reads it."""
    der = x509.load_pem_x509_certificate(Path(certs.client).read_bytes()).public_bytes(Encoding.DER)
    name = b"pyetcd-1-0-grpc-c7"
    unread = [bytes([ord("I"), len(name)]) + name + der]
    ids = RelayedIdentities()

    def catch_up() -> None:
        while unread:
            ids.message(unread.pop())
    ids.catch_up = catch_up
    assert ids.of(PlaintextCall("unix-abstract:pyetcd-1-0-grpc-c7"))["x509_common_name"] == [b"client"]
    assert ids.of(PlaintextCall("unix-abstract:pyetcd-1-0-grpc-c8")) == {}  # never reported: no identity
    assert ids.of(PlaintextCall("ipv4:127.0.0.1:5000")) == {}  # not through the front


def _client_hello(certs: CertPaths) -> bytes:
    """A real TLS 1.3 ClientHello offering h2, as the first bytes a client sends."""
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    ctx.set_alpn_protocols(["h2"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("seed", range(8))
def test_garbage_after_the_client_hello_closes_only_that_connection(relay: TLSRelay, seed: int) -> None:
    """Bytes that are not TLS, or records cut short, after a real ClientHello: that pair closes
    (after OpenSSL's alert, if any), no identity is reported (a refusal at most), and the relay
    goes on serving."""
    rnd = random.Random(seed)
    hello = _client_hello(relay.certs)
    junk = [rnd.randbytes(rnd.randint(1, 4096)),
            bytes([23, 3, 3, 0x40, 0]) + rnd.randbytes(100),  # a record header that promises more
            bytes([22, 3, 3, 0, 5]) + rnd.randbytes(5)][seed % 3]
    raw, _ = relay.relayed()
    server, _ = relay.server.accept()
    raw.settimeout(10)
    with contextlib.suppress(ConnectionError, OSError):  # the relay may have closed it already
        raw.sendall(hello + junk)
        raw.shutdown(socket.SHUT_WR)  # a record cut short ends at the client's end of stream
        while raw.recv(1 << 16):
            pass
    raw.close()
    wait_until_empty(relay.pump)
    server.settimeout(10)
    assert server.recv(100) == b""  # the server saw no byte of it
    server.close()
    assert {m[0] for m in relay.messages()} <= {ord("R")}
    client, srv, _ = relay.connect(ssl.TLSVersion.TLSv1_3)  # the relay still serves
    client.sendall(b"ping")
    assert srv.recv(100) == b"ping"
    client.close()
    srv.close()

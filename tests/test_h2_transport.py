"""The native gRPC transport (h2/): what grpcio's server did for us, done as etcd's Go server does it.

Every pyetcd member in the suite already serves its clients through h2/ (the front relays gRPC to
it), so the API tests cover the common paths. These cover the transport's own answers and duties,
each on real etcd too (``any_member``): methods nobody serves, messages over the limit, compressed
requests, streams the client abandons, a large stream read slowly, many calls on one connection; a
client stream served by a StreamSink (the peers' raft messages; on a private server, etcd has no
such thing); and the percent-encoding of a status message (etcd's own are ASCII, and grpc-go resets
a stream whose path is odd, so no path makes a live comparison of it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import threading
import time

import grpc
import pytest

from pyetcd.api import peer_pb2, rpc_pb2, rpc_pb2_grpc
from pyetcd.h2 import _h2  # noqa: F401  (built: else pyetcd falls back to grpc.aio and these tests fail here, clearly)
from pyetcd.h2.call import grpc_message, timeout_of
from pyetcd.h2.server import ABSTRACT, NativeServer
from pyetcd.rpc.callcontext import CallAborted
from pyetcd.rpc.service import STREAM_UNMARSHAL_ERROR, served_methods
from support import Member, grpc_channel
from support.http import curl
from support.polling import wait_until

GRPC_OVERHEAD = 512 * 1024  # etcd's grpcOverheadBytes: the receive limit is --max-request-bytes plus this
DEFAULT_MAX_REQUEST = 1536 * 1024


def _raw(m: Member, path: str, data: bytes = b"") -> grpc.RpcError:
    with grpc_channel(m) as ch, pytest.raises(grpc.RpcError) as e:
        ch.unary_unary(path)(data, timeout=10)
    return e.value


@pytest.mark.parametrize(("path", "details"), [
    ("/etcdserverpb.KV/Nope", "unknown method Nope for service etcdserverpb.KV"),
    ("/nosuch.Service/Call", "unknown service nosuch.Service"),
])
def test_a_method_nobody_serves_is_unimplemented_in_go_grpc_words(any_member: Member, path: str, details: str) -> None:
    err = _raw(any_member, path)
    assert (err.code(), err.details()) == (grpc.StatusCode.UNIMPLEMENTED, details)


def test_a_message_over_the_receive_limit_is_resource_exhausted(any_member: Member) -> None:
    size = DEFAULT_MAX_REQUEST + GRPC_OVERHEAD + 10
    request = rpc_pb2.PutRequest(key=b"big", value=b"x" * size).SerializeToString()
    err = _raw(any_member, "/etcdserverpb.KV/Put", request)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.details() == f"grpc: received message larger than max ({len(request)} vs. {DEFAULT_MAX_REQUEST + GRPC_OVERHEAD})"
    with grpc_channel(any_member) as ch:  # the connection and the member carry on
        assert rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"big"), timeout=10).count == 0


def test_a_compressed_request_is_refused_as_etcd_refuses_it(any_member: Member) -> None:
    with grpc_channel(any_member) as ch, pytest.raises(grpc.RpcError) as e:
        rpc_pb2_grpc.KVStub(ch).Put(rpc_pb2.PutRequest(key=b"zipped", value=b"v" * 4096), timeout=10,
                                     compression=grpc.Compression.Gzip)
    assert (e.value.code(), e.value.details()) == (
        grpc.StatusCode.UNIMPLEMENTED, 'grpc: Decompressor is not installed for grpc-encoding "gzip"')
    with grpc_channel(any_member) as ch:
        assert rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"zipped"), timeout=10).count == 0


def _watchers(m: Member) -> float:
    for line in curl(m, "/metrics").body.splitlines():
        if line.startswith("etcd_debugging_mvcc_watcher_total "):
            return float(line.split()[1])
    raise AssertionError("no etcd_debugging_mvcc_watcher_total in /metrics")


def test_a_stream_the_client_cancels_ends_on_the_server(any_member: Member) -> None:
    """The client's RST_STREAM reaches the handler: its watchers go away with it."""
    before = _watchers(any_member)
    with grpc_channel(any_member) as ch:
        requests = [rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=f"w{i}".encode()))
                    for i in range(10)]
        call = rpc_pb2_grpc.WatchStub(ch).Watch(iter(requests), timeout=60)
        created = 0
        for reply in call:
            created += reply.created
            if created == 10:
                break
        wait_until(lambda: _watchers(any_member) == before + 10, timeout=10)
        call.cancel()
        wait_until(lambda: _watchers(any_member) == before, timeout=10)


def test_a_large_stream_read_slowly_arrives_whole(any_member: Member) -> None:
    """A snapshot of ~24 MB read by a client that pauses: flow control and back-pressure hold
    the rest back, nothing is lost or reordered (the stream's last 32 bytes are the SHA-256 of
    the rest, as etcd sends it)."""
    with grpc_channel(any_member) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(24):
            kv.Put(rpc_pb2.PutRequest(key=f"bulk/{i}".encode(), value=bytes([i]) * (1 << 20)), timeout=30)
        chunks = []
        for n, reply in enumerate(rpc_pb2_grpc.MaintenanceStub(ch).Snapshot(rpc_pb2.SnapshotRequest(), timeout=120)):
            chunks.append(reply.blob)
            if n % 64 == 0:
                time.sleep(0.05)
    data = b"".join(chunks)
    assert len(data) > 24 << 20
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]


def test_many_calls_at_once_on_one_connection_all_answer(any_member: Member) -> None:
    """Replies of many concurrent calls are batched per loop pass; each reaches its own stream."""
    with grpc_channel(any_member) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        for i in range(50):
            kv.Put(rpc_pb2.PutRequest(key=f"c/{i}".encode(), value=str(i).encode()), timeout=10)
        results: dict[int, bytes] = {}

        def read(i: int) -> None:
            futures = [kv.Range.future(rpc_pb2.RangeRequest(key=f"c/{j}".encode()), timeout=30) for j in range(50)]
            results.update({i * 100 + j: f.result().kvs[0].value for j, f in enumerate(futures)})

        threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {i * 100 + j: str(j).encode() for i in range(4) for j in range(50)}


def test_grpc_message_is_percent_encoded_as_the_spec_says() -> None:
    assert grpc_message("etcdserver: key not found") == "etcdserver: key not found"
    assert grpc_message("100%") == "100%25"
    assert grpc_message("Nä\n") == "N%C3%A4%0A"


def test_grpc_timeout_units() -> None:
    assert [timeout_of(v) for v in ("5S", "100m", "2M", "1H", "7u", "9n")] == pytest.approx([5.0, 0.1, 120.0, 3600.0, 7e-6, 9e-9])
    assert timeout_of("") is None and timeout_of("S") is None and timeout_of("5x") is None


class _Unused:
    async def Stream(self, requests: object, context: object) -> peer_pb2.StreamAck:
        raise AssertionError("a method with a sink never runs its handler")


class _Sink:
    """A StreamSink that keeps what it took and refuses the batch whose index is ``refuse``."""

    def __init__(self, took: list[int], refuse: int) -> None:
        self.took = took
        self.refuse = refuse

    def message(self, batch: peer_pb2.MessageBatch) -> None:
        index = batch.messages[0].index
        if index == self.refuse:
            raise CallAborted(grpc.StatusCode.FAILED_PRECONDITION, f"refused at {index}")
        self.took.append(index)

    def reply(self) -> peer_pb2.StreamAck:
        return peer_pb2.StreamAck()


@pytest.mark.parametrize(("sent", "refuse", "expect"), [
    ([1, 2, 3], 0, ("OK", [1, 2, 3])),
    ([1, 2, 3, 4], 3, ("FAILED_PRECONDITION refused at 3", [1, 2])),
    ([1, 2, b"\xff\xff", 4], 0, ("INTERNAL " + STREAM_UNMARSHAL_ERROR, [1, 2])),
])
def test_a_stream_sink_takes_each_request_as_it_arrives_and_ends_the_call_as_a_handler_would(
        sent: list[int | bytes], refuse: int, expect: tuple[str, list[int]]) -> None:
    """A client stream served by a StreamSink (the peers' raft messages): requests reach it in
    order, its CallAborted ends the call with that status, an undecodable request ends it
    INTERNAL as Go's gRPC does, and the client's half-close gets the sink's reply."""
    took: list[int] = []
    name = f"pyetcd-test-sink-{os.getpid()}"
    methods = served_methods([("Peer", _Unused())])
    path = b"/pyetcdpeerpb.Peer/Stream"
    methods[path] = dataclasses.replace(methods[path], sink=lambda ctx: _Sink(took, refuse))

    def wire(item: int | bytes) -> bytes:
        if isinstance(item, bytes):
            return item
        return peer_pb2.MessageBatch(messages=[peer_pb2.RaftMessage(index=item)]).SerializeToString()

    async def run() -> str:
        server = NativeServer(methods, [ABSTRACT + name], 1 << 20)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix-abstract:{name}") as ch:
                call = ch.stream_unary("/pyetcdpeerpb.Peer/Stream", request_serializer=lambda b: b,
                                       response_deserializer=peer_pb2.StreamAck.FromString)
                try:
                    await asyncio.wait_for(call(iter([wire(i) for i in sent])), 10)
                    return "OK"
                except grpc.aio.AioRpcError as e:
                    return f"{e.code().name} {e.details()}"
        finally:
            await server.stop(0)

    status = asyncio.run(run())
    assert (status.startswith(expect[0]), took) == (True, expect[1]), status

"""The front's classification from real ClientHellos (made by OpenSSL through Python's ssl), and
the gateway's JSON: request streams split into objects, etcd's encoding of responses."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest

from pyetcd.api import kv_pb2, rpc_pb2
from pyetcd.gateway import hello, jsonpb


def client_hello(alpn: list[str] | None) -> bytes:
    ctx = ssl.create_default_context()
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize(("alpn", "grpc"), [
    (["h2"], True),  # grpc-go (etcdctl, clientv3)
    (["grpc-exp", "h2"], True),  # grpc-core (Python, C++)
    (["h2", "http/1.1"], False),  # curl, browsers, Go's net/http
    (["http/1.1"], False),  # curl --http1.1, requests
    (None, False),  # no ALPN at all
])
def test_classifies_real_client_hellos(alpn: list[str] | None, grpc: bool) -> None:
    record = client_hello(alpn)
    assert hello.record_length(record) == len(record)
    assert hello.offered_alpn(record) == [p.encode() for p in alpn or []]
    assert hello.is_grpc(hello.offered_alpn(record)) is grpc


def test_not_tls_or_truncated() -> None:
    assert hello.record_length(b"GET / HTTP/1.1\r\n") is None
    record = client_hello(["h2"])
    assert hello.offered_alpn(record[:60]) == []  # cut short: no verdict rather than a wrong one


def test_request_stream_split_into_objects() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b'{"create_request": {"key"', b': "Zm9v"}}\n{"progress', b'_request": {}}  {"ca', b'ncel_request":{}}'):
            yield part

    async def collect() -> list[object]:
        return [o async for o in jsonpb.objects(chunks())]
    assert asyncio.run(collect()) == [{"create_request": {"key": "Zm9v"}}, {"progress_request": {}},
                                      {"cancel_request": {}}]


def test_json_as_etcd_gateway_writes_it() -> None:
    resp = rpc_pb2.RangeResponse(kvs=[kv_pb2.KeyValue(key=b"foo", value=b"", create_revision=2)], count=1)
    resp.header.revision = 2
    assert jsonpb.dumps(resp) == (b'{"header":{"revision":"2"},"kvs":[{"key":"Zm9v","create_revision":"2"}],'
                                  b'"count":"1"}')
    req = jsonpb.loads(b'{"key":"Zm9v","rangeEnd":"Zm9w","unknown":1}', rpc_pb2.RangeRequest())
    assert req == rpc_pb2.RangeRequest(key=b"foo", range_end=b"fop")

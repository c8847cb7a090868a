"""The applier never raises, whatever a committed entry holds (issue 9).

Every member applies the same committed entries, again after every restart: an entry that made
apply raise would stop the whole cluster for good. So ``Applier.apply_entry`` is fed what a
committed entry could hold — valid InternalRequests of every kind (random fields, out-of-range
enums, deep Txns), the same bytes truncated, and garbage — inside one real LMDB batch, with the
subsystems a member registers (leases, auth, alarms, membership). It must return a result each
time; a decodable entry must never fail with an unexpected exception (that is logged, and is a
bug even though the member survives it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyetcd import errors, wire
from pyetcd.api import internal_pb2, rpc_pb2
from pyetcd.auth.store import AuthStore
from pyetcd.lease import Lessor
from pyetcd.mvcc import KVStore
from pyetcd.raft import ConfChange, ConfChangeType
from pyetcd.server.alarms import Alarms
from pyetcd.server.apply import Applier, decode_conf_change
from pyetcd.server.batch import ApplyBatch
from pyetcd.server.membership import Membership
from pyetcd.storage.backend import Backend
from support.protofuzz import length_delimited, messages, mutated, nested_txn


class Member:
    """The apply side of a member, wired as EtcdServer wires it, on one open write batch."""

    def __init__(self, path: Path) -> None:
        self.backend = Backend(path)
        self.kv = KVStore(self.backend)
        self.applier = Applier(Lessor(self.backend, min_ttl=2))
        members = Membership(self.backend)
        self.applier.register("member_attributes", members.apply_attributes)
        self.applier.register("member_update", members.apply_update)
        alarms = Alarms(self.backend)
        self.applier.register("alarm", alarms.apply)
        self.applier.guards.append(alarms.check_capped)
        AuthStore(self.backend).register(self.applier)
        self.txn = self.backend.begin_write()
        self.batch = ApplyBatch(txn=self.txn, kv=self.kv.writer(self.txn))
        self.index = 0

    def apply(self, data: bytes) -> None:
        self.index += 1
        self.batch.entry_index = self.index
        result = self.applier.apply_entry(self.batch, data)
        assert result.response is not None or isinstance(result.error, errors.EtcdError)

    def close(self) -> None:
        self.txn.abort()
        self.backend.close()


@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Member]:
    m = Member(tmp_path_factory.mktemp("apply") / "db")
    yield m
    m.close()


def _deep_request(depth: int, size: int = 0) -> bytes:
    """A TxnRequest ``depth`` levels deep, padded (in its innermost value) to about ``size`` bytes."""
    pad = size
    data = nested_txn(depth, rpc_pb2.PutRequest(key=b"fz/deep", value=b"v" * pad))
    while len(data) > size and pad > 0:  # lengths grow with the value: shrink it until it fits
        pad = max(0, pad - (len(data) - size))
        data = nested_txn(depth, rpc_pb2.PutRequest(key=b"fz/deep", value=b"v" * pad))
    return data


def _deep_entry(depth: int, size: int = 0) -> bytes:
    """The log entry for such a request: an InternalRequest (``txn`` is field 4) whose header
    names a user, as a proposal made with auth on does."""
    payload = _deep_request(depth, size)
    header = internal_pb2.InternalRequest(header=internal_pb2.RequestHeader(ID=7, username="u" * 500))
    return header.SerializeToString() + length_delimited(4, payload)


valid = messages(internal_pb2.InternalRequest).map(lambda m: m.SerializeToString())
# entries that once made apply raise (names longer than an LMDB key), should one be committed
# by a member that did not refuse them before proposing
KILLERS = [internal_pb2.InternalRequest(auth_user_add=rpc_pb2.AuthUserAddRequest(name="u" * 600)),
           internal_pb2.InternalRequest(auth_role_add=rpc_pb2.AuthRoleAddRequest(name="r" * 600))]
entries = st.one_of(valid, valid.flatmap(mutated), st.binary(max_size=200),
                    st.integers(1, 400).map(_deep_entry),
                    st.sampled_from([k.SerializeToString() for k in KILLERS]))


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=entries)
def test_apply_entry_never_raises(member: Member, data: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="pyetcd.server.apply"):
        member.apply(data)
    decodable = True
    try:
        wire.parse(internal_pb2.InternalRequest, data)
    except Exception:
        decodable = False
    if decodable:
        assert not [r for r in caplog.records if r.exc_info], caplog.text


def test_an_undecodable_entry_is_skipped_with_one_log_line(member: Member,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="pyetcd.server.apply"):
        member.apply(b"\xff\xff\xff")
    assert len(caplog.records) == 1 and "cannot decode" in caplog.records[0].getMessage()


def test_the_txn_depth_the_rpc_layer_admits_applies(member: Member) -> None:
    """The deepest and largest deep Txn the rpc layer lets through still decodes once wrapped
    for the log (one level deeper, a header larger)."""
    from pyetcd.rpc.validate import MAX_TXN_NESTING

    request = _deep_request(MAX_TXN_NESTING, wire.MAX_DEEP_BYTES)
    wire.parse(rpc_pb2.TxnRequest, request)  # the rpc layer decodes it
    entry = _deep_entry(MAX_TXN_NESTING, wire.MAX_DEEP_BYTES)
    assert len(request) <= wire.MAX_DEEP_BYTES < len(entry)  # within the limit; its entry is not
    assert wire.wire_depth(internal_pb2.InternalRequest.DESCRIPTOR, entry, 10_000) <= wire.MAX_DEPTH
    result = member.applier.apply_entry(member.batch, entry)
    assert result.error is None, result.error


def test_a_deep_and_large_message_is_refused_cheaply() -> None:
    """Walking a deep message's fields in Python costs ~50x upb's decode: only small ones get it."""
    filler = b"\x78\x01" * (wire.MAX_DEEP_BYTES // 2)  # unknown varint field 15, many times
    entry = _deep_entry(120) + filler
    with pytest.raises(DecodeError, match="larger than"):
        wire.parse(internal_pb2.InternalRequest, entry)
    assert wire.parse(internal_pb2.InternalRequest, _deep_entry(120)).txn.success


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff" * 9, b"\x07" + b"\x00" * 8 + b"\xff\xff"])
def test_an_undecodable_conf_change_is_skipped(data: bytes) -> None:
    assert decode_conf_change(data) is None


def test_a_conf_change_decodes() -> None:
    ctx = internal_pb2.ConfChangeContext(request_id=5)
    cc = ConfChange(ConfChangeType.ADD_LEARNER_NODE, 7, ctx.SerializeToString())
    decoded = decode_conf_change(cc.encode())
    assert decoded is not None and decoded[0] == cc and decoded[1].request_id == 5

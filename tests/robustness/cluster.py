"""The members of one robustness run, each behind its own fault-injecting peer proxy.

Every member listens on its own peer port but advertises its proxy's (``Member.advertise_peer_port``),
so whatever a peer sends it passes that proxy: a fault set on a member's proxy hits its inbound peer
traffic (a member dials each peer for the messages it sends). A proxy tells which member dialled a
connection (``support.procstat.socket_owner``), so ``partition`` cuts both ways: X's proxy refuses the
others, every other proxy refuses X. Peer TLS passes through as bytes (the test certificates name
127.0.0.1, which both addresses are).

A single-member run gets no proxy (there is no peer traffic to disturb).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support.clients import grpc_channel
from support.cluster import leader_of, status
from support.member import HOST, Member, start_cluster, start_member
from support.ports import free_port
from support.procstat import socket_owner
from support.proxy import FaultProxy
from support.tls import CertPaths

T = TypeVar("T")
RECONFIG_TIMEOUT = 20.0  # --strict-reconfig-check refuses a removal until peers were connected for 5 s


class Cluster:
    """Members, their proxies (by member name, kept across a replacement) and the operations faults need."""

    def __init__(self, kind: str, base: Path, certs: CertPaths, size: int) -> None:
        self.proxies: dict[str, FaultProxy] = {}
        self._spare: list[FaultProxy] = []  # proxies of a start attempt that lost its ports
        self.members: list[Member] = []  # (those being started, until start_cluster returns)
        if size == 1:
            self.members = [start_member(kind, base / "m0", certs)]
            return
        try:
            self.members = start_cluster(kind, base, certs, size=size, advertise_peer=self._proxy_for)
        except BaseException:
            self.close()
            raise
        self.proxies = {m.name: self._by_port(m.advertise_peer_port) for m in self.members}
        self._spare = [p for p in self._spare if p not in self.proxies.values()]
        for p in self._spare:
            p.close()

    def _identify(self, port: int, ours: int) -> str | None:
        pids = {m.pid: m.name for m in self.members if m.pid is not None and m.running}
        return socket_owner(port, ours, pids)

    def _proxy_for(self, m: Member) -> int:
        self.members = [*[x for x in self.members if x.name != m.name], m]  # a retry starts new Members
        # a port from free_port, never one the kernel picks: that could be a member's port handed out
        # (and released) a moment ago, which the member then fails to bind (seed 4004)
        p = FaultProxy((HOST, m.peer_port), listen=(HOST, free_port()), identify=self._identify)
        self._spare.append(p)
        return p.port

    def _by_port(self, port: int | None) -> FaultProxy:
        return next(p for p in self._spare if p.port == port)

    @property
    def size(self) -> int:
        return len(self.members)

    def running(self) -> list[Member]:
        return [m for m in self.members if m.running]

    def leader(self, timeout: float = 10.0) -> Member:
        """The member every running member names leader (waits for an election); any member if alone."""
        if self.size == 1:
            return self.members[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (lead := leader_of(self.members)) is not None:
                return lead
            time.sleep(0.05)
        raise RuntimeError(f"no agreed leader among {[m.name for m in self.running()]} after {timeout:.0f}s")

    def describe(self) -> str:
        """Who each member says leads, at which raft term (for the run's log)."""
        ids: dict[int, str] = {}
        seen = []
        for m in self.members:
            st = status(m, timeout=0.5)
            if st is None:
                seen.append((m.name, None))
                continue
            ids[st.header.member_id] = m.name
            seen.append((m.name, st))
        return "; ".join(f"{name}: no answer" if st is None else
                         f"{name}: leader {ids.get(st.leader, hex(st.leader))} term {st.raftTerm}"
                         for name, st in seen)

    def proxy(self, m: Member) -> FaultProxy:
        return self.proxies[m.name]

    def partition(self, target: Member) -> None:
        """Cut ``target`` off from every other member, both ways, until ``heal``."""
        others = {m.name for m in self.members if m is not target}
        self.proxy(target).cut_from(others)
        for m in self.members:
            if m is not target:
                self.proxy(m).cut_from({target.name})

    def heal(self) -> None:
        for p in self.proxies.values():
            p.heal()

    def replace(self, old: Member, note: Callable[[str], None]) -> None:
        """Member replacement: remove ``old`` through another member, then add a new member on the same
        ports and proxy with an empty data dir, started with --initial-cluster-state existing."""
        others = [m for m in self.members if m is not old]
        url = old.advertised_peer_url
        listed = _call(others, lambda c: c.MemberList(rpc_pb2.MemberListRequest(), timeout=2), "member list")
        old_id = next(x.ID for x in listed.members if url in x.peerURLs)
        _call(others, lambda c: c.MemberRemove(rpc_pb2.MemberRemoveRequest(ID=old_id), timeout=3),
              f"member remove {old.name}", done_if="member not found")  # a retry after a timeout
        note(f"removed {old.name} ({old_id:x})")
        if old.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                old.proc.wait(10)  # a removed member stops by itself
        old.stop()
        _call(others, lambda c: c.MemberAdd(rpc_pb2.MemberAddRequest(peerURLs=[url]), timeout=3),
              "member add", done_if="already exists")
        listed = _call(others, lambda c: c.MemberList(rpc_pb2.MemberListRequest(), timeout=2), "member list")
        shutil.rmtree(old.data_dir, ignore_errors=True)
        proxy = self.proxies.pop(old.name)
        base, _, generation = old.name.partition("r")
        old.name = f"{base}r{int(generation or 0) + 1}"
        self.proxies[old.name] = proxy
        old.initial_cluster = ",".join(f"{x.name or old.name}={x.peerURLs[0]}" for x in listed.members)
        old.initial_cluster_state = "existing"
        new_id = next(x.ID for x in listed.members if url in x.peerURLs)
        note(f"added {old.name} ({new_id:x}) with an empty data dir")
        old.start(timeout=30)

    def close(self) -> None:
        for m in self.members:
            m.stop()
        for p in [*self.proxies.values(), *self._spare]:
            p.close()


def _call(members: list[Member], fn: Callable[[rpc_pb2_grpc.ClusterStub], T], what: str,
          done_if: str = "") -> T | None:
    """``fn(ClusterStub)`` on the first running member that accepts it, retried until RECONFIG_TIMEOUT;
    None if a member answers with an error containing ``done_if`` (an earlier attempt took effect)."""
    deadline = time.monotonic() + RECONFIG_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        for m in members:
            if not m.running:
                continue
            try:
                with grpc_channel(m) as ch:
                    return fn(rpc_pb2_grpc.ClusterStub(ch))
            except grpc.RpcError as e:
                if done_if and done_if in (e.details() or ""):
                    return None
                last = f"{m.name}: {e.code().name} {e.details()}"
        time.sleep(0.3)
    raise RuntimeError(f"{what} not accepted in {RECONFIG_TIMEOUT:.0f}s (last: {last})")

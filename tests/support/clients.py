"""Clients of a Member: the real etcdctl (v3 API) and gRPC channels, both over TLS; an etcdctl left
running (Background), and the stubs the Lock and Election tests share (connect)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from pyetcd.api import rpc_pb2_grpc, v3election_pb2_grpc, v3lock_pb2_grpc
from support.member import ETCDCTL_BIN, Member, grpc_channel_for
from support.tls import ClientTLS


class EtcdctlError(subprocess.CalledProcessError):
    """etcdctl failed; unlike CalledProcessError, str() shows its stdout and stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout: {self.stdout!r}\nstderr: {self.stderr!r}"


def etcdctl(member: Member | list[Member], *args: str, input: str | None = None, check: bool = True,
            tls: ClientTLS | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``etcdctl --endpoints=<member(s)> <args>`` with ETCDCTL_API=3 and the client certificate
    (a list of members: the ops guide's ``--endpoints=$E1,$E2,$E3``).

    tls overrides the client's TLS material (e.g. no certificate, or one from another CA).
    Raises EtcdctlError on a non-zero exit when check is true.
    """
    res = subprocess.run(etcdctl_argv(member, *args, tls=tls), input=input, capture_output=True, text=True,
                         env=etcdctl_env(), timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise EtcdctlError(res.returncode, res.args, res.stdout, res.stderr)
    return res


def etcdctl_argv(member: Member | list[Member], *args: str, tls: ClientTLS | None = None) -> list[str]:
    """argv of ``etcdctl --endpoints=<member(s)> <TLS flags> <args>`` (for commands left running)."""
    members = member if isinstance(member, list) else [member]
    tls = tls or members[0].client_tls()
    endpoints = ",".join(m.client_url for m in members)
    cmd = [ETCDCTL_BIN, f"--endpoints={endpoints}", f"--cacert={tls.ca}"]
    if tls.cert and tls.key:
        cmd += [f"--cert={tls.cert}", f"--key={tls.key}"]
    return [*cmd, *args]


def etcdctl_env() -> dict[str, str]:
    """The environment for etcdctl: v3 API, no ETCDCTL_* settings leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return env


def grpc_channel(member: Member, *, tls: ClientTLS | None = None, **kw: Any) -> grpc.Channel:
    """A secure gRPC channel to member presenting the client certificate (or tls, if given)."""
    return grpc_channel_for(member.grpc_target, tls or member.client_tls(), **kw)


class Background:
    """An etcdctl command left running (keep-alive, watch, lock, elect): its lines as they come."""

    def __init__(self, m: Member, *args: str) -> None:
        self.proc = subprocess.Popen(etcdctl_argv(m, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=etcdctl_env(), start_new_session=True)
        self.lines: list[str] = []
        out = self.proc.stdout
        assert out is not None
        threading.Thread(target=lambda: self.lines.extend(x.rstrip("\n") for x in iter(out.readline, "")),
                         daemon=True).start()

    def wait_lines(self, n: int, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.lines) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.lines)

    def stop(self, sig: int = 15) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            return self.proc.wait(10)


@dataclass
class Conn:
    """A member and stubs of the services these tests use, over one mutual-TLS channel."""

    member: Member
    lease: rpc_pb2_grpc.LeaseStub
    kv: rpc_pb2_grpc.KVStub
    lock: v3lock_pb2_grpc.LockStub
    election: v3election_pb2_grpc.ElectionStub


def connect(member_factory: Callable[[str], Member], kind: str) -> Conn:
    """Start a member of ``kind`` (stopped at teardown) and connect to it."""
    m = member_factory(kind)
    ch = grpc_channel(m)
    return Conn(m, rpc_pb2_grpc.LeaseStub(ch), rpc_pb2_grpc.KVStub(ch), v3lock_pb2_grpc.LockStub(ch),
                v3election_pb2_grpc.ElectionStub(ch))

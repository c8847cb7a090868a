"""A real etcd-compatible member (or cluster) for tests and development, from Python::

    from pyetcd.embed import Etcd

    with Etcd() as etcd:                 # one member on free ports in a temporary directory
        etcd.endpoints                   # ['http://127.0.0.1:41234']
    with Etcd(tls=True) as etcd:         # mutual TLS: etcd.ca, etcd.cert, etcd.key are file paths
        ...
    async with Etcd(members=3) as etcd:  # the same in async code; N members form one cluster
        ...

Each member is a ``python -m pyetcd`` child process; entering waits until every member answers
a linearizable read, leaving stops them (SIGTERM) and removes the temporary directory. ``reset()``
empties the keyspace between tests in milliseconds (see the pytest plugin, pytest_plugin.py).

This module deliberately does not import ``pyetcd.api`` (the generated protobuf stubs): see wire.py.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType

import grpc

from .process import MemberProcess
from .wire import EtcdWire

__all__ = ["Etcd", "EtcdStartError"]


class EtcdStartError(RuntimeError):
    """A member did not become healthy; the message carries its exit status and last log lines."""


class Etcd:
    """One member, or ``members`` members forming one cluster, on free ports of 127.0.0.1."""

    def __init__(self, *, members: int = 1, tls: bool = False, data_dir: str | Path | None = None,
                 extra_args: tuple[str, ...] | list[str] = (), timeout: float = 30.0) -> None:
        if members < 1:
            raise ValueError("members must be at least 1")
        self.size = members
        self.tls = tls
        self.extra_args = tuple(extra_args)
        self.timeout = timeout
        self._given_dir = Path(data_dir) if data_dir is not None else None
        self._dir: Path | None = None
        self._members: list[MemberProcess] = []
        self._channel: grpc.Channel | None = None
        self._wire: EtcdWire | None = None
        self.token = ""

    # ---- what a client needs ------------------------------------------------------------
    @property
    def endpoints(self) -> list[str]:
        """Client URLs of every member (``http://`` or, with TLS, ``https://``)."""
        return [m.client_url(self.tls) for m in self._members]

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise RuntimeError("the member is not started: use `with Etcd() as etcd:` or call start()")
        return self._dir

    def _cert(self, name: str) -> str | None:
        return str(self.directory / "certs" / name) if self.tls else None

    @property
    def ca(self) -> str | None:
        """The CA certificate (PEM path) that signed the members' certificates; None without TLS."""
        return self._cert("ca.pem")

    @property
    def cert(self) -> str | None:
        """A client certificate (CN ``client``) the members accept; None without TLS."""
        return self._cert("client.pem")

    @property
    def key(self) -> str | None:
        """The client certificate's private key; None without TLS."""
        return self._cert("client-key.pem")

    @property
    def pids(self) -> list[int]:
        return [m.proc.pid for m in self._members if m.proc is not None]

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> Etcd:
        """Start every member and wait until the cluster serves linearizable reads."""
        if self._members:
            raise RuntimeError("already started")
        self._dir = self._given_dir or Path(tempfile.mkdtemp(prefix="pyetcd-embed-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        if self.tls:
            from pyetcd.tools.certs import write_certs

            write_certs(self._dir / "certs", ["localhost", "127.0.0.1"], force=True)
        try:
            for attempt in range(3):
                if self._launch(fresh_ports=attempt > 0):
                    return self
            raise EtcdStartError("could not find free ports after 3 attempts")
        except BaseException:
            self.stop()
            raise

    def _launch_plan(self) -> None:
        """New members on new free ports, and a new cluster token."""
        self._members = [MemberProcess(f"m{i}", self.directory / f"m{i}") for i in range(self.size)]
        self.token = f"pyetcd-embed-{time.time_ns():x}"

    def _launch(self, fresh_ports: bool) -> bool:
        """Spawn all members and wait; False after a port clash (the caller retries on new ports)."""
        if fresh_ports or not self._members:
            self._launch_plan()
        for m in self._members:
            m.spawn(self._args(m))
        try:
            self._wait_healthy()
            return True
        except EtcdStartError:
            clash = any("address already in use" in m.log_tail(200).lower() for m in self._members)
            self._stop_members()
            if not clash:
                raise
            for m in self._members:
                shutil.rmtree(m.data_dir, ignore_errors=True)
            return False

    def _args(self, m: MemberProcess) -> list[str]:
        """etcd's flags for member ``m``: --initial-cluster names every member, as etcd's docs show."""
        initial = ",".join(f"{o.name}={o.peer_url(self.tls)}" for o in self._members)
        args = [
            "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url(self.tls), "--advertise-client-urls", m.client_url(self.tls),
            "--listen-peer-urls", m.peer_url(self.tls), "--initial-advertise-peer-urls", m.peer_url(self.tls),
            "--initial-cluster", initial, "--initial-cluster-token", self.token,
            "--initial-cluster-state", "new",
        ]
        if self.tls:
            c = self.directory / "certs"
            args += ["--cert-file", str(c / "server.pem"), "--key-file", str(c / "server-key.pem"),
                     "--trusted-ca-file", str(c / "ca.pem"), "--client-cert-auth",
                     "--peer-cert-file", str(c / "peer.pem"), "--peer-key-file", str(c / "peer-key.pem"),
                     "--peer-trusted-ca-file", str(c / "ca.pem"), "--peer-client-cert-auth"]
        return [*args, *self.extra_args]

    def _connect(self, m: MemberProcess) -> grpc.Channel:
        target = f"{m.host}:{m.client_port}"
        if not self.tls:
            return grpc.insecure_channel(target)
        c = self.directory / "certs"
        creds = grpc.ssl_channel_credentials(root_certificates=(c / "ca.pem").read_bytes(),
                                             private_key=(c / "client-key.pem").read_bytes(),
                                             certificate_chain=(c / "client.pem").read_bytes())
        return grpc.secure_channel(target, creds)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.timeout
        for m in self._members:
            channel = self._connect(m)
            wire = EtcdWire(channel, timeout=1.0)
            last = "no answer yet"
            while True:
                status = m.exit_status()
                if status is not None:
                    channel.close()
                    raise EtcdStartError(self._describe(m, f"exited with status {status}"))
                try:
                    wire.range_count(b"health")
                    break
                except grpc.RpcError as e:
                    last = f"{e.code().name}: {e.details()}"
                if time.monotonic() > deadline:
                    channel.close()
                    raise EtcdStartError(self._describe(m, f"not healthy after {self.timeout:.0f}s ({last})"))
                time.sleep(0.05)
            if self._channel is None:
                self._channel, self._wire = channel, EtcdWire(channel)
            else:
                channel.close()

    def _describe(self, m: MemberProcess, what: str) -> str:
        return f"pyetcd member {m.name} ({m.client_url(self.tls)}) {what}; log {m.log_path}:\n{m.log_tail()}"

    def _stop_members(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = self._wire = None
        for m in self._members:
            m.stop()

    def stop(self) -> None:
        """Stop every member and remove the temporary directory (a given ``data_dir`` is kept)."""
        self._stop_members()
        self._members = []
        if self._dir is not None and self._given_dir is None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    # ---- between tests ----------------------------------------------------------------------
    def reset(self) -> None:
        """An empty keyspace, no leases, no users or roles, auth off, no alarms.

        The cheap path is a few calls (delete everything, revoke leases, delete users and
        roles): milliseconds. When a test left state those calls cannot undo (auth enabled,
        an alarm raised, members added or removed, a member stopped), the cluster is replaced by a fresh one
        on the same ports. Revisions keep growing across resets, as in any etcd after deletes.
        """
        if self._wire is None:
            raise RuntimeError("the member is not started")
        try:
            wire = self._wire
            if wire.auth_enabled() or wire.alarms() or wire.member_count() != self.size:
                self._replace()
                return
            wire.delete_all()
            for lease in wire.lease_ids():
                wire.lease_revoke(lease)
            for user in wire.users():
                wire.user_delete(user)
            for role in wire.roles():
                wire.role_delete(role)
        except grpc.RpcError:
            self._replace()

    def _replace(self) -> None:
        """Fresh data dirs, the same ports and certificates."""
        self._stop_members()
        for m in self._members:
            shutil.rmtree(m.data_dir, ignore_errors=True)
        self.token = f"pyetcd-embed-{time.time_ns():x}"
        for m in self._members:
            m.spawn(self._args(m))
        self._wait_healthy()

    # ---- context managers ----------------------------------------------------------------
    def __enter__(self) -> Etcd:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Etcd:
        """Start in a worker thread so the caller's event loop keeps running meanwhile."""
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        return f"Etcd(endpoints={self.endpoints}, tls={self.tls})"

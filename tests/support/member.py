"""Start, stop, kill and restart real etcd and pyetcd processes with mutual TLS.

Both binaries get the same etcd flags, so whatever a test does to one it can do to the other.
Processes are started in their own session and always ended by their own pid/process group
(SIGTERM, then SIGKILL), never by name: other engineers run members on this machine too.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from pyetcd.api import rpc_pb2, rpc_pb2_grpc
from support.ports import free_port
from support.tls import CertPaths, ClientTLS

ETCD_BIN = "/usr/bin/etcd"
ETCDCTL_BIN = "/usr/bin/etcdctl"
HOST = "127.0.0.1"
_LIVE: set[Member] = set()
# what a member logs when a port it was given was taken meanwhile (etcd / the OS, and grpc's bind)
PORT_TAKEN = ("address already in use", "failed to bind to address")  # matched lower-cased: etcd, grpc, ours


# the two servers a "run on both" test runs on: real etcd first (it proves the test), then pyetcd
SERVER_KINDS = ("etcd", "pyetcd")


class MemberStartError(RuntimeError):
    """A member did not become healthy; the message carries its command and log tail."""


def pyetcd_command() -> list[str]:
    """argv prefix that starts pyetcd: ``$PYETCD_CMD`` (shell words) or the venv's ``bin/pyetcd``."""
    override = os.environ.get("PYETCD_CMD")
    return shlex.split(override) if override else [os.path.join(sys.prefix, "bin", "pyetcd")]


def pyetcd_unavailable_reason() -> str | None:
    """Why pyetcd cannot be started yet (its server module has not landed), or None if it can."""
    if os.environ.get("PYETCD_CMD"):
        return None
    if importlib.util.find_spec("pyetcd.cli") is None or importlib.util.find_spec("pyetcd.cli.server") is None:
        return ("pyetcd server not landed yet (no pyetcd.cli.server module); "
                "tests against real etcd still run")
    return None


@dataclass(eq=False)
class Member:
    """One running (or stopped) etcd-compatible member and everything needed to reach it."""

    kind: str  # "etcd" or "pyetcd"
    name: str
    base_dir: Path
    client_port: int
    peer_port: int
    certs: CertPaths
    extra_args: tuple[str, ...] = ()
    client_cert_auth: bool = True
    initial_cluster: str | None = None
    initial_cluster_state: str = "new"
    peer_auto_tls: bool = False  # --peer-auto-tls instead of the CA's peer certificates
    advertise_peer_port: int | None = None  # peers reach it here (a fault proxy), not at peer_port
    cluster_token: str = field(default_factory=lambda: f"pyetcd-test-{uuid.uuid4().hex[:12]}")
    env: dict[str, str] = field(default_factory=dict)  # added to the environment at (re)start, e.g. failpoints
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "output.log"

    @property
    def client_url(self) -> str:
        return f"https://{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{HOST}:{self.peer_port}"

    @property
    def advertised_peer_url(self) -> str:
        """The peer URL the cluster knows this member by: a proxy's in front of it, or its own."""
        return f"https://{HOST}:{self.advertise_peer_port or self.peer_port}"

    @property
    def grpc_target(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client_tls(self) -> ClientTLS:
        return self.certs.client_tls()

    def command(self) -> list[str]:
        """Full argv: the binary plus etcd's flags for a mutual-TLS member on 127.0.0.1."""
        binary = [ETCD_BIN] if self.kind == "etcd" else pyetcd_command()
        c = self.certs
        args = [
            "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.advertised_peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.advertised_peer_url}",
            "--initial-cluster-state", self.initial_cluster_state,
            "--initial-cluster-token", self.cluster_token,
            "--cert-file", str(c.server), "--key-file", str(c.server_key), "--trusted-ca-file", str(c.ca),
        ]
        if self.peer_auto_tls:
            args.append("--peer-auto-tls")
        else:
            args += ["--peer-cert-file", str(c.peer), "--peer-key-file", str(c.peer_key),
                     "--peer-trusted-ca-file", str(c.ca), "--peer-client-cert-auth"]
        if self.client_cert_auth:
            args.append("--client-cert-auth")
        return [*binary, *args, *self.extra_args]

    def start(self, timeout: float = 30.0) -> Member:
        """Spawn the process and wait until it serves a linearizable Range over mTLS."""
        self.spawn()
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def spawn(self) -> None:
        """Start the process without waiting (cluster members must all be up to elect a leader)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')}: {shlex.join(cmd)}\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             start_new_session=True, env={**os.environ, **self.env})
            except FileNotFoundError as e:
                raise MemberStartError(f"cannot start {self.kind}: {e}; `make deps` installs etcd, "
                                       "`make install` installs pyetcd") from e
        _LIVE.add(self)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Poll a linearizable Range until it succeeds; MemberStartError (with log tail) if it never does."""
        deadline = time.monotonic() + timeout
        last = "no attempt yet"
        with grpc_channel_for(self.grpc_target, self.client_tls()) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise MemberStartError(self._describe(f"exited with status {self.proc.returncode}"))
                try:
                    kv.Range(rpc_pb2.RangeRequest(key=b"health"), timeout=1.0)
                    return
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.PERMISSION_DENIED:  # auth on: still healthy (etcdctl agrees)
                        return
                    last = f"{e.code().name}: {e.details()}"
                time.sleep(0.1)
        raise MemberStartError(self._describe(f"not healthy after {timeout:.0f}s (last error {last})"))

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _describe(self, what: str) -> str:
        return (f"{self.kind} member {self.name} (pid {self.pid}, {self.client_url}) {what}\n"
                f"command: {shlex.join(self.command())}\nlog {self.log_path}, last lines:\n{self.log_tail()}")

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        # the process group this member leads (start_new_session): the member and any helpers
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout; returns the exit status (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            self._signal(signal.SIGCONT)  # a paused member must run to act on SIGTERM
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        self._signal(signal.SIGKILL)  # leftovers in the group, if any
        _LIVE.discard(self)
        return self.proc.returncode

    def kill9(self) -> None:
        """Crash the member: SIGKILL, no chance to flush anything that is not durable."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait(10)
        _LIVE.discard(self)

    def pause(self) -> None:
        """SIGSTOP, and wait until the kernel shows the process stopped (delivery is asynchronous)."""
        self._signal(signal.SIGSTOP)
        if self.proc is None:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return
            if state in ("T", "t"):
                return
            time.sleep(0.01)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def restart(self, timeout: float = 30.0) -> Member:
        """Stop (if running) and start again on the same ports and data dir."""
        self.stop()
        self.initial_cluster_state = "existing" if self.initial_cluster else self.initial_cluster_state
        return self.start(timeout)


def grpc_channel_for(target: str, tls: ClientTLS, *, options: list[tuple[str, int]] | None = None) -> grpc.Channel:
    """A secure channel to target with tls (no client certificate when tls.cert is None)."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=tls.key.read_bytes() if tls.key else None,
        certificate_chain=tls.cert.read_bytes() if tls.cert else None,
    )
    opts = [("grpc.max_receive_message_length", 2**31 - 1), ("grpc.max_send_message_length", 2**31 - 1)]
    return grpc.secure_channel(target, creds, options=opts + (options or []))


def _launch(members: list[Member], timeout: float) -> bool:
    """Spawn all, wait for all; False (all stopped, data dirs cleared) if a port was taken meanwhile."""
    try:
        for m in members:
            m.spawn()
        for m in members:
            m.wait_healthy(timeout)
        return True
    except BaseException as e:
        for m in members:
            m.stop()
        clash = [m for m in members if any(s in m.log_tail(200).lower() for s in PORT_TAKEN)]
        if isinstance(e, MemberStartError) and clash:
            for m in members:
                shutil.rmtree(m.data_dir, ignore_errors=True)
                m.log_path.rename(m.log_path.with_suffix(f".port-clash-{uuid.uuid4().hex[:6]}.log"))
            return False
        raise


def _start(kind: str, dirs: dict[str, Path], certs: CertPaths, extra_args: tuple[str, ...] | list[str],
           client_cert_auth: bool, timeout: float, peer_auto_tls: bool = False,
           advertise_peer: Callable[[Member], int] | None = None,
           env: dict[str, str] | None = None) -> list[Member]:
    """Start one cluster with a member per (name, dir); new ports and a retry after a port clash.
    ``advertise_peer(member)`` (if given) returns the port the member advertises to its peers;
    ``env`` is added to each member's environment (Member.env: at every start)."""
    if kind not in ("etcd", "pyetcd"):
        raise ValueError(f"unknown member kind {kind!r}")
    for _ in range(3):
        token = f"pyetcd-test-{uuid.uuid4().hex[:12]}"
        members = [Member(kind=kind, name=n, base_dir=Path(d), client_port=free_port(), peer_port=free_port(),
                          certs=certs, extra_args=tuple(extra_args), client_cert_auth=client_cert_auth,
                          cluster_token=token, peer_auto_tls=peer_auto_tls, env=dict(env or {}))
                   for n, d in dirs.items()]
        if advertise_peer is not None:
            for m in members:
                m.advertise_peer_port = advertise_peer(m)
        if len(members) > 1:
            initial = ",".join(f"{m.name}={m.advertised_peer_url}" for m in members)
            for m in members:
                m.initial_cluster = initial
        if _launch(members, timeout):
            return members
    raise MemberStartError(f"could not find free ports for {list(dirs)} after 3 attempts")


def start_cluster(kind: str, base_dir: Path, certs: CertPaths, *, size: int = 3,
                  extra_args: tuple[str, ...] | list[str] = (), client_cert_auth: bool = True,
                  timeout: float = 60.0, peer_auto_tls: bool = False,
                  advertise_peer: Callable[[Member], int] | None = None,
                  env: dict[str, str] | None = None) -> list[Member]:
    """A size-member cluster of kind "etcd" or "pyetcd" (peer mTLS, or --peer-auto-tls), members
    m0.. in base_dir/<name>; ``advertise_peer`` and ``env``: see ``_start``."""
    dirs = {f"m{i}": Path(base_dir) / f"m{i}" for i in range(size)}
    return _start(kind, dirs, certs, extra_args, client_cert_auth, timeout, peer_auto_tls, advertise_peer, env)


def start_member(kind: str, base_dir: Path, certs: CertPaths, *, name: str = "m0",
                 extra_args: tuple[str, ...] | list[str] = (), client_cert_auth: bool = True,
                 timeout: float = 30.0, env: dict[str, str] | None = None) -> Member:
    """A single-member cluster of kind "etcd" or "pyetcd" from an empty data dir in base_dir;
    ``env``: see ``_start``."""
    return _start(kind, {name: Path(base_dir)}, certs, extra_args, client_cert_auth, timeout, env=env)[0]


def start_real_etcd(base_dir: Path, certs: CertPaths, **kw: object) -> Member:
    """Real etcd (/usr/bin/etcd) from an empty data dir; see start_member for keywords."""
    return start_member("etcd", base_dir, certs, **kw)  # type: ignore[arg-type]


def start_pyetcd(base_dir: Path, certs: CertPaths, **kw: object) -> Member:
    """pyetcd (``pyetcd_command()``) from an empty data dir; see start_member for keywords."""
    return start_member("pyetcd", base_dir, certs, **kw)  # type: ignore[arg-type]


def stop_all() -> None:
    """Stop every member this process started and has not stopped (a safety net for atexit)."""
    for m in list(_LIVE):
        m.stop()


atexit.register(stop_all)

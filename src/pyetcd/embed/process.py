"""One pyetcd member as a child process (``sys.executable -m pyetcd``), started and stopped by its pid.

A child process rather than a server in the caller's event loop: the member keeps its own
GIL, signals and asyncio loop, the caller's process never imports the generated stubs (see
wire.py), and stopping it is a SIGTERM that etcd's own shutdown path handles.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now (a clash before the member binds it is retried by the caller)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(eq=False)
class MemberProcess:
    """The command line, ports, data dir and process of one member."""

    name: str
    base_dir: Path
    host: str = "127.0.0.1"
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "pyetcd.log"

    def client_url(self, tls: bool) -> str:
        return f"{'https' if tls else 'http'}://{self.host}:{self.client_port}"

    def peer_url(self, tls: bool) -> str:
        return f"{'https' if tls else 'http'}://{self.host}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, args: list[str]) -> None:
        """Start ``python -m pyetcd ARGS`` in its own session; its output goes to ``log_path``."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "pyetcd", *args], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=out, start_new_session=True)

    def exit_status(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log written)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after ``timeout``; always reaps the process."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

"""contrib/pyetcd.service: a unit like etcd's, whose settings are pyetcd's, and the readiness
notification (Type=notify) pyetcd sends once it serves clients."""

from __future__ import annotations

import configparser
import os
import socket
import subprocess
import sys
from pathlib import Path

from pyetcd.cli.flags import FLAGS
from support import free_port

UNIT = Path(__file__).resolve().parents[1] / "contrib" / "pyetcd.service"


def test_unit_names_real_settings() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"].split()[0].endswith("/pyetcd")
    known = {f.env for f in FLAGS}
    env_names = [e.split("=", 1)[0] for e in service.get("Environment", "").split("\n") if e]
    assert env_names and all(name in known for name in env_names), env_names
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_ready_is_sent_once_clients_are_served(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(30)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
        proc = subprocess.Popen([sys.executable, "-m", "pyetcd", "--data-dir", str(tmp_path / "d"),
                                 "--listen-client-urls", url, "--advertise-client-urls", url,
                                 "--listen-peer-urls", f"http://127.0.0.1:{free_port()}"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            assert sock.recv(64) == b"READY=1"
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass  # already listening when READY came
        finally:
            proc.terminate()
            assert proc.wait(20) == 0

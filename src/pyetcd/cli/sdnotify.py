"""systemd's readiness protocol (``Type=notify``): tell the service manager once clients are served.

etcd sends ``READY=1`` when it is ready to serve client requests; so does pyetcd, so that units
ordered ``After=pyetcd.service`` start once the member answers, not merely once it was forked.
Without ``$NOTIFY_SOCKET`` (not run by systemd) it does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to ``$NOTIFY_SOCKET``; True if it was sent."""
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not path:
        return False
    if path.startswith("@"):  # an abstract socket
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.connect(path)
            s.sendall(state.encode())
        except OSError:
            return False
    return True

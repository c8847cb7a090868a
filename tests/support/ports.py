"""Free TCP ports on 127.0.0.1 for test members; never etcd's well-known 2379/2380.

Other engineers run tests on the same machine at the same time, so ports come from the kernel
(bind to port 0) rather than a fixed range, and a port handed out once is not handed out again
by this process. The small window between closing the probe socket and the member binding it is
covered by start_member retrying on "address already in use".
"""

from __future__ import annotations

import socket
import threading

_RESERVED = {2379, 2380}
_given: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port on host that is free now and was not returned before in this process."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        with _lock:
            if port not in _RESERVED and port not in _given:
                _given.add(port)
                return port
    raise RuntimeError(f"no free port found on {host}")

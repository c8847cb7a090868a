"""The ``pyetcd`` command (and ``python -m pyetcd``): chooses gRPC core's I/O engine, then runs
the server (cli/server.py).

gRPC core reads ``GRPC_EXPERIMENTS`` once, while grpc is imported, so this module sets it before
anything imports grpc and must stay free of imports that would. The two experiments turned off
move the sockets gRPC accepts (client port, peer port) from the EventEngine, where each read
hops from its poller thread to a worker thread and on to the completion queue, back to the
polling done by the thread that waits on the completion queue. Measured on one member behind
the front, same-run A/B, etcd's benchmark tool: serializable range at 100 clients +25-29 %
req/s (CPU per request -24 to -28 %), at 1 client +26 %; put at 100 clients +15-17 %, at 1 client
+5 %; three members: serializable range +31 %, put unchanged. At one client the member's futex
calls per request fall from 6.5 to 1.4. A ``GRPC_EXPERIMENTS`` already in the environment is
left as it is.
"""

from __future__ import annotations

import os

GRPC_EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints"


def main() -> int:
    os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)
    from pyetcd.cli.server import main as serve

    return serve()

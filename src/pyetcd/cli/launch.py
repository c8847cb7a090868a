"""The ``pyetcd`` command (and ``python -m pyetcd``): chooses gRPC core's I/O engine, its fork
support and the scheduling policy, then runs the server (cli/server.py).

gRPC core reads ``GRPC_EXPERIMENTS`` once, while grpc is imported, so this module sets it before
anything imports grpc and must stay free of imports that would. The two experiments turned off
move the sockets gRPC accepts (client port, peer port) off the EventEngine (its own poller and
worker threads, which hand each read on: thread wake-ups, seen as futex calls) and back to the
polling done by the thread that waits on gRPC's completion queue. Measured with etcd's
benchmark tool, same-run A/B against the defaults: on one member, serializable range +25-29 %
req/s at 100 clients (CPU per request -24 to -28 %) and +26 % at 1 client, put +15-17 % at 100
clients and +5 % at 1; on three members, serializable range +31 % and put +2 to +11 % (three
runs). At one client a member's futex calls per request fall from 11 to 3.6 (6.6 to 1.4 with
``--client-urls-http=false``). A ``GRPC_EXPERIMENTS`` already in the environment is kept.

gRPC's fork support is turned off (``GRPC_ENABLE_FORK_SUPPORT=false``, unless set): a member
forks once, to start its front (gateway/handover.py), and the child only execs a new Python.
uvloop forks through libuv's ``fork()``, which runs gRPC's fork handlers in the member while
its threads poll: 2 of 40 three-member starts died of SIGSEGV right after the peer listener
came up, 0 of 140 with the handlers off. (asyncio's loop forks through Python's
``_posixsubprocess``, which uses vfork and runs no handlers.)

It also puts the server under Linux's SCHED_BATCH policy before any thread starts, so every
thread (gRPC's poller, the apply thread, the front's process) inherits it. A member's threads
wake each other several times per request (gRPC's poller thread hands each event to the event
loop; the front and the member wake each other through their socket); under the default policy a
woken thread preempts the one that woke it, often while that one holds the GIL, which the woken
thread then waits for. Batch threads do not preempt on wake-up; they still share the CPU
fairly. Same-run A/B (etcd's benchmark tool, medians; one member 5 rounds, three members 3):
one member at 100 clients, serializable range +21 % req/s and put +7 %; at 1 client put +4 %;
the rest within +-2 %. Three members at 100 clients: put +12 % (+6 % in another run),
serializable range +8 %, linearizable range +13 %; at 1 client put +18 % (a lone client's
linearizable range on three members measures which member leads, about 1,030 req/s against 760,
not the policy). A policy the operator chose (``chrt``, systemd's ``CPUSchedulingPolicy=``) is
kept, and ``PYETCD_SCHED_BATCH=0`` keeps the default one (for such A/B runs).
"""

from __future__ import annotations

import os

GRPC_EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints"


def use_batch_scheduling() -> None:
    """SCHED_BATCH for this thread and every thread and process started after it, unless an
    operator set a policy other than the default, or PYETCD_SCHED_BATCH=0."""
    if os.environ.get("PYETCD_SCHED_BATCH") == "0" or not hasattr(os, "SCHED_BATCH"):
        return
    try:
        if os.sched_getscheduler(0) == os.SCHED_OTHER:
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError:  # refused (a seccomp profile): the default policy serves, a little slower
        pass


def main() -> int:
    os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    use_batch_scheduling()
    from pyetcd.cli.server import main as serve

    return serve()

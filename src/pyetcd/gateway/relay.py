"""The front's own process: ``python -m pyetcd.gateway.relay HANDOVER_FD TLS_END FD:TLS:BACKEND ...``.

The member binds the client URLs and starts this process with their listening sockets. Here
each connection is classified (gateway/front.py); gRPC is relayed to the member's private gRPC
listener, HTTP is passed back to the member, unread, over the HANDOVER_FD unix socket
(SCM_RIGHTS, one byte naming the URL). TLS_END is ``-``, or the JSON of the TLS settings with
which the native relay ends TLS on https URLs; it then tells the member who each TLS client is
on the same socket (gateway/identities.py). Relaying costs CPU on every gRPC message: in a process
of its own it runs on another core instead of the member's event loop. The process exits when
the member's end of HANDOVER_FD closes (the member stopped or died).

``PYETCD_FRONT_RELAY=python`` in the environment relays in Python instead of gateway/_pump:
bench/front.py measures one against the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys

from .front import Front, HandOver


async def run(handover: socket.socket, specs: list[tuple[int, bool, str]], native: bool = True,
              tls_end: dict[str, object] | None = None) -> None:
    loop = asyncio.get_running_loop()
    handover.setblocking(False)

    def hand_over_to(index: int) -> HandOver:
        async def hand_over(conn: socket.socket) -> None:
            try:
                socket.send_fds(handover, [bytes([index])], [conn.fileno()])
            except BlockingIOError:  # the member is not reading: wait for room once, then give up
                await asyncio.sleep(0.05)
                socket.send_fds(handover, [bytes([index])], [conn.fileno()])
            finally:
                conn.close()
        return hand_over

    # the member decided (gateway/serve.py): it serves gRPC in plaintext behind these URLs
    ends_tls = dict(tls_end, identity_fd=handover.fileno()) if tls_end else None
    fronts = [Front(socket.socket(fileno=fd), tls, backend, hand_over_to(i), native, ends_tls)
              for i, (fd, tls, backend) in enumerate(specs)]
    for front in fronts:
        front.start()
    member_gone = loop.create_future()

    def readable() -> None:
        with contextlib.suppress(BlockingIOError):
            if not handover.recv(1) and not member_gone.done():
                member_gone.set_result(None)
    loop.add_reader(handover.fileno(), readable)
    await member_gone
    for front in fronts:
        await front.stop()


def parse(argv: list[str]) -> tuple[int, dict[str, object] | None, list[tuple[int, bool, str]]]:
    specs = []
    for arg in argv[2:]:
        fd, tls, backend = arg.split(":", 2)
        specs.append((int(fd), tls == "1", backend))
    return int(argv[0]), None if argv[1] == "-" else json.loads(argv[1]), specs


def main(argv: list[str] | None = None) -> int:
    # a SIGTERM to the member's process group is the member's to act on: this process ends
    # when the member closes its end of HANDOVER_FD, so no connection is dropped before that
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handover_fd, tls_end, specs = parse(sys.argv[1:] if argv is None else argv)
    # gRPC bytes are relayed by gateway/_pump's own thread; the asyncio loop only accepts and classifies
    native = os.environ.get("PYETCD_FRONT_RELAY", "native") != "python"
    asyncio.run(run(socket.socket(fileno=handover_fd), specs, native, tls_end))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

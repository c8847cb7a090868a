"""etcdserverpb.Watch over gRPC: one bidirectional stream, many watchers (see pyetcd.watch).

The handler reads requests in its own task (as etcd's recvLoop) and sends responses from the
stream's ordered queue (etcd's sendLoop). A client that half-closes keeps its watchers, as in
etcd; when the stream or the connection goes away, grpc cancels the handler and every watcher
of the stream is canceled and freed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from pyetcd.api import rpc_pb2
from pyetcd.server.etcd_server import EtcdServer
from pyetcd.watch import WatchStream, encode

from .authguard import Identify, grpc_identity, watch_refusal
from .limits import GRPC_OVERHEAD_BYTES

log = logging.getLogger("pyetcd.rpc.watch")
MIN_PROGRESS_INTERVAL = 0.1  # etcd's minWatchProgressInterval


class WatchService:
    def __init__(self, server: EtcdServer, identify: Identify = grpc_identity) -> None:
        self.s = server
        self.identify = identify
        self.hub = server.watch_hub
        self.max_response_bytes = server.cfg.max_request_bytes + GRPC_OVERHEAD_BYTES
        interval = server.cfg.watch_progress_notify_interval
        if 0 < interval < MIN_PROGRESS_INTERVAL:
            log.warning("adjusting watch progress notify interval to minimum period %.1fs", MIN_PROGRESS_INTERVAL)
            interval = MIN_PROGRESS_INTERVAL
        self.progress_interval = interval
        self._hdr_key = (-1, -1)
        self._hdr = b""

    def _header(self, rev: int) -> bytes:
        """The encoded ResponseHeader at ``rev``; consecutive responses mostly share one."""
        key = (rev, self.s.term)
        if key != self._hdr_key:
            self._hdr = encode.header(self.s.cluster_id, self.s.id, rev, self.s.term)
            self._hdr_key = key
        return self._hdr

    async def Watch(self, request_iterator: AsyncIterator[rpc_pb2.WatchRequest], context: Any) -> AsyncIterator[bytes]:
        stream = WatchStream(self.hub, self._header, max_response_bytes=self.max_response_bytes,
                             progress_interval=self.progress_interval)
        reader = asyncio.get_running_loop().create_task(self._recv(stream, request_iterator, context))
        try:
            while (msgs := await stream.next_messages()) is not None:
                for msg in msgs:
                    yield msg
        finally:
            reader.cancel()
            stream.close()

    async def _recv(self, stream: WatchStream, requests: AsyncIterator[rpc_pb2.WatchRequest], context: Any) -> None:
        try:
            async for req in requests:
                refusal = req.HasField("create_request") and watch_refusal(self.s, context, req.create_request,
                                                                           self.identify)
                if refusal:
                    stream.refuse(refusal)
                    continue
                stream.handle(req)
                await stream.wait_room()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the client's side broke: end the stream like etcd's recvLoop error
            log.debug("watch stream receive failed: %s", e)
            stream.close()

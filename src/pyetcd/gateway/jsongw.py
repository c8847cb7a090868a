"""etcd's v3 JSON gateway: each path calls the servicer method gRPC calls (rpc/services.py),
wrapped the same way (rpc/service.wrap_handler: the CallGuard and the call counters), with a
context built from the HTTP request (gateway/context.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format, symbol_database
from google.protobuf.message import Message

from pyetcd.rpc.callcontext import CallAborted, CallContext
from pyetcd.rpc.grpcserver import ClientAPI
from pyetcd.rpc.service import DESCRIPTORS, wrap_handler

from . import jsonpb
from .access import CORS
from .context import peer_identity
from .routes import ROUTES

log = logging.getLogger("pyetcd.gateway")
_db = symbol_database.Default()
JSON = "application/json"


@dataclass
class Endpoint:
    fn: Callable[..., Any]
    request_type: type[Message]
    response_type: type[Message]
    client_streaming: bool
    server_streaming: bool


def endpoints(api: ClientAPI) -> dict[str, Endpoint]:
    servicers = dict(api.services)
    found = {}
    for path, route in ROUTES.items():
        servicer = servicers.get(route.service)
        fn = getattr(servicer, route.method, None)
        if fn is None:
            continue  # not served: the path answers 404, as an unregistered gateway path does
        service = DESCRIPTORS[route.service]
        method = service.methods_by_name[route.method]
        found[path] = Endpoint(wrap_handler(fn, service, method, api.guard, api.observer),
                               _db.GetSymbol(method.input_type.full_name),
                               _db.GetSymbol(method.output_type.full_name),
                               method.client_streaming, method.server_streaming)
    return found


def context_for(request: web.Request) -> CallContext:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    peer = request.remote or ""
    token = request.headers.get("Authorization")
    # grpc-gateway forwards the Authorization header as the "authorization" metadata
    return CallContext((("authorization", token),) if token else (), peer_identity(ssl_object), f"http:{peer}")


def _error(code: grpc.StatusCode, message: str) -> web.Response:
    return web.Response(status=jsonpb.HTTP_STATUS.get(code.name, 500), body=jsonpb.error_body(code, message),
                        content_type=JSON)


class JSONGateway:
    def __init__(self, api: ClientAPI) -> None:
        self.endpoints = endpoints(api)

    def add_routes(self, app: web.Application) -> None:
        for path in self.endpoints:
            app.router.add_post(path, self.handle)
            app.router.add_post(path.replace("/v3/", "/v3beta/", 1), self.handle)  # etcd's old prefix

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ep = self.endpoints[request.path.replace("/v3beta/", "/v3/", 1)]
        ctx = context_for(request)
        if ep.client_streaming:
            return await self._stream(request, ep, ctx, self._requests(request, ep))
        try:
            req = jsonpb.loads(await request.read(), ep.request_type())
        except (json_format.ParseError, UnicodeDecodeError) as e:
            return _error(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        if ep.server_streaming:
            return await self._stream(request, ep, ctx, req)
        try:
            resp = await ep.fn(req, ctx)
        except CallAborted as e:
            return _error(e.status, e.details)
        if isinstance(resp, bytes):  # a range reply encoded straight from stored KeyValues
            resp = ep.response_type.FromString(resp)
        return web.Response(body=jsonpb.dumps(resp), content_type=JSON)

    @staticmethod
    async def _requests(request: web.Request, ep: Endpoint) -> AsyncIterator[Message]:
        async for obj in jsonpb.objects(request.content.iter_any()):
            yield jsonpb.loads(obj, ep.request_type())

    async def _stream(self, request: web.Request, ep: Endpoint, ctx: CallContext,
                      arg: Any) -> web.StreamResponse:
        """One ``{"result": ...}`` line per response, flushed as it comes; an error ends the stream."""
        resp = web.StreamResponse(headers={"Content-Type": JSON, **CORS})
        await resp.prepare(request)
        try:
            async for item in ep.fn(arg, ctx):
                msg = ep.response_type.FromString(item) if isinstance(item, bytes) else item
                await resp.write(b'{"result":' + jsonpb.dumps(msg) + b"}\n")
        except CallAborted as e:
            await resp.write(jsonpb.stream_error(e.status, e.details) + b"\n")
        except (json_format.ParseError, ValueError) as e:
            await resp.write(jsonpb.stream_error(grpc.StatusCode.INVALID_ARGUMENT, str(e)) + b"\n")
        except ConnectionResetError:
            log.debug("gateway stream %s: client went away", request.path)
        return resp

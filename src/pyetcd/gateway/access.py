"""etcd's accessController in front of every HTTP request (embed/serve.go): CORS headers, OPTIONS
answered, and — with --client-cert-auth and auth enabled — gateway calls refused from a client
certificate that has a CommonName (the gateway cannot use it as the user, and etcd says so rather
than ignore it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pyetcd.server.etcd_server import EtcdServer

from .context import peer_identity

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CORS = {"Access-Control-Allow-Methods": "POST, GET, OPTIONS, PUT, DELETE", "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": "accept, content-type, authorization"}
CN_REFUSED = "CommonName of client sending a request against gateway will be ignored and not used as expected\n"


def access_controller(server: EtcdServer) -> Any:  # an aiohttp middleware
    @web.middleware
    async def control(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.path.startswith(("/v3/", "/v3beta/")) and server.cfg.client_tls.client_cert_auth
                and server.auth_state.enabled and request.transport is not None):
            ident = peer_identity(request.transport.get_extra_info("ssl_object"))
            if ident.get("x509_common_name"):
                return web.Response(status=400, text=CN_REFUSED, headers={"X-Content-Type-Options": "nosniff"})
        if request.method == "OPTIONS":
            return web.Response(status=200, headers=CORS)
        resp = await handler(request)
        if not resp.prepared:  # (a stream sent its headers already, with CORS among them)
            resp.headers.update(CORS)
        return resp
    return control

"""/verify's two baselines, run under the same uvicorn flags as the auth service.

- `raw`: a bare ASGI callable, the server's own ceiling: it reads the same header
  and answers 200 with the same response headers as /verify's 200 (the five
  identity headers, request id, cache-control, content-length), and nothing else.
- `routed`: a Starlette app answering through its router and the service's
  request-id middleware (the shell every other auth route runs in).

The difference between /verify and `raw` is /verify's own work; `routed` is what
an ordinary Starlette endpoint would cost.
"""

from __future__ import annotations

import itertools
import secrets

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from shared.http import RequestIdMiddleware

_PREFIX = secrets.token_hex(4)
_COUNTER = itertools.count()
# /verify's identity headers (default prefix X-Auth-), with values shaped like the bench user's:
# uvicorn checks every answer header, so the baselines send the same ones.
IDENTITY = (
    (b"x-auth-user-id", secrets.token_hex(12).encode()),
    (b"x-auth-email", f"verify-{secrets.token_hex(4)}@bench.example.com".encode()),
    (b"x-auth-username", b""),
    (b"x-auth-role", b"USER"),
    (b"x-auth-session-id", secrets.token_urlsafe(16).encode()),
)


async def raw(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI ceiling: the credential header read, the same answer headers as /verify's 200."""
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    sent = dict(scope["headers"])
    credential = sent.get(b"authorization") or sent.get(b"cookie")  # a bearer token or the session cookie
    request_id = f"{_PREFIX}{next(_COUNTER):08x}".encode()
    headers = [
        *IDENTITY,
        (b"x-request-id", request_id),
        (b"cache-control", b"no-store"),
        (b"content-length", b"0"),
    ]
    status = 200 if credential or scope["path"] == "/" else 401
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _ok(request: Request) -> Response:
    credential = request.headers.get("authorization") or request.headers.get("cookie")
    status = 200 if credential or request.url.path == "/" else 401
    headers = {name.decode(): value.decode() for name, value in IDENTITY}
    return Response(status_code=status, headers={**headers, "cache-control": "no-store"})


def routed() -> Starlette:
    """A routed Starlette endpoint with the service's request-id middleware (uvicorn --factory)."""
    routes = [Route("/", _ok, methods=["GET", "HEAD"]), Route("/verify", _ok, methods=["GET", "HEAD"])]
    return Starlette(routes=routes, middleware=[Middleware(RequestIdMiddleware)])

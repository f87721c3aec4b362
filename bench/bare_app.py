"""The baseline: a bare Starlette app, one GET route, no middleware.

Run under exactly the same uvicorn settings as the auth service (see
`bench.config.UVICORN_FLAGS`), so the difference is the service's own work.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/", ok, methods=["GET"])])

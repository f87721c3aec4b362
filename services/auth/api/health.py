"""Liveness and readiness; neither ever answers `store_unavailable`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.api.common import ctx


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready once keys and the revocation state are loaded; the store's state is reported, not required.

    /verify keeps serving from memory while MongoDB is briefly down, so draining
    every replica on a store blip would turn a partial outage into a full one.
    """
    context = ctx(request)
    store_ok = await context.store.ping()
    checks = {"keys": "ok", "store": "ok" if store_ok else "unavailable"}
    ready = True
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )

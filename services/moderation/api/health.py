"""Liveness never looks at the store; readiness is the store answering."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.errors import ErrorCode

from .common import engine


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    store = engine(request).store
    if await store.ping():
        return JSONResponse({"status": "ready", "store": store.kind})
    return JSONResponse(
        {"status": "not_ready", "store": store.kind, "code": ErrorCode.STORE_UNAVAILABLE},
        status_code=503,
        headers={"Retry-After": "2"},
    )

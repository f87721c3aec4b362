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
    every replica on a store blip would turn a partial outage into a full one. A
    process that never loaded the revocation state cannot answer /verify: not ready.
    """
    context = ctx(request)
    store_ok = await context.store.ping()
    staleness = context.revocations.staleness_s()
    checks: dict[str, object] = {
        "keys": "ok",
        "store": "ok" if store_ok else "unavailable",
        "revocations": {
            "state": "current" if context.revocations.usable() else "stale",
            "staleness_ms": None if staleness is None else round(staleness * 1000),
            "grace_ms": context.settings.verify_stale_grace_ms,
        },
        # Reported, not required: every check has a fail mode, and a refused key is the same
        # on every replica, so draining them would not help.
        "moderation": context.protection.client.health(),
    }
    if staleness is None:
        return JSONResponse({"status": "not_ready", "checks": checks}, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})

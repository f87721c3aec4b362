"""GET /.well-known/jwks.json: public keys only, cacheable; empty in HS256 mode."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.api.common import ctx


async def jwks(request: Request) -> Response:
    context = ctx(request)
    max_age = context.settings.jwks_max_age_s
    return JSONResponse(context.tokens.ring.jwks(), headers={"Cache-Control": f"public, max-age={max_age}"})

"""POST /api/user/verify and /api/user/verify/resend: LibreChat's paths and answers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.api.common import NO_STORE, ctx
from services.auth.schemas import EmailRequest, VerifyEmailRequest
from shared.http import parse_body

VERIFIED = "Email verification was successful"
RESENT = "If the address has an account that still needs verifying, a new link is on its way."


async def verify_email(request: Request) -> Response:
    body = await parse_body(request, VerifyEmailRequest)
    await ctx(request).verification.verify(body.email, body.token)
    return JSONResponse({"message": VERIFIED, "status": "success"}, headers=NO_STORE)


async def resend_verification(request: Request) -> Response:
    """The same answer for every address: whether it exists, or is verified, is never told."""
    body = await parse_body(request, EmailRequest)
    await ctx(request).verification.resend(body.email)
    return JSONResponse({"message": RESENT, "status": "success"}, headers=NO_STORE)

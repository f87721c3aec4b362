"""POST /api/user/verify and /api/user/verify/resend: LibreChat's paths and answers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.api.common import NO_STORE, client_ip, ctx
from services.auth.schemas import EmailRequest, VerifyEmailRequest
from shared.http import parse_body

VERIFIED = "Email verification was successful"
RESENT = "If the address has an account that still needs verifying, a new link is on its way."


async def verify_email(request: Request) -> Response:
    context = ctx(request)
    await context.protection.before_verify_email(client_ip(request), submission=True)
    body = await parse_body(request, VerifyEmailRequest)
    await context.verification.verify(body.email, body.token)
    return JSONResponse({"message": VERIFIED, "status": "success"}, headers=NO_STORE)


async def resend_verification(request: Request) -> Response:
    """The same answer for every address: whether it exists, or is verified, is never told."""
    context = ctx(request)
    await context.protection.before_verify_email(client_ip(request))
    body = await parse_body(request, EmailRequest)
    await context.verification.resend(body.email)
    return JSONResponse({"message": RESENT, "status": "success"}, headers=NO_STORE)

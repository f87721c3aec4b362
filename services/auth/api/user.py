"""GET /api/user (the caller) and GET /api/config (what the login page may offer)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.accounts import public_user
from services.auth.api.common import NO_STORE, ctx, require_access, unauthorized


async def current_user(request: Request) -> Response:
    caller = await require_access(request)
    user = await ctx(request).accounts.find_by_id(caller.claims.user_id)
    if user is None:
        raise unauthorized("The account no longer exists.")
    return JSONResponse(public_user(user), headers=NO_STORE)


async def config(request: Request) -> Response:
    settings = ctx(request).settings
    return JSONResponse(
        {
            "emailLoginEnabled": settings.allow_email_login,
            "registrationEnabled": settings.allow_registration,
            "socialLoginEnabled": settings.allow_social_login,
            "socialRegistrationEnabled": settings.allow_social_registration,
            "passwordResetEnabled": False,
            "emailEnabled": False,
            "minPasswordLength": settings.min_password_length,
        }
    )

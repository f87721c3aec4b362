"""Password reset (LibreChat's /api/auth/requestPasswordReset and /resetPassword) and change."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.api.common import NO_STORE, client_ip, ctx, require_access
from services.auth.context import AuthContext
from services.auth.devices import DEVICE_COOKIE
from services.auth.schemas import ChangePasswordRequest, EmailRequest, ResetPasswordRequest
from shared.errors import ApiError, ErrorCode
from shared.http import parse_body

REQUESTED = "If an account with that email exists, a password reset link has been sent to it."
RESET = "Password reset was successful"
CHANGED = "Password changed; every other session was signed out."


def _require_reset(context: AuthContext) -> None:
    if not context.settings.allow_password_reset:
        raise ApiError(403, ErrorCode.PASSWORD_RESET_DISABLED, "Password reset is disabled.")


async def request_password_reset(request: Request) -> Response:
    """The same answer for every address, and never a link: the link travels only by mail."""
    context = ctx(request)
    _require_reset(context)
    await context.protection.before_reset_password(client_ip(request))
    body = await parse_body(request, EmailRequest)
    await context.password_reset.request(body.email)
    return JSONResponse({"message": REQUESTED}, headers=NO_STORE)


async def reset_password(request: Request) -> Response:
    context = ctx(request)
    _require_reset(context)
    await context.protection.before_reset_password(client_ip(request), submission=True)
    body = await parse_body(request, ResetPasswordRequest)
    if body.password != body.confirm_password:
        raise ApiError(422, ErrorCode.INVALID_INPUT, "confirm_password: passwords do not match")
    await context.password_reset.reset(body.userId, body.token, body.password)
    return JSONResponse({"message": RESET}, headers=NO_STORE)


async def change_password(request: Request) -> Response:
    """The signed-in caller's password; this session stays, every other one ends."""
    caller = await require_access(request)
    context = ctx(request)
    body = await parse_body(request, ChangePasswordRequest)
    ended = await context.password_change.change(
        caller.claims.user_id,
        caller.session.id,
        body.current_password,
        body.new_password,
        ip=client_ip(request),
        device_cookie=request.cookies.get(DEVICE_COOKIE),
    )
    return JSONResponse({"message": CHANGED, "revoked": ended}, headers=NO_STORE)

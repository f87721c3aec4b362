"""/api/auth/2fa/*: LibreChat's two-factor paths and shapes, with its holes closed.

Every route but verify-temp needs a live access token. Turning 2FA on needs the current password
(at enable, or at confirm for clients that enable without a body); changing an existing factor
(re-enrol, disable, regenerate) needs the password and a current code. A stolen access token
alone can neither remove the factor nor set one of the thief's that would lock the owner out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.accounts import normalize_email, user_id_of
from services.auth.api.auth import issue_session, set_device_cookie
from services.auth.api.common import NO_STORE, client_ip, ctx, require_access, unauthorized
from services.auth.counters import LOGINS
from services.auth.devices import DEVICE_COOKIE
from services.auth.protection import banned_error
from services.auth.schemas import (
    TwoFactorChangeRequest,
    TwoFactorConfirmRequest,
    TwoFactorProofRequest,
    TwoFactorTempRequest,
)
from services.auth.session_cookie import AMR_OTP, AMR_PASSWORD
from services.auth.sessions import StaleCredentials
from services.auth.store import Document
from services.auth.two_factor.manager import Proof, invalid_temp_token
from shared.errors import DomainError, ErrorCode
from shared.http import parse_body

T = TypeVar("T")
SECOND_FACTOR_FAILURES = frozenset({ErrorCode.INVALID_2FA_CODE, ErrorCode.INVALID_2FA_TOKEN})


async def _caller(request: Request) -> Document:
    caller = await require_access(request)
    user = await ctx(request).accounts.find_by_id(caller.claims.user_id)
    if user is None:
        raise unauthorized("The account no longer exists.")
    return user


def _proof(body: TwoFactorProofRequest) -> Proof:
    return Proof(token=body.token or None, backup_code=body.backupCode or None)


def _password(body: TwoFactorChangeRequest | TwoFactorConfirmRequest) -> str | None:
    return body.password if body.password is not None else body.current_password


async def _change(
    request: Request,
    user: Document,
    body: TwoFactorChangeRequest | TwoFactorConfirmRequest,
    change: Callable[[], Awaitable[T]],
) -> T:
    return await password_limited(request, user, _password(body), change)


async def password_limited(
    request: Request, user: Document, password: str | None, change: Callable[[], Awaitable[T]]
) -> T:
    """Run a change that checks the current password under the login's throttles: a stolen access
    token (or session cookie) is not a way to guess the password without limit."""
    context = ctx(request)
    if not password:
        return await change()
    email = normalize_email(str(user.get("email", "")))
    gate = await context.protection.before_login(
        client_ip(request), email, request.cookies.get(DEVICE_COOKIE)
    )
    try:
        return await change()
    except DomainError as exc:
        if exc.code == ErrorCode.INVALID_CREDENTIALS:
            await context.protection.after_login_failure(gate)
            await context.audit.record("2fa_change_refused", user_id=user_id_of(user), outcome=exc.code.value)
        raise


async def enable(request: Request) -> Response:
    """POST (and GET, for older LibreChat clients): a pending secret and backup codes."""
    user = await _caller(request)
    body = (
        await parse_body(request, TwoFactorChangeRequest, allow_empty=True)
        if request.method == "POST"
        else TwoFactorChangeRequest()
    )
    two_factor = ctx(request).two_factor
    enrolment = await _change(
        request, user, body, lambda: two_factor.enable(user, _password(body), _proof(body))
    )
    return JSONResponse(
        {"otpauthUrl": enrolment.otpauth_url, "backupCodes": enrolment.backup_codes}, headers=NO_STORE
    )


async def confirm(request: Request) -> Response:
    user = await _caller(request)
    body = await parse_body(request, TwoFactorConfirmRequest)
    two_factor = ctx(request).two_factor
    await _change(request, user, body, lambda: two_factor.confirm(user, body.token, _password(body)))
    return JSONResponse({"message": "Two-factor authentication is enabled."}, headers=NO_STORE)


async def _code_limited(request: Request, user: Document, check: Callable[[], Awaitable[T]]) -> T:
    """A code checked for a signed-in user meets the login's second-step limits, and a wrong one
    counts as a failed login: a stolen access token cannot try codes (and burn the owner's time
    step) without limit."""
    context = ctx(request)
    ip = client_ip(request)
    email = normalize_email(str(user.get("email", "")))
    await context.protection.before_two_factor(ip, email)
    try:
        return await check()
    except DomainError as exc:
        if exc.code in SECOND_FACTOR_FAILURES:
            await context.protection.after_two_factor_failure(ip, email)
        raise


async def verify(request: Request) -> Response:
    user = await _caller(request)
    body = await parse_body(request, TwoFactorProofRequest)
    two_factor = ctx(request).two_factor
    await _code_limited(request, user, lambda: two_factor.verify(user, _proof(body)))
    return JSONResponse({"message": "The code is valid."}, headers=NO_STORE)


async def disable(request: Request) -> Response:
    user = await _caller(request)
    body = await parse_body(request, TwoFactorChangeRequest)
    two_factor = ctx(request).two_factor
    await _change(request, user, body, lambda: two_factor.disable(user, _password(body), _proof(body)))
    return JSONResponse({"message": "Two-factor authentication is disabled."}, headers=NO_STORE)


async def regenerate_backup_codes(request: Request) -> Response:
    user = await _caller(request)
    body = await parse_body(request, TwoFactorChangeRequest)
    two_factor = ctx(request).two_factor
    codes = await _change(
        request, user, body, lambda: two_factor.regenerate(user, _password(body), _proof(body))
    )
    return JSONResponse({"backupCodes": codes}, headers=NO_STORE)


async def verify_temp(request: Request) -> Response:
    """The login's second step: temp token and code in, the normal login answer and cookies out."""
    context = ctx(request)
    body = await parse_body(request, TwoFactorTempRequest)
    ip = client_ip(request)
    two_factor = context.two_factor
    try:
        claims = two_factor.read_temp(body.tempToken)
    except DomainError:
        await context.protection.before_two_factor(ip, None)  # a bad token is still counted
        raise
    await context.protection.before_two_factor(ip, claims.login_email)
    try:
        user = await two_factor.finish_login(claims, _proof(body))
    except DomainError as exc:
        if exc.code in SECOND_FACTOR_FAILURES:
            LOGINS.labels("2fa_failure").inc()
            await context.protection.after_two_factor_failure(ip, claims.login_email)
            await context.audit.record(
                "login_2fa_failed", user_id=claims.user_id, ip=ip, outcome=exc.code.value
            )
        raise
    ban = context.protection.user_ban(user_id_of(user))
    if ban is not None:
        raise banned_error(ban)
    state = await context.sessions.state(claims.user_id)  # read before the session is created
    try:
        response = await issue_session(
            request,
            user,
            ip,
            in_body=claims.in_body,
            epoch=claims.epoch,
            login_email=claims.login_email,
            amr=(AMR_PASSWORD, AMR_OTP),
        )
    except StaleCredentials:  # the sessions were revoked between the password and the code
        raise invalid_temp_token() from None
    LOGINS.labels("success").inc()
    if not claims.in_body and claims.login_email:  # this browser now counts as the owner's, as after login
        account = context.protection.account(claims.login_email)
        set_device_cookie(request, response, user, account, None, state.device_epoch)
    return response

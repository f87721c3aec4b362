"""/portal/account: the signed-in user's sessions, password and second factor, as forms.

The session cookie must verify within its refresh interval and name a live session (as
`require_access` checks an access token: revocations in memory, then the store); otherwise the
browser goes to `/portal/login?rd=<this page>`, which renews a live session's cookie and comes
back. Every change goes through the API's own code: `PasswordChange.change` (the current
password behind the login limiter, every other session ended, this one kept), the `TwoFactor`
manager under the same password throttle as `/api/auth/2fa/*`, and `SessionService.revoke`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from services.auth.accounts import user_id_of
from services.auth.api.common import client_ip, ctx
from services.auth.api.portal import banned_page
from services.auth.api.portal_refusals import password_hint, refusal_page
from services.auth.api.portal_support import (
    clear_session_cookie,
    message,
    page,
    read_form,
    redirect,
    session_cookie_claims,
)
from services.auth.api.two_factor import password_limited
from services.auth.devices import DEVICE_COOKIE
from services.auth.passwords import within_size_cap
from services.auth.portal.forms import (
    ChangePasswordForm,
    ConfirmTwoFactorForm,
    DisableTwoFactorForm,
    EndSessionForm,
    Form,
)
from services.auth.portal.qr import qr_svg, secret_of
from services.auth.protection import Banned
from services.auth.sessions import Session
from services.auth.store import Document
from services.auth.two_factor.manager import Proof
from shared.errors import DomainError, ErrorCode
from shared.timefmt import iso_utc

ACCOUNT_PATH = "/portal/account"
F = TypeVar("F", bound=Form)
T = TypeVar("T")
NOTICES = {
    "session_ended": "That device was signed out.",
    "password_changed": "Your password was changed; every other device was signed out.",
    "2fa_enabled": "Two-factor authentication is on.",
    "2fa_disabled": "Two-factor authentication is off.",
}


@dataclass(frozen=True)
class Visitor:
    """The signed-in user behind a valid session cookie, and that session."""

    user: Document
    session: Session

    @property
    def user_id(self) -> str:
        return user_id_of(self.user)


def _to_login(request: Request, status: int) -> Response:
    """Back through the sign-in page, which renews a live session's cookie and returns here."""
    server = ctx(request).settings.domain_server
    target = (server.rstrip("/") + ACCOUNT_PATH) if server else ""
    response = redirect("/portal/login" + (f"?rd={quote(target, safe='')}" if target else ""), status)
    return response


async def _visitor(request: Request, status: int = 302) -> Visitor | Response:
    context = ctx(request)
    claims = session_cookie_claims(request, expired_ok=False)
    if claims is None:
        return _to_login(request, status)
    access = claims.access
    revocations = context.revocations
    if revocations.is_revoked(access.session_id) or revocations.predates(access.user_id, access.epoch):
        return _ended(request, status)
    ban = context.protection.user_ban(access.user_id)
    if ban is not None:
        return banned_page(request, Banned(ban))
    session = await context.sessions.touch_live(access.session_id)
    user = await context.accounts.find_by_id(access.user_id) if session is not None else None
    if session is None or user is None or session.user_id != access.user_id:
        return _ended(request, status)
    return Visitor(user, session)


def _ended(request: Request, status: int) -> Response:
    response = _to_login(request, status)
    clear_session_cookie(ctx(request), response)
    return response


async def _visitor_and_form(request: Request, model: type[F]) -> tuple[Visitor, F] | Response:
    """CSRF first (a refused form changes nothing), then the session."""
    form = await read_form(request, model)
    if isinstance(form, Response):
        return form
    visitor = await _visitor(request, 303)
    if isinstance(visitor, Response):
        return visitor
    return visitor, form


def _device(agent: str | None) -> str:
    return (agent or "").strip()[:200] or "Unknown device"


async def _account_page(
    request: Request,
    visitor: Visitor,
    status: int = 200,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
) -> Response:
    context = ctx(request)
    sessions = await context.sessions.list_live(visitor.user_id)
    rows = [
        {
            "id": s.id,
            "device": _device(s.user_agent),
            "created": iso_utc(s.created_at),
            "last_seen": iso_utc(s.last_used_at),
            "ip": s.ip or "",
            "current": s.id == visitor.session.id,
        }
        for s in sessions
    ]
    rows.sort(key=lambda row: not row["current"])  # this device first
    return page(
        request,
        "account",
        status,
        email=str(visitor.user.get("email", "")),
        sessions=rows,
        has_password=visitor.user.get("provider", "local") == "local",
        two_factor=await context.two_factor.requirement(visitor.user),
        errors=errors or {},
        notice=notice,
        password_hint=password_hint(request),
    )


def _done(notice: str) -> Response:
    return redirect(f"{ACCOUNT_PATH}?notice={notice}")


async def account_page(request: Request) -> Response:
    visitor = await _visitor(request)
    if isinstance(visitor, Response):
        return visitor
    notice = NOTICES.get(request.query_params.get("notice", ""))
    return await _account_page(request, visitor, notice=notice)


async def end_session(request: Request) -> Response:
    """ "Sign out this device": another session ends (its cookie is refused by /verify within the
    bound); this browser's own ends as a sign-out does."""
    found = await _visitor_and_form(request, EndSessionForm)
    if isinstance(found, Response):
        return found
    visitor, form = found
    context = ctx(request)
    user_id = visitor.user_id
    if form.session_id == visitor.session.id:
        await context.sessions.revoke(
            user_id=user_id, session_ids=[form.session_id], reason="logout", actor=user_id
        )
        await context.audit.record(
            "logout", user_id=user_id, ip=client_ip(request), session_id=form.session_id
        )
        response = page(request, "logout", signed_out=True)
        clear_session_cookie(context, response)
        return response
    revoked = 0
    if form.session_id:
        revoked = await context.sessions.revoke(
            user_id=user_id, session_ids=[form.session_id], reason="user_revoked", actor=user_id
        )
    if revoked == 0:
        return message(request, 404, "No such session", "That session has already ended.")
    return _done("session_ended")


async def change_password(request: Request) -> Response:
    found = await _visitor_and_form(request, ChangePasswordForm)
    if isinstance(found, Response):
        return found
    visitor, form = found
    errors: dict[str, str] = {}
    if not form.current_password:
        errors["current_password"] = "Enter your current password."
    if not form.new_password:
        errors["new_password"] = "Enter a new password."
    elif not within_size_cap(form.new_password):
        errors["new_password"] = "Password must be at most 128 characters and 1 KiB."
    elif form.new_password != form.confirm_password:
        errors["confirm_password"] = "The passwords do not match."
    if errors:
        return await _account_page(request, visitor, 422, errors)
    try:
        await ctx(request).password_change.change(
            visitor.user_id,
            visitor.session.id,
            form.current_password,
            form.new_password,
            ip=client_ip(request),
            device_cookie=request.cookies.get(DEVICE_COOKIE),
        )
    except DomainError as exc:
        if exc.code == ErrorCode.INVALID_CREDENTIALS:
            return await _account_page(request, visitor, 401, {"current_password": exc.message})
        if exc.code == ErrorCode.PASSWORD_POLICY:
            return await _account_page(request, visitor, 422, {"new_password": exc.message})
        return _refused(request, exc)
    return _done("password_changed")


async def _limited(
    request: Request, visitor: Visitor, password: str, change: Callable[[], Awaitable[T]]
) -> T:
    """The API's throttle for changes that check the password (`/api/auth/2fa/*`)."""
    return await password_limited(request, visitor.user, password, change)


def _setup_page(request: Request, status: int, errors: dict[str, str], **shown: Any) -> Response:
    values: dict[str, Any] = {"qr": None, "secret": "", "backup_codes": [], **shown}
    return page(request, "two_factor_setup", status, errors=errors, **values)


async def start_two_factor(request: Request) -> Response:
    """A pending enrolment (the API's `enable` without a password, as LibreChat's GET does): the
    password is asked for at confirm, so a stolen cookie alone cannot set a factor."""
    found = await _visitor_and_form(request, Form)
    if isinstance(found, Response):
        return found
    visitor, _ = found
    two_factor = ctx(request).two_factor
    if await two_factor.requirement(visitor.user) != "none":
        return message(request, 409, "Already set up", "Two-factor authentication is already on.")
    try:
        enrolment = await two_factor.enable(visitor.user, None, Proof())
    except DomainError as exc:
        return _refused(request, exc)
    title = f"QR code for {ctx(request).settings.app_title} two-factor authentication"
    return _setup_page(
        request,
        200,
        {},
        qr=qr_svg(enrolment.otpauth_url, title),
        secret=secret_of(enrolment.otpauth_url),
        backup_codes=enrolment.backup_codes,
    )


async def confirm_two_factor(request: Request) -> Response:
    found = await _visitor_and_form(request, ConfirmTwoFactorForm)
    if isinstance(found, Response):
        return found
    visitor, form = found
    code = form.code.strip().replace(" ", "")
    errors: dict[str, str] = {}
    if not code:
        errors["code"] = "Enter the code your authenticator app shows."
    if not form.password:
        errors["password"] = "Enter your password."
    if errors:
        return _setup_page(request, 422, errors)
    two_factor = ctx(request).two_factor
    try:
        await _limited(
            request, visitor, form.password, lambda: two_factor.confirm(visitor.user, code, form.password)
        )
    except DomainError as exc:
        if exc.code == ErrorCode.INVALID_CREDENTIALS:
            return _setup_page(request, 401, {"password": exc.message})
        if exc.code == ErrorCode.INVALID_2FA_CODE:
            return _setup_page(request, 401, {"code": "That code is not valid."})
        if exc.code == ErrorCode.TWO_FACTOR_NOT_PENDING:
            return message(request, 400, "Nothing to confirm", "Start the set-up again from your account.")
        return _refused(request, exc)
    return _done("2fa_enabled")


async def disable_two_factor(request: Request) -> Response:
    found = await _visitor_and_form(request, DisableTwoFactorForm)
    if isinstance(found, Response):
        return found
    visitor, form = found
    code = form.code.strip().replace(" ", "")
    errors: dict[str, str] = {}
    if not form.password:
        errors["disable_password"] = "Enter your password."
    if not code:
        errors["disable_code"] = "Enter a code from your authenticator app, or a backup code."
    if errors:
        return await _account_page(request, visitor, 422, errors)
    proof = Proof(token=code) if code.isdigit() and len(code) == 6 else Proof(backup_code=code)
    two_factor = ctx(request).two_factor
    try:
        await _limited(
            request, visitor, form.password, lambda: two_factor.disable(visitor.user, form.password, proof)
        )
    except DomainError as exc:
        if exc.code == ErrorCode.INVALID_CREDENTIALS:
            return await _account_page(request, visitor, 401, {"disable_password": exc.message})
        if exc.code == ErrorCode.INVALID_2FA_CODE:
            return await _account_page(request, visitor, 401, {"disable_code": "That code is not valid."})
        if exc.code == ErrorCode.TWO_FACTOR_NOT_ENABLED:
            return _done("2fa_disabled")
        return _refused(request, exc)
    return _done("2fa_disabled")


def _refused(request: Request, error: DomainError) -> Response:
    refused = refusal_page(request, error)
    if refused is not None:
        return refused
    if error.code == ErrorCode.TWO_FACTOR_REQUIRED:
        return message(request, 403, "Two-factor change unavailable", error.message)
    raise error

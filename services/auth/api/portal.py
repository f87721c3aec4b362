"""The browser portal: /portal/login, /portal/2fa, /portal/logout, server-rendered forms.

The same rules as the JSON API through the same code (`check_password_login`, the device
cookie, `start_session`): the same moderation events, bans, and one answer for an unknown
email and a wrong password. Signing in sets the session cookie /verify accepts; after it
the browser goes to `rd` only when `AUTH_REDIRECT_DOMAINS` allows it.

Cookie renewal: the cookie token lives `AUTH_COOKIE_REFRESH` (capped by the session's
absolute expiry). When it has lapsed, /verify refuses it and the proxy sends the browser
here; GET /portal/login finds the session still live (not revoked, not idle, not past its
absolute expiry), restarts its idle clock, sets a fresh cookie and redirects back to `rd`.
So idle timeout and absolute expiry hold without /verify ever touching the store.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from services.auth.accounts import user_id_of
from services.auth.api.auth import set_device_cookie, start_session
from services.auth.api.common import client_ip, ctx, user_agent
from services.auth.api.login_flow import PasswordChecked, check_password_login
from services.auth.api.oauth import finish_after_two_factor, pending_sign_in
from services.auth.api.portal_support import (
    checked_rd,
    clear_session_cookie,
    clear_temp_cookie,
    message,
    page,
    read_form,
    redirect,
    session_cookie_claims,
    set_session_cookie,
    set_temp_cookie,
    temp_cookie_name,
)
from services.auth.context import AuthContext
from services.auth.counters import LOGINS
from services.auth.devices import DEVICE_COOKIE
from services.auth.moderation_client import BanInfo
from services.auth.passwords import within_size_cap
from services.auth.portal.forms import LoginForm, LogoutForm, TwoFactorForm
from services.auth.protection import Banned, LoginGate, RateLimited
from services.auth.session_cookie import AMR_OTP, AMR_PASSWORD
from services.auth.sessions import StaleCredentials
from services.auth.store import Document
from services.auth.two_factor.manager import Proof
from shared.errors import ApiError, DomainError, ErrorCode

INVALID = "Invalid email or password."
LOGIN_PATH = "/portal/login"


def _passkeys(request: Request) -> bool:
    """The sign-in form offers a passkey button (and loads its script) when passkeys are on."""
    return ctx(request).passkeys.enabled


def _after_sign_in(rd: str) -> str:
    return rd or LOGIN_PATH


def banned_page(request: Request, error: DomainError) -> Response:
    """A banned address or account sees until when, as the API's 403 `banned` says."""
    details = error.details or {}
    until = str(details.get("expires_at", ""))
    return message(
        request,
        403,
        "Access banned",
        f"Access is temporarily banned until {until}." if until else "Access is temporarily banned.",
        **({"Retry-After": str(error.retry_after)} if error.retry_after else {}),
    )


def _ban_of_session(context: AuthContext, user_id: str, session_id: str) -> BanInfo | None:
    """The ban that revoked this session, as /verify reports it, while it lasts."""
    found = context.revocations.ban_of(session_id)
    if found is None:
        return None
    reason, ends = found
    return BanInfo(subject=f"user:{user_id}", reason=reason, expires_at_ms=int(ends * 1000))


def domain_refusal(request: Request, error: DomainError) -> Response:
    if isinstance(error, Banned) or error.code == ErrorCode.BANNED:
        return banned_page(request, error)
    if isinstance(error, RateLimited) or error.code == ErrorCode.RATE_LIMITED:
        wait = {"Retry-After": str(error.retry_after or 60)}
        return message(
            request, 429, "Too many attempts", "Too many attempts. Wait a moment and retry.", **wait
        )
    if error.code == ErrorCode.TWO_FACTOR_REQUIRED:
        return message(request, 403, "Two-factor sign-in unavailable", error.message)
    raise error


async def login_page(request: Request) -> Response:
    """The form, or (with a live session) a renewed cookie and the way back to `rd`."""
    context = ctx(request)
    rd = checked_rd(request, request.query_params.get("rd"))
    claims = session_cookie_claims(request, expired_ok=True)
    if claims is not None:
        user_id, session_id = claims.access.user_id, claims.access.session_id
        stale = context.revocations.predates(user_id, claims.access.epoch)
        session = None if stale else await context.sessions.touch_live(session_id)
        user = await context.accounts.find_by_id(user_id) if session is not None else None
        ban = context.protection.user_ban(user_id)
        if ban is None:  # the session's revocation can carry the ban before the ban feed does
            ban = _ban_of_session(context, user_id, session_id)
        if ban is not None:  # /verify refuses the cookie anyway; say why instead of renewing it
            return banned_page(request, Banned(ban))
        if session is not None and user is not None and session.user_id == user_id:
            response = redirect(rd, 302) if rd else page(request, "login", signed_in=str(user.get("email")))
            set_session_cookie(context, response, user, session)
            return response
    response = page(
        request,
        "login",
        rd=rd,
        email="",
        error=None,
        notice=None,
        signed_in=None,
        scripted=_passkeys(request),
    )
    if claims is not None:  # a session that ended: the browser stops sending its cookie
        clear_session_cookie(context, response)
    return response


async def login_submit(request: Request) -> Response:
    context = ctx(request)
    form = await read_form(request, LoginForm)
    if isinstance(form, Response):
        return form
    rd = checked_rd(request, form.rd)

    def again(status: int, error: str) -> Response:
        return page(
            request,
            "login",
            status,
            rd=rd,
            email=form.email,
            error=error,
            notice=None,
            signed_in=None,
            scripted=_passkeys(request),
        )

    if not context.settings.allow_email_login:
        return message(request, 403, "Sign-in disabled", "Email login is disabled.")
    if not form.email or not form.password or not within_size_cap(form.password):
        return again(400, "Enter your email and password.")
    ip = client_ip(request)
    device_cookie = request.cookies.get(DEVICE_COOKIE)
    try:
        checked = await check_password_login(
            context, form.email, form.password, ip, device_cookie, in_body=False
        )
    except ApiError as exc:
        if exc.code == ErrorCode.INVALID_CREDENTIALS:
            return again(401, INVALID)
        if exc.code == ErrorCode.EMAIL_NOT_VERIFIED:
            return again(422, exc.message)
        raise
    except DomainError as exc:
        return domain_refusal(request, exc)
    if checked.temp_token is not None:
        response = redirect("/portal/2fa" + (f"?rd={quote(rd, safe='')}" if rd else ""))
        set_temp_cookie(context, response, checked.temp_token)
        return response
    return await _signed_in(request, checked.user, checked, rd, (AMR_PASSWORD,))


async def _signed_in(
    request: Request, user: Document, checked: PasswordChecked | None, rd: str, amr: tuple[str, ...]
) -> Response:
    """The session, its cookie, the device cookie, and the way on; the API's rules for each."""
    context = ctx(request)
    ip = client_ip(request)
    epoch = checked.epoch if checked is not None else 0
    try:
        session, _ = await start_session(context, user, ip, user_agent(request), epoch=epoch, amr=amr)
    except StaleCredentials:
        LOGINS.labels("stale").inc()
        return page(
            request,
            "login",
            401,
            rd=rd,
            email="",
            error=INVALID,
            notice=None,
            signed_in=None,
            scripted=_passkeys(request),
        )
    LOGINS.labels("success").inc()
    response = redirect(_after_sign_in(rd))
    set_session_cookie(context, response, user, session)
    if checked is not None and checked.gate.account:
        trusted = request.cookies.get(DEVICE_COOKIE) if checked.gate.device_trusted else None
        set_device_cookie(request, response, user, checked.gate.account, trusted, checked.device_epoch)
    return response


async def logout_page(request: Request) -> Response:
    return page(request, "logout", signed_out=False)


async def logout_submit(request: Request) -> Response:
    context = ctx(request)
    form = await read_form(request, LogoutForm)
    if isinstance(form, Response):
        return form
    claims = session_cookie_claims(request, expired_ok=True)
    if claims is not None:
        user_id, session_id = claims.access.user_id, claims.access.session_id
        await context.sessions.revoke(
            user_id=user_id, session_ids=[session_id], reason="logout", actor=user_id
        )
        await context.audit.record("logout", user_id=user_id, ip=client_ip(request), session_id=session_id)
    response = page(request, "logout", signed_out=True)
    clear_session_cookie(context, response)
    return response


async def two_factor_page(request: Request) -> Response:
    if not request.cookies.get(temp_cookie_name(ctx(request))):
        return redirect(LOGIN_PATH, 302)
    return page(request, "two_factor", rd=checked_rd(request, request.query_params.get("rd")), error=None)


async def two_factor_submit(request: Request) -> Response:
    """The temp token from its HttpOnly cookie and the code from the form: the API's verify-temp."""
    context = ctx(request)
    form = await read_form(request, TwoFactorForm)
    if isinstance(form, Response):
        return form
    rd = checked_rd(request, form.rd)
    ip = client_ip(request)
    temp = request.cookies.get(temp_cookie_name(context), "")
    two_factor = context.two_factor
    try:
        claims = two_factor.read_temp(temp)
    except DomainError:
        await context.protection.before_two_factor(ip, None)  # a bad token is still counted
        response = message(request, 401, "Sign-in expired", "The sign-in expired. Sign in again.")
        clear_temp_cookie(context, response)
        return response
    pending = pending_sign_in(request, temp, claims.user_id)
    if pending is None and not claims.login_email:
        # A provider sign-in (no address typed) whose sealed context is gone: no session can be
        # started honestly (it would claim a password), so it starts again.
        response = message(request, 401, "Sign-in expired", "The sign-in expired. Sign in again.")
        clear_temp_cookie(context, response)
        return response
    try:
        await context.protection.before_two_factor(ip, claims.login_email)
        user = await two_factor.finish_login(claims, proof_of(form.code))
    except DomainError as exc:
        if exc.code not in (ErrorCode.INVALID_2FA_CODE, ErrorCode.INVALID_2FA_TOKEN):
            return domain_refusal(request, exc)
        LOGINS.labels("2fa_failure").inc()
        await context.protection.after_two_factor_failure(ip, claims.login_email)
        await context.audit.record("login_2fa_failed", user_id=claims.user_id, ip=ip, outcome=exc.code.value)
        if exc.code == ErrorCode.INVALID_2FA_TOKEN:
            response = message(request, 401, "Sign-in expired", "The sign-in expired. Sign in again.")
            clear_temp_cookie(context, response)
            return response
        return page(request, "two_factor", 401, rd=rd, error="That code is not valid.")
    ban = context.protection.user_ban(user_id_of(user))
    if ban is not None:
        return banned_page(request, Banned(ban))
    if pending is not None:  # a provider sign-in: the session its callback would have started
        response = await finish_after_two_factor(request, user, claims.epoch, pending)
        clear_temp_cookie(context, response)
        return response
    state = await context.sessions.state(claims.user_id)
    account = context.protection.account(claims.login_email) if claims.login_email else ""
    checked = PasswordChecked(
        user, claims.epoch, claims.login_email, _gate(ip, account), state.device_epoch, None
    )
    response = await _signed_in(request, user, checked, rd, (AMR_PASSWORD, AMR_OTP))
    clear_temp_cookie(context, response)
    return response


def proof_of(code: str) -> Proof:
    """Six digits are a TOTP code; anything else is tried as a backup code."""
    code = code.strip().replace(" ", "")
    return Proof(token=code) if code.isdigit() and len(code) == 6 else Proof(backup_code=code or None)


def _gate(ip: str, account: str) -> LoginGate:
    return LoginGate(ip=ip, account=account, device_trusted=False)


async def stylesheet(request: Request) -> Response:
    css: bytes = request.app.state.portal_pages.stylesheet
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

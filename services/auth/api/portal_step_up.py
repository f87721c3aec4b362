"""GET/POST /portal/step-up: a second factor for a session that signed in with a password only.

A proxy asking `/forward-auth?mfa=required` sends such a browser here. An account with TOTP
proves a code (the same throttles and replay rules as the 2FA sign-in step); the session then
records `otp` in its `amr`, a fresh cookie carries it, and the browser returns to `rd`. An
account without a second factor is told how to get one (the account page, or a passkey).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from services.auth.accounts import user_id_of
from services.auth.api.common import client_ip, ctx
from services.auth.api.portal import LOGIN_PATH, banned_page, domain_refusal, proof_of
from services.auth.api.portal_support import (
    checked_rd,
    cookie_user,
    message,
    page,
    read_form,
    redirect,
    set_session_cookie,
)
from services.auth.portal.forms import TwoFactorForm
from services.auth.protection import Banned
from services.auth.session_cookie import AMR_OTP, MULTI_FACTOR_AMR
from shared.errors import DomainError, ErrorCode

STEP_UP_PATH = "/portal/step-up"
ACCOUNT_PATH = "/portal/account"


def _to_login(rd: str) -> Response:
    return redirect(LOGIN_PATH + (f"?rd={quote(rd, safe='')}" if rd else ""), 302)


async def step_up_page(request: Request) -> Response:
    context = ctx(request)
    rd = checked_rd(request, request.query_params.get("rd"))
    found = await cookie_user(request)
    if found is None:
        return _to_login(rd)
    claims, user = found
    ban = context.protection.user_ban(user_id_of(user))
    if ban is not None:
        return banned_page(request, Banned(ban))
    if MULTI_FACTOR_AMR & set(claims.amr):  # already proved: nothing to add
        return redirect(rd or ACCOUNT_PATH, 302)
    requirement = await context.two_factor.requirement(user)
    if requirement != "code":
        return message(
            request,
            403,
            "Second factor needed",
            "This application asks for a second factor. Turn on two-factor authentication on your "
            "account page and come back here, or add a passkey there and sign in with it.",
        )
    return page(request, "step_up", rd=rd, error=None)


async def step_up_submit(request: Request) -> Response:
    context = ctx(request)
    form = await read_form(request, TwoFactorForm)
    if isinstance(form, Response):
        return form
    rd = checked_rd(request, form.rd)
    found = await cookie_user(request)
    if found is None:
        return _to_login(rd)
    claims, user = found
    user_id = user_id_of(user)
    ip = client_ip(request)
    login_email = claims.access.email
    try:
        await context.protection.before_two_factor(ip, login_email)
        method = await context.two_factor.verify(user, proof_of(form.code))
    except DomainError as exc:
        if exc.code not in (ErrorCode.INVALID_2FA_CODE, ErrorCode.TWO_FACTOR_NOT_ENABLED):
            return domain_refusal(request, exc)
        await context.protection.after_two_factor_failure(ip, login_email)
        await context.audit.record("step_up_failed", user_id=user_id, ip=ip, outcome=exc.code.value)
        return page(request, "step_up", 401, rd=rd, error="That code is not valid.")
    session = await context.sessions.step_up(claims.access.session_id, AMR_OTP)
    if session is None or session.user_id != user_id:
        return _to_login(rd)
    await context.audit.record("step_up", user_id=user_id, ip=ip, session_id=session.id, method=method)
    response = redirect(rd or ACCOUNT_PATH)
    set_session_cookie(context, response, user, session)
    return response

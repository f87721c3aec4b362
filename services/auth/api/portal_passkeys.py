"""The portal's passkeys: the sign-in button's endpoints and /portal/account/passkeys.

The browser side is /portal/static/passkeys.js; it calls the JSON endpoints under
`/portal/passkeys/` with the portal's session cookie instead of a bearer token. Those
endpoints take JSON only (a cross-site form cannot send it without a preflight) and, like
every portal POST, need the synchronizer token (in `X-CSRF-Token`) bound to the CSRF cookie
and an `Origin` that is the portal's own: without them an attacker could sign a victim in
to the attacker's account with the attacker's own passkey (login CSRF). Renaming and
removing are plain HTML forms and work without script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.api.auth import start_session
from services.auth.api.common import NO_STORE, client_ip, ctx, user_agent
from services.auth.api.passkey_login import check_passkey_login, start_passkey_login
from services.auth.api.portal_support import (
    checked_rd,
    csrf,
    csrf_cookie_name,
    message,
    page,
    read_form,
    redirect,
    session_cookie_claims,
    set_session_cookie,
)
from services.auth.api.two_factor import password_limited
from services.auth.api.webauthn import passkey_json
from services.auth.counters import LOGINS
from services.auth.passkeys.manager import disabled, has_password
from services.auth.passkeys.schemas import AuthenticationCredential, RegistrationCredential, credential_json
from services.auth.portal.csrf import same_origin
from services.auth.portal.forms import PasskeyNameForm, PasskeyRemoveForm
from services.auth.session_cookie import AMR_HARDWARE_KEY
from services.auth.sessions import StaleCredentials
from services.auth.store import Document
from shared.errors import ApiError, DomainError, ErrorCode
from shared.http import parse_body

CSRF_HEADER = "x-csrf-token"
ACCOUNT_PATH = "/portal/account/passkeys"
NOTICES = {
    "added": "Passkey added.",
    "renamed": "Passkey renamed.",
    "removed": "Passkey removed.",
}
_STRICT = ConfigDict(extra="forbid", strict=True)


class PortalLoginVerify(BaseModel):
    model_config = _STRICT
    credential: AuthenticationCredential
    rd: StrictStr = Field(default="", max_length=2048)


class PortalRegisterVerify(BaseModel):
    model_config = _STRICT
    credential: RegistrationCredential
    name: StrictStr | None = Field(default=None, max_length=64)


class EmptyBody(BaseModel):
    model_config = _STRICT


class PortalRegisterOptions(BaseModel):
    model_config = _STRICT
    password: StrictStr | None = Field(default=None, max_length=4096)


@dataclass(frozen=True)
class PortalUser:
    user: Document
    user_id: str


def _enabled(request: Request) -> None:
    if not ctx(request).passkeys.enabled:
        raise disabled()


def _guard(request: Request) -> None:
    """The portal's CSRF rules for a script's request: its own origin and this browser's token."""
    context = ctx(request)
    origin_ok = same_origin(
        request.headers.get("origin"),
        request.headers.get("referer"),
        context.settings.domain_server,
        request.headers.get("sec-fetch-site"),
    )
    token_ok = csrf(request).valid(
        request.cookies.get(csrf_cookie_name(context)), request.headers.get(CSRF_HEADER)
    )
    if not origin_ok or not token_ok:
        raise ApiError(
            403, ErrorCode.FORBIDDEN, "This request was not sent from this portal. Reload and retry."
        )


async def portal_user(request: Request) -> PortalUser | None:
    """The signed-in user of the portal's session cookie: the session live, the user not banned.

    A cookie past its refresh interval still names its session here; the store decides."""
    context = ctx(request)
    claims = session_cookie_claims(request, expired_ok=True)
    if claims is None:
        return None
    user_id, session_id = claims.access.user_id, claims.access.session_id
    if context.revocations.predates(user_id, claims.access.epoch) or context.protection.user_ban(user_id):
        return None
    session = await context.sessions.find_live(session_id)
    if session is None or session.user_id != user_id:
        return None
    user = await context.accounts.find_by_id(user_id)
    return PortalUser(user, user_id) if user is not None else None


async def _signed_in_user(request: Request) -> PortalUser:
    found = await portal_user(request)
    if found is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "Sign in on the portal first.")
    return found


# Sign-in ------------------------------------------------------------------------------------


async def login_options(request: Request) -> Response:
    _enabled(request)
    _guard(request)
    await parse_body(request, EmptyBody, allow_empty=True)
    options = await start_passkey_login(ctx(request), client_ip(request))
    return JSONResponse(options, headers=NO_STORE)


async def login_verify(request: Request) -> Response:
    """A verified assertion sets the same session cookie as a password sign-in (amr `hwk`)."""
    _enabled(request)
    _guard(request)
    context = ctx(request)
    body = await parse_body(request, PortalLoginVerify)
    ip = client_ip(request)
    checked = await check_passkey_login(context, credential_json(body.credential), ip)
    try:
        session, _ = await start_session(
            context, checked.user, ip, user_agent(request), epoch=checked.epoch, amr=(AMR_HARDWARE_KEY,)
        )
    except StaleCredentials:
        LOGINS.labels("stale").inc()
        raise ApiError(401, ErrorCode.INVALID_PASSKEY, "The passkey could not be verified.") from None
    LOGINS.labels("success").inc()
    rd = checked_rd(request, body.rd)
    response = JSONResponse({"redirect": rd or "/portal/login"}, headers=NO_STORE)
    set_session_cookie(context, response, checked.user, session)
    return response


# The account's passkeys ---------------------------------------------------------------------


async def register_options(request: Request) -> Response:
    _enabled(request)
    _guard(request)
    who = await _signed_in_user(request)
    body = await parse_body(request, PortalRegisterOptions, allow_empty=True)
    passkeys = ctx(request).passkeys
    options = await password_limited(
        request, who.user, body.password, lambda: passkeys.registration_options(who.user, body.password)
    )
    return JSONResponse(options, headers=NO_STORE)


async def register_verify(request: Request) -> Response:
    _enabled(request)
    _guard(request)
    who = await _signed_in_user(request)
    body = await parse_body(request, PortalRegisterVerify)
    passkey = await ctx(request).passkeys.register(
        who.user, credential_json(body.credential), body.name, client_ip(request)
    )
    payload = {
        "message": "Passkey registered.",
        "passkey": passkey_json(passkey),
        "redirect": ACCOUNT_PATH + "?done=added",
    }
    return JSONResponse(payload, status_code=201, headers=NO_STORE)


def _to_sign_in(request: Request) -> Response:
    server = ctx(request).settings.domain_server or ""
    back = checked_rd(request, server.rstrip("/") + ACCOUNT_PATH) if server else ""
    return redirect("/portal/login" + (f"?rd={quote(back, safe='')}" if back else ""), 302)


async def _account(
    request: Request, who: PortalUser, status: int = 200, error: str | None = None
) -> Response:
    passkeys = await ctx(request).passkeys.list(who.user_id)
    notice = NOTICES.get(request.query_params.get("done", "")) if error is None else None
    rows: list[dict[str, Any]] = [passkey_json(p) for p in passkeys]
    return page(
        request,
        "passkeys",
        status,
        scripted=True,
        passkeys=rows,
        email=str(who.user.get("email", "")),
        needs_password=has_password(who.user),
        notice=notice,
        error=error,
    )


async def account_page(request: Request) -> Response:
    if not ctx(request).passkeys.enabled:
        return message(request, 404, "Passkeys unavailable", "Passkeys are not configured on this server.")
    who = await portal_user(request)
    if who is None:
        return _to_sign_in(request)
    return await _account(request, who)


async def rename_submit(request: Request) -> Response:
    form = await read_form(request, PasskeyNameForm)
    if isinstance(form, Response):
        return form
    who = await portal_user(request)
    if who is None:
        return _to_sign_in(request)
    try:
        await ctx(request).passkeys.rename(who.user_id, request.path_params["passkey_id"], form.name)
    except DomainError as exc:
        return await _account(request, who, 404 if exc.code == ErrorCode.NOT_FOUND else 422, exc.message)
    return redirect(ACCOUNT_PATH + "?done=renamed")


async def remove_submit(request: Request) -> Response:
    form = await read_form(request, PasskeyRemoveForm)
    if isinstance(form, Response):
        return form
    who = await portal_user(request)
    if who is None:
        return _to_sign_in(request)
    try:
        await ctx(request).passkeys.remove(
            who.user, request.path_params["passkey_id"], who.user_id, client_ip(request)
        )
    except DomainError as exc:
        return await _account(
            request, who, 409 if exc.code == ErrorCode.LAST_SIGN_IN_METHOD else 404, exc.message
        )
    return redirect(ACCOUNT_PATH + "?done=removed")


async def script(request: Request) -> Response:
    body: bytes = request.app.state.portal_pages.passkeys_script
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(body, media_type="text/javascript", headers=headers)

"""What every portal handler shares: page responses with their headers, the cookies, CSRF.

Cookies: the session cookie (`AUTH_COOKIE_NAME`, `__Host-` unless `AUTH_COOKIE_DOMAIN` is set
or in development over http; HttpOnly, SameSite=Lax so a top-level navigation from an app
carries it, Path=/), the CSRF cookie and the pending-2FA cookie (both HttpOnly, SameSite=Strict;
the temp token of a password-checked 2FA login lives only there, never in a page).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from services.auth.accounts import canonical_username, normalize_email, user_id_of
from services.auth.api.common import ctx
from services.auth.context import AuthContext
from services.auth.portal.csrf import CsrfTokens, same_origin
from services.auth.portal.forms import Form, FormTooLarge, fields
from services.auth.portal.render import PortalPages
from services.auth.session_cookie import CookieClaims
from services.auth.sessions import Session
from services.auth.store import Document
from services.auth.tokens import InvalidToken

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
# Pages that load the passkeys script (never an inline one): that file, and fetch() to the portal.
SCRIPT_PAGE_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"].replace(
        "default-src 'none';", "default-src 'none'; script-src 'self'; connect-src 'self';"
    ),
}
F = TypeVar("F", bound=Form)
TEMP_COOKIE_MAX_AGE = 300  # the temp token's own lifetime bounds the 2FA step anyway


def _prefixed(context: AuthContext, name: str) -> str:
    return name if context.settings.development else "__Host-" + name


def csrf_cookie_name(context: AuthContext) -> str:
    return _prefixed(context, "authgate_csrf")


def temp_cookie_name(context: AuthContext) -> str:
    return _prefixed(context, "authgate_2fa")


def pages(request: Request) -> PortalPages:
    found: PortalPages = request.app.state.portal_pages
    return found


def csrf(request: Request) -> CsrfTokens:
    found: CsrfTokens = request.app.state.portal_csrf
    return found


def page(
    request: Request, name: str, status: int = 200, *, scripted: bool = False, **values: Any
) -> Response:
    """A rendered page with the portal's headers; a CSRF cookie is set when the browser has none.

    `scripted`: the page loads /portal/static/passkeys.js, so its CSP allows scripts from the portal."""
    context = ctx(request)
    cookie = request.cookies.get(csrf_cookie_name(context))
    fresh = cookie is None or not 0 < len(cookie) <= 128
    if fresh:
        cookie = CsrfTokens.new_cookie()
    assert cookie is not None
    html = pages(request).render(name, csrf=csrf(request).form_token(cookie), scripted=scripted, **values)
    headers = _headers_for(SCRIPT_PAGE_HEADERS if scripted else PAGE_HEADERS, values.get("rd"))
    response = HTMLResponse(html, status_code=status, headers=headers)
    if fresh:
        _set_cookie(context, response, csrf_cookie_name(context), cookie, None, samesite="strict")
    return response


def _headers_for(base: dict[str, str], rd: object) -> dict[str, str]:
    """The page headers; a form that sends the browser on to `rd` allows that one origin too.

    Browsers apply `form-action` to the redirects that follow a form's submission, so the
    sign-in's 303 to an app on another host is blocked under `form-action 'self'` alone. `rd`
    reaches a page only after the AUTH_REDIRECT_DOMAINS check (a strict host, a numeric port).
    """
    if not isinstance(rd, str) or not rd:
        return base
    parts = urlsplit(rd)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return base
    target = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    policy = base["Content-Security-Policy"].replace("form-action 'self'", f"form-action 'self' {target}")
    return {**base, "Content-Security-Policy": policy}


def message(request: Request, status: int, heading: str, text: str, **headers: str) -> Response:
    response = page(request, "message", status, heading=heading, message=text)
    response.headers.update(headers)
    return response


def redirect(location: str, status: int = 303) -> Response:
    return RedirectResponse(location, status_code=status, headers=PAGE_HEADERS)


def csrf_refused(request: Request) -> Response:
    return message(
        request, 403, "Request refused", "This form was not sent from this portal. Reload and retry."
    )


async def read_form(request: Request, model: type[F]) -> F | Response:
    """The validated form, or the 403 page when its CSRF token or origin is wrong (nothing done)."""
    context = ctx(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return message(request, 415, "Unsupported form", "Send the form from the portal's page.")
    try:
        form = model.model_validate(fields(await request.body()))
    except (FormTooLarge, ValueError):
        return message(request, 400, "Invalid form", "The form could not be read.")
    origin_ok = same_origin(
        request.headers.get("origin"),
        request.headers.get("referer"),
        context.settings.domain_server,
        request.headers.get("sec-fetch-site"),
    )
    if not origin_ok or not csrf(request).valid(request.cookies.get(csrf_cookie_name(context)), form.csrf):
        return csrf_refused(request)
    return form


def _set_cookie(
    context: AuthContext, response: Response, name: str, value: str, max_age: int | None, *, samesite: str
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=not context.settings.development,
        httponly=True,
        samesite=samesite,  # type: ignore[arg-type]
    )


def set_temp_cookie(context: AuthContext, response: Response, temp_token: str) -> None:
    _set_cookie(
        context, response, temp_cookie_name(context), temp_token, TEMP_COOKIE_MAX_AGE, samesite="strict"
    )


def clear_temp_cookie(context: AuthContext, response: Response) -> None:
    _set_cookie(context, response, temp_cookie_name(context), "", 0, samesite="strict")


def cookie_token(context: AuthContext, user: Document, session: Session) -> str:
    """The session cookie's value: identity as the access token carries it, and the session's amr."""
    return context.session_cookies.issue(
        user_id=user_id_of(user),
        session_id=session.id,
        email=normalize_email(str(user.get("email", ""))),
        username=canonical_username(str(user.get("username") or "")),
        role=str(user.get("role", "USER")),
        epoch=session.epoch,
        amr=session.amr,
        session_expires_at=int(session.expires_at.timestamp()),
    )


def set_session_cookie(context: AuthContext, response: Response, user: Document, session: Session) -> None:
    settings = context.settings
    remaining = int((session.expires_at - dt.datetime.now(dt.UTC)).total_seconds())
    response.set_cookie(
        settings.session_cookie_name,
        cookie_token(context, user, session),
        max_age=max(0, remaining),
        path="/",
        domain=settings.auth_cookie_domain,
        secure=not settings.development,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(context: AuthContext, response: Response) -> None:
    settings = context.settings
    response.delete_cookie(
        settings.session_cookie_name,
        path="/",
        domain=settings.auth_cookie_domain,
        secure=not settings.development,
        httponly=True,
        samesite="lax",
    )


def session_cookie_claims(request: Request, *, expired_ok: bool) -> CookieClaims | None:
    """The browser's one session cookie, verified (past its refresh interval when `expired_ok`)."""
    context = ctx(request)
    name = context.settings.session_cookie_name
    values = [
        value.strip()
        for header in request.headers.getlist("cookie")
        for key, sep, value in (pair.strip().partition("=") for pair in header.split(";"))
        if sep and key == name
    ]
    if len(values) != 1:
        return None
    try:
        return context.session_cookies.verify(values[0], expired_ok=expired_ok)
    except InvalidToken:
        return None


async def cookie_user(request: Request) -> tuple[CookieClaims, Document] | None:
    """The browser's session cookie, unexpired and unrevoked as /verify judges it, and its user.

    No read of the session itself: pages that change it (step-up, linking) go through the
    session store, which refuses an ended one. None sends the browser to sign in.
    """
    context = ctx(request)
    claims = session_cookie_claims(request, expired_ok=False)
    if claims is None:
        return None
    access = claims.access
    revocations = context.revocations
    if revocations.is_revoked(access.session_id) or revocations.predates(access.user_id, access.epoch):
        return None
    user = await context.accounts.find_by_id(access.user_id)
    return (claims, user) if user is not None else None


def checked_rd(request: Request, raw: str | None) -> str:
    """`rd` when AUTH_REDIRECT_DOMAINS accepts it, normalized; otherwise "" (never a fallback URL)."""
    return ctx(request).settings.redirects.checked(raw) or ""

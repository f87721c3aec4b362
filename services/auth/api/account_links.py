"""/portal/account/links: the signed-in user's sign-in methods; link or unlink a provider.

Linking is the one way (besides SOCIAL_AUTO_LINK_VERIFIED) an existing account gets a provider
identity, so it asks for the strongest sign-in the account has: a session begun with the
password (and the second factor when one is enrolled), never one begun at a provider. Unlinking
the last way to sign in is refused. Both are forms with the portal's CSRF token and origin check.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from services.auth.accounts import user_id_of
from services.auth.api.common import client_ip, ctx
from services.auth.api.oauth import LINKS_PATH, begin
from services.auth.api.openid_state import provider_named
from services.auth.api.portal_support import cookie_user, message, page, read_form, redirect
from services.auth.portal.forms import LinksForm
from services.auth.session_cookie import AMR_OTP, AMR_PASSWORD
from services.auth.social.flow import MODE_LINK, new_flow
from services.auth.social.signin import OpenIdSignIn, Rules
from services.auth.store import Document
from shared.errors import DomainError

LOGIN_PATH = "/portal/login"


def _render(request: Request, user: Document, status: int = 200, **values: str | None) -> Response:
    has_password = isinstance(user.get("password"), str) and bool(user.get("password"))
    settings = ctx(request).settings
    labels = {
        "openid": settings.openid_button_label,
        "google": "Google",
        "github": "GitHub",
        "discord": "Discord",
        "facebook": "Facebook",
    }
    links = [
        {"provider": p.name, "label": labels.get(p.name, p.name), "linked": bool(user.get(p.link_field))}
        for p in settings.social.providers
    ]
    return page(
        request,
        "links",
        status,
        links=links,
        has_password=has_password,
        notice=values.get("notice"),
        error=values.get("error"),
    )


def _to_login(request: Request, status: int) -> Response:
    """The sign-in page, back here afterwards (DOMAIN_SERVER's host is in the default allow-list)."""
    server = (ctx(request).settings.domain_server or "").rstrip("/")
    back = ctx(request).settings.redirects.checked(server + LINKS_PATH)
    return redirect(LOGIN_PATH + (f"?{urlencode({'rd': back})}" if back else ""), status)


async def links_page(request: Request) -> Response:
    found = await cookie_user(request)
    if found is None:
        return _to_login(request, 302)
    notice = "The provider is linked." if request.query_params.get("linked") == "1" else None
    return _render(request, found[1], notice=notice)


async def links_submit(request: Request) -> Response:
    context = ctx(request)
    form = await read_form(request, LinksForm)
    if isinstance(form, Response):
        return form
    found = await cookie_user(request)
    if found is None:
        return _to_login(request, 303)
    claims, user = found
    provider = provider_named(request, form.provider)
    if provider is None or form.action not in ("link", "unlink"):
        return message(request, 400, "Invalid form", "Unknown provider or action.")
    if not context.settings.allow_social_login:
        return message(request, 403, "Sign-in disabled", "Sign-in through an identity provider is disabled.")
    if form.action == "link":
        wanted = {AMR_PASSWORD} | ({AMR_OTP} if user.get("twoFactorEnabled") is True else set())
        if not wanted <= set(claims.amr):
            return _render(
                request,
                user,
                403,
                error="Sign in with your password (and your second factor) to link a provider.",
            )
        flow = new_flow(
            provider.settings.name, "", portal=True, mode=MODE_LINK, link_user_id=user_id_of(user)
        )
        return await begin(request, flow)
    rules = Rules(context.settings.allow_social_registration, False, ())
    signin = OpenIdSignIn(provider.settings, rules, context.accounts, context.sessions, context.audit)
    try:
        passkeys = await context.store.passkeys.count_for(user_id_of(user))
        await signin.unlink(user, client_ip(request), passkeys)
    except DomainError as exc:
        return _render(request, user, 409, error=exc.message)
    response = redirect(LINKS_PATH, 303)
    return response

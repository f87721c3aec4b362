"""GET /api/user (the caller) and GET /api/config (what LibreChat's login page reads)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.auth.accounts import public_user
from services.auth.api.common import NO_STORE, ctx, require_access, unauthorized
from services.auth.settings import AuthSettings


async def current_user(request: Request) -> Response:
    caller = await require_access(request)
    user = await ctx(request).accounts.find_by_id(caller.claims.user_id)
    if user is None:
        raise unauthorized("The account no longer exists.")
    return JSONResponse(public_user(user), headers=NO_STORE)


def pre_login_payload(settings: AuthSettings) -> dict[str, Any]:
    """Every field of LibreChat's pre-login config, with values true to authgate's configuration.

    Sign-in providers authgate does not offer yet are reported off whatever their variables say,
    so LibreChat's login page never shows a button that cannot work; each provider is on
    when their variables are complete and ALLOW_SOCIAL_LOGIN is true. `socialLogins` is SOCIAL_LOGINS (the
    buttons' order; LibreChat reads it from its YAML), by default every configured provider.
    `emailEnabled` is whether mail is configured (verification mails are sent).
    """
    social = settings.social
    openid = social.openid if settings.allow_social_login else None
    enabled = set(social.configured) if settings.allow_social_login else set()
    payload: dict[str, Any] = {
        "appTitle": settings.app_title,
        "discordLoginEnabled": "discord" in enabled,
        "facebookLoginEnabled": "facebook" in enabled,
        "githubLoginEnabled": "github" in enabled,
        "googleLoginEnabled": "google" in enabled,
        "appleLoginEnabled": False,
        "passkeyLoginEnabled": False,
        "openidLoginEnabled": openid is not None,
        "openidLabel": settings.openid_button_label,
        "openidAutoRedirect": openid is not None and openid.auto_redirect,
        "samlLoginEnabled": False,
        "serverDomain": settings.domain_server or "http://localhost:3080",
        "emailLoginEnabled": settings.allow_email_login,
        "registrationEnabled": settings.allow_registration,
        "socialLoginEnabled": settings.allow_social_login,
        "socialRegistrationEnabled": settings.allow_social_registration,
        "emailEnabled": settings.mail.configured,
        "passwordResetEnabled": settings.allow_password_reset,
        "minPasswordLength": settings.min_password_length,
        "socialLogins": list(social.social_logins),
    }
    if settings.openid_image_url:
        payload["openidImageUrl"] = settings.openid_image_url
    return payload


async def config(request: Request) -> Response:
    return JSONResponse(pre_login_payload(ctx(request).settings))

"""LibreChat's client reads these payloads: the user with `_id` and its public fields, and every
field of LibreChat's pre-login config, with values true to authgate's configuration."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from bson import ObjectId

from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp

# LibreChat's `buildPreLoginPayload` (api/server/routes/config.js) plus `socialLogins`;
# `openidImageUrl` only when OPENID_IMAGE_URL is set, `ldap` never (authgate has no LDAP).
LIBRECHAT_PRE_LOGIN_FIELDS = {
    "appTitle",
    "discordLoginEnabled",
    "facebookLoginEnabled",
    "githubLoginEnabled",
    "googleLoginEnabled",
    "appleLoginEnabled",
    "passkeyLoginEnabled",
    "openidLoginEnabled",
    "openidLabel",
    "openidAutoRedirect",
    "samlLoginEnabled",
    "serverDomain",
    "emailLoginEnabled",
    "registrationEnabled",
    "socialLoginEnabled",
    "emailEnabled",
    "passwordResetEnabled",
    "minPasswordLength",
    "socialLogins",
}
SECRETS = ("password", "totpSecret", "backupCodes", "refreshToken", "federatedTokens", "pendingTotpSecret")


async def test_login_and_refresh_answer_id_and_underscore_id(auth: AuthApp) -> None:
    body = await auth.user(email())
    assert body["user"]["_id"] == body["user"]["id"]
    refreshed = (await auth.refresh(body["refresh_token"])).json()
    assert refreshed["user"]["_id"] == refreshed["user"]["id"] == body["user"]["id"]


async def test_current_user_has_librechat_public_fields_and_no_secrets(auth: AuthApp) -> None:
    address = email()
    body = await auth.user(address)
    favorite = ObjectId()
    stored = {
        "twoFactorEnabled": False,
        "termsAccepted": True,
        "plugins": ["web-search"],
        "personalization": {"memories": False},
        "favorites": [{"agentId": favorite, "at": dt.datetime(2026, 1, 2, tzinfo=dt.UTC)}],
        "totpSecret": "encrypted-secret",
        "backupCodes": [{"codeHash": "hash", "used": False}],
        "refreshToken": [{"refreshToken": "live-session-token"}],
        "federatedTokens": [{"provider": "openid", "accessToken": "token"}],
        "pendingTotpSecret": "pending",
        "internalNote": "not in the allowlist",
    }
    await auth.collection("users").update_one({"email": address}, {"$set": stored})
    user = (await auth.get("/api/user", body["token"])).json()
    assert user["_id"] == user["id"] == body["user"]["id"]
    assert user["twoFactorEnabled"] is False and user["termsAccepted"] is True
    assert user["plugins"] == ["web-search"]
    assert user["personalization"] == {"memories": False}
    assert user["favorites"] == [{"agentId": str(favorite), "at": "2026-01-02T00:00:00.000Z"}]
    for name in (*SECRETS, "internalNote"):
        assert name not in user, name
    text = str(user)
    assert "encrypted-secret" not in text and "live-session-token" not in text and "$argon2" not in text


async def test_config_has_every_field_librechat_login_page_reads(app_factory: Callable[..., Any]) -> None:
    async with app_factory(
        APP_TITLE="Acme Chat",
        DOMAIN_SERVER="https://chat.example.com",
        ALLOW_SOCIAL_LOGIN="true",
        GOOGLE_CLIENT_ID="id",
        GOOGLE_CLIENT_SECRET="secret",
        OPENID_BUTTON_LABEL="Sign in with Acme",
        OPENID_IMAGE_URL="https://example.com/acme.svg",
    ) as auth:
        body = (await auth.client.get("/api/config")).json()
    assert set(body) >= LIBRECHAT_PRE_LOGIN_FIELDS | {"openidImageUrl"}
    assert body["appTitle"] == "Acme Chat"
    assert body["serverDomain"] == "https://chat.example.com"
    assert body["openidLabel"] == "Sign in with Acme"
    assert body["openidImageUrl"] == "https://example.com/acme.svg"
    assert body["socialLoginEnabled"] is True
    # Google's variables are complete: its button is on. Providers authgate does not offer yet
    # (or whose variables are missing) are off whatever else is set: no dead buttons.
    assert body["googleLoginEnabled"] is True and body["openidLoginEnabled"] is False
    assert body["githubLoginEnabled"] is False and body["discordLoginEnabled"] is False
    assert body["passkeyLoginEnabled"] is False and body["emailEnabled"] is False
    # SOCIAL_LOGINS unset: every configured provider.
    assert body["socialLogins"] == ["google"]


async def test_config_defaults(auth: AuthApp) -> None:
    body = (await auth.client.get("/api/config")).json()
    assert body["appTitle"] == "authgate"
    assert body["serverDomain"] == "http://localhost:3080"
    assert body["openidLabel"] == "Continue with OpenID"
    assert "openidImageUrl" not in body

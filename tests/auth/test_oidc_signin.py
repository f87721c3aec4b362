"""OpenID Connect sign-in against a real provider: first sign-in, returning user, refusals."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.oidc import OidcProvider
from services.auth.moderation_client import BanInfo
from tests.auth.oidc_helpers import (
    CLIENT_APP,
    FLOW_COOKIE_PREFIX,
    REFRESH_COOKIE,
    SESSION_COOKIE,
    browser,
    callback_url,
    failure_code,
    has_session_cookie,
    idp_fixture,
    inbox_fixture,
    openid_app,
    query,
    sign_in,
    start,
)

__all__ = ["idp_fixture", "inbox_fixture"]  # the module's fixtures


async def test_first_sign_in_creates_the_user_and_starts_a_session(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        authorize = await start(client)
        params = query(authorize)
        # state, nonce and PKCE S256 on every request; redirect_uri from DOMAIN_SERVER
        assert params["redirect_uri"] == "https://auth.test/oauth/openid/callback"
        assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
        assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
        assert params["scope"] == "openid profile email" and params["response_type"] == "code"
        flow = [c for c in client.cookies.jar if c.name.startswith(FLOW_COOKIE_PREFIX)]
        assert len(flow) == 1 and params["state"] not in str(flow[0].value)  # sealed, not readable
        response = await client.get(await callback_url(client, "alice", authorize))
        assert response.status_code == 302, response.text
        assert response.headers["location"] == CLIENT_APP
        cookies = response.headers.get_list("set-cookie")
        assert any(c.startswith(f"{REFRESH_COOKIE}=") and "HttpOnly" in c for c in cookies)
        user = await auth.find_user("alice@idp.example.com")
        assert user is not None
        assert user["provider"] == "openid" and user["openidId"] == "sub-alice"
        assert user["openidIssuer"] == idp.issuer and user["emailVerifiedBy"] == "provider"
        assert user["username"] == "alice" and user["name"] == "Alice Provider" and "password" not in user
        refreshed = await client.post("/api/auth/refresh", headers={"Origin": CLIENT_APP})
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["user"]["email"] == "alice@idp.example.com"
        events = [doc["event"] async for doc in auth.collection("auth_audit").find({})]
        assert "social_register" in events and "social_login" in events


async def test_returning_user_gets_the_same_account(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        first = await sign_in(browser(auth), "alice", rd="https://app.example.com/after")
        assert first.headers["location"] == "https://app.example.com/after"
        again = await sign_in(browser(auth), "alice")
        assert again.status_code == 302 and again.headers["location"] == CLIENT_APP
        assert await auth.collection("users").count_documents({"openidId": "sub-alice"}) == 1


async def test_rd_outside_the_allow_list_goes_to_domain_client(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        response = await sign_in(browser(auth), "alice", rd="https://evil.test/steal")
        assert response.headers["location"] == CLIENT_APP
        # an allowed but very long rd is dropped rather than overflowing the flow cookie
        client = browser(auth)
        response = await sign_in(client, "alice", rd="https://app.example.com/" + "a" * 1500)
        assert response.headers["location"] == CLIENT_APP


async def test_first_sign_in_refused_without_social_registration(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp, ALLOW_SOCIAL_REGISTRATION="false") as auth:
        client = browser(auth)
        response = await sign_in(client, "alice")
        assert failure_code(response) == "social_registration_disabled"
        assert not has_session_cookie(client)
        assert await auth.find_user("alice@idp.example.com") is None


async def test_registration_allowed_domains_refuses_other_domains(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp, REGISTRATION_ALLOWED_DOMAINS="corp.example.org") as auth:
        client = browser(auth)
        assert failure_code(await sign_in(client, "alice")) == "email_domain_not_allowed"
        assert await auth.find_user("alice@idp.example.com") is None


async def test_social_login_disabled_answers_403_or_the_failure_page(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp, ALLOW_SOCIAL_LOGIN="false") as auth:
        client = browser(auth)
        response = await client.get("/oauth/openid")
        assert failure_code(response) == "social_login_disabled"
        as_json = await client.get("/oauth/openid", headers={"Accept": "application/json"})
        assert as_json.status_code == 403 and as_json.json()["code"] == "social_login_disabled"
        callback = await client.get("/oauth/openid/callback?code=x&state=y")
        assert failure_code(callback) == "social_login_disabled"
        config = (await client.get("/api/config")).json()
        assert config["openidLoginEnabled"] is False


async def test_config_reports_the_openid_button(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    async with openid_app(
        app_factory, idp, OPENID_BUTTON_LABEL="Acme SSO", OPENID_AUTO_REDIRECT="true", SOCIAL_LOGINS="openid"
    ) as auth:
        body = (await auth.client.get("/api/config")).json()
        assert body["openidLoginEnabled"] is True and body["openidLabel"] == "Acme SSO"
        assert body["openidAutoRedirect"] is True and body["socialLogins"] == ["openid"]
        assert body["serverDomain"] == "https://auth.test"
        page = await auth.client.get("/portal/login")
        assert 'href="/oauth/openid?portal=1"' in page.text and "Acme SSO" in page.text


async def test_a_portal_flow_sets_the_portal_session_cookie_too(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        response = await sign_in(client, "alice", portal="1", rd="https://app.example.com/x")
        assert response.headers["location"] == "https://app.example.com/x"
        token = client.cookies.get(SESSION_COOKIE)
        assert token and client.cookies.get(REFRESH_COOKIE)
        verify = await auth.new_client().get("/verify", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
        assert verify.status_code == 200 and verify.headers["x-auth-email"] == "alice@idp.example.com"
        assert verify.headers["x-auth-amr"] == "fed"


async def test_a_banned_user_is_refused_at_the_callback(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        await sign_in(browser(auth), "alice")
        user = await auth.find_user("alice@idp.example.com")
        assert user is not None
        ends = int(time.time() * 1000) + 600_000
        await auth.ctx.protection.client.bans.learn(BanInfo(f"user:{user['_id']}", "abuse", ends))
        client = browser(auth)
        assert failure_code(await sign_in(client, "alice")) == "banned"
        assert not has_session_cookie(client)
        assert await auth.collection("auth_audit").find_one({"event": "login_banned"})

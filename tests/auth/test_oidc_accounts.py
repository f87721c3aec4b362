"""OpenID identities and local accounts: roles from claims, linking both ways, unlinking, 2FA,
logout with the provider's end-session endpoint and back-channel logout."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from harness import eventually
from harness.oidc import LogoutInbox, OidcProvider
from services.auth.social.pending import PendingSealer, PendingSignIn, temp_digest
from services.auth.social.settings import RoleRule
from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp
from tests.auth.oidc_helpers import (
    CLIENT_APP,
    PORTAL,
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
)
from tests.auth.portal_helpers import csrf_of, post_form
from tests.auth.portal_helpers import sign_in as portal_sign_in
from tests.auth.two_factor_helpers import code, enrolled

__all__ = ["idp_fixture", "inbox_fixture"]

ROLES = {
    "OPENID_REQUIRED_ROLE": "chat-user",
    "OPENID_REQUIRED_ROLE_PARAMETER_PATH": "roles",
    "OPENID_ADMIN_ROLE": "chat-admin",
    "OPENID_ADMIN_ROLE_PARAMETER_PATH": "roles",
}


async def live_sessions(auth: AuthApp, user_id: object) -> int:
    found: int = await auth.collection("auth_sessions").count_documents(
        {"user_id": str(user_id), "revoked_at": None}
    )
    return found


async def test_required_role_missing_is_refused(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    async with openid_app(app_factory, idp, **ROLES) as auth:
        client = browser(auth)
        assert failure_code(await sign_in(client, "norole")) == "role_required"
        assert not has_session_cookie(client)
        assert await auth.find_user("norole@idp.example.com") is None
        roles_from_userinfo = {**ROLES, "OPENID_REQUIRED_ROLE_TOKEN_KIND": "userinfo"}
    async with openid_app(app_factory, idp, **roles_from_userinfo) as auth:
        assert (await sign_in(browser(auth), "alice")).headers["location"] == CLIENT_APP


async def test_admin_role_is_mapped(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    async with openid_app(app_factory, idp, **ROLES) as auth:
        await sign_in(browser(auth), "admin")
        user = await auth.find_user("boss@idp.example.com")
        assert user is not None and user["role"] == "ADMIN" and user["roleSource"] == "openid"
        assert await live_sessions(auth, user["_id"]) == 1
        events = [doc["event"] async for doc in auth.collection("auth_audit").find({})]
        assert "role_changed" in events


async def test_losing_admin_ends_the_other_sessions(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp, **ROLES) as auth:
        first = browser(auth)
        await sign_in(first, "admin")
        user = await auth.find_user("boss@idp.example.com")
        assert user is not None and user["role"] == "ADMIN"
        assert (await first.post("/api/auth/refresh", headers={"Origin": CLIENT_APP})).status_code == 200
        # the provider no longer asserts the admin role: the claim now names another one
        provider = auth.app.state.providers["openid"]
        provider.settings = dataclasses.replace(
            provider.settings, admin_role=RoleRule(("chat-owner",), "id", "roles")
        )
        await sign_in(browser(auth), "admin")
        demoted = await auth.find_user("boss@idp.example.com")
        assert demoted is not None and demoted["role"] == "USER" and demoted["roleSource"] == "openid"
        assert await live_sessions(auth, user["_id"]) == 1  # only the new one
        assert (await first.post("/api/auth/refresh", headers={"Origin": CLIENT_APP})).status_code == 401


async def test_operator_role_is_not_overwritten_silently(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp, **ROLES) as auth:
        await sign_in(browser(auth), "alice")
        user = await auth.find_user("alice@idp.example.com")
        assert user is not None and user["role"] == "USER"
        await auth.ctx.accounts.set_role(user, "ADMIN")  # `authgate set-role`
        await sign_in(browser(auth), "alice")
        kept = await auth.find_user("alice@idp.example.com")
        assert kept is not None and kept["role"] == "ADMIN" and kept["roleSource"] == "operator"
        conflict = await auth.collection("auth_audit").find_one({"event": "openid_role_conflict"})
        assert conflict is not None and conflict["outcome"] == "kept"


async def test_existing_account_is_not_linked_by_default(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        await auth.register("alice@idp.example.com")
        client = browser(auth)
        assert failure_code(await sign_in(client, "alice")) == "link_required"
        assert not has_session_cookie(client)
        user = await auth.find_user("alice@idp.example.com")
        assert user is not None and "openidId" not in user
        # from the portal: a page that says how to link
        portal = browser(auth)
        page = await sign_in(portal, "alice", portal="1")
        assert page.status_code == 403 and "link this provider from your account page" in page.text


async def test_auto_link_needs_a_mail_proven_address_and_the_provider_verified_one(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp, SOCIAL_AUTO_LINK_VERIFIED="true") as auth:
        users = auth.collection("users")
        await auth.register("alice@idp.example.com")
        await auth.register("unverified@idp.example.com")
        # verified without a mail (no mail configured): not proven, no link
        assert failure_code(await sign_in(browser(auth), "alice")) == "link_required"
        await users.update_many({}, {"$set": {"emailVerified": True, "emailVerifiedBy": "mail"}})
        # proven locally, but the provider does not assert email_verified: no link
        assert failure_code(await sign_in(browser(auth), "unverified")) == "link_required"
        client = browser(auth)
        response = await sign_in(client, "alice")
        assert response.headers["location"] == CLIENT_APP
        linked = await auth.find_user("alice@idp.example.com")
        assert linked is not None and linked["openidId"] == "sub-alice" and linked["provider"] == "local"
        assert await auth.collection("auth_audit").find_one({"event": "social_link", "how": "auto"})


async def password_portal(auth: AuthApp, address: str) -> httpx.AsyncClient:
    client = browser(auth)
    response = await portal_sign_in(client, address)
    assert response.status_code == 303, response.text
    return client


async def links_form(client: httpx.AsyncClient, action: str) -> httpx.Response:
    page = await client.get("/portal/account/links")
    assert page.status_code == 200, page.text
    form = {"csrf": csrf_of(page), "provider": "openid", "action": action}
    return await post_form(client, "/portal/account/links", form, origin=PORTAL)


async def test_link_and_unlink_from_the_account_page(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        address = "alice@idp.example.com"
        await auth.register(address)
        client = await password_portal(auth, address)
        started = await links_form(client, "link")
        assert started.status_code == 302
        done = await client.get(await callback_url(client, "alice", started.headers["location"]))
        assert done.status_code == 302 and done.headers["location"] == "/portal/account/links?linked=1"
        page = await client.get(done.headers["location"])
        assert "linked" in page.text and "Unlink" in page.text
        user = await auth.find_user(address)
        assert user is not None and user["openidId"] == "sub-alice" and user["openidIssuer"] == idp.issuer
        # the linked identity now signs in to the same account
        assert (await sign_in(browser(auth), "alice")).headers["location"] == CLIENT_APP
        assert await auth.collection("users").count_documents({}) == 1
        unlinked = await links_form(client, "unlink")
        assert unlinked.status_code == 303
        user = await auth.find_user(address)
        assert user is not None and "openidId" not in user
        events = [doc["event"] async for doc in auth.collection("auth_audit").find({})]
        assert "social_link" in events and "social_unlink" in events


async def test_linking_needs_a_password_session_and_unlinking_keeps_a_way_in(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        await sign_in(client, "alice", portal="1")  # a provider-only account, signed in at the portal
        assert await auth.find_user("alice@idp.example.com") is not None
        refused = await links_form(client, "unlink")
        assert refused.status_code == 409 and "only way to sign in" in refused.text
        user = await auth.find_user("alice@idp.example.com")
        assert user is not None and user["openidId"] == "sub-alice"
        # a session begun at the provider may not link: the password (and 2FA) is asked
        page = await client.get("/portal/account/links")
        assert page.status_code == 200
        await auth.collection("users").update_one({"_id": user["_id"]}, {"$unset": {"openidId": ""}})
        refused_link = await links_form(client, "link")
        assert refused_link.status_code == 403 and "Sign in with your password" in refused_link.text
        no_csrf = await post_form(client, "/portal/account/links", {"provider": "openid", "action": "unlink"})
        assert no_csrf.status_code == 403


async def test_identity_linked_elsewhere_cannot_be_linked_again(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        await sign_in(browser(auth), "alice")  # creates the provider account
        other = email()
        await auth.register(other)
        client = await password_portal(auth, other)
        started = await links_form(client, "link")
        done = await client.get(await callback_url(client, "alice", started.headers["location"]))
        assert done.status_code == 409 and "already linked" in done.text
        user = await auth.find_user(other)
        assert user is not None and "openidId" not in user


async def test_enrolled_second_factor_is_asked(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    """LibreChat skips 2FA for provider sign-ins; here an enrolled second factor is asked."""
    async with openid_app(app_factory, idp) as auth:
        account = await enrolled(auth)
        link = {"openidId": "sub-alice", "openidIssuer": idp.issuer}
        await auth.collection("users").update_one({"email": account.address}, {"$set": link})
        client = browser(auth)
        response = await sign_in(client, "alice", rd="https://app.example.com/after")
        assert response.status_code == 302
        assert response.headers["location"] == "/portal/2fa?rd=https%3A%2F%2Fapp.example.com%2Fafter"
        assert not has_session_cookie(client)
        page = await client.get(response.headers["location"])
        assert page.status_code == 200
        form = {"csrf": csrf_of(page), "code": code(account.secret), "rd": "https://app.example.com/after"}
        done = await post_form(client, "/portal/2fa", form)
        assert done.status_code == 303 and done.headers["location"] == "https://app.example.com/after"
        assert has_session_cookie(client)


async def _second_factor_after_provider(
    auth: AuthApp, idp: OidcProvider, **start_params: str
) -> tuple[httpx.AsyncClient, httpx.Response, str]:
    """An enrolled user linked to alice signs in at the provider and passes the portal's 2FA step."""
    account = await enrolled(auth)
    link = {"openidId": "sub-alice", "openidIssuer": idp.issuer}
    await auth.collection("users").update_one({"email": account.address}, {"$set": link})
    client = browser(auth)
    response = await sign_in(client, "alice", **start_params)
    assert response.status_code == 302 and response.headers["location"].startswith("/portal/2fa")
    page = await client.get(response.headers["location"])
    rd = query("https://x" + response.headers["location"]).get("rd", "")
    done = await post_form(
        client, "/portal/2fa", {"csrf": csrf_of(page), "code": code(account.secret), "rd": rd}
    )
    return client, done, account.address


async def test_librechat_flow_with_a_second_factor_gets_librechat_session(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    """Begun at LibreChat's button (not the portal): after the portal's 2FA step the browser has
    LibreChat's refresh cookie, as the callback gives a user without 2FA, and is back at
    DOMAIN_CLIENT; the session is a provider one (`fed` + `otp`, its `sid` kept)."""
    async with openid_app(app_factory, idp) as auth:
        client, done, address = await _second_factor_after_provider(auth, idp)
        assert done.status_code == 303 and done.headers["location"] == CLIENT_APP
        cookies = done.headers.get_list("set-cookie")
        assert any(c.startswith(f"{REFRESH_COOKIE}=") and "HttpOnly" in c for c in cookies), cookies
        assert not any(c.startswith(f"{SESSION_COOKIE}=") for c in cookies)  # not a portal flow
        assert not any(c.name.endswith("authgate_fed2fa") for c in client.cookies.jar)
        refreshed = await client.post("/api/auth/refresh", headers={"Origin": CLIENT_APP})
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["user"]["email"] == address
        recorded = await auth.collection("auth_oidc_sessions").find_one({})
        assert recorded is not None and recorded["sub"] == "sub-alice" and recorded["sid"]
        session = await auth.collection("auth_sessions").find_one({"_id": recorded["_id"]})
        assert session is not None and set(session["amr"]) == {"fed", "otp"}
        events = [doc["event"] async for doc in auth.collection("auth_audit").find({})]
        assert "login_2fa_pending" in events and "social_login" in events


async def test_portal_flow_with_a_second_factor_gets_both_cookies(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        _, done, _ = await _second_factor_after_provider(
            auth, idp, portal="1", rd="https://app.example.com/after"
        )
        assert done.status_code == 303 and done.headers["location"] == "https://app.example.com/after"
        cookies = done.headers.get_list("set-cookie")
        assert any(c.startswith(f"{REFRESH_COOKIE}=") for c in cookies)
        assert any(c.startswith(f"{SESSION_COOKIE}=") for c in cookies)


async def test_a_provider_2fa_step_without_its_pending_cookie_starts_again(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    """Without the sealed provider context the code page cannot start an honest session (it would
    claim a password): it asks to sign in again, and nothing is started."""
    async with openid_app(app_factory, idp) as auth:
        account = await enrolled(auth)
        link = {"openidId": "sub-alice", "openidIssuer": idp.issuer}
        await auth.collection("users").update_one({"email": account.address}, {"$set": link})
        sessions = await auth.collection("auth_sessions").count_documents({})
        client = browser(auth)
        response = await sign_in(client, "alice")
        page = await client.get(response.headers["location"])
        for cookie in [c for c in client.cookies.jar if c.name.endswith("authgate_fed2fa")]:
            client.cookies.delete(cookie.name, domain=cookie.domain, path=cookie.path)
        done = await post_form(client, "/portal/2fa", {"csrf": csrf_of(page), "code": code(account.secret)})
        assert done.status_code == 401 and "Sign in again" in done.text
        assert not has_session_cookie(client)
        assert await auth.collection("auth_sessions").count_documents({}) == sessions


def test_a_pending_provider_sign_in_is_bound_to_its_temp_token() -> None:
    sealer = PendingSealer(b"k" * 32)
    pending = PendingSignIn(
        "user-1",
        "openid",
        "https://idp",
        "sub",
        "",
        False,
        CLIENT_APP,
        temp_digest("temp-a"),
        int(time.time()),
    )
    sealed = sealer.seal(pending)
    assert sealer.open(sealed, "temp-a", "user-1") == pending
    assert sealer.open(sealed, "temp-b", "user-1") is None  # another sign-in's temp token
    assert sealer.open(sealed, "temp-a", "user-2") is None
    assert sealer.open(sealed[:-2] + "AA", "temp-a", "user-1") is None
    assert sealer.open(sealed, "temp-a", "user-1", now=time.time() + 301) is None


async def test_logout_returns_the_end_session_url(app_factory: Callable[..., Any], idp: OidcProvider) -> None:
    async with openid_app(
        app_factory,
        idp,
        OPENID_USE_END_SESSION_ENDPOINT="true",
        OPENID_POST_LOGOUT_REDIRECT_URI=CLIENT_APP + "/login",
    ) as auth:
        client = browser(auth)
        await sign_in(client, "alice")
        refreshed = await client.post("/api/auth/refresh", headers={"Origin": CLIENT_APP})
        token = refreshed.json()["token"]
        out = await client.post(
            "/api/auth/logout", headers={"Authorization": f"Bearer {token}", "Origin": CLIENT_APP}
        )
        assert out.status_code == 200, out.text
        redirect = out.json()["redirect"]
        assert redirect.startswith(idp.issuer + "/session/end?")
        assert query(redirect) == {"client_id": "authgate", "post_logout_redirect_uri": CLIENT_APP + "/login"}
        # the provider accepts it: its confirmation form, then back to the client's login page
        page = await client.get(redirect)
        assert page.status_code == 200 and "op.logoutForm" in page.text
        # a local account gets no redirect
        local = email()
        body = await auth.user(local)
        plain = await auth.client.post(
            "/api/auth/logout",
            json={"refresh_token": body["refresh_token"]},
            headers={"Authorization": f"Bearer {body['token']}"},
        )
        assert plain.status_code == 200 and "redirect" not in plain.json()


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_INPUT = re.compile(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"')


async def test_backchannel_logout_ends_the_session(
    app_factory: Callable[..., Any], idp: OidcProvider, inbox: LogoutInbox
) -> None:
    async with openid_app(app_factory, idp, OPENID_USE_END_SESSION_ENDPOINT="true") as auth:
        client = browser(auth)
        await sign_in(client, "alice")
        user = await auth.find_user("alice@idp.example.com")
        assert user is not None and await live_sessions(auth, user["_id"]) == 1
        recorded = await auth.collection("auth_oidc_sessions").find_one({})
        assert recorded is not None and recorded["sid"] and recorded["sub"] == "sub-alice"
        token = (await client.post("/api/auth/refresh", headers={"Origin": CLIENT_APP})).json()["token"]
        out = await client.post(
            "/api/auth/logout", headers={"Authorization": f"Bearer {token}", "Origin": CLIENT_APP}
        )
        # sign in again, then end the session at the provider: it posts a logout token
        await sign_in(client, "alice")
        assert await live_sessions(auth, user["_id"]) == 1
        before = len(inbox.tokens)
        page = await client.get(out.json()["redirect"])
        found = _FORM.search(page.text)
        assert found, page.text
        fields = dict(_INPUT.findall(found.group(2)))
        ended = await client.post(found.group(1), data={**fields, "logout": "yes"})
        assert ended.status_code in (302, 303), ended.text
        await eventually(lambda: len(inbox.tokens) > before, "the back-channel logout token")
        logout_token = inbox.tokens[-1]
        bad = await client.post(
            "/oauth/openid/backchannel-logout", data={"logout_token": logout_token[:-4] + "AAAA"}
        )
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"
        missing = await client.post("/oauth/openid/backchannel-logout", data={"other": "x"})
        assert missing.status_code == 400 and missing.json()["code"] == "invalid_request"
        as_json = await client.post("/oauth/openid/backchannel-logout", json={"logout_token": logout_token})
        assert as_json.status_code == 415
        good = await client.post("/oauth/openid/backchannel-logout", data={"logout_token": logout_token})
        assert good.status_code == 200, good.text
        assert await live_sessions(auth, user["_id"]) == 0
        # the refresh cookie the browser still holds no longer works
        assert (await client.post("/api/auth/refresh", headers={"Origin": CLIENT_APP})).status_code == 401


async def test_a_replayed_logout_token_is_refused(
    app_factory: Callable[..., Any], idp: OidcProvider, inbox: LogoutInbox
) -> None:
    """A logout token delivered twice ends sessions once: its `jti` is remembered until it expires,
    so a captured token cannot end the sessions of a later sign-in (by `sub`) or be played again."""
    async with openid_app(app_factory, idp, OPENID_USE_END_SESSION_ENDPOINT="true") as auth:
        client = browser(auth)
        await sign_in(client, "alice")
        user = await auth.find_user("alice@idp.example.com")
        assert user is not None
        token = (await client.post("/api/auth/refresh", headers={"Origin": CLIENT_APP})).json()["token"]
        out = await client.post(
            "/api/auth/logout", headers={"Authorization": f"Bearer {token}", "Origin": CLIENT_APP}
        )
        await sign_in(client, "alice")
        before = len(inbox.tokens)
        page = await client.get(out.json()["redirect"])
        found = _FORM.search(page.text)
        assert found, page.text
        ended = await client.post(
            found.group(1), data={**dict(_INPUT.findall(found.group(2))), "logout": "yes"}
        )
        assert ended.status_code in (302, 303), ended.text
        await eventually(lambda: len(inbox.tokens) > before, "the back-channel logout token")
        logout_token = inbox.tokens[-1]
        first = await client.post("/oauth/openid/backchannel-logout", data={"logout_token": logout_token})
        assert first.status_code == 200, first.text
        assert await live_sessions(auth, user["_id"]) == 0
        remembered = await auth.collection("auth_oauth_states").find_one({"_id": {"$regex": "^logout:"}})
        assert remembered is not None and remembered["expires_at"] is not None

        # a new sign-in (the provider's session is gone: its form again), then the old token replayed
        await sign_in(client, "alice")
        assert await live_sessions(auth, user["_id"]) == 1
        replay = await client.post("/oauth/openid/backchannel-logout", data={"logout_token": logout_token})
        assert replay.status_code == 400
        assert replay.json()["code"] == "logout_token_replayed"
        assert await live_sessions(auth, user["_id"]) == 1
        refused = await auth.collection("auth_audit").find_one(
            {"event": "backchannel_logout_refused", "outcome": "replayed"}
        )
        assert refused is not None


async def test_the_links_page_needs_a_portal_session(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp, AUTH_REDIRECT_DOMAINS=".example.com,auth.test") as auth:
        client = browser(auth)
        page = await client.get("/portal/account/links")
        assert page.status_code == 302
        assert (
            page.headers["location"] == "/portal/login?rd=https%3A%2F%2Fauth.test%2Fportal%2Faccount%2Flinks"
        )
        refresh_only = browser(auth)
        await sign_in(refresh_only, "alice")  # LibreChat's flow: a refresh cookie, no portal session
        assert (await refresh_only.get("/portal/account/links")).status_code == 302


async def test_a_passkey_counts_as_a_way_in_when_unlinking(
    app_factory: Callable[..., Any], idp: OidcProvider
) -> None:
    async with openid_app(app_factory, idp) as auth:
        client = browser(auth)
        await sign_in(client, "alice", portal="1")  # a provider-only account
        user = await auth.find_user("alice@idp.example.com")
        assert user is not None
        passkey = {"user_id": str(user["_id"]), "credential_id": "cred-1", "name": "laptop", "sign_count": 0}
        await auth.collection("auth_passkeys").insert_one(passkey)
        unlinked = await links_form(client, "unlink")
        assert unlinked.status_code == 303
        user = await auth.find_user("alice@idp.example.com")
        assert user is not None and "openidId" not in user

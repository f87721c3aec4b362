"""/verify and the portal's session cookie: its own token type, the same revocation bound."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from services.auth.moderation_client import BanInfo
from services.auth.session_cookie import SessionCookieTokens
from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp

COOKIE = "__Host-authgate_session"


async def cookie_for(auth: AuthApp, address: str, amr: tuple[str, ...] = ("pwd",)) -> tuple[str, str]:
    """A session created as a login creates one, and the cookie token the portal would set for it."""
    await auth.register(address)
    user = await auth.ctx.accounts.find_by_email(address)
    assert user is not None
    user_id = str(user["_id"])
    session, _ = await auth.ctx.sessions.create(user_id, "203.0.113.10", "test", 0, amr)
    token = auth.ctx.session_cookies.issue(
        user_id=user_id,
        session_id=session.id,
        email=address,
        username="",
        role="USER",
        epoch=0,
        amr=amr,
        session_expires_at=int(session.expires_at.timestamp()),
    )
    return token, session.id


async def verify(auth: AuthApp, cookie: str | None = None, query: str = "", **headers: str) -> Any:
    sent = dict(headers)
    if cookie is not None:
        sent["Cookie"] = cookie
    return await auth.client.get("/verify" + query, headers=sent)


async def test_the_cookie_passes_verify_with_the_identity_headers(auth: AuthApp) -> None:
    address = email()
    token, session_id = await cookie_for(auth, address)
    assert auth.settings.session_cookie_name == COOKIE
    response = await verify(auth, f"other=1; {COOKIE}={token}")
    assert response.status_code == 200, response.text
    assert response.headers["x-auth-email"] == address
    assert response.headers["x-auth-session-id"] == session_id
    assert response.headers["x-auth-role"] == "USER"
    assert response.headers["x-auth-amr"] == "pwd"
    # The session shows in the session list like any other.
    stored = await auth.collection("auth_sessions").find_one({"_id": session_id})
    assert stored["amr"] == ["pwd"]


async def test_the_cookie_is_never_a_bearer_token_nor_a_bearer_token_a_cookie(auth: AuthApp) -> None:
    token, _ = await cookie_for(auth, email())
    assert (await verify(auth, Authorization=f"Bearer {token}")).status_code == 401
    assert (await auth.get("/api/user", token)).status_code == 401
    access = (await auth.user(email()))["token"]
    assert (await verify(auth, f"{COOKIE}={access}")).status_code == 401


async def test_bearer_wins_over_the_cookie(auth: AuthApp) -> None:
    token, _ = await cookie_for(auth, email())
    other = email()
    access = (await auth.user(other))["token"]
    response = await verify(auth, f"{COOKIE}={token}", Authorization=f"Bearer {access}")
    assert response.status_code == 200
    assert response.headers["x-auth-email"] == other
    assert "x-auth-amr" not in response.headers


async def test_two_session_cookies_are_400(auth: AuthApp) -> None:
    token, _ = await cookie_for(auth, email())
    response = await verify(auth, f"{COOKIE}={token}; {COOKIE}={token}")
    assert response.status_code == 400
    split = [(b"cookie", f"{COOKIE}={token}".encode()), (b"cookie", f"{COOKIE}={token}".encode())]
    response = await auth.client.get("/verify", headers=split)
    assert response.status_code == 400


async def test_a_forged_or_unprefixed_cookie_is_refused(auth: AuthApp) -> None:
    token, _ = await cookie_for(auth, email())
    assert (await verify(auth, f"authgate_session={token}")).status_code == 401
    forged = SessionCookieTokens("another-secret-of-enough-length-0123456789", "authgate", 60)
    fake = forged.issue(
        user_id="u",
        session_id="s",
        email="a@example.com",
        username="",
        role="ADMIN",
        epoch=0,
        amr=("pwd", "otp"),
        session_expires_at=int(dt.datetime.now(dt.UTC).timestamp()) + 600,
    )
    assert (await verify(auth, f"{COOKIE}={fake}")).status_code == 401


async def test_logout_all_refuses_the_cookie_within_the_bound(auth: AuthApp) -> None:
    address = email()
    token, _ = await cookie_for(auth, address)
    assert (await verify(auth, f"{COOKIE}={token}")).status_code == 200
    user = await auth.ctx.accounts.find_by_email(address)
    assert user is not None
    await auth.ctx.sessions.revoke(user_id=str(user["_id"]), reason="logout_all", actor="test")
    bound = auth.settings.verify_max_staleness_ms / 1000
    await asyncio.sleep(bound)
    assert (await verify(auth, f"{COOKIE}={token}")).status_code == 401


async def test_mfa_required_refuses_a_password_only_session(auth: AuthApp) -> None:
    password_only, _ = await cookie_for(auth, email())
    response = await verify(auth, f"{COOKIE}={password_only}", "?mfa=required")
    assert response.status_code == 403
    assert response.json()["code"] == "mfa_required"
    two_factor, _ = await cookie_for(auth, email(), ("pwd", "otp"))
    response = await verify(auth, f"{COOKIE}={two_factor}", "?mfa=required&roles=USER")
    assert response.status_code == 200
    assert response.headers["x-auth-amr"] == "pwd,otp"
    assert (await verify(auth, f"{COOKIE}={two_factor}", "?mfa=yes")).status_code == 400


async def test_the_cookie_name_and_domain_are_configurable(app_factory: Callable[..., Any]) -> None:
    async with app_factory(AUTH_COOKIE_NAME="sso", AUTH_COOKIE_DOMAIN=".example.com") as auth:
        assert auth.settings.session_cookie_name == "sso"
        assert auth.settings.auth_cookie_domain == "example.com"
        token, _ = await cookie_for(auth, email())
        assert (await verify(auth, f"sso={token}")).status_code == 200


async def test_a_user_ban_refuses_the_cookie(auth: AuthApp) -> None:
    address = email()
    token, _ = await cookie_for(auth, address)
    user = await auth.ctx.accounts.find_by_email(address)
    assert user is not None
    ends = int(time.time() * 1000) + 600_000
    await auth.ctx.protection.client.bans.learn(BanInfo(f"user:{user['_id']}", "abuse", ends))
    response = await verify(auth, f"{COOKIE}={token}")
    assert response.status_code == 403
    assert response.json()["code"] == "banned"

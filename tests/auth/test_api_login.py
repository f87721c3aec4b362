"""Login, refresh and logout through the API: cookies and bodies, every refusal."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from tests.auth.api_helpers import (
    TOKEN_FIELDS,
    USER_FIELDS,
    assert_error,
    email,
    no_hash_anywhere,
    refresh_cookie,
)
from tests.auth.conftest import STRONG_PASSWORD, AuthApp

# Login -------------------------------------------------------------------------------


async def test_login_sets_the_refresh_cookie(auth: AuthApp) -> None:
    address = email()
    assert (await auth.register(address, username="neo")).status_code == 200
    response = await auth.login(address.upper())
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == TOKEN_FIELDS
    assert set(body["user"]) == USER_FIELDS
    assert body["user"]["email"] == address
    assert body["user"]["username"] == "neo"
    no_hash_anywhere(response.text)
    assert response.headers["cache-control"] == "no-store"
    cookie = refresh_cookie(response)
    assert len(cookie["value"]) >= 43  # 256 bits, base64url
    assert cookie["httponly"] == "<flag>"
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/api/auth"
    assert cookie["secure"] == "<flag>"
    assert "domain" not in cookie
    assert int(cookie["max-age"]) == auth.settings.refresh_token_expiry_ms // 1000


@pytest.mark.parametrize("mode", ["production", "test"])
async def test_login_cookie_is_secure_outside_development(app_factory: Callable[..., Any], mode: str) -> None:
    async with app_factory(AUTHGATE_ENV=mode) as auth:
        address = email()
        await auth.register(address)
        assert refresh_cookie(await auth.login(address))["secure"] == "<flag>"


async def test_login_cookie_is_not_secure_in_development(app_factory: Callable[..., Any]) -> None:
    async with app_factory(AUTHGATE_ENV="development") as auth:
        address = email()
        await auth.register(address)
        cookie = refresh_cookie(await auth.login(address))
        assert "secure" not in cookie
        assert cookie["httponly"] == "<flag>"
        assert cookie["samesite"].lower() == "strict"
        assert cookie["path"] == "/api/auth"


async def test_login_refresh_token_in_body(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    response = await auth.login(address, refresh_token_in_body=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {*TOKEN_FIELDS, "refresh_token"}
    assert len(body["refresh_token"]) >= 43
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert (await auth.refresh(body["refresh_token"])).status_code == 200


async def test_invalid_credentials_identical_for_unknown_email_and_wrong_password(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    unknown = await auth.login(email())
    wrong = await auth.login(address, STRONG_PASSWORD + "!")
    wrong_case = await auth.login(address, STRONG_PASSWORD.upper())
    assert_error(unknown, 401, "invalid_credentials")
    for response in (wrong, wrong_case):
        assert response.status_code == unknown.status_code
        assert response.content == unknown.content
        assert set(response.headers) == set(unknown.headers)
        for name in unknown.headers:
            if name != "x-request-id":
                assert response.headers[name] == unknown.headers[name]
        assert "set-cookie" not in response.headers


async def test_login_failures_are_audited(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    await auth.login(address, "wrong wrong wrong wrong")
    await auth.login(address)
    events = [d["event"] async for d in auth.collection("auth_audit").find({}, {"event": 1}).sort("at", 1)]
    assert events == ["register", "login_failed", "login"]
    async for doc in auth.collection("auth_audit").find({}):
        no_hash_anywhere(json.dumps(doc, default=str))
        assert STRONG_PASSWORD not in json.dumps(doc, default=str)


async def test_login_disabled(app_factory: Callable[..., Any]) -> None:
    async with app_factory(ALLOW_EMAIL_LOGIN="false") as auth:
        address = email()
        assert (await auth.register(address)).status_code == 200
        assert_error(await auth.login(address), 403, "email_login_disabled")
        assert_error(await auth.login(email()), 403, "email_login_disabled")
        assert await auth.collection("auth_sessions").count_documents({}) == 0


async def test_login_applies_only_the_size_cap(auth: AuthApp) -> None:
    """Imported users with passwords shorter than today's policy still log in."""
    address = email()
    hashed = await auth.ctx.accounts.hasher.hash("short")
    await auth.collection("users").insert_one(
        {"email": address, "password": hashed, "provider": "local", "role": "USER", "name": "Old"}
    )
    assert (await auth.login(address, "short")).status_code == 200
    assert_error(await auth.login(address, "x" * 129), 422, "invalid_input")


# Refresh -----------------------------------------------------------------------------


async def test_refresh_with_cookie_answers_with_cookie(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    login = await auth.login(address)
    first = refresh_cookie(login)["value"]
    assert auth.client.cookies.get("refreshToken") == first
    response = await auth.client.post("/api/auth/refresh")
    assert response.status_code == 200, response.text
    assert set(response.json()) == TOKEN_FIELDS
    assert response.headers["cache-control"] == "no-store"
    second = refresh_cookie(response)
    assert second["value"] != first
    assert second["httponly"] == "<flag>"
    assert second["secure"] == "<flag>"
    assert second["path"] == "/api/auth"
    assert second["samesite"].lower() == "strict"
    assert auth.client.cookies.get("refreshToken") == second["value"]
    # An empty JSON object is the same as no body.
    response = await auth.client.post("/api/auth/refresh", json={})
    assert response.status_code == 200, response.text
    assert refresh_cookie(response)["value"] not in (first, second["value"])
    user = await auth.get("/api/user", response.json()["token"])
    assert user.status_code == 200


async def test_refresh_with_body_answers_with_body(auth: AuthApp) -> None:
    body = await auth.user(email())
    response = await auth.refresh(body["refresh_token"])
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert set(rotated) == {*TOKEN_FIELDS, "refresh_token"}
    assert rotated["refresh_token"] != body["refresh_token"]
    assert rotated["user"] == body["user"]
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert (await auth.refresh(rotated["refresh_token"])).status_code == 200


async def test_refresh_body_field_wins_over_cookie(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    await auth.login(address)  # cookie in the jar
    other = await auth.login_body(address)
    response = await auth.refresh(other["refresh_token"])
    assert response.status_code == 200
    assert "refresh_token" in response.json()
    assert "set-cookie" not in response.headers


async def test_refresh_missing_or_unknown(auth: AuthApp) -> None:
    assert_error(await auth.client.post("/api/auth/refresh"), 401, "invalid_refresh_token")
    assert_error(await auth.client.post("/api/auth/refresh", json={}), 401, "invalid_refresh_token")
    assert_error(await auth.refresh(secrets.token_urlsafe(32)), 401, "invalid_refresh_token")
    assert_error(await auth.refresh(""), 401, "invalid_refresh_token")
    auth.client.cookies.set("refreshToken", secrets.token_urlsafe(32), domain="auth.test", path="/api/auth")
    assert_error(await auth.client.post("/api/auth/refresh"), 401, "invalid_refresh_token")


async def test_refresh_expired(app_factory: Callable[..., Any]) -> None:
    async with app_factory(REFRESH_TOKEN_EXPIRY="300") as auth:
        body = await auth.user(email())
        await asyncio.sleep(0.8)
        assert_error(await auth.refresh(body["refresh_token"]), 401, "invalid_refresh_token")


async def test_refresh_idle_too_long(app_factory: Callable[..., Any]) -> None:
    async with app_factory(SESSION_IDLE_TIMEOUT="300") as auth:
        body = await auth.user(email())
        await asyncio.sleep(0.8)
        assert_error(await auth.refresh(body["refresh_token"]), 401, "invalid_refresh_token")


async def test_refresh_revoked(auth: AuthApp) -> None:
    body = await auth.user(email())
    response = await auth.client.post(
        "/api/auth/logout", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert response.status_code == 200
    assert_error(await auth.refresh(body["refresh_token"]), 401, "invalid_refresh_token")


async def test_refresh_for_deleted_user(auth: AuthApp) -> None:
    address = email()
    body = await auth.user(address)
    await auth.collection("users").delete_one({"email": address})
    assert_error(await auth.refresh(body["refresh_token"]), 401, "invalid_refresh_token")


# Logout ------------------------------------------------------------------------------


async def test_logout_with_bearer(auth: AuthApp) -> None:
    body = await auth.user(email())
    bearer = {"Authorization": f"Bearer {body['token']}"}
    response = await auth.client.post("/api/auth/logout", headers=bearer)
    assert response.status_code == 200, response.text
    assert_error(await auth.refresh(body["refresh_token"]), 401, "invalid_refresh_token")
    assert_error(await auth.get("/api/user", body["token"]), 401, "unauthorized")
    assert_error(await auth.client.post("/api/auth/logout", headers=bearer), 401, "unauthorized")


async def test_logout_with_cookie_clears_it(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    login = await auth.login(address)
    token = refresh_cookie(login)["value"]
    response = await auth.client.post("/api/auth/logout")
    assert response.status_code == 200, response.text
    for path in ("/api/auth", "/"):  # authgate's cookie and a LibreChat leftover
        cleared = refresh_cookie(response, path)
        assert cleared["value"] in ("", '""')
        assert cleared["max-age"] == "0"
    assert auth.client.cookies.get("refreshToken") is None
    assert_error(await auth.refresh(token), 401, "invalid_refresh_token")
    assert_error(await auth.get("/api/user", login.json()["token"]), 401, "unauthorized")


async def test_logout_with_body_token(auth: AuthApp) -> None:
    body = await auth.user(email())
    response = await auth.client.post("/api/auth/logout", json={"refresh_token": body["refresh_token"]})
    assert response.status_code == 200
    assert_error(await auth.refresh(body["refresh_token"]), 401, "invalid_refresh_token")


async def test_logout_without_credentials(auth: AuthApp) -> None:
    assert_error(await auth.client.post("/api/auth/logout"), 401, "unauthorized")
    response = await auth.client.post("/api/auth/logout", headers={"Authorization": "Bearer not.a.token"})
    assert_error(response, 401, "unauthorized")
    assert_error(
        await auth.client.post("/api/auth/logout", json={"refresh_token": "nope"}), 401, "unauthorized"
    )

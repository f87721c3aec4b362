"""Every row of the auth API table, success and failure, against the real store."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import httpx
import jsonschema_rs
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from starlette.routing import Route

from services.auth.accounts import REGISTER_MESSAGE
from tests.auth.conftest import CLIENT_IP, STRONG_PASSWORD, AuthApp, registration
from tests.harness import Server

TOKEN_FIELDS = {"token", "user"}
USER_FIELDS = {
    "id",
    "email",
    "username",
    "name",
    "role",
    "provider",
    "emailVerified",
    "avatar",
    "createdAt",
    "updatedAt",
}
CONFIG_FIELDS = {
    "emailLoginEnabled",
    "registrationEnabled",
    "socialLoginEnabled",
    "socialRegistrationEnabled",
    "passwordResetEnabled",
    "emailEnabled",
    "minPasswordLength",
}
SESSION_FIELDS = {"id", "created", "last_used", "expires", "ip", "user_agent", "current"}
OPERATORS: list[Any] = [
    {"$gt": ""},
    {"$ne": None},
    {"$regex": ".*"},
    {"$where": "1"},
    ["a@example.com"],
    [],
    42,
    0,
    1.5,
    None,
    True,
    False,
]


def email() -> str:
    return f"user-{secrets.token_hex(4)}@example.com"


def refresh_cookie(response: httpx.Response) -> dict[str, str]:
    """The refreshToken Set-Cookie header parsed into its attributes (flags as present/absent)."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith("refreshToken=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    parts = [p.strip() for p in headers[0].split(";")]
    name_value = parts[0].split("=", 1)
    attributes = {"value": name_value[1]}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        attributes[key.lower()] = value or "<flag>"
    return attributes


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def no_hash_anywhere(text: str) -> None:
    assert "$argon2" not in text
    assert "$2b$" not in text
    assert "$2a$" not in text
    assert '"password"' not in text


# Register ------------------------------------------------------------------------


async def test_register_new_and_existing_email_look_identical(auth: AuthApp) -> None:
    address = email()
    first = await auth.register(address)
    second = await auth.register(address.upper(), "another entirely different passphrase 42")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.json() == {"message": REGISTER_MESSAGE}
    ignored = {"x-request-id"}
    assert {k: v for k, v in first.headers.items() if k not in ignored} == {
        k: v for k, v in second.headers.items() if k not in ignored
    }
    for response in (first, second):
        assert "set-cookie" not in response.headers
        assert "token" not in response.text
    assert await auth.collection("users").count_documents({"email": address}) == 1
    # The second registration did not touch the account: only the first password works.
    assert (await auth.login(address)).status_code == 200
    assert (await auth.login(address, "another entirely different passphrase 42")).status_code == 401


async def test_register_stores_librechat_fields(auth: AuthApp) -> None:
    address = email()
    response = await auth.register(f"  {address.upper()} ", name="  Ada Lovelace ", username="ada_l")
    assert response.status_code == 200, response.text
    doc = await auth.find_user(address)
    assert doc is not None
    assert doc["email"] == address
    assert doc["name"] == "Ada Lovelace"
    assert doc["username"] == "ada_l"
    assert doc["role"] == "USER"
    assert doc["provider"] == "local"
    assert doc["emailVerified"] is False
    assert doc["password"].startswith("$argon2id$")
    assert doc["createdAt"] is not None
    assert doc["updatedAt"] is not None


async def test_register_disabled(app_factory: Callable[..., Any]) -> None:
    async with app_factory(ALLOW_REGISTRATION="false") as auth:
        assert_error(await auth.register(email()), 403, "registration_disabled")
        assert await auth.collection("users").count_documents({}) == 0


async def test_register_username_taken(auth: AuthApp) -> None:
    assert (await auth.register(email(), username="neo")).status_code == 200
    body = assert_error(await auth.register(email(), username="neo"), 409, "username_taken")
    assert "neo" not in body["message"] or "username" in body["message"].lower()
    assert await auth.collection("users").count_documents({"username": "neo"}) == 1
    # Two accounts without a username do not collide.
    assert (await auth.register(email())).status_code == 200
    assert (await auth.register(email())).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"email": "not-an-email"},
        {"email": "a@"},
        {"email": "user@example.com\u0000"},
        {"email": "x" * 300 + "@example.com"},
        {"name": ""},
        {"name": "   "},
        {"name": None},
        {"username": "a b"},
        {"username": "x"},
        {"username": "$gt"},
        {"confirm_password": "a different passphrase entirely"},
        {"password": None},
    ],
)
async def test_register_invalid_input(auth: AuthApp, change: dict[str, Any]) -> None:
    body = {
        "name": "Test",
        "email": email(),
        "password": STRONG_PASSWORD,
        "confirm_password": STRONG_PASSWORD,
    }
    body.update(change)
    response = await auth.client.post("/api/auth/register", json=body)
    assert_error(response, 422, "invalid_input")
    assert await auth.collection("users").count_documents({}) == 0


async def test_register_missing_fields(auth: AuthApp) -> None:
    for missing in ("name", "email", "password", "confirm_password"):
        body = {
            "name": "T",
            "email": email(),
            "password": STRONG_PASSWORD,
            "confirm_password": STRONG_PASSWORD,
        }
        del body[missing]
        response = await auth.client.post("/api/auth/register", json=body)
        assert missing in assert_error(response, 422, "invalid_input")["message"]


async def policy_rule(auth: AuthApp, password: str, **extra: Any) -> str | None:
    response = await auth.register(email(), password, **extra)
    if response.status_code == 200:
        return None
    body = assert_error(response, 422, "password_policy")
    rule: str = body["rule"]
    return rule


async def test_password_policy_length_counts_code_points(app_factory: Callable[..., Any]) -> None:
    # Strength 0 isolates the length rule: 15 two-byte or four-byte code points are 15 characters.
    async with app_factory(PASSWORD_MIN_STRENGTH="0") as auth:
        assert await policy_rule(auth, "é" * 14) == "too_short"
        assert await policy_rule(auth, "🦊" * 14) == "too_short"
        assert await policy_rule(auth, "e\u0301" * 14) == "too_short"  # NFKC makes it 14 code points
        assert await policy_rule(auth, "é" * 15) is None
        assert await policy_rule(auth, "🦊" * 15) is None
        assert await policy_rule(auth, "e\u0301" * 15) is None
        assert await policy_rule(auth, "x" * 128) is None
        assert await policy_rule(auth, "x" * 129) == "too_long"
        assert await policy_rule(auth, "🦊" * 129) == "too_long"
        assert await policy_rule(auth, " " * 20) == "too_weak"


async def test_password_policy_with_default_strength(auth: AuthApp) -> None:
    assert await policy_rule(auth, "abcdefghijklmn") == "too_short"  # 14 code points
    assert await policy_rule(auth, "Zébulon-Ô-Été7!") is None  # 15 code points, strong
    assert await policy_rule(auth, "🦊🐙🌵🍩🚲🎻🧲🪐🦉🍄🛶🧊🎲🪁🦔") is None  # 15 emoji
    assert await policy_rule(auth, "éclairs à la crème brûlée") is None
    assert await policy_rule(auth, "パスワードは長くて覚えやすいもの") is None
    assert await policy_rule(auth, "a" * 20) == "too_weak"
    assert await policy_rule(auth, "passwordpassword") == "too_weak"
    assert await policy_rule(auth, "1234567890123456") == "too_weak"
    assert await policy_rule(auth, "qwertyuiopasdfgh") == "too_weak"
    assert await policy_rule(auth, "x" * 129) == "too_long"
    # No composition rules: an all-lowercase passphrase is fine.
    assert await policy_rule(auth, "purple monkey dishwasher kettle") is None


async def test_password_policy_uses_email_and_name_as_context(app_factory: Callable[..., Any]) -> None:
    async with app_factory() as auth:
        address = "quintessential.zeppelin@example.com"
        response = await auth.register(address, "quintessential.zeppelin@example.com", name="Q")
        body = assert_error(response, 422, "password_policy")
        assert body["rule"] == "too_weak"
        assert await auth.find_user(address) is None
        # The same passphrase is strong for one user and too weak for the user it names.
        assert await policy_rule(auth, "Bartholomew Xanadu!", name="Someone Else") is None
        response = await auth.register(email(), "Bartholomew Xanadu!", name="Bartholomew Xanadu")
        assert assert_error(response, 422, "password_policy")["rule"] == "too_weak"


async def test_min_password_length_is_configurable(app_factory: Callable[..., Any]) -> None:
    async with app_factory(MIN_PASSWORD_LENGTH="20", PASSWORD_MIN_STRENGTH="0") as auth:
        assert await policy_rule(auth, "x" * 19) == "too_short"
        assert await policy_rule(auth, "x" * 20) is None


async def test_oversized_body_is_413(auth: AuthApp) -> None:
    big = json.dumps({"name": "x", "email": email(), "password": "x" * (1 << 20), "confirm_password": "x"})
    response = await auth.client.post(
        "/api/auth/register", content=big, headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")
    response = await auth.client.post(
        "/api/auth/login", content=big, headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")

    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 8192

    # Without a Content-Length (chunked), the limit still holds.
    response = await auth.client.post(
        "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


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
    cleared = refresh_cookie(response)
    assert cleared["value"] in ("", '""')
    assert cleared["max-age"] == "0"
    assert cleared["path"] == "/api/auth"
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


# Sessions ----------------------------------------------------------------------------


async def test_sessions_list(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    first = await auth.login_body(address, **{"User-Agent": "browser-one"})
    second = await auth.login_body(address, **{"User-Agent": "browser-two"})
    response = await auth.get("/api/auth/sessions", first["token"])
    assert response.status_code == 200, response.text
    sessions = response.json()
    assert isinstance(sessions, list)
    assert len(sessions) == 2
    for item in sessions:
        assert set(item) == SESSION_FIELDS
        assert item["ip"] == CLIENT_IP
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    assert current[0]["user_agent"] == "browser-one"
    assert {s["user_agent"] for s in sessions} == {"browser-one", "browser-two"}
    # Session ids listed are not refresh tokens.
    assert all(s["id"] not in (first["refresh_token"], second["refresh_token"]) for s in sessions)
    # Another user sees only their own.
    other = await auth.user(email())
    assert len((await auth.get("/api/auth/sessions", other["token"])).json()) == 1


async def test_sessions_require_a_token(auth: AuthApp) -> None:
    body = await auth.user(email())
    for method, path in (
        ("GET", "/api/auth/sessions"),
        ("DELETE", "/api/auth/sessions"),
        ("DELETE", "/api/auth/sessions/x"),
    ):
        response = await auth.client.request(method, path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        response = await auth.client.request(
            method, path, headers={"Authorization": f"Bearer {body['refresh_token']}"}
        )
        assert_error(response, 401, "unauthorized")


async def test_delete_one_session(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    first = await auth.login_body(address)
    second = await auth.login_body(address)
    sessions = (await auth.get("/api/auth/sessions", first["token"])).json()
    other_id = next(s["id"] for s in sessions if not s["current"])
    bearer = {"Authorization": f"Bearer {first['token']}"}
    response = await auth.client.delete(f"/api/auth/sessions/{other_id}", headers=bearer)
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] == 1
    assert_error(await auth.refresh(second["refresh_token"]), 401, "invalid_refresh_token")
    assert_error(await auth.get("/api/user", second["token"]), 401, "unauthorized")
    assert (await auth.get("/api/user", first["token"])).status_code == 200
    # Already revoked, unknown, and another user's session: all 404.
    assert_error(await auth.client.delete(f"/api/auth/sessions/{other_id}", headers=bearer), 404, "not_found")
    assert_error(await auth.client.delete("/api/auth/sessions/nope", headers=bearer), 404, "not_found")
    stranger = await auth.user(email())
    stranger_id = (await auth.get("/api/auth/sessions", stranger["token"])).json()[0]["id"]
    assert_error(
        await auth.client.delete(f"/api/auth/sessions/{stranger_id}", headers=bearer), 404, "not_found"
    )
    assert (await auth.refresh(stranger["refresh_token"])).status_code == 200


async def test_delete_own_current_session(auth: AuthApp) -> None:
    body = await auth.user(email())
    current = (await auth.get("/api/auth/sessions", body["token"])).json()[0]["id"]
    response = await auth.client.delete(
        f"/api/auth/sessions/{current}", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert response.status_code == 200
    assert_error(await auth.get("/api/user", body["token"]), 401, "unauthorized")


async def test_delete_all_other_sessions(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    logins = [await auth.login_body(address) for _ in range(4)]
    keep = logins[1]
    response = await auth.client.delete(
        "/api/auth/sessions", headers={"Authorization": f"Bearer {keep['token']}"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["revoked"] == 3
    for other in (logins[0], logins[2], logins[3]):
        assert_error(await auth.refresh(other["refresh_token"]), 401, "invalid_refresh_token")
    assert (await auth.get("/api/user", keep["token"])).status_code == 200
    sessions = (await auth.get("/api/auth/sessions", keep["token"])).json()
    assert len(sessions) == 1
    assert sessions[0]["current"] is True
    assert (await auth.refresh(keep["refresh_token"])).status_code == 200


# User and config -------------------------------------------------------------------------


async def test_current_user(auth: AuthApp) -> None:
    address = email()
    body = await auth.user(address)
    response = await auth.get("/api/user", body["token"])
    assert response.status_code == 200, response.text
    user = response.json()
    assert set(user) == USER_FIELDS
    assert user == body["user"]
    assert user["email"] == address
    doc = await auth.find_user(address)
    assert doc is not None
    assert user["id"] == str(doc["_id"])
    no_hash_anywhere(response.text)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Token abc"]
)
async def test_current_user_unauthorized(auth: AuthApp, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = await auth.client.get("/api/user", headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_token_in_query_string_is_ignored(auth: AuthApp) -> None:
    body = await auth.user(email())
    response = await auth.client.get("/api/user", params={"access_token": body["token"]})
    assert_error(response, 401, "unauthorized")


async def test_config_keys(app_factory: Callable[..., Any]) -> None:
    async with app_factory(
        ALLOW_REGISTRATION="false", ALLOW_SOCIAL_LOGIN="yes", MIN_PASSWORD_LENGTH="18"
    ) as auth:
        response = await auth.client.get("/api/config")
        assert response.status_code == 200
        assert response.json() == {
            "emailLoginEnabled": True,
            "registrationEnabled": False,
            "socialLoginEnabled": True,
            "socialRegistrationEnabled": False,
            "passwordResetEnabled": False,
            "emailEnabled": False,
            "minPasswordLength": 18,
        }
    async with app_factory(ALLOW_EMAIL_LOGIN="0", ALLOW_SOCIAL_REGISTRATION="1") as auth:
        body = (await auth.client.get("/api/config")).json()
        assert set(body) == CONFIG_FIELDS
        assert body["emailLoginEnabled"] is False
        assert body["registrationEnabled"] is True
        assert body["socialRegistrationEnabled"] is True
        assert body["minPasswordLength"] == 15


# Health and OpenAPI ----------------------------------------------------------------------


async def test_health_and_readiness(auth: AuthApp) -> None:
    response = await auth.client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    response = await auth.client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["store"] == "ok"


TABLE_ROUTES = {
    ("/api/auth/register", "POST"),
    ("/api/auth/login", "POST"),
    ("/api/auth/refresh", "POST"),
    ("/api/auth/logout", "POST"),
    ("/api/auth/sessions", "GET"),
    ("/api/auth/sessions", "DELETE"),
    ("/api/auth/sessions/{session_id}", "DELETE"),
    ("/api/user", "GET"),
    ("/api/config", "GET"),
    ("/healthz", "GET"),
    ("/readyz", "GET"),
}


async def openapi_doc(auth: AuthApp) -> dict[str, Any]:
    response = await auth.client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def served_routes(auth: AuthApp) -> set[tuple[str, str]]:
    return {
        (route.path, method)
        for route in auth.app.routes
        if isinstance(route, Route) and route.methods
        for method in route.methods
        if method != "HEAD" and route.path != "/openapi.json"
    }


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in doc["paths"].items() for method in item}


async def test_openapi_document(auth: AuthApp) -> None:
    doc = await openapi_doc(auth)
    assert doc["openapi"].startswith("3.1")
    errors = [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(doc)]
    assert errors == []
    documented = documented_routes(doc)
    assert documented >= TABLE_ROUTES, TABLE_ROUTES - documented
    assert documented <= served_routes(auth), documented - served_routes(auth)
    # Every reference resolves.
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        name = ref.removeprefix("#/components/schemas/")
        assert name in doc["components"]["schemas"], ref
    register_schema = doc["components"]["schemas"]["RegisterRequest"]
    assert register_schema["additionalProperties"] is False
    assert set(register_schema["required"]) == {"name", "email", "password", "confirm_password"}


async def test_openapi_lists_every_served_route(auth: AuthApp) -> None:
    doc = await openapi_doc(auth)
    missing = served_routes(auth) - documented_routes(doc)
    assert not missing, sorted(missing)


async def test_responses_match_the_openapi_document(auth: AuthApp) -> None:
    """The answers the service really gives validate against the schemas it publishes."""
    doc = await openapi_doc(auth)

    def check(path: str, method: str, response: httpx.Response) -> None:
        entry = doc["paths"][path][method]["responses"][str(response.status_code)]
        schema = {**entry["content"]["application/json"]["schema"], "components": doc["components"]}
        jsonschema_rs.validate(schema, response.json())

    address = email()
    check("/api/auth/register", "post", await auth.register(address, username="oracle"))
    check("/api/auth/register", "post", await auth.register(email(), username="oracle"))
    login = await auth.login(address)
    check("/api/auth/login", "post", login)
    check("/api/auth/login", "post", await auth.login(address, refresh_token_in_body=True))
    check("/api/auth/login", "post", await auth.login(address, "wrong password entirely"))
    token = login.json()["token"]
    check("/api/auth/refresh", "post", await auth.client.post("/api/auth/refresh"))
    check("/api/auth/sessions", "get", await auth.get("/api/auth/sessions", token))
    check("/api/user", "get", await auth.get("/api/user", token))
    check("/api/user", "get", await auth.get("/api/user"))
    check("/api/config", "get", await auth.client.get("/api/config"))
    check("/healthz", "get", await auth.client.get("/healthz"))
    check("/readyz", "get", await auth.client.get("/readyz"))
    bearer = {"Authorization": f"Bearer {token}"}
    check(
        "/api/auth/sessions/{session_id}",
        "delete",
        await auth.client.delete("/api/auth/sessions/x", headers=bearer),
    )
    check("/api/auth/sessions", "delete", await auth.client.delete("/api/auth/sessions", headers=bearer))
    check("/api/auth/logout", "post", await auth.client.post("/api/auth/logout", headers=bearer))


# Bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout"]
)
@pytest.mark.parametrize(
    "raw", [b"{", b"not json", b'{"email": NaN}', b'{"a": Infinity}', b"\xff\xfe", b'{"a": 1,}']
)
async def test_malformed_json(auth: AuthApp, path: str, raw: bytes) -> None:
    response = await auth.client.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"])
async def test_duplicate_keys(auth: AuthApp, path: str) -> None:
    raw = b'{"email": "a@example.com", "email": "b@example.com", "password": "x", "refresh_token": "y"}'
    response = await auth.client.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json")


async def test_unknown_fields(auth: AuthApp) -> None:
    address = email()
    response = await auth.register(address, role="ADMIN")
    assert_error(response, 422, "invalid_input")
    response = await auth.register(address, emailVerified=True)
    assert_error(response, 422, "invalid_input")
    assert await auth.find_user(address) is None
    await auth.register(address)
    assert_error(await auth.login(address, role="ADMIN"), 422, "invalid_input")
    response = await auth.client.post("/api/auth/refresh", json={"refresh_token": "x", "user_id": "y"})
    assert_error(response, 422, "invalid_input")
    response = await auth.client.post("/api/auth/logout", json={"everything": True})
    assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize("payload", OPERATORS, ids=[json.dumps(p) for p in OPERATORS])
async def test_operator_payloads_are_422(auth: AuthApp, payload: Any) -> None:
    address = email()
    await auth.register(address)
    for field in ("email", "password"):
        body = {"email": address, "password": STRONG_PASSWORD, field: payload}
        assert_error(await auth.client.post("/api/auth/login", json=body), 422, "invalid_input")
    for field in ("email", "password", "name", "username", "confirm_password"):
        body = {
            "name": "N",
            "email": email(),
            "password": STRONG_PASSWORD,
            "confirm_password": STRONG_PASSWORD,
            field: payload,
        }
        if field == "username" and payload is None:
            continue  # the optional username may be null
        assert_error(await auth.client.post("/api/auth/register", json=body), 422, "invalid_input")
    response = await auth.client.post("/api/auth/refresh", json={"refresh_token": payload})
    if payload is None:
        assert_error(response, 401, "invalid_refresh_token")  # null is "no token"
    else:
        assert_error(response, 422, "invalid_input")
    if not isinstance(payload, bool):
        body = {"email": address, "password": STRONG_PASSWORD, "refresh_token_in_body": payload}
        assert_error(await auth.client.post("/api/auth/login", json=body), 422, "invalid_input")
    assert await auth.collection("auth_sessions").count_documents({}) == 0
    assert await auth.collection("users").count_documents({}) == 1


@pytest.mark.parametrize("raw", [b"[]", b'["email"]', b"42", b'"a string"', b"null", b"true"])
async def test_non_object_bodies_are_422(auth: AuthApp, raw: bytes) -> None:
    for path in ("/api/auth/register", "/api/auth/login"):
        response = await auth.client.post(path, content=raw, headers={"content-type": "application/json"})
        assert_error(response, 422, "invalid_input")


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 30_000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b'{"email": ' + b"1" * 5000 + b"}",
        b'{"email": "\\ud800", "password": "x"}',
    ],
)
async def test_hostile_json_is_a_clean_400(auth: AuthApp, raw: bytes) -> None:
    response = await auth.client.post(
        "/api/auth/login", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 401, 422)
    assert response.json()["code"] in ("invalid_json", "invalid_input", "invalid_credentials")


async def test_body_size_limit_is_64_kib(auth: AuthApp) -> None:
    def body(size: int) -> bytes:
        prefix = b'{"email": "a@example.com", "password": "'
        return prefix + b"x" * (size - len(prefix) - 2) + b'"}'

    headers = {"content-type": "application/json"}
    response = await auth.client.post("/api/auth/login", content=body(64 * 1024 + 1), headers=headers)
    assert_error(response, 413, "payload_too_large")
    response = await auth.client.post("/api/auth/login", content=body(64 * 1024), headers=headers)
    assert_error(response, 422, "invalid_input")  # read and validated: the password field is too long


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
async def test_wrong_content_type(auth: AuthApp, content_type: str) -> None:
    address = email()
    raw = json.dumps({"email": address, "password": STRONG_PASSWORD}).encode()
    for path in ("/api/auth/login", "/api/auth/register"):
        response = await auth.client.post(path, content=raw, headers={"content-type": content_type})
        assert_error(response, 415, "unsupported_media_type")


async def test_json_with_charset_is_accepted(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    raw = json.dumps({"email": address, "password": STRONG_PASSWORD}).encode()
    response = await auth.client.post(
        "/api/auth/login", content=raw, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 200


# Headers -------------------------------------------------------------------------------


async def test_request_id_is_echoed(auth: AuthApp) -> None:
    for path in ("/healthz", "/api/user", "/api/config", "/nowhere"):
        response = await auth.client.get(path, headers={"X-Request-Id": "req-123_abc.9:z"})
        assert response.headers["x-request-id"] == "req-123_abc.9:z"
    response = await auth.client.post("/api/auth/login", json={"email": 1}, headers={"X-Request-Id": "r-422"})
    assert response.headers["x-request-id"] == "r-422"
    # Without one (or with an unsafe one) the service mints its own.
    minted = (await auth.client.get("/healthz")).headers["x-request-id"]
    assert minted
    for bad in ("has spaces", "x" * 129, "line\tbreak", "<script>"):
        response = await auth.client.get("/healthz", headers={"X-Request-Id": bad})
        assert response.headers["x-request-id"] != bad
        assert response.headers["x-request-id"]
    assert len(response.headers.get_list("x-request-id")) == 1


async def test_request_id_reaches_the_audit_record(auth: AuthApp) -> None:
    address = email()
    await auth.register(address)
    await auth.client.post(
        "/api/auth/login",
        json={"email": address, "password": STRONG_PASSWORD},
        headers={"X-Request-Id": "trace-42"},
    )
    record = await auth.collection("auth_audit").find_one({"event": "login"})
    assert record is not None
    assert record["request_id"] == "trace-42"


async def test_unknown_route_and_method_are_json_errors(auth: AuthApp) -> None:
    assert_error(await auth.client.get("/api/nothing"), 404, "not_found")
    assert_error(await auth.client.get("/api/auth/login"), 405, "method_not_allowed")
    assert_error(await auth.client.put("/api/user"), 405, "method_not_allowed")


async def test_cors_only_for_the_configured_origin(app_factory: Callable[..., Any]) -> None:
    async with app_factory(DOMAIN_CLIENT="https://chat.example") as auth:
        preflight = {"Origin": "https://chat.example", "Access-Control-Request-Method": "POST"}
        response = await auth.client.options("/api/auth/refresh", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://chat.example"
        assert response.headers["access-control-allow-credentials"] == "true"
        response = await auth.client.options(
            "/api/auth/refresh", headers={**preflight, "Origin": "https://chat.example.evil.test"}
        )
        assert response.headers.get("access-control-allow-origin") != "https://chat.example.evil.test"
        response = await auth.client.get("/api/config", headers={"Origin": "https://evil.test"})
        assert "access-control-allow-origin" not in response.headers


# Over a real socket ------------------------------------------------------------------------


async def test_full_flow_over_uvicorn(auth_service: Callable[..., Server]) -> None:
    """The same API through `python -m services.auth`: headers, cookies, and oversized headers."""
    server = auth_service()
    address = email()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        assert (await client.post("/api/auth/register", json=registration(address))).status_code == 200
        response = await client.post("/api/auth/login", json={"email": address, "password": STRONG_PASSWORD})
        assert response.status_code == 200, response.text
        assert "server" not in response.headers
        raw: SimpleCookie = SimpleCookie()
        for header in response.headers.get_list("set-cookie"):
            raw.load(header)
        morsel = raw["refreshToken"]
        assert morsel["httponly"] is True
        assert morsel["secure"] is True
        assert morsel["path"] == "/api/auth"
        assert morsel["samesite"].lower() == "strict"
        token = response.json()["token"]
        assert (
            await client.get("/api/user", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 200
        # A 100 KiB bearer token never reaches a handler as a success (h11 limits the header block).
        huge = "a" * (100 * 1024)
        response = await client.get("/api/user", headers={"Authorization": f"Bearer {huge}"})
        assert response.status_code in (400, 401, 413, 431)
        assert (await client.get("/healthz")).status_code == 200
        refresh_token = morsel.value
        response = await client.post("/api/auth/refresh", headers={"Cookie": f"refreshToken={refresh_token}"})
        assert response.status_code == 200
    # Nothing secret reached the service's log.
    log = server.log()
    assert "login" in log
    for secret in (STRONG_PASSWORD, token, refresh_token, "$argon2"):
        assert secret not in log


# Client IP -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "forwarded", "expected"),
    [
        # Nobody trusted: X-Forwarded-For is ignored, the socket peer is the client.
        ({}, "198.51.100.7", CLIENT_IP),
        # Behind one trusted proxy: the right-most entry it appended, never the spoofable left-most.
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32"}, "198.51.100.7", "198.51.100.7"),
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32"}, "6.6.6.6, 198.51.100.7", "198.51.100.7"),
        # Two hops: the inner trusted proxy is skipped.
        (
            {"TRUST_PROXY": "2", "TRUSTED_PROXIES": f"{CLIENT_IP}/32, 10.0.0.0/8"},
            "6.6.6.6, 198.51.100.7, 10.1.2.3",
            "198.51.100.7",
        ),
        # A trusted address only counts up to TRUST_PROXY hops.
        (
            {"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32, 10.0.0.0/8"},
            "198.51.100.7, 10.1.2.3",
            "10.1.2.3",
        ),
        # The peer is not a trusted proxy: its header means nothing.
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": "10.0.0.0/8"}, "198.51.100.7", CLIENT_IP),
        # Garbage in the header never becomes the client address, nor does the (exempt) proxy.
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32"}, "not-an-ip", "unknown"),
        # A scoped address loses its zone.
        ({"TRUST_PROXY": "1", "TRUSTED_PROXIES": f"{CLIENT_IP}/32"}, "fe80::1%eth0", "fe80::1"),
    ],
)
async def test_client_ip_recorded_on_the_session(
    app_factory: Callable[..., Any], env: dict[str, str], forwarded: str, expected: str
) -> None:
    async with app_factory(**env) as auth:
        address = email()
        await auth.register(address)
        response = await auth.client.post(
            "/api/auth/login",
            json={"email": address, "password": STRONG_PASSWORD},
            headers={"X-Forwarded-For": forwarded},
        )
        assert response.status_code == 200
        sessions = (await auth.get("/api/auth/sessions", response.json()["token"])).json()
        assert [s["ip"] for s in sessions] == [expected]
        record = await auth.collection("auth_audit").find_one({"event": "login"})
        assert record is not None
        assert record["ip"] == expected


@pytest.mark.parametrize("name", ["Al\x00ice", "line\nbreak", "tab\there", "del\x7f"])
async def test_register_refuses_control_characters_in_name(auth: AuthApp, name: str) -> None:
    response = await auth.register(email(), name=name)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"

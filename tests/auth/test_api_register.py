"""Registration through the API: answers, stored fields, input and password-policy refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from services.auth.accounts import REGISTER_MESSAGE
from tests.auth.api_helpers import (
    assert_error,
    email,
)
from tests.auth.conftest import STRONG_PASSWORD, AuthApp

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
    assert doc["emailVerified"] is True  # without mail nobody can prove it: verified, as in LibreChat
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

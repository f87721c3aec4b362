"""Items 12, 16 and 17 as issue 3 supersedes them: no silent lockout, but a per-account throttle
that answers 429 `rate_limited` *before* the password is checked, identically for an existing
and an unknown account, for every spelling of the email, and for the right password too.
Item 45: a throttled or banned client costs no argon2 work and no store access.

Runs against this module's own moderation service with LOGIN_ACCOUNT_MAX=3.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from harness import ModerationHandle, start_moderation
from tests.auth.conftest import STRONG_PASSWORD, AuthApp
from tests.auth.hash_spy import HashSpy

ACCOUNT_MAX = 3
WRONG = "definitely not the password, sorry"
ATTEMPTS = ACCOUNT_MAX + 2
VOLATILE_HEADERS = {"x-request-id", "date", "retry-after", "ratelimit-reset"}


@pytest.fixture(scope="module")
def throttling_moderation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModerationHandle]:
    handle = start_moderation(
        tmp_path_factory.mktemp("throttle"), {"LOGIN_ACCOUNT_MAX": str(ACCOUNT_MAX), "LOGIN_DEVICE_MAX": "6"}
    )
    try:
        yield handle
    finally:
        handle.server.stop(sig_kill=True)  # its in-memory state dies with it; nothing to drain


@pytest.fixture
async def throttled(
    app_factory: Callable[..., Any], throttling_moderation: ModerationHandle
) -> AsyncIterator[AuthApp]:
    env = {**throttling_moderation.auth_env(), "LOGIN_ACCOUNT_MAX": str(ACCOUNT_MAX)}
    async with app_factory(**env) as auth:
        yield auth


def email() -> str:
    return f"throttle-{secrets.token_hex(4)}@example.com"


def shape(response: httpx.Response) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and headers, minus what legitimately differs from one request to the next."""
    body = {k: v for k, v in response.json().items() if k != "retry_after"}
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE_HEADERS}
    return response.status_code, body, headers


async def test_existing_and_unknown_accounts_throttle_identically(throttled: AuthApp) -> None:
    existing, unknown = email(), email()
    assert (await throttled.register(existing)).status_code == 200
    curves = []
    for address in (existing, unknown):
        curves.append([shape(await throttled.login(address, WRONG)) for _ in range(ATTEMPTS)])
    assert [status for status, _, _ in curves[0]] == [401] * ACCOUNT_MAX + [429] * (ATTEMPTS - ACCOUNT_MAX)
    assert curves[0] == curves[1]  # status, body and headers: the throttle reveals no account
    assert curves[0][-1][1]["code"] == "rate_limited"
    assert "set-cookie" not in curves[0][-1][2]


async def test_the_throttle_answers_before_the_password_is_checked(throttled: AuthApp) -> None:
    address = email()
    assert (await throttled.register(address)).status_code == 200
    for _ in range(ACCOUNT_MAX):
        assert (await throttled.login(address, WRONG)).status_code == 401
    spy = HashSpy(throttled)
    wrong = await throttled.login(address, WRONG)
    right = await throttled.login(address, STRONG_PASSWORD)  # the right password gets the same answer
    assert shape(right) == shape(wrong)
    assert right.status_code == 429
    assert not spy.calls  # item 45: refused before any argon2 work
    assert await throttled.collection("auth_sessions").count_documents({}) == 0


@pytest.mark.parametrize("variant", [str.upper, str.title, lambda e: f"  {e.upper()} "])
async def test_every_spelling_of_an_email_shares_one_counter(
    throttled: AuthApp, variant: Callable[[str], str]
) -> None:
    unknown, registered = email(), email()
    assert (await throttled.register(registered)).status_code == 200
    for address in (unknown, registered):
        for _ in range(ACCOUNT_MAX):
            assert (await throttled.login(address, WRONG)).status_code == 401
        assert (await throttled.login(variant(address), WRONG)).status_code == 429


async def test_a_banned_address_costs_no_hashing_and_no_store_access(
    app_factory: Callable[..., Any], throttling_moderation: ModerationHandle
) -> None:
    """Item 45: the ban check runs before the body is even read."""
    banned_ip = f"198.51.100.{secrets.randbelow(200) + 20}"
    env = {**throttling_moderation.auth_env(), "TRUST_PROXY": "1", "TRUSTED_PROXIES": "203.0.113.10/32"}
    async with app_factory(**env) as auth:
        address = email()
        assert (await auth.register(address)).status_code == 200
        admin = {"Authorization": f"Bearer {throttling_moderation.admin_key}"}
        async with httpx.AsyncClient(base_url=throttling_moderation.server.url, headers=admin) as moderation:
            ban = {"subject": f"ip:{banned_ip}", "reason": "security test", "duration_seconds": 120}
            assert (await moderation.post("/v1/bans", json=ban)).status_code in (200, 201)
        forwarded = {"X-Forwarded-For": banned_ip}
        deadline = time.monotonic() + 10
        while (await auth.client.get("/api/config", headers=forwarded)).status_code != 403:
            assert time.monotonic() < deadline, "the ban never reached the auth service"
            await asyncio.sleep(0.05)
        spy = HashSpy(auth)
        audit_before = await auth.collection("auth_audit").count_documents({})
        for password in (STRONG_PASSWORD, WRONG):
            response = await auth.client.post(
                "/api/auth/login", json={"email": address, "password": password}, headers=forwarded
            )
            assert response.status_code == 403
            assert response.json()["code"] == "banned"
        response = await auth.client.post("/api/auth/register", content=b"{not even json", headers=forwarded)
        assert response.status_code == 403  # refused before the body is read or validated
        assert not spy.calls
        assert await auth.collection("auth_audit").count_documents({}) == audit_before
        assert await auth.collection("auth_sessions").count_documents({}) == 0

"""POST /api/auth/password: the current password first (behind the login limiter), the policy on
the new one, this session kept and every other one ended, the owner told by mail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from harness.moderation import start_moderation
from harness.smtp import SmtpServer
from tests.auth.api_helpers import email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp
from tests.auth.test_password_reset import NEW_PASSWORD, mail_env, mails_to


@pytest.fixture
async def auth(app_factory: Callable[..., Any], smtp: SmtpServer) -> AsyncIterator[AuthApp]:
    async with app_factory(**mail_env(smtp)) as running:
        yield running


async def change(auth: AuthApp, token: str, current: str, new: str = NEW_PASSWORD) -> Any:
    return await auth.client.post(
        "/api/auth/password",
        json={"current_password": current, "new_password": new},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_change_keeps_this_session_ends_the_others_and_tells_the_owner(
    auth: AuthApp, smtp: SmtpServer
) -> None:
    address = email()
    here = await auth.user(address)
    elsewhere = await auth.login_body(address)
    changed = await change(auth, here["token"], STRONG_PASSWORD)
    assert changed.status_code == 200, changed.text
    assert changed.json()["revoked"] == 1
    assert (await auth.get("/api/user", here["token"])).status_code == 200
    assert (await auth.refresh(here["refresh_token"])).status_code == 200
    assert (await auth.get("/verify", elsewhere["token"])).status_code == 401
    assert (await auth.refresh(elsewhere["refresh_token"])).status_code == 401
    assert (await auth.login(address, STRONG_PASSWORD)).status_code == 401
    assert (await auth.login(address, NEW_PASSWORD)).status_code == 200
    await mails_to(smtp, address, "Your Acme password was changed")


async def test_a_wrong_current_password_or_a_weak_new_one_changes_nothing(auth: AuthApp) -> None:
    address = email()
    session = await auth.user(address)
    other = await auth.login_body(address)
    wrong = await change(auth, session["token"], "not the password at all, sorry")
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"
    weak = await change(auth, session["token"], STRONG_PASSWORD, "password")
    assert weak.status_code == 422 and weak.json()["code"] == "password_policy"
    assert (await auth.refresh(other["refresh_token"])).status_code == 200  # no session ended
    assert (await auth.login(address, STRONG_PASSWORD)).status_code == 200
    events = [d["event"] async for d in auth.collection("auth_audit").find({}, {"event": 1})]
    assert "password_change_failed" in events and "password_changed" not in events


async def test_a_change_needs_a_live_access_token_and_a_valid_body(auth: AuthApp) -> None:
    session = await auth.user(email())
    assert (await change(auth, "not-a-token", STRONG_PASSWORD)).status_code == 401
    anonymous = await auth.client.post(
        "/api/auth/password", json={"current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert anonymous.status_code == 401
    missing = await auth.client.post(
        "/api/auth/password",
        json={"current_password": STRONG_PASSWORD},
        headers={"Authorization": f"Bearer {session['token']}"},
    )
    assert missing.status_code == 422 and missing.json()["code"] == "invalid_input"


async def test_guessing_the_current_password_meets_the_login_account_limit(
    app_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """A stolen access token guesses no faster than a login: the account's failure window."""
    moderation = start_moderation(tmp_path, {"LOGIN_ACCOUNT_MAX": "3", "LOGIN_DEVICE_MAX": "3"})
    try:
        async with app_factory(**moderation.auth_env()) as auth:
            session = await auth.user(email())
            answers = [
                (await change(auth, session["token"], f"wrong guess number {n} here")).status_code
                for n in range(4)
            ]
            limited = await change(auth, session["token"], STRONG_PASSWORD)
    finally:
        moderation.server.stop()
    assert answers == [401, 401, 401, 429]
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"  # even the right one
    assert "Retry-After" in limited.headers

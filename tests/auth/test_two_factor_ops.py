"""Two-factor around the flows: mails and audit events, the operator's CLI, and the limits on
the login's second step (per IP and per account, 429 `rate_limited` with Retry-After)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import ModerationHandle, eventually, run_authgate, start_moderation
from harness.smtp import SmtpServer
from services.auth.two_factor.secrets import SecretSealer, key_id
from tests.auth.api_helpers import assert_error
from tests.auth.conftest import STRONG_PASSWORD, AuthApp
from tests.auth.two_factor_helpers import call, code, enrolled, temp_token

TEMP_MAX = 3


def cli_env(auth: AuthApp, **extra: str) -> dict[str, str]:
    settings = auth.settings
    return {
        "AUTHGATE_ENV": "test",
        "MONGO_URI": settings.mongo_uri,
        "JWT_SECRET": settings.jwt_secret,
        "JWT_REFRESH_SECRET": settings.jwt_refresh_secret,
        "TOTP_ENCRYPTION_KEY": settings.totp_encryption_key,
        "MODERATION_URL": "http://127.0.0.1:1",
        "MODERATION_API_KEY": "k" * 43,
        **extra,
    }


# Mails and audit ------------------------------------------------------------------------------


async def test_the_owner_is_told_when_2fa_goes_on_and_off(
    app_factory: Callable[..., Any], smtp: SmtpServer
) -> None:
    mail = {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp.port),
        "EMAIL_FROM": "noreply@example.com",
        "APP_TITLE": "Acme",
        "DOMAIN_CLIENT": "https://chat.example.com",
        "DOMAIN_SERVER": "https://chat.example.com",
        "ALLOW_UNVERIFIED_EMAIL_LOGIN": "true",
    }
    async with app_factory(**mail) as auth:
        user = await enrolled(auth)

        def subjects() -> list[str]:
            return [str(m.message["Subject"]) for m in smtp.sink.received if m.recipients == [user.address]]

        await eventually(lambda: "Two-factor sign-in is on for your Acme account" in subjects() or None, "on")
        off = {"password": STRONG_PASSWORD, "token": code(user.secret)}
        assert (await call(auth, "disable", user.token, off)).status_code == 200
        await eventually(
            lambda: "Two-factor sign-in is off for your Acme account" in subjects() or None, "off"
        )
        text = str(smtp.sink.received[-1].message)
        assert user.secret not in text and not any(c in text for c in user.backup_codes)
        events = {d["event"] async for d in auth.collection("auth_audit").find({"user_id": user.user_id})}
        assert {"2fa_enrolment_started", "2fa_enabled", "2fa_disabled"} <= events


# The CLI --------------------------------------------------------------------------------------


async def test_an_operator_turns_2fa_off_and_ends_every_session(auth: AuthApp, tmp_path: Path) -> None:
    user = await enrolled(auth)
    done = run_authgate(cli_env(auth), tmp_path, "disable-2fa", user.address)
    assert done.returncode == 0, done.stderr
    assert "revoked" in done.stdout
    assert_error(await auth.get("/api/user", user.token), 401, "unauthorized")
    plain = await auth.login(user.address)
    assert plain.status_code == 200 and plain.json()["user"]["twoFactorEnabled"] is False
    again = run_authgate(cli_env(auth), tmp_path, "disable-2fa", user.address)
    assert again.returncode == 1 and "no two-factor" in again.stderr
    assert run_authgate(cli_env(auth), tmp_path, "disable-2fa", "nobody@example.com").returncode == 1


async def test_reencrypt_moves_every_secret_to_the_new_key(auth: AuthApp, tmp_path: Path) -> None:
    user = await enrolled(auth)
    old, new = auth.settings.totp_encryption_key, secrets.token_hex(32)
    rotated = cli_env(auth, TOTP_ENCRYPTION_KEY=new, TOTP_ENCRYPTION_KEYS_OLD=old)
    done = run_authgate(rotated, tmp_path, "reencrypt-totp")
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 1 secret(s)" in done.stdout
    doc = await auth.collection("auth_two_factor").find_one({"_id": user.user_id})
    assert doc["secret"].startswith(f"ag1:{key_id(new)}:")
    assert SecretSealer(new).open(user.user_id, doc["secret"]) == user.secret
    # Without the old key anything still under it is reported, not dropped.
    stale = cli_env(auth, TOTP_ENCRYPTION_KEY=secrets.token_hex(32))
    failed = run_authgate(stale, tmp_path, "reencrypt-totp")
    assert failed.returncode == 1 and "TOTP_ENCRYPTION_KEYS_OLD" in failed.stderr


# Limits ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limiting_moderation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModerationHandle]:
    handle = start_moderation(tmp_path_factory.mktemp("two-factor"), {"TWO_FACTOR_TEMP_MAX": str(TEMP_MAX)})
    try:
        yield handle
    finally:
        handle.server.stop(sig_kill=True)


@pytest.fixture
async def limited(
    app_factory: Callable[..., Any], limiting_moderation: ModerationHandle
) -> AsyncIterator[AuthApp]:
    async with app_factory(**limiting_moderation.auth_env(), TWO_FACTOR_TEMP_MAX=str(TEMP_MAX)) as auth:
        yield auth


def fresh_peer() -> str:
    return f"198.18.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


async def test_verify_temp_is_limited_per_ip(limited: AuthApp) -> None:
    client = limited.new_client(fresh_peer())
    for _ in range(TEMP_MAX):  # a different account each time: only the address's window fills
        other = await enrolled(limited)
        temp = await temp_token(limited, other.address)
        answer = await client.post("/api/auth/2fa/verify-temp", json={"tempToken": temp, "token": "000000"})
        assert_error(answer, 401, "invalid_2fa_code")
    user = await enrolled(limited)
    temp = await temp_token(limited, user.address)
    good = {"tempToken": temp, "token": code(user.secret)}
    refused = await client.post("/api/auth/2fa/verify-temp", json=good)
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert not refused.headers.get_list("set-cookie")
    # The refusal spent nothing: the same token and code work from another address.
    assert (
        await limited.new_client(fresh_peer()).post("/api/auth/2fa/verify-temp", json=good)
    ).status_code == 200


async def test_a_signed_in_users_code_checks_are_limited_too(limited: AuthApp) -> None:
    """/2fa/verify with a stolen access token cannot try codes (or burn the owner's) without limit."""
    user = await enrolled(limited)
    client = limited.new_client(fresh_peer())
    bearer = {"Authorization": f"Bearer {user.token}"}
    for _ in range(TEMP_MAX):
        answer = await client.post("/api/auth/2fa/verify", json={"token": "000000"}, headers=bearer)
        assert_error(answer, 401, "invalid_2fa_code")
    refused = await client.post("/api/auth/2fa/verify", json={"token": code(user.secret)}, headers=bearer)
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1


async def test_verify_temp_is_limited_per_account_across_ips(limited: AuthApp) -> None:
    user = await enrolled(limited)
    for _ in range(TEMP_MAX):
        temp = await temp_token(limited, user.address)
        answer = await limited.new_client(fresh_peer()).post(
            "/api/auth/2fa/verify-temp", json={"tempToken": temp, "token": "000000"}
        )
        assert_error(answer, 401, "invalid_2fa_code")
    temp = await temp_token(limited, user.address)
    refused = await limited.new_client(fresh_peer()).post(
        "/api/auth/2fa/verify-temp", json={"tempToken": temp, "token": code(user.secret)}
    )
    assert_error(refused, 429, "rate_limited")


@pytest.fixture(scope="module")
def account_throttle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModerationHandle]:
    handle = start_moderation(tmp_path_factory.mktemp("two-factor-account"), {"LOGIN_ACCOUNT_MAX": "3"})
    try:
        yield handle
    finally:
        handle.server.stop(sig_kill=True)


async def test_password_guesses_through_2fa_changes_meet_the_login_throttle(
    app_factory: Callable[..., Any], account_throttle: ModerationHandle
) -> None:
    """A stolen access token does not buy unlimited guesses at the password the changes need."""
    async with app_factory(**{**account_throttle.auth_env(), "LOGIN_ACCOUNT_MAX": "3"}) as auth:
        user = await enrolled(auth)
        guess = {"password": "not the password at all 123", "backupCode": user.backup_codes[0]}
        for _ in range(3):
            assert_error(await call(auth, "disable", user.token, guess), 401, "invalid_credentials")
        right = {"password": STRONG_PASSWORD, "backupCode": user.backup_codes[0]}
        assert_error(await call(auth, "disable", user.token, right), 429, "rate_limited")
        assert_error(await auth.login(user.address), 429, "rate_limited")  # the same account throttle
        doc = await auth.collection("auth_two_factor").find_one({"_id": user.user_id})
        assert doc is not None and doc["enabled"] is True
        assert await auth.collection("auth_audit").count_documents({"event": "2fa_change_refused"}) == 3

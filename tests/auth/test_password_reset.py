"""Password reset end to end through a real SMTP server: the link only by mail, used once, the
policy before the token is spent, every session ended, the owner told; off unless enabled."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness import eventually
from harness.smtp import Received, SmtpServer
from harness.smtp import mail_env as smtp_env
from services.auth.settings import load_settings
from shared.config import ConfigError, Env
from tests.auth.api_helpers import email
from tests.auth.conftest import STRONG_PASSWORD, AuthApp

NEW_PASSWORD = "another long and memorable passphrase"


def mail_env(smtp: SmtpServer) -> dict[str, str]:
    """Mail on, password reset on, unverified logins allowed (the reset tests log in at once);
    LibreChat on its own origin, so links lead to its /reset-password page."""
    return smtp_env(
        smtp,
        ALLOW_PASSWORD_RESET="true",
        ALLOW_UNVERIFIED_EMAIL_LOGIN="true",
        DOMAIN_SERVER="https://auth.example.com",
    )


@pytest.fixture
async def auth(app_factory: Callable[..., Any], smtp: SmtpServer) -> AsyncIterator[AuthApp]:
    async with app_factory(**mail_env(smtp)) as running:
        yield running


async def mails_to(smtp: SmtpServer, address: str, subject: str, count: int = 1) -> list[Received]:
    def arrived() -> list[Received] | None:
        found = [
            m
            for m in smtp.sink.received
            if m.recipients == [address] and subject in str(m.message["Subject"])
        ]
        return found if len(found) >= count else None

    return await eventually(arrived, f"{count} '{subject}' mail(s) to {address}")


def reset_query(mail: Received) -> dict[str, str]:
    part = next(p for p in mail.message.walk() if p.get_content_type() == "text/plain")
    payload = part.get_payload(decode=True)
    body = payload.decode() if isinstance(payload, bytes) else str(payload)
    found = re.search(r"https://chat\.example\.com/reset-password\?\S+", body)
    assert found, body
    return {key: values[0] for key, values in parse_qs(urlsplit(found.group(0)).query).items()}


async def reset(auth: AuthApp, user_id: str, token: str, password: str = NEW_PASSWORD) -> Any:
    body = {"userId": user_id, "token": token, "password": password, "confirm_password": password}
    return await auth.client.post("/api/auth/resetPassword", json=body)


async def test_reset_by_mail_ends_every_session_and_tells_the_owner(auth: AuthApp, smtp: SmtpServer) -> None:
    address = email()
    session = await auth.user(address)
    requested = await auth.client.post("/api/auth/requestPasswordReset", json={"email": address})
    assert requested.status_code == 200
    assert "http" not in requested.text and "token" not in requested.text  # never a link in the answer
    link = reset_query((await mails_to(smtp, address, "Reset your Acme password"))[0])
    assert link["userId"] == session["user"]["id"]

    weak = await reset(auth, link["userId"], link["token"], "password")
    assert weak.status_code == 422 and weak.json()["code"] == "password_policy"  # the token is not spent
    done = await reset(auth, link["userId"], link["token"])
    assert done.status_code == 200, done.text
    assert done.json() == {"message": "Password reset was successful"}

    headers = {"Authorization": f"Bearer {session['token']}"}
    assert (await auth.client.get("/verify", headers=headers)).status_code == 401
    assert (await auth.refresh(session["refresh_token"])).status_code == 401
    assert (await auth.login(address, STRONG_PASSWORD)).status_code == 401
    assert (await auth.login(address, NEW_PASSWORD)).status_code == 200
    again = await reset(auth, link["userId"], link["token"])
    assert again.status_code == 400 and again.json()["code"] == "invalid_reset_token"
    await mails_to(smtp, address, "Your Acme password was changed")


async def test_requests_answer_the_same_and_mail_only_known_addresses_once_a_minute(
    auth: AuthApp, smtp: SmtpServer
) -> None:
    known, unknown = email(), email()
    await auth.user(known)
    answers = [
        await auth.client.post("/api/auth/requestPasswordReset", json={"email": address})
        for address in (known, unknown, known)
    ]
    assert len({(a.status_code, a.content) for a in answers}) == 1 and answers[0].status_code == 200

    async def settled() -> bool:
        states = [doc["state"] async for doc in auth.collection("auth_outbox").find({}, {"state": 1})]
        return bool(states) and "pending" not in states

    await eventually(settled, "the outbox worked through every entry")
    resets = [m for m in smtp.sink.received if "Reset" in str(m.message["Subject"])]
    assert [m.recipients for m in resets] == [[known]]  # the unknown address and the repeat: nothing


async def test_a_token_resets_only_its_own_account(auth: AuthApp, smtp: SmtpServer) -> None:
    owner, other = email(), email()
    await auth.user(owner)
    stranger = await auth.user(other)
    await auth.client.post("/api/auth/requestPasswordReset", json={"email": owner})
    link = reset_query((await mails_to(smtp, owner, "Reset"))[0])
    foreign = await reset(auth, stranger["user"]["id"], link["token"])
    assert foreign.status_code == 400 and foreign.json()["code"] == "invalid_reset_token"
    for bad in ({"userId": "nobody", "token": link["token"]}, {"userId": link["userId"], "token": "x" * 43}):
        assert (await reset(auth, bad["userId"], bad["token"])).status_code == 400
    mismatch = {
        "userId": link["userId"],
        "token": link["token"],
        "password": NEW_PASSWORD,
        "confirm_password": "x",
    }
    assert (await auth.client.post("/api/auth/resetPassword", json=mismatch)).status_code == 422
    assert (await reset(auth, link["userId"], link["token"])).status_code == 200


async def test_reset_is_off_unless_enabled(app_factory: Callable[..., Any]) -> None:
    async with app_factory() as plain:
        for path, body in (
            ("/api/auth/requestPasswordReset", {"email": "a@example.com"}),
            (
                "/api/auth/resetPassword",
                {"userId": "u", "token": "t", "password": "p", "confirm_password": "p"},
            ),
        ):
            response = await plain.client.post(path, json=body)
            assert response.status_code == 403 and response.json()["code"] == "password_reset_disabled"
        assert (await plain.client.get("/api/config")).json()["passwordResetEnabled"] is False


def test_reset_without_mail_is_a_startup_error(tmp_path: Path) -> None:
    env = Env([{"AUTHGATE_ENV": "development", "ALLOW_PASSWORD_RESET": "true"}])
    with pytest.raises(ConfigError) as error:
        load_settings(env, root=tmp_path)
    assert error.value.name == "ALLOW_PASSWORD_RESET"

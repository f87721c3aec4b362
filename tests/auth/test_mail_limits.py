"""Mail requests meet three limits: per address (moderation's `reset_password` and `verify_email`
events, 429 with Retry-After, the token submissions on their own `*_SUBMISSION_*` windows), per
account (silent: the same 200, no mail) and at most five mails of a kind per recipient per hour."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import eventually
from harness.moderation import ModerationHandle, start_moderation
from harness.smtp import SmtpServer
from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp
from tests.auth.test_password_reset import mail_env

RESET = "/api/auth/requestPasswordReset"
RESEND = "/api/user/verify/resend"


@pytest.fixture
def strict_moderation(tmp_path: Path) -> Iterator[ModerationHandle]:
    handle = start_moderation(
        tmp_path,
        {
            "RESET_PASSWORD_MAX": "2",
            "RESET_PASSWORD_SUBMISSION_MAX": "3",
            "VERIFY_EMAIL_MAX": "2",
            "VERIFY_EMAIL_SUBMISSION_MAX": "3",
        },
    )
    yield handle
    handle.server.stop()


async def wind_back(auth: AuthApp, minutes: float, *collections: str) -> None:
    """Make what was issued or queued so far look `minutes` older (cooldowns, windows)."""
    for name in collections:
        async for doc in auth.collection(name).find({}, {"created_at": 1}):
            earlier = doc["created_at"] - dt.timedelta(minutes=minutes)
            await auth.collection(name).update_one({"_id": doc["_id"]}, {"$set": {"created_at": earlier}})


async def settled_mails(auth: AuthApp, smtp: SmtpServer, address: str, kind: str) -> int:
    async def settled() -> bool:
        states = [doc["state"] async for doc in auth.collection("auth_outbox").find({}, {"state": 1})]
        return bool(states) and "pending" not in states

    await eventually(settled, "the outbox worked through every entry")
    return len(
        [m for m in smtp.sink.received if m.recipients == [address] and kind in str(m.message["Subject"])]
    )


async def test_requests_and_submissions_are_limited_per_address(
    app_factory: Callable[..., Any], smtp: SmtpServer, strict_moderation: ModerationHandle
) -> None:
    env = {**mail_env(smtp), **strict_moderation.auth_env(), "RESET_PASSWORD_MAX": "100"}
    async with app_factory(**env) as auth:
        for path, body in ((RESET, {"email": email()}), (RESEND, {"email": email()})):
            answers = [await auth.client.post(path, json=body) for _ in range(3)]
            assert [a.status_code for a in answers] == [200, 200, 429], path
            assert answers[2].json()["code"] == "rate_limited" and int(answers[2].headers["Retry-After"]) > 0
        # Submitting tokens counts on its own window: three wrong tokens, then refused.
        wrong_reset = {"userId": "u", "token": "t" * 43, "password": "p", "confirm_password": "p"}
        wrong_verify = {"email": email(), "token": "t" * 43}
        for path, body in (("/api/auth/resetPassword", wrong_reset), ("/api/user/verify", wrong_verify)):
            codes = [(await auth.client.post(path, json=body)).status_code for _ in range(4)]
            assert 429 not in codes[:3] and codes[3] == 429, (path, codes)


async def test_an_account_asked_for_too_often_gets_the_same_answer_and_no_mail(
    app_factory: Callable[..., Any], smtp: SmtpServer
) -> None:
    env = {**mail_env(smtp), "RESET_PASSWORD_MAX": "2", "RESET_PASSWORD_WINDOW": "10"}
    async with app_factory(**env) as auth:
        address = email()
        await auth.user(address)
        answers = []
        for _ in range(3):
            answers.append(await auth.client.post(RESET, json={"email": address}))
            await wind_back(auth, 2, "auth_tokens")  # past the one-a-minute cooldown, inside the window
        assert len({(a.status_code, a.content) for a in answers}) == 1 and answers[0].status_code == 200
        assert await settled_mails(auth, smtp, address, "Reset") == 2


async def test_no_more_than_five_mails_of_a_kind_an_hour(
    app_factory: Callable[..., Any], smtp: SmtpServer
) -> None:
    async with app_factory(**{**mail_env(smtp), "RESET_PASSWORD_MAX": "100"}) as auth:
        address = email()
        await auth.user(address)
        for _ in range(6):
            assert (await auth.client.post(RESET, json={"email": address})).status_code == 200
            await wind_back(auth, 2, "auth_tokens")
        assert await settled_mails(auth, smtp, address, "Reset") == 5
        await wind_back(auth, 61, "auth_outbox")  # an hour later the address may be mailed again
        await wind_back(auth, 2, "auth_tokens")
        assert (await auth.client.post(RESET, json={"email": address})).status_code == 200
        assert await settled_mails(auth, smtp, address, "Reset") == 6

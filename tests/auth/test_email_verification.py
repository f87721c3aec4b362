"""E-mail verification end to end through a real SMTP server: the link arrives, verifies once,
and until then login answers 422 `email_not_verified` only after the correct password; resend
and registration never tell whether an address has an account."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness import Server, eventually, run_authgate
from harness.smtp import MAIL_CLIENT, Received, SmtpServer, mail_env
from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp

CLIENT = MAIL_CLIENT
# LibreChat on its own origin: mail links lead to its /verify page (the portal case is in
# tests/auth/test_portal_recovery.py).
SERVER = "https://auth.example.com"


@pytest.fixture
async def auth(app_factory: Callable[..., Any], smtp: SmtpServer) -> AsyncIterator[AuthApp]:
    async with app_factory(**mail_env(smtp, DOMAIN_SERVER=SERVER)) as running:
        yield running


async def mail_to(smtp: SmtpServer, address: str, count: int = 1) -> list[Received]:
    def arrived() -> list[Received] | None:
        found = [mail for mail in smtp.sink.received if mail.recipients == [address]]
        return found if len(found) >= count else None

    return await eventually(arrived, f"{count} mail(s) to {address}")


def link_of(mail: Received) -> dict[str, str]:
    text = next(part for part in mail.message.walk() if part.get_content_type() == "text/plain")
    payload = text.get_payload(decode=True)
    body = payload.decode() if isinstance(payload, bytes) else str(payload)
    found = re.search(r"https://chat\.example\.com/verify\?\S+", body)
    assert found, body
    query = {key: values[0] for key, values in parse_qs(urlsplit(found.group(0)).query).items()}
    return query


async def test_register_mail_verify_then_login(auth: AuthApp, smtp: SmtpServer) -> None:
    address = email()
    assert (await auth.register(address)).status_code == 200
    [mail] = await mail_to(smtp, address)
    assert mail.message["Subject"] == "Verify your email for Acme"
    link = link_of(mail)
    assert link["email"] == address
    # Unverified: the right password is told to verify first, a wrong one learns nothing.
    refused = await auth.login(address)
    assert refused.status_code == 422 and refused.json()["code"] == "email_not_verified"
    assert (await auth.login(address, "wrong password entirely")).json()["code"] == "invalid_credentials"
    verified = await auth.client.post("/api/user/verify", json={"email": address, "token": link["token"]})
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"message": "Email verification was successful", "status": "success"}
    again = await auth.client.post("/api/user/verify", json={"email": address, "token": link["token"]})
    assert again.status_code == 400 and again.json()["code"] == "invalid_verification_token"
    assert (await auth.login(address)).status_code == 200
    assert (await auth.client.get("/api/config")).json()["emailEnabled"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"email": "nobody@example.com", "token": "x" * 43},
        {"email": "nobody@example.com", "token": "short"},
    ],
)
async def test_a_bad_token_is_one_error(auth: AuthApp, body: dict[str, str]) -> None:
    response = await auth.client.post("/api/user/verify", json=body)
    assert response.status_code == 400 and response.json()["code"] == "invalid_verification_token"


async def test_a_token_verifies_only_its_own_address(auth: AuthApp, smtp: SmtpServer) -> None:
    first, second = email(), email()
    for address in (first, second):
        assert (await auth.register(address)).status_code == 200
    token = link_of((await mail_to(smtp, first))[0])["token"]
    foreign = await auth.client.post("/api/user/verify", json={"email": second, "token": token})
    assert foreign.status_code == 400
    assert (
        await auth.client.post("/api/user/verify", json={"email": first, "token": token})
    ).status_code == 200


async def test_resend_answers_the_same_for_every_address_and_mails_only_the_unverified(
    auth: AuthApp, smtp: SmtpServer
) -> None:
    pending, done, unknown = email(), email(), email()
    for address in (pending, done):
        assert (await auth.register(address)).status_code == 200
    done_link = link_of((await mail_to(smtp, done))[0])
    assert (
        await auth.client.post("/api/user/verify", json={"email": done, **{"token": done_link["token"]}})
    ).status_code == 200
    old = link_of((await mail_to(smtp, pending))[0])
    at_once = await auth.client.post("/api/user/verify/resend", json={"email": pending})
    assert at_once.status_code == 200  # within a minute of the first mail: the same answer, no mail
    a_minute_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    await auth.collection("auth_tokens").update_many({}, {"$set": {"created_at": a_minute_ago}})
    answers = [
        await auth.client.post("/api/user/verify/resend", json={"email": address})
        for address in (pending, done, unknown)
    ]
    assert {(a.status_code, a.content) for a in answers} == {(answers[0].status_code, answers[0].content)}
    assert answers[0].status_code == 200
    new = link_of((await mail_to(smtp, pending, count=2))[1])
    assert new["token"] != old["token"]
    # The older link died with the new one.
    stale = await auth.client.post("/api/user/verify", json={"email": pending, "token": old["token"]})
    assert stale.status_code == 400

    async def settled() -> bool:
        states = [doc["state"] async for doc in auth.collection("auth_outbox").find({}, {"state": 1})]
        return "pending" not in states

    await eventually(settled, "the outbox worked through every entry")
    assert len([m for m in smtp.sink.received if m.recipients == [pending]]) == 2  # not the one at once
    assert len([m for m in smtp.sink.received if m.recipients == [done]]) == 1  # its first link only
    assert not [m for m in smtp.sink.received if m.recipients == [unknown]]


async def test_registering_an_existing_address_tells_its_owner(auth: AuthApp, smtp: SmtpServer) -> None:
    address = email()
    first = await auth.register(address)
    second = await auth.register(address, name="Someone Else")
    assert (first.status_code, first.content) == (second.status_code, second.content)
    mails = await mail_to(smtp, address, count=2)
    subjects = sorted(str(mail.message["Subject"]) for mail in mails)
    assert subjects == ["Someone tried to register at Acme with your address", "Verify your email for Acme"]


async def test_without_mail_accounts_start_verified(app_factory: Callable[..., Any]) -> None:
    async with app_factory() as plain:
        address = email()
        assert (await plain.register(address)).status_code == 200
        assert (await plain.login(address)).status_code == 200
        user = await plain.find_user(address)
        assert user is not None and user["emailVerified"] is True
        assert (await plain.client.get("/api/config")).json()["emailEnabled"] is False


async def test_the_operator_can_verify_an_address(
    app_factory: Callable[..., Any], smtp: SmtpServer, mongo: Server, tmp_path: Path
) -> None:
    async with app_factory(**mail_env(smtp, DOMAIN_SERVER=SERVER)) as auth:
        address = email()
        assert (await auth.register(address)).status_code == 200
        assert (await auth.login(address)).status_code == 422
        env = {
            "AUTHGATE_ENV": "test",
            "MONGO_URI": auth.settings.mongo_uri,
            "JWT_SECRET": auth.settings.jwt_secret,
            "JWT_REFRESH_SECRET": auth.settings.jwt_refresh_secret,
            "TOTP_ENCRYPTION_KEY": auth.settings.totp_encryption_key,
            "MODERATION_URL": "http://127.0.0.1:1",
            "MODERATION_API_KEY": "k" * 43,
        }
        done = run_authgate(env, tmp_path, "verify-email", address)
        assert done.returncode == 0, done.stderr
        assert (await auth.login(address)).status_code == 200

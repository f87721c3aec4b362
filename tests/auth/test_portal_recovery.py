"""/portal/forgot, /portal/reset-password, /portal/verify-email through a real SMTP server, and
where mail links lead: the portal's pages when DOMAIN_CLIENT is unset or is DOMAIN_SERVER,
LibreChat's pages on DOMAIN_CLIENT otherwise. A GET from a mail link never spends the token."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from harness import STRONG_PASSWORD, eventually
from harness.moderation import ModerationHandle, start_moderation
from harness.smtp import Received, SmtpServer, mail_env
from services.auth.mail.templates import MailLinks
from tests.auth.api_helpers import email
from tests.auth.portal_helpers import PORTAL, SESSION, csrf_of, portal_app, post_form, session_cookie, sign_in

NEW_PASSWORD = "another long and memorable passphrase"


def portal_mail_env(smtp: SmtpServer, **extra: str) -> dict[str, str]:
    """Mail on, no DOMAIN_CLIENT (no separate web client): links lead to the portal."""
    env = {k: v for k, v in mail_env(smtp, ALLOW_PASSWORD_RESET="true").items() if k != "DOMAIN_CLIENT"}
    return {**env, "DOMAIN_SERVER": PORTAL, **extra}


async def mail_to(smtp: SmtpServer, address: str, subject: str, count: int = 1) -> list[Received]:
    def arrived() -> list[Received] | None:
        found = [
            m
            for m in smtp.sink.received
            if m.recipients == [address] and subject in str(m.message["Subject"])
        ]
        return found if len(found) >= count else None

    return await eventually(arrived, f"{count} '{subject}' mail(s) to {address}")


def link_in(mail: Received, pattern: str) -> tuple[str, dict[str, str]]:
    part = next(p for p in mail.message.walk() if p.get_content_type() == "text/plain")
    payload = part.get_payload(decode=True)
    body = payload.decode() if isinstance(payload, bytes) else str(payload)
    found = re.search(pattern + r"\?\S+", body)
    assert found, body
    url = found.group(0)
    return url, {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_mail_links_choose_the_portal_or_librechat() -> None:
    portal = MailLinks(None, "https://auth.example.com")
    assert portal.to_portal
    assert portal.reset("t/k", "u1") == "https://auth.example.com/portal/reset-password?token=t%2Fk&userId=u1"
    assert (
        portal.verification("tok", "a+b@example.com")
        == "https://auth.example.com/portal/verify-email?token=tok&email=a%2Bb%40example.com"
    )
    assert MailLinks("https://AUTH.example.com/portal/", "https://auth.example.com").to_portal
    # LibreChat's one-origin deployment: its client serves /verify and /reset-password there.
    assert not MailLinks("https://auth.example.com", "https://auth.example.com").to_portal
    librechat = MailLinks("https://chat.example.com", "https://auth.example.com")
    assert not librechat.to_portal
    assert librechat.reset("tok", "u1") == "https://chat.example.com/reset-password?token=tok&userId=u1"
    assert (
        librechat.verification("tok", "a@x.io") == "https://chat.example.com/verify?token=tok&email=a%40x.io"
    )
    assert not MailLinks("https://chat.example.com", None).to_portal
    assert not MailLinks("https://auth.example.com:8443", "https://auth.example.com").to_portal


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (None, PORTAL + "/portal/reset-password"),
        (PORTAL + "/portal/", PORTAL + "/portal/reset-password"),
        (PORTAL, PORTAL + "/reset-password"),
        ("https://chat.example.com", "https://chat.example.com/reset-password"),
    ],
)
async def test_reset_mails_lead_where_domain_client_says(
    app_factory: Callable[..., Any], smtp: SmtpServer, client: str | None, expected: str
) -> None:
    extra = {"DOMAIN_CLIENT": client} if client else {}
    async with portal_app(app_factory, **portal_mail_env(smtp, **extra)) as auth:
        address = email()
        await auth.register(address)
        page = await auth.client.get("/portal/forgot")
        sent = await post_form(auth.client, "/portal/forgot", {"csrf": csrf_of(page), "email": address})
        assert sent.status_code == 200
        url, query = link_in((await mail_to(smtp, address, "Reset"))[0], re.escape(expected))
        assert url.startswith(expected + "?") and set(query) == {"token", "userId"}


async def test_reset_through_the_portal(app_factory: Callable[..., Any], smtp: SmtpServer) -> None:
    async with portal_app(app_factory, **portal_mail_env(smtp, ALLOW_UNVERIFIED_EMAIL_LOGIN="true")) as auth:
        address = email()
        await auth.register(address)
        other = auth.new_client()
        assert (await sign_in(other, address)).status_code == 303
        other_cookie = session_cookie(other)

        page = await auth.client.get("/portal/forgot")
        assert "<title>Forgot password" in page.text and '<label for="email">' in page.text
        await post_form(auth.client, "/portal/forgot", {"csrf": csrf_of(page), "email": address})
        url, query = link_in(
            (await mail_to(smtp, address, "Reset"))[0], re.escape(PORTAL + "/portal/reset-password")
        )

        # A mail scanner's GETs show the form and spend nothing.
        for _ in range(2):
            form_page = await auth.client.get(url.removeprefix(PORTAL))
            assert form_page.status_code == 200 and "<title>Choose a new password" in form_page.text
            assert f'name="token" value="{html.escape(query["token"])}"' in form_page.text
        assert await auth.collection("auth_tokens").count_documents({"kind": {"$exists": True}}) >= 1
        form = {"csrf": csrf_of(form_page), "token": query["token"], "userId": query["userId"]}

        weak = await post_form(
            auth.client,
            "/portal/reset-password",
            {**form, "password": "a" * 20, "confirm_password": "a" * 20},
        )
        assert weak.status_code == 422 and 'id="password-error"' in weak.text and "Repeats like" in weak.text
        assert 'aria-describedby="password-hint password-error"' in weak.text
        mismatch = {**form, "password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD + "x"}
        response = await post_form(auth.client, "/portal/reset-password", mismatch)
        assert response.status_code == 422 and 'id="confirm_password-error"' in response.text
        refused = await post_form(
            auth.client,
            "/portal/reset-password",
            {**form, "password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
            origin="https://evil.example",
        )
        assert refused.status_code == 403

        good = {**form, "password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
        done = await post_form(auth.client, "/portal/reset-password", good)
        assert done.status_code == 200 and "<title>Password changed" in done.text, done.text
        await asyncio.sleep(auth.settings.verify_max_staleness_ms / 1000)
        check = auth.new_client()
        assert (
            await check.get("/verify", headers={"Cookie": f"{SESSION}={other_cookie}"})
        ).status_code == 401
        assert (await sign_in(auth.new_client(), address, STRONG_PASSWORD)).status_code == 401
        assert (await sign_in(auth.new_client(), address, NEW_PASSWORD)).status_code == 303

        again = await post_form(auth.client, "/portal/reset-password", good)
        assert again.status_code == 400 and "Link not valid" in again.text


async def test_an_expired_reset_link_is_refused(app_factory: Callable[..., Any], smtp: SmtpServer) -> None:
    async with portal_app(app_factory, **portal_mail_env(smtp)) as auth:
        address = email()
        await auth.register(address)
        page = await auth.client.get("/portal/forgot")
        await post_form(auth.client, "/portal/forgot", {"csrf": csrf_of(page), "email": address})
        _, query = link_in(
            (await mail_to(smtp, address, "Reset"))[0], re.escape(PORTAL + "/portal/reset-password")
        )
        past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        await auth.collection("auth_tokens").update_many({}, {"$set": {"expires_at": past}})
        form_page = await auth.client.get("/portal/reset-password", params=query)
        form = {
            "csrf": csrf_of(form_page),
            **query,
            "password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        }
        response = await post_form(auth.client, "/portal/reset-password", form)
        assert response.status_code == 400 and "invalid or has expired" in response.text
        assert (await sign_in(auth.new_client(), address, NEW_PASSWORD)).status_code == 401
        for bogus in ({**form, "token": "x" * 43}, {**form, "token": ""}, {**form, "userId": ""}):
            refused = await post_form(auth.client, "/portal/reset-password", bogus)
            assert refused.status_code == 400 and "Link not valid" in refused.text


async def test_forgot_answers_the_same_page_for_any_address(
    app_factory: Callable[..., Any], smtp: SmtpServer
) -> None:
    async with portal_app(app_factory, **portal_mail_env(smtp)) as auth:
        known = email()
        await auth.register(known)
        answers = []
        for address in (known, email()):
            page = await auth.client.get("/portal/forgot")
            response = await post_form(
                auth.client, "/portal/forgot", {"csrf": csrf_of(page), "email": address}
            )
            assert response.status_code == 200
            answers.append(response.text)
        assert answers[0] == answers[1] and "If an account with that email exists" in answers[0]
        empty = await post_form(auth.client, "/portal/forgot", {"csrf": csrf_of(page), "email": ""})
        assert empty.status_code == 422 and 'id="email-error"' in empty.text


async def test_reset_pages_are_404_when_reset_is_off(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        for path in ("/portal/forgot", "/portal/reset-password?token=t&userId=u"):
            response = await auth.client.get(path)
            assert response.status_code == 404 and "Password reset unavailable" in response.text
        login = await auth.client.get("/portal/login")
        refused = await post_form(auth.client, "/portal/forgot", {"csrf": csrf_of(login), "email": email()})
        assert refused.status_code == 404


async def test_verify_email_through_the_portal(app_factory: Callable[..., Any], smtp: SmtpServer) -> None:
    async with portal_app(app_factory, **portal_mail_env(smtp)) as auth:
        address = email()
        page = await auth.client.get("/portal/register")
        form = {
            "csrf": csrf_of(page),
            "name": "Ann",
            "email": address,
            "password": STRONG_PASSWORD,
            "confirm_password": STRONG_PASSWORD,
        }
        done = await post_form(auth.client, "/portal/register", form)
        assert done.status_code == 200 and "a link to verify it is on its way" in done.text
        url, query = link_in(
            (await mail_to(smtp, address, "Verify"))[0], re.escape(PORTAL + "/portal/verify-email")
        )
        assert query["email"] == address
        for _ in range(2):  # a scanner's GETs verify nothing
            button = await auth.client.get(url.removeprefix(PORTAL))
            assert button.status_code == 200 and "<title>Verify your email" in button.text
            assert '<button type="submit">Verify my email</button>' in button.text
        user = await auth.find_user(address)
        assert user is not None and user.get("emailVerified") is False
        unverified = await sign_in(auth.new_client(), address)
        assert unverified.status_code == 422

        refused = await post_form(auth.client, "/portal/verify-email", {"csrf": "A" * 43, **query})
        assert refused.status_code == 403
        user = await auth.find_user(address)
        assert user is not None and user.get("emailVerified") is False

        verified = await post_form(auth.client, "/portal/verify-email", {"csrf": csrf_of(button), **query})
        assert verified.status_code == 200 and "<title>Email verified" in verified.text
        user = await auth.find_user(address)
        assert user is not None and user.get("emailVerified") is True
        assert (await sign_in(auth.new_client(), address)).status_code == 303
        again = await post_form(auth.client, "/portal/verify-email", {"csrf": csrf_of(button), **query})
        assert again.status_code == 400 and "Link not valid" in again.text


@pytest.fixture
def strict_moderation(tmp_path: Path) -> Iterator[ModerationHandle]:
    handle = start_moderation(tmp_path, {"RESET_PASSWORD_MAX": "2", "VERIFY_EMAIL_SUBMISSION_MAX": "2"})
    yield handle
    handle.server.stop()


async def test_requests_are_limited_with_the_429_page(
    app_factory: Callable[..., Any], smtp: SmtpServer, strict_moderation: ModerationHandle
) -> None:
    env = {**portal_mail_env(smtp), **strict_moderation.auth_env()}
    async with portal_app(app_factory, **env) as auth:
        page = await auth.client.get("/portal/forgot")
        statuses = []
        for _ in range(3):
            response = await post_form(
                auth.client, "/portal/forgot", {"csrf": csrf_of(page), "email": email()}
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 429] and "Too many attempts" in response.text
        statuses = []
        for _ in range(3):
            response = await post_form(
                auth.client,
                "/portal/verify-email",
                {"csrf": csrf_of(page), "token": "t" * 43, "email": email()},
            )
            statuses.append(response.status_code)
        assert statuses == [400, 400, 429], statuses

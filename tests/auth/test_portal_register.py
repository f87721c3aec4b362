"""/portal/register: the API's registration as a form; one answer for new and taken addresses,
the password policy's feedback next to the field, CSRF, the moderation `register` event."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import STRONG_PASSWORD
from harness.moderation import ModerationHandle, start_moderation
from harness.smtp import SmtpServer, mail_env
from tests.auth.api_helpers import email
from tests.auth.portal_helpers import (
    PAGE_HEADERS,
    PORTAL,
    csrf_of,
    portal_app,
    post_form,
    session_cookie,
    sign_in,
)


def form_of(
    page: httpx.Response, address: str, password: str = STRONG_PASSWORD, **extra: str
) -> dict[str, str]:
    return {
        "csrf": csrf_of(page),
        "name": "Ann Example",
        "username": "",
        "email": address,
        "password": password,
        "confirm_password": password,
        **extra,
    }


async def test_the_form_renders_accessibly_and_login_links_to_it(
    app_factory: Callable[..., Any], smtp: SmtpServer
) -> None:
    async with portal_app(
        app_factory, **mail_env(smtp, ALLOW_PASSWORD_RESET="true", DOMAIN_SERVER=PORTAL)
    ) as auth:
        page = await auth.client.get("/portal/register")
        assert page.status_code == 200
        for name, value in PAGE_HEADERS.items():
            assert page.headers[name] == value
        assert "<title>Create an account \u2013 " in page.text and "<script" not in page.text
        for field in ("name", "username", "email", "password", "confirm_password"):
            assert f'<label for="{field}">' in page.text
        assert 'aria-describedby="password-hint"' in page.text
        assert 'href="/portal/login"' in page.text
        login = await auth.client.get("/portal/login")
        assert 'href="/portal/register"' in login.text and 'href="/portal/forgot"' in login.text


async def test_closed_registration_is_a_404_page_and_login_does_not_link(
    app_factory: Callable[..., Any],
) -> None:
    async with portal_app(app_factory, ALLOW_REGISTRATION="false") as auth:
        page = await auth.client.get("/portal/register")
        assert page.status_code == 404 and "Registration closed" in page.text
        login = await auth.client.get("/portal/login")
        refused = await post_form(auth.client, "/portal/register", form_of(login, email()))
        assert refused.status_code == 404
        assert await auth.collection("users").count_documents({}) == 0
        login = await auth.client.get("/portal/login")
        assert "/portal/register" not in login.text and "/portal/forgot" not in login.text


async def test_a_new_and_a_taken_address_get_the_same_page(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        taken = email()
        assert (await auth.register(taken)).status_code == 200
        fresh = email()
        answers = []
        for address in (fresh, taken):
            browser = auth.new_client()
            page = await browser.get("/portal/register")
            done = await post_form(browser, "/portal/register", form_of(page, address))
            assert done.status_code == 200, done.text
            answers.append(done.text)
        assert answers[0] == answers[1]
        assert "Registration received" in answers[0] and fresh not in answers[0]
        assert await auth.collection("users").count_documents({}) == 2
        # The new account signs in through the portal.
        signed = await sign_in(auth.new_client(), fresh)
        assert signed.status_code == 303
        audit = [d["event"] async for d in auth.collection("auth_audit").find({}, {"event": 1})]
        assert "register" in audit and "register_existing_email" in audit


async def test_a_weak_password_shows_zxcvbn_feedback_next_to_the_field(
    app_factory: Callable[..., Any],
) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        page = await auth.client.get("/portal/register")
        weak = "aaaaaaaaaaaaaaaaaaaa"
        response = await post_form(auth.client, "/portal/register", form_of(page, address, weak))
        assert response.status_code == 422
        assert 'id="password-error" class="error" role="alert"' in response.text
        assert 'aria-describedby="password-hint password-error"' in response.text
        assert "too easy to guess" in response.text and "Repeats like" in response.text  # zxcvbn's words
        assert f'value="{address}"' in response.text  # what was typed is kept, the password is not
        assert weak not in response.text
        assert await auth.collection("users").count_documents({}) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"confirm_password": "a different long passphrase entirely"}, "confirm_password"),
        ({"email": "not-an-address"}, "email"),
        ({"name": "   "}, "name"),
        ({"username": "x"}, "username"),
    ],
)
async def test_field_errors_are_said_next_to_their_field(
    app_factory: Callable[..., Any], change: dict[str, str], field: str
) -> None:
    async with portal_app(app_factory) as auth:
        page = await auth.client.get("/portal/register")
        response = await post_form(auth.client, "/portal/register", form_of(page, email(), **change))
        assert response.status_code == 422, response.text
        assert f'id="{field}-error"' in response.text and f'aria-describedby="{field}-error"' in response.text
        assert response.text.count('role="alert"') == 1
        assert await auth.collection("users").count_documents({}) == 0


async def test_several_errors_are_said_at_once(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        page = await auth.client.get("/portal/register")
        form = form_of(page, "not-an-address", confirm_password="something else entirely")
        response = await post_form(auth.client, "/portal/register", form)
        assert response.status_code == 422
        assert 'id="email-error"' in response.text and 'id="confirm_password-error"' in response.text
        assert response.text.count('role="alert"') == 2


async def test_a_taken_username_is_said_next_to_it(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        assert (await auth.register(email(), username="neo")).status_code == 200
        page = await auth.client.get("/portal/register")
        response = await post_form(auth.client, "/portal/register", form_of(page, email(), username="Neo"))
        assert response.status_code == 409
        assert 'id="username-error"' in response.text and "That username is taken." in response.text
        assert await auth.collection("users").count_documents({}) == 1


@pytest.mark.parametrize("case", ["wrong_token", "foreign_origin", "no_origin"])
async def test_csrf_refusals_create_nothing(app_factory: Callable[..., Any], case: str) -> None:
    async with portal_app(app_factory) as auth:
        page = await auth.client.get("/portal/register")
        form = form_of(page, email())
        origin: str | None = PORTAL
        if case == "wrong_token":
            form["csrf"] = "A" * 43
        elif case == "foreign_origin":
            origin = "https://evil.example"
        else:
            origin = None
        response = await post_form(auth.client, "/portal/register", form, origin)
        assert response.status_code == 403 and "Request refused" in response.text
        assert await auth.collection("users").count_documents({}) == 0
        assert session_cookie(auth.client) is None


@pytest.fixture
def strict_moderation(tmp_path: Path) -> Iterator[ModerationHandle]:
    handle = start_moderation(tmp_path, {"REGISTER_MAX": "2", "REGISTER_WINDOW": "60"})
    yield handle
    handle.server.stop()


async def test_the_register_event_is_limited_with_the_429_page(
    app_factory: Callable[..., Any], strict_moderation: ModerationHandle
) -> None:
    async with portal_app(app_factory, **strict_moderation.auth_env()) as auth:
        statuses = []
        for _ in range(3):
            page = await auth.client.get("/portal/register")
            response = await post_form(auth.client, "/portal/register", form_of(page, email()))
            statuses.append(response.status_code)
        assert statuses == [200, 200, 429], statuses
        assert "Too many attempts" in response.text and int(response.headers["retry-after"]) > 0
        assert response.headers["x-frame-options"] == "DENY"
        assert await auth.collection("users").count_documents({}) == 2

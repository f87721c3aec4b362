"""/portal/account: only with a live session cookie; sessions with "sign out this device",
change password (the API's rules), TOTP enrolment with an inline SVG QR code, and disabling it."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from harness import STRONG_PASSWORD
from harness.moderation import start_moderation
from services.auth.moderation_client import BanInfo
from tests.auth.api_helpers import email
from tests.auth.conftest import AuthApp
from tests.auth.portal_helpers import (
    PAGE_HEADERS,
    PORTAL,
    SESSION,
    csrf_of,
    portal_app,
    post_form,
    session_cookie,
    sign_in,
)
from tests.auth.two_factor_helpers import code

ACCOUNT_URL = PORTAL + "/portal/account"
NEW_PASSWORD = "another long and memorable passphrase"
# The portal's own host is where `rd` may lead back to the account page.
REDIRECTS = {"AUTH_REDIRECT_DOMAINS": ".example.com,auth.test"}


async def signed_in(auth: AuthApp, address: str, agent: str = "Browser A") -> httpx.AsyncClient:
    browser = auth.new_client(headers={"User-Agent": agent})
    response = await sign_in(browser, address)
    assert response.status_code == 303, response.text
    return browser


async def verified(auth: AuthApp, token: str | None) -> int:
    await asyncio.sleep(auth.settings.verify_max_staleness_ms / 1000)
    response = await auth.new_client().get("/verify", headers={"Cookie": f"{SESSION}={token}"})
    return response.status_code


def session_ids(page: httpx.Response) -> list[str]:
    return re.findall(r'name="session_id" value="([^"]+)"', page.text)


async def test_without_a_session_the_account_page_sends_to_sign_in_and_back(
    app_factory: Callable[..., Any],
) -> None:
    async with portal_app(app_factory, **REDIRECTS) as auth:
        address = email()
        await auth.register(address)
        first = await auth.client.get("/portal/account")
        assert first.status_code == 302
        assert first.headers["location"] == f"/portal/login?rd={quote(ACCOUNT_URL, safe='')}"
        page = await auth.client.get(first.headers["location"])
        form = {"csrf": csrf_of(page), "email": address, "password": STRONG_PASSWORD, "rd": ACCOUNT_URL}
        done = await post_form(auth.client, "/portal/login", form)
        assert done.status_code == 303 and done.headers["location"] == ACCOUNT_URL
        account = await auth.client.get("/portal/account")
        assert account.status_code == 200 and "<title>Your account" in account.text
        for name, value in PAGE_HEADERS.items():
            assert account.headers[name] == value
        assert 'href="/portal/account/passkeys"' in account.text
        assert 'href="/portal/account/links"' in account.text
        # A forged or foreign cookie is no session either.
        forged = auth.new_client()
        forged.cookies.set(SESSION, "a.b.c")
        assert (await forged.get("/portal/account")).status_code == 302
        # A POST without a session changes nothing and goes to sign in.
        stranger = auth.new_client()
        login = await stranger.get("/portal/login")
        response = await post_form(
            stranger, "/portal/account/password", {"csrf": csrf_of(login), "current_password": "x"}
        )
        assert response.status_code == 303 and response.headers["location"].startswith("/portal/login?rd=")


async def test_sign_out_another_device_ends_its_cookie(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        mine = await signed_in(auth, address, "Browser A")
        theirs = await signed_in(auth, address, "Browser B")
        their_cookie = session_cookie(theirs)
        page = await mine.get("/portal/account")
        assert "Browser A" in page.text and "Browser B" in page.text
        assert page.text.count("(this device)") == 1
        assert page.text.index("Browser A") < page.text.index("(this device)") < page.text.index("Browser B")
        ids = session_ids(page)
        assert len(ids) == 2
        other_id = ids[1]  # this device is listed first

        refused = await post_form(
            mine, "/portal/account/sessions/end", {"csrf": "A" * 43, "session_id": other_id}
        )
        assert refused.status_code == 403
        assert await verified(auth, their_cookie) == 200

        done = await post_form(
            mine, "/portal/account/sessions/end", {"csrf": csrf_of(page), "session_id": other_id}
        )
        assert done.status_code == 303 and done.headers["location"] == "/portal/account?notice=session_ended"
        assert await verified(auth, their_cookie) == 401
        after = await mine.get(done.headers["location"])
        assert "That device was signed out." in after.text and "Browser B" not in after.text
        gone = await post_form(
            mine, "/portal/account/sessions/end", {"csrf": csrf_of(page), "session_id": other_id}
        )
        assert gone.status_code == 404
        # Their browser is sent to sign in again.
        assert (await theirs.get("/portal/account")).status_code == 302


async def test_signing_out_this_device_clears_the_cookie(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        mine = await signed_in(auth, address)
        token = session_cookie(mine)
        page = await mine.get("/portal/account")
        (own,) = session_ids(page)
        done = await post_form(
            mine, "/portal/account/sessions/end", {"csrf": csrf_of(page), "session_id": own}
        )
        assert done.status_code == 200 and "Signed out" in done.text
        assert session_cookie(mine) is None
        assert await verified(auth, token) == 401


async def test_change_password_keeps_this_session_and_ends_the_others(
    app_factory: Callable[..., Any],
) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        mine = await signed_in(auth, address, "Browser A")
        theirs = await signed_in(auth, address, "Browser B")
        their_cookie = session_cookie(theirs)
        page = await mine.get("/portal/account")
        form = {"csrf": csrf_of(page), "current_password": STRONG_PASSWORD}

        wrong = await post_form(
            mine,
            "/portal/account/password",
            {
                **form,
                "current_password": "not the password",
                "new_password": NEW_PASSWORD,
                "confirm_password": NEW_PASSWORD,
            },
        )
        assert wrong.status_code == 401 and 'id="current_password-error"' in wrong.text
        assert 'aria-describedby="current_password-error"' in wrong.text
        weak = await post_form(
            mine, "/portal/account/password", {**form, "new_password": "a" * 20, "confirm_password": "a" * 20}
        )
        assert (
            weak.status_code == 422 and 'id="new_password-error"' in weak.text and "Repeats like" in weak.text
        )
        mismatch = await post_form(
            mine,
            "/portal/account/password",
            {**form, "new_password": NEW_PASSWORD, "confirm_password": "other"},
        )
        assert mismatch.status_code == 422 and 'id="confirm_password-error"' in mismatch.text
        foreign = await post_form(
            mine,
            "/portal/account/password",
            {**form, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
            origin="https://evil.example",
        )
        assert foreign.status_code == 403
        assert (await sign_in(auth.new_client(), address, STRONG_PASSWORD)).status_code == 303

        done = await post_form(
            mine,
            "/portal/account/password",
            {**form, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        )
        assert (
            done.status_code == 303 and done.headers["location"] == "/portal/account?notice=password_changed"
        )
        assert await verified(auth, their_cookie) == 401
        assert await verified(auth, session_cookie(mine)) == 200
        assert (await mine.get("/portal/account")).status_code == 200
        assert (await sign_in(auth.new_client(), address, NEW_PASSWORD)).status_code == 303
        audit = [d["event"] async for d in auth.collection("auth_audit").find({}, {"event": 1})]
        assert "password_change_failed" in audit and "password_changed" in audit


async def test_totp_enrolment_with_an_inline_qr_code_then_disable(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        mine = await signed_in(auth, address)
        page = await mine.get("/portal/account")
        assert "Two-factor authentication is off." in page.text
        start = await post_form(mine, "/portal/account/2fa/start", {"csrf": csrf_of(page)})
        assert start.status_code == 200 and "<title>Set up two-factor authentication" in start.text
        assert '<svg role="img"' in start.text and "<title>QR code for" in start.text
        assert "<script" not in start.text and "style=" not in start.text
        secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', start.text)
        assert secret
        plain = secret.group(1).replace(" ", "")
        backup = re.findall(r"<li><code>([^<]+)</code></li>", start.text)
        assert len(backup) == 10
        assert '<label for="code">' in start.text and '<label for="password">' in start.text

        confirm = {"csrf": csrf_of(start), "code": code(plain), "password": "not the password"}
        wrong_password = await post_form(mine, "/portal/account/2fa/confirm", confirm)
        assert wrong_password.status_code == 401 and 'id="password-error"' in wrong_password.text
        wrong_code = await post_form(
            mine, "/portal/account/2fa/confirm", {**confirm, "code": "000000", "password": STRONG_PASSWORD}
        )
        assert wrong_code.status_code == 401 and 'id="code-error"' in wrong_code.text
        assert await auth.ctx.two_factor.requirement((await auth.find_user(address)) or {}) == "none"
        done = await post_form(mine, "/portal/account/2fa/confirm", {**confirm, "password": STRONG_PASSWORD})
        assert done.status_code == 303 and done.headers["location"] == "/portal/account?notice=2fa_enabled"
        page = await mine.get(done.headers["location"])
        assert "Two-factor authentication is on." in page.text and backup[0] not in page.text

        # Signing in now asks for the code.
        other = auth.new_client()
        assert (await sign_in(other, address)).headers["location"].startswith("/portal/2fa")

        disable = {"csrf": csrf_of(page), "password": STRONG_PASSWORD, "code": "000000"}
        refused = await post_form(mine, "/portal/account/2fa/disable", disable)
        assert refused.status_code == 401 and 'id="disable_code-error"' in refused.text
        refused = await post_form(
            mine, "/portal/account/2fa/disable", {**disable, "password": "nope", "code": backup[0]}
        )
        assert refused.status_code == 401 and 'id="disable_password-error"' in refused.text
        off = await post_form(mine, "/portal/account/2fa/disable", {**disable, "code": backup[1]})
        assert off.status_code == 303 and off.headers["location"] == "/portal/account?notice=2fa_disabled"
        user = await auth.find_user(address)
        assert user is not None and await auth.ctx.two_factor.requirement(user) == "none"


async def test_enrolment_needs_csrf_and_a_session(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        mine = await signed_in(auth, address)
        refused = await post_form(mine, "/portal/account/2fa/start", {"csrf": "A" * 43})
        assert refused.status_code == 403
        assert await auth.collection("auth_two_factor").count_documents({}) == 0
        page = await mine.get("/portal/account")
        stranger = auth.new_client()
        await stranger.get("/portal/login")
        stranger.cookies.set(SESSION, "a.b.c")
        login = await stranger.get("/portal/login")
        anonymous = await post_form(stranger, "/portal/account/2fa/start", {"csrf": csrf_of(login)})
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/portal/login")
        assert await auth.collection("auth_two_factor").count_documents({}) == 0
        assert "Two-factor authentication is off." in page.text


async def test_a_banned_user_sees_the_ban_page(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        mine = await signed_in(auth, address)
        user = await auth.find_user(address)
        assert user is not None
        ends = int(time.time() * 1000) + 600_000
        await auth.ctx.protection.client.bans.learn(BanInfo(f"user:{user['_id']}", "abuse", ends))
        response = await mine.get("/portal/account")
        assert response.status_code == 403 and "Access banned" in response.text
        assert html.escape(BanInfo(f"user:{user['_id']}", "abuse", ends).expires_at_iso()) in response.text


async def test_guessing_the_current_password_meets_the_login_limit_with_the_429_page(
    app_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """A stolen session cookie guesses no faster than a login: the account's failure window."""
    moderation = start_moderation(tmp_path, {"LOGIN_ACCOUNT_MAX": "3", "LOGIN_DEVICE_MAX": "3"})
    try:
        async with portal_app(app_factory, **moderation.auth_env()) as auth:
            address = email()
            await auth.register(address)
            mine = await signed_in(auth, address)
            page = await mine.get("/portal/account")
            statuses = []
            for n in range(4):
                form = {
                    "csrf": csrf_of(page),
                    "current_password": f"wrong guess number {n} here",
                    "new_password": NEW_PASSWORD,
                    "confirm_password": NEW_PASSWORD,
                }
                response = await post_form(mine, "/portal/account/password", form)
                statuses.append(response.status_code)
    finally:
        moderation.server.stop()
    assert statuses == [401, 401, 401, 429], statuses
    assert "Too many attempts" in response.text and int(response.headers["retry-after"]) > 0

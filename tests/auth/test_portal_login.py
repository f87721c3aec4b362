"""The portal's sign-in and sign-out pages: headers, one answer for unknown and wrong, CSRF."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness import STRONG_PASSWORD
from services.auth.moderation_client import BanInfo
from services.auth.sessions import RevokedByBan
from tests.auth.api_helpers import email
from tests.auth.portal_helpers import (
    CSRF,
    PAGE_HEADERS,
    SCRIPT_PAGE_HEADERS,
    SESSION,
    csrf_of,
    only_script_files,
    portal_app,
    post_form,
    session_cookie,
    sign_in,
)


@pytest.mark.parametrize("path", ["/portal/login", "/portal/logout"])
async def test_pages_render_with_their_headers_and_labels(app_factory: Callable[..., Any], path: str) -> None:
    async with portal_app(app_factory) as auth:
        response = await auth.client.get(path)
        assert response.status_code == 200
        # The sign-in page offers passkeys (DOMAIN_SERVER makes a relying party): its script, no other.
        expected = SCRIPT_PAGE_HEADERS if path == "/portal/login" else PAGE_HEADERS
        for name, value in expected.items():
            assert response.headers[name] == value
        assert len(only_script_files(response)) == (1 if path == "/portal/login" else 0)
        assert "<title>Sign " in response.text
        assert CSRF in response.headers["set-cookie"] and "HttpOnly" in response.headers["set-cookie"]
        if path == "/portal/login":
            assert '<label for="email">' in response.text and '<label for="password">' in response.text
        css = await auth.client.get("/portal/static/portal.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_sign_in_sets_the_cookie_that_verify_accepts(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        response = await sign_in(auth.client, address)
        assert response.status_code == 303
        assert response.headers["location"] == "/portal/login"
        set_cookie = [h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION + "=")]
        assert len(set_cookie) == 1
        attributes = [part.strip().lower() for part in set_cookie[0].split(";")]
        assert {"httponly", "secure", "samesite=lax", "path=/"} <= set(attributes)
        assert not any(a.startswith("domain=") for a in attributes)
        token = session_cookie(auth.client)
        assert token
        verify = await auth.new_client().get("/verify", headers={"Cookie": f"{SESSION}={token}"})
        assert verify.status_code == 200, verify.text
        assert verify.headers["x-auth-email"] == address
        assert verify.headers["x-auth-amr"] == "pwd"
        page = await auth.client.get("/portal/login")
        assert "Signed in" in page.text and address in page.text
        # The session shows in the list, as any login's does.
        user = await auth.find_user(address)
        assert user is not None
        live = await auth.ctx.sessions.list_live(str(user["_id"]))
        assert [s.id for s in live] == [verify.headers["x-auth-session-id"]]


async def test_a_shared_cookie_domain_drops_the_prefix(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, AUTH_COOKIE_DOMAIN="auth.test") as auth:
        address = email()
        await auth.register(address)
        response = await sign_in(auth.client, address)
        set_cookie = [h for h in response.headers.get_list("set-cookie") if h.startswith("authgate_session=")]
        assert len(set_cookie) == 1 and "domain=auth.test" in set_cookie[0].lower()


async def test_unknown_email_and_wrong_password_get_the_same_page(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        unknown_address = email()
        wrong = await sign_in(auth.new_client(), address, "not the password at all")
        unknown = await sign_in(auth.new_client(), unknown_address, "not the password at all")
        assert wrong.status_code == unknown.status_code == 401
        same_wrong = wrong.text.replace(csrf_of(wrong), "").replace(address, "")
        same_unknown = unknown.text.replace(csrf_of(unknown), "").replace(unknown_address, "")
        assert same_wrong == same_unknown
        assert "Invalid email or password." in wrong.text
        assert 'aria-describedby="email-error"' in wrong.text and 'id="email-error"' in wrong.text
        assert SESSION not in str(wrong.headers.get_list("set-cookie"))


@pytest.mark.parametrize("case", ["missing", "wrong", "foreign_origin", "no_origin"])
async def test_csrf_refusals_change_nothing(app_factory: Callable[..., Any], case: str) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        page = await auth.client.get("/portal/login")
        form = {"csrf": csrf_of(page), "email": address, "password": STRONG_PASSWORD}
        origin: str | None = "https://auth.test"
        if case == "missing":
            form.pop("csrf")
        elif case == "wrong":
            form["csrf"] = "A" * 43
        elif case == "foreign_origin":
            origin = "https://evil.example"
        else:
            origin = None
        before = await auth.collection("auth_sessions").count_documents({})
        response = await post_form(auth.client, "/portal/login", form, origin)
        assert response.status_code == 403
        assert "Request refused" in response.text
        assert await auth.collection("auth_sessions").count_documents({}) == before
        assert session_cookie(auth.client) is None


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, 303),
        ({"Sec-Fetch-Site": "same-origin"}, 403),
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "null", "Sec-Fetch-Site": "same-site"}, 403),
        ({"Origin": "null"}, 403),
        ({"Origin": "null", "Referer": "https://evil.example/x", "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, 403),
    ],
    ids=[
        "null-same-origin",
        "no-origin-same-origin",
        "null-cross-site",
        "null-same-site",
        "null-alone",
        "null-foreign-referer",
        "foreign-origin-wins",
    ],
)
async def test_a_browser_under_no_referrer_is_told_apart_by_sec_fetch_site(
    app_factory: Callable[..., Any], headers: dict[str, str], status: int
) -> None:
    """`Referrer-Policy: no-referrer` makes a browser post `Origin: null` without a Referer (as
    Chromium does in the browser tests); then its `Sec-Fetch-Site` decides."""
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        page = await auth.client.get("/portal/login")
        form = {"csrf": csrf_of(page), "email": address, "password": STRONG_PASSWORD}
        response = await auth.client.post("/portal/login", data=form, headers=headers)
        assert response.status_code == status, response.text
        assert (session_cookie(auth.client) is not None) == (status == 303)


@pytest.mark.parametrize(
    ("rd", "form_action"),
    [
        ("https://app.example.com/reports?x=1", "form-action 'self' https://app.example.com;"),
        ("https://app.example.com:8443/", "form-action 'self' https://app.example.com:8443;"),
        ("https://evil.example/", "form-action 'self';"),
        ("https://app.example.com/;script-src:data:", "form-action 'self' https://app.example.com;"),
    ],
    ids=["allowed", "allowed-port", "refused", "no-injection"],
)
async def test_a_form_with_rd_may_be_redirected_to_that_origin_only(
    app_factory: Callable[..., Any], rd: str, form_action: str
) -> None:
    """Browsers apply `form-action` to the redirect after a form's POST: the sign-in page allows
    the checked `rd`'s origin, and nothing else."""
    async with portal_app(app_factory) as auth:
        page = await auth.client.get("/portal/login", params={"rd": rd})
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert form_action in policy, policy
        # Nothing else changes (the page's own policy, with or without the passkey script).
        bases = {h["content-security-policy"] for h in (PAGE_HEADERS, SCRIPT_PAGE_HEADERS)}
        assert policy.replace(form_action, "form-action 'self';") in bases


async def test_another_browsers_token_is_refused(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        attacker = auth.new_client()
        token = csrf_of(await attacker.get("/portal/login"))
        victim = auth.new_client()
        await victim.get("/portal/login")
        form = {"csrf": token, "email": address, "password": STRONG_PASSWORD}
        response = await post_form(victim, "/portal/login", form)
        assert response.status_code == 403


async def test_portal_logout_ends_the_session_within_the_bound(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        await sign_in(auth.client, address)
        token = session_cookie(auth.client)
        check = auth.new_client()
        assert (await check.get("/verify", headers={"Cookie": f"{SESSION}={token}"})).status_code == 200
        confirm = await auth.client.get("/portal/logout")
        assert "<title>Sign out" in confirm.text
        done = await post_form(auth.client, "/portal/logout", {"csrf": csrf_of(confirm)})
        assert done.status_code == 200 and "Signed out" in done.text
        assert session_cookie(auth.client) is None
        await asyncio.sleep(auth.settings.verify_max_staleness_ms / 1000)
        assert (await check.get("/verify", headers={"Cookie": f"{SESSION}={token}"})).status_code == 401


async def test_logout_all_from_the_api_ends_the_portal_session(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        await sign_in(auth.client, address)
        token = session_cookie(auth.client)
        api = await auth.login_body(address)
        # Every other session of the user ends (the portal's among them).
        ended = await auth.client.request(
            "DELETE", "/api/auth/sessions", headers={"Authorization": f"Bearer {api['token']}"}
        )
        assert ended.status_code == 200, ended.text
        await asyncio.sleep(auth.settings.verify_max_staleness_ms / 1000)
        check = auth.new_client()
        assert (await check.get("/verify", headers={"Cookie": f"{SESSION}={token}"})).status_code == 401
        # The portal no longer renews it either.
        page = await auth.client.get("/portal/login")
        assert "Signed in" not in page.text


async def test_a_banned_address_sees_until_when(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        peer = "198.51.100.77"
        ends = int(time.time() * 1000) + 600_000
        await auth.ctx.protection.client.bans.learn(BanInfo(f"ip:{peer}", "abuse", ends))
        response = await auth.new_client(peer).get("/portal/login")
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "Access banned" in response.text
        assert BanInfo(f"ip:{peer}", "abuse", ends).expires_at_iso() in response.text
        assert int(response.headers["retry-after"]) > 0
        assert response.headers["x-frame-options"] == "DENY"


async def test_renewal_honours_the_idle_timeout_and_restarts_it(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        await sign_in(auth.client, address)
        token = session_cookie(auth.client)
        sessions = auth.collection("auth_sessions")
        user = await auth.find_user(address)
        assert user is not None and token
        idle = dt.timedelta(milliseconds=auth.settings.session_idle_timeout_ms)
        nearly = dt.datetime.now(dt.UTC) - idle + dt.timedelta(minutes=5)
        await sessions.update_one({"user_id": str(user["_id"])}, {"$set": {"last_used_at": nearly}})
        renewed = await auth.client.get("/portal/login")
        assert "Signed in" in renewed.text
        stored = await sessions.find_one({"user_id": str(user["_id"])})
        assert stored["last_used_at"].replace(tzinfo=dt.UTC) > nearly + dt.timedelta(minutes=4)
        gone = dt.datetime.now(dt.UTC) - idle - dt.timedelta(minutes=1)
        await sessions.update_one({"user_id": str(user["_id"])}, {"$set": {"last_used_at": gone}})
        refused = await auth.client.get("/portal/login")
        assert "Signed in" not in refused.text and '<label for="email">' in refused.text


async def test_a_banned_user_is_told_instead_of_renewed(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        await sign_in(auth.client, address)
        user = await auth.find_user(address)
        assert user is not None
        ends = int(time.time() * 1000) + 600_000
        await auth.ctx.protection.client.bans.learn(BanInfo(f"user:{user['_id']}", "abuse", ends))
        response = await auth.client.get("/portal/login", params={"rd": "https://app.example.com/"})
        assert response.status_code == 403 and "Access banned" in response.text


async def test_a_session_ended_by_a_ban_shows_the_ban_before_the_ban_feed_does(
    app_factory: Callable[..., Any],
) -> None:
    """The ban's revocation can reach this process before the ban itself (the CLI writes both):
    the portal then says banned, as /verify does, instead of a sign-in form."""
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        await sign_in(auth.client, address)
        user = await auth.find_user(address)
        assert user is not None
        ends = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        user_id = str(user["_id"])
        revoked = await auth.ctx.sessions.revoke(
            user_id=user_id, reason="user_banned", actor="cli", ban=RevokedByBan("abuse", ends)
        )
        assert revoked == 1 and auth.ctx.protection.user_ban(user_id) is None
        await auth.ctx.revocations.refresh_once()  # as the poll learns a revocation another process wrote
        response = await auth.client.get("/portal/login", params={"rd": "https://app.example.com/"})
        assert response.status_code == 403 and "Access banned" in response.text, response.text
        assert ends.strftime("%Y-%m-%dT%H:%M") in response.text
        assert session_cookie(auth.client) is not None  # kept: the page says why, every time


async def test_development_over_http_drops_the_prefixes_and_secure(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, AUTHGATE_ENV="development", DOMAIN_SERVER="http://auth.test") as auth:
        address = email()
        await auth.register(address)
        browser = auth.new_client(base_url="http://auth.test")
        page = await browser.get("/portal/login")
        assert page.headers["set-cookie"].startswith("authgate_csrf=")
        form = {"csrf": csrf_of(page), "email": address, "password": STRONG_PASSWORD}
        response = await post_form(browser, "/portal/login", form, "http://auth.test")
        assert response.status_code == 303, response.text
        (cookie,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("authgate_session=")]
        assert "secure" not in [part.strip().lower() for part in cookie.split(";")]


@pytest.mark.parametrize(
    ("fetch_site", "accepted"),
    [("same-origin", True), ("same-site", False), ("cross-site", False), (None, False)],
)
async def test_a_null_origin_passes_only_with_sec_fetch_site_same_origin(
    app_factory: Callable[..., Any], fetch_site: str | None, accepted: bool
) -> None:
    """Under `Referrer-Policy: no-referrer` Chromium posts the portal's own forms with `Origin: null`
    and `Sec-Fetch-Site: same-origin` (a header no page can set): that pair is the portal's own."""
    async with portal_app(app_factory) as auth:
        address = email()
        await auth.register(address)
        page = await auth.client.get("/portal/login")
        form = {"csrf": csrf_of(page), "email": address, "password": STRONG_PASSWORD}
        headers = {"Origin": "null", **({"Sec-Fetch-Site": fetch_site} if fetch_site else {})}
        response = await auth.client.post("/portal/login", data=form, headers=headers)
        assert response.status_code == (303 if accepted else 403), response.text
        assert (session_cookie(auth.client) is not None) is accepted

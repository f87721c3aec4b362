"""/forward-auth: /verify for Traefik and Caddy, with the browser sent to the portal; `rd` checked."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from services.auth.moderation_client import BanInfo
from tests.auth.api_helpers import email
from tests.auth.conftest import CLIENT_IP
from tests.auth.portal_helpers import SESSION, portal_app, session_cookie, sign_in
from tests.auth.test_redirect_targets import BYPASSES

TRUSTED = {"TRUSTED_PROXIES": f"{CLIENT_IP}/32"}
FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/reports?year=2026",
    "X-Forwarded-Method": "GET",
}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", **FORWARDED}
ORIGINAL = "https://app.example.com/reports?year=2026"


async def test_a_browser_is_sent_to_the_portal_with_rd(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, **TRUSTED) as auth:
        response = await auth.client.get("/forward-auth", headers={**BROWSER, "Host": "evil.example"})
        assert response.status_code == 302
        assert response.headers["location"] == f"https://auth.test/portal/login?rd={quote(ORIGINAL, safe='')}"


async def test_an_api_client_gets_401(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, **TRUSTED) as auth:
        response = await auth.client.get("/forward-auth", headers={"Accept": "application/json", **FORWARDED})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, **TRUSTED) as auth:
        stranger = auth.new_client("198.51.100.9")
        response = await stranger.get("/forward-auth", headers=BROWSER)
        assert response.status_code == 302
        assert response.headers["location"] == "https://auth.test/portal/login"


async def test_the_round_trip_through_the_portal(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, **TRUSTED) as auth:
        address = email()
        await auth.register(address)
        browser = auth.new_client()
        sent = await browser.get("/forward-auth", headers=BROWSER)
        login_url = sent.headers["location"].removeprefix("https://auth.test")
        rd = ORIGINAL
        assert login_url == f"/portal/login?rd={quote(rd, safe='')}"
        signed = await sign_in(browser, address, rd=rd)
        assert signed.status_code == 303 and signed.headers["location"] == rd
        token = session_cookie(browser)
        answer = await auth.client.get("/forward-auth", headers={**BROWSER, "Cookie": f"{SESSION}={token}"})
        assert answer.status_code == 200
        assert answer.headers["x-auth-email"] == address and answer.headers["x-auth-amr"] == "pwd"
        # A live session with a lapsed cookie is renewed by the portal and sent back to rd.
        renewed = await browser.get("/portal/login", params={"rd": rd})
        assert renewed.status_code == 302 and renewed.headers["location"] == rd


async def test_rd_bypasses_are_refused(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, AUTH_REDIRECT_DOMAINS="app.example.test,.example.com") as auth:
        address = email()
        await auth.register(address)
        browser = auth.new_client()
        first = await sign_in(browser, address, rd=BYPASSES[0])
        assert first.status_code == 303 and first.headers["location"] == "/portal/login"
        for target in BYPASSES:
            response = await browser.get("/portal/login", params={"rd": target})
            assert response.status_code == 200, (target, response.headers.get("location"))
            assert "Signed in" in response.text
        allowed = await browser.get("/portal/login", params={"rd": "https://app.example.test/x"})
        assert allowed.status_code == 302 and allowed.headers["location"] == "https://app.example.test/x"


@pytest.mark.parametrize("target", BYPASSES[:6])
async def test_rd_bypasses_are_refused_after_a_password(app_factory: Callable[..., Any], target: str) -> None:
    async with portal_app(app_factory, AUTH_REDIRECT_DOMAINS="app.example.test,.example.com") as auth:
        address = email()
        await auth.register(address)
        response = await sign_in(auth.new_client(), address, rd=target)
        assert response.status_code == 303 and response.headers["location"] == "/portal/login"


async def test_roles_and_mfa_are_the_proxys_configuration(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, **TRUSTED) as auth:
        address = email()
        await auth.register(address)
        browser = auth.new_client()
        await sign_in(browser, address)
        cookie = {"Cookie": f"{SESSION}={session_cookie(browser)}"}
        assert (await auth.client.get("/forward-auth?roles=ADMIN", headers=cookie)).status_code == 403
        refused = await auth.client.get("/forward-auth?mfa=required", headers=cookie)
        assert refused.status_code == 403 and refused.json()["code"] == "mfa_required"
        assert (await auth.client.get("/forward-auth?rolez=USER", headers=cookie)).status_code == 400


async def test_a_banned_browser_is_sent_to_the_portal_and_an_api_client_gets_403(
    app_factory: Callable[..., Any],
) -> None:
    """The portal shows the ban page (until when); an API client keeps /verify's JSON 403."""
    async with portal_app(app_factory, **TRUSTED) as auth:
        address = email()
        await auth.register(address)
        await sign_in(auth.client, address)
        token = session_cookie(auth.client)
        user = await auth.find_user(address)
        assert user is not None and token
        ends = int(time.time() * 1000) + 600_000
        await auth.ctx.protection.client.bans.learn(BanInfo(f"user:{user['_id']}", "abuse", ends))
        cookie = {"Cookie": f"{SESSION}={token}"}
        checker = auth.new_client()
        browser = await checker.get("/forward-auth", headers={**BROWSER, **cookie})
        assert browser.status_code == 302
        assert browser.headers["location"] == f"https://auth.test/portal/login?rd={quote(ORIGINAL, safe='')}"
        api = await checker.get(
            "/forward-auth", headers={"Accept": "application/json", **FORWARDED, **cookie}
        )
        assert api.status_code == 403 and api.json()["code"] == "banned"


@pytest.mark.parametrize(
    ("others", "kept"),
    [("", None), ("theme=dark; ", "theme=dark"), ("a=1; {session}; b=2", "a=1; b=2")],
    ids=["alone", "with-another", "between-two"],
)
async def test_an_allowed_answer_carries_the_cookies_without_the_session_cookie(
    app_factory: Callable[..., Any], others: str, kept: str | None
) -> None:
    """What Traefik's `authResponseHeaders: [Cookie]` puts on the request to the app."""
    async with portal_app(app_factory, **TRUSTED) as auth:
        address = email()
        await auth.register(address)
        await sign_in(auth.client, address)
        token = session_cookie(auth.client)
        session = f"{SESSION}={token}"
        header = others.format(session=session) if "{session}" in others else others + session
        response = await auth.new_client().get("/forward-auth", headers={**BROWSER, "Cookie": header})
        assert response.status_code == 200, response.text
        assert response.headers.get("cookie") == kept
        assert SESSION not in str(response.headers.raw)

"""Signing in to proxied apps in a real browser, through real nginx and real Caddy.

The protected app is the echo server: its page is the request it received, so a test reads
the identity headers and the Cookie header the proxy forwarded.
"""

from __future__ import annotations

from urllib.parse import quote

from playwright.async_api import BrowserContext, Page

from tests.browser.conftest import APP_HOSTS, REVOCATION_DEADLINE_S, Proxy, Stack
from tests.browser.pages import echoed, header, heading, sign_in, submit, until


async def test_sign_in_returns_to_the_original_url(
    page: Page, context: BrowserContext, stack: Stack, proxy: Proxy
) -> None:
    address = stack.new_user()
    # A cookie of the app's own: the proxy keeps it, and removes only authgate's.
    await context.add_cookies([{"name": "theme", "value": "dark", "url": proxy.url(APP_HOSTS[0])}])
    original = proxy.url(APP_HOSTS[0], "/reports/2026?year=2026&q=a%20b")
    await page.goto(original)
    assert page.url == f"{stack.portal}/portal/login?rd={quote(original, safe='')}"
    assert (await page.title()).startswith("Sign in")
    await sign_in(page, address)
    assert page.url == original
    body = await echoed(page)
    assert body["method"] == "GET" and body["path"] == "/reports/2026?year=2026&q=a%20b"
    assert header(body, "X-Auth-Email") == [address]
    assert header(body, "X-Auth-Amr") == ["pwd"]
    assert len(header(body, "X-Auth-Session-Id")) == 1 and header(body, "X-Auth-Session-Id")[0]
    assert header(body, "Cookie") == ["theme=dark"]
    assert {c["name"] for c in await context.cookies()} >= {"authgate_session", "theme"}


async def test_a_second_app_on_another_subdomain_is_signed_in_already(
    page: Page, context: BrowserContext, stack: Stack, proxy: Proxy
) -> None:
    address = stack.new_user()
    await page.goto(proxy.url(APP_HOSTS[0], "/"))
    await sign_in(page, address)
    assert page.url == proxy.url(APP_HOSTS[0], "/")
    session = [c for c in await context.cookies() if c["name"] == "authgate_session"]
    assert len(session) == 1 and session[0]["domain"] == ".example.localhost"
    assert session[0]["httpOnly"] and session[0]["sameSite"] == "Lax"

    second = proxy.url(APP_HOSTS[1], "/inbox?page=2")
    await page.goto(second)
    assert page.url == second  # no trip through the portal
    body = await echoed(page)
    assert header(body, "X-Auth-Email") == [address]
    assert header(body, "Host") == [f"{APP_HOSTS[1]}:{proxy.server.port}"]
    assert all("authgate_session" not in value for value in header(body, "Cookie"))


async def test_logout_on_the_portal_sends_both_apps_back_to_the_portal(
    page: Page, context: BrowserContext, stack: Stack, proxy: Proxy
) -> None:
    address = stack.new_user()
    await page.goto(proxy.url(APP_HOSTS[0], "/"))
    await sign_in(page, address)
    assert page.url == proxy.url(APP_HOSTS[0], "/")
    kept = [c for c in await context.cookies() if c["name"] == "authgate_session"]

    await page.goto(f"{stack.portal}/portal/logout")
    assert (await heading(page)).startswith("Sign out")
    await submit(page, "Sign out")
    assert (await heading(page)) == "Signed out"
    for host in APP_HOSTS:
        await page.goto(proxy.url(host, "/after-logout"))
        assert page.url.startswith(f"{stack.portal}/portal/login?rd="), page.url

    # The browser dropped the cookie; a copy kept elsewhere is refused by the proxy within the bound.
    await context.add_cookies(kept)  # type: ignore[arg-type]

    async def back_at_the_portal() -> bool:
        await page.goto(proxy.url(APP_HOSTS[1], "/replayed"))
        return page.url.startswith(f"{stack.portal}/portal/login")

    await until(back_at_the_portal, "the logged-out cookie refused", REVOCATION_DEADLINE_S)
    assert (await heading(page)).startswith("Sign in")


async def test_a_banned_user_sees_the_ban_page(page: Page, stack: Stack, proxy: Proxy) -> None:
    address = stack.new_user("banned")
    await page.goto(proxy.url(APP_HOSTS[0], "/"))
    await sign_in(page, address)
    assert page.url == proxy.url(APP_HOSTS[0], "/")

    result = stack.cli("ban-user", address, "2h", "--reason", "browser test")
    assert "revoked 1 session(s)" in result.stdout

    async def banned_page() -> bool:
        await page.goto(proxy.url(APP_HOSTS[0], "/still-there"))
        return (await heading(page)) == "Access banned"

    await until(banned_page, "the ban page", REVOCATION_DEADLINE_S)
    assert page.url.startswith(f"{stack.portal}/portal/login")
    text = await page.locator("main").inner_text()
    assert "Access is temporarily banned until 20" in text  # an ISO date and time
    assert (await page.title()).startswith("Access banned")

"""Signing in through a real OpenID provider in a real browser: the protected app behind the
proxy, the portal's OpenID button, panva's oidc-provider's own login form, and back to the
exact URL the browser first asked for, with the identity headers the proxy forwards."""

from __future__ import annotations

from urllib.parse import quote

from playwright.async_api import BrowserContext, Page

from tests.browser.conftest import APP_HOSTS, OPENID_LABEL, Idp, Proxy, Stack
from tests.browser.pages import echoed, header, heading


async def provider_sign_in(page: Page, idp: Idp, login: str) -> None:
    """Click the portal's OpenID button, then fill and send the provider's own form."""
    async with page.expect_navigation():
        await page.get_by_role("link", name=OPENID_LABEL, exact=True).click()
    assert page.url.startswith(f"{idp.provider.issuer}/interaction/"), page.url
    await page.locator("input[name=login]").fill(login)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in", exact=True).click()
    # oidc-provider grants the scopes at the form (no separate consent page); a consent page
    # of another configuration would show here.
    await page.wait_for_load_state()


async def test_provider_sign_in_returns_to_the_original_url(
    page: Page, context: BrowserContext, stack: Stack, idp: Idp, proxy: Proxy
) -> None:
    original = proxy.url(APP_HOSTS[0], "/projects/42?tab=files&q=a%20b")
    await page.goto(original)
    assert page.url == f"{stack.portal}/portal/login?rd={quote(original, safe='')}"
    await provider_sign_in(page, idp, "alice")
    assert page.url == original
    body = await echoed(page)
    assert body["path"] == "/projects/42?tab=files&q=a%20b"
    assert header(body, "X-Auth-Email") == ["alice@idp.example.com"]
    assert header(body, "X-Auth-Amr") == ["fed"]
    assert len(header(body, "X-Auth-Session-Id")) == 1
    names = {c["name"] for c in await context.cookies()}
    assert "authgate_session" in names
    assert not any(name.startswith("authgate_oauth") for name in names)  # the flow cookie is gone


async def test_a_missing_role_is_refused_with_a_readable_page(page: Page, stack: Stack, idp: Idp) -> None:
    nginx = stack.proxies["nginx"]
    await page.goto(nginx.url(APP_HOSTS[0], "/"))
    await provider_sign_in(page, idp, "norole")
    assert page.url.startswith(f"{stack.portal}/oauth/openid/callback?"), page.url
    assert (await heading(page)) == "Sign-in refused"
    text = await page.locator("main").inner_text()
    assert "lacks the required role" in text
    await page.goto(nginx.url(APP_HOSTS[0], "/"))
    assert page.url.startswith(f"{stack.portal}/portal/login?rd="), page.url  # no session


async def test_an_unknown_identity_is_refused_when_social_registration_is_off(
    page: Page, closed_portal: str, idp: Idp
) -> None:
    await page.goto(f"{closed_portal}/portal/login")
    await provider_sign_in(page, idp, "alice")
    assert page.url.startswith(f"{closed_portal}/oauth/openid/callback?"), page.url
    assert (await heading(page)) == "Sign-in refused"
    text = await page.locator("main").inner_text()
    assert "There is no account for this identity, and sign-up is disabled." in text
    assert not any(c["name"] == "authgate_session" for c in await page.context.cookies())

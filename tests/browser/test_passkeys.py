"""Passkeys in a real browser: Chromium's virtual authenticator (CDP) registers one from the
account pages, then signs in with it alone (no password, no code) through nginx and Caddy."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Page

from harness import STRONG_PASSWORD
from harness.browser import enable_virtual_authenticator
from tests.browser.conftest import APP_HOSTS, PORTAL_HOST, Proxy, Stack
from tests.browser.pages import echoed, header, heading, sign_in, submit


async def test_a_passkey_is_registered_and_signs_in_without_a_password(
    page: Page, context: BrowserContext, stack: Stack, proxy: Proxy
) -> None:
    address = stack.new_user("passkey")
    original = proxy.url(APP_HOSTS[0], "/notes?id=7")
    await page.goto(original)
    authenticator = await enable_virtual_authenticator(context, page)
    await sign_in(page, address)
    assert page.url == original

    await page.goto(f"{stack.portal}/portal/account/passkeys")
    assert await heading(page) == "Passkeys"
    await page.get_by_label("Name (optional)").fill("Test laptop")
    await page.get_by_label("Current password").fill(STRONG_PASSWORD)
    add = page.get_by_role("button", name="Add a passkey", exact=True)
    await add.wait_for()
    await page.wait_for_function("!document.getElementById('passkey-add-button').disabled")
    async with page.expect_navigation():
        await add.click()
    assert await page.get_by_label("Name", exact=True).input_value() == "Test laptop"
    stored = await authenticator.credentials()
    assert len(stored) == 1 and stored[0]["isResidentCredential"] and stored[0]["rpId"] == PORTAL_HOST

    await page.goto(f"{stack.portal}/portal/logout")
    await submit(page, "Sign out")
    await page.goto(original)
    assert page.url.startswith(f"{stack.portal}/portal/login?rd=")
    async with page.expect_navigation(url=original):
        await page.get_by_role("button", name="Sign in with a passkey").click()
    body = await echoed(page)
    assert header(body, "X-Auth-Email") == [address]
    assert header(body, "X-Auth-Amr") == ["hwk"]
    assert (await authenticator.credentials())[0]["signCount"] >= 1

"""The account pages in a real browser, with the mail a real SMTP server received: registration
with its verification link, a password reset from the mail, and signing out another device."""

from __future__ import annotations

import secrets

from playwright.async_api import BrowserContext, Page

from harness import STRONG_PASSWORD
from harness.browser import ChromiumSession, save_screenshot
from tests.browser.conftest import APP_HOSTS, REVOCATION_DEADLINE_S, Proxy, Stack
from tests.browser.pages import echoed, header, heading, mail_link, sign_in, submit, until

NEW_PASSWORD = "another long and memorable passphrase"


async def test_registration_with_the_verification_mail(page: Page, stack: Stack) -> None:
    address = f"newcomer.{secrets.token_hex(4)}@example.com"
    await page.goto(f"{stack.portal}/portal/register")
    await page.get_by_label("Name", exact=True).fill("New Comer")
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password", exact=True).fill(STRONG_PASSWORD)
    await page.get_by_label("Repeat the password").fill(STRONG_PASSWORD)
    await submit(page, "Create account")
    assert await heading(page) == "Registration received"

    link = await mail_link(stack.smtp, address, "Verify your email", "/portal/verify-email")
    assert link.startswith(f"{stack.portal}/portal/verify-email?")
    await page.goto(link)
    assert await heading(page) == "Verify your email"  # a GET spends nothing (mail scanners)
    await submit(page, "Verify my email")
    assert await heading(page) == "Email verified"


async def test_password_reset_from_the_mail(page: Page, stack: Stack, proxy: Proxy) -> None:
    address = stack.new_user("reset")
    await page.goto(f"{stack.portal}/portal/forgot")
    await page.get_by_label("Email").fill(address)
    await submit(page, "Send the link")
    assert await page.get_by_role("status").count() == 1

    link = await mail_link(stack.smtp, address, "Reset your", "/portal/reset-password")
    await page.goto(link)
    assert await heading(page) == "Choose a new password"
    await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    await submit(page, "Set the new password")
    assert await heading(page) == "Password changed"

    original = proxy.url(APP_HOSTS[0], "/after-reset")
    await page.goto(original)
    await sign_in(page, address, STRONG_PASSWORD)
    assert await heading(page) == "Sign in to authgate"  # the old password is gone
    await sign_in(page, address, NEW_PASSWORD)
    assert page.url == original
    assert header(await echoed(page), "X-Auth-Email") == [address]


async def test_signing_out_another_device_from_the_sessions_page(
    page: Page, chromium: ChromiumSession, stack: Stack, proxy: Proxy
) -> None:
    address = stack.new_user("devices")
    app = proxy.url(APP_HOSTS[1], "/")
    other: BrowserContext = await chromium.context()
    try:
        laptop = await other.new_page()
        await laptop.goto(app)
        await sign_in(laptop, address)
        assert laptop.url == app

        await page.goto(app)
        await sign_in(page, address)
        await page.goto(f"{stack.portal}/portal/account")
        assert await heading(page) == "Your account"
        await save_screenshot(page, "portal-account")  # the README's picture
        buttons = page.get_by_role("button", name="Sign out this device")
        assert await buttons.count() == 2
        this_device = page.locator("li", has_text="(this device)")
        other_device = page.locator("ul.sessions > li").filter(has_not_text="(this device)")
        assert await this_device.count() == 1 and await other_device.count() == 1
        async with page.expect_navigation():
            await other_device.get_by_role("button").click()
        assert await page.get_by_role("button", name="Sign out this device").count() == 1

        async def laptop_at_the_portal() -> bool:
            await laptop.goto(app)
            return laptop.url.startswith(f"{stack.portal}/portal/login")

        await until(laptop_at_the_portal, "the other device signed out", REVOCATION_DEADLINE_S)
        await page.goto(app)
        assert page.url == app  # this device stays signed in
    finally:
        await other.close()

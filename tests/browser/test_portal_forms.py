"""The portal's forms in a real browser: a tampered CSRF token, and sign-in with a second factor."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp
from playwright.async_api import BrowserContext, Page

from harness import STRONG_PASSWORD
from harness.browser import save_screenshot
from tests.browser.conftest import APP_HOSTS, MFA_HOST, Proxy, Stack
from tests.browser.pages import echoed, header, heading, sign_in, submit


async def test_a_tampered_csrf_token_gets_the_refusal_page(
    page: Page, context: BrowserContext, stack: Stack
) -> None:
    address = stack.new_user()
    await page.goto(f"{stack.portal}/portal/login")
    # What a forged form would carry: any token but the one bound to this browser's cookie.
    await page.locator("input[name=csrf]").evaluate("(field) => { field.value = 'A'.repeat(43); }")
    responses: list[int] = []
    page.on("response", lambda response: responses.append(response.status))
    await sign_in(page, address)
    assert (await heading(page)) == "Request refused"
    assert (await page.title()).startswith("Request refused")
    assert 403 in responses
    assert "authgate_session" not in {c["name"] for c in await context.cookies()}  # nothing was done
    # The same form, untouched, signs in: the refusal was the token's.
    await page.goto(f"{stack.portal}/portal/login")
    await sign_in(page, address)
    assert (await heading(page)) == "Signed in"


def _enrol_totp(stack: Stack, address: str) -> str:
    """TOTP on for `address` through the JSON API; the secret (as an authenticator app keeps it)."""
    with httpx.Client(base_url=stack.auth.url, timeout=30) as api:
        login = api.post(
            "/api/auth/login",
            json={"email": address, "password": STRONG_PASSWORD, "refresh_token_in_body": True},
        )
        assert login.status_code == 200, login.text
        bearer = {"Authorization": f"Bearer {login.json()['token']}"}
        enabled = api.post("/api/auth/2fa/enable", json={"password": STRONG_PASSWORD}, headers=bearer)
        assert enabled.status_code == 200, enabled.text
        body: dict[str, Any] = enabled.json()
        secret: str = pyotp.parse_uri(body["otpauthUrl"]).secret
        # The previous step's code confirms; the current one stays unused for the sign-in.
        code = pyotp.TOTP(secret).at(time.time() - 30)
        confirmed = api.post("/api/auth/2fa/confirm", json={"token": code}, headers=bearer)
        assert confirmed.status_code == 200, confirmed.text
    return secret


async def test_two_factor_sign_in(page: Page, stack: Stack, proxy: Proxy) -> None:
    address = stack.new_user("totp")
    secret = _enrol_totp(stack, address)
    original = proxy.url(APP_HOSTS[0], "/settings?tab=security")
    await page.goto(original)
    await page.get_by_label("Email").fill(address)
    await save_screenshot(page, "portal-login")  # the README's pictures
    await sign_in(page, address)
    assert page.url.startswith(f"{stack.portal}/portal/2fa?rd=")
    assert (await heading(page)) == "Enter your two-factor code"
    code_field = page.get_by_label("Code from your authenticator app, or a backup code")
    await save_screenshot(page, "portal-2fa")
    await code_field.fill("000000")
    await submit(page, "Verify")
    assert await page.get_by_role("alert").inner_text() == "That code is not valid."
    await code_field.fill(pyotp.TOTP(secret).now())
    await submit(page, "Verify")
    assert page.url == original
    body = await echoed(page)
    assert header(body, "X-Auth-Email") == [address]
    assert sorted(header(body, "X-Auth-Amr")[0].split(",")) == ["otp", "pwd"]


async def test_a_password_session_steps_up_for_an_app_that_needs_a_second_factor(
    page: Page, stack: Stack, proxy: Proxy
) -> None:
    """A resource behind `?mfa=required` (nginx: the /admin/ area; Caddy: the admin host): a
    session that proved only a password is sent to the portal's step-up page, then back."""
    address = stack.new_user("stepup")
    await page.goto(proxy.url(APP_HOSTS[0], "/"))
    await sign_in(page, address)  # a password only: the ordinary app opens
    assert header(await echoed(page), "X-Auth-Amr") == ["pwd"]
    secret = _enrol_totp(stack, address)  # turned on later, from another device

    if proxy.name == "nginx":
        original = proxy.url(APP_HOSTS[0], "/admin/audit?from=2026-11")
    else:
        original = proxy.url(MFA_HOST, "/audit?from=2026-11")
    await page.goto(original)
    assert page.url.startswith(f"{stack.portal}/portal/step-up?rd=")
    assert (await heading(page)) == "Confirm with your second factor"
    await page.get_by_label("Code from your authenticator app, or a backup code").fill(
        pyotp.TOTP(secret).now()
    )
    await submit(page, "Verify")
    assert page.url == original
    body = await echoed(page)
    assert header(body, "X-Auth-Email") == [address]
    assert sorted(header(body, "X-Auth-Amr")[0].split(",")) == ["otp", "pwd"]

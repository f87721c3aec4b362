"""?mfa=required through /forward-auth: a password-only browser session steps up on the portal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tests.auth.api_helpers import email
from tests.auth.conftest import CLIENT_IP
from tests.auth.portal_helpers import SESSION, csrf_of, portal_app, post_form, session_cookie, sign_in
from tests.auth.two_factor_helpers import call, code, secret_of

TRUSTED = {"TRUSTED_PROXIES": f"{CLIENT_IP}/32"}
ORIGINAL = "https://app.example.com/payroll?month=11"
BROWSER = {
    "Accept": "text/html,application/xhtml+xml,*/*;q=0.8",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/payroll?month=11",
}
STEP_UP = f"https://auth.test/portal/step-up?rd={quote(ORIGINAL, safe='')}"


async def _enrol_after_sign_in(auth: Any, token: str) -> str:
    """2FA turned on over the API after the browser signed in: that session proved a password only."""
    from tests.auth.conftest import STRONG_PASSWORD

    enabled = await call(auth, "enable", token, {"password": STRONG_PASSWORD})
    assert enabled.status_code == 200, enabled.text
    secret = secret_of(enabled.json()["otpauthUrl"])
    confirmed = await call(auth, "confirm", token, {"token": code(secret, -1)})
    assert confirmed.status_code == 200, confirmed.text
    return secret


async def test_a_password_session_steps_up_and_returns(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, **TRUSTED) as auth:
        address = email()
        body = await auth.user(address)
        browser = auth.new_client()
        assert (await sign_in(browser, address)).status_code == 303
        secret = await _enrol_after_sign_in(auth, body["token"])

        refused = await browser.get("/forward-auth?mfa=required", headers=BROWSER)
        assert refused.status_code == 302 and refused.headers["location"] == STEP_UP
        api = await browser.get(
            "/forward-auth?mfa=required", headers={**BROWSER, "Accept": "application/json"}
        )
        assert api.status_code == 403 and api.json()["code"] == "mfa_required"
        plain = await browser.get("/forward-auth", headers=BROWSER)
        assert plain.status_code == 200  # only resources that ask for it need the second factor

        page = await browser.get(STEP_UP.removeprefix("https://auth.test"))
        assert page.status_code == 200 and "<title>Confirm with your second factor" in page.text
        assert '<label for="code">' in page.text
        wrong = await post_form(
            browser, "/portal/step-up", {"csrf": csrf_of(page), "code": "000000", "rd": ORIGINAL}
        )
        assert wrong.status_code == 401 and 'aria-describedby="code-error"' in wrong.text
        forged = await post_form(
            browser, "/portal/step-up", {"csrf": "x", "code": code(secret), "rd": ORIGINAL}
        )
        assert forged.status_code == 403
        done = await post_form(
            browser, "/portal/step-up", {"csrf": csrf_of(wrong), "code": code(secret), "rd": ORIGINAL}
        )
        assert done.status_code == 303 and done.headers["location"] == ORIGINAL
        cookie = session_cookie(browser)
        check = auth.new_client()
        verified = await check.get("/verify?mfa=required", headers={"Cookie": f"{SESSION}={cookie}"})
        assert verified.status_code == 200 and verified.headers["x-auth-amr"] == "pwd,otp"
        again = await browser.get("/forward-auth?mfa=required", headers=BROWSER)
        assert again.status_code == 200
        sessions = await auth.client.get(
            "/api/auth/sessions", headers={"Authorization": f"Bearer {body['token']}"}
        )
        assert sessions.status_code == 200


async def test_a_replayed_code_does_not_step_up(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, **TRUSTED) as auth:
        address = email()
        body = await auth.user(address)
        browser = auth.new_client()
        await sign_in(browser, address)
        secret = await _enrol_after_sign_in(auth, body["token"])
        spent = code(secret, -1)  # the confirmation used it
        page = await browser.get("/portal/step-up")
        refused = await post_form(browser, "/portal/step-up", {"csrf": csrf_of(page), "code": spent})
        assert refused.status_code == 401
        assert (
            session_cookie(browser)
            and "otp"
            not in (
                await auth.new_client().get(
                    "/verify", headers={"Cookie": f"{SESSION}={session_cookie(browser)}"}
                )
            ).headers["x-auth-amr"]
        )


async def test_an_account_without_a_second_factor_is_told_how(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, **TRUSTED) as auth:
        address = email()
        await auth.register(address)
        browser = auth.new_client()
        await sign_in(browser, address)
        page = await browser.get("/portal/step-up")
        assert page.status_code == 403 and "account page" in page.text
        form_page = await browser.get("/portal/logout")  # any portal form: the CSRF token is per browser
        nothing = await post_form(browser, "/portal/step-up", {"csrf": csrf_of(form_page), "code": "123456"})
        assert nothing.status_code == 401


async def test_without_a_session_the_step_up_page_sends_to_sign_in(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory, **TRUSTED) as auth:
        response = await auth.client.get("/portal/step-up", params={"rd": ORIGINAL})
        assert response.status_code == 302
        assert response.headers["location"] == f"/portal/login?rd={quote(ORIGINAL, safe='')}"
        evil = await auth.client.get("/portal/step-up", params={"rd": "https://evil.example/"})
        assert evil.headers["location"] == "/portal/login"

"""A 2FA account signs in through /portal/2fa: the temp token stays in an HttpOnly cookie."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.auth.portal_helpers import SESSION, csrf_of, portal_app, post_form, session_cookie, sign_in
from tests.auth.two_factor_helpers import code, enrolled

TEMP = "__Host-authgate_2fa"


async def test_a_two_factor_account_goes_through_the_code_page(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        account = await enrolled(auth)
        browser = auth.new_client()
        rd = "https://app.example.com/after"
        first = await sign_in(browser, account.address, rd=rd)
        assert first.status_code == 303
        assert first.headers["location"].startswith("/portal/2fa?rd=")
        assert session_cookie(browser) is None
        temp_cookie = [h for h in first.headers.get_list("set-cookie") if h.startswith(TEMP + "=")]
        assert len(temp_cookie) == 1 and "httponly" in temp_cookie[0].lower()
        page = await browser.get(first.headers["location"])
        assert page.status_code == 200 and "<title>Two-factor code" in page.text
        temp = browser.cookies.get(TEMP)
        assert temp and temp not in page.text  # never in the page
        assert '<label for="code">' in page.text
        wrong = await post_form(browser, "/portal/2fa", {"csrf": csrf_of(page), "code": "000000", "rd": rd})
        assert wrong.status_code == 401
        assert 'aria-describedby="code-error"' in wrong.text
        form = {"csrf": csrf_of(wrong), "code": code(account.secret), "rd": rd}
        done = await post_form(browser, "/portal/2fa", form)
        assert done.status_code == 303, done.text
        assert done.headers["location"] == rd
        token = session_cookie(browser)
        assert token and browser.cookies.get(TEMP) is None
        check = auth.new_client()
        verify = await check.get("/verify?mfa=required", headers={"Cookie": f"{SESSION}={token}"})
        assert verify.status_code == 200, verify.text
        assert verify.headers["x-auth-amr"] == "pwd,otp"


async def test_a_backup_code_works_and_csrf_is_required(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        account = await enrolled(auth)
        browser = auth.new_client()
        first = await sign_in(browser, account.address)
        page = await browser.get(first.headers["location"])
        refused = await post_form(browser, "/portal/2fa", {"csrf": "nope", "code": account.backup_codes[0]})
        assert refused.status_code == 403 and session_cookie(browser) is None
        form = {"csrf": csrf_of(page), "code": account.backup_codes[0]}
        done = await post_form(browser, "/portal/2fa", form)
        assert done.status_code == 303 and done.headers["location"] == "/portal/login"
        assert session_cookie(browser)


async def test_the_code_page_without_a_pending_sign_in_sends_back(app_factory: Callable[..., Any]) -> None:
    async with portal_app(app_factory) as auth:
        response = await auth.client.get("/portal/2fa")
        assert response.status_code == 302 and response.headers["location"] == "/portal/login"

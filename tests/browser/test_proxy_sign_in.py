"""Signing in to a proxied app in a real browser, through real nginx and real Caddy."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Page

from harness import STRONG_PASSWORD
from tests.browser.conftest import APP_HOSTS, Proxy, Stack


def echoed(page: Page) -> dict[str, Any]:
    """What the echo app received, as it shows it."""
    body: dict[str, Any] = json.loads(page.inner_text("body"))
    return body


def header(body: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in body["headers"] if key.lower() == name.lower()]


def sign_in(page: Page, address: str, password: str = STRONG_PASSWORD) -> None:
    page.get_by_label("Email").fill(address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_returns_to_the_original_url(page: Page, stack: Stack, proxy: Proxy) -> None:
    address = stack.new_user()
    original = proxy.url(APP_HOSTS[0], "/reports/2026?year=2026&q=a%20b")
    page.goto(original)
    assert page.url == f"{stack.portal}/portal/login?rd={quote(original, safe='')}"
    assert page.title().startswith("Sign in")
    sign_in(page, address)
    page.wait_for_url(original)
    body = echoed(page)
    assert body["path"] == "/reports/2026?year=2026&q=a%20b"
    assert header(body, "X-Auth-Email") == [address]
    assert header(body, "X-Auth-Amr") == ["pwd"]
    assert all("authgate_session" not in value for value in header(body, "Cookie"))

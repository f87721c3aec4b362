"""What the browser scenarios do on the portal's pages and read from the echo app."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from playwright.async_api import Page

from harness import STRONG_PASSWORD
from harness.smtp import SmtpServer


async def echoed(page: Page) -> dict[str, Any]:
    """What the echo app received (method, path, headers), as the page shows it."""
    body: dict[str, Any] = json.loads(await page.inner_text("body"))
    return body


def header(body: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in body["headers"] if key.lower() == name.lower()]


async def sign_in(page: Page, address: str, password: str = STRONG_PASSWORD) -> None:
    """Fill the portal's sign-in form by its labels, as a person does, and send it."""
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password").fill(password)
    await submit(page, "Sign in")


async def submit(page: Page, button: str) -> None:
    """Click a form's button and wait for the page it leads to (after every redirect)."""
    async with page.expect_navigation():
        await page.get_by_role("button", name=button, exact=True).click()


async def heading(page: Page) -> str:
    """The page's first heading, or "" at once when it has none (the echo app's JSON)."""
    first = page.locator("h1").first
    return (await first.inner_text()).strip() if await first.count() else ""


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    """Retry `check` (which navigates) until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.2)


async def mail_link(smtp: SmtpServer, address: str, subject: str, path: str, timeout: float = 10) -> str:
    """The link to `path` in the newest mail to `address` whose subject has `subject`."""
    deadline = time.monotonic() + timeout
    while True:
        for received in reversed(smtp.sink.received):
            if received.recipients == [address] and subject in str(received.message["Subject"]):
                part = next(p for p in received.message.walk() if p.get_content_type() == "text/plain")
                payload = part.get_payload(decode=True)
                text = payload.decode() if isinstance(payload, bytes) else str(payload)
                found = re.search(r"https?://\S+" + re.escape(path) + r"\?\S+", text)
                assert found, text
                return found.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"no '{subject}' mail to {address} within {timeout}s")
        await asyncio.sleep(0.1)

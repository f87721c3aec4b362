"""A real Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright.

Playwright's own browser download cannot work on these machines, so the browser is launched
from its `executable_path`. Host names are real, so cookies get real domains: the suite uses
`auth.example.localhost` (the portal), `app.example.localhost` and `app2.example.localhost`
(apps behind the proxies) with `AUTH_COOKIE_DOMAIN=example.localhost`. Chromium resolves every
`*.localhost` name to loopback itself (the `--host-resolver-rules` below say so too, and map
`*.example.test` for tests that want a name which is not a secure context).

Why `.localhost`: Chromium treats `http://*.localhost` as a secure context. Over plain http on
any other name it sends no `Sec-Fetch-*` headers (the portal's CSRF check needs
`Sec-Fetch-Site` under `Referrer-Policy: no-referrer`, see services/auth/portal/csrf.py) and
refuses WebAuthn. So the same names serve the passkey tests without a test CA:
`WEBAUTHN_RP_ID=auth.example.localhost` (or `example.localhost`),
`WEBAUTHN_ORIGINS=http://auth.example.localhost:<port>`, and `enable_virtual_authenticator` gives
the page a platform authenticator with resident keys and user verification through CDP
(tests/browser/test_webauthn_ready.py shows a passkey made and used).

Playwright's async API, on the test session's event loop (pytest-asyncio): its sync API keeps
a loop marked running in the thread while the browser lives, which breaks every async test run
after it. One browser per test session (launching costs about half a second), one fresh
`BrowserContext` per test (its own cookie jar), traces off. `save_screenshot` keeps each
test's final page under `artifacts/browser/` (gitignored) as the test's record.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from playwright.async_api import Browser, BrowserContext, CDPSession, Page, Playwright, async_playwright

from harness.processes import ROOT

ARTIFACTS = ROOT / "artifacts" / "browser"
# Every name under these domains reaches loopback; nothing else is resolved by the test browser.
HOST_RULES = "MAP *.example.test 127.0.0.1, MAP *.localhost 127.0.0.1"
_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def find_chromium() -> str | None:
    """Debian's chromium (the tools script installs it), or AUTHGATE_CHROMIUM when set."""
    configured = os.environ.get("AUTHGATE_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


@dataclass
class ChromiumSession:
    """One Chromium for the whole session; `context()` is a fresh profile (cookies, storage)."""

    playwright: Playwright
    browser: Browser

    async def context(self) -> BrowserContext:
        context = await self.browser.new_context(
            viewport={"width": 900, "height": 700}, locale="en-GB", java_script_enabled=True
        )
        context.set_default_timeout(15_000)
        context.set_default_navigation_timeout(15_000)
        return context

    async def close(self) -> None:
        try:
            await self.browser.close()
        finally:
            await self.playwright.stop()

    async def __aenter__(self) -> ChromiumSession:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def launch_chromium(executable: str, *, extra_args: tuple[str, ...] = ()) -> ChromiumSession:
    """Headless Chromium from `executable`, test host names mapped to loopback."""
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                f"--host-resolver-rules={HOST_RULES}",
                "--disable-dev-shm-usage",  # small /dev/shm in containers
                "--no-first-run",
                "--disable-background-networking",
                *extra_args,
            ],
        )
    except BaseException:
        await playwright.stop()
        raise
    return ChromiumSession(playwright, browser)


def artifact_name(test_id: str) -> str:
    """A file name for a test id such as `test_x[nginx]`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id).strip("_")[:150] or "test"


async def save_screenshot(page: Page, test_id: str, directory: Path = ARTIFACTS) -> Path | None:
    """The page as the test left it (full page), or None when the page is gone."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{artifact_name(test_id)}.png"
    if page.is_closed():
        return None
    await page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class VirtualAuthenticator:
    """Chromium's virtual authenticator on one page, and the CDP session that controls it."""

    session: CDPSession
    authenticator_id: str

    async def credentials(self) -> list[dict[str, Any]]:
        """What it stores (`rpId`, `isResidentCredential`, `signCount`, `userHandle`, ...)."""
        answer = await self.session.send(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id}
        )
        found: list[dict[str, Any]] = answer["credentials"]
        return found


async def enable_virtual_authenticator(context: BrowserContext, page: Page) -> VirtualAuthenticator:
    """A CTAP2 platform authenticator (resident keys, user verification that always succeeds)
    attached to `page` through CDP, as Chrome's DevTools WebAuthn panel makes one."""
    session = await context.new_cdp_session(page)
    await session.send("WebAuthn.enable", {"enableUI": False})
    answer = await session.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return VirtualAuthenticator(session, str(answer["authenticatorId"]))

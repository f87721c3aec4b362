"""What the portal tests share: an app with a public URL, a browser-like client, form posts."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from harness import STRONG_PASSWORD
from tests.auth.conftest import AuthApp

PORTAL = "https://auth.test"
SESSION = "__Host-authgate_session"
CSRF = "__Host-authgate_csrf"
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
# Pages that offer passkeys load /portal/static/passkeys.js: scripts from the portal only.
SCRIPT_PAGE_HEADERS = {
    **PAGE_HEADERS,
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
_SCRIPT_TAG = re.compile(r"<script\b[^>]*>")
_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@contextlib.asynccontextmanager
async def portal_app(app_factory: Callable[..., Any], **overrides: str) -> AsyncIterator[AuthApp]:
    env = {"DOMAIN_SERVER": PORTAL, "AUTH_REDIRECT_DOMAINS": ".example.com", **overrides}
    async with app_factory(**env) as auth:
        yield auth


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF_FIELD.search(page.text)
    assert found, page.text
    return found.group(1)


async def post_form(
    client: httpx.AsyncClient, path: str, form: dict[str, str], origin: str | None = PORTAL
) -> httpx.Response:
    headers = {"Origin": origin} if origin is not None else {}
    return await client.post(path, data=form, headers=headers)


async def sign_in(
    client: httpx.AsyncClient, address: str, password: str = STRONG_PASSWORD, rd: str = ""
) -> httpx.Response:
    page = await client.get("/portal/login", params={"rd": rd} if rd else None)
    assert page.status_code == 200, page.text
    form = {"csrf": csrf_of(page), "email": address, "password": password, "rd": rd}
    return await post_form(client, "/portal/login", form)


def session_cookie(client: httpx.AsyncClient) -> str | None:
    value: str | None = client.cookies.get(SESSION)
    return value


def only_script_files(page: httpx.Response) -> list[str]:
    """Every <script> of a page loads a file of the portal's (none is inline): their tags."""
    tags = _SCRIPT_TAG.findall(page.text)
    assert all(tag == '<script src="/portal/static/passkeys.js" defer>' for tag in tags), tags
    assert page.text.count("</script>") == len(tags)
    return tags

"""The auth API as the benches call it (aiohttp)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)

# The auth API, as the benches call it ----------------------------------------------------------


def new_session(limit: int = 64) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), timeout=HTTP_TIMEOUT)


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    async with session.request(method, url, json=body, headers=headers) as response:
        text = await response.text()
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = {"raw": text[:200]}
    return response.status, data if isinstance(data, dict) else {"value": data}


def new_credentials(tag: str) -> tuple[str, str]:
    """A unique email and a password that passes the policy (length 15+, zxcvbn 3+)."""
    return f"{tag}-{secrets.token_hex(4)}@bench.example.com", secrets.token_urlsafe(24)


async def register(session: aiohttp.ClientSession, base: str, email: str, password: str) -> None:
    body = {"name": "Bench User", "email": email, "password": password, "confirm_password": password}
    status, data = await call(session, "POST", f"{base}/api/auth/register", body)
    if status != 200:
        raise RuntimeError(f"register answered {status}: {data}")


async def login(session: aiohttp.ClientSession, base: str, email: str, password: str) -> dict[str, Any]:
    """A service-client login: {token, user, refresh_token}."""
    body = {"email": email, "password": password, "refresh_token_in_body": True}
    status, data = await call(session, "POST", f"{base}/api/auth/login", body)
    if status != 200:
        raise RuntimeError(f"login answered {status}: {data}")
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PORTAL_ORIGIN = "http://portal.bench.test"  # DOMAIN_SERVER of the bench's auth processes
SESSION_COOKIE = "authgate_session"  # development: no __Host- prefix over http
_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


async def portal_sign_in(session: aiohttp.ClientSession, base: str, email: str, password: str) -> str:
    """A browser's sign-in through /portal/login: the session cookie's value.

    Cookies are carried by hand (aiohttp's jar ignores cookies of IP-address hosts).
    """
    async with session.get(f"{base}/portal/login") as page:
        html = await page.text()
        csrf_cookie = page.cookies["authgate_csrf"].value
    found = _CSRF_FIELD.search(html)
    if found is None:
        raise RuntimeError("the portal's login page carries no CSRF token")
    form = {"csrf": found.group(1), "email": email, "password": password, "rd": ""}
    headers = {"Origin": PORTAL_ORIGIN, "Cookie": f"authgate_csrf={csrf_cookie}"}
    async with session.post(
        f"{base}/portal/login", data=form, headers=headers, allow_redirects=False
    ) as answer:
        if SESSION_COOKIE not in answer.cookies:
            raise RuntimeError(f"portal sign-in answered {answer.status} without a session cookie")
        return answer.cookies[SESSION_COOKIE].value


def session_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}"}

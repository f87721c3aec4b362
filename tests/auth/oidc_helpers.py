"""What the OpenID tests share: a real provider (oidc-provider on Node), a browser-like client
that reaches both the in-process app and the provider with one cookie jar, and the steps of a
sign-in (start, the provider's form, the callback)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from harness.inprocess import CLIENT_IP
from harness.oidc import (
    CLIENT_ID,
    CLIENT_SECRET,
    LogoutInbox,
    OidcProvider,
    client_metadata,
    start_oidc_provider,
)
from services.auth.social.flow import cookie_suffix
from tests.auth.conftest import AuthApp

PORTAL = "https://auth.test"
CLIENT_APP = "https://chat.example.com"
CALLBACK = PORTAL + "/oauth/openid/callback"
FLOW_COOKIE_PREFIX = "__Host-authgate_oauth_openid_"
REFRESH_COOKIE = "refreshToken"
SESSION_COOKIE = "__Host-authgate_session"
_ACTION = re.compile(r'action="([^"]+)"')


@pytest.fixture(scope="module", name="inbox")
def inbox_fixture() -> Iterator[LogoutInbox]:
    inbox = LogoutInbox().start()
    yield inbox
    inbox.stop()


@pytest.fixture(scope="module", name="idp")
def idp_fixture(inbox: LogoutInbox) -> Iterator[OidcProvider]:
    """One provider per test module: clients for the in-process app's callback."""
    provider = start_oidc_provider(
        client_metadata(CALLBACK, post_logout=CLIENT_APP + "/login", backchannel=inbox.url)
    )
    yield provider
    provider.stop()


def openid_env(idp: OidcProvider, **overrides: str) -> dict[str, str]:
    return {
        "DOMAIN_SERVER": PORTAL,
        "DOMAIN_CLIENT": CLIENT_APP,
        "AUTH_REDIRECT_DOMAINS": ".example.com",
        "ALLOW_SOCIAL_LOGIN": "true",
        "ALLOW_SOCIAL_REGISTRATION": "true",
        "OPENID_CLIENT_ID": CLIENT_ID,
        "OPENID_CLIENT_SECRET": CLIENT_SECRET,
        "OPENID_ISSUER": idp.issuer,
        **overrides,
    }


@contextlib.asynccontextmanager
async def openid_app(
    app_factory: Callable[..., Any], idp: OidcProvider, **overrides: str
) -> AsyncIterator[AuthApp]:
    async with app_factory(**openid_env(idp, **overrides)) as auth:
        yield auth


async def _client_app(scope: Scope, receive: Receive, send: Send) -> None:
    """DOMAIN_CLIENT's stand-in: answers every page with its own address."""
    await PlainTextResponse(f"client app {scope['path']}")(scope, receive, send)


def browser(auth: AuthApp, *, follow: bool = False) -> httpx.AsyncClient:
    """One cookie jar for the app (in-process), the client app (stand-in) and the provider."""
    client = httpx.AsyncClient(
        mounts={
            "all://auth.test": httpx.ASGITransport(app=auth.app, client=(CLIENT_IP, 40000)),
            "all://chat.example.com": httpx.ASGITransport(app=_client_app),
        },
        base_url=PORTAL,
        follow_redirects=follow,
        timeout=20,
    )
    auth._clients.append(client)  # closed with the app
    return client


async def follow(client: httpx.AsyncClient, response: httpx.Response, stop: str) -> httpx.Response | str:
    """Follow redirects by hand; the first Location that starts with `stop` is returned unvisited."""
    for _ in range(20):
        if not response.is_redirect:
            return response
        location = urljoin(str(response.url), response.headers["location"])
        if location.startswith(stop):
            return location
        response = await client.get(location)
    raise AssertionError("too many redirects")


async def provider_form(client: httpx.AsyncClient, authorize_url: str) -> httpx.Response:
    page = await follow(client, await client.get(authorize_url), "\x00")
    assert isinstance(page, httpx.Response) and page.status_code == 200, page
    assert 'name="login"' in page.text, page.text
    return page


async def callback_url(
    client: httpx.AsyncClient, login: str, authorize_url: str, callback: str = CALLBACK
) -> str:
    """Sign in at the provider as `login`; the callback URL it sends the browser to (unvisited).

    A browser still signed in at the provider goes straight back (single sign-on)."""
    page = await follow(client, await client.get(authorize_url), callback)
    if isinstance(page, str):
        return page
    assert page.status_code == 200 and 'name="login"' in page.text, page.text
    found = _ACTION.search(page.text)
    assert found
    posted = await client.post(urljoin(str(page.url), found.group(1)), data={"login": login})
    location = await follow(client, posted, callback)
    assert isinstance(location, str), location
    return location


async def start(client: httpx.AsyncClient, path: str = "/oauth/openid", **params: str) -> str:
    """GET the start route; the provider's authorization URL it redirects to."""
    response = await client.get(path, params=params or None)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert not location.startswith(PORTAL), location
    return location


async def sign_in(client: httpx.AsyncClient, login: str, **params: str) -> httpx.Response:
    """The whole flow: start, the provider's form, the callback; the callback's answer."""
    authorize = await start(client, **params)
    return await client.get(await callback_url(client, login, authorize))


def flow_cookie(state: str) -> str:
    """The name of the flow cookie of `state` (one per flow)."""
    return FLOW_COOKIE_PREFIX + cookie_suffix(state)


def flow_cookies(client: httpx.AsyncClient) -> list[str]:
    return [cookie.name for cookie in client.cookies.jar if cookie.name.startswith(FLOW_COOKIE_PREFIX)]


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def failure_code(response: httpx.Response) -> str:
    """The `error` of a redirect to LibreChat's failure URL (asserting that shape)."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(CLIENT_APP + "/login?"), location
    assert query(location)["redirect"] == "false"
    return query(location)["error"]


def has_session_cookie(client: httpx.AsyncClient) -> bool:
    return any(cookie.name in (REFRESH_COOKIE, SESSION_COOKIE) for cookie in client.cookies.jar)

"""The browser flow through a real Caddy running deploy/caddy/Caddyfile as it is (its `{$NAME}`
values from the environment): forward_auth to /forward-auth, the identity headers copied from
authgate's answer over whatever the client sent, and the session cookie stripped upstream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest

from harness import ROOT, Server, find_caddy, free_port, start_caddy
from tests.integration.support import AuthClient, EchoServer, auth_env, start_auth, start_echo
from tests.integration.test_nginx_portal import SESSION, portal_sign_in

PORTAL = "https://auth.example.com"
APP = "app.example.com"


@dataclass
class CaddyStack:
    caddy: Server
    app: EchoServer
    client: httpx.Client
    cookie: str
    email: str

    @property
    def host(self) -> str:
        return f"{APP}:{self.caddy.port}"

    def get(self, target: str, **headers: str) -> httpx.Response:
        return self.client.get(target, headers={"Host": self.host, **headers})


@pytest.fixture(scope="module")
def stack(mongo: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaddyStack]:
    caddy_exe = find_caddy()
    if caddy_exe is None:
        pytest.fail("caddy is not installed: run `make tools` (scripts/install_tools.sh)", pytrace=False)
    work = tmp_path_factory.mktemp("caddy-portal")
    env = auth_env(mongo.port, TRUST_PROXY="1", TRUSTED_PROXIES="127.0.0.1/32", DOMAIN_SERVER=PORTAL)
    app = start_echo()
    auth = start_auth(env, work)
    caddy = None
    try:
        api = AuthClient(auth.url)
        address = "caddy-browser@example.com"
        api.register(address)
        api.close()
        cookie = portal_sign_in(auth, address)
        port = free_port()
        values = {
            "AUTHGATE_UPSTREAM": f"127.0.0.1:{auth.port}",
            "APP_UPSTREAM": app.address,
            "APP_SITES": f"http://{APP}:{port}",
            "PORTAL_SITE": f"http://auth.example.com:{port}",
            "CADDY_ADMIN": "off",
        }
        caddy = start_caddy(caddy_exe, work / "caddy", ROOT / "deploy" / "caddy" / "Caddyfile", port, values)
        with httpx.Client(base_url=caddy.url, timeout=30) as client:
            yield CaddyStack(caddy, app, client, cookie, address)
    finally:
        if caddy is not None:
            caddy.stop()
        auth.stop()
        app.stop()


def test_an_anonymous_browser_is_sent_to_the_portal(stack: CaddyStack) -> None:
    stack.app.clear()
    response = stack.get("/reports?year=2026&q=a%20b", Accept="text/html")
    assert response.status_code == 302
    original = f"http://{stack.host}/reports?year=2026&q=a%20b"
    assert response.headers["location"] == f"{PORTAL}/portal/login?rd={quote(original, safe='')}"
    assert stack.app.requests == []


def test_an_anonymous_api_client_gets_401(stack: CaddyStack) -> None:
    stack.app.clear()
    response = stack.get("/reports?x=1", Accept="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"  # authgate's answer, passed on as it is
    assert response.headers.get("www-authenticate", "").startswith("Bearer")
    assert stack.app.requests == []


def test_the_portal_site_is_authgate_without_the_check(stack: CaddyStack) -> None:
    stack.app.clear()
    host = f"auth.example.com:{stack.caddy.port}"
    response = stack.client.get("/portal/login", headers={"Host": host, "Accept": "text/html"})
    assert response.status_code == 200 and "<h1>Sign in" in response.text
    assert response.headers["x-frame-options"] == "DENY"
    assert stack.app.requests == []


def test_forged_identity_headers_never_reach_the_app(stack: CaddyStack) -> None:
    stack.app.clear()
    response = stack.get(
        "/",
        Accept="text/html",
        Cookie=f"{SESSION}={stack.cookie}",
        **{"X-Auth-Email": "admin@example.com", "X-Auth-Role": "ADMIN", "X-Auth-Amr": "pwd,otp"},
    )
    assert response.status_code == 200, response.text
    echoed = stack.app.requests[-1]
    assert echoed.values("X-Auth-Email") == [stack.email]
    assert echoed.values("X-Auth-Role") == ["USER"]
    assert echoed.values("X-Auth-Amr") == ["pwd"]


@pytest.mark.parametrize(
    ("cookie_header", "kept"),
    [
        ("{session}", ""),
        ("theme=dark; {session}", "theme=dark"),
        ("{session}; theme=dark", "theme=dark"),
        ("a=1; {session}; b=2", "a=1; b=2"),
        ("my_authgate_session=x; {session}", "my_authgate_session=x"),
    ],
    ids=["alone", "last", "first", "middle", "look-alike-kept"],
)
def test_a_signed_in_cookie_reaches_upstream_without_the_session_cookie(
    stack: CaddyStack, cookie_header: str, kept: str
) -> None:
    stack.app.clear()
    cookie = cookie_header.format(session=f"{SESSION}={stack.cookie}")
    response = stack.get("/reports", Accept="text/html", Cookie=cookie)
    assert response.status_code == 200, response.text
    echoed = stack.app.requests[-1]
    assert echoed.values("X-Auth-Email") == [stack.email]
    assert len(echoed.values("X-Auth-Session-Id")) == 1
    sent = [value for value in echoed.values("Cookie") if value]  # Caddy may leave it empty
    assert sent == ([kept] if kept else [])
    assert all(stack.cookie not in value and SESSION not in value for value in sent)

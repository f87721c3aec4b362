"""The browser flow through a real nginx running deploy/nginx/portal.conf: auth_request /verify,
error_page 401 = @login (authgate's /forward-auth answers the browser with the portal), and the
session cookie stripped from what the upstream receives."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from harness import ROOT, Server, free_port
from harness import start_nginx as harness_start_nginx
from tests.integration.support import (
    STRONG_PASSWORD,
    AuthClient,
    EchoServer,
    auth_env,
    find_nginx,
    start_auth,
    start_echo,
)

NGINX = find_nginx()
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (`make tools` installs it)")
TEMPLATE = ROOT / "deploy" / "nginx" / "portal.conf"
PORTAL = "https://auth.example.com"
SESSION = "__Host-authgate_session"


@dataclass
class PortalStack:
    nginx: Server
    auth: Server
    app: EchoServer
    client: httpx.Client
    cookie: str
    email: str


def render(prefix: Path, port: int, auth_upstream: str, app_upstream: str) -> Path:
    text = TEMPLATE.read_text()
    for placeholder, value in (
        ("@LISTEN_PORT@", str(port)),
        ("@AUTH_UPSTREAM@", auth_upstream),
        ("@APP_UPSTREAM@", app_upstream),
        ("@PREFIX@", str(prefix)),
    ):
        text = text.replace(placeholder, value)
    assert not [word for word in text.split() if word.count("@") >= 2]
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def portal_sign_in(auth: Server, address: str) -> str:
    """Sign in through the portal's form as a browser does; the session cookie's value."""
    with httpx.Client(base_url=auth.url, timeout=30) as browser:
        page = browser.get("/portal/login")
        csrf_cookie = next(
            h.split(";")[0]
            for h in page.headers.get_list("set-cookie")
            if h.startswith("__Host-authgate_csrf=")
        )
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found
        response = browser.post(
            "/portal/login",
            data={"csrf": found.group(1), "email": address, "password": STRONG_PASSWORD},
            headers={"Origin": PORTAL, "Cookie": csrf_cookie},
        )
    assert response.status_code == 303, response.text
    session = [h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION + "=")]
    assert len(session) == 1
    return session[0].split(";")[0].split("=", 1)[1]


@pytest.fixture(scope="module")
def stack(mongo: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalStack]:
    assert NGINX is not None
    work = tmp_path_factory.mktemp("nginx-portal")
    env = auth_env(mongo.port, TRUST_PROXY="1", TRUSTED_PROXIES="127.0.0.1/32", DOMAIN_SERVER=PORTAL)
    app = start_echo()
    auth = start_auth(env, work)
    nginx = None
    try:
        api = AuthClient(auth.url)
        address = "browser@example.com"
        api.register(address)
        api.close()
        cookie = portal_sign_in(auth, address)
        port = free_port()
        prefix = work / "nginx"
        nginx = harness_start_nginx(
            NGINX, prefix, render(prefix, port, f"127.0.0.1:{auth.port}", app.address), port
        )
        with httpx.Client(base_url=nginx.url, timeout=30) as client:
            yield PortalStack(nginx, auth, app, client, cookie, address)
    finally:
        if nginx is not None:
            nginx.stop()
        auth.stop()
        app.stop()


def test_an_anonymous_browser_is_sent_to_the_portal(stack: PortalStack) -> None:
    stack.app.clear()
    response = stack.client.get(
        "/reports?year=2026&q=a b".replace(" ", "%20"), headers={"Accept": "text/html"}
    )
    assert response.status_code == 302
    original = f"http://127.0.0.1:{stack.nginx.port}/reports?year=2026&q=a%20b"
    assert response.headers["location"] == f"{PORTAL}/portal/login?rd={quote(original, safe='')}"
    assert stack.app.requests == []


def test_an_anonymous_api_client_gets_401(stack: PortalStack) -> None:
    stack.app.clear()
    response = stack.client.get("/reports", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.headers.get("www-authenticate", "").startswith("Bearer")
    assert stack.app.requests == []


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
    stack: PortalStack, cookie_header: str, kept: str
) -> None:
    stack.app.clear()
    cookie = cookie_header.format(session=f"{SESSION}={stack.cookie}")
    response = stack.client.get("/reports", headers={"Accept": "text/html", "Cookie": cookie})
    assert response.status_code == 200, response.text
    echoed = stack.app.requests[-1]
    assert echoed.values("X-Auth-Email") == [stack.email]
    assert echoed.values("X-Auth-Amr") == ["pwd"]
    assert len(echoed.values("X-Auth-Session-Id")) == 1
    sent = echoed.values("Cookie")
    assert sent == ([kept] if kept else [])  # an empty Cookie header is not sent at all
    assert all(stack.cookie not in value and SESSION not in value for value in sent)

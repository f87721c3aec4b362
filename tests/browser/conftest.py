"""The browser suite's stack, built once per test session: one Chromium, one moderation and one
auth service, an echo app, and the two real proxies in front of it (nginx running
deploy/nginx/portal.conf, Caddy running deploy/caddy/Caddyfile).

Names, as a browser sees them (Chromium resolves *.localhost to 127.0.0.1 and treats those
origins as secure contexts, so `Sec-Fetch-*` headers are sent over plain http; harness/browser.py):
  http://auth.example.localhost:<auth port>/portal/...   the portal, authgate itself
  http://app.example.localhost:<proxy port>/...         the protected app through the proxy
  http://app2.example.localhost:<proxy port>/...        a second app on another subdomain
AUTH_COOKIE_DOMAIN=example.localhost makes one sign-in valid for both apps. Plain http, so the
service runs in development mode (no `Secure` cookies, http redirect targets allowed).

Each test gets a fresh browser context (its own cookies) and a page; the page's final state
is saved as `artifacts/browser/<test>.png`. Every test is `e2e`.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page

from harness import (
    ROOT,
    ModerationHandle,
    Server,
    find_caddy,
    find_nginx,
    free_port,
    render_template,
    start_auth,
    start_caddy,
    start_moderation,
    start_nginx,
)
from harness.browser import ChromiumSession, find_chromium, launch_chromium, save_screenshot
from harness.oidc import (
    CLIENT_ID,
    CLIENT_SECRET,
    OidcProvider,
    client_metadata,
    provider_installed,
    start_oidc_provider,
)
from harness.smtp import SmtpServer, start_smtp
from tests.integration.support import AuthClient, EchoServer, auth_env, run_cli, start_echo

DOMAIN = "example.localhost"
PORTAL_HOST = f"auth.{DOMAIN}"
APP_HOSTS = (f"app.{DOMAIN}", f"app2.{DOMAIN}")
MFA_HOST = f"admin.{DOMAIN}"  # Caddy asks /forward-auth?mfa=required for this one
PROXIES = ("nginx", "caddy")
# The revocation bound the service is given, and how long a test waits for it (generous).
VERIFY_MAX_STALENESS_MS = 1000
REVOCATION_DEADLINE_S = 5.0
# The portal's OpenID button, and the role the provider's accounts need (harness/oidc.py's accounts).
OPENID_LABEL = "Sign in with Test IdP"
REQUIRED_ROLE = "chat-user"


@dataclass
class Proxy:
    name: str
    server: Server

    def url(self, host: str, path: str = "/") -> str:
        return f"http://{host}:{self.server.port}{path}"


@dataclass
class Idp:
    """The session's real OpenID provider, with the ports of the two auth services it knows
    (the stack's, and a second one's that refuses social registration)."""

    provider: OidcProvider
    auth_port: int
    closed_auth_port: int


@dataclass
class Stack:
    auth: Server
    moderation: ModerationHandle
    app: EchoServer
    smtp: SmtpServer
    env: dict[str, str]
    work: Path
    proxies: dict[str, Proxy]

    @property
    def portal(self) -> str:
        return f"http://{PORTAL_HOST}:{self.auth.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `authgate` admin CLI against this stack, as an operator runs it."""
        env = {**self.env, "MODERATION_ADMIN_KEY": self.moderation.admin_key}
        return run_cli(env, self.work / "cli", *args)

    def new_user(self, tag: str = "user") -> str:
        """A registered account (over the JSON API); its email address."""
        address = f"{tag}.{secrets.token_hex(4)}@example.com"  # .test is a reserved mail domain
        client = AuthClient(self.auth.url)
        try:
            client.register(address)
        finally:
            client.close()
        return address


def _required(tool: str, found: str | None) -> str:
    """The browser suite fails loudly without its tools: `make test` installs them first."""
    if found is None:
        pytest.fail(f"{tool} is not installed: run `make tools` (scripts/install_tools.sh)", pytrace=False)
    return found


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[ChromiumSession]:
    async with await launch_chromium(_required("chromium", find_chromium())) as session:
        yield session


def _start_nginx(work: Path, auth: Server, app: EchoServer) -> Server:
    nginx = _required("nginx", find_nginx())
    port = free_port()
    prefix = work / "nginx"
    values = {
        "@LISTEN_PORT@": str(port),
        "@AUTH_UPSTREAM@": f"127.0.0.1:{auth.port}",
        "@APP_UPSTREAM@": app.address,
        "@PREFIX@": str(prefix),
    }
    conf = render_template(ROOT / "deploy" / "nginx" / "portal.conf", values, prefix / "nginx.conf")
    return start_nginx(nginx, prefix, conf, port)


def _start_caddy(work: Path, auth: Server, app: EchoServer) -> Server:
    caddy = _required("caddy", find_caddy())
    port = free_port()
    env = {
        "AUTHGATE_UPSTREAM": f"127.0.0.1:{auth.port}",
        "APP_UPSTREAM": app.address,
        "APP_SITES": ", ".join(f"http://{host}:{port}" for host in APP_HOSTS),
        "MFA_SITES": f"http://{MFA_HOST}:{port}",
        "PORTAL_SITE": f"http://{PORTAL_HOST}:{port}",
        "CADDY_ADMIN": "off",
    }
    return start_caddy(caddy, work / "caddy", ROOT / "deploy" / "caddy" / "Caddyfile", port, env)


def _callback(port: int) -> str:
    return f"http://{PORTAL_HOST}:{port}/oauth/openid/callback"


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    """panva's oidc-provider, started once per session, its client allowed back to both services."""
    _required("oidc-provider", "node" if provider_installed() else None)
    auth_port, closed_port = free_port(), free_port()
    clients = client_metadata(_callback(auth_port))
    for client in clients:
        client["redirect_uris"].append(_callback(closed_port))
    provider = start_oidc_provider(clients, log_dir=tmp_path_factory.mktemp("oidc"))
    try:
        yield Idp(provider, auth_port, closed_port)
    finally:
        provider.stop()


def openid_env(idp: Idp) -> dict[str, str]:
    """OpenID sign-in at the portal (a confidential client with PKCE, a required role)."""
    return {
        "ALLOW_SOCIAL_LOGIN": "true",
        "ALLOW_SOCIAL_REGISTRATION": "true",
        "OPENID_CLIENT_ID": CLIENT_ID,
        "OPENID_CLIENT_SECRET": CLIENT_SECRET,
        "OPENID_ISSUER": idp.provider.issuer,
        "OPENID_USE_PKCE": "true",
        "OPENID_BUTTON_LABEL": OPENID_LABEL,
        "OPENID_REQUIRED_ROLE": REQUIRED_ROLE,
        "OPENID_REQUIRED_ROLE_PARAMETER_PATH": "roles",
        "OPENID_REQUIRED_ROLE_TOKEN_KIND": "id",
    }


@pytest.fixture(scope="session")
def stack(mongo: Server, idp: Idp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("browser")
    moderation = start_moderation(work)
    app = start_echo()
    smtp = start_smtp()
    auth_port = idp.auth_port
    env = auth_env(
        mongo.port,
        moderation,
        AUTHGATE_ENV="development",
        AUTH_PORT=str(auth_port),
        DOMAIN_SERVER=f"http://{PORTAL_HOST}:{auth_port}",
        AUTH_COOKIE_DOMAIN=DOMAIN,
        AUTH_REDIRECT_DOMAINS=f".{DOMAIN}",
        TRUST_PROXY="1",
        TRUSTED_PROXIES="127.0.0.1/32",
        VERIFY_MAX_STALENESS=str(VERIFY_MAX_STALENESS_MS),
        # Mail to a real SMTP server; without DOMAIN_CLIENT its links lead to the portal's pages.
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp.port),
        EMAIL_FROM="noreply@example.com",
        ALLOW_PASSWORD_RESET="true",
        # Accounts made over the API sign in at once; verification is its own scenario.
        ALLOW_UNVERIFIED_EMAIL_LOGIN="true",
        # The service runs this checkout's code (a worktree beside an editable install too).
        PYTHONPATH=str(ROOT),
        **openid_env(idp),
    )
    servers: list[Server] = [moderation.server]
    try:
        auth = start_auth(env, work)
        servers.append(auth)
        proxies = {"nginx": Proxy("nginx", _start_nginx(work, auth, app))}
        servers.append(proxies["nginx"].server)
        proxies["caddy"] = Proxy("caddy", _start_caddy(work, auth, app))
        servers.append(proxies["caddy"].server)
        yield Stack(auth, moderation, app, smtp, env, work, proxies)
    finally:
        for server in reversed(servers):
            server.stop()
        app.stop()
        smtp.stop()


@pytest.fixture(params=PROXIES)
def proxy(request: pytest.FixtureRequest, stack: Stack) -> Proxy:
    """Each scenario runs through real nginx and through real Caddy."""
    return stack.proxies[request.param]


@pytest.fixture
async def context(chromium: ChromiumSession) -> AsyncIterator[BrowserContext]:
    browser_context = await chromium.context()
    try:
        yield browser_context
    finally:
        await browser_context.close()


@pytest.fixture
async def page(context: BrowserContext, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page in a fresh context; its final state is saved as the test's screenshot."""
    browser_page = await context.new_page()
    yield browser_page
    await save_screenshot(browser_page, request.node.name)


@pytest.fixture(scope="session")
def closed_portal(mongo: Server, stack: Stack, idp: Idp) -> Iterator[str]:
    """A second auth service (no proxy) whose portal refuses social registration; its address.

    Started only by the tests that need it; same provider, same moderation, its own database."""
    port = idp.closed_auth_port
    env = auth_env(
        mongo.port,
        stack.moderation,
        AUTHGATE_ENV="development",
        AUTH_PORT=str(port),
        DOMAIN_SERVER=f"http://{PORTAL_HOST}:{port}",
        TRUST_PROXY="0",
        PYTHONPATH=str(ROOT),
        **{**openid_env(idp), "ALLOW_SOCIAL_REGISTRATION": "false"},
    )
    server = start_auth(env, stack.work / "closed")
    try:
        yield f"http://{PORTAL_HOST}:{port}"
    finally:
        server.stop()

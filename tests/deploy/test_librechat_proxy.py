"""deploy/librechat/: LibreChat behind authgate, with real nginx running librechat.conf.

LibreChat's own API checks only the JWT signature and expiry (passport-jwt), so
after a logout it keeps accepting the access token. The fix is configuration:
nginx asks authgate's /verify before any LibreChat API call. Here nginx runs the
shipped server block (upstream addresses and listen line swapped), in front of
real authgate auth and moderation processes on the Mongo-wire server, and a
stand-in for LibreChat's API that verifies bearers as LibreChat does and records
every request that reaches it.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml

from harness import ModerationHandle, Server, free_port, start_moderation, start_nginx, start_process
from tests.integration.support import STRONG_PASSWORD, auth_env, eventually_sync, find_nginx, start_auth

HERE = Path(__file__).resolve().parent
LIBRECHAT = HERE.parents[1] / "deploy" / "librechat"
CONF = LIBRECHAT / "librechat.conf"
COMPOSE = LIBRECHAT / "compose.yaml"
STANDIN = HERE / "fixtures" / "librechat_api_standin.py"
NGINX = find_nginx()
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (`make tools` installs it)")


def render(auth: str, librechat: str, port: int, prefix: Path) -> Path:
    """librechat.conf as shipped, only its upstreams and listen line changed, inside a minimal http {}."""
    text = CONF.read_text()
    for old, new in (
        ("server authgate-auth:3080;", f"server {auth};"),
        ("server librechat:3080;", f"server {librechat};"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
    ):
        assert text.count(old) == 1, f"{CONF} should contain `{old}` exactly once"
        text = text.replace(old, new)
    (prefix / "librechat.conf").write_text(text)
    temp = "".join(
        f"    {k}_temp_path {prefix}/{k}_temp;\n"
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
        f"events {{ worker_connections 256; }}\nhttp {{\n{temp}"
        f"    access_log {prefix}/access.log;\n    include {prefix}/librechat.conf;\n}}\n"
    )
    return conf


def start_standin(secret: str, log_dir: Path) -> Server:
    port = free_port()
    command = [sys.executable, str(STANDIN), str(port)]
    env = {"JWT_SECRET": secret, "PATH": "/usr/bin:/bin"}
    return start_process(command, port, log_dir / f"standin-{port}.log", env=env)


@dataclass
class Deployment:
    client: httpx.Client  # a browser's view: nginx only, with a cookie jar
    standin: Server
    moderation: ModerationHandle
    env: dict[str, str]

    def seen(self) -> list[dict[str, Any]]:
        """Requests that reached the LibreChat stand-in (asked directly, not through nginx)."""
        records: list[dict[str, Any]] = httpx.get(f"{self.standin.url}/__standin/seen", timeout=10).json()
        return records

    def signed_in(self, email: str) -> dict[str, Any]:
        body = {
            "name": "Lib Re",
            "email": email,
            "password": STRONG_PASSWORD,
            "confirm_password": STRONG_PASSWORD,
        }
        registered = self.client.post("/api/auth/register", json=body)
        assert registered.status_code == 200, registered.text
        login = self.client.post("/api/auth/login", json={"email": email, "password": STRONG_PASSWORD})
        assert login.status_code == 200, login.text
        answer: dict[str, Any] = login.json()
        return answer

    def api(self, token: str, path: str = "/api/convos") -> httpx.Response:
        return self.client.get(path, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def deployment(mongo: Server) -> Iterator[Deployment]:
    assert NGINX is not None
    work = Path(tempfile.mkdtemp(prefix="authgate-librechat-"))
    work.chmod(0o755)  # nginx workers may run as nobody when the tests run as root
    started: list[Server] = []
    moderation = start_moderation(work)
    started.append(moderation.server)
    try:
        env = auth_env(mongo.port, moderation, TRUST_PROXY="1", TRUSTED_PROXIES="127.0.0.1/32")
        auth = start_auth(env, work)
        started.append(auth)
        standin = start_standin(env["JWT_SECRET"], work)
        started.append(standin)
        port = free_port()
        conf = render(f"127.0.0.1:{auth.port}", f"127.0.0.1:{standin.port}", port, work)
        nginx = start_nginx(NGINX, work, conf, port)
        started.append(nginx)
        with httpx.Client(base_url=nginx.url, timeout=30) as client:
            yield Deployment(client, standin, moderation, env)
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


@needs_nginx
def test_logged_out_token_stops_at_the_proxy_and_never_reaches_librechat(deployment: Deployment) -> None:
    session = deployment.signed_in("logout@example.com")
    token = session["token"]
    assert deployment.api(token).status_code == 200
    reached = [r for r in deployment.seen() if r["authorization"] == f"Bearer {token}"]
    assert [r["accepted"] for r in reached] == [True]

    # The current user comes from authgate, not LibreChat.
    me = deployment.client.get("/api/user", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert len([r for r in deployment.seen() if r["path"] == "/api/user"]) == 0

    logout = deployment.client.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert logout.status_code == 200, logout.text

    def refused() -> httpx.Response | None:
        response = deployment.api(token)
        return response if response.status_code == 401 else None

    eventually_sync(refused, "the logged-out token refused at nginx", timeout=5)
    for path in ("/api/convos", "/api/messages/abc", "/api/user/terms", "/api/files"):
        assert deployment.api(token, path).status_code == 401, path
    reached = [r for r in deployment.seen() if r["authorization"] == f"Bearer {token}"]
    assert len(reached) == 1, f"the stand-in saw the revoked token after logout: {reached}"

    # The token is still good for LibreChat's own check: only the proxy stops it.
    # As jsonwebtoken does without an `audience` option: `aud` is not checked.
    payload = jwt.decode(
        token, deployment.env["JWT_SECRET"], algorithms=["HS256"], options={"verify_aud": False}
    )
    assert payload["id"] == session["user"]["id"]


@needs_nginx
def test_banned_user_gets_403_at_the_proxy(deployment: Deployment) -> None:
    session = deployment.signed_in("banned@example.com")
    token = session["token"]
    assert deployment.api(token).status_code == 200
    ban = {"subject": f"user:{session['user']['id']}", "reason": "spam", "duration_seconds": 600}
    admin = {"Authorization": f"Bearer {deployment.moderation.admin_key}"}
    created = httpx.post(f"{deployment.moderation.server.url}/v1/bans", json=ban, headers=admin, timeout=10)
    assert created.status_code == 201, created.text

    def refused() -> httpx.Response | None:
        response = deployment.api(token)
        return response if response.status_code == 403 else None

    response = eventually_sync(refused, "the banned user's token refused at nginx", timeout=10)
    assert int(response.headers["Retry-After"]) > 0
    reached = [r for r in deployment.seen() if r["authorization"] == f"Bearer {token}"]
    before_ban = len(reached)
    assert deployment.api(token).status_code == 403
    assert len([r for r in deployment.seen() if r["authorization"] == f"Bearer {token}"]) == before_ban


@needs_nginx
def test_public_pages_load_without_a_token(deployment: Deployment) -> None:
    """The login page must load: the web client, /api/config, /api/banner and /health pass unchecked."""
    for path in ("/", "/login", "/assets/index.js", "/api/config", "/api/banner", "/health"):
        response = deployment.client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text)
    # Every other LibreChat API call needs a live token, even one LibreChat would not check itself.
    for path in ("/api/convos", "/api/endpoints", "/api/share/", "/api/user/terms"):
        assert deployment.client.get(path).status_code == 401, path
    # A forged token never reaches LibreChat either.
    forged = jwt.encode({"id": "0" * 24, "exp": 4102444800}, "x" * 64, algorithm="HS256")
    assert deployment.api(forged).status_code == 401
    assert not [r for r in deployment.seen() if r["authorization"] == f"Bearer {forged}"]


@needs_nginx
def test_auth_routes_go_to_authgate(deployment: Deployment) -> None:
    before = len(deployment.seen())
    deployment.client.post("/api/auth/refresh")
    deployment.client.get("/api/user")
    # E-mail verification is authgate's too, and needs no token (the link comes from a mail).
    resend = deployment.client.post("/api/user/verify/resend", json={"email": "someone@example.com"})
    assert resend.status_code == 200 and resend.json()["status"] == "success", resend.text
    # Social sign-in is authgate's: with ALLOW_SOCIAL_LOGIN off, its own refusal, not LibreChat's.
    oauth = deployment.client.get("/oauth/google", headers={"Accept": "application/json"})
    assert oauth.status_code == 403 and oauth.json()["code"] == "social_login_disabled", oauth.text
    paths = [r["path"] for r in deployment.seen()[before:]]
    mine = ("/api/auth/", "/oauth/", "/api/user/verify")
    assert not [p for p in paths if p.startswith(mine) or p == "/api/user"], paths


# ---- the compose file agrees with the nginx file -----------------------------------------


def _upstreams() -> dict[str, str]:
    """nginx upstream name -> `host:port` of its server line."""
    text = CONF.read_text()
    return dict(re.findall(r"upstream\s+(\w+)\s*\{\s*server\s+([\w.-]+:\d+);", text))


def test_compose_is_consistent_with_the_nginx_file() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"nginx", "authgate-auth", "authgate-moderation", "librechat", "mongodb"} <= set(services)

    upstreams = _upstreams()
    assert upstreams == {"authgate_auth": "authgate-auth:3080", "librechat": "librechat:3080"}
    assert services["authgate-auth"]["environment"]["AUTH_PORT"] == "3080"
    assert services["librechat"]["environment"]["PORT"] == "3080"
    assert any(v.startswith("./librechat.conf:") for v in services["nginx"]["volumes"])
    # Only nginx is reachable from outside: LibreChat's API never without /verify.
    assert [name for name, svc in services.items() if svc.get("ports")] == ["nginx"]

    auth_env_ = services["authgate-auth"]["environment"]
    lc_env = services["librechat"]["environment"]
    for name in ("JWT_SECRET", "JWT_REFRESH_SECRET", "MONGO_URI", "DOMAIN_CLIENT", "DOMAIN_SERVER"):
        assert auth_env_[name] == lc_env[name], name
    assert auth_env_["TRUST_PROXY"] == "1"
    mod_port = services["authgate-moderation"]["environment"]["MODERATION_PORT"]
    assert auth_env_["MODERATION_URL"] == f"http://authgate-moderation:{mod_port}"
    # The report key auth uses is the one moderation accepts for the auth client.
    assert "${MODERATION_REPORT_KEY" in auth_env_["MODERATION_API_KEY"]
    assert "auth:" in services["authgate-moderation"]["environment"]["MODERATION_API_KEYS"]
    assert "${MODERATION_REPORT_KEY}" in services["authgate-moderation"]["environment"]["MODERATION_API_KEYS"]
    # nginx and authgate agree on who the trusted proxy is: the edge subnet.
    subnet = compose["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert auth_env_["TRUSTED_PROXIES"] == subnet
    assert "edge" in services["nginx"]["networks"] and "edge" in services["authgate-auth"]["networks"]


def test_routing_in_the_nginx_file() -> None:
    """Which prefix goes where, and which LibreChat locations are checked."""
    text = CONF.read_text()
    blocks = dict(re.findall(r"\n    location ([^{]+?) \{(.*?)\n    \}", text, re.S))
    assert "proxy_pass http://authgate_auth;" in blocks["/api/auth/"]
    assert "proxy_pass http://authgate_auth;" in blocks["= /api/user"]
    assert "proxy_pass http://authgate_auth;" in blocks["/oauth/"]
    # The browser portal is authgate's; mail links stay LibreChat's pages.
    assert "proxy_pass http://authgate_auth;" in blocks["/portal/"]
    assert "auth_request /_authgate_verify;" in blocks["/api/"]
    assert "proxy_pass http://librechat;" in blocks["/api/"]
    for public in ("= /api/config", "= /api/banner", "/"):
        assert "proxy_pass http://librechat;" in blocks[public]
        assert "auth_request" not in blocks[public]

"""End to end through a real nginx running deploy/nginx/nginx.conf in front of an echo upstream.

Two stacks share the rendered template:
- `stack`: nginx -> the real auth service (a subprocess on its own database) and an
  upstream that echoes the headers it received;
- `probe`: nginx -> a recording stand-in for /verify, to see exactly what nginx sends
  to the auth service (path, X-Forwarded-For, cleared headers) and how it maps each
  answer (2xx passes; 401/403 go to the client; anything else is a 500, never a pass).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness import Server
from services.auth.settings import load_settings
from shared.config import Env
from tests.integration.support import (
    IDENTITY_HEADERS,
    REVOCATION_DEADLINE_S,
    STRONG_PASSWORD,
    AuthClient,
    EchoServer,
    auth_env,
    eventually_sync,
    find_nginx,
    run_cli,
    start_auth,
    start_echo,
    start_nginx,
)

NGINX = find_nginx()
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (`make tools` installs it)")

FORGED = "6.6.6.6"
FORGED_IDENTITY = {
    "X-Auth-User-Id": "000000000000000000000000",
    "X-Auth-Role": "ADMIN",
    "X-Auth-Email": "forged@example.com",
    "X-Auth-Username": "root",
    "X-Auth-Session-Id": "forged-session",
    "X-Auth-Required-Roles": "",
}


@dataclass
class Stack:
    nginx: Server
    auth: Server
    app: EchoServer
    env: dict[str, str]
    api: AuthClient
    client: httpx.Client
    user: dict[str, object]
    admin: dict[str, object]

    def get(self, path: str, token: object | None = None, **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.get(path, headers=headers)


def _nginx() -> str:
    assert NGINX is not None
    return NGINX


@pytest.fixture(scope="module")
def stack(mongo: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("nginx-stack")
    env = auth_env(mongo.port, TRUST_PROXY="1", TRUSTED_PROXIES="127.0.0.1/32")
    app = start_echo()
    auth: Server | None = None
    api: AuthClient | None = None
    nginx = None
    client = None
    try:
        auth = start_auth(env, work)
        api = AuthClient(auth.url)
        nginx = start_nginx(_nginx(), work / "nginx", f"127.0.0.1:{auth.port}", app.address)
        client = httpx.Client(base_url=nginx.url, timeout=30)
        user = api.user("user@example.com", username="alice")
        run_cli(
            env,
            work / "cli",
            "create-user",
            "admin@example.com",
            "--role",
            "ADMIN",
            "--password-stdin",
            stdin=STRONG_PASSWORD + "\n",
        )
        admin = api.login("admin@example.com")
        yield Stack(nginx, auth, app, env, api, client, user, admin)
    finally:
        if client is not None:
            client.close()
        if api is not None:
            api.close()
        if nginx is not None:
            nginx.stop()
        if auth is not None:
            auth.stop()
        app.stop()


@dataclass
class Probe:
    nginx: Server
    verify: EchoServer
    app: EchoServer
    client: httpx.Client


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    work = tmp_path_factory.mktemp("nginx-probe")
    verify = start_echo()
    app = start_echo()
    nginx = None
    try:
        nginx = start_nginx(_nginx(), work / "nginx", verify.address, app.address)
        with httpx.Client(base_url=nginx.url, timeout=30) as client:
            yield Probe(nginx, verify, app, client)
    finally:
        if nginx is not None:
            nginx.stop()
        verify.stop()
        app.stop()


@pytest.fixture
def fresh_probe(probe: Probe) -> Probe:
    probe.verify.clear()
    probe.app.clear()
    probe.verify.status = 200
    probe.verify.extra_headers = [("X-Auth-User-Id", "u1"), ("X-Auth-Role", "USER")]
    return probe


def _identity(stack: Stack, token_body: dict[str, object]) -> dict[str, str]:
    user = token_body["user"]
    assert isinstance(user, dict)
    return {"x-auth-user-id": str(user["id"]), "x-auth-role": str(user["role"])}


def _last_upstream_headers(stack: Stack) -> list[tuple[str, str]]:
    assert stack.app.requests, "the upstream received nothing"
    return stack.app.requests[-1].headers


# The real auth service behind nginx ------------------------------------------------------


def test_valid_token_reaches_upstream_with_identity_headers(stack: Stack) -> None:
    stack.app.clear()
    response = stack.get("/api/things?x=1", stack.user["token"])
    assert response.status_code == 200, response.text
    echoed = stack.app.requests[-1]
    assert echoed.path == "/api/things?x=1"
    user = stack.user["user"]
    assert isinstance(user, dict)
    assert echoed.values("X-Auth-User-Id") == [user["id"]]
    assert echoed.values("X-Auth-Email") == ["user@example.com"]
    assert echoed.values("X-Auth-Username") == ["alice"]
    assert echoed.values("X-Auth-Role") == ["USER"]
    session_ids = echoed.values("X-Auth-Session-Id")
    assert len(session_ids) == 1 and session_ids[0]
    # The bearer token itself still reaches the app (LibreChat's API reads it).
    assert echoed.values("Authorization") == [f"Bearer {stack.user['token']}"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer a.b.c"],
    ids=["none", "empty-bearer", "garbage", "basic", "bad-jwt"],
)
def test_no_valid_token_is_401_and_never_reaches_upstream(stack: Stack, authorization: str | None) -> None:
    stack.app.clear()
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = stack.client.get("/api/things", headers=headers)
    assert response.status_code == 401
    assert response.headers.get("www-authenticate", "").startswith("Bearer")
    assert stack.app.requests == []


def test_token_in_query_string_is_not_accepted(stack: Stack) -> None:
    stack.app.clear()
    response = stack.client.get(f"/api/things?access_token={stack.user['token']}")
    assert response.status_code == 401
    assert stack.app.requests == []


def test_role_restricted_location_refuses_user_and_admits_admin(stack: Stack) -> None:
    stack.app.clear()
    # A USER is refused, also when the client adds its own `roles` or forges its role.
    for path in ("/admin/users", "/admin/users?roles=USER", "/admin/users?roles=USER&roles=ADMIN"):
        response = stack.get(path, stack.user["token"], **{"X-Auth-Role": "ADMIN"})
        assert response.status_code == 403, (path, response.text)
    assert stack.app.requests == []

    response = stack.get("/admin/users", stack.admin["token"])
    assert response.status_code == 200, response.text
    echoed = stack.app.requests[-1]
    assert echoed.path == "/admin/users"
    assert echoed.values("X-Auth-Role") == ["ADMIN"]
    assert echoed.values("X-Auth-Email") == ["admin@example.com"]

    # The generic location admits both.
    assert stack.get("/anything", stack.admin["token"]).status_code == 200
    assert stack.get("/anything", stack.user["token"]).status_code == 200


def test_forged_identity_headers_never_reach_upstream(stack: Stack) -> None:
    stack.app.clear()
    forged = {**FORGED_IDENTITY, "X-Auth-User": "root", "X-Auth-Roles": "ADMIN"}
    response = stack.get("/api/things", stack.user["token"], **forged)
    assert response.status_code == 200
    headers = _last_upstream_headers(stack)
    user = stack.user["user"]
    assert isinstance(user, dict)
    values = {name: [v for k, v in headers if k.lower() == name] for name in IDENTITY_HEADERS}
    assert values["x-auth-user-id"] == [user["id"]]
    assert values["x-auth-role"] == ["USER"]
    assert values["x-auth-email"] == ["user@example.com"]
    assert values["x-auth-username"] == ["alice"]
    assert values["x-auth-session-id"] != ["forged-session"] and len(values["x-auth-session-id"]) == 1
    for name in ("x-auth-required-roles", "x-auth-user", "x-auth-roles"):
        assert not [v for k, v in headers if k.lower() == name], name
    # No forged value survives under any header name.
    forged_values = {"000000000000000000000000", "forged@example.com", "root", "forged-session"}
    assert not forged_values & {v for _, v in headers}


def test_forged_header_with_empty_identity_value_is_removed(stack: Stack) -> None:
    """A user with no username: /verify sends an empty X-Auth-Username; the client's never passes."""
    body = stack.api.user("nousername@example.com")
    stack.app.clear()
    response = stack.get("/api/things", body["token"], **{"X-Auth-Username": "root"})
    assert response.status_code == 200
    echoed = stack.app.requests[-1]
    assert echoed.values("X-Auth-Username") in ([], [""])


def test_underscore_header_names_are_dropped(stack: Stack) -> None:
    """Some frameworks read X_Auth_User_Id as X-Auth-User-Id: nginx must not forward it."""
    stack.app.clear()
    response = stack.client.get(
        "/api/things",
        headers={
            "Authorization": f"Bearer {stack.user['token']}",
            "X_Auth_User_Id": "root",
            "X_Auth_Role": "ADMIN",
        },
    )
    assert response.status_code == 200
    names = {name.lower() for name, _ in _last_upstream_headers(stack)}
    assert not {n for n in names if "_" in n}


def test_forged_x_forwarded_for_changes_nothing(stack: Stack) -> None:
    baseline = stack.get("/api/things", stack.user["token"])
    stack.app.clear()
    forged = stack.get("/api/things", stack.user["token"], **{"X-Forwarded-For": FORGED})
    assert forged.status_code == baseline.status_code == 200
    echoed = stack.app.requests[-1]
    assert echoed.values("X-Forwarded-For") == ["127.0.0.1"]
    assert echoed.values("X-Auth-User-Id") == [_identity(stack, stack.user)["x-auth-user-id"]]
    # Also refused the same way without a token.
    stack.app.clear()
    refused = stack.client.get("/api/things", headers={"X-Forwarded-For": FORGED})
    assert refused.status_code == 401
    assert stack.app.requests == []


def test_logout_is_refused_within_the_bound(stack: Stack) -> None:
    body = stack.api.login("user@example.com")
    token = body["token"]
    assert stack.get("/api/things", token).status_code == 200
    stack.api.logout(token)
    eventually_sync(
        lambda: stack.get("/api/things", token).status_code == 401,
        "nginx refusing a logged-out token",
        timeout=REVOCATION_DEADLINE_S,
    )
    # Still refused afterwards, and the other session of the same user is untouched.
    assert stack.get("/api/things", token).status_code == 401
    assert stack.get("/api/things", stack.user["token"]).status_code == 200


def test_stopped_auth_service_fails_closed(mongo: Server, tmp_path: Path) -> None:
    env = auth_env(mongo.port, TRUST_PROXY="1", TRUSTED_PROXIES="127.0.0.1/32")
    app = start_echo()
    auth: Server | None = None
    api: AuthClient | None = None
    nginx = None
    try:
        auth = start_auth(env, tmp_path)
        api = AuthClient(auth.url)
        nginx = start_nginx(_nginx(), tmp_path / "nginx", f"127.0.0.1:{auth.port}", app.address)
        token = api.user("down@example.com")["token"]
        with httpx.Client(base_url=nginx.url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/api/things", headers=headers).status_code == 200
            auth.stop()
            app.clear()
            for path in ("/api/things", "/admin/users"):
                response = client.get(path, headers=headers)
                assert 500 <= response.status_code < 600, response.status_code
            assert app.requests == []
    finally:
        if api is not None:
            api.close()
        if nginx is not None:
            nginx.stop()
        if auth is not None:
            auth.stop()
        app.stop()


# What nginx sends to /verify, and how it maps the answers ------------------------------------


CLIENT_DESCRIBES_ITSELF = {
    "Authorization": "Bearer tok",
    "X-Forwarded-For": FORGED,
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Uri": "/admin/",
    "X-Forwarded-Method": "GET",
    "X-Auth-Required-Roles": "USER",
    "X-Original-URL": "http://evil.example/",
    "X-Original-Method": "GET",
    "Cookie": "refreshToken=abc",
}


@pytest.mark.parametrize(
    ("client_path", "verify_path"),
    [
        ("/api/things?roles=ADMIN&q=1", "/verify"),
        ("/admin/x?roles=USER&roles=ADMIN", "/verify?roles=ADMIN"),
    ],
    ids=["any-user", "admin-only"],
)
def test_auth_subrequest_shape(fresh_probe: Probe, client_path: str, verify_path: str) -> None:
    probe = fresh_probe
    response = probe.client.post(client_path, content=b"secret body", headers=CLIENT_DESCRIBES_ITSELF)
    assert response.status_code == 200
    check = probe.verify.requests[-1]
    # /verify's own URL as the location configures it; the client's query never reaches it.
    assert check.method == "GET"
    assert check.path == verify_path
    assert check.body == b""
    assert check.values("Content-Length") in ([], ["0"])
    assert check.values("Authorization") == ["Bearer tok"]
    # What is being accessed, described by nginx, not by the client.
    assert check.values("X-Original-Method") == ["POST"]
    original = check.values("X-Original-URL")
    assert len(original) == 1 and original[0].endswith(client_path)
    assert "evil.example" not in original[0]
    # The client address is nginx's $remote_addr, whatever the client claimed.
    assert check.values("X-Forwarded-For") == ["127.0.0.1"]
    for cleared in ("X-Forwarded-Host", "X-Forwarded-Uri", "X-Forwarded-Method", "X-Auth-Required-Roles"):
        assert check.values(cleared) == [], cleared
    # The body went to the application only, with nginx's own X-Forwarded-For.
    upstream = probe.app.requests[-1]
    assert upstream.body == b"secret body"
    assert upstream.values("X-Forwarded-For") == ["127.0.0.1"]


def test_auth_service_sees_nginx_peer_not_forged_address(fresh_probe: Probe, tmp_path: Path) -> None:
    """With TRUST_PROXY=1 and nginx trusted, the client IP authgate computes is nginx's $remote_addr."""
    probe = fresh_probe
    probe.client.get("/api/things", headers={"Authorization": "Bearer tok", "X-Forwarded-For": FORGED})
    forwarded = probe.verify.requests[-1].values("X-Forwarded-For")
    settings = load_settings(
        Env(
            [
                {
                    "AUTHGATE_ENV": "test",
                    "JWT_SECRET": "0123456789abcdef" * 4,
                    "JWT_REFRESH_SECRET": "fedcba9876543210" * 4,
                    "TOTP_ENCRYPTION_KEY": "0f1e2d3c4b5a6978" * 4,
                    "MONGO_URI": "mongodb://127.0.0.1:1/x",
                    "MODERATION_URL": "http://127.0.0.1:9",
                    "MODERATION_API_KEY": "k" * 32,
                    "TRUST_PROXY": "1",
                    "TRUSTED_PROXIES": "127.0.0.1/32",
                }
            ]
        ),
        root=tmp_path,
    )
    resolved = settings.client_ip.resolve("127.0.0.1", forwarded)
    assert resolved == "127.0.0.1"
    assert ipaddress.ip_address(resolved) != ipaddress.ip_address(FORGED)


@pytest.mark.parametrize("status", [500, 502, 503, 404, 302, 400])
def test_any_non_2xx_non_401_403_answer_is_an_error_never_a_pass(fresh_probe: Probe, status: int) -> None:
    probe = fresh_probe
    probe.verify.status = status
    probe.verify.extra_headers = [("X-Auth-User-Id", "u1"), ("Location", "http://elsewhere/")]
    response = probe.client.get("/api/things", headers={"Authorization": "Bearer tok"})
    assert response.status_code == 500
    assert probe.app.requests == []


def test_ban_answer_reaches_the_client_with_retry_after(fresh_probe: Probe) -> None:
    probe = fresh_probe
    probe.verify.status = 403
    probe.verify.extra_headers = [("Retry-After", "120")]
    response = probe.client.get("/api/things", headers={"Authorization": "Bearer tok"})
    assert response.status_code == 403
    assert response.headers.get("retry-after") == "120"
    assert probe.app.requests == []


def test_401_carries_www_authenticate(fresh_probe: Probe) -> None:
    probe = fresh_probe
    probe.verify.status = 401
    probe.verify.extra_headers = [("WWW-Authenticate", 'Bearer error="invalid_token"')]
    response = probe.client.get("/api/things")
    assert response.status_code == 401
    assert response.headers.get("www-authenticate") == 'Bearer error="invalid_token"'
    assert probe.app.requests == []

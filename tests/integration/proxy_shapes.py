"""/verify called exactly as Traefik ForwardAuth and Envoy's HTTP ext_authz call it, in-process.

Traefik: always `GET <address>` (the configured `/verify` or `/verify?roles=ADMIN`) with the
client's Authorization and X-Forwarded-Method/-Proto/-Host/-Uri/-For describing the request.
Envoy: the client's own method, `path_prefix` + the client's path and query
(`/verify/api/x?roles=...`, whose `roles` must be ignored), no body (Content-Length: 0), and
the required roles in `X-Auth-Required-Roles`, a header only the proxy sets.

The app runs in-process over the real store; the "proxy" is the ASGI client's peer address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from harness import Server
from harness.inprocess import InProcessApp
from tests.integration.support import IDENTITY_HEADERS, running_app

PROXY_PEER = "10.0.0.2"  # Traefik / Envoy, inside TRUSTED_PROXIES
OUTSIDER_PEER = "203.0.113.9"  # anyone else who can reach the auth service
CLIENT_IP = "198.51.100.7"
TRUSTED = {"TRUST_PROXY": "1", "TRUSTED_PROXIES": "10.0.0.0/8"}
ENVOY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass
class Shapes:
    app: InProcessApp
    proxy: httpx.AsyncClient
    user: dict[str, Any]
    admin: dict[str, Any]

    @property
    def secret(self) -> str:
        return self.app.ctx.settings.jwt_secret

    async def traefik(
        self,
        token: str | None,
        address: str = "/verify",
        *,
        method: str = "GET",
        uri: str = "/api/things?page=2",
        client_ip: str = CLIENT_IP,
        client: httpx.AsyncClient | None = None,
        authorization: str | None = None,
    ) -> httpx.Response:
        """Traefik's forward-auth request: always GET to the configured address."""
        headers = {
            "X-Forwarded-Method": method,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.example.com",
            "X-Forwarded-Uri": uri,
            "X-Forwarded-For": client_ip,
            "X-Request-Id": "traefik-req-1",
            "Accept-Encoding": "gzip",
        }
        if authorization is not None:
            headers["Authorization"] = authorization
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await (client or self.proxy).get(address, headers=headers)

    async def envoy(
        self,
        token: str | None,
        client_path: str = "/api/x",
        *,
        method: str = "POST",
        required: str | None = None,
    ) -> httpx.Response:
        """Envoy's ext_authz HTTP request: the client's method, /verify + the client's path and query."""
        headers = {
            "Host": "app.example.com",
            "Content-Length": "0",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": CLIENT_IP,
            "X-Request-Id": "3f1c2a4e-envoy",
            "X-Envoy-Expected-Rq-Timeout-Ms": "500",
            "X-Envoy-Internal": "true",
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if required is not None:
            headers["X-Auth-Required-Roles"] = required
        return await self.proxy.request(method, "/verify" + client_path, headers=headers)


@pytest.fixture(scope="module")
async def shapes(mongo: Server, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shapes]:
    root = tmp_path_factory.mktemp("proxy-shapes")
    async with running_app(mongo.port, root, **TRUSTED) as app:
        user = await app.user("user@example.com")
        admin = await app.user("admin@example.com", role="ADMIN")
        yield Shapes(app, app.new_client(PROXY_PEER), user, admin)


def assert_allowed(response: httpx.Response, body: dict[str, Any]) -> None:
    assert response.status_code == 200, response.text
    user = body["user"]
    assert response.headers["x-auth-user-id"] == user["id"]
    assert response.headers["x-auth-email"] == user["email"]
    assert response.headers["x-auth-role"] == user["role"]
    assert response.headers["x-auth-session-id"]
    assert "x-auth-username" in response.headers
    assert response.headers["cache-control"] == "no-store"


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    for name in IDENTITY_HEADERS:
        assert name not in response.headers


def assert_forbidden(response: httpx.Response, code: str = "forbidden") -> None:
    assert response.status_code == 403, response.text
    assert response.json()["code"] == code
    for name in IDENTITY_HEADERS:
        assert name not in response.headers

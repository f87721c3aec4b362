"""The auth app in-process: its lifespan running, its store a real server, requests through
httpx's ASGI transport from any peer address (no socket, no proxy binary)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from starlette.applications import Starlette

from harness.accounts import STRONG_PASSWORD, registration
from services.auth.app import create_app
from services.auth.context import AuthContext
from services.auth.settings import AuthSettings

CLIENT_IP = "203.0.113.10"
# HTTPS only tells the cookie jar the connection is secure, so `Secure` cookies round-trip.
BASE_URL = "https://auth.test"


class InProcessApp:
    """One running app; `client` is the default client, `new_client` opens more (closed with it)."""

    def __init__(self, app: Starlette, peer: str = CLIENT_IP, base_url: str = BASE_URL) -> None:
        self.app = app
        self._base_url = base_url
        self._clients: list[httpx.AsyncClient] = []
        self.client = self.new_client(peer)

    @property
    def ctx(self) -> AuthContext:
        context: AuthContext = self.app.state.ctx
        return context

    @property
    def settings(self) -> AuthSettings:
        return self.ctx.settings

    def collection(self, name: str) -> Any:
        """A raw collection of this app's database (`users`, `auth_sessions`, `auth_audit`, ...)."""
        return self.ctx.store.db.get_collection(name)

    def new_client(
        self, peer: str = CLIENT_IP, headers: Mapping[str, str] | None = None, base_url: str | None = None
    ) -> httpx.AsyncClient:
        """A client (it keeps cookies, as a browser does) whose requests come from `peer`."""
        transport = httpx.ASGITransport(app=self.app, client=(peer, 40000))
        client = httpx.AsyncClient(
            transport=transport, base_url=base_url or self._base_url, headers=dict(headers or {})
        )
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    # Requests most tests make ---------------------------------------------------------------

    async def register(self, email: str, password: str = STRONG_PASSWORD, **extra: Any) -> httpx.Response:
        return await self.client.post("/api/auth/register", json={**registration(email, password), **extra})

    async def login(self, email: str, password: str = STRONG_PASSWORD, **extra: Any) -> httpx.Response:
        return await self.client.post("/api/auth/login", json={"email": email, "password": password, **extra})

    async def login_body(self, email: str, password: str = STRONG_PASSWORD, **headers: str) -> dict[str, Any]:
        """Log in as a service client (refresh token in the body); assert success."""
        response = await self.client.post(
            "/api/auth/login",
            json={"email": email, "password": password, "refresh_token_in_body": True},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.client.post("/api/auth/refresh", json={"refresh_token": refresh_token})

    async def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return await self.client.get(path, headers=headers)

    async def user(self, email: str, password: str = STRONG_PASSWORD, role: str = "USER") -> dict[str, Any]:
        """Register (and promote), then log in as a service client: the token body."""
        response = await self.register(email, password)
        assert response.status_code == 200, response.text
        if role != "USER":
            user = await self.ctx.accounts.find_by_email(email)
            assert user is not None
            await self.ctx.accounts.set_role(user, role)
        return await self.login_body(email, password)


@contextlib.asynccontextmanager
async def running_app(
    settings: AuthSettings, peer: str = CLIENT_IP, base_url: str = BASE_URL
) -> AsyncIterator[InProcessApp]:
    """`create_app(settings)` with its lifespan running (store, revocation poller, ban feed)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        running = InProcessApp(app, peer, base_url)
        try:
            yield running
        finally:
            await running.aclose()

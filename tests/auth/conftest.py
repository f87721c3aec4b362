"""Auth-service fixtures: settings built from a dict, an in-process app over a real Mongo-wire server."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from services.auth.app import create_app
from services.auth.context import AuthContext
from services.auth.settings import AuthSettings, load_settings
from shared.config import Env
from tests.harness import Server, mongo_uri

_db_counter = itertools.count()
STRONG_PASSWORD = "correct horse battery staple zebra"


def base_env(mongo_port: int) -> dict[str, str]:
    return {
        "AUTHGATE_ENV": "test",
        "JWT_SECRET": secrets.token_hex(32),
        "JWT_REFRESH_SECRET": secrets.token_hex(32),
        "MONGO_URI": mongo_uri(mongo_port, f"auth_{next(_db_counter)}_{secrets.token_hex(3)}"),
        "ALLOW_REGISTRATION": "true",
        "MONGO_TIMEOUT": "2000",
    }


@pytest.fixture
def settings_factory(mongo: Server, tmp_path: Path) -> Callable[..., AuthSettings]:
    def make(**overrides: str) -> AuthSettings:
        env = Env([overrides, base_env(mongo.port)])
        return load_settings(env, root=tmp_path)

    return make


class AuthApp:
    """An app plus a client that talks to it in-process; the store is the real server."""

    def __init__(self, app: Starlette, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def ctx(self) -> AuthContext:
        context: AuthContext = self.app.state.ctx
        return context

    async def register(self, email: str, password: str = STRONG_PASSWORD, **extra: Any) -> httpx.Response:
        body = {"name": "Test User", "email": email, "password": password, "confirm_password": password, **extra}
        return await self.client.post("/api/auth/register", json=body)

    async def login(self, email: str, password: str = STRONG_PASSWORD, **extra: Any) -> httpx.Response:
        return await self.client.post("/api/auth/login", json={"email": email, "password": password, **extra})

    async def user(self, email: str, password: str = STRONG_PASSWORD) -> dict[str, Any]:
        """Register and log in; return the token response body plus the refresh token."""
        response = await self.register(email, password)
        assert response.status_code == 200, response.text
        response = await self.login(email, password, refresh_token_in_body=True)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def app_factory(settings_factory: Callable[..., AuthSettings]) -> Callable[..., Any]:
    import contextlib

    @contextlib.asynccontextmanager
    async def make(**overrides: str) -> AsyncIterator[AuthApp]:
        app = create_app(settings_factory(**overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
                yield AuthApp(app, client)

    return make


@pytest.fixture
async def auth(app_factory: Callable[..., Any]) -> AsyncIterator[AuthApp]:
    async with app_factory() as running:
        yield running

"""Auth-service fixtures: settings built from a dict, an in-process app over a real Mongo-wire server.

The in-process client talks HTTPS to the app (no TLS is involved: the scheme only
tells the cookie jar the connection is secure), so `Secure` cookies round-trip
exactly as they do in a browser. `auth_service` runs `python -m services.auth` as
a real process on a free port for the tests that need uvicorn itself.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from services.auth.app import create_app
from services.auth.context import AuthContext
from services.auth.settings import AuthSettings, load_settings
from services.auth.store import Document
from shared.config import Env
from tests.harness import Server, clean_env, free_port, mongo_uri, shared_moderation, wait_port

_db_counter = itertools.count()
STRONG_PASSWORD = "correct horse battery staple zebra"
CLIENT_IP = "203.0.113.10"


def registration(email: str, password: str = STRONG_PASSWORD, name: str = "Test User") -> dict[str, str]:
    """A register body with matching passwords."""
    return {"name": name, "email": email, "password": password, "confirm_password": password}


def base_env(mongo_port: int) -> dict[str, str]:
    return {
        "AUTHGATE_ENV": "test",
        "JWT_SECRET": secrets.token_hex(32),
        "JWT_REFRESH_SECRET": secrets.token_hex(32),
        "MONGO_URI": mongo_uri(mongo_port, f"auth_{next(_db_counter)}_{secrets.token_hex(3)}"),
        "ALLOW_REGISTRATION": "true",
        "MONGO_TIMEOUT": "2000",
        **shared_moderation().auth_env(),
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

    @property
    def settings(self) -> AuthSettings:
        return self.ctx.settings

    def collection(self, name: str) -> Any:
        """A raw collection of this test's database (`users`, `auth_sessions`, `auth_audit`, ...)."""
        return self.ctx.store.db.get_collection(name)

    async def find_user(self, email: str) -> Document | None:
        found: Document | None = await self.collection("users").find_one({"email": email})
        return found

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

    async def user(self, email: str, password: str = STRONG_PASSWORD) -> dict[str, Any]:
        """Register and log in; return the token response body plus the refresh token."""
        response = await self.register(email, password)
        assert response.status_code == 200, response.text
        return await self.login_body(email, password)


@pytest.fixture
def app_factory(settings_factory: Callable[..., AuthSettings]) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def make(**overrides: str) -> AsyncIterator[AuthApp]:
        app = create_app(settings_factory(**overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=(CLIENT_IP, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="https://auth.test") as client:
                yield AuthApp(app, client)

    return make


@pytest.fixture
async def auth(app_factory: Callable[..., Any]) -> AsyncIterator[AuthApp]:
    async with app_factory() as running:
        yield running


@pytest.fixture
def auth_service(mongo: Server, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start `python -m services.auth` on a free port, in a scratch working directory.

    The working directory is the service's root for `.env` files and generated
    secrets, so a developer's own `data/secrets.env` never leaks into a test.
    """
    started: list[Server] = []

    def start(cwd: Path | None = None, **overrides: str) -> Server:
        port = free_port()
        root = cwd or tmp_path / f"service-{port}"
        root.mkdir(parents=True, exist_ok=True)
        env = clean_env(
            {
                **base_env(mongo.port),
                "AUTH_HOST": "127.0.0.1",
                "AUTH_PORT": str(port),
                "AUTH_MANAGEMENT_PORT": str(free_port()),
                **overrides,
            }
        )
        log_path = tmp_path / f"auth-{port}.log"
        handle = log_path.open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.auth"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
        )
        handle.close()
        server = Server(proc, port, log_path)
        started.append(server)
        try:
            wait_port(port, 30, proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"auth service did not start: {exc}\n{server.log()}") from None
        return server

    yield start
    for server in started:
        server.stop()

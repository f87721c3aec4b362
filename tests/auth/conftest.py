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
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import STRONG_PASSWORD, Server, clean_env, mongo_uri, registration, shared_moderation, start_auth
from harness.inprocess import CLIENT_IP, InProcessApp
from harness.smtp import SmtpServer, start_smtp
from services.auth.app import create_app
from services.auth.settings import AuthSettings, load_settings
from services.auth.store import Document, Store
from shared.config import Env

# Re-exported: the auth tests import these from here.
__all__ = ["CLIENT_IP", "STRONG_PASSWORD", "AuthApp", "base_env", "clean_env", "registration"]

_db_counter = itertools.count()


def base_env(mongo_port: int) -> dict[str, str]:
    return {
        "AUTHGATE_ENV": "test",
        "JWT_SECRET": secrets.token_hex(32),
        "JWT_REFRESH_SECRET": secrets.token_hex(32),
        "TOTP_ENCRYPTION_KEY": secrets.token_hex(32),
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


class AuthApp(InProcessApp):
    """The in-process app as the auth tests use it: the store is the real Mongo-wire server."""

    async def find_user(self, email: str) -> Document | None:
        found: Document | None = await self.collection("users").find_one({"email": email})
        return found


@pytest.fixture
def app_factory(settings_factory: Callable[..., AuthSettings]) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def make(**overrides: str) -> AsyncIterator[AuthApp]:
        app = create_app(settings_factory(**overrides))
        async with app.router.lifespan_context(app):
            running = AuthApp(app)
            try:
                yield running
            finally:
                await running.aclose()

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
        env = {**base_env(mongo.port), **overrides}
        server = start_auth(env, cwd or tmp_path, root=cwd)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def fresh_store(mongo: Server) -> AsyncIterator[Store]:
    """Auth's repositories on a database of their own, indexes created, dropped afterwards."""
    created = Store(mongo_uri(mongo.port, f"store_{secrets.token_hex(4)}"))
    await created.ensure_indexes(audit_retention_days=30)
    try:
        yield created
    finally:
        await created.db.client.drop_database(created.db.name)
        await created.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain SMTP server (aiosmtpd) of this test's own, keeping what it receives."""
    server = start_smtp("plain")
    try:
        yield server
    finally:
        server.stop()

"""End to end through the auth service and a moderation service with real (small) limits.

Each test module starts its own moderation process (`moderation`, module scope),
over the in-memory store or a private `redis-server` (parametrize the fixture
with `indirect=True` to choose), with the limits below; every test then runs the
auth app in-process on its own database, talking to that moderation service
over its socket. The app trusts one proxy address (the in-process client's), so
a test picks each request's client IP with `X-Forwarded-For`.

Windows are a minute long and never waited out: every scenario uses addresses and
emails no other test of the run uses (`Stack.fresh_ip`, `fresh_email`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import secrets
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from harness import ModerationHandle, Server, mongo_uri, start_moderation, start_redis
from harness.inprocess import InProcessApp, running_app
from services.auth.context import AuthContext
from services.auth.settings import load_settings
from shared.config import Env
from tests.integration.support import STRONG_PASSWORD, run_cli

T = TypeVar("T")

PROXY_IP = "203.0.113.10"  # the in-process client's peer: the one trusted proxy
BAN_SECONDS = 60
# Small, real limits: a flood is a handful of requests.
LIMITS: dict[str, str] = {
    "LOGIN_MAX": "3",
    "LOGIN_WINDOW": "1",
    "REGISTER_MAX": "2",
    "REGISTER_WINDOW": "1",
    "REFRESH_MAX": "50",
    "REFRESH_WINDOW": "1",
    "LOGIN_ACCOUNT_MAX": "3",
    "LOGIN_ACCOUNT_WINDOW": "5",
    "LOGIN_DEVICE_MAX": "6",
    "BAN_INTERVAL": "3",
    "LOGIN_VIOLATION_SCORE": "1",
    "REGISTRATION_VIOLATION_SCORE": "1",
    "REFRESH_VIOLATION_SCORE": "1",
    "NON_BROWSER_VIOLATION_SCORE": "2",  # every score must stay below BAN_INTERVAL
    "ILLEGAL_MODEL_REQ_SCORE": "2",
    "BAN_DURATION": str(BAN_SECONDS * 1000),
    "TRUSTED_PROXIES": f"{PROXY_IP}/32",
}
# Bans reach every auth process through the change feed (polled every <= 500 ms): generous bound.
BAN_DEADLINE_S = 5.0

_emails = itertools.count(1)
_addresses = itertools.count(1)  # one sequence for the whole run: no two tests share an address


def fresh_email(tag: str = "user") -> str:
    return f"{tag}{next(_emails)}.{secrets.token_hex(3)}@example.com"


# Assertions on the answers auth gives ----------------------------------------------------------


def assert_limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited", body
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert int(response.headers["RateLimit-Reset"]) >= 1
    assert body["retry_after"] == retry_after


def assert_banned(response: httpx.Response, max_seconds: int = BAN_SECONDS) -> dict[str, Any]:
    """403 `banned` with a reason, a future `expires_at` and a matching `Retry-After`."""
    assert response.status_code == 403, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == "banned", body
    assert body["reason"], body
    expires_at = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    remaining = (expires_at - dt.datetime.now(dt.UTC)).total_seconds()
    assert 0 < remaining <= max_seconds + 2, body
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= max_seconds + 1
    return body


# The moderation service of a module ---------------------------------------------------------


@pytest.fixture(scope="module")
def moderation(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModerationHandle]:
    """This module's own moderation service with LIMITS; `param` "redis" puts it on a private Redis.

    A module may add variables with a module-level `MODERATION_ENV` dict.
    """
    store = getattr(request, "param", "memory")
    work = tmp_path_factory.mktemp(f"e2e-moderation-{store}")
    redis: Server | None = None
    env = {**LIMITS, **getattr(request.module, "MODERATION_ENV", {})}
    if store == "redis":
        redis = start_redis(work / "redis")
        env["REDIS_URI"] = f"redis://127.0.0.1:{redis.port}/0"
    else:
        assert store == "memory", store
    handle: ModerationHandle | None = None
    try:
        handle = start_moderation(work, env)
        ready = httpx.get(f"{handle.server.url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["store"] == store, ready.text
        yield handle
    finally:
        if handle is not None:
            handle.server.stop()
        if redis is not None:
            redis.stop()


def auth_env_for(moderation: ModerationHandle, mongo_port: int, **extra: str) -> dict[str, str]:
    """An auth process's settings (in-process app and CLI alike) against `moderation`, LIMITS applied."""
    return {
        "AUTHGATE_ENV": "test",
        "JWT_SECRET": secrets.token_hex(32),
        "JWT_REFRESH_SECRET": secrets.token_hex(32),
        "TOTP_ENCRYPTION_KEY": secrets.token_hex(32),
        "MONGO_URI": mongo_uri(mongo_port, f"e2e_{secrets.token_hex(4)}"),
        "MONGO_TIMEOUT": "2000",
        "ALLOW_REGISTRATION": "true",
        **moderation.auth_env(),  # MODERATION_URL, MODERATION_API_KEY, MODERATION_TIMEOUT=2000
        **LIMITS,
        "TRUST_PROXY": "1",
        **extra,
    }


# The auth service in-process --------------------------------------------------------------


@dataclass
class Stack:
    """One auth app (lifespan running) on its own database, its moderation service, and helpers.

    Requests reach the app in-process from the trusted proxy, naming the client in X-Forwarded-For.
    """

    def __init__(
        self,
        auth: InProcessApp,
        moderation: ModerationHandle,
        env: dict[str, str],
        work: Path,
        admin: httpx.AsyncClient,
        reporter: httpx.AsyncClient,
    ) -> None:
        self.auth = auth
        self.app = auth.app
        self.moderation = moderation
        self.env = env
        self.work = work
        self.admin = admin
        self.reporter = reporter

    @property
    def ctx(self) -> AuthContext:
        return self.auth.ctx

    def collection(self, name: str) -> Any:
        return self.auth.collection(name)

    @staticmethod
    def fresh_ip() -> str:
        """An address no other test of the run uses (198.18.0.0/15, the benchmarking range)."""
        n = next(_addresses)
        assert n < 1 << 17
        return f"198.{18 + (n >> 16)}.{(n >> 8) % 256}.{n % 256}"

    def client(self, ip: str) -> httpx.AsyncClient:
        """A browser-like client (keeps cookies) whose requests come from `ip` through the proxy."""
        return self.auth.new_client(PROXY_IP, headers={"X-Forwarded-For": ip})

    async def register(self, ip: str, email: str, password: str = STRONG_PASSWORD) -> httpx.Response:
        body = {"name": "Test User", "email": email, "password": password, "confirm_password": password}
        async with self.one_shot(ip) as client:
            return await client.post("/api/auth/register", json=body)

    async def login(
        self, ip: str, email: str, password: str = STRONG_PASSWORD, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        """A service-client login (refresh token in the body) unless a browser `client` is given."""
        if client is not None:
            return await client.post("/api/auth/login", json={"email": email, "password": password})
        body = {"email": email, "password": password, "refresh_token_in_body": True}
        async with self.one_shot(ip) as fresh:
            return await fresh.post("/api/auth/login", json=body)

    async def user(self, email: str, ip: str | None = None) -> dict[str, Any]:
        """Register and log in (from a fresh address unless given); the token body plus `user_id`."""
        ip = ip or self.fresh_ip()
        response = await self.register(ip, email)
        assert response.status_code == 200, response.text
        response = await self.login(ip, email)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        body["user_id"] = body["user"]["id"]
        return body

    @contextlib.asynccontextmanager
    async def one_shot(self, ip: str) -> AsyncIterator[httpx.AsyncClient]:
        client = self.client(ip)
        try:
            yield client
        finally:
            await client.aclose()

    # Moderation's own API ------------------------------------------------------------------

    async def ban(
        self, subject: str, reason: str = "e2e test ban", seconds: int = BAN_SECONDS
    ) -> dict[str, Any]:
        response = await self.admin.post(
            "/v1/bans", json={"subject": subject, "reason": reason, "duration_seconds": seconds}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def unban(self, subject: str) -> None:
        response = await self.admin.delete(f"/v1/bans/{subject}")
        assert response.status_code == 200, response.text

    async def check(self, ip: str | None = None, user_id: str | None = None) -> dict[str, Any]:
        params = {k: v for k, v in (("ip", ip), ("user_id", user_id)) if v is not None}
        response = await self.reporter.get("/v1/bans/check", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def audit(self, subject: str | None = None) -> list[dict[str, Any]]:
        response = await self.admin.get("/v1/audit", params={"subject": subject} if subject else {})
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()["records"]
        return records

    async def score(self, ip: str) -> int:
        """The address's current violation score, read from a `refresh` event (REFRESH_MAX is far off).

        Moderation has no read-only score endpoint; the event answer carries the subject's score.
        """
        response = await self.reporter.post("/v1/events", json={"type": "refresh", "ip": ip})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["allowed"] and body.get("ban") is None, body
        return int(body["score"])

    # The admin CLI, as an operator runs it, with this app's settings ---------------------------

    async def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "MODERATION_ADMIN_KEY": self.moderation.admin_key}
        return await asyncio.to_thread(run_cli, env, self.work / "cli", *args, stdin=stdin)


@pytest.fixture
def stack_factory(
    mongo: Server, moderation: ModerationHandle, tmp_path: Path
) -> Callable[..., contextlib.AbstractAsyncContextManager[Stack]]:
    """`async with stack_factory(VAR=value) as stack:` an auth app against this module's moderation."""

    @contextlib.asynccontextmanager
    async def make(**extra: str) -> AsyncIterator[Stack]:
        env = auth_env_for(moderation, mongo.port, **extra)
        root = tmp_path / f"auth-{secrets.token_hex(3)}"
        root.mkdir(parents=True)
        settings = load_settings(Env([env]), root=root)
        headers = {"Authorization": f"Bearer {moderation.admin_key}"}
        async with (
            running_app(settings, peer=PROXY_IP) as auth,
            httpx.AsyncClient(base_url=moderation.server.url, headers=headers, timeout=10) as admin,
            httpx.AsyncClient(
                base_url=moderation.server.url,
                headers={"Authorization": f"Bearer {moderation.report_key}"},
                timeout=10,
            ) as reporter,
        ):
            yield Stack(auth, moderation, env, root, admin, reporter)

    return make


@pytest.fixture
async def stack(
    stack_factory: Callable[..., contextlib.AbstractAsyncContextManager[Stack]],
) -> AsyncIterator[Stack]:
    async with stack_factory() as running:
        yield running


def identical_failure(a: httpx.Response, b: httpx.Response) -> None:
    """Same status, byte-identical body and the same header names (values of Date/request id aside)."""
    assert a.status_code == b.status_code, (a.status_code, b.status_code)
    assert a.content == b.content, (a.content, b.content)
    assert sorted(a.headers.keys()) == sorted(b.headers.keys()), (a.headers, b.headers)
    volatile = {"date", "x-request-id"}
    same = {k: v for k, v in a.headers.items() if k not in volatile}
    assert same == {k: v for k, v in b.headers.items() if k not in volatile}

"""Moderation fixtures: a private Redis, the service as a real process over each store, helpers.

One service per store kind serves the whole session; tests stay independent by
using addresses and user ids nobody else uses (`fresh_ip`, `fresh_user`).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import LocalCluster, Server, free_port, start_redis, start_service
from services.moderation.store_redis import RedisStore
from services.moderation.store_redis_cluster import RedisClusterStore
from shared.moderation.policy import EVENT_TYPES, BanPolicy
from shared.moderation.store import Store
from shared.moderation.store_memory import MemoryStore

AUTH_SECRET = secrets.token_urlsafe(32)
ADMIN_SECRET = secrets.token_urlsafe(32)
READER_SECRET = secrets.token_urlsafe(32)
EDGE_SECRET = secrets.token_urlsafe(32)
ALL_TYPES = "+".join(EVENT_TYPES)
API_KEYS = ",".join(
    [
        f"auth:report+report-user+{ALL_TYPES}:{AUTH_SECRET}",
        f"cli:admin:{ADMIN_SECRET}",
        f"proxy:report:{READER_SECRET}",  # reads only: lists no event type
        f"edge:report+login+message+non_browser+illegal_model:{EDGE_SECRET}",  # no report-user
    ]
)
TRUSTED = "10.9.0.0/16"
EXEMPT = "198.51.100.0/24,2001:db8:ee::/48"

# Small numbers keep every scenario a handful of requests long.
BASE_ENV = {
    "AUTHGATE_ENV": "test",
    "MODERATION_API_KEYS": API_KEYS,
    "LOGIN_MAX": "3",
    "LOGIN_WINDOW": "1",
    "REGISTER_MAX": "2",
    "REGISTER_WINDOW": "1",
    "MESSAGE_IP_MAX": "6",
    "MESSAGE_USER_MAX": "3",
    "CONCURRENT_MESSAGE_MAX": "2",
    "LOGIN_ACCOUNT_MAX": "4",
    "LOGIN_DEVICE_MAX": "6",
    "BAN_INTERVAL": "5",
    "BAN_DURATION": "1000 * 60",
    "NON_BROWSER_VIOLATION_SCORE": "2",
    "ILLEGAL_MODEL_REQ_SCORE": "3",
    "TRUSTED_PROXIES": TRUSTED,
    "BAN_EXEMPT_CIDRS": EXEMPT,
    "MODERATION_AUDIT_MAX_LEN": "40",
}

_ip_counter = itertools.count(1)
_user_counter = itertools.count(1)


def fresh_ip() -> str:
    n = next(_ip_counter) + secrets.randbelow(1000) * 10_000
    return f"100.{64 + (n >> 16) % 64}.{(n >> 8) % 256}.{n % 256}"


def fresh_ipv6() -> str:
    return f"2001:db8:{0x1000 + next(_ip_counter):x}:{secrets.randbelow(65536):x}::1"


def fresh_user() -> str:
    return f"u{next(_user_counter)}x{secrets.token_hex(4)}"


def fresh_account() -> str:
    return f"account:{secrets.token_hex(32)}"


@pytest.fixture(scope="session")
def redis_server(work_dir: Path) -> Iterator[Server]:
    server = start_redis(work_dir / "moderation-redis")
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Moderation:
    server: Server
    kind: str

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, secret: str | None = AUTH_SECRET) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {secret}"} if secret else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


def service_env(kind: str, redis: Server | None, **overrides: str) -> dict[str, str]:
    env = dict(BASE_ENV)
    if kind == "redis":
        assert redis is not None
        env["REDIS_URI"] = f"redis://127.0.0.1:{redis.port}/0"
        env["MODERATION_REDIS_PREFIX"] = f"t{secrets.token_hex(4)}"
    env.update(overrides)
    return env


def cluster_env(cluster: LocalCluster) -> dict[str, str]:
    """LibreChat's spelling of a cluster: the switch and two of the six nodes as seeds."""
    return {
        "USE_REDIS_CLUSTER": "true",
        "REDIS_URI": cluster.seeds_uri(2),
        "MODERATION_REDIS_PREFIX": f"t{secrets.token_hex(4)}",
    }


def launch(work_dir: Path, kind: str, redis: Server | None, **overrides: str) -> Moderation:
    port = free_port()
    env = service_env(kind, redis, MODERATION_PORT=str(port), **overrides)
    server = start_service("services.moderation", port, env, work_dir / f"moderation-{kind}-{port}.log")
    return Moderation(server, kind)


@pytest.fixture(scope="session", params=["memory", "redis", "redis-cluster"])
def moderation(request: pytest.FixtureRequest, work_dir: Path) -> Iterator[Moderation]:
    kind: str = request.param
    redis = request.getfixturevalue("redis_server") if kind == "redis" else None
    extra = cluster_env(request.getfixturevalue("redis_cluster")) if kind == "redis-cluster" else {}
    service = launch(work_dir, kind, redis, **extra)
    try:
        yield service
    finally:
        service.server.stop()


@pytest.fixture
async def auth_client(moderation: Moderation) -> AsyncIterator[httpx.AsyncClient]:
    async with moderation.client(AUTH_SECRET) as client:
        yield client


@pytest.fixture
async def admin_client(moderation: Moderation) -> AsyncIterator[httpx.AsyncClient]:
    async with moderation.client(ADMIN_SECRET) as client:
        yield client


# In-process stores for injected-time tests ------------------------------------------------------


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store_factory(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Store]]:
    """Fresh stores of one kind; Redis ones get their own key prefix, so nothing is flushed."""
    kind: str = request.param
    created: list[Store] = []

    def make(bans: BanPolicy, audit_max_len: int = 1000) -> Store:
        store: Store
        if kind == "memory":
            store = MemoryStore(bans, audit_max_len)
        elif kind == "cluster":
            cluster: LocalCluster = request.getfixturevalue("redis_cluster")
            seeds = [("127.0.0.1", port) for port in cluster.ports[:2]]
            store = RedisClusterStore(seeds, bans, audit_max_len, prefix=f"t{secrets.token_hex(6)}")
        else:
            redis: Server = request.getfixturevalue("redis_server")
            url = f"redis://127.0.0.1:{redis.port}/0"
            store = RedisStore(url, bans, audit_max_len, prefix=f"t{secrets.token_hex(6)}")
        created.append(store)
        return store

    yield make
    for store in created:
        await store.close()


def body_of(response: httpx.Response) -> Any:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()

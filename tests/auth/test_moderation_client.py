"""The moderation client against a real moderation process (and against one that is down or hangs)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import eventually, free_port, start_service
from services.auth.moderation_client import (
    BanInfo,
    ModerationClient,
    ModerationClientSettings,
    ModerationUnavailableError,
    account_subject,
    load_moderation_client_settings,
)
from shared.config import ConfigError, Env
from shared.errors import HTTP_STATUS
from shared.moderation.policy import load_limits
from tests.moderation.conftest import (
    ADMIN_SECRET,
    AUTH_SECRET,
    BASE_ENV,
    Moderation,
    fresh_account,
    fresh_ip,
    fresh_user,
    launch,
)

LIMITS = load_limits(Env([BASE_ENV]))  # the same limits the service runs with


def settings_for(url: str, **overrides: Any) -> ModerationClientSettings:
    values: dict[str, Any] = {
        "url": url,
        "api_key": AUTH_SECRET,
        "timeout_ms": 500,
        "limits": LIMITS,
        "poll_interval_ms": 100,
        "breaker_reset_ms": 300,
    }
    values.update(overrides)
    return ModerationClientSettings(**values)


@pytest.fixture(scope="module")
def moderation(work_dir: Path) -> Iterator[Moderation]:
    service = launch(work_dir, "memory", None)
    try:
        yield service
    finally:
        service.server.stop()


@pytest.fixture
async def admin(moderation: Moderation) -> AsyncIterator[httpx.AsyncClient]:
    async with moderation.client(ADMIN_SECRET) as client:
        yield client


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(request: pytest.FixtureRequest, moderation: Moderation) -> AsyncIterator[ModerationClient]:
    moderation_client = ModerationClient(settings_for(moderation.url, transport=request.param))
    await moderation_client.start()
    try:
        yield moderation_client
    finally:
        await moderation_client.aclose()


def restart(work_dir: Path, port: int) -> Moderation:
    env = dict(BASE_ENV, MODERATION_PORT=str(port))
    server = start_service("services.moderation", port, env, work_dir / f"moderation-client-{port}.log")
    return Moderation(server, "memory")


# Talking to a healthy service ----------------------------------------------------------------------


async def test_events_limit_then_ban_and_the_ban_is_remembered(client: ModerationClient) -> None:
    ip = fresh_ip()
    decisions = [await client.event("login", ip=ip) for _ in range(8)]
    assert [d.allowed for d in decisions] == [True] * 3 + [False] * 5
    assert decisions[3].retry_after >= 1 and decisions[3].limit == 3 and decisions[3].ban is None
    assert not any(d.degraded for d in decisions)
    banned = decisions[7].ban
    assert banned is not None and banned.subject == f"ip:{ip}" and banned.retry_after() > 50
    assert client.is_banned(ip=ip) == banned  # learned from the answer, no network call


async def test_addresses_moderation_refuses_fall_back_without_raising(client: ModerationClient) -> None:
    scoped = await client.event("login", ip="fe80::1%eth0")  # accepted: the zone is dropped
    assert scoped.allowed and not scoped.degraded
    for junk in ("not-an-address", "1.2.3.4%eth0", "fe80::1%"):
        decision = await client.event("login", ip=junk)  # 422 from moderation, then the fallback
        assert decision.degraded and decision.ban is None


async def test_account_events_and_device_cookie(client: ModerationClient) -> None:
    account = fresh_account()
    for _ in range(4):
        await client.event("login_failed", ip=fresh_ip(), account=account)
    assert not (await client.event("login", ip=fresh_ip(), account=account)).allowed
    assert (await client.event("login", ip=fresh_ip(), account=account, device_trusted=True)).allowed


async def test_ban_cache_follows_the_feed_and_fires_user_ban_callbacks(
    client: ModerationClient, admin: httpx.AsyncClient
) -> None:
    seen: list[tuple[str, BanInfo]] = []

    async def revoke(user_id: str, ban: BanInfo) -> None:
        seen.append((user_id, ban))

    client.on_user_ban(revoke)
    user = fresh_user()
    await eventually(lambda: client.ban_cache_age() is not None, "the first sync")
    response = await admin.post(
        "/v1/bans", json={"subject": f"user:{user}", "reason": "abuse", "duration_seconds": 600}
    )
    assert response.status_code == 201
    await eventually(lambda: client.is_banned(user_id=user) is not None, "the ban to reach the cache")
    ban = client.is_banned(user_id=user, ip=fresh_ip())
    assert ban is not None and ban.reason == "abuse" and ban.expires_at_iso() == response.json()["expires_at"]
    await eventually(lambda: any(uid == user for uid, _ in seen), "the user-ban callback")
    assert [uid for uid, _ in seen].count(user) == 1
    assert (await admin.delete(f"/v1/bans/user:{user}")).status_code == 200
    await eventually(lambda: client.is_banned(user_id=user) is None, "the unban to reach the cache")


async def test_feed_reset_reloads_the_list(work_dir: Path) -> None:
    service = launch(work_dir, "memory", None, MODERATION_AUDIT_MAX_LEN="3")
    moderation_client = ModerationClient(settings_for(service.url))
    try:
        await moderation_client.sync_bans()  # first sync: loads the (empty) list
        users = [fresh_user() for _ in range(5)]
        async with service.client(ADMIN_SECRET) as admin:
            for user in users:
                body = {"subject": f"user:{user}", "reason": "r", "duration_seconds": 600}
                assert (await admin.post("/v1/bans", json=body)).status_code == 201
        await moderation_client.sync_bans()  # the cursor was trimmed away: reset, reload
        assert moderation_client.stats.feed_resets == 1
        assert all(moderation_client.is_banned(user_id=u) is not None for u in users)
    finally:
        await moderation_client.aclose()
        service.server.stop()


# When moderation is down, slow or refuses ------------------------------------------------------------


async def test_fail_modes_local_limiter_known_bans_and_buffered_reports(work_dir: Path) -> None:
    service = launch(work_dir, "memory", None)
    port = service.server.port
    moderation_client = ModerationClient(settings_for(service.url, breaker_failures=2))
    banned_ip, spared_ip, reported_ip = fresh_ip(), fresh_ip(), fresh_ip()
    try:
        async with service.client(ADMIN_SECRET) as admin:
            body = {"subject": f"ip:{banned_ip}", "reason": "known", "duration_seconds": 600}
            assert (await admin.post("/v1/bans", json=body)).status_code == 201
        await moderation_client.start()
        await eventually(lambda: moderation_client.is_banned(ip=banned_ip) is not None, "the ban cache")
        service.server.stop()

        known = await moderation_client.event("login", ip=banned_ip)
        assert known.degraded and not known.allowed and known.ban is not None and known.ban.reason == "known"
        local = [await moderation_client.event("login", ip=spared_ip) for _ in range(4)]
        assert [d.allowed for d in local] == [True, True, True, False]  # LOGIN_MAX=3, in process
        assert all(d.degraded for d in local) and local[3].retry_after >= 1
        with pytest.raises(ModerationUnavailableError) as refused:
            await moderation_client.event("register", ip=fresh_ip())
        assert HTTP_STATUS[refused.value.code] == 503 and refused.value.code == "moderation_unavailable"
        assert refused.value.retry_after

        await moderation_client.event("login_failed", ip=spared_ip, account=fresh_account())
        for _ in range(2):  # 3 + 3 >= BAN_INTERVAL once delivered
            moderation_client.report_violation("illegal_model", ip=reported_ip)
        assert moderation_client.stats.buffered >= 3

        service = restart(work_dir, port)
        await eventually(lambda: moderation_client.stats.buffered == 0, "the buffer to drain")
        async with service.client(AUTH_SECRET) as reader:
            check = (await reader.get("/v1/bans/check", params={"ip": reported_ip})).json()
        assert check["banned"] and check["subject"] == f"ip:{reported_ip}"
        assert not (await moderation_client.event("login", ip=fresh_ip())).degraded
    finally:
        await moderation_client.aclose()
        service.server.stop()


class HangingServer:
    """Accepts connections and never answers: the slow-dependency case."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = free_port()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.read()  # until the client gives up
        finally:
            writer.close()

    async def __aenter__(self) -> HangingServer:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_timeouts_open_the_circuit(transport: str) -> None:
    async with HangingServer() as hanging:
        settings = settings_for(
            f"http://127.0.0.1:{hanging.port}",
            timeout_ms=200,
            breaker_failures=3,
            breaker_reset_ms=60_000,
            transport=transport,
        )
        moderation_client = ModerationClient(settings)
        try:
            for _ in range(3):
                started = time.monotonic()
                decision = await moderation_client.event("login", ip=fresh_ip())
                assert decision.degraded and decision.allowed
                assert time.monotonic() - started < 5  # bounded by MODERATION_TIMEOUT, generously
            assert moderation_client.breaker.state == "open"
            connections = hanging.connections
            for _ in range(5):
                assert (await moderation_client.event("refresh", ip=fresh_ip())).degraded
            assert hanging.connections == connections  # an open circuit makes no calls
        finally:
            await moderation_client.aclose(flush_timeout_s=0.1)


async def test_report_buffer_is_bounded_and_drops_the_oldest() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    moderation_client = ModerationClient(settings_for(dead, buffer_size=3))  # not started: nothing flushes
    try:
        for score in range(5):
            moderation_client.report_violation("login", ip="192.0.2.1", score=score)
        assert moderation_client.stats.dropped == 2 and moderation_client.stats.buffered == 3
        assert [body["score"] for _, body, _ in moderation_client.reports.items] == [2, 3, 4]
    finally:
        await moderation_client.aclose(flush_timeout_s=0.1)


async def test_a_wrong_key_applies_the_fail_mode(moderation: Moderation) -> None:
    moderation_client = ModerationClient(settings_for(moderation.url, api_key="x" * 32))
    try:
        decision = await moderation_client.event("login", ip=fresh_ip())
        assert decision.degraded
        with pytest.raises(ModerationUnavailableError):
            await moderation_client.event("register", ip=fresh_ip())
        assert moderation_client.breaker.state == "closed"  # it answered: our fault, not an outage
    finally:
        await moderation_client.aclose()


# Settings and helpers --------------------------------------------------------------------------------


def test_account_subject_is_an_hmac_of_the_normalized_email() -> None:
    key = b"k" * 32
    subject = account_subject("alice@example.com", key)
    expected = hmac.new(key, b"alice@example.com", hashlib.sha256).hexdigest()
    assert subject == f"account:{expected}"
    assert account_subject("alice@example.com", b"other-key" * 4) != subject


def test_client_settings_defaults_and_parsing() -> None:
    settings = load_moderation_client_settings(
        Env([{"MODERATION_URL": "http://mod:3081/", "MODERATION_API_KEY": "k" * 32}]), development=False
    )
    assert settings.url == "http://mod:3081" and settings.timeout_ms == 200
    assert dict(settings.fail_modes) == {"login": "open", "register": "closed", "refresh": "open"}
    assert settings.fail_mode("login_failed") == "open" and settings.fail_mode("message") == "open"
    custom = load_moderation_client_settings(
        Env([{"MODERATION_FAIL_MODE": "login=closed, message=closed", "MODERATION_TIMEOUT": "50 * 4"}]),
        development=True,
    )
    assert custom.url == "http://127.0.0.1:3081" and custom.api_key is None and custom.timeout_ms == 200
    assert custom.fail_mode("login_failed") == "closed" and custom.fail_mode("register") == "closed"


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"MODERATION_API_KEY": "k" * 32}, "MODERATION_URL"),
        ({"MODERATION_URL": "http://mod:3081"}, "MODERATION_API_KEY"),
        ({"MODERATION_URL": "http://mod:3081", "MODERATION_API_KEY": "short"}, "MODERATION_API_KEY"),
        ({"MODERATION_URL": "mod:3081", "MODERATION_API_KEY": "k" * 32}, "MODERATION_URL"),
        (
            {
                "MODERATION_URL": "http://m",
                "MODERATION_API_KEY": "k" * 32,
                "MODERATION_FAIL_MODE": "login=maybe",
            },
            "MODERATION_FAIL_MODE",
        ),
        (
            {
                "MODERATION_URL": "http://m",
                "MODERATION_API_KEY": "k" * 32,
                "MODERATION_FAIL_MODE": "verify=open",
            },
            "MODERATION_FAIL_MODE",
        ),
        (
            {"MODERATION_URL": "http://m", "MODERATION_API_KEY": "k" * 32, "MODERATION_TIMEOUT": "0"},
            "MODERATION_TIMEOUT",
        ),
    ],
)
def test_client_settings_refuse_bad_values(values: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_moderation_client_settings(Env([values]), development=False)
    assert info.value.name == variable

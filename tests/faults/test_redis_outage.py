"""Moderation's Redis crashes or freezes: every /v1 call 503 `store_unavailable` quickly, recovery by itself.

Three shapes: a clean Redis shutdown, a Redis killed with SIGKILL (connections reset,
scripts gone) and restarted on the same port, and a Redis frozen with SIGSTOP
(connections open, no answers: only the socket timeouts bound the calls). The moderation process is
never restarted; auth, in-process and pointed at it, follows its fail modes meanwhile.
Each test runs its own Redis: the machine's shared one is never touched.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import Server, eventually, free_port, start_redis, start_service
from tests.faults.support import Keys, moderation_keys, real_moderation_env

# Generous: every call is bounded by 0.5-1 s socket/call timeouts; two shared cores, 5x and more.
BOUND_S = 6.0


class Stack:
    def __init__(self, redis: Server, moderation: Server, keys: Keys, redis_dir: Path) -> None:
        self.redis = redis
        self.moderation = moderation
        self.keys = keys
        self.redis_dir = redis_dir

    def client(self, admin: bool = False) -> httpx.AsyncClient:
        key = self.keys.admin if admin else self.keys.report
        return httpx.AsyncClient(
            base_url=self.moderation.url, headers={"authorization": f"Bearer {key}"}, timeout=30
        )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    redis_dir = tmp_path / "redis"
    redis = start_redis(redis_dir)
    keys = moderation_keys()
    port = free_port()
    env = real_moderation_env(
        port,
        keys,
        REDIS_URI=f"redis://127.0.0.1:{redis.port}/0",
        MODERATION_REDIS_PREFIX=f"f{secrets.token_hex(4)}",
    )
    moderation = start_service("services.moderation", port, env, tmp_path / "moderation.log")
    state = Stack(redis, moderation, keys, redis_dir)
    try:
        yield state
    finally:
        if state.redis.proc.poll() is None:
            os.kill(state.redis.proc.pid, signal.SIGCONT)
        state.moderation.stop()
        state.redis.stop()
    assert "Traceback" not in moderation.log(), moderation.log()[-3000:]


def fresh_ip() -> str:
    return f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def v1_calls(
    report: httpx.AsyncClient, admin: httpx.AsyncClient
) -> list[Coroutine[Any, Any, httpx.Response]]:
    ip = fresh_ip()
    return [
        report.post("/v1/events", json={"type": "login", "ip": ip}),
        report.post("/v1/events", json={"type": "register", "ip": ip}),
        report.post("/v1/violations", json={"type": "login", "ip": ip}),
        report.get("/v1/bans/check", params={"ip": ip}),
        report.get("/v1/bans"),
        report.get("/v1/bans/changes"),
        admin.post("/v1/bans", json={"subject": f"ip:{ip}", "reason": "fault", "duration_seconds": 60}),
        admin.delete(f"/v1/bans/ip:{ip}"),
        admin.get("/v1/audit"),
    ]


async def timed(call: Coroutine[Any, Any, httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await call
    return response, time.monotonic() - started


async def assert_unavailable_everywhere(stack: Stack) -> None:
    async with stack.client() as report, stack.client(admin=True) as admin:
        started = time.monotonic()
        results = await asyncio.gather(*(timed(call) for call in v1_calls(report, admin)))
        for response, elapsed in results:
            assert response.status_code == 503, (response.request.url, response.text)
            assert response.json()["code"] == "store_unavailable"
            assert int(response.headers["retry-after"]) >= 1
            assert elapsed < BOUND_S, (response.request.url, elapsed)
        assert time.monotonic() - started < BOUND_S
        ready = await report.get("/readyz")
        assert ready.status_code == 503 and ready.json()["code"] == "store_unavailable"
        assert (await report.get("/healthz")).status_code == 200


async def wait_recovered(stack: Stack, bound_s: float = 30.0) -> None:
    async with stack.client() as report:

        async def answered() -> httpx.Response | None:
            response = await report.post("/v1/events", json={"type": "login", "ip": fresh_ip()})
            assert response.status_code in (200, 503), response.text
            return response if response.status_code == 200 else None

        await eventually(answered, "moderation recovering by itself", timeout=bound_s)
        assert (await report.get("/readyz")).status_code == 200
    async with stack.client() as report, stack.client(admin=True) as admin:
        for response in await asyncio.gather(*v1_calls(report, admin)):
            assert response.status_code < 500, (response.request.url, response.text)


async def assert_healthy(stack: Stack) -> None:
    async with stack.client() as report:
        response = await report.post("/v1/events", json={"type": "login", "ip": fresh_ip()})
        assert response.status_code == 200, response.text
        assert (await report.get("/readyz")).status_code == 200


async def test_redis_killed_then_restarted_on_the_same_port(
    stack: Stack, app_factory: Callable[..., Any]
) -> None:
    await assert_healthy(stack)
    pid = stack.moderation.proc.pid
    port = stack.redis.port
    stack.redis.stop(sig_kill=True)

    await assert_unavailable_everywhere(stack)

    # Auth pointed at this moderation: 503s from moderation are an outage, so the fail modes apply.
    overrides = {
        "MODERATION_URL": stack.moderation.url,
        "MODERATION_API_KEY": stack.keys.report,
        "MODERATION_TIMEOUT": "1000",
    }
    async with app_factory(**overrides) as auth:
        response = await auth.register("redis-down@example.com")
        assert response.status_code == 503 and response.json()["code"] == "moderation_unavailable"
        assert await auth.find_user("redis-down@example.com") is None
        response = await auth.login("nobody-redis-down@example.com")
        assert response.status_code == 401  # fail soft: credentials checked, the local limiter allows

    stack.redis = start_redis(stack.redis_dir, port=port)  # empty: the Lua scripts must be reloaded
    await wait_recovered(stack)
    assert stack.moderation.proc.poll() is None and stack.moderation.proc.pid == pid


async def test_redis_frozen_then_resumed(stack: Stack) -> None:
    await assert_healthy(stack)
    os.kill(stack.redis.proc.pid, signal.SIGSTOP)  # connections stay open, nothing answers
    try:
        await assert_unavailable_everywhere(stack)
        await assert_unavailable_everywhere(stack)  # a second round: no pool left wedged
    finally:
        os.kill(stack.redis.proc.pid, signal.SIGCONT)
    await wait_recovered(stack)


async def test_redis_stopped_cleanly_then_restarted(stack: Stack) -> None:
    """A clean shutdown (SIGTERM): the same quick 503s, and recovery without a restart."""
    await assert_healthy(stack)
    pid = stack.moderation.proc.pid
    port = stack.redis.port
    stack.redis.stop()
    await assert_unavailable_everywhere(stack)
    stack.redis = start_redis(stack.redis_dir, port=port)  # empty: scripts are gone
    await wait_recovered(stack)
    assert stack.moderation.proc.poll() is None and stack.moderation.proc.pid == pid

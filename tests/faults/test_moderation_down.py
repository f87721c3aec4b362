"""Moderation hangs: login answers within MODERATION_TIMEOUT plus a margin, following its fail mode.

Checklist item 70 and §2: login and refresh fail soft (the local limiter answers),
registration fails closed (503 `moderation_unavailable`); after a few timeouts the
circuit opens, and it closes again once a real moderation answers on the same port.
The auth app runs in-process so the test can read its breaker (and the circuit gauge
/metrics would show); moderation is a real socket server in both roles (the hanging
stand-in, then `python -m services.moderation`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from harness import start_service
from tests.auth.conftest import AuthApp
from tests.faults.support import FakeModeration, moderation_keys, real_moderation_env

TIMEOUT_MS = 400
# Generous: one moderation timeout plus argon2 and the store on two shared cores, many times over.
BOUND_S = TIMEOUT_MS / 1000 + 5.0


async def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response: httpx.Response = await call
    return response, time.monotonic() - started


def circuit_metric(state: str) -> float | None:
    """`authgate_moderation_circuit_state{state=...}` as /metrics would show it for this app."""
    return REGISTRY.get_sample_value("authgate_moderation_circuit_state", {"state": state})


async def open_the_circuit(auth: AuthApp, email: str) -> None:
    client = auth.ctx.protection.client
    for _ in range(10):
        if client.breaker.state == "open":
            return
        response, elapsed = await timed(auth.login(email))
        assert response.status_code == 200, response.text
        assert elapsed < BOUND_S
    assert client.breaker.state == "open", client.breaker.state


async def register_until_ok(auth: AuthApp, email: str, bound_s: float) -> httpx.Response:
    """Registration fails closed, so it is the probe that tells when moderation answers again."""
    deadline = time.monotonic() + bound_s
    while True:
        response = await auth.register(email)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        assert response.status_code == 503 and response.json()["code"] == "moderation_unavailable"
        await asyncio.sleep(0.25)


@pytest.mark.parametrize("mode", ["silent", "slow"])
async def test_hung_moderation_fail_modes_circuit_and_recovery(
    app_factory: Callable[..., Any], fake_moderation: FakeModeration, tmp_path: Path, mode: str
) -> None:
    fake = fake_moderation
    keys = moderation_keys()
    email = f"hung-{mode}@example.com"
    overrides = {
        "MODERATION_URL": fake.url,
        "MODERATION_API_KEY": keys.report,
        "MODERATION_TIMEOUT": str(TIMEOUT_MS),
    }
    async with app_factory(**overrides) as auth:
        client = auth.ctx.protection.client
        assert (await auth.register(email)).status_code == 200
        session = await auth.login_body(email)
        assert client.breaker.state == "closed"
        assert fake.events >= 2

        fake.mode = mode  # "silent": accepts and never answers; "slow": answers after 10 s

        # Login fails soft: credentials are still checked, the answer comes within the bound.
        response, elapsed = await timed(auth.login(email))
        assert response.status_code == 200, response.text
        assert elapsed < BOUND_S, elapsed
        response, elapsed = await timed(auth.login(email, "a wrong but long enough passphrase"))
        assert response.status_code == 401 and response.json()["code"] == "invalid_credentials"
        assert elapsed < BOUND_S, elapsed

        # Registration fails closed: 503 moderation_unavailable, Retry-After, and no account.
        response, elapsed = await timed(auth.register(f"refused-{mode}@example.com"))
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "moderation_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        assert elapsed < BOUND_S, elapsed
        assert await auth.find_user(f"refused-{mode}@example.com") is None

        # Refresh fails soft like login.
        response, elapsed = await timed(auth.refresh(session["refresh_token"]))
        assert response.status_code == 200, response.text
        assert elapsed < BOUND_S, elapsed

        await open_the_circuit(auth, email)
        assert circuit_metric("open") == 1.0 and circuit_metric("closed") == 0.0
        assert client.stats.degraded_answers >= 3
        # While open, answers come from the local limiter without waiting on moderation.
        response, elapsed = await timed(auth.login(email))
        assert response.status_code == 200 and elapsed < BOUND_S

        # A real moderation comes back on the same port: the next probe closes the circuit.
        fake.stop()
        env = real_moderation_env(fake.port, keys)
        real = start_service("services.moderation", fake.port, env, tmp_path / "moderation-back.log")
        try:
            response = await register_until_ok(auth, f"back-{mode}@example.com", bound_s=30)
            assert response.status_code == 200, response.text
            assert client.breaker.state == "closed"
            assert circuit_metric("closed") == 1.0 and circuit_metric("open") == 0.0
            degraded = client.stats.degraded_answers
            assert (await auth.login(email)).status_code == 200
            assert client.stats.degraded_answers == degraded  # answered by moderation, not locally
            assert await auth.find_user(f"back-{mode}@example.com") is not None
        finally:
            real.stop()
    assert "Traceback" not in real.log()

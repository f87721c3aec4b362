"""A key moderation refuses (401/403) is a configuration error, not an outage.

It is counted on its own, /readyz says `moderation: misconfigured`, one error line a
minute says why, and every check keeps applying its declared fail mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import eventually
from services.auth.metrics import _AuthCollector
from services.auth.moderation_client import ModerationClient, ModerationUnavailableError
from services.auth.moderation_client import transport as transport_module
from tests.auth.conftest import AuthApp
from tests.auth.test_moderation_client import settings_for
from tests.moderation.conftest import fresh_ip, launch

WRONG_KEY = "x" * 32


class Recorder:
    """Stands in for the transport's logger: which error lines would be written."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []

    def error(self, event: str, **fields: Any) -> None:
        self.errors.append({"event": event, **fields})

    def info(self, event: str, **fields: Any) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_refused_key_is_counted_logged_once_a_minute_and_keeps_the_fail_modes(
    work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    monkeypatch.setattr(transport_module, "log", recorder)
    clock = Clock()
    service = launch(work_dir, "memory", None)
    client = ModerationClient(settings_for(service.url, api_key=WRONG_KEY), monotonic=clock)
    try:
        decisions = [await client.event("login", ip=fresh_ip()) for _ in range(20)]
        assert all(d.degraded and d.allowed for d in decisions)  # login fails open, as declared
        with pytest.raises(ModerationUnavailableError):  # register fails closed, as declared
            await client.event("register", ip=fresh_ip())
        assert client.breaker.state == "closed"  # it answered: not an outage
        assert client.stats.config_errors == 21
        assert client.health() == "misconfigured"
        lines = [e for e in recorder.errors if e["event"] == "moderation_misconfigured"]
        assert len(lines) == 1 and lines[0]["status"] == 401
        assert "MODERATION_API_KEY" in lines[0]["detail"]

        clock.now += 61  # a minute later, still refused: one more line
        await client.event("login", ip=fresh_ip())
        assert len([e for e in recorder.errors if e["event"] == "moderation_misconfigured"]) == 2

        collector = _AuthCollector()
        collector.moderation = client
        family = next(f for f in collector.collect() if f.name == "authgate_moderation_config_errors")
        assert family.samples[0].value == 22
    finally:
        await client.aclose()
        service.server.stop()


async def test_readyz_says_moderation_is_misconfigured(app_factory: Callable[..., Any]) -> None:
    async with app_factory(MODERATION_API_KEY=WRONG_KEY) as auth:
        running: AuthApp = auth
        # The ban feed's first poll is refused at once; no request is needed.
        client = running.ctx.protection.client
        await eventually(lambda: client.stats.config_errors > 0, "the feed's first refused poll")
        ready = await running.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["moderation"] == "misconfigured"


async def test_readyz_says_moderation_is_ok(app_factory: Callable[..., Any]) -> None:
    async with app_factory() as auth:
        running: AuthApp = auth
        client = running.ctx.protection.client
        await eventually(lambda: client.ban_cache_age() is not None, "the first sync")
        ready = await running.client.get("/readyz")
        assert ready.json()["checks"]["moderation"] == "ok"

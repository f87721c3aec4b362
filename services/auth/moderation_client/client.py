"""The auth service's client for the moderation service.

Auth asks before it does expensive work and acts on the answer; it never
decides windows or scores itself. When moderation cannot answer within
MODERATION_TIMEOUT (or the circuit breaker is open, or it refuses auth's key), each
check applies its fail mode: `open` answers from an in-process limiter with the same
limits plus the last-known bans, `closed` refuses with 503 `moderation_unavailable`.
Violation reports never block a request: they wait in a bounded buffer. Bans arrive
through the change feed, polled in the background, so `is_banned` answers from memory
without a network call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
import structlog

from services.auth.moderation_client.answers import (
    BanInfo,
    Decision,
    ModerationMisconfigured,
    ModerationRejected,
    ModerationUnavailable,
    wall_ms,
)
from services.auth.moderation_client.bans import BanCache, UserBanCallback
from services.auth.moderation_client.breaker import CircuitBreaker
from services.auth.moderation_client.fail_modes import ModerationUnavailableError
from services.auth.moderation_client.fallback import LocalFallback
from services.auth.moderation_client.metrics import ClientStats
from services.auth.moderation_client.reports import ReportBuffer
from services.auth.moderation_client.settings import ModerationClientSettings
from services.auth.moderation_client.transport import ModerationTransport, new_idempotency_key

log = structlog.get_logger("authgate.moderation_client")
Health = Literal["ok", "unavailable", "misconfigured"]


class ModerationClient:
    """One per process: a shared HTTP client, a ban cache, a report buffer and their tasks."""

    def __init__(
        self,
        settings: ModerationClientSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.settings = settings
        self.stats = ClientStats()
        self.transport = ModerationTransport(settings, self.stats, transport, monotonic)
        self.bans = BanCache(self.transport, settings, self.stats, wall_clock_ms, monotonic)
        self.reports = ReportBuffer(self.transport, settings.buffer_size, self.stats)
        self.fallback = LocalFallback(settings, self.bans)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def breaker(self) -> CircuitBreaker:
        return self.transport.breaker

    def health(self) -> Health:
        """For /readyz: a refused key first (it will not heal by itself), then an open circuit."""
        if self.transport.misconfigured:
            return "misconfigured"
        return "ok" if self.breaker.state == "closed" else "unavailable"

    # Lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client and start the feed poller and report flusher; never blocks on moderation."""
        self.transport.open()
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self.bans.poll(), name="moderation-ban-feed"),
                asyncio.create_task(self.reports.run(), name="moderation-report-flusher"),
            ]

    async def aclose(self, flush_timeout_s: float = 1.0) -> None:
        """Try briefly to deliver buffered reports, then stop the tasks and close the client."""
        if len(self.reports) and self.transport.is_open:
            with contextlib.suppress(TimeoutError, ModerationUnavailable):
                async with asyncio.timeout(flush_timeout_s):
                    await self.reports.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.bans.wait_callbacks(flush_timeout_s)
        await self.transport.aclose()

    # Checks -----------------------------------------------------------------------------------

    async def event(
        self,
        event_type: str,
        *,
        ip: str,
        user_id: str | None = None,
        account: str | None = None,
        device_trusted: bool = False,
        release: bool = False,
        submission: bool = False,
        second_factor: bool = False,
    ) -> Decision:
        """Count an event and answer; without an answer apply the check's fail mode (may raise)."""
        body: dict[str, Any] = {"type": event_type, "ip": ip}
        if user_id is not None:
            body["user_id"] = user_id
        if account is not None:
            body["account"] = account
        if device_trusted:
            body["device_trusted"] = True
        if release:
            body["release"] = True
        if submission:
            body["submission"] = True
        if second_factor:
            body["second_factor"] = True
        key = new_idempotency_key()  # the call's, and the buffered report's if it gets no answer
        try:
            answer = await self.transport.call("/v1/events", body, key)
        except ModerationMisconfigured:  # logged once a minute by the transport, not per request
            return await self._without_answer(body, event_type, key)
        except (ModerationUnavailable, ModerationRejected) as exc:
            log.warning("moderation_degraded", event_type=event_type, error=str(exc))
            return await self._without_answer(body, event_type, key)
        ban = BanInfo.from_api(answer["ban"]) if answer.get("ban") else None
        if ban is not None:
            await self.bans.learn(ban)
        return Decision(
            allowed=bool(answer["allowed"]),
            retry_after=int(answer["retry_after"]),
            limit=int(answer["limit"]),
            remaining=int(answer["remaining"]),
            score=int(answer["score"]),
            ban=ban,
        )

    async def _without_answer(self, body: dict[str, Any], event_type: str, key: str) -> Decision:
        if event_type == "login_failed":
            # A fact moderation must still learn; the same key, in case a lost answer had counted it.
            self.reports.enqueue("/v1/events", body, key)
        if self.settings.fail_mode(event_type) == "closed":
            raise ModerationUnavailableError(max(1, self.settings.breaker_reset_ms // 1000))
        self.stats.degraded_answers += 1
        return await self.fallback.decide(event_type, body)

    def report_violation(
        self,
        violation_type: str,
        *,
        ip: str | None = None,
        user_id: str | None = None,
        score: int | None = None,
    ) -> None:
        """Queue a violation report; the flusher delivers it. Never blocks, never raises."""
        body: dict[str, Any] = {"type": violation_type}
        if ip is not None:
            body["ip"] = ip
        if user_id is not None:
            body["user_id"] = user_id
        if score is not None:
            body["score"] = score
        self.reports.enqueue("/v1/violations", body)

    # Ban cache --------------------------------------------------------------------------------

    def on_user_ban(self, callback: UserBanCallback) -> None:
        """Run `callback(user_id, ban)` for every user ban seen (feed, reload or event answer)."""
        self.bans.on_user_ban(callback)

    @property
    def has_bans(self) -> bool:
        """Whether any ban is cached at all: /verify skips the client-IP work when none is."""
        return self.bans.has_bans

    def is_banned(self, *, ip: str | None = None, user_id: str | None = None) -> BanInfo | None:
        """The last-known ban of this user or address; memory only, no network call."""
        return self.bans.is_banned(ip=ip, user_id=user_id)

    def ban_cache_age(self) -> float | None:
        """Seconds since the ban cache last caught up with moderation; None before the first sync."""
        return self.bans.age()

    async def sync_bans(self) -> None:
        """One catch-up step of the feed (the poller calls this; tests may too)."""
        await self.bans.sync()

"""The ban cache and the change feed that fills it: `is_banned` answers from memory.

The poller follows `GET /v1/bans/changes`; on a reset (its cursor was trimmed away) it
reloads the whole list. Event answers that carry a ban feed it too. A new user ban runs
the registered callbacks in the background, never on a request's time. Both clocks are
given, so tests advance time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import structlog

from services.auth.moderation_client.answers import (
    BanInfo,
    ModerationRejected,
    ModerationUnavailable,
    wall_ms,
)
from services.auth.moderation_client.metrics import ClientStats
from services.auth.moderation_client.settings import ModerationClientSettings
from services.auth.moderation_client.transport import ModerationTransport
from shared.moderation.subjects import InvalidSubject, client_address, user_subject

log = structlog.get_logger("authgate.moderation_client")
UserBanCallback = Callable[[str, BanInfo], Awaitable[None] | None]


class BanCache:
    def __init__(
        self,
        transport: ModerationTransport,
        settings: ModerationClientSettings,
        stats: ClientStats,
        wall_clock_ms: Callable[[], int] = wall_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self.settings = settings
        self.stats = stats
        self.wall_ms = wall_clock_ms
        self.monotonic = monotonic
        self._bans: dict[str, BanInfo] = {}
        self._cursor: str | None = None
        self._synced_at: float | None = None
        self._callbacks: list[UserBanCallback] = []
        self._callback_tasks: set[asyncio.Task[None]] = set()
        self._feed_down_logged = False

    # Reading --------------------------------------------------------------------------------

    @property
    def has_bans(self) -> bool:
        return bool(self._bans)

    def is_banned(self, *, ip: str | None = None, user_id: str | None = None) -> BanInfo | None:
        """The last-known active ban of this user or address; memory only, no network call."""
        if not self._bans:  # the usual case, on every /verify
            return None
        subjects: list[str] = []
        try:
            if user_id is not None:
                subjects.append(user_subject(user_id))
            if ip is not None:
                client = client_address(ip, self.settings.exempt)
                if not client.exempt and client.bannable:
                    subjects.extend(client.subjects)
        except InvalidSubject:
            return None
        now = self.wall_ms()
        found = [ban for s in subjects if (ban := self._bans.get(s)) is not None and ban.active(now)]
        return max(found, key=lambda b: b.expires_at_ms) if found else None

    def age(self) -> float | None:
        """Seconds since the cache last caught up with moderation; None before the first sync."""
        return None if self._synced_at is None else self.monotonic() - self._synced_at

    # Learning -------------------------------------------------------------------------------

    def on_user_ban(self, callback: UserBanCallback) -> None:
        self._callbacks.append(callback)

    async def learn(self, ban: BanInfo) -> None:
        """Cache a ban; a new user ban runs the callbacks in the background.

        A ban without its start time gets the time it was learned: it began no later than that.
        """
        if ban.created_at_ms is None:
            ban = replace(ban, created_at_ms=self.wall_ms())
        known = self._bans.get(ban.subject)
        self._bans[ban.subject] = ban
        if ban.subject.startswith("user:") and (known is None or known.expires_at_ms != ban.expires_at_ms):
            task = asyncio.create_task(self._notify(ban.subject.removeprefix("user:"), ban))
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)

    async def _notify(self, user_id: str, ban: BanInfo) -> None:
        for callback in self._callbacks:
            try:
                result = callback(user_id, ban)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("user_ban_callback_failed", user_id=user_id)

    async def wait_callbacks(self, timeout_s: float) -> None:
        if self._callback_tasks:
            await asyncio.wait(set(self._callback_tasks), timeout=timeout_s)

    # The feed -------------------------------------------------------------------------------

    def _poll_timeout(self) -> float:
        return max(1.0, self.settings.timeout_ms / 1000)

    async def _reload(self, cursor: str | None) -> str:
        """Replace the cache with GET /v1/bans; resume the feed from `cursor` (or the list's)."""
        fresh: dict[str, BanInfo] = {}
        page_cursor: str | None = None
        resume = cursor
        while True:
            params = {"limit": "1000"} | ({"cursor": page_cursor} if page_cursor else {})
            page = await self._transport.request(
                "GET", "/v1/bans", params=params, timeout_s=self._poll_timeout()
            )
            if resume is None:
                resume = str(page["feed_cursor"])
            for item in page["bans"]:
                ban = BanInfo.from_api(item)
                fresh[ban.subject] = ban
            page_cursor = page.get("next")
            if not page_cursor:
                break
        previous, self._bans = self._bans, {}
        for ban in fresh.values():
            if ban.subject in previous and previous[ban.subject].expires_at_ms == ban.expires_at_ms:
                self._bans[ban.subject] = ban
            else:
                await self.learn(ban)
        return resume

    async def sync(self) -> None:
        """One catch-up step of the feed, then expired bans leave the cache."""
        if self._cursor is None:
            self._cursor = await self._reload(None)
        else:
            page = await self._transport.request(
                "GET", "/v1/bans/changes", params={"since": self._cursor}, timeout_s=self._poll_timeout()
            )
            if page.get("reset"):
                self.stats.feed_resets += 1
                self._cursor = await self._reload(str(page["cursor"]))
            else:
                for change in page["changes"]:
                    if change["action"] == "ban" and change.get("expires_at"):
                        await self.learn(BanInfo.from_api(change))
                    else:
                        self._bans.pop(str(change["subject"]), None)
                self._cursor = str(page["cursor"])
        self.expire()
        self._synced_at = self.monotonic()

    def expire(self) -> None:
        now = self.wall_ms()
        for subject in [s for s, b in self._bans.items() if not b.active(now)]:
            del self._bans[subject]

    async def poll(self) -> None:
        """The background task: follow the feed; log an outage once, and its end."""
        interval = min(self.settings.poll_interval_ms, 500) / 1000
        while True:
            try:
                await self.sync()
                if self._feed_down_logged:
                    log.info("moderation_feed_recovered")
                self._feed_down_logged = False
            except (ModerationUnavailable, ModerationRejected, KeyError, TypeError, ValueError) as exc:
                if not self._feed_down_logged:
                    log.warning("moderation_feed_unavailable", error=str(exc))
                self._feed_down_logged = True
            await asyncio.sleep(interval)

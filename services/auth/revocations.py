"""In-process view of revoked sessions, so /verify needs no network call per request.

Every revocation is written to `auth_revocations` (see sessions.py); each auth
process polls that collection every `poll_interval` and also learns its own
revocations at once. The published bound: a revocation reaches /verify on every
process within VERIFY_MAX_STALENESS. When the store cannot be read, /verify
keeps serving for VERIFY_STALE_GRACE and then refuses (503) until it catches
up; a process that never loaded the state refuses from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from services.auth.store import Document, RevocationRepository, StoreFailure
from shared.errors import StoreUnavailable

log = structlog.get_logger("authgate.revocations")

# The feed is read by position (a store-side counter), never by a writer's clock. A position can
# commit after a higher one; such a gap is re-read on every poll until it arrives, or until
# GAP_TIMEOUT_S says its writer died between taking the position and writing the record.
GAP_TIMEOUT_S = 60.0
MAX_GAPS = 10_000
# After the first load, positions this far below the highest seen that are absent are treated as
# gaps (records in flight at start-up); older absent ones were simply removed by the TTL.
START_WINDOW = 1_000


@dataclass
class RevocationStats:
    polls: int = 0
    failures: int = 0
    loaded: int = 0


class RevocationCache:
    def __init__(
        self,
        feed: RevocationRepository,
        poll_interval_s: float,
        stale_grace_s: float,
        retain_s: float = 0.0,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._feed = feed
        self._clock = clock  # wall-clock seconds: record and ban expiries are instants
        self._monotonic = monotonic  # staleness and gap ages are durations
        self._poll_interval = poll_interval_s
        self._stale_grace = stale_grace_s
        # `expires_at` is the writer's clock; what a poll reads is kept at least this long by ours.
        self._retain = retain_s
        self._revoked: dict[str, float] = {}  # session id -> epoch seconds after which it can be forgotten
        self._banned: dict[str, tuple[str, float]] = {}
        # user id -> (lowest session epoch still accepted, epoch seconds after which it can be forgotten)
        self._epochs: dict[str, tuple[int, float]] = {}
        self._last_success: float | None = None
        self._high: int | None = None  # the highest feed position read; None before the first load
        self._gaps: dict[int, float] = {}  # position not yet read -> monotonic time first missed
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.stats = RevocationStats()

    # Reads (hot path, synchronous) ---------------------------------------------------

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self._revoked

    def min_epoch(self, user_id: str) -> int:
        """Tokens of this user with a lower `ep` claim predate an all-sessions revocation."""
        found = self._epochs.get(user_id)
        return 0 if found is None else found[0]

    def predates(self, user_id: str, epoch: int) -> bool:
        """A token of this epoch was issued before an all-sessions revocation of its user.

        The feed can announce the new epoch before the writer's sweep has marked every session
        revoked, so every bearer check asks this as well as the session (memory only).
        """
        return epoch < self.min_epoch(user_id)

    def ban_of(self, session_id: str) -> tuple[str, float] | None:
        """(reason, end) when this session was revoked by a ban that has not ended yet."""
        found = self._banned.get(session_id)
        if found is None or found[1] <= self._clock():
            return None
        return found

    def staleness_s(self) -> float | None:
        """Seconds since the last successful refresh; None when never loaded."""
        if self._last_success is None:
            return None
        return self._monotonic() - self._last_success

    def usable(self) -> bool:
        staleness = self.staleness_s()
        return staleness is not None and staleness <= self._stale_grace

    # Writes ------------------------------------------------------------------------

    def add(self, session_id: str, forget_after: float) -> None:
        self._revoked[session_id] = forget_after

    def add_epoch(self, user_id: str, epoch: int, forget_after: float) -> None:
        """An all-sessions revocation: this user's tokens from earlier epochs are refused."""
        known = self._epochs.get(user_id)
        if known is None or known[0] < epoch:
            self._epochs[user_id] = (epoch, forget_after)

    def add_many(self, session_ids: list[str], forget_after: float) -> None:
        """This process's own revocations apply at once, before the next poll."""
        for session_id in session_ids:
            self._revoked[session_id] = forget_after

    async def refresh_once(self) -> None:
        cursor: AsyncIterator[Document]
        if self._high is None:
            cursor = self._feed.live(dt.datetime.fromtimestamp(self._clock(), dt.UTC))
        else:
            cursor = self._feed.from_position(min([*self._gaps, self._high + 1]))
        # Read after the first load: written moments ago, whatever its writer's clock says.
        kept_until = self._clock() + self._retain if self._high is not None else 0.0
        count = 0
        positions: set[int] = set()
        async for doc in cursor:
            position = doc.get("pos")
            if isinstance(position, int):
                positions.add(position)
            sid = doc.get("sid")
            expires = doc.get("expires_at")
            epoch, user_id = doc.get("epoch"), doc.get("user_id")
            if not isinstance(expires, dt.datetime):
                continue
            forget_after = max(expires.timestamp(), kept_until)
            if isinstance(epoch, int) and isinstance(user_id, str):
                self.add_epoch(user_id, epoch, forget_after)
                count += 1
            if isinstance(sid, str):
                self._revoked[sid] = max(forget_after, self._revoked.get(sid, 0.0))
                count += 1
                ban_end = doc.get("ban_expires_at")
                if isinstance(ban_end, dt.datetime):
                    self._banned[sid] = (str(doc.get("ban_reason", "")), ban_end.timestamp())
        self._track_gaps(positions)
        self._last_success = self._monotonic()
        self.stats.polls += 1
        self.stats.loaded += count
        self._prune()

    def _track_gaps(self, seen: set[int]) -> None:
        """Positions below the highest read that have not arrived yet are re-read until they do."""
        now = self._monotonic()
        for position in seen:
            self._gaps.pop(position, None)
        top = max(seen, default=self._high if self._high is not None else 0)
        # On the first load only recent absences can be records in flight; older ones the TTL removed.
        first = max(min(seen, default=top), top - START_WINDOW)
        start = first if self._high is None else self._high
        for position in range(start + 1, top):
            if position not in seen and len(self._gaps) < MAX_GAPS:
                self._gaps.setdefault(position, now)
        self._high = max(top, self._high or 0)
        for position in [p for p, since in self._gaps.items() if now - since > GAP_TIMEOUT_S]:
            del self._gaps[position]
            log.warning("revocation_position_skipped", position=position)

    def _prune(self) -> None:
        now = self._clock()
        if self.stats.polls % 50 == 0:
            for sid in [sid for sid, until in self._revoked.items() if until < now]:
                del self._revoked[sid]
                self._banned.pop(sid, None)
            for user_id in [u for u, (_, until) in self._epochs.items() if until < now]:
                del self._epochs[user_id]

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self.refresh_once()
            except (StoreUnavailable, StoreFailure) as exc:
                self.stats.failures += 1
                if self.stats.failures % 20 == 1:
                    log.warning(
                        "revocation_refresh_failed", error=type(exc).__name__, staleness=self.staleness_s()
                    )
            if self._stopping:
                # PyMongo can absorb a cancellation that lands mid-operation (the call then
                # returns or raises AutoReconnect); without this check stop() waited forever.
                return
            await asyncio.sleep(self._poll_interval)

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name="revocation-cache")

    async def stop(self) -> None:
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

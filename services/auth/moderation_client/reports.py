"""The report buffer: violation reports never block a request; a flusher delivers them.

Bounded: when full, the oldest report is dropped (and counted). A report moderation
refuses (4xx) will never be accepted: it leaves the buffer counted as rejected, never as
delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import structlog

from services.auth.moderation_client.answers import ModerationRejected, ModerationUnavailable
from services.auth.moderation_client.metrics import ClientStats
from services.auth.moderation_client.transport import ModerationTransport, new_idempotency_key

log = structlog.get_logger("authgate.moderation_client")


class ReportBuffer:
    def __init__(self, transport: ModerationTransport, size: int, stats: ClientStats) -> None:
        self._transport = transport
        self.size = size
        self.stats = stats
        # (path, body, idempotency key): a redelivery after a lost answer counts once
        self.items: deque[tuple[str, dict[str, Any], str]] = deque()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self.items)

    def enqueue(self, path: str, body: dict[str, Any], key: str | None = None) -> None:
        """Queue a report; `key`: the Idempotency-Key of a call it repeats (else a new one)."""
        if len(self.items) >= self.size:
            self.items.popleft()
            self.stats.dropped += 1
            log.warning("moderation_report_dropped", dropped=self.stats.dropped)
        self.items.append((path, body, key or new_idempotency_key()))
        self.stats.buffered = len(self.items)
        self._wake.set()

    async def drain(self) -> None:
        """Deliver in order; stops at the first unavailable answer (the report stays queued)."""
        while self.items:
            path, body, key = self.items[0]
            try:
                await self._transport.call(path, body, key)
            except ModerationRejected:
                self.stats.rejected += 1
            else:
                self.stats.delivered += 1
            self.items.popleft()
            self.stats.buffered = len(self.items)

    async def run(self) -> None:
        """The background flusher: wakes on a new report, or each second to retry."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()
            self._wake.clear()
            with contextlib.suppress(ModerationUnavailable):
                await self.drain()

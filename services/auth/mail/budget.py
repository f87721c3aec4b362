"""How often one address may be mailed a link: a cooldown, a per-account limit, an hourly cap.

A refusal is silent: the caller still answers its generic 200 and queues a suppressed entry, so a
per-account limit never becomes a 429 that tells an account exists or lets anyone block its
owner. Every check runs the same queries whatever the address, so timing tells nothing either.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from services.auth.one_time_tokens import OneTimeTokens
from services.auth.store import OutboxRepository

# One link per address per minute at most, whoever asks: no flooding an inbox by asking again.
MAIL_COOLDOWN = dt.timedelta(seconds=60)
# At most this many mails of one kind to one recipient per hour, whatever the limits say.
MAILS_PER_HOUR = 5
HOUR = dt.timedelta(hours=1)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class AccountLimit:
    """Requests naming one account (LibreChat's `*_MAX` / `*_WINDOW`, applied per target)."""

    max: int
    window: dt.timedelta


class MailBudget:
    def __init__(
        self,
        entries: OutboxRepository,
        tokens: OneTimeTokens,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._entries = entries
        self._tokens = tokens
        self._clock = clock

    async def allows(self, kind: str, owner: str, to: str, per_account: AccountLimit) -> bool:
        """Whether a `kind` link for `owner` may go to `to` now (before this request is queued)."""
        now = self._clock()
        cooling = await self._tokens.issued_recently(kind, owner, MAIL_COOLDOWN)
        asked = await self._entries.count_for(to, kind, now - per_account.window, mailed_only=False)
        mailed = await self._entries.count_for(to, kind, now - HOUR, mailed_only=True)
        return not cooling and asked < per_account.max and mailed < MAILS_PER_HOUR

    async def under_hourly_cap(self, kind: str, to: str) -> bool:
        """A notice (no link, no cooldown) still goes at most five times an hour to one address."""
        since = self._clock() - HOUR
        return await self._entries.count_for(to, kind, since, mailed_only=True) < MAILS_PER_HOUR

"""What moderation answers, as auth acts on it, and how a call can fail."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.timefmt import iso_from_ms, parse_iso_ms


def wall_ms() -> int:
    """The default wall clock in milliseconds; ban expiries are wall-clock instants."""
    return int(time.time() * 1000)


def account_subject(email_normalized: str, key: bytes) -> str:
    """`account:<hex HMAC-SHA256>`: moderation throttles an account without ever seeing its email."""
    digest = hmac.new(key, email_normalized.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"account:{digest}"


@dataclass(frozen=True)
class BanInfo:
    """A ban as auth acts on it.

    `created_at_ms` is when the ban began, on moderation's clock: the list's `created_at`, a ban
    change's `at` in the feed, an event answer's `created_at`. An answer without it (a moderation
    older than that field) leaves it None; the ban cache then stamps the time it learned the ban,
    which is never earlier than the ban's start.
    """

    subject: str
    reason: str
    expires_at_ms: int
    created_at_ms: int | None = None

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at_ms / 1000, UTC)

    @property
    def created_at(self) -> datetime | None:
        return None if self.created_at_ms is None else datetime.fromtimestamp(self.created_at_ms / 1000, UTC)

    def expires_at_iso(self) -> str:
        return iso_from_ms(self.expires_at_ms)

    def retry_after(self, now_ms: int | None = None) -> int:
        now = wall_ms() if now_ms is None else now_ms
        return max(0, -(-(self.expires_at_ms - now) // 1000))

    def active(self, now_ms: int | None = None) -> bool:
        return self.expires_at_ms > (wall_ms() if now_ms is None else now_ms)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> BanInfo:
        """A ban from the list, a feed change or an event answer (whichever start field it has)."""
        started = data.get("created_at") or data.get("at")
        return cls(
            str(data["subject"]),
            str(data["reason"]),
            parse_iso_ms(str(data["expires_at"])),
            parse_iso_ms(str(started)) if started else None,
        )


@dataclass(frozen=True)
class Decision:
    """What auth acts on: `allowed`, and for a refusal why and for how long."""

    allowed: bool
    retry_after: int
    limit: int
    remaining: int
    score: int
    ban: BanInfo | None = None
    degraded: bool = False  # answered locally because moderation was unavailable


class ModerationUnavailable(Exception):
    """No usable answer: timeout, connection error, 5xx, or an open circuit.

    `retryable`: another replica may well answer (no connection, a timeout, a 502/503/504 from
    the balancer or a replica whose store is away), as opposed to a 500 or a malformed answer.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ModerationRejected(Exception):
    """Moderation answered 4xx: our request or key is wrong; retrying will not help."""


class ModerationMisconfigured(ModerationRejected):
    """Moderation answered 401/403: auth's MODERATION_API_KEY is wrong or lacks a scope."""

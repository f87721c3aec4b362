"""What goes into the engine (an event, a violation) and what comes out (a decision).

Plain data, shared by the engine, the moderation API and auth's fallback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.moderation.store import BanState


class SubjectExempt(ValueError):
    """A ban on a trusted proxy or an exempt network would lock out everyone behind it."""


@dataclass(frozen=True)
class Event:
    type: str
    ip: str
    user_id: str | None = None
    account: str | None = None  # `account:<hmac>` subject
    device_trusted: bool = False
    release: bool = False
    submission: bool = False  # reset_password / verify_email: the token is submitted, not requested
    second_factor: bool = False  # login: the second step (a TOTP or backup code), not the password


@dataclass(frozen=True)
class Violation:
    type: str
    ip: str | None = None
    user_id: str | None = None
    score: int | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds
    limit: int
    remaining: int
    score: int
    ban: BanState | None
    now_ms: int


def seconds_until(at_ms: int, now_ms: int) -> int:
    return max(0, math.ceil((at_ms - now_ms) / 1000))


def effective_kind(event: Event) -> str:
    """The limit, window and score an event counts against.

    A token submission (`submission`) and a login's second step (`second_factor`) have limits of
    their own (LibreChat's `*_SUBMISSION_*` and `TWO_FACTOR_TEMP_*`) but travel under their
    event's type, so a caller's key needs no scope beyond the type it already reports.
    """
    if event.submission:
        return f"{event.type}_submission"
    if event.second_factor:
        return "two_factor_temp"
    return event.type

"""What the engine asks of a store, and what a store answers.

The engine turns one event into one `SubjectOp` per subject; a store applies
each op atomically (a Lua script in Redis, a plain function in memory) and the
ops of one event in one round trip. Both stores implement exactly this
contract, and one test suite runs against both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

WindowMode = Literal["hit", "check", "record", "lease", "release", "uncount"]
ChangeAction = Literal["ban", "unban"]
MAX_BAN_HISTORY = 64  # escalation needs the count of recent bans, never more than this
# How long an op's `once` marker keeps its first result: a caller's retry comes within seconds,
# the contract promises at least a minute.
ONCE_TTL_MS = 120_000


@dataclass(frozen=True)
class WindowOp:
    """One sliding window of a subject.

    `hit` counts the occurrence when under the limit (and is exceeded otherwise);
    `check` only looks; `record` always counts and keeps the newest `max` entries;
    `lease`/`release` take and give back an in-flight slot that frees itself after
    `window_ms`; `uncount` takes back the entry a `hit` made at `now` (a refused attempt).
    """

    name: str
    mode: WindowMode
    max: int
    window_ms: int


@dataclass(frozen=True)
class SubjectOp:
    subject: str
    check_ban: bool = True
    windows: tuple[WindowOp, ...] = ()
    score_always: int = 0
    score_on_exceed: int = 0  # added when a `hit` or `lease` window is exceeded
    violation: str = ""
    ban_reason: str = ""
    actor: str = ""
    # A marker from the caller's idempotency key: an op on the same subject with the same marker
    # within ONCE_TTL_MS counts nothing and answers the first op's result again (`replayed`).
    once: str = ""


@dataclass(frozen=True)
class BanState:
    subject: str
    reason: str
    created_at_ms: int
    expires_at_ms: int
    by: str
    automatic: bool
    violation: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "subject": self.subject,
                "reason": self.reason,
                "created_at": self.created_at_ms,
                "expires_at": self.expires_at_ms,
                "by": self.by,
                "automatic": self.automatic,
                "violation": self.violation,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> BanState:
        data: dict[str, Any] = json.loads(text)
        return cls(
            subject=str(data["subject"]),
            reason=str(data["reason"]),
            created_at_ms=int(data["created_at"]),
            expires_at_ms=int(data["expires_at"]),
            by=str(data["by"]),
            automatic=bool(data["automatic"]),
            violation=str(data.get("violation", "")),
        )


@dataclass(frozen=True)
class WindowResult:
    exceeded: bool
    count: int
    retry_after_ms: int


@dataclass(frozen=True)
class SubjectResult:
    subject: str
    now_ms: int
    ban: BanState | None  # the active ban, found or created by this op
    new_ban: bool
    windows: tuple[WindowResult, ...]
    score: int  # the score reached (a ban then resets it to 0)
    threshold: bool  # the score reached BAN_INTERVAL (banned, or reset when bans are off)
    replayed: bool = False  # the first result of an op with the same `once` marker, nothing counted


@dataclass(frozen=True)
class Change:
    """One audit record; ban and unban records also feed `GET /v1/bans/changes`."""

    action: ChangeAction
    subject: str
    reason: str
    at_ms: int
    by: str
    expires_at_ms: int | None = None
    automatic: bool = False
    violation: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "action": self.action,
                "subject": self.subject,
                "reason": self.reason,
                "at": self.at_ms,
                "by": self.by,
                "expires_at": self.expires_at_ms,
                "automatic": self.automatic,
                "violation": self.violation,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Change:
        data: dict[str, Any] = json.loads(text)
        action: ChangeAction = "ban" if data["action"] == "ban" else "unban"
        expires = data.get("expires_at")
        return cls(
            action=action,
            subject=str(data["subject"]),
            reason=str(data["reason"]),
            at_ms=int(data["at"]),
            by=str(data["by"]),
            expires_at_ms=None if expires is None else int(expires),
            automatic=bool(data.get("automatic", False)),
            violation=str(data.get("violation", "")),
        )


@dataclass(frozen=True)
class FeedEntry:
    cursor: str
    change: Change


@dataclass(frozen=True)
class FeedPage:
    cursor: str
    reset: bool
    entries: tuple[FeedEntry, ...] = ()


@dataclass(frozen=True)
class BanPage:
    bans: tuple[BanState, ...]
    next: str | None
    now_ms: int


class Store(Protocol):
    """Atomic per-subject operations plus the global ban index, change feed and audit trail."""

    kind: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def apply(self, ops: Sequence[SubjectOp], now_ms: int | None = None) -> list[SubjectResult]:
        """Apply every op, each atomically, in one round trip."""
        ...

    async def set_ban(
        self, subject: str, reason: str, duration_ms: int, by: str, now_ms: int | None = None
    ) -> BanState: ...

    async def delete_ban(self, subject: str, now_ms: int | None = None) -> tuple[int, BanState | None]:
        """Lift the ban and reset the score; returns the store's clock and the ban that was active."""
        ...

    async def record_change(self, change: Change, ban: BanState | None) -> str:
        """Append to the feed/audit stream and update the ban index; returns the new cursor.

        The cluster store answers "" when it kept the append for a background retry (the ban is
        in force already; the feed catches up).
        """
        ...

    async def list_bans(self, after: str | None, limit: int, now_ms: int | None = None) -> BanPage: ...

    async def feed(self, since: str | None, limit: int) -> FeedPage: ...

    async def audit(self, subject: str | None, since_ms: int | None, limit: int) -> list[Change]: ...


def change_for(ban: BanState) -> Change:
    """The feed record of a ban, as the engine writes it."""
    return Change(
        "ban",
        ban.subject,
        ban.reason,
        ban.created_at_ms,
        ban.by,
        ban.expires_at_ms,
        ban.automatic,
        ban.violation,
    )


def parse_cursor(cursor: str) -> tuple[str, int, int] | None:
    """`<epoch>.<ms>-<seq>` → (epoch, ms, seq); None when malformed."""
    epoch, dot, position = cursor.partition(".")
    ms, dash, seq = position.partition("-")
    if not (dot and dash and epoch and ms.isdigit() and seq.isdigit()):
        return None
    return epoch, int(ms), int(seq)


def stream_position(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms or 0), int(seq or 0)


def resolve_feed(since: str | None, epoch: str, trimmed: str, last: str) -> Literal["reset", "empty", "read"]:
    """Decide whether a cursor can resume: same store generation, not trimmed away, not ahead."""
    if since is None:
        return "reset"
    parsed = parse_cursor(since)
    if parsed is None or parsed[0] != epoch:
        return "reset"
    position = parsed[1:]
    if position < stream_position(trimmed) or position > stream_position(last):
        return "reset"
    return "empty" if position == stream_position(last) else "read"


def cursor_of(epoch: str, stream_id: str) -> str:
    return f"{epoch}.{stream_id}"

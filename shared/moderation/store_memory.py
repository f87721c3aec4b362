"""The embedded store: the Redis store's semantics in one process's memory.

It serves one replica only (each process would keep its own counts), which is
why the service refuses MODERATION_REPLICAS_SHARED=true without REDIS_URI. Each
op runs without awaiting, so it is atomic under asyncio exactly as a Lua script
is atomic in Redis. Idle subjects are swept so memory stays bounded.
"""

from __future__ import annotations

import bisect
import dataclasses
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.moderation.policy import BanPolicy
from shared.moderation.store import (
    MAX_BAN_HISTORY,
    ONCE_TTL_MS,
    BanPage,
    BanState,
    Change,
    FeedEntry,
    FeedPage,
    SubjectOp,
    SubjectResult,
    WindowOp,
    WindowResult,
    cursor_of,
    resolve_feed,
)

SWEEP_EVERY_OPS = 4096
SWEEP_EVERY_MS = 10_000


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Subject:
    ban: BanState | None = None
    scores: deque[tuple[int, int]] = field(default_factory=deque)  # (at, score), oldest first
    history: deque[int] = field(default_factory=deque)  # ban starts, oldest first
    windows: dict[str, deque[int]] = field(default_factory=dict)  # timestamps, oldest first
    keep_until_ms: int = 0  # the latest expiry of anything stored here

    def keep(self, until_ms: int) -> None:
        self.keep_until_ms = max(self.keep_until_ms, until_ms)


def _purge(entries: deque[int], cutoff: int) -> None:
    while entries and entries[0] <= cutoff:
        entries.popleft()


def _uncount(entries: deque[int], at: int) -> None:
    """Remove the newest entry made at `at` (Redis: LREM key 1 at)."""
    for index in range(len(entries) - 1, -1, -1):
        if entries[index] == at:
            del entries[index]
            return
        if entries[index] < at:
            return


def _window(state: _Subject, op: WindowOp, now: int) -> WindowResult:
    entries = state.windows.setdefault(op.name, deque())
    _purge(entries, now - op.window_ms)
    exceeded = False
    if op.mode in ("hit", "lease"):
        if len(entries) >= op.max:
            exceeded = True
        else:
            entries.append(now)
            state.keep(now + op.window_ms)
    elif op.mode == "record":
        entries.append(now)
        while len(entries) > op.max:
            entries.popleft()
        state.keep(now + op.window_ms)
        exceeded = len(entries) >= op.max
    elif op.mode == "check":
        exceeded = len(entries) >= op.max
    elif op.mode == "release" and entries:
        entries.popleft()
    elif op.mode == "uncount":
        _uncount(entries, now)
    count = len(entries)
    retry = entries[count - op.max] + op.window_ms - now if exceeded else 0
    if not entries:
        del state.windows[op.name]
    return WindowResult(exceeded, count, retry)


class MemoryStore:
    kind = "memory"

    def __init__(self, bans: BanPolicy, audit_max_len: int = 100_000) -> None:
        self.bans = bans
        self.audit_max_len = audit_max_len
        self._subjects: dict[str, _Subject] = {}
        self._epoch = secrets.token_hex(6)
        self._stream: deque[tuple[int, Change]] = deque()
        self._seq = 0
        self._trimmed = 0
        self._index: dict[str, BanState] = {}
        self._ops = 0
        self._last_sweep = 0
        self._once: dict[tuple[str, str], tuple[int, SubjectResult]] = {}  # (subject, marker)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    # Per-subject ops --------------------------------------------------------------------

    def _now(self, now_ms: int | None) -> int:
        return wall_clock_ms() if now_ms is None else now_ms

    def _state(self, subject: str) -> _Subject:
        state = self._subjects.get(subject)
        if state is None:
            state = self._subjects[subject] = _Subject()
        return state

    def _active_ban(self, state: _Subject, now: int) -> BanState | None:
        if state.ban is not None and state.ban.expires_at_ms > now:
            return state.ban
        state.ban = None
        return None

    def _apply_one(self, op: SubjectOp, now: int) -> SubjectResult:
        """The op, or the first result of an op with the same `once` marker (as Redis's script)."""
        if not op.once:
            return self._apply_counted(op, now)
        marker = (op.subject, op.once)
        prior = self._once.get(marker)
        if prior is not None and prior[0] > now:
            return dataclasses.replace(prior[1], replayed=True)
        result = self._apply_counted(op, now)
        self._once[marker] = (now + ONCE_TTL_MS, result)
        return result

    def _apply_counted(self, op: SubjectOp, now: int) -> SubjectResult:
        state = self._state(op.subject)
        if op.check_ban:
            ban = self._active_ban(state, now)
            if ban is not None:
                return SubjectResult(op.subject, now, ban, False, (), 0, False)
        results = tuple(_window(state, window, now) for window in op.windows)
        scoring = any(
            r.exceeded for w, r in zip(op.windows, results, strict=True) if w.mode in ("hit", "lease")
        )
        add = op.score_always + (op.score_on_exceed if scoring else 0)
        policy = self.bans
        while state.scores and state.scores[0][0] <= now - policy.violation_window_ms:
            state.scores.popleft()
        score = sum(value for _, value in state.scores)
        created: BanState | None = None
        threshold = False
        if add > 0:
            state.scores.append((now, add))
            state.keep(now + policy.violation_window_ms)
            score += add
            if score >= policy.interval:
                threshold = True
                state.scores.clear()
                if policy.automatic:
                    created = self._escalated_ban(state, op, now)
        return SubjectResult(op.subject, now, created, created is not None, results, score, threshold)

    def _escalated_ban(self, state: _Subject, op: SubjectOp, now: int) -> BanState:
        policy = self.bans
        _purge(state.history, now - policy.escalation_window_ms)
        level = len(state.history)
        duration = min(int(policy.duration_ms * policy.escalation_factor**level), policy.max_duration_ms)
        ban = BanState(op.subject, op.ban_reason, now, now + duration, op.actor, True, op.violation)
        self._remember_ban(state, ban, now)
        return ban

    def _remember_ban(self, state: _Subject, ban: BanState, now: int) -> None:
        state.ban = ban
        state.history.append(now)
        while len(state.history) > MAX_BAN_HISTORY:
            state.history.popleft()
        state.keep(max(ban.expires_at_ms, now + self.bans.escalation_window_ms))

    async def apply(self, ops: Sequence[SubjectOp], now_ms: int | None = None) -> list[SubjectResult]:
        now = self._now(now_ms)
        results = [self._apply_one(op, now) for op in ops]
        self._maybe_sweep(now, len(ops))
        return results

    async def set_ban(
        self, subject: str, reason: str, duration_ms: int, by: str, now_ms: int | None = None
    ) -> BanState:
        now = self._now(now_ms)
        state = self._state(subject)
        state.scores.clear()
        ban = BanState(subject, reason, now, now + duration_ms, by, False)
        self._remember_ban(state, ban, now)
        return ban

    async def delete_ban(self, subject: str, now_ms: int | None = None) -> tuple[int, BanState | None]:
        now = self._now(now_ms)
        state = self._subjects.get(subject)
        if state is None:
            return now, None
        ban = self._active_ban(state, now)
        state.ban = None
        state.scores.clear()
        return now, ban

    def _maybe_sweep(self, now: int, ops: int) -> None:
        self._ops += ops
        if self._ops < SWEEP_EVERY_OPS and now - self._last_sweep < SWEEP_EVERY_MS:
            return
        self._ops = 0
        self._last_sweep = now
        for subject in [s for s, state in self._subjects.items() if state.keep_until_ms <= now]:
            del self._subjects[subject]
        for marker in [m for m, (until, _) in self._once.items() if until <= now]:
            del self._once[marker]

    # Index, feed and audit ----------------------------------------------------------------

    async def record_change(self, change: Change, ban: BanState | None) -> str:
        for subject in [s for s, b in self._index.items() if b.expires_at_ms <= change.at_ms]:
            del self._index[subject]
        if change.action == "ban" and ban is not None:
            self._index[change.subject] = ban
        else:
            self._index.pop(change.subject, None)
        self._seq += 1
        self._stream.append((self._seq, change))
        while len(self._stream) > self.audit_max_len:
            self._trimmed = self._stream.popleft()[0]
        return cursor_of(self._epoch, f"0-{self._seq}")

    async def list_bans(self, after: str | None, limit: int, now_ms: int | None = None) -> BanPage:
        now = self._now(now_ms)
        subjects = sorted(self._index)
        start = bisect.bisect_right(subjects, after) if after is not None else 0
        page = subjects[start : start + limit]
        more = start + limit < len(subjects)
        bans = tuple(self._index[s] for s in page if self._index[s].expires_at_ms > now)
        return BanPage(bans, page[-1] if more and page else None, now)

    async def feed(self, since: str | None, limit: int) -> FeedPage:
        last = f"0-{self._seq}"
        current = cursor_of(self._epoch, last)
        decision = resolve_feed(since, self._epoch, f"0-{self._trimmed}", last)
        if decision == "reset" or since is None:
            return FeedPage(current, True)
        if decision == "empty":
            return FeedPage(since, False)
        position = int(since.rpartition("-")[2])
        first_seq = self._stream[0][0] if self._stream else self._seq + 1
        entries = [
            FeedEntry(cursor_of(self._epoch, f"0-{seq}"), change)
            for seq, change in list(self._stream)[max(0, position + 1 - first_seq) :][:limit]
        ]
        return FeedPage(entries[-1].cursor if entries else since, False, tuple(entries))

    async def audit(self, subject: str | None, since_ms: int | None, limit: int) -> list[Change]:
        found: list[Change] = []
        for _, change in reversed(self._stream):
            if since_ms is not None and change.at_ms < since_ms:
                continue
            if subject is not None and change.subject != subject:
                continue
            found.append(change)
            if len(found) >= limit:
                break
        found.reverse()
        return found

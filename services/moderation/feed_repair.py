"""Getting every ban to the feed when the ban and its feed entry live on two Cluster masters.

On a cluster a ban is two calls: the subject's script writes the ban (its slot), then the feed
append updates the ban index and the change feed (the `{global}` slot). The second can fail
after the first succeeded; the ban is then in force (checks read the subject's keys) but
readers of the ban list and the feed (auth's ban follower, the proxies) do not know it. Two
remedies, both built on an idempotent append (APPEND_CHANGE skips what the index already says):

- `PendingChanges`: appends that failed are kept in order and retried in the background;
  while any wait, later ones queue behind them, so a ban and its unban never swap.
- `reconcile()`: a periodic check of the bans in force against the ban index that the feed
  writes, for what no process retried (it crashed between the calls): active bans the index
  lacks are appended as bans, index entries whose ban is gone as unbans.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from shared.moderation.store import BanState, Change, change_for

log = structlog.get_logger("authgate.moderation")

MAX_PENDING = 10_000  # beyond this the oldest are dropped: reconcile() finds them again
RECONCILER = "moderation-reconcile"

Append = Callable[[Change, BanState | None], Awaitable[str]]


class PendingChanges:
    """Feed appends that failed, oldest first, retried in order until each one lands."""

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[Change, BanState | None]] = collections.deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, change: Change, ban: BanState | None) -> None:
        if len(self._queue) >= MAX_PENDING:
            dropped, _ = self._queue.popleft()
            log.warning("feed_pending_dropped", subject=dropped.subject, detail="reconcile will find it")
        self._queue.append((change, ban))

    async def drain(self, append: Append) -> int:
        """Append the waiting changes in order; stop at the first failure (the caller's exception)."""
        done = 0
        while self._queue:
            change, ban = self._queue[0]
            await append(change, ban)
            self._queue.popleft()
            done += 1
        return done


@dataclass(frozen=True)
class Drift:
    """What the ban index says wrongly: bans it lacks, and subjects it lists whose ban is gone."""

    missing: tuple[BanState, ...]
    lifted: tuple[str, ...]


def drift(
    in_force: Sequence[BanState],
    indexed: dict[str, BanState],
    lifted: Sequence[str],
    now_ms: int,
    grace_ms: int,
) -> Drift:
    """Compare; a ban younger than `grace_ms` is left alone (its own append may be under way)."""
    missing = tuple(
        ban
        for ban in in_force
        if ban.expires_at_ms > now_ms
        and ban.created_at_ms <= now_ms - grace_ms
        and indexed.get(ban.subject) != ban
    )
    return Drift(missing, tuple(lifted))


def unban_for(subject: str, now_ms: int) -> Change:
    return Change(
        "unban",
        subject,
        "reconcile: the ban was lifted but its unban never reached the feed",
        now_ms,
        RECONCILER,
    )


async def repair(found: Drift, append: Append, now_ms: int) -> int:
    """Append what the index lacks; each append is idempotent, so two reconcilers do no harm."""
    for ban in found.missing:
        log.warning("feed_reconciled", subject=ban.subject, action="ban")
        await append(change_for(ban), ban)
    for subject in found.lifted:
        log.warning("feed_reconciled", subject=subject, action="unban")
        await append(unban_for(subject, now_ms), None)
    return len(found.missing) + len(found.lifted)


async def collect(keys: AsyncIterator[str]) -> list[str]:
    return [key async for key in keys]

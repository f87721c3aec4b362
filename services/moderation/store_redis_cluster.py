"""The shared store on a Redis Cluster, through redis-py's own cluster client and its pipeline.

Same keys and scripts as the standalone store: each script touches one slot (the subject's
hash tag, or `{global}`), so redis-py routes each EVALSHA to the master of that slot and
follows MOVED/ASK itself; an event's scripts go out as one cluster pipeline (one round trip
per master involved). What this module adds is the outage policy:

- redis-py is told not to retry (`Retry(..., 0)`): its pipeline retry re-sends commands that
  may already have run on another master, and a re-sent window hit would count twice. A
  failed call is `StoreUnavailable` (503) at once, as in standalone mode.
- After such a failure the store asks the cluster for its slot map again (at most a few
  times a second, keeping the connections to healthy masters), so it finds a promoted replica
  by itself. Never `aclose()` while calls are in flight: closing a connection another call is
  writing to breaks that call outside redis-py's error types (an AttributeError, a 500); for
  the same reason redis-py's own every-Nth-MOVED `aclose()` is off (`reinitialize_steps=0`) and
  single keyed commands, whose CLUSTERDOWN handling also closes everything, go through the
  pipeline too.
- A master that never saw the scripts (a promoted replica, a restarted node) answers
  NOSCRIPT; those calls are sent again as EVAL, which also caches the script there.
- A ban and its feed entry are two calls on two masters: a failed append is retried, then
  kept and retried in the background, and a periodic reconcile catches what a crash lost
  (`feed_repair`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import structlog
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)

from services.moderation import feed_repair
from services.moderation.lua import APPEND_CHANGE, Script
from services.moderation.store_redis import (
    CALL_TIMEOUT_S,
    CONNECTION_OPTIONS,
    UNAVAILABLE,
    RedisStore,
    ban_from,
)
from shared.errors import StoreUnavailable
from shared.moderation.policy import BanPolicy
from shared.moderation.store import BanState, Change, cursor_of

log = structlog.get_logger("authgate.moderation")

# A failover takes a few seconds; a call never waits for one, it answers 503 within this bound.
CLUSTER_CALL_TIMEOUT_S = 2.0
MAX_CONNECTIONS_PER_NODE = 64
REFRESH_EVERY_S = 0.2  # slot map refreshes after failures, at most this often
# ClusterError covers CLUSTERDOWN (a master lost, not yet replaced) and redis-py's "TTL exhausted".
CLUSTER_UNAVAILABLE = (*UNAVAILABLE, ClusterError, TryAgainError)
# A failed feed append: tried again at once (a connection refused, a slot just moved), then
# left to the background, which retries every second and reconciles every minute or so.
APPEND_ATTEMPTS = 3
APPEND_BACKOFF_S = 0.2
REPAIR_INTERVAL_S = 1.0
RECONCILE_INTERVAL_S = 60.0
RECONCILE_GRACE_MS = 10_000  # a younger ban's own append may still be under way
RECONCILE_SCAN_TIMEOUT_S = 30.0  # the SCAN of every master for ban keys, a background read
RECONCILE_BATCH = 1000  # commands per pipeline when reading many ban keys
BAN_FIELDS = ("expires_at", "created_at", "reason", "by", "automatic", "violation")
Command = tuple[str | int | float, ...]
T = TypeVar("T")


def is_outage(exc: BaseException) -> bool:
    """An error the cluster recovers from by itself; keys in two slots are a bug, never an outage."""
    if isinstance(exc, CLUSTER_UNAVAILABLE):
        return True
    return isinstance(exc, RedisClusterException) and "same key slot" not in str(exc)


class RedisClusterStore(RedisStore):
    kind = "redis-cluster"

    def __init__(
        self,
        seeds: Sequence[tuple[str, int]],
        bans: BanPolicy,
        audit_max_len: int = 100_000,
        prefix: str = "mod",
        options: Mapping[str, Any] | None = None,
        tls: bool = False,
        reconcile_every_s: float = RECONCILE_INTERVAL_S,
        reconcile_grace_ms: int = RECONCILE_GRACE_MS,
    ) -> None:
        """`seeds`: some of the nodes (LibreChat's REDIS_URI list); the client discovers the rest."""
        self._reconcile_every_s = reconcile_every_s
        self._reconcile_grace_ms = reconcile_grace_ms
        self._setup(bans, audit_max_len, prefix)
        connection = {**CONNECTION_OPTIONS, "retry": Retry(NoBackoff(), 0), **(options or {})}
        self._cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in seeds],
            max_connections=MAX_CONNECTIONS_PER_NODE,
            reinitialize_steps=0,
            ssl=tls,
            **connection,
        )
        self._scripts["append_change"] = Script("append_change", APPEND_CHANGE)
        self._sources = {script.sha: script.source for script in self._scripts.values()}
        self._pending = feed_repair.PendingChanges()
        self._in_flight = asyncio.Semaphore(MAX_CONNECTIONS_PER_NODE)
        self._refreshing = asyncio.Lock()
        self._refreshed_at = 0.0
        self._draining = asyncio.Lock()
        self._repairing: asyncio.Task[None] | None = None

    # Lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        await super().open()
        self._repairing = asyncio.create_task(self._repair_loop())

    async def close(self) -> None:
        if self._repairing is not None:
            self._repairing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._repairing
        await self._cluster.aclose()

    async def ping(self) -> bool:
        """Ready when the cluster says ok and every master that serves slots answers."""

        async def check() -> bool:
            info = await self._cluster.cluster_info()
            if info.get("cluster_state") != "ok":
                return False
            return bool(await self._cluster.ping(target_nodes=RedisCluster.PRIMARIES))

        try:
            return await self._call(check)
        except StoreUnavailable:
            return False

    async def _refresh_topology(self) -> None:
        """Ask the cluster which master serves which slot; live connections stay open."""
        if self._refreshing.locked() or time.monotonic() - self._refreshed_at < REFRESH_EVERY_S:
            return
        async with self._refreshing:
            self._refreshed_at = time.monotonic()
            try:
                async with asyncio.timeout(CALL_TIMEOUT_S):
                    await self._cluster.nodes_manager.initialize()
            except Exception as exc:  # the next failing call asks again
                if not is_outage(exc):
                    raise

    async def _load_scripts(self) -> None:
        """SCRIPT LOAD on every master (redis-py sends it to all primaries)."""
        await self._call(self._load_everywhere)

    async def _load_everywhere(self) -> None:
        for script in self._scripts.values():
            await self._cluster.script_load(script.source)

    async def _call(self, work: Callable[[], Awaitable[T]], bound_s: float = CLUSTER_CALL_TIMEOUT_S) -> T:
        """Run `work` within the bound; an outage becomes `StoreUnavailable`.

        redis-py's cluster nodes refuse a connection beyond their maximum instead of waiting for
        one; each call holds at most one connection per node, so bounding the calls in flight
        makes a burst wait its turn (within the bound) instead of failing.
        """
        try:
            async with asyncio.timeout(bound_s), self._in_flight:
                await self._cluster.initialize()
                return await work()
        except Exception as exc:
            if not is_outage(exc):
                raise
            await self._refresh_topology()
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    # Scripts ----------------------------------------------------------------------------

    async def _pipeline(self, commands: Sequence[Command]) -> list[Any]:
        pipe = self._cluster.pipeline()
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    async def _run(self, commands: list[Command]) -> list[Any]:
        replies = await self._pipeline(commands)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            resend: list[Command] = [
                ("EVAL", self._sources[str(commands[i][1])], *commands[i][2:]) for i in missing
            ]
            for index, reply in zip(missing, await self._pipeline(resend), strict=True):
                replies[index] = reply
        return replies

    async def _eval_all(
        self, calls: Sequence[tuple[str, Sequence[str], Sequence[str | int | float]]]
    ) -> list[Any]:
        commands: list[Command] = [("EVALSHA", sha, len(keys), *keys, *args) for sha, keys, args in calls]
        replies = await self._call(lambda: self._run(commands))
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if any(is_outage(reply) for reply in failed):
            await self._refresh_topology()
            raise StoreUnavailable(str(failed[0]) or type(failed[0]).__name__) from failed[0]
        if failed:
            raise failed[0]
        return replies

    async def _xrevrange(self, stream: str, upper: str, count: int) -> list[Any]:
        (found,) = await self._replies([("XREVRANGE", stream, upper, "-", "COUNT", count)])
        return list(found or [])

    # The feed: the second call of a ban -------------------------------------------------

    @property
    def pending(self) -> int:
        """Feed appends waiting for the background retry."""
        return len(self._pending)

    async def _append(self, change: Change, ban: BanState | None) -> str:
        """One idempotent append; '' when the index already said so."""
        stream_id, epoch = await self._eval("append_change", *self._change_call(change, ban))
        return cursor_of(str(epoch), str(stream_id)) if stream_id else ""

    async def record_change(self, change: Change, ban: BanState | None) -> str:
        """Append, retrying briefly; then keep it for the background and answer '' (no cursor yet).

        The ban itself is already in force, so the caller's answer stands; only the feed lags.
        While older appends wait, this one queues behind them (a ban and its unban keep order).
        """
        if not self._pending:
            for attempt in range(APPEND_ATTEMPTS):
                try:
                    return await self._append(change, ban)
                except StoreUnavailable:
                    if attempt + 1 < APPEND_ATTEMPTS:
                        await asyncio.sleep(APPEND_BACKOFF_S * (attempt + 1))
        self._pending.add(change, ban)
        log.warning(
            "feed_append_deferred", subject=change.subject, action=change.action, pending=self.pending
        )
        return ""

    async def drain(self) -> int:
        """Append what waits, in order; stops at the first outage (`StoreUnavailable`)."""
        async with self._draining:
            return await self._pending.drain(self._append)

    async def reconcile(self, grace_ms: int = RECONCILE_GRACE_MS) -> int:
        """Compare the bans in force with the ban index and append what it lacks; how many."""
        now = int(time.time() * 1000)  # only compared with a grace of seconds: this host's clock will do
        in_force = await self._bans_in_force()
        (raw,) = await self._replies([("HGETALL", self.global_key("bandata"))])
        indexed = {str(subject): BanState.from_json(str(text)) for subject, text in dict(raw).items()}
        listed = [s for s, ban in indexed.items() if ban.expires_at_ms > now + 1000]
        exists = await self._replies([("EXISTS", self.key(subject, "ban")) for subject in listed])
        lifted = [subject for subject, found in zip(listed, exists, strict=True) if not found]
        found = feed_repair.drift(in_force, indexed, lifted, now, grace_ms)
        return await feed_repair.repair(found, self._append, now)

    async def _bans_in_force(self) -> list[BanState]:
        """Every subject's ban hash, found by SCAN on each master (a background check only)."""
        pattern = f"{self.prefix}:{{*}}:ban"
        keys = await self._call(
            lambda: feed_repair.collect(self._cluster.scan_iter(match=pattern, count=1000, _type="HASH")),
            RECONCILE_SCAN_TIMEOUT_S,
        )
        replies = await self._replies([("HMGET", key, *BAN_FIELDS) for key in keys])
        start = len(self.prefix) + 2
        return [
            ban_from(str(key)[start : -len("}:ban")], fields)
            for key, fields in zip(keys, replies, strict=True)
            if fields and fields[0]
        ]

    async def _replies(self, commands: Sequence[Command]) -> list[Any]:
        """Plain commands through the pipeline (never redis-py's single-command path), in batches."""
        replies: list[Any] = []
        for start in range(0, len(commands), RECONCILE_BATCH):
            batch = commands[start : start + RECONCILE_BATCH]
            replies += await self._call(functools.partial(self._pipeline, batch))
        for reply in replies:
            if isinstance(reply, Exception):
                raise StoreUnavailable(str(reply)) if is_outage(reply) else reply
        return replies

    async def _repair_loop(self) -> None:
        """Retry waiting appends every second; reconcile now and then (jittered across replicas)."""
        every = self._reconcile_every_s
        next_check = time.monotonic() + every * random.uniform(0.5, 1.5)  # noqa: S311
        while True:
            await asyncio.sleep(REPAIR_INTERVAL_S)
            try:
                if self._pending:
                    await self.drain()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + every * random.uniform(0.5, 1.5)  # noqa: S311
                    await self.reconcile(self._reconcile_grace_ms)
            except StoreUnavailable:
                continue
            except Exception:
                log.exception("feed_repair_failed")

"""The shared store on a Redis Cluster, through redis-py's own cluster client and its pipeline.

Same keys and scripts as the standalone store: each script touches one slot (the subject's
hash tag, or `{global}`), so redis-py routes each EVALSHA to the master of that slot and
follows MOVED/ASK itself; an event's scripts go out as one cluster pipeline (one round trip
per master involved). What this module adds is the outage policy:

- redis-py is told not to retry (`Retry(..., 0)`): its pipeline retry re-sends commands that
  may already have run on another master, and a re-sent window hit would count twice. A
  failed call is `StoreUnavailable` (503) at once, as in standalone mode.
- After such a failure the client drops its slot map (`aclose()`), so the next call asks the
  cluster again and finds a promoted replica by itself.
- A master that never saw the scripts (a promoted replica, a restarted node) answers
  NOSCRIPT; those calls are sent again as EVAL, which also caches the script there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)

from services.moderation.store_redis import _CONNECTION, CALL_TIMEOUT_S, UNAVAILABLE, RedisStore
from shared.errors import StoreUnavailable
from shared.moderation.policy import BanPolicy

# A failover takes a few seconds; a call never waits for one, it answers 503 within this bound.
CLUSTER_CALL_TIMEOUT_S = 2.0
MAX_CONNECTIONS_PER_NODE = 64
# ClusterError covers CLUSTERDOWN (a master lost, not yet replaced) and redis-py's "TTL exhausted".
CLUSTER_UNAVAILABLE = (*UNAVAILABLE, ClusterError, TryAgainError)
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
    ) -> None:
        """`seeds`: some of the nodes (LibreChat's REDIS_URI list); the client discovers the rest."""
        self._setup(bans, audit_max_len, prefix)
        connection = {**_CONNECTION, "retry": Retry(NoBackoff(), 0), **(options or {})}
        self._cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in seeds],
            max_connections=MAX_CONNECTIONS_PER_NODE,
            ssl=tls,
            **connection,
        )
        self._sources = {script.sha: script.source for script in self._scripts.values()}

    # Lifecycle --------------------------------------------------------------------------

    async def close(self) -> None:
        await self._cluster.aclose()

    async def ping(self) -> bool:
        """Ready when the cluster says ok and every master that serves slots answers."""
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                await self._cluster.initialize()
                info = await self._cluster.cluster_info()
                if info.get("cluster_state") != "ok":
                    return False
                return bool(await self._cluster.ping(target_nodes=RedisCluster.PRIMARIES))
        except Exception as exc:
            if not is_outage(exc):
                raise
            await self._forget_topology()
            return False

    async def _forget_topology(self) -> None:
        """Drop connections and the slot map; the next call rediscovers the masters."""
        try:
            await self._cluster.aclose()
        except Exception as exc:  # closing sockets of a dead node may fail too; nothing to keep
            if not is_outage(exc):
                raise

    async def _load_scripts(self) -> None:
        """SCRIPT LOAD on every master (redis-py sends it to all primaries)."""
        await self._call(self._load_everywhere)

    async def _load_everywhere(self) -> None:
        for script in self._scripts.values():
            await self._cluster.script_load(script.source)

    async def _call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` within the bound; an outage becomes `StoreUnavailable`."""
        try:
            async with asyncio.timeout(CLUSTER_CALL_TIMEOUT_S):
                await self._cluster.initialize()
                return await work()
        except Exception as exc:
            if not is_outage(exc):
                raise
            await self._forget_topology()
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
            await self._forget_topology()
            raise StoreUnavailable(str(failed[0]) or type(failed[0]).__name__) from failed[0]
        if failed:
            raise failed[0]
        return replies

    async def _xrevrange(self, stream: str, upper: str, count: int) -> list[Any]:
        found = await self._call(lambda: self._cluster.xrevrange(stream, upper, "-", count=count))
        return list(found or [])

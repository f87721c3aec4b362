"""The shared store: Redis through `redis.asyncio`, one Lua script per subject.

Every key carries its subject as the hash tag (`mod:{ip:1.2.3.4}:score`), so
one script touches one Cluster slot; the ban index, change feed and audit
stream live under `{global}`. An event costs one round trip: a single EVALSHA,
or one pipeline of them when it has several subjects. Timeouts are short and
never retried: when Redis is away, callers get `StoreUnavailable` at once and
apply their own fail mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.moderation.lua import SCRIPTS, Script, subject_script
from shared.errors import StoreUnavailable
from shared.moderation.policy import BanPolicy
from shared.moderation.store import (
    ONCE_TTL_MS,
    BanPage,
    BanState,
    Change,
    FeedEntry,
    FeedPage,
    SubjectOp,
    SubjectResult,
    WindowResult,
    cursor_of,
    resolve_feed,
)

SOCKET_TIMEOUT_S = 0.5
CALL_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 64
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError, asyncio.TimeoutError)
AUDIT_BATCH = 1000


# Shared by the standalone and the cluster store: short timeouts, no retries of the client's own.
CONNECTION_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_timeout": SOCKET_TIMEOUT_S,
    "socket_connect_timeout": SOCKET_TIMEOUT_S,
    "retry": Retry(NoBackoff(), 0),
    "health_check_interval": 0,
}


class Lane:
    """The hot path: pipelined commands on pooled connections, without redis-py's per-command layers.

    redis-py's client wraps every command in retries, observability hooks and pool locks; for
    one EVALSHA per event that was a large share of the service's CPU. Error replies come back as
    exception objects in the reply list (the connection stays in sync); any other failure drops
    the connection. The semaphore bounds the connections; the socket timeouts bound each call.
    """

    def __init__(self, pool: aioredis.ConnectionPool, size: int) -> None:
        self._pool = pool
        self._make: Callable[[], Any] = pool.make_connection  # untyped in redis-py
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)

    async def execute(self, commands: Sequence[Sequence[str | int | float]]) -> list[Any]:
        async with self._slots:
            connection = self._idle.pop() if self._idle else self._make()
            try:
                await connection.connect()
                await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
                replies: list[Any] = []
                for _ in commands:
                    try:
                        replies.append(await connection.read_response())
                    except ResponseError as exc:
                        replies.append(exc)
            except BaseException:
                await connection.disconnect()
                raise
            self._idle.append(connection)
            return replies

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()
        await self._pool.disconnect()


def _int(value: Any) -> int:
    return int(value) if value not in (None, "", b"") else 0


def ban_from(subject: str, fields: Sequence[Any]) -> BanState:
    """A ban from its hash fields (`expires_at, created_at, reason, by, automatic, violation`)."""
    expires, created, reason, by, automatic, violation = (str(f) if f is not None else "" for f in fields)
    return BanState(subject, reason, int(created), int(expires), by, automatic == "1", violation)


class RedisStore:
    kind = "redis"

    def __init__(
        self,
        url: str,
        bans: BanPolicy,
        audit_max_len: int = 100_000,
        prefix: str = "mod",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """`options`: connection keywords the URL does not carry (REDIS_USERNAME, _PASSWORD, _CA)."""
        self._setup(bans, audit_max_len, prefix)
        connection = {**CONNECTION_OPTIONS, **(options or {})}
        # A bounded pool that makes a burst wait briefly for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=SOCKET_TIMEOUT_S, **connection
        )
        self._client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._lane = Lane(aioredis.ConnectionPool.from_url(url, **connection), MAX_CONNECTIONS)

    def _setup(self, bans: BanPolicy, audit_max_len: int, prefix: str) -> None:
        """Policy, prefix and scripts: everything but the connections (the cluster store has its own)."""
        self.bans = bans
        self.audit_max_len = audit_max_len
        self.prefix = prefix
        self._global = f"{prefix}:{{global}}"
        subject = subject_script(
            bans.violation_window_ms,
            bans.interval,
            bans.automatic,
            bans.duration_ms,
            bans.escalation_window_ms,
            bans.escalation_factor,
            bans.max_duration_ms,
        )
        self._scripts = {**SCRIPTS, "subject": Script("subject", subject)}
        self._subject_sha = self._scripts["subject"].sha

    # Keys -------------------------------------------------------------------------------

    def key(self, subject: str, part: str) -> str:
        """The single place a per-subject key is spelled."""
        return f"{self.prefix}:{{{subject}}}:{part}"

    def global_key(self, part: str) -> str:
        """The single place a `{global}` key (ban index, feed, audit stream) is spelled."""
        return f"{self._global}:{part}"

    @property
    def scripts(self) -> dict[str, Script]:
        return dict(self._scripts)

    # Lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Load the scripts when Redis is up; a later NOSCRIPT reloads them, so start never blocks."""
        with contextlib.suppress(StoreUnavailable):
            await self._load_scripts()

    async def close(self) -> None:
        await self._lane.close()
        await self._client.aclose()
        await self._client.connection_pool.disconnect()

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                return bool(await self._client.ping())
        except UNAVAILABLE:
            return False

    async def _load_scripts(self) -> None:
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                pipe = self._client.pipeline(transaction=False)
                for script in self._scripts.values():
                    pipe.script_load(script.source)
                await pipe.execute()
        except UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def _eval(self, name: str, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """One EVALSHA of a named script."""
        return (await self._eval_all([(self._scripts[name].sha, keys, args)]))[0]

    async def _eval_many(
        self, calls: Sequence[tuple[Sequence[str], Sequence[str | int | float]]]
    ) -> list[Any]:
        """The subject script once per call, all in one round trip."""
        return await self._eval_all([(self._subject_sha, keys, args) for keys, args in calls])

    async def _eval_all(
        self, calls: Sequence[tuple[str, Sequence[str], Sequence[str | int | float]]]
    ) -> list[Any]:
        """EVALSHA each call in one write; reload the scripts once if Redis lost them (a restart)."""
        commands = [("EVALSHA", sha, len(keys), *keys, *args) for sha, keys, args in calls]
        try:
            replies = await self._lane.execute(commands)
            if any(isinstance(reply, NoScriptError) for reply in replies):
                await self._load_scripts()
                missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
                for index, reply in zip(
                    missing, await self._lane.execute([commands[i] for i in missing]), strict=True
                ):
                    replies[index] = reply
        except UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    # Per-subject ops --------------------------------------------------------------------

    def _subject_call(self, op: SubjectOp, now_ms: int | None) -> tuple[list[str], list[str | int | float]]:
        keys = [self.key(op.subject, "ban"), self.key(op.subject, "score"), self.key(op.subject, "hist")]
        keys += [self.key(op.subject, f"w:{window.name}") for window in op.windows]
        args: list[str | int | float] = [
            "" if now_ms is None else now_ms,
            "1" if op.check_ban else "0",
            op.score_always,
            op.score_on_exceed,
            op.ban_reason,
            op.actor,
            op.violation,
            len(op.windows),
        ]
        for window in op.windows:
            args += [window.mode, window.max, window.window_ms]
        if op.once:
            keys.append(self.key(op.subject, f"once:{op.once}"))
            args.append(ONCE_TTL_MS)
        return keys, args

    @staticmethod
    def _subject_result(op: SubjectOp, reply: str) -> SubjectResult:
        replayed = reply.startswith("R")
        now, status, score, threshold, ban_fields, raw = json.loads(reply[1:] if replayed else reply)
        ban = ban_from(op.subject, ban_fields) if status in (1, 2) else None
        raw = raw if isinstance(raw, list) else []  # Lua's empty table encodes as {}
        windows = tuple(
            WindowResult(raw[i] == 1, int(raw[i + 1]), int(raw[i + 2])) for i in range(0, len(raw), 3)
        )
        return SubjectResult(
            op.subject, int(now), ban, status == 2, windows, int(score), threshold == 1, replayed
        )

    async def apply(self, ops: Sequence[SubjectOp], now_ms: int | None = None) -> list[SubjectResult]:
        if not ops:
            return []
        replies = await self._eval_many([self._subject_call(op, now_ms) for op in ops])
        return [self._subject_result(op, reply) for op, reply in zip(ops, replies, strict=True)]

    async def set_ban(
        self, subject: str, reason: str, duration_ms: int, by: str, now_ms: int | None = None
    ) -> BanState:
        keys = [self.key(subject, "ban"), self.key(subject, "score"), self.key(subject, "hist")]
        args: list[str | int | float] = [
            "" if now_ms is None else now_ms,
            duration_ms,
            reason,
            by,
            self.bans.escalation_window_ms,
        ]
        now, expires = await self._eval("set_ban", keys, args)
        return BanState(subject, reason, _int(now), _int(expires), by, False)

    async def delete_ban(self, subject: str, now_ms: int | None = None) -> tuple[int, BanState | None]:
        keys = [self.key(subject, "ban"), self.key(subject, "score")]
        reply = await self._eval("delete_ban", keys, ["" if now_ms is None else now_ms])
        if _int(reply[1]) != 1:
            return _int(reply[0]), None
        return _int(reply[0]), ban_from(subject, reply[2:8])

    # Index, feed and audit ----------------------------------------------------------------

    async def record_change(self, change: Change, ban: BanState | None) -> str:
        stream_id, epoch = await self._eval("record_change", *self._change_call(change, ban))
        return cursor_of(str(epoch), str(stream_id))

    def _change_call(self, change: Change, ban: BanState | None) -> tuple[list[str], list[str | int | float]]:
        keys = [self.global_key(part) for part in ("feed", "meta", "index", "bandata", "expiry")]
        args: list[str | int | float] = [
            change.at_ms,
            change.action,
            change.subject,
            change.to_json(),
            ban.to_json() if ban is not None else "",
            ban.expires_at_ms if ban is not None else 0,
            self.audit_max_len,
            secrets.token_hex(6),
        ]
        return keys, args

    async def list_bans(self, after: str | None, limit: int, now_ms: int | None = None) -> BanPage:
        keys = [self.global_key("index"), self.global_key("bandata")]
        args: list[str | int | float] = ["" if now_ms is None else now_ms, after or "", limit]
        reply = await self._eval("list_bans", keys, args)
        now, more = _int(reply[0]), _int(reply[1]) == 1
        states = [BanState.from_json(text) for text in reply[2:] if text]
        bans = tuple(ban for ban in states if ban.expires_at_ms > now)
        last = states[-1].subject if states else None
        return BanPage(bans, last if more else None, now)

    async def feed(self, since: str | None, limit: int) -> FeedPage:
        keys = [self.global_key("feed"), self.global_key("meta")]
        position = since.partition(".")[2] if since else ""
        if since is not None and not _is_stream_id(position):
            position = ""
        epoch, trimmed, last, entries = await self._eval(
            "read_feed", keys, [secrets.token_hex(6), position, limit]
        )
        epoch, last = str(epoch), str(last)
        current = cursor_of(epoch, last)
        decision = resolve_feed(since, epoch, str(trimmed), last)
        if decision == "reset":
            return FeedPage(current, True)
        if decision == "empty" or since is None:
            return FeedPage(since or current, False)
        found = tuple(
            FeedEntry(cursor_of(epoch, str(sid)), Change.from_json(_field(fv, "r"))) for sid, fv in entries
        )
        return FeedPage(found[-1].cursor if found else since, False, found)

    async def audit(self, subject: str | None, since_ms: int | None, limit: int) -> list[Change]:
        """Scan the capped stream newest first; an admin-only read, bounded by its length."""
        stream = self.global_key("feed")
        found: list[Change] = []
        upper = "+"
        while len(found) < limit:
            batch = await self._xrevrange(stream, upper, AUDIT_BATCH)
            for stream_id, fields in batch:
                change = Change.from_json(_field(fields, "r"))
                upper = f"({stream_id!s}"
                if since_ms is not None and change.at_ms < since_ms:
                    continue
                if subject is not None and change.subject != subject:
                    continue
                found.append(change)
                if len(found) >= limit:
                    break
            if len(batch) < AUDIT_BATCH:
                break
        found.reverse()
        return found

    async def _xrevrange(self, stream: str, upper: str, count: int) -> list[Any]:
        try:
            async with asyncio.timeout(CALL_TIMEOUT_S):
                return list(await self._client.xrevrange(stream, upper, "-", count=count) or [])
        except UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc


def _field(fields: Any, name: str) -> str:
    """A stream entry's field, whether the client gave a dict or a flat list."""
    if isinstance(fields, dict):
        return str(fields[name])
    values = list(fields)
    return str(values[values.index(name) + 1])


def _is_stream_id(text: str) -> bool:
    """A stream id Redis accepts (both parts fit in 64 bits); anything else cannot resume."""
    ms, dash, seq = text.partition("-")
    return bool(dash) and ms.isdigit() and seq.isdigit() and int(ms) < 2**64 and int(seq) < 2**64

"""How fast a logout or a ban reaches /verify on another auth process.

Round after round: log in through A, log out through A, and poll /verify on B
with that session's access token until it refuses; the delay counts from the
moment the logout was sent. Ban latency does the same with a ban made through
moderation's admin API.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.client import bearer, call, login, new_credentials, register
from bench.config import BenchConfig
from bench.stats import percentile
from bench.tables import Row, bound, number

MAX_POLLS = 100_000  # per round, besides the deadline
# A random pause before each revoking call, so the rounds do not lock onto B's poll cycle.
MAX_JITTER_S = 0.5
# A logout must turn into 401. A ban refuses with 403 `banned`, or with 401 when the sessions
# it revokes reach B first: either way the token no longer passes; the table shows the split.
LOGOUT_REFUSAL = frozenset({401})
BAN_REFUSALS = frozenset({401, 403})
MAX_MISSES = 2  # rounds in a row past the deadline before giving up (never refused: nothing to time)
REVOCATION_BOUND_MS = 1000.0


@dataclass
class Endpoints:
    """Auth A (where sessions are made and revoked), auth B (polled), moderation and its admin key."""

    a: str
    b: str
    moderation: str
    admin_key: str


@dataclass
class Latencies:
    """Seconds from the revoking call to the first refusal on B; None when the deadline passed."""

    delays: list[float | None] = field(default_factory=list)
    acknowledged: list[float] = field(default_factory=list)  # how long the revoking call itself took
    polls: int = 0
    refused_with: Counter[int] = field(default_factory=Counter)  # the status of each round's refusal
    unexpected: Counter[int] = field(default_factory=Counter)  # answers other than 200 / a refusal
    stopped: str | None = None

    def add(self, delay: float | None) -> bool:
        """Record a round; False when the last MAX_MISSES rounds all missed (stop: the path is broken)."""
        self.delays.append(delay)
        recent = self.delays[-MAX_MISSES:]
        if len(recent) == MAX_MISSES and all(d is None for d in recent):
            self.stopped = f"stopped after {MAX_MISSES} rounds in a row without a refusal"
            return False
        return True

    @property
    def measured(self) -> list[float]:
        return [d for d in self.delays if d is not None]

    @property
    def p99_ms(self) -> float:
        return percentile(self.measured, 99) * 1000


# Revocation and ban latency ------------------------------------------------------------------------


async def verify_status(session: aiohttp.ClientSession, url: str, token: str) -> int:
    async with session.get(f"{url}/verify", headers=bearer(token)) as response:
        await response.read()
        return response.status


async def poll_until(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    refusals: frozenset[int],
    started: float,
    deadline_s: float,
    result: Latencies,
) -> float | None:
    """Ask /verify back to back until it refuses the token; the delay, or None after the deadline."""
    polls = 0
    while polls < MAX_POLLS and time.perf_counter() - started < deadline_s:
        status = await verify_status(session, url, token)
        polls += 1
        if status in refusals:
            result.polls += polls
            result.refused_with[status] += 1
            return time.perf_counter() - started
        if status != 200:
            result.unexpected[status] += 1
    result.polls += polls
    return None


async def logged_in(session: aiohttp.ClientSession, endpoints: Endpoints, email: str, password: str) -> Any:
    """A fresh session through A whose token B already accepts (and has cached)."""
    data = await login(session, endpoints.a, email, password)
    status = await verify_status(session, endpoints.b, data["token"])
    if status != 200:
        raise RuntimeError(f"B's /verify answered {status} to a fresh token")
    return data


async def revocation_latency(
    session: aiohttp.ClientSession, endpoints: Endpoints, config: BenchConfig
) -> Latencies:
    email, password = new_credentials("revoke")
    await register(session, endpoints.a, email, password)
    result = Latencies()
    deadline = config.latency_deadline_s
    for _ in range(config.latency_rounds):
        token = (await logged_in(session, endpoints, email, password))["token"]
        await asyncio.sleep(random.uniform(0, MAX_JITTER_S))
        started = time.perf_counter()
        status, data = await call(session, "POST", f"{endpoints.a}/api/auth/logout", {}, bearer(token))
        if status != 200:
            raise RuntimeError(f"logout answered {status}: {data}")
        result.acknowledged.append(time.perf_counter() - started)
        delay = await poll_until(session, endpoints.b, token, LOGOUT_REFUSAL, started, deadline, result)
        if not result.add(delay):
            break
    return result


async def ban(session: aiohttp.ClientSession, endpoints: Endpoints, subject: str) -> None:
    """A ban through moderation's admin API (`user:<id>` or `ip:<address>`), ten minutes long."""
    body = {"subject": subject, "reason": "authgate bench", "duration_seconds": 600}
    headers = bearer(endpoints.admin_key or "")
    status, data = await call(session, "POST", f"{endpoints.moderation}/v1/bans", body, headers)
    if status not in (200, 201):
        raise RuntimeError(f"POST /v1/bans answered {status}: {data}")


async def ban_latency(session: aiohttp.ClientSession, endpoints: Endpoints, config: BenchConfig) -> Latencies:
    """A fresh user per round (a banned user cannot log in again); ban, then poll B until 403."""
    result = Latencies()
    deadline = config.latency_deadline_s
    for _ in range(config.latency_rounds):
        email, password = new_credentials("ban")
        await register(session, endpoints.a, email, password)
        data = await logged_in(session, endpoints, email, password)
        await asyncio.sleep(random.uniform(0, MAX_JITTER_S))
        started = time.perf_counter()
        await ban(session, endpoints, f"user:{data['user']['id']}")
        result.acknowledged.append(time.perf_counter() - started)
        delay = await poll_until(session, endpoints.b, data["token"], BAN_REFUSALS, started, deadline, result)
        if not result.add(delay):
            break
    return result


# Rows -----------------------------------------------------------------------------------------------


def latency_rows(label: str, result: Latencies, deadline_s: float) -> list[Row]:
    measured = result.measured
    missed = len(result.delays) - len(measured)
    label = f"{label} (x{len(result.delays)})"
    worst = (
        bound(f"{label} -> refused on B, p99", result.p99_ms, REVOCATION_BOUND_MS)
        if not missed
        else Row(
            f"{label} -> refused on B, p99",
            f"> {deadline_s:g} s",
            target=f"<= {REVOCATION_BOUND_MS:g} ms",
            verdict="MISSED",
        )
    )
    rows = [
        Row(f"{label} -> refused on B, p50", f"{number(percentile(measured, 50) * 1000)} ms"),
        worst,
        Row(f"{label} -> refused on B, max", f"{number(max(measured, default=float('nan')) * 1000)} ms"),
    ]
    if missed:
        rows.append(
            Row(
                f"{label}: not refused within {deadline_s:g} s",
                f"{missed} of {len(result.delays)}" + (f"; {result.stopped}" if result.stopped else ""),
                verdict="MISSED",
            )
        )
    if len(result.refused_with) > 1 or set(result.refused_with) - LOGOUT_REFUSAL:
        split = ", ".join(f"{status} x{count}" for status, count in sorted(result.refused_with.items()))
        rows.append(Row(f"{label}: refused with", split))
    if result.unexpected:
        answers = ", ".join(f"{status} x{count}" for status, count in sorted(result.unexpected.items()))
        rows.append(Row(f"{label}: other answers from B while polling", answers))
    return rows

"""CPU per login in each process (auth, moderation, store), as service clients and as browsers.

`/proc/<pid>/stat` utime+stime of every process is read around a closed-loop login
load over `users` users (one worker each, every login succeeds). Auth's CPU outside
the hash is its CPU per login less one argon2id verify's CPU, measured alone in this
process with the service's parameters.

Browsers: each user is a cookie jar that logged in once (without
`refresh_token_in_body`), so it holds the `authgate_device` cookie the service sets
and sends it, with the refresh cookie, on every later login, as a browser does.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from argon2 import PasswordHasher

from bench.client import HTTP_TIMEOUT, new_credentials, register
from bench.config import BenchConfig, say
from bench.load import closed_loop
from bench.stats import LoadResult, process_cpu_s, thread_cpu_s
from bench.tables import Row, Table, bound, compare, info

DEVICE_COOKIE = "authgate_device"  # services/auth/devices.py (a public contract)
LOOP = "auth event-loop thread"  # everything auth does outside the hash pool
POOL = "auth other threads"  # the argon2id pool (and any other helper thread)


def argon2_cpu_ms(hasher: PasswordHasher, samples: int = 20) -> float:
    """CPU milliseconds of one argon2id verify (this thread's CPU clock, the median of `samples`)."""
    password = secrets.token_urlsafe(24)
    stored = hasher.hash(password)
    times = []
    for _ in range(samples):
        started = time.thread_time()
        hasher.verify(stored, password)
        times.append(time.thread_time() - started)
    return sorted(times)[len(times) // 2] * 1000


@dataclass(frozen=True)
class LoginCpu:
    """A login load and the CPU milliseconds each process spent per successful login."""

    kind: str
    load: LoadResult
    cpu_ms: Mapping[str, float]


class Browser:
    """One user in one cookie jar (cookies for 127.0.0.1 need an `unsafe` jar)."""

    def __init__(self, base: str, email: str, password: str) -> None:
        self.base, self.email, self.password = base, email, password
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=HTTP_TIMEOUT)

    async def login(self) -> bool:
        body = {"email": self.email, "password": self.password}
        async with self.session.post(f"{self.base}/api/auth/login", json=body) as response:
            await response.read()
            return response.status == 200

    def has_device_cookie(self) -> bool:
        return any(cookie.key == DEVICE_COOKIE for cookie in self.session.cookie_jar)

    async def close(self) -> None:
        await self.session.close()


async def new_users(session: aiohttp.ClientSession, base: str, count: int) -> list[tuple[str, str]]:
    users = []
    for _ in range(count):
        email, password = new_credentials("cpu")
        await register(session, base, email, password)
        users.append((email, password))
    return users


async def service_logins(
    session: aiohttp.ClientSession,
    base: str,
    users: list[tuple[str, str]],
    pids: Mapping[str, int],
    seconds: float,
) -> LoginCpu:
    """Service clients: `refresh_token_in_body`, no cookies."""

    async def one(worker: int) -> bool:
        email, password = users[worker]
        body = {"email": email, "password": password, "refresh_token_in_body": True}
        async with session.post(f"{base}/api/auth/login", json=body) as response:
            await response.read()
            return response.status == 200

    return await _timed("service client", one, len(users), pids, seconds)


async def browser_logins(
    base: str, users: list[tuple[str, str]], pids: Mapping[str, int], seconds: float
) -> LoginCpu:
    """Browsers: a first login (outside the measure) sets the device cookie; then logins with it."""
    browsers = [Browser(base, email, password) for email, password in users]
    try:
        for browser in browsers:
            if not await browser.login() or not browser.has_device_cookie():
                raise RuntimeError("a browser login did not set the authgate_device cookie")

        async def one(worker: int) -> bool:
            return await browsers[worker].login()

        return await _timed("browser (device cookie)", one, len(browsers), pids, seconds)
    finally:
        for browser in browsers:
            await browser.close()


async def _timed(
    kind: str, op: Callable[[int], Awaitable[bool]], workers: int, pids: Mapping[str, int], seconds: float
) -> LoginCpu:
    loop_pid = pids["auth"]  # uvicorn runs auth's event loop on the main thread (tid == pid)
    before = {name: process_cpu_s(pid) for name, pid in pids.items()}
    loop_before = thread_cpu_s(loop_pid, loop_pid)
    load = await closed_loop(op, workers, seconds, "aiohttp")
    used = {name: process_cpu_s(pid) - before[name] for name, pid in pids.items()}
    used[LOOP] = thread_cpu_s(loop_pid, loop_pid) - loop_before
    used[POOL] = used["auth"] - used[LOOP]
    per = {name: used[name] / load.requests * 1000 if load.requests else math.nan for name in used}
    return LoginCpu(kind, load, per)


LOGIN_CPU_S = 10.0  # the "~10 s login load over 8 users"
OUTSIDE_HASH_MS = 3.0


async def cpu_table(
    config: BenchConfig, base: str, pids: Mapping[str, int], argon2_rps: float, hasher: PasswordHasher
) -> tuple[Table, list[LoginCpu]]:
    """Service-client and browser login loads over `config.concurrency` fresh users, CPU per process."""
    seconds = 3.0 if config.quick else LOGIN_CPU_S
    n = config.concurrency
    hash_ms = argon2_cpu_ms(hasher)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=2 * n), timeout=HTTP_TIMEOUT
    ) as session:
        service_users = await new_users(session, base, n)
        browser_users = await new_users(session, base, n)
        say(f"auth bench: login CPU per process, {seconds:g} s as service clients")
        results = [await service_logins(session, base, service_users, pids, seconds)]
    say(f"auth bench: login CPU per process, {seconds:g} s as browsers")
    results.append(await browser_logins(base, browser_users, pids, seconds))
    rows: list[Row] = [info("argon2id verify, CPU (one, in the bench process)", hash_ms, "ms", 2)]
    for result in results:
        kind = result.kind
        rows.append(
            compare(f"login as {kind}, {n} users", result.load.rps, argon2_rps, "argon2 ceiling", "req/s")
        )
        for name, ms in result.cpu_ms.items():
            if name != LOOP:
                rows.append(info(f"{kind}: {name} CPU per login", ms, "ms", 2))
        rows.append(
            info(f"{kind}: auth CPU less one argon2id verify", result.cpu_ms["auth"] - hash_ms, "ms", 2)
        )
        label = f"{kind}: auth CPU per login outside the hash ({LOOP})"
        rows.append(bound(label, result.cpu_ms[LOOP], OUTSIDE_HASH_MS))
    notes = [
        f"{seconds:g} s of closed-loop logins per kind, {n} workers, one user each (none passes"
        " MAX_SESSIONS_PER_USER during the load); CPU = utime+stime from /proc/<pid>/stat around the"
        " load divided by the successful logins",
        "outside the hash: the CPU of auth's event-loop thread (/proc/<pid>/task/<pid>/stat), where"
        " everything but the argon2id pool runs; `auth other threads` is the pool. For comparison,"
        " auth's total less one verify measured alone (thread CPU clock, median of 20): two hashes at"
        " once on two cores run slower than one alone, so that difference overstates the rest",
        "browser: each user logged in once first (no `refresh_token_in_body`), so its jar holds the"
        f" `{DEVICE_COOKIE}` and refresh cookies the service set; every measured login sends them",
        "errors: " + ", ".join(f"{r.kind} {r.load.errors}" for r in results),
    ]
    return Table("login: CPU per login per process", rows, notes, [config.command]), results

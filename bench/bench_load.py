"""Issue 5's load script: every route at once for a fixed time, and each service's memory.

Register, login, refresh, /verify and moderation events run together against one
auth service, its moderation service and the store, for a fixed time (loopback
only, bounded in time and count). Per route: throughput, p50/p99 and errors.
Memory: each service's RSS when idle after start, after the mixed load, and
before and after a long /verify run (targets: idle under 100 MB; flat within 10 %).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from bench.client import bearer, call, login, new_credentials, new_session, register
from bench.config import BenchConfig, say
from bench.load import FullLoad, closed_loop
from bench.procs import ProcessGroup, add_moderation, auth_base_env, start_auth, start_store
from bench.stats import LoadResult
from bench.tables import Row, Table, number

IDLE_RSS_LIMIT_MB = 100.0
RSS_DRIFT_LIMIT = 0.10


def rss_mb(pid: int) -> float:
    """Resident set size from /proc (Linux)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def mixed_load(
    session: aiohttp.ClientSession, auth: str, moderation: str, report_key: str, seconds: float
) -> dict[str, LoadResult]:
    """All routes together; each has its own small pool of closed-loop workers."""
    email, password = new_credentials("load")
    await register(session, auth, email, password)
    tokens = [await login(session, auth, email, password) for _ in range(4)]
    # The login workers use their own user: past MAX_SESSIONS_PER_USER their logins evict
    # that user's oldest sessions, which must not be the ones refresh and /verify use.
    login_email, login_password = new_credentials("login")
    await register(session, auth, login_email, login_password)
    chains = [t["refresh_token"] for t in tokens]
    access = tokens[0]["token"]
    counter = itertools.count()

    async def do_register(_: int) -> bool:
        new_email, new_password = new_credentials(f"r{next(counter)}")
        body = {
            "name": "Load",
            "email": new_email,
            "password": new_password,
            "confirm_password": new_password,
        }
        status, _answer = await call(session, "POST", f"{auth}/api/auth/register", body)
        return status == 200

    async def do_login(_: int) -> bool:
        body = {"email": login_email, "password": login_password, "refresh_token_in_body": True}
        status, _answer = await call(session, "POST", f"{auth}/api/auth/login", body)
        return status == 200

    async def do_refresh(worker: int) -> bool:
        status, data = await call(
            session, "POST", f"{auth}/api/auth/refresh", {"refresh_token": chains[worker]}
        )
        if status == 200:
            chains[worker] = data["refresh_token"]
        return status == 200

    async def do_verify(_: int) -> bool:
        async with session.get(f"{auth}/verify", headers=bearer(access)) as response:
            await response.read()
            return response.status == 200

    async def do_event(_: int) -> bool:
        ip = f"198.51.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
        status, _answer = await call(
            session,
            "POST",
            f"{moderation}/v1/events",
            {"type": "message", "ip": ip},
            headers=bearer(report_key),
        )
        return status == 200

    routes: dict[str, tuple[Callable[[int], Awaitable[bool]], int]] = {
        "register": (do_register, 2),
        "login": (do_login, 2),
        "refresh": (do_refresh, 4),
        "/verify": (do_verify, 8),
        "moderation /v1/events": (do_event, 4),
    }
    results = await asyncio.gather(
        *(closed_loop(op, workers, seconds, "aiohttp closed loop") for op, workers in routes.values())
    )
    return dict(zip(routes, results, strict=True))


async def run(config: BenchConfig) -> list[Table]:
    mixed_s = 5.0 if config.quick else 20.0
    verify_runs = 3 if config.quick else 10
    full_load = FullLoad.detect(config)
    with tempfile.TemporaryDirectory(prefix="authgate-bench-load-") as tmp, ProcessGroup() as group:
        workdir = Path(tmp)
        say("load bench: starting the store, moderation and auth")
        store = start_store(group, workdir)
        env = auth_base_env(store.port)
        moderation, keys = add_moderation(group, workdir, env)
        auth = start_auth(group, workdir, env)
        await asyncio.sleep(2.0)  # let both settle before the idle reading
        idle = {"auth": rss_mb(auth.proc.pid), "moderation": rss_mb(moderation.proc.pid)}
        async with new_session(64) as session:
            say(f"load bench: every route together for {mixed_s:g} s")
            results = await mixed_load(session, auth.url, moderation.url, keys.auth, mixed_s)
            after_mixed = {"auth": rss_mb(auth.proc.pid), "moderation": rss_mb(moderation.proc.pid)}
            email, password = new_credentials("long")
            await register(session, auth.url, email, password)
            token = (await login(session, auth.url, email, password))["token"]
        # One warm-up run, then the long /verify run between two readings.
        await full_load.run(f"{auth.url}/verify", bearer(token))
        before_verify = rss_mb(auth.proc.pid)
        say(f"load bench: /verify for {verify_runs} x {config.wrk_s} s")
        verify_total = 0
        for _ in range(verify_runs):
            verify_total += (await full_load.run(f"{auth.url}/verify", bearer(token))).requests
        after_verify = rss_mb(auth.proc.pid)
    rows: list[Row] = []
    for route, result in results.items():
        rows.append(
            Row(
                f"{route}: req/s, p50 / p99, errors",
                f"{number(result.rps)} req/s, {number(result.p50_ms)} / {number(result.p99_ms)} ms, "
                f"{result.errors} errors",
            )
        )
    for service in ("auth", "moderation"):
        ok = idle[service] < IDLE_RSS_LIMIT_MB
        rows.append(
            Row(
                f"{service} idle RSS",
                f"{number(idle[service])} MB",
                target=f"< {IDLE_RSS_LIMIT_MB:g} MB",
                verdict="met" if ok else "MISSED",
            )
        )
        rows.append(Row(f"{service} RSS after the mixed load", f"{number(after_mixed[service])} MB"))
    drift = (after_verify - before_verify) / before_verify
    rows.append(
        Row(
            f"auth RSS across {verify_total:,} /verify requests",
            f"{number(before_verify)} -> {number(after_verify)} MB",
            ratio=f"{drift:+.1%}",
            target=f"within {RSS_DRIFT_LIMIT:.0%}",
            verdict="met" if abs(drift) <= RSS_DRIFT_LIMIT else "MISSED",
        )
    )
    notes = [
        f"mixed load: {mixed_s:g} s, all routes at once from one aiohttp client (workers: register 2, "
        "login 2, refresh 4, /verify 8, moderation events 4); the client shares the 2 cores",
        "register and login run argon2id (m=19456, t=2): they are CPU-bound by design",
        "auth environment: development, limits off, our own moderation service (in-memory store)",
    ]
    return [Table("load (issue 5): every route together, memory", rows, notes, [config.command])]

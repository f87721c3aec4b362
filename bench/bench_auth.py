"""Issue 2's benchmark: login against the argon2 ceiling, refresh against the store ceiling.

One store, one auth process and the bare baseline; then, as the median of 3
alternated runs each: the bare endpoint's req/s (full load), argon2id verifies/s
with the service's parameters on 2 threads in this process (services idle), login
req/s, the store's find_one_and_update(j=True)/s, and refresh req/s. Login,
store and refresh run at the same concurrency.

Refresh chains belong to a second user whose sessions are made by logging in
once per chain through the API, so the login runs (which push the first user
past MAX_SESSIONS_PER_USER and evict its oldest sessions) never revoke them.
Those sessions and the ceiling's documents both start with a full token history
and the same indexes, so the refresh and its ceiling do exactly the same write.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from argon2 import PasswordHasher, Type
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench import charts, login_cpu, profile_login
from bench.client import call, login, new_credentials, new_session, register
from bench.config import BenchConfig, say
from bench.load import FullLoad, StopWorker, closed_loop
from bench.procs import (
    ProcessGroup,
    auth_base_env,
    shown_uvicorn,
    start_auth_or_with_moderation,
    start_bare,
    start_store,
    store_uri,
)
from bench.stats import CpuLog, LoadResult, alternated, median_result
from bench.store_ceiling import Document, StoreCeiling, fill_histories, sessions_note, warm_store
from bench.tables import Table, compare, info
from services.auth.sessions import TOKEN_HISTORY
from services.auth.settings import Argon2Params, AuthSettings

ARGON2 = Argon2Params()  # the service's defaults: m=19456 KiB, t=2, p=1
HASH_THREADS: int = AuthSettings.hash_threads  # the service's pool size (2)


def password_hasher() -> PasswordHasher:
    """Exactly the service's hasher (services/auth/passwords.py)."""
    return PasswordHasher(
        time_cost=ARGON2.time_cost,
        memory_cost=ARGON2.memory_kib,
        parallelism=ARGON2.parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


async def argon2_ceiling(duration_s: float) -> LoadResult:
    """argon2id verifies/s on a pool of the service's size, with every pool thread kept busy."""
    hasher = password_hasher()
    password = secrets.token_urlsafe(24)
    stored = hasher.hash(password)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="bench-argon2") as pool:

        async def verify(_: int) -> bool:
            return await loop.run_in_executor(pool, hasher.verify, stored, password)

        return await closed_loop(verify, HASH_THREADS, duration_s, f"argon2id, {HASH_THREADS} threads")


# HTTP: login and refresh chains --------------------------------------------------------------


@dataclass
class AuthClient:
    session: aiohttp.ClientSession
    base: str
    email: str
    password: str
    chain_email: str  # the second user, whose sessions the refresh chains rotate
    chain_password: str
    chains: list[str]  # the refresh token each chain presents next
    broken: set[int] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)  # "login 503 overloaded" -> count

    def _failed(self, call_name: str, status: int, data: dict[str, Any]) -> bool:
        self.failures[f"{call_name} {status} {data.get('code', '')}".strip()] += 1
        return False

    async def login_once(self, _: int) -> bool:
        body = {"email": self.email, "password": self.password, "refresh_token_in_body": True}
        status, data = await call(self.session, "POST", f"{self.base}/api/auth/login", body)
        return status == 200 or self._failed("login", status, data)

    async def refresh_once(self, chain: int) -> bool:
        """One link of a chain. After a failure the same token is presented again (within the grace
        period that returns the same child); a 401 ends the chain until `heal` replaces it."""
        body = {"refresh_token": self.chains[chain]}
        status, data = await call(self.session, "POST", f"{self.base}/api/auth/refresh", body)
        if status == 200 and isinstance(data.get("refresh_token"), str):
            self.chains[chain] = data["refresh_token"]
            return True
        self._failed("refresh", status, data)
        if status == 401:
            self.broken.add(chain)
            raise StopWorker
        return False

    async def heal(self, db: AsyncDatabase[Document]) -> None:
        """Replace broken chains with fresh sessions (outside the timed runs).

        A chain breaks when a refresh committed but its answer was lost (a 503 after a
        store stall) and the parent came back after REFRESH_GRACE_PERIOD: reuse, revoked.
        """
        if not self.broken:
            return
        say(f"  re-creating {len(self.broken)} broken refresh chain(s)")
        for chain in sorted(self.broken):
            data = await login(self.session, self.base, self.chain_email, self.chain_password)
            self.chains[chain] = str(data["refresh_token"])
        self.broken.clear()
        await fill_histories(db, self.chain_email)

    async def fresh_users_run(self, workers: int, duration_s: float) -> LoadResult:
        """Logins spread over `workers` newly registered users: none passes MAX_SESSIONS_PER_USER,
        so no login evicts; shows what the eviction path costs."""
        users: list[tuple[str, str]] = []
        for _ in range(workers):
            email, password = new_credentials("fresh")
            await register(self.session, self.base, email, password)
            users.append((email, password))

        async def login_as(worker: int) -> bool:
            email, password = users[worker]
            body = {"email": email, "password": password, "refresh_token_in_body": True}
            status, data = await call(self.session, "POST", f"{self.base}/api/auth/login", body)
            return status == 200 or self._failed("login", status, data)

        return await closed_loop(login_as, workers, duration_s, "aiohttp")

    async def refresh_run(self, db: AsyncDatabase[Document], duration_s: float) -> LoadResult:
        await self.heal(db)
        return await closed_loop(self.refresh_once, len(self.chains), duration_s, "aiohttp")


async def prepare_client(session: aiohttp.ClientSession, base: str, chains: int) -> AuthClient:
    """Register the login user and the refresh user via the API; one login per refresh chain."""
    email, password = new_credentials("login")
    await register(session, base, email, password)
    await login(session, base, email, password)
    chain_email, chain_password = new_credentials("refresh")
    await register(session, base, chain_email, chain_password)
    tokens = [
        str((await login(session, base, chain_email, chain_password))["refresh_token"]) for _ in range(chains)
    ]
    return AuthClient(session, base, email, password, chain_email, chain_password, tokens)


# The run -------------------------------------------------------------------------------------


def build_table(
    config: BenchConfig,
    results: dict[str, list[LoadResult]],
    full_load: FullLoad,
    bare_url: str,
    notes: list[str],
) -> Table:
    m = {name: median_result(runs) for name, runs in results.items()}
    n = config.concurrency
    argon2 = m["argon2"].rps
    rows = [
        info("bare Starlette GET / (full load)", m["bare"].rps, "req/s"),
        info(f"argon2id verifies ({HASH_THREADS} threads, in the bench process)", m["argon2"].rps, "/s"),
        *(
            [
                compare(
                    f"login ({n} concurrent, {n} users)",
                    fresh.rps,
                    argon2,
                    "argon2 ceiling",
                    "req/s",
                    at_least=0.8,
                )
            ]
            if (fresh := m.get("login_fresh")) is not None
            else []
        ),
        compare(
            f"login ({n} concurrent, one user past MAX_SESSIONS_PER_USER: every login evicts)",
            m["login"].rps,
            m["argon2"].rps,
            "argon2 ceiling",
            "req/s",
        ),
        info("login p50 / p99 (one user)", m["login"].p50_ms, f"ms / {m['login'].p99_ms:,.1f} ms"),
        info(f"store find_one_and_update j=True ({n} concurrent)", m["store"].rps, "/s"),
        compare(
            f"refresh ({n} concurrent chains)",
            m["refresh"].rps,
            m["store"].rps,
            "store ceiling",
            "req/s",
            at_least=0.5,
        ),
        info("refresh p50 / p99", m["refresh"].p50_ms, f"ms / {m['refresh'].p99_ms:,.1f} ms"),
        info("store write p50 / p99", m["store"].p50_ms, f"ms / {m['store'].p99_ms:,.1f} ms"),
    ]
    errors = {name: r.errors for name, r in m.items() if r.errors}
    per_run = "; ".join(f"{k} " + ", ".join(f"{r.rps:,.0f}" for r in v) for k, v in results.items())
    notes = [
        f"every figure is the median of {config.rounds} alternated runs of {config.load_s:g} s"
        f" ({config.wrk_s} s for wrk)"
        f" (per run: {per_run})",
        f"argon2id m={ARGON2.memory_kib} KiB, t={ARGON2.time_cost}, p={ARGON2.parallelism};"
        " the services are idle while it runs",
        "refresh: each chain presents the token it just got; the chains' sessions were made by logging"
        f" a second user in {n} times through the API (not inserted), then given a full token history"
        f" ({TOKEN_HISTORY} hashes, a long-lived session's steady state) directly in the store",
        "store ceiling: the refresh's write (same filter, $set and $push/$slice, j=True) on a collection with"
        f" auth_sessions' indexes and full-history documents, {n} chains from the bench process",
        f"login: the target row spreads the logins over {n} users registered before each run (each"
        " stays under MAX_SESSIONS_PER_USER, as real users do); the one-user row (no target) logs one"
        " user in again and again, so past 50 sessions every login also revokes its oldest session:"
        " three more journaled writes",
        *notes,
        f"errors (non-200 or failed calls): {errors}" if errors else "no errors in any run",
    ]
    commands = [
        config.command,
        "auth: " + shown_uvicorn("bench.auth_app:create", factory=True),
        "bare: " + shown_uvicorn("bench.bare_app:app"),
        "load: " + full_load.describe(bare_url),
    ]
    return Table("auth core (issue 2): login, refresh", rows, notes, commands)


@dataclass
class Setup:
    auth_url: str
    bare_url: str
    store_port: int
    cpu: CpuLog


async def measure(
    config: BenchConfig, setup: Setup, full_load: FullLoad, notes: list[str]
) -> dict[str, list[LoadResult]]:
    """The alternated runs; `notes` gets what the table should say about them."""
    n = config.concurrency
    bare_url, cpu = setup.bare_url, setup.cpu
    async with new_session(limit=2 * n) as session:
        client = await prepare_client(session, setup.auth_url, n)
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(
            store_uri(setup.store_port), tz_aware=True, appname="bench"
        )
        try:
            db = mongo.get_database("bench")
            await fill_histories(db, client.chain_email)
            ceiling = await StoreCeiling.prepare(db, n)
            say("auth bench: warming the store up")
            notes.append(await warm_store(ceiling, n, config))
            watch = cpu.watch
            runs: dict[str, Callable[[], Awaitable[LoadResult]]] = {
                "bare": lambda: full_load.run(bare_url),
                "argon2": lambda: argon2_ceiling(config.load_s),
                "login": lambda: watch("login", closed_loop(client.login_once, n, config.load_s, "aiohttp")),
                "store": lambda: watch("store", closed_loop(ceiling.rotate, n, config.load_s, "pymongo")),
                "refresh": lambda: watch("refresh", client.refresh_run(db, config.load_s)),
            }
            runs["login_fresh"] = lambda: client.fresh_users_run(n, config.load_s)  # a target row
            await client.refresh_run(db, config.warmup_s)
            results = await alternated(runs, config.rounds)
            notes.append(await sessions_note(db))
            notes.append(
                "CPU in cores (median of the runs; 2 cores in all): "
                + "; ".join(f"{m}: {cpu.summary(m)}" for m in ("login", "store", "refresh"))
            )
            if client.failures:
                failed = ", ".join(f"{what}: {count}" for what, count in client.failures.most_common())
                notes.append(f"failed calls by answer: {failed}")
            return results
        finally:
            await mongo.close()


async def run(config: BenchConfig) -> list[Table | str]:
    full_load = FullLoad.detect(config)
    notes = [] if full_load.wrk else [full_load.note]
    with tempfile.TemporaryDirectory(prefix="authgate-bench-auth-") as tmp, ProcessGroup() as group:
        workdir = Path(tmp)
        say("auth bench: starting the store, the auth service and the bare app")
        store = start_store(group, workdir)
        env = auth_base_env(store.port)
        auth, moderation, moderation_note = start_auth_or_with_moderation(group, workdir, env)
        bare = start_bare(group, workdir)
        bare_url = f"{bare.url}/"
        cpu = CpuLog({"auth": auth.proc.pid, "store": store.proc.pid, "bench": os.getpid()})
        if moderation is not None:
            cpu.pids["moderation"] = moderation.proc.pid
        setup = Setup(auth.url, bare_url, store.port, cpu)
        results = await measure(config, setup, full_load, notes)
        argon2_rps = median_result(results["argon2"]).rps
        pids = {"auth": auth.proc.pid, "store": store.proc.pid}
        if moderation is not None:
            pids["moderation"] = moderation.proc.pid
        cpu_table, cpu_runs = await login_cpu.cpu_table(config, auth.url, pids, argon2_rps, password_hasher())
        notes.append(f"auth environment: development, fresh JWT secrets, limits off, {moderation_note}")
    m = {name: median_result(runs).rps for name, runs in results.items()}
    bars = {f"argon2id ceiling ({HASH_THREADS} threads)": m["argon2"]}
    bars[f"login, {config.concurrency} users"] = m["login_fresh"]
    bars["login, one user (evicts)"] = m["login"]
    bars.update({f"login as {r.kind} (CPU run)": r.load.rps for r in cpu_runs})
    chart = charts.bars(
        config.out_dir, "login.png", "login throughput against the argon2id ceiling", bars, "req/s"
    )
    say("auth bench: profiling auth's login path (a separate store, moderation and auth)")
    profile = await profile_login.section(3.0 if config.quick else 8.0, config.concurrency)
    return [build_table(config, results, full_load, bare_url, notes), cpu_table, chart, profile]

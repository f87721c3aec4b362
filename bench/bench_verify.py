"""/verify against two baselines in three cases, and how fast a logout or a ban reaches it.

Baselines, under the same uvicorn flags as auth (bench/baseline_apps.py):
- raw ASGI: the server's own ceiling (same answer headers, nothing else);
- routed Starlette: a route through Starlette's router and the service's request-id middleware.

Cases, each alternated with both baselines (median of `rounds` runs, wrk at full load):
- cache hit: auth A, one token again and again (the verified-token cache answers);
- cache off: auth C with VERIFY_CACHE_SIZE=0, so every request verifies the signature
  and every claim (a size-0 cache stores nothing: one token or many makes no difference);
- session cookie, cache hit and cache off: the same two, with the portal's session cookie
  (signed in through /portal/login) instead of a bearer token; target: the bearer ratios;
- 1,000 bans: auth A again once 1,000 bans (999 IPs and one user) sit in its ban cache,
  so every request also resolves the client address and looks both up.

Then the propagation rounds (bench/verify_latency.py) between auth A and auth B.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench import charts, profile_verify
from bench.client import bearer, new_credentials, new_session, portal_sign_in, register, session_cookie
from bench.config import BenchConfig, say
from bench.load import WRK_PERCENTILES, FullLoad
from bench.procs import (
    ProcessGroup,
    add_moderation,
    auth_base_env,
    shown_uvicorn,
    start_auth,
    start_store,
    start_uvicorn,
)
from bench.stats import LoadResult, alternated, median_result, percentile
from bench.tables import Row, Table, compare, info, number
from bench.verify_latency import (
    BAN_REFUSALS,
    REVOCATION_BOUND_MS,
    Endpoints,
    Latencies,
    ban,
    ban_latency,
    latency_rows,
    logged_in,
    poll_until,
    revocation_latency,
)

BANS = 1000
# Targets (ratios in the same run): issue 9.
HIT_VS_RAW = 0.7
OFF_VS_RAW = 0.3
P99_VS_ROUTED = 2.0


@dataclass(frozen=True)
class Target:
    """One server under load: its URL and the pid whose CPU we read."""

    url: str
    pid: int


@dataclass
class Case:
    name: str
    target: Target
    at_least_raw: float | None
    results: dict[str, list[LoadResult]]
    headers: dict[str, str]


async def measure_case(
    config: BenchConfig,
    full_load: FullLoad,
    raw: Target,
    routed: Target,
    case: Target,
    headers: dict[str, str],
) -> dict[str, list[LoadResult]]:
    """The case alternated with both baselines; the same header is sent to all three."""
    runs: dict[str, Callable[[], Awaitable[LoadResult]]] = {
        "raw": lambda: full_load.run(raw.url, headers, raw.pid),
        "routed": lambda: full_load.run(routed.url, headers, routed.pid),
        "verify": lambda: full_load.run(case.url, headers, case.pid),
    }
    await full_load.run(case.url, headers, case.pid)  # warm-up (caches, connections)
    return await alternated(runs, config.rounds)


async def fill_bans(session: aiohttp.ClientSession, endpoints: Endpoints, auth_a: str) -> float:
    """999 IP bans and one user ban; wait until A refuses the banned user's token (its feed is current)."""
    say(f"verify bench: {BANS} bans through moderation's admin API")
    sem = asyncio.Semaphore(16)

    async def one(n: int) -> None:
        async with sem:
            await ban(session, endpoints, f"ip:10.{n // 250}.{n % 250}.{1 + n % 7}")

    await asyncio.gather(*(one(n) for n in range(BANS - 1)))
    email, password = new_credentials("sentinel")
    await register(session, endpoints.a, email, password)
    data = await logged_in(session, endpoints, email, password)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await ban(session, endpoints, f"user:{data['user']['id']}")
    seen = Latencies()
    delay = await poll_until(session, auth_a, data["token"], BAN_REFUSALS, started, 30.0, seen)
    if delay is None:
        raise RuntimeError(f"auth A did not refuse a banned user within 30 s of {BANS} bans")
    return delay


def case_rows(case: Case) -> list[Row]:
    raw, routed, verify = (median_result(case.results[n]) for n in ("raw", "routed", "verify"))
    name = case.name
    return [
        compare(
            f"{name}: /verify req/s vs raw ASGI",
            verify.rps,
            raw.rps,
            "raw",
            "req/s",
            at_least=case.at_least_raw,
        ),
        compare(f"{name}: req/s vs routed Starlette", verify.rps, routed.rps, "routed", "req/s"),
        compare(f"{name}: p99 vs routed", verify.p99_ms, routed.p99_ms, "routed", "ms", at_most=2, digits=2),
        compare(f"{name}: p50 vs raw", verify.p50_ms, raw.p50_ms, "raw", "ms", digits=2),
        compare(
            f"{name}: server CPU per request vs raw", verify.server_cpu_us, raw.server_cpu_us, "raw", "us"
        ),
    ]


def per_run(cases: list[Case]) -> str:
    return "; ".join(
        f"{case.name} {name}: " + ", ".join(f"{r.rps:,.0f}" for r in runs)
        for case in cases
        for name, runs in case.results.items()
    )


def build(
    config: BenchConfig,
    cases: list[Case],
    revocation: Latencies,
    banned: Latencies,
    bans_reached_s: float,
    full_load: FullLoad,
    notes: list[str],
) -> list[Table | str]:
    rows = [row for case in cases for row in case_rows(case)]
    rows += latency_rows("logout", revocation, config.latency_deadline_s)
    rows += latency_rows("ban", banned, config.latency_deadline_s)
    rows.append(info(f"{BANS} bans: last one refused by auth A after", bans_reached_s * 1000, "ms"))
    errors = {f"{c.name} {n}": sum(r.errors for r in runs) for c in cases for n, runs in c.results.items()}
    notes = [
        f"each case: median of {config.rounds} runs alternated with both baselines, {config.wrk_s} s each,"
        f" {config.wrk_connections} connections, one wrk thread; req/s per run: {per_run(cases)}",
        "raw ASGI: a bare ASGI callable answering with /verify's 200 headers (five identity headers,"
        " request id, cache-control, content-length): the server's ceiling; routed: the same answer"
        " through Starlette's router and the service's request-id middleware; all three get the same"
        " Authorization header (or, in the cookie cases, the same Cookie header) and run under"
        " identical uvicorn flags",
        "cookie cases: the portal's session cookie of a /portal/login sign-in (its own typ and key,"
        " bound to a session), sent alone; the targets are the bearer cases' ratios",
        "cache off: VERIFY_CACHE_SIZE=0 stores nothing, so every request decodes and checks the"
        " signature, exp, nbf, iss, aud, typ and the alg allow-list, then revocation and epoch",
        f"{BANS} bans: {BANS - 1} IP bans plus one user ban, made through moderation's admin API and"
        " fed to auth's ban cache; the token cache is on (default size)",
        "server CPU per request: the server's user+system CPU over a run divided by its requests",
        f"errors (non-2xx or socket errors) summed over runs: {errors}"
        if any(errors.values())
        else "no errors in the throughput runs",
        "logout/ban latency: from the call to A (or to moderation) until B first refuses the token;"
        f" B is polled back to back ({revocation.polls + banned.polls} polls in all); logout itself took"
        f" p50 {number(percentile(revocation.acknowledged, 50) * 1000)} ms",
        *notes,
    ]
    commands = [
        config.command,
        "auth A, B, C: " + shown_uvicorn("bench.auth_app:create", factory=True),
        "raw: " + shown_uvicorn("bench.baseline_apps:raw"),
        "routed: " + shown_uvicorn("bench.baseline_apps:routed", factory=True),
        "load: " + full_load.describe("http://127.0.0.1:PORT/verify", bearer("x")),
    ]
    table = Table("/verify: three cases against raw ASGI and routed Starlette", rows, notes, commands)
    curves: dict[str, tuple[float, ...]] = {}
    for case in cases:
        curves.setdefault("raw ASGI", median_result(case.results["raw"]).percentiles)
        curves.setdefault("routed Starlette", median_result(case.results["routed"]).percentiles)
        curves[f"/verify {case.name}"] = median_result(case.results["verify"]).percentiles
    latency_chart = charts.latency_curves(
        config.out_dir,
        "verify-latency.png",
        f"/verify latency at full load ({config.wrk_connections} connections, wrk)",
        WRK_PERCENTILES,
        curves,
    )
    propagation = charts.delays(
        config.out_dir,
        "propagation.png",
        "logout and ban propagation to another auth process",
        {"logout": revocation.measured, "ban": banned.measured},
        REVOCATION_BOUND_MS,
    )
    return [table, latency_chart, propagation]


async def run(config: BenchConfig) -> list[Table | str]:
    full_load = FullLoad.detect(config)
    if full_load.wrk is None:
        raise RuntimeError(f"the /verify bench needs wrk: {full_load.note}")
    say("verify bench: profiling the cache-off path in this process")
    profile = await asyncio.to_thread(profile_verify.section, 5_000 if config.quick else 20_000)
    with tempfile.TemporaryDirectory(prefix="authgate-bench-verify-") as tmp, ProcessGroup() as group:
        workdir = Path(tmp)
        say("verify bench: store, moderation, auth A, B, C (cache off), raw and routed baselines")
        store = start_store(group, workdir)
        env = auth_base_env(store.port)
        moderation, keys = add_moderation(group, workdir, env)
        auth_a = start_auth(group, workdir, env, "auth-a")
        auth_b = start_auth(group, workdir, env, "auth-b")
        auth_c = start_auth(group, workdir, {**env, "VERIFY_CACHE_SIZE": "0"}, "auth-c")
        raw_server = start_uvicorn(group, "raw", "bench.baseline_apps:raw", {}, workdir)
        routed_server = start_uvicorn(
            group, "routed", "bench.baseline_apps:routed", {}, workdir, factory=True
        )
        raw = Target(f"{raw_server.url}/verify", raw_server.proc.pid)
        routed = Target(f"{routed_server.url}/verify", routed_server.proc.pid)
        endpoints = Endpoints(auth_a.url, auth_b.url, moderation.url, keys.admin)
        a = Target(f"{auth_a.url}/verify", auth_a.proc.pid)
        c = Target(f"{auth_c.url}/verify", auth_c.proc.pid)
        cases, revocation, banned, bans_reached = await measure(
            config, full_load, endpoints, (raw, routed), (a, c)
        )
        notes = [
            "auth environment: development, fresh JWT secrets shared by A, B and C, limits off,"
            " MODERATION_URL set (our own moderation service)"
        ]
    return [*build(config, cases, revocation, banned, bans_reached, full_load, notes), profile]


async def measure(
    config: BenchConfig,
    full_load: FullLoad,
    endpoints: Endpoints,
    baselines: tuple[Target, Target],
    auths: tuple[Target, Target],
) -> tuple[list[Case], Latencies, Latencies, float]:
    """The three cases, then the propagation rounds (after the 1,000-ban case: they add user bans)."""
    raw, routed = baselines
    a, c = auths
    async with new_session() as session:
        email, password = new_credentials("verify")
        await register(session, endpoints.a, email, password)
        token = bearer((await logged_in(session, endpoints, email, password))["token"])
        cookie = session_cookie(await portal_sign_in(session, endpoints.a, email, password))
        cases = [
            Case("cache hit", a, HIT_VS_RAW, {}, token),
            Case("cache off", c, OFF_VS_RAW, {}, token),
            Case("cookie, cache hit", a, HIT_VS_RAW, {}, cookie),
            Case("cookie, cache off", c, OFF_VS_RAW, {}, cookie),
        ]
        for case in cases:
            say(f"verify bench: {case.name}")
            case.results = await measure_case(config, full_load, raw, routed, case.target, case.headers)
        bans_reached = await fill_bans(session, endpoints, endpoints.a)
        with_bans = Case(f"{BANS:,} bans", a, None, {}, token)
        say(f"verify bench: {with_bans.name}")
        with_bans.results = await measure_case(config, full_load, raw, routed, a, token)
        cases.append(with_bans)
        say(f"verify bench: revocation latency, {config.latency_rounds} logouts")
        revocation = await revocation_latency(session, endpoints, config)
        say(f"verify bench: ban latency, {config.latency_rounds} bans")
        banned = await ban_latency(session, endpoints, config)
    return cases, revocation, banned, bans_reached

"""The moderation bench: POST /v1/events against three baselines, and Redis script calls per event.

    .venv/bin/python -m bench --only moderation      (or: .venv/bin/python -m bench.bench_moderation)

1. `/v1/events` (Redis store) against a bare Starlette POST endpoint under the same uvicorn flags
   and the same request: what the service itself costs.
2. The same workload through the `limits` library's moving-window limiter on the same Redis, with
   the same semantics on the common path (ban lookup, count, remaining/reset for the answer, and on
   a refusal a score window and a ban key). Target: ours >= 1.2x.
3. Redis script calls per event, from the EVALSHA + EVAL call deltas of `INFO commandstats`
   (commands run inside a script are counted there too, so only calls are counted). Target: 1.
4. The same `/v1/events` with moderation on a real Redis Cluster (3 masters + 3 replicas on this
   machine, started as an operator does) against standalone Redis, alternated in the same run:
   what cluster mode costs per event (redis-py's cluster pipeline instead of the standalone lane).
5. The auth-to-moderation hop: a tiny Starlette app calling `services.auth.moderation_client.ModerationClient`
   against moderation alone. Target: >= 0.5x. The same hop over httpx's default transport is shown
   for comparison (why the client uses the httpx-aiohttp transport).

Every load is a median of 3 alternated runs, loopback only, bounded in time; every IP is fresh
enough that no limit trips, so this measures the common path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import secrets
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import charts
from bench.client import new_session
from bench.config import BenchConfig, say
from bench.load import FullLoad, closed_loop, run_wrk
from bench.moderation_apps import BENCH_LIMITS, EVENTS_PATH, HOP_PATH
from bench.procs import ProcessGroup, shown_uvicorn, start_redis, start_uvicorn
from bench.stats import LoadResult, alternated, median_result
from bench.tables import Row, Table, compare, info
from harness import start_redis_cluster

# Load -----------------------------------------------------------------------------------------------

WRK_SCRIPT = """
local counter = 0
local base = tonumber(os.getenv("BENCH_IP_BASE") or "0")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
request = function()
  counter = counter + 1
  local n = base + counter
  local a, b = 64 + math.floor(n / 65536) % 64, math.floor(n / 256) % 256
  local ip = string.format("100.%d.%d.%d", a, b, n % 256)
  local body = '{"type":"login","ip":"' .. ip .. '"EXTRA}'
  return wrk.format(nil, nil, nil, body)
end
"""


class Load:
    """POST bodies with a fresh IP each, through wrk (a Lua script) or the Python closed loop."""

    def __init__(self, config: BenchConfig, workdir: Path, key: str) -> None:
        self.config = config
        self.key = key
        self.full = FullLoad.detect(config)
        self.scripts: dict[str, Path] = {}
        for name, extra in (("login", ""), ("account", ',"account":"account:%s"' % ("ab" * 32))):
            path = workdir / f"wrk-{name}.lua"
            path.write_text(WRK_SCRIPT.replace("EXTRA", extra))
            self.scripts[name] = path
        self.base = 0

    def describe(self, url: str) -> str:
        if self.full.wrk is None:
            return f"python closed loop, {self.config.wrk_connections} connections, POST {url}"
        c = self.config
        return (
            f"wrk -t{c.wrk_threads} -c{c.wrk_connections} -d{int(c.load_s)}s --latency -s wrk-login.lua {url}"
        )

    async def run(self, url: str, workload: str = "login") -> LoadResult:
        self.base += 1_000_000  # no IP is ever reused across runs
        seconds = max(1, int(self.config.load_s))
        if self.full.wrk is None:
            return await self._python(url, seconds, workload)
        c = self.config
        cmd = [self.full.wrk, f"-t{c.wrk_threads}", f"-c{c.wrk_connections}", f"-d{seconds}s"]
        cmd += ["--latency", "--timeout", "5s", "-s", str(self.scripts[workload]), url]
        os.environ["BENCH_KEY"] = self.key
        os.environ["BENCH_IP_BASE"] = str(self.base)
        return await asyncio.to_thread(run_wrk, cmd, seconds)

    async def _python(self, url: str, seconds: int, workload: str) -> LoadResult:
        headers = {"Authorization": f"Bearer {self.key}"}
        counter = self.base
        async with new_session(self.config.wrk_connections) as session:

            async def post(_: int) -> bool:
                nonlocal counter
                counter += 1
                n = counter
                body: dict[str, Any] = {
                    "type": "login",
                    "ip": f"100.{64 + (n >> 16) % 64}.{(n >> 8) % 256}.{n % 256}",
                }
                if workload == "account":
                    body["account"] = "account:" + "ab" * 32
                async with session.post(url, json=body, headers=headers) as response:
                    await response.read()
                    return response.status == 200

            return await closed_loop(
                post, self.config.wrk_connections, seconds, "python closed loop (aiohttp)"
            )


SCRIPT_SAMPLE = 2000


async def exact_events(url: str, key: str, count: int, workload: str) -> int:
    """Exactly `count` events, all awaited (wrk stops with requests in flight): the 200s answered."""
    headers = {"Authorization": f"Bearer {key}"}
    ok = 0
    async with new_session(32) as session:
        slots = asyncio.Semaphore(32)

        async def post(n: int) -> None:
            nonlocal ok
            body: dict[str, Any] = {
                "type": "login",
                "ip": f"100.{(n >> 16) % 64 + 64}.{(n >> 8) % 256}.{n % 256}",
            }
            if workload == "account":
                body["account"] = "account:" + "cd" * 32
            async with slots, session.post(url, json=body, headers=headers) as response:
                await response.read()
                ok += response.status == 200

        await asyncio.gather(*(post(3_000_000 + n) for n in range(count)))
    return ok


async def script_calls(redis_port: int) -> tuple[int, int]:
    """(EVALSHA + EVAL calls, all commands) so far, from INFO commandstats."""
    import redis.asyncio as aioredis

    client = aioredis.Redis(port=redis_port, decode_responses=True)
    try:
        stats: dict[str, Any] = await client.info("commandstats")
    finally:
        await client.aclose()
    scripts = sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))
    return scripts, sum(int(v.get("calls", 0)) for v in stats.values() if isinstance(v, dict))


# The bench --------------------------------------------------------------------------------------------


async def run(config: BenchConfig) -> list[Table | str]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-moderation-"))
    auth_key, admin_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with ProcessGroup() as group:
        redis = group.add(start_redis(workdir / "redis"))
        env = {
            "AUTHGATE_ENV": "test",
            "REDIS_URI": f"redis://127.0.0.1:{redis.port}/0",
            "MODERATION_API_KEYS": f"auth:report+login+login_failed:{auth_key},cli:admin:{admin_key}",
            **BENCH_LIMITS,
        }
        say("starting moderation (Redis), the bare app and the limits app")
        ours = start_uvicorn(
            group,
            "moderation",
            "bench.moderation_apps:moderation_app",
            env,
            workdir,
            factory=True,
            ready_path="/healthz",
        )
        bare = start_uvicorn(
            group, "bare", "bench.moderation_apps:bare_app", {}, workdir, factory=True, ready_path="/healthz"
        )
        limits = start_uvicorn(
            group,
            "limits",
            "bench.moderation_apps:limits_app",
            env,
            workdir,
            factory=True,
            ready_path="/healthz",
        )
        say("starting a Redis Cluster (3 masters + 3 replicas) and moderation on it")
        cluster = start_redis_cluster(workdir / "redis-cluster")
        for node in cluster.servers.values():
            group.add(node)
        on_cluster = start_uvicorn(
            group,
            "moderation-cluster",
            "bench.moderation_apps:moderation_app",
            {**env, "USE_REDIS_CLUSTER": "true", "REDIS_URI": cluster.seeds_uri(2)},
            workdir,
            factory=True,
            ready_path="/healthz",
        )
        on_pipeline = start_uvicorn(
            group,
            "moderation-pipeline",
            "bench.moderation_apps:moderation_pipeline_app",
            env,
            workdir,
            factory=True,
            ready_path="/healthz",
        )
        load = Load(config, workdir, auth_key)

        say("warming up")
        warm = dataclasses.replace(config, load_s=max(1.0, config.warmup_s))
        warm_load = Load(warm, workdir, auth_key)
        for server in (ours, bare, limits, on_cluster, on_pipeline):
            await warm_load.run(server.url + EVENTS_PATH)

        # Measured before the hop apps start: their ban-feed polls are script calls too.
        say("script calls per event")
        before = await script_calls(redis.port)
        served = await exact_events(ours.url + EVENTS_PATH, auth_key, SCRIPT_SAMPLE, "login")
        after = await script_calls(redis.port)
        served_account = await exact_events(ours.url + EVENTS_PATH, auth_key, SCRIPT_SAMPLE, "account")
        account_after = await script_calls(redis.port)

        say("starting the hop apps (auth's moderation client in a tiny Starlette app)")
        hop_env = {"MODERATION_URL": ours.url, "MODERATION_API_KEY": auth_key, "AUTHGATE_ENV": "test"}
        hop = start_uvicorn(
            group,
            "hop",
            "bench.moderation_apps:hop_app",
            hop_env,
            workdir,
            factory=True,
            ready_path="/healthz",
        )
        hop_httpx = start_uvicorn(
            group,
            "hop-httpx",
            "bench.moderation_apps:hop_app",
            {**hop_env, "BENCH_TRANSPORT": "httpx"},
            workdir,
            factory=True,
            ready_path="/healthz",
        )
        await warm_load.run(hop.url + HOP_PATH)

        runs: dict[str, Callable[[], Awaitable[LoadResult]]] = {
            "bare": lambda: load.run(bare.url + EVENTS_PATH),
            "moderation": lambda: load.run(ours.url + EVENTS_PATH),
            "limits": lambda: load.run(limits.url + EVENTS_PATH),
            "hop": lambda: load.run(hop.url + HOP_PATH),
            "cluster": lambda: load.run(on_cluster.url + EVENTS_PATH),
            "pipeline": lambda: load.run(on_pipeline.url + EVENTS_PATH),
        }
        results = {name: median_result(rs) for name, rs in (await alternated(runs, config.rounds)).items()}
        say("one run of the hop over httpx's default transport")
        hop_plain = await load.run(hop_httpx.url + HOP_PATH)

    per_event = (after[0] - before[0]) / served if served else math.nan
    commands = (after[1] - before[1] - 1) / served if served else math.nan  # less the INFO call
    per_account = (account_after[0] - after[0]) / served_account if served_account else math.nan
    ours_r, bare_r, limits_r, hop_r, cluster_r, pipeline_r = (
        results[n] for n in ("moderation", "bare", "limits", "hop", "cluster", "pipeline")
    )
    table = Table("moderation: POST /v1/events")
    table.rows = [
        compare("/v1/events req/s vs bare Starlette POST", ours_r.rps, bare_r.rps, "bare", "req/s"),
        compare(
            "/v1/events req/s vs limits moving window",
            ours_r.rps,
            limits_r.rps,
            "limits",
            "req/s",
            at_least=1.2,
        ),
        Row(
            "Redis script calls per event (EVALSHA+EVAL)",
            f"{per_event:.3f}",
            "-",
            "-",
            "1",
            "met" if abs(per_event - 1) < 0.01 else "MISSED",
        ),
        info("Redis commands per event (incl. inside scripts)", commands, "cmds", 2),
        info(
            "script calls per login event with an account (2 subjects, 1 pipeline)", per_account, "calls", 3
        ),
        compare(
            "standalone: events/s with the hand-written lane vs redis-py's pipeline",
            ours_r.rps,
            pipeline_r.rps,
            "redis-py pipeline",
            "events/s",
            at_least=1.0,
        ),
        compare(
            "moderation events/s on the Redis Cluster vs standalone Redis, same run",
            cluster_r.rps,
            ours_r.rps,
            "standalone",
            "events/s",
        ),
        compare(
            "auth->moderation hop req/s vs moderation alone",
            hop_r.rps,
            ours_r.rps,
            "moderation",
            "req/s",
            at_least=0.5,
        ),
        compare(
            "hop over httpx's default transport vs moderation alone",
            hop_plain.rps,
            ours_r.rps,
            "moderation",
            "req/s",
        ),
        info("/v1/events p50 latency", ours_r.p50_ms, "ms", 2),
        info("/v1/events p99 latency", ours_r.p99_ms, "ms", 2),
        info("/v1/events p50 latency on the Redis Cluster", cluster_r.p50_ms, "ms", 2),
        info("limits p50 latency", limits_r.p50_ms, "ms", 2),
        info("hop p50 latency", hop_r.p50_ms, "ms", 2),
    ]
    errors = {name: r.errors for name, r in results.items() if r.errors}
    table.notes = [
        f"load: {load.full.note}; {config.wrk_connections} connections, {int(config.load_s)} s per run, "
        f"median of {config.rounds} alternated runs; every request a fresh IPv4 (no limit trips)",
        "limits baseline: the same auth and body parsing, then EXISTS ban key, MovingWindowRateLimiter.hit, "
        "get_window_stats (3 round trips; ours: 1 EVALSHA). On a refusal it also hits a score window and "
        "SETs a ban key, as ours scores and bans.",
        f"errors: {errors or 'none'}; hop over httpx default transport: {hop_plain.rps:,.0f} req/s",
        "lane vs pipeline: the same service and Redis, the standalone store's hand-written lane"
        " (pipelined EVALSHAs on pooled connections) replaced by redis-py's own non-transactional"
        " pipeline in the second process (bench/moderation_apps.py:PipelineLane); the lane stays"
        " only while this row shows it faster",
        "cluster: 6 redis-server processes (cluster-node-timeout 1000 ms) on the same two cores as"
        " everything else; each event's scripts go out as one redis-py cluster pipeline",
        "hop: auth's moderation client built by auth's own settings loader, so MODERATION_TIMEOUT is"
        " the shipped default; a call that times out is answered by the fallback (503 here: an error)",
    ]
    table.commands = [
        load.describe("http://127.0.0.1:PORT/v1/events"),
        shown_uvicorn("bench.moderation_apps:moderation_app", factory=True)
        + "  (also bare_app, limits_app, hop_app)",
    ]
    chart = charts.bars(
        config.out_dir,
        "moderation.png",
        "moderation POST /v1/events against limits' moving window",
        {
            "bare Starlette POST": bare_r.rps,
            "moderation /v1/events": ours_r.rps,
            "limits moving window": limits_r.rps,
            "moderation on the Redis Cluster": cluster_r.rps,
            "auth -> moderation hop": hop_r.rps,
        },
        "req/s",
    )
    return [table, chart]


def main() -> int:
    """`python -m bench.bench_moderation [--quick]`: the same as `python -m bench --only moderation`."""
    from bench.__main__ import main as bench_main

    return bench_main(["--only", "moderation", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())

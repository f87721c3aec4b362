"""Load generators: closed loop, open loop at a fixed rate, and wrk (every loop bounded in time and count)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from bench.client import new_session
from bench.config import BenchConfig, say
from bench.stats import LoadResult, process_cpu_s, summarize

# Load generators -------------------------------------------------------------------------------

MAX_CONSECUTIVE_ERRORS = 200


class StopWorker(Exception):
    """Raised by an op: this worker's call failed and it has nothing left to do in this run."""


async def closed_loop(
    op: Callable[[int], Awaitable[bool]], workers: int, duration_s: float, tool: str
) -> LoadResult:
    """`workers` loops calling `op(worker)` back to back until the deadline; latency per call."""
    latencies: list[float] = []
    errors = 0
    cap = max(1000, int(duration_s * 200_000))  # a count bound besides the deadline
    deadline = time.perf_counter() + duration_s

    async def worker(index: int) -> None:
        nonlocal errors
        streak = 0
        while time.perf_counter() < deadline and len(latencies) + errors < cap:
            started = time.perf_counter()
            try:
                ok = await op(index)
            except StopWorker:
                errors += 1
                return
            except (aiohttp.ClientError, TimeoutError, OSError, RuntimeError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
                streak = 0
                continue
            errors += 1
            streak += 1
            if streak >= MAX_CONSECUTIVE_ERRORS:
                return

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    return summarize(latencies, errors, time.perf_counter() - started, tool)


async def http_closed_loop(
    url: str, duration_s: float, connections: int, headers: Mapping[str, str] | None = None
) -> LoadResult:
    """The Python stand-in for wrk (client-bound: compare only with itself)."""
    async with new_session(connections) as session:

        async def get(_: int) -> bool:
            async with session.get(url, headers=headers) as response:
                await response.read()
                return response.status < 400

        return await closed_loop(get, connections, duration_s, "python closed loop (aiohttp)")


async def fixed_rate(
    url: str, rate: int, duration_s: float, headers: Mapping[str, str] | None = None, max_inflight: int = 256
) -> LoadResult:
    """Open loop: request i is due at t0 + i/rate; latency counts from when it was due.

    Measuring from the due time, not the send time, keeps a stall from hiding the
    requests it delayed (coordinated omission). A request that would exceed
    `max_inflight` is not sent and counts as an error.
    """
    total = int(rate * duration_s)
    latencies: list[float] = []
    errors = 0
    pending: set[asyncio.Task[None]] = set()
    async with new_session(max_inflight) as session:

        async def fire(due: float) -> None:
            nonlocal errors
            try:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    ok = response.status < 400
            except (aiohttp.ClientError, TimeoutError, OSError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - due)
            else:
                errors += 1

        start = time.perf_counter() + 0.05
        for index in range(total):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(pending) >= max_inflight:
                errors += 1
                continue
            task = asyncio.create_task(fire(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending, timeout=15)
        for task in pending:
            task.cancel()
        elapsed = time.perf_counter() - start
    return summarize(latencies, errors, elapsed, f"python open loop (aiohttp) at {rate} req/s")


# wrk ---------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ensure_wrk() -> tuple[str | None, str]:
    """wrk's path and a note; installs Debian's package when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk"
    if os.geteuid() != 0:
        return None, "wrk is not installed and we are not root: using the Python generator instead"
    say("wrk is missing: apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "install", "-y", "wrk"],
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "wrk"],
    ):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(cmd, env=env, capture_output=True, timeout=300, check=False)
        found = shutil.which("wrk")
        if found:
            return found, "wrk (installed with apt-get)"
    return None, "apt-get install wrk failed: using the Python generator instead"


def _millis(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


WRK_PERCENTILES = (50, 75, 90, 99)  # what `wrk --latency` prints


def parse_wrk(output: str) -> LoadResult:
    rps = re.search(r"Requests/sec:\s*([\d.]+)", output)
    p50 = re.search(r"^\s*50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"could not parse wrk output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    found = [re.search(rf"^\s*{pct}%\s+(\S+)", output, re.MULTILINE) for pct in WRK_PERCENTILES]
    return LoadResult(
        percentiles=tuple(_millis(m.group(1)) for m in found if m is not None),
        rps=float(rps.group(1)),
        p50_ms=_millis(p50.group(1)),
        p99_ms=_millis(p99.group(1)),
        requests=int(total.group(1)),
        errors=errors,
        tool="wrk",
    )


def wrk_command(
    wrk: str, url: str, config: BenchConfig, headers: Mapping[str, str] | None = None, duration_s: float = 0
) -> list[str]:
    seconds = max(1, int(duration_s)) if duration_s else config.wrk_s
    cmd = [wrk, f"-t{config.wrk_threads}", f"-c{config.wrk_connections}", f"-d{seconds}s"]
    cmd += ["--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    return [*cmd, url]


def run_wrk(cmd: Sequence[str], duration_s: float) -> LoadResult:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=duration_s + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


@dataclass
class FullLoad:
    """Full-load runs with wrk when there is one, else the Python closed loop (said in the notes)."""

    config: BenchConfig
    wrk: str | None = None
    note: str = ""

    @classmethod
    def detect(cls, config: BenchConfig) -> FullLoad:
        wrk, note = ensure_wrk()
        return cls(config, wrk, note)

    def describe(self, url: str, headers: Mapping[str, str] | None = None) -> str:
        if self.wrk is None:
            return f"python closed loop, {self.config.wrk_connections} connections, {url}"
        shown = {
            name: "Bearer <token>" if name == "Authorization" else v for name, v in (headers or {}).items()
        }
        return shlex.join(wrk_command("wrk", url, self.config, shown))

    async def run(
        self, url: str, headers: Mapping[str, str] | None = None, server_pid: int | None = None
    ) -> LoadResult:
        """One run; with `server_pid`, also the server's CPU time per request."""
        seconds = self.config.wrk_s
        cpu_before = process_cpu_s(server_pid) if server_pid else math.nan
        if self.wrk is None:
            result = await http_closed_loop(url, seconds, self.config.wrk_connections, headers)
        else:
            cmd = wrk_command(self.wrk, url, self.config, headers)
            result = await asyncio.to_thread(run_wrk, cmd, seconds)
        if server_pid and result.requests:
            used = process_cpu_s(server_pid) - cpu_before
            result = dataclasses.replace(result, server_cpu_us=used / result.requests * 1e6)
        return result

"""Statistics over runs, and CPU time of processes (ours, the servers', the machine's)."""

from __future__ import annotations

import math
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.config import say

T = TypeVar("T")

# Statistics ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    tool: str
    server_cpu_us: float = math.nan  # server CPU per request: steadier than req/s on a shared machine
    # Latency (ms) at WRK_PERCENTILES when the tool reports them (wrk --latency): the chart's curve.
    percentiles: tuple[float, ...] = ()


def summarize(latencies_s: Sequence[float], errors: int, elapsed_s: float, tool: str) -> LoadResult:
    return LoadResult(
        rps=len(latencies_s) / elapsed_s if elapsed_s > 0 else math.nan,
        p50_ms=percentile(latencies_s, 50) * 1000,
        p99_ms=percentile(latencies_s, 99) * 1000,
        requests=len(latencies_s),
        errors=errors,
        tool=tool,
    )


def median_result(results: Sequence[LoadResult]) -> LoadResult:
    """Median of each figure over the runs (errors: the sum)."""
    return LoadResult(
        rps=median([r.rps for r in results]),
        p50_ms=median([r.p50_ms for r in results]),
        p99_ms=median([r.p99_ms for r in results]),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        tool=results[0].tool if results else "-",
        server_cpu_us=median([r.server_cpu_us for r in results]),
        percentiles=tuple(
            median([r.percentiles[i] for r in results if len(r.percentiles) > i])
            for i in range(min((len(r.percentiles) for r in results), default=0))
        ),
    )


async def alternated(runs: Mapping[str, Callable[[], Awaitable[T]]], rounds: int) -> dict[str, list[T]]:
    """`rounds` runs of each, interleaved; each round starts one later (AB, BA, AB) to spread drift."""
    names = list(runs)
    results: dict[str, list[T]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            result = await runs[name]()
            results[name].append(result)
            shown = (
                f"{result.rps:,.0f} req/s, p99 {result.p99_ms:.2f} ms"
                if isinstance(result, LoadResult)
                else ""
            )
            say(f"  run {index + 1}/{rounds}: {name} {shown}")
    return results


# Noise: CPU the machine spent on processes that are not ours ---------------------------------------


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores, from /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int, tid: int) -> float:
    """User + system CPU seconds of one thread of a process (Linux /proc/<pid>/task/<tid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuLog:
    """CPU use of named processes (in cores) during each run of each measure."""

    pids: dict[str, int]
    runs: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    async def watch(self, measure: str, work: Awaitable[T]) -> T:
        before = {name: process_cpu_s(pid) for name, pid in self.pids.items()}
        started = time.monotonic()
        result = await work
        elapsed = max(time.monotonic() - started, 1e-9)
        used = {name: (process_cpu_s(pid) - before[name]) / elapsed for name, pid in self.pids.items()}
        self.runs.setdefault(measure, []).append(used)
        return result

    def summary(self, measure: str) -> str:
        """Median cores per process over the runs of `measure`, e.g. `auth 0.25, store 0.62`."""
        runs = self.runs.get(measure, [])
        return ", ".join(f"{name} {median([run[name] for run in runs]):.2f}" for name in self.pids)


def own_cpu_s() -> float:
    """CPU seconds of this process and every child it has reaped (servers, wrk)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class NoiseWatch:
    """How much of the machine other processes used while a bench ran (call `stop` after reaping)."""

    busy: float = field(default_factory=machine_busy_s)
    own: float = field(default_factory=own_cpu_s)
    wall: float = field(default_factory=time.monotonic)

    def stop(self) -> str:
        wall = time.monotonic() - self.wall
        foreign = (machine_busy_s() - self.busy) - (own_cpu_s() - self.own)
        cores = os.cpu_count() or 1
        share = max(0.0, foreign) / (wall * cores) if wall > 0 else math.nan
        text = f"other processes used {share:.0%} of the machine's {cores} cores while this bench ran"
        if share > 0.1:
            text += " (a busy machine: expect noisy figures; rerun when it is idle)"
        return text

"""Shared bench helpers: processes on free loopback ports, load generators, statistics, tables.

Everything listens on 127.0.0.1 only. Every process started here is registered
in a `ProcessGroup` and stopped on exit, on an exception and on Ctrl-C; each
child also gets SIGTERM from the kernel if the bench process dies abruptly.
Every load loop is bounded by a deadline and by a request count.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import math
import os
import re
import resource
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from tests.harness import Server, free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
T = TypeVar("T")

# One worker, no access log, warnings only, no proxy headers: the same for every app measured.
UVICORN_FLAGS = (
    "--workers",
    "1",
    "--no-access-log",
    "--log-level",
    "warning",
    "--no-proxy-headers",
    "--no-server-header",
    "--timeout-graceful-shutdown",
    "5",
)
# Moderation's limits must not shape a throughput bench. The per-account and per-device
# limits count failed logins and the configuration caps them at 100 (NIST SP 800-63B),
# so they get that cap; the bench's logins all succeed.
LIMITS_OFF = {
    "LOGIN_MAX": "1000000000",
    "REGISTER_MAX": "1000000000",
    "REFRESH_MAX": "1000000000",
    "LOGIN_ACCOUNT_MAX": "100",
    "LOGIN_DEVICE_MAX": "100",
}
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)


# Configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    quick: bool = False
    rounds: int = 3  # median of 3 alternated runs
    load_s: float = 3.5  # one full-load run (wrk: whole seconds; login, refresh, ceilings)
    warmup_s: float = 1.0
    concurrency: int = 8  # login / refresh / store ceiling
    wrk_threads: int = 1  # two cores here: one for wrk, one for the single uvicorn worker
    wrk_connections: int = 32
    fixed_rate: int = 1000  # req/s
    fixed_s: float = 2.0
    latency_rounds: int = 30  # revocation / ban latency samples
    latency_deadline_s: float = 5.0
    command: str = "python -m bench"

    @property
    def wrk_s(self) -> int:
        """wrk takes whole seconds."""
        return max(1, int(self.load_s))

    @classmethod
    def make(cls, quick: bool, command: str) -> BenchConfig:
        if not quick:
            return cls(command=command)
        return cls(
            quick=True,
            load_s=1.0,
            warmup_s=0.3,
            fixed_s=0.5,
            latency_rounds=6,
            command=command,
        )


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# Processes -------------------------------------------------------------------------------------

_LIVE: list[Server] = []


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the bench process goes away."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(cmd: Sequence[str], log_path: Path, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as handle:
        return subprocess.Popen(
            list(cmd),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env),
            preexec_fn=_die_with_parent,
        )


def stop_all_processes() -> None:
    """Last resort (atexit, signals): stop whatever is still registered."""
    while _LIVE:
        _LIVE.pop().stop()


class ProcessGroup:
    """Processes of one bench, stopped in reverse start order when the block ends, however it ends."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def add(self, server: Server) -> Server:
        self.servers.append(server)
        _LIVE.append(server)
        return server

    def stop(self) -> None:
        while self.servers:
            server = self.servers.pop()
            server.stop()
            with contextlib.suppress(ValueError):
                _LIVE.remove(server)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceRefused(RuntimeError):
    def __init__(self, name: str, log: str) -> None:
        super().__init__(f"{name} did not start:\n{tail(log)}")
        self.log = log


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """A clean environment: the basics, our code on the path, and exactly `extra`."""
    env = {name: os.environ[name] for name in _PASSTHROUGH if name in os.environ}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _start(
    group: ProcessGroup, name: str, cmd: Sequence[str], env: Mapping[str, str], workdir: Path, port: int
) -> Server:
    log_path = workdir / f"{name}.log"
    proc = spawn(cmd, log_path, child_env(env), workdir)
    server = group.add(Server(proc, port, log_path))
    try:
        wait_port(port, 60, proc)
    except (RuntimeError, TimeoutError):
        server.stop()
        raise ServiceRefused(name, server.log()) from None
    return server


def start_store(group: ProcessGroup, workdir: Path) -> Server:
    """secantusd-py (Mongo wire protocol) on a free port, data in the bench's temp dir."""
    exe = shutil.which("secantusd-py", path=str(VENV_BIN)) or "secantusd-py"
    port = free_port()
    cmd = [exe, "--host", HOST, "--port", str(port), "--storage-path", str(workdir / "store")]
    return _start(group, "store", [*cmd, "--log-level", "WARNING"], {}, workdir, port)


def store_uri(port: int, db: str = "bench") -> str:
    return f"mongodb://{HOST}:{port}/{db}?retryWrites=false"


def uvicorn_command(app: str, port: int | str, *, factory: bool = False, python: str = "") -> list[str]:
    cmd = [
        python or sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        *UVICORN_FLAGS,
    ]
    return [*cmd, "--factory"] if factory else cmd


def shown_uvicorn(app: str, *, factory: bool = False) -> str:
    """The command line as a reader would type it from the repository root."""
    python = Path(sys.executable)
    relative = str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else str(python)
    return shlex.join(uvicorn_command(app, "PORT", factory=factory, python=relative))


def start_uvicorn(
    group: ProcessGroup,
    name: str,
    app: str,
    env: Mapping[str, str],
    workdir: Path,
    *,
    factory: bool = False,
    port: int | None = None,
    ready_path: str = "/",
) -> Server:
    port = port or free_port()
    server = _start(group, name, uvicorn_command(app, port, factory=factory), env, workdir, port)
    wait_http_ok(server, ready_path, name)
    return server


def wait_http_ok(server: Server, path: str, name: str, timeout: float = 30.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ServiceRefused(name, server.log())
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(server.url + path, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise ServiceRefused(name, server.log() + f"\n(no 200 from {path} after {timeout}s)")


def start_bare(group: ProcessGroup, workdir: Path) -> Server:
    return start_uvicorn(group, "bare", "bench.bare_app:app", {}, workdir)


def auth_base_env(store_port: int) -> dict[str, str]:
    """Development mode, fresh secrets (shared by every auth process of one bench), limits off."""
    return {
        "AUTHGATE_ENV": "development",
        "JWT_SECRET": secrets.token_hex(32),
        "JWT_REFRESH_SECRET": secrets.token_hex(32),
        "MONGO_URI": store_uri(store_port),
        "ALLOW_REGISTRATION": "true",
        "AUTH_MANAGEMENT_PORT": "0",  # no metrics listener (its default port is shared)
        **LIMITS_OFF,
    }


def start_auth(group: ProcessGroup, workdir: Path, env: Mapping[str, str], name: str = "auth") -> Server:
    port = free_port()
    full = {**env, "AUTH_HOST": HOST, "AUTH_PORT": str(port)}
    return start_uvicorn(
        group, name, "bench.auth_app:create", full, workdir, factory=True, port=port, ready_path="/readyz"
    )


# Moderation (another engineer's service; used only when it exists and auth is wired to it) -----


@dataclass(frozen=True)
class ModerationKeys:
    auth: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    admin: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def api_keys(self) -> str:
        """Auth's key may read (`report`), score users and report every event type; the CLI is admin."""
        scopes = "+".join(("report", "report-user", *moderation_event_types()))
        return f"auth:{scopes}:{self.auth},cli:admin:{self.admin}"


def moderation_event_types() -> tuple[str, ...]:
    """Each event type is a scope of its own in moderation's keys (services/moderation/settings.py)."""
    try:
        from shared.moderation.policy import EVENT_TYPES
    except ImportError:
        return ()
    return tuple(EVENT_TYPES)


def moderation_missing() -> str | None:
    """Why moderation cannot take part yet, or None when both sides are there."""
    if not (ROOT / "services" / "moderation" / "__main__.py").is_file():
        return "services/moderation has no __main__ yet"
    client = ROOT / "services" / "auth" / "moderation.py"
    users = [p for p in (ROOT / "services" / "auth").rglob("*.py") if p != client]
    if not any("services.auth.moderation" in path.read_text(errors="replace") for path in users):
        return "the auth service does not use its moderation client yet"
    return None


def start_moderation(group: ProcessGroup, workdir: Path, keys: ModerationKeys) -> Server:
    port = free_port()
    env = {
        "AUTHGATE_ENV": "development",
        "MODERATION_HOST": HOST,
        "MODERATION_PORT": str(port),
        "MODERATION_API_KEYS": keys.api_keys,
        "MODERATION_MANAGEMENT_PORT": "0",  # no metrics listener (its default port is shared)
        **LIMITS_OFF,
    }
    cmd = [sys.executable, "-m", "services.moderation"]
    return _start(group, "moderation", cmd, env, workdir, port)


def moderation_env(moderation: Server, keys: ModerationKeys) -> dict[str, str]:
    return {"MODERATION_URL": moderation.url, "MODERATION_API_KEY": keys.auth}


def add_moderation(group: ProcessGroup, workdir: Path, env: dict[str, str]) -> tuple[Server, ModerationKeys]:
    """Start our own moderation service and point `env` (auth's) at it."""
    keys = ModerationKeys()
    moderation = start_moderation(group, workdir, keys)
    env.update(moderation_env(moderation, keys))
    return moderation, keys


def start_auth_or_with_moderation(
    group: ProcessGroup, workdir: Path, env: dict[str, str]
) -> tuple[Server, Server | None, str]:
    """Auth without MODERATION_URL while auth does not use moderation; with our own moderation otherwise.

    Once auth uses its moderation client, an unset MODERATION_URL means
    127.0.0.1:3081 in development: whatever runs there (or nothing, and then
    registration fails closed), never part of this bench. Hence our own.
    """
    if moderation_missing() is None:
        say("auth uses moderation: starting our own moderation service")
        moderation, _ = add_moderation(group, workdir, env)
        return start_auth(group, workdir, env), moderation, "MODERATION_URL set (our own moderation service)"
    try:
        return start_auth(group, workdir, env), None, "MODERATION_URL unset"
    except ServiceRefused as exc:
        if "MODERATION_URL" not in exc.log:
            raise
    say("auth refuses to start without MODERATION_URL: starting the moderation service too")
    moderation, _ = add_moderation(group, workdir, env)
    note = "MODERATION_URL set (auth refused to start without it)"
    return start_auth(group, workdir, env), moderation, note


# The auth API, as the benches call it ----------------------------------------------------------


def new_session(limit: int = 64) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), timeout=HTTP_TIMEOUT)


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    async with session.request(method, url, json=body, headers=headers) as response:
        text = await response.text()
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = {"raw": text[:200]}
    return response.status, data if isinstance(data, dict) else {"value": data}


def new_credentials(tag: str) -> tuple[str, str]:
    """A unique email and a password that passes the policy (length 15+, zxcvbn 3+)."""
    return f"{tag}-{secrets.token_hex(4)}@bench.example.com", secrets.token_urlsafe(24)


async def register(session: aiohttp.ClientSession, base: str, email: str, password: str) -> None:
    body = {"name": "Bench User", "email": email, "password": password, "confirm_password": password}
    status, data = await call(session, "POST", f"{base}/api/auth/register", body)
    if status != 200:
        raise RuntimeError(f"register answered {status}: {data}")


async def login(session: aiohttp.ClientSession, base: str, email: str, password: str) -> dict[str, Any]:
    """A service-client login: {token, user, refresh_token}."""
    body = {"email": email, "password": password, "refresh_token_in_body": True}
    status, data = await call(session, "POST", f"{base}/api/auth/login", body)
    if status != 200:
        raise RuntimeError(f"login answered {status}: {data}")
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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
    )


async def alternated(runs: Mapping[str, Callable[[], Awaitable[T]]], rounds: int) -> dict[str, list[T]]:
    """`rounds` runs of each, interleaved; each round starts one later (AB, BA, AB) to spread drift."""
    names = list(runs)
    results: dict[str, list[T]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            say(f"  run {index + 1}/{rounds}: {name}")
            results[name].append(await runs[name]())
    return results


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
    return LoadResult(
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


# Tables ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    metric: str
    value: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    verdict: str = "-"


@dataclass
class Table:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [row.metric for row in self.rows if row.verdict == "FAIL"]


def number(value: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def info(metric: str, value: float, unit: str, digits: int = 1) -> Row:
    return Row(metric, f"{number(value, digits)} {unit}")


def compare(
    metric: str,
    value: float,
    baseline: float,
    baseline_name: str,
    unit: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    digits: int = 1,
) -> Row:
    """A row with value, baseline, their ratio and the verdict against the target ratio."""
    ratio = value / baseline if baseline and not math.isnan(baseline) else math.nan
    if at_least is not None:
        target, passed = f">= {at_least:g}x", ratio >= at_least
    elif at_most is not None:
        target, passed = f"<= {at_most:g}x", ratio <= at_most
    else:
        target, passed = "-", None
    verdict = "-" if passed is None else ("pass" if passed and not math.isnan(ratio) else "FAIL")
    return Row(
        metric,
        f"{number(value, digits)} {unit}",
        f"{number(baseline, digits)} {unit} ({baseline_name})",
        "n/a" if math.isnan(ratio) else f"{ratio:.2f}x",
        target,
        verdict,
    )


def bound(metric: str, value_ms: float, limit_ms: float) -> Row:
    """An absolute latency target (no baseline)."""
    passed = not math.isnan(value_ms) and value_ms <= limit_ms
    return Row(
        metric, f"{number(value_ms)} ms", "-", "-", f"<= {limit_ms:g} ms", "pass" if passed else "FAIL"
    )


def render(table: Table) -> str:
    lines = [f"## {table.title}", ""]
    lines += [f"    {command}" for command in table.commands]
    if table.commands:
        lines.append("")
    lines += ["| metric | value | baseline | ratio | target | pass/fail |", "|---|---|---|---|---|---|"]
    for row in table.rows:
        lines.append(
            f"| {row.metric} | {row.value} | {row.baseline} | {row.ratio} | {row.target} | {row.verdict} |"
        )
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


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

"""Processes on free loopback ports: the store, uvicorn apps, auth, moderation; all stopped on exit.

Every process started here is registered in a `ProcessGroup` and stopped on exit,
on an exception and on Ctrl-C; each child also gets SIGTERM from the kernel if the
bench process dies abruptly. Ports, readiness and the private Redis come from the dev-only
`harness` package the tests use too; bench/ never imports tests/.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import PORTAL_ORIGIN
from bench.config import HOST, LIMITS_OFF, ROOT, UVICORN_FLAGS, VENV_BIN, say
from harness import Server, free_port, start_redis, wait_port

_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
__all__ = ["Server", "free_port", "start_redis", "wait_port"]

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
        "TOTP_ENCRYPTION_KEY": secrets.token_hex(32),
        "MONGO_URI": store_uri(store_port),
        "ALLOW_REGISTRATION": "true",
        "DOMAIN_SERVER": PORTAL_ORIGIN,  # the portal's origin, for the session-cookie cases
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
    client = ROOT / "services" / "auth" / "moderation_client"
    users = [p for p in (ROOT / "services" / "auth").rglob("*.py") if client not in p.parents]
    if not any("services.auth.moderation_client" in path.read_text(errors="replace") for path in users):
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

"""Where auth's login CPU goes outside argon2id: cProfile inside a running auth process.

Starts the store, moderation and auth (auth under cProfile on its event-loop thread;
the argon2 pool threads are not profiled, so the hash is left out), logs `--users`
users in as service clients for `--seconds`, stops auth and prints the top of the profile.

    .venv/bin/python -m bench.profile_login [--seconds 5] [--browser]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import tempfile
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from bench import login_cpu
from bench.auth_app import create as create_auth
from bench.client import new_session
from bench.config import HOST, say
from bench.procs import ProcessGroup, add_moderation, auth_base_env, free_port, start_store, start_uvicorn
from bench.profiles import summary

PROFILE_ENV = "BENCH_PROFILE_OUT"
DUMP_PATH = "/__bench_profile"
PROFILE_COMMAND = ".venv/bin/python -m bench.profile_login"


def create() -> ASGIApp:
    """uvicorn --factory target: the auth app under cProfile until GET /__bench_profile dumps it."""
    app: Starlette = create_auth()
    profiler = cProfile.Profile(time.thread_time)  # CPU of the event-loop thread, not wall time
    profiler.enable()

    async def profiled(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == DUMP_PATH:
            profiler.disable()
            profiler.dump_stats(os.environ[PROFILE_ENV])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return profiled


async def profile(seconds: float, users: int, browser: bool) -> tuple[int, float, pstats.Stats]:
    """(logins, auth CPU ms per login while profiled, the event-loop thread's profile)."""
    with tempfile.TemporaryDirectory(prefix="authgate-profile-login-") as tmp, ProcessGroup() as group:
        workdir = Path(tmp)
        store = start_store(group, workdir)
        env = auth_base_env(store.port)
        add_moderation(group, workdir, env)
        port = free_port()
        out = workdir / "auth.prof"
        full = {**env, "AUTH_HOST": HOST, "AUTH_PORT": str(port), PROFILE_ENV: str(out)}
        auth = start_uvicorn(
            group,
            "auth",
            "bench.profile_login:create",
            full,
            workdir,
            factory=True,
            port=port,
            ready_path="/readyz",
        )
        async with new_session() as session:
            accounts = await login_cpu.new_users(session, auth.url, users)
            pids = {"auth": auth.proc.pid}
            say(f"profiling {seconds:g} s of logins in auth")
            if browser:
                result = await login_cpu.browser_logins(auth.url, accounts, pids, seconds)
            else:
                result = await login_cpu.service_logins(session, auth.url, accounts, pids, seconds)
            async with session.get(auth.url + DUMP_PATH) as response:
                await response.read()
        return result.load.requests, result.cpu_ms["auth"], pstats.Stats(str(out), stream=io.StringIO())


async def section(seconds: float, users: int = 8, browser: bool = False) -> str:
    """The report's section: where auth's CPU per login goes outside the argon2id pool."""
    logins, _, stats = await profile(seconds, users, browser)
    kind = "browser" if browser else "service-client"
    return (
        "### Where auth's CPU per login goes outside the hash\n\n"
        f"`{PROFILE_COMMAND}`: cProfile on auth's event-loop thread, timed with that thread's CPU clock"
        f" (so the argon2id pool threads are out, and so is time spent waiting), {logins} {kind}"
        f" logins over {users} users in {seconds:g} s. cProfile's own overhead inflates every figure:"
        " read the shares.\n\n" + summary(stats, max(logins, 1), "login")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    print(asyncio.run(section(args.seconds, args.users, args.browser)))


if __name__ == "__main__":
    main()

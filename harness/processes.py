"""The only code that starts processes for the tests and the bench: the Mongo-wire
stand-in, a private Redis, our two services and the admin CLI.

Every suite gets its own processes on free ports, in scratch working directories (a
developer's `.env` or `data/secrets.env` never reaches them); the machine's shared
Redis on 6379 is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


# Only these variables of the runner's environment reach a service subprocess:
# nothing configuration-shaped leaks in from the machine running the tests.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def clean_env(env: Mapping[str, str]) -> dict[str, str]:
    """A subprocess environment: the pass-through basics plus exactly `env`.

    `make coverage` follows subprocesses through coverage.py's own COVERAGE_* variables, which
    pass through too (they configure nothing of the service).
    """
    result = {name: os.environ[name] for name in PASSTHROUGH if name in os.environ}
    result.update({name: value for name, value in os.environ.items() if name.startswith("COVERAGE_")})
    result["PYTHONPATH"] = str(ROOT)  # this checkout's code, whichever one the venv installed
    result.update(env)
    return result


def run_to_exit(
    module: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m <module>` run to completion (startup refusals), with exactly `env` plus the basics."""
    workdir = cwd if cwd is not None else Path(tempfile.mkdtemp(prefix="authgate-run-"))
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", module],
        env=clean_env(env),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_authgate(
    env: Mapping[str, str], workdir: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The `authgate` admin CLI as an operator runs it, with exactly `env` plus the basics."""
    exe = shutil.which("authgate", path=str(VENV_BIN)) or str(VENV_BIN / "authgate")
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [exe, *args],
        env=clean_env(env),
        cwd=workdir,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig_kill: bool = False) -> None:
        if self.proc.poll() is None:
            if sig_kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _spawn(cmd: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Run in a scratch directory: a developer's .env or data/secrets.env never reaches a test."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cwd = tempfile.mkdtemp(prefix="authgate-proc-")
    with log_path.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=dict(env) if env else None
        )


def start_mongo(data_dir: Path, port: int | None = None, extra: list[str] | None = None) -> Server:
    """The secantusdb Mongo-wire server as a separate process (GPL: never imported)."""
    port = port or free_port()
    exe = shutil.which("secantusd-py", path=str(VENV_BIN)) or "secantusd-py"
    cmd = [exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(data_dir)]
    cmd += ["--log-level", "WARNING", *(extra or [])]
    proc = _spawn(cmd, data_dir.parent / f"mongo-{port}.log")
    wait_port(port, 60, proc)
    return Server(proc, port, data_dir.parent / f"mongo-{port}.log")


def mongo_uri(port: int, db: str = "authgate_test") -> str:
    return f"mongodb://127.0.0.1:{port}/{db}?retryWrites=false"


def start_redis(work_dir: Path, port: int | None = None) -> Server:
    """A private redis-server on a free port; never the machine's shared one."""
    port = port or free_port()
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (make test installs it)")
    work_dir.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += ["--dir", str(work_dir), "--daemonize", "no"]
    proc = _spawn(cmd, work_dir / f"redis-{port}.log")
    wait_port(port, 20, proc)
    return Server(proc, port, work_dir / f"redis-{port}.log")


def start_service(module: str, port: int, env: Mapping[str, str], log_path: Path) -> Server:
    """Run `python -m <module>` (an authgate service) with the given environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH", "MODERATION", "JWT_"))}
    full_env["PYTHONPATH"] = str(ROOT)  # this checkout's code, whichever one the venv installed
    full_env.update(env)
    # Each process gets its own management port, so two services never collide on 9080/9081.
    full_env.setdefault("AUTH_MANAGEMENT_PORT", str(free_port()))
    full_env.setdefault("MODERATION_MANAGEMENT_PORT", str(free_port()))
    proc = _spawn([sys.executable, "-m", module], log_path, full_env)
    try:
        wait_port(port, 30, proc)
    except (RuntimeError, TimeoutError) as exc:
        raise RuntimeError(f"{module} did not start: {exc}\n{log_path.read_text(errors='replace')}") from None
    return Server(proc, port, log_path)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def stopping(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


def spawn_auth(env: Mapping[str, str], workdir: Path, *, root: Path | None = None) -> Server:
    """`python -m services.auth` with exactly `env` plus the basics, not waited for; log in `workdir`.

    AUTH_PORT is chosen when absent and AUTH_MANAGEMENT_PORT always gets its own port, so
    processes never collide on 3080/9080. The working directory is the service's root for
    `.env` files and generated secrets: `root`, else a new folder in `workdir`.
    """
    full = dict(env)
    port = int(full.get("AUTH_PORT") or free_port())
    full["AUTH_PORT"] = str(port)
    full.setdefault("AUTH_HOST", "127.0.0.1")
    full.setdefault("AUTH_MANAGEMENT_PORT", str(free_port()))
    root = root or workdir / f"auth-{port}"
    root.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"auth-{port}.log"
    with log_path.open("ab") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.auth"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=clean_env(full),
        )
    return Server(proc, port, log_path)


def start_auth(
    env: Mapping[str, str], workdir: Path, *, root: Path | None = None, timeout: float = 30
) -> Server:
    """`spawn_auth`, then wait until it listens (its log in the error when it never does)."""
    server = spawn_auth(env, workdir, root=root)
    try:
        wait_port(server.port, timeout, server.proc)
    except (RuntimeError, TimeoutError) as exc:
        server.stop()
        raise RuntimeError(f"auth service did not start: {exc}\n{server.log()}") from None
    return server


def start_process(
    cmd: list[str],
    port: int,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 20,
) -> Server:
    """Any server process (a stand-in, a proxy): started, waited for on `port`, its output logged."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as handle:
        proc = subprocess.Popen(
            cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=dict(env) if env is not None else None
        )
    server = Server(proc, port, log_path)
    try:
        wait_port(port, timeout, proc)
    except (RuntimeError, TimeoutError) as exc:
        server.stop()
        raise RuntimeError(f"{Path(cmd[0]).name} did not start: {exc}\n{server.log()}") from None
    return server

"""Start real servers for the tests: the Mongo-wire stand-in, a private Redis, our services.

Every suite gets its own processes on free ports; the machine's shared Redis on
6379 is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = log_path.open("ab")
    return subprocess.Popen(
        cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(env) if env else None
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

"""Helpers for the integration tests: auth processes, the admin CLI, an echo upstream, nginx.

Everything here is a real server on a loopback socket. Auth processes run in a
scratch working directory, so a developer's `.env` or `data/secrets.env` never
leaks into a test, and get exactly the environment the test gives them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette

from services.auth.app import create_app
from services.auth.context import AuthContext
from services.auth.settings import load_settings
from shared.config import Env
from tests.harness import (
    ROOT,
    ModerationHandle,
    Server,
    clean_env,
    free_port,
    mongo_uri,
    run_authgate,
    shared_moderation,
    wait_port,
)

STRONG_PASSWORD = "correct horse battery staple zebra"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "nginx.conf"
IDENTITY_HEADERS = ("x-auth-user-id", "x-auth-email", "x-auth-username", "x-auth-role", "x-auth-session-id")
# The revocation bound the tests check: generous (the published bound is 1 s; `make bench` measures p99).
REVOCATION_DEADLINE_S = 5.0

_db_counter = itertools.count()
T = TypeVar("T")


def auth_env(mongo_port: int, moderation: ModerationHandle | None = None, **extra: str) -> dict[str, str]:
    """Settings for one auth process on its own database (pass MONGO_URI to share one).

    The process talks to `moderation` when given, else to the shared generous one.
    """
    env = {
        "AUTHGATE_ENV": "test",
        "JWT_SECRET": secrets.token_hex(32),
        "JWT_REFRESH_SECRET": secrets.token_hex(32),
        "MONGO_URI": mongo_uri(mongo_port, f"integ_{next(_db_counter)}_{secrets.token_hex(3)}"),
        "ALLOW_REGISTRATION": "true",
        "MONGO_TIMEOUT": "2000",
        "AUTH_HOST": "127.0.0.1",
        "LOG_LEVEL": "INFO",
        **(moderation or shared_moderation()).auth_env(),
    }
    env.update(extra)
    return env


def spawn_auth(env: Mapping[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start `python -m services.auth` without waiting for it (AUTH_PORT chosen when absent)."""
    full = dict(env)
    port = int(full.get("AUTH_PORT") or free_port())
    full["AUTH_PORT"] = str(port)
    # Its own management (metrics) port, so processes never collide on the default 9080.
    full.setdefault("AUTH_MANAGEMENT_PORT", str(free_port()))
    root = workdir / f"auth-{port}"
    root.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"auth-{port}.log"
    with log_path.open("ab") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.auth"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=clean_env(full),
        )
    return proc, port, log_path


def start_auth(env: Mapping[str, str], workdir: Path, timeout: float = 30) -> Server:
    proc, port, log_path = spawn_auth(env, workdir)
    server = Server(proc, port, log_path)
    try:
        wait_port(port, timeout, proc)
    except (RuntimeError, TimeoutError) as exc:
        server.stop()
        raise RuntimeError(f"auth service did not start: {exc}\n{server.log()}") from None
    return server


def run_cli(
    env: Mapping[str, str], workdir: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The `authgate` admin CLI as an operator runs it; it must succeed."""
    proc = run_authgate(env, workdir, *args, stdin=stdin)
    assert proc.returncode == 0, f"authgate {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
    return proc


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(interval)


# Talking to an auth process --------------------------------------------------------


class AuthClient:
    """Register, log in, log out and call /verify on one auth process over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def close(self) -> None:
        self.http.close()

    def register(self, email: str, password: str = STRONG_PASSWORD, **extra: str) -> None:
        body = {"name": "Test User", "email": email, "password": password, "confirm_password": password}
        response = self.http.post("/api/auth/register", json={**body, **extra})
        assert response.status_code == 200, response.text

    def login(self, email: str, password: str = STRONG_PASSWORD) -> dict[str, Any]:
        response = self.http.post(
            "/api/auth/login", json={"email": email, "password": password, "refresh_token_in_body": True}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def user(self, email: str, **extra: str) -> dict[str, Any]:
        self.register(email, **extra)
        return self.login(email)

    def logout(self, token: str) -> None:
        response = self.http.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text

    def verify(self, token: str | None, path: str = "/verify", **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.get(path, headers=headers)

    def verify_status(self, token: str | None, path: str = "/verify") -> int:
        return self.verify(token, path).status_code


# A small upstream that echoes what it received ---------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


@dataclass
class EchoServer:
    """HTTP/1.1 keep-alive server in a thread: records each request, answers with it as JSON.

    `status` and `extra_headers` set the answer, so the same server also stands
    in for an auth service when a test checks what nginx sends to /verify.
    """

    httpd: ThreadingHTTPServer
    thread: threading.Thread
    requests: list[Recorded] = field(default_factory=list)
    status: int = 200
    extra_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def clear(self) -> None:
        self.requests.clear()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def start_echo() -> EchoServer:
    holder: dict[str, EchoServer] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            server = holder["server"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            record = Recorded(self.command, self.path, list(self.headers.items()), body)
            server.requests.append(record)
            payload = json.dumps(
                {"method": record.method, "path": record.path, "headers": record.headers}
            ).encode()
            self.send_response(server.status)
            for name, value in server.extra_headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="echo-upstream", daemon=True)
    server = EchoServer(httpd, thread)
    holder["server"] = server
    thread.start()
    return server


# nginx ---------------------------------------------------------------------------------


def find_nginx() -> str | None:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found


def render_nginx(prefix: Path, listen_port: int, auth_upstream: str, app_upstream: str) -> Path:
    """deploy/nginx/nginx.conf with its placeholders filled; fails if any placeholder is left."""
    text = NGINX_TEMPLATE.read_text()
    for placeholder, value in (
        ("@LISTEN_PORT@", str(listen_port)),
        ("@AUTH_UPSTREAM@", auth_upstream),
        ("@APP_UPSTREAM@", app_upstream),
        ("@PREFIX@", str(prefix)),
    ):
        assert placeholder in text, f"{NGINX_TEMPLATE} lacks the placeholder {placeholder}"
        text = text.replace(placeholder, value)
    leftover = [word for word in text.split() if word.count("@") >= 2]
    assert not leftover, f"unfilled placeholders in the nginx template: {leftover}"
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    return conf


def start_nginx(nginx: str, prefix: Path, auth_upstream: str, app_upstream: str) -> Server:
    port = free_port()
    conf = render_nginx(prefix, port, auth_upstream, app_upstream)
    base = [nginx, "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, f"nginx -t refused the rendered template:\n{check.stderr}"
    log_path = prefix / "nginx.stderr.log"
    with log_path.open("ab") as handle:
        proc = subprocess.Popen([*base, "-g", "daemon off;"], stdout=handle, stderr=subprocess.STDOUT)
    server = Server(proc, port, log_path)
    try:
        wait_port(port, 20, proc)
    except (RuntimeError, TimeoutError) as exc:
        server.stop()
        raise RuntimeError(f"nginx did not start: {exc}\n{server.log()}") from None
    return server


@contextlib.contextmanager
def stopping(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


# The app in-process (request shapes that need no proxy binary) --------------------------------


class InProcess:
    """The auth app with its lifespan running; clients connect from any peer address."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self._clients: list[httpx.AsyncClient] = []

    @property
    def ctx(self) -> AuthContext:
        context: AuthContext = self.app.state.ctx
        return context

    def client(self, peer: str = "203.0.113.10") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(peer, 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://authgate-auth:3080")
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def user(self, email: str, role: str = "USER") -> dict[str, Any]:
        """Register (and promote) a user, log in as a service client; the token body."""
        client = self.client()
        body = {"name": "Test User", "email": email, "password": STRONG_PASSWORD}
        response = await client.post("/api/auth/register", json={**body, "confirm_password": STRONG_PASSWORD})
        assert response.status_code == 200, response.text
        if role != "USER":
            user = await self.ctx.accounts.find_by_email(email)
            assert user is not None
            await self.ctx.accounts.set_role(user, role)
        response = await client.post(
            "/api/auth/login",
            json={"email": email, "password": STRONG_PASSWORD, "refresh_token_in_body": True},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


@contextlib.asynccontextmanager
async def running_app(mongo_port: int, root: Path, **overrides: str) -> AsyncIterator[InProcess]:
    """The auth app on its own database with its lifespan running (store, revocation poller)."""
    base = auth_env(mongo_port)
    base.pop("AUTH_HOST")
    root.mkdir(parents=True, exist_ok=True)
    settings = load_settings(Env([overrides, base]), root=root)
    app = create_app(settings)
    running = InProcess(app)
    async with app.router.lifespan_context(app):
        try:
            yield running
        finally:
            await running.aclose()

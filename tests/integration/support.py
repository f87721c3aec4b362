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
import subprocess
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from harness import (
    ROOT,
    STRONG_PASSWORD,
    ModerationHandle,
    Server,
    eventually_sync,
    find_nginx,
    free_port,
    mongo_uri,
    run_authgate,
    shared_moderation,
    spawn_auth,
    start_auth,
    stopping,
    wait_port,
)
from harness import start_nginx as harness_start_nginx
from harness.inprocess import InProcessApp
from harness.inprocess import running_app as harness_running_app
from services.auth.settings import load_settings
from shared.config import Env

# Re-exported: the integration tests import these from here.
__all__ = [
    "STRONG_PASSWORD",
    "Server",
    "eventually_sync",
    "find_nginx",
    "spawn_auth",
    "start_auth",
    "stopping",
    "wait_port",
]

NGINX_TEMPLATE = ROOT / "deploy" / "nginx" / "nginx.conf"
IDENTITY_HEADERS = ("x-auth-user-id", "x-auth-email", "x-auth-username", "x-auth-role", "x-auth-session-id")
# The revocation bound the tests check: generous (the published bound is 1 s; `make bench` measures p99).
REVOCATION_DEADLINE_S = 5.0

_db_counter = itertools.count()


def auth_env(mongo_port: int, moderation: ModerationHandle | None = None, /, **extra: str) -> dict[str, str]:
    """Settings for one auth process on its own database (pass MONGO_URI to share one).

    The process talks to `moderation` when given, else to the shared generous one.
    """
    env = {
        "AUTHGATE_ENV": "test",
        "JWT_SECRET": secrets.token_hex(32),
        "JWT_REFRESH_SECRET": secrets.token_hex(32),
        "TOTP_ENCRYPTION_KEY": secrets.token_hex(32),
        "MONGO_URI": mongo_uri(mongo_port, f"integ_{next(_db_counter)}_{secrets.token_hex(3)}"),
        "ALLOW_REGISTRATION": "true",
        "MONGO_TIMEOUT": "2000",
        "AUTH_HOST": "127.0.0.1",
        "LOG_LEVEL": "INFO",
        **(moderation or shared_moderation()).auth_env(),
    }
    env.update(extra)
    return env


def run_cli(
    env: Mapping[str, str], workdir: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The `authgate` admin CLI as an operator runs it; it must succeed."""
    proc = run_authgate(env, workdir, *args, stdin=stdin)
    assert proc.returncode == 0, f"authgate {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
    return proc


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
    """deploy/nginx/nginx.conf rendered for these upstreams, run by harness on a free port."""
    port = free_port()
    return harness_start_nginx(nginx, prefix, render_nginx(prefix, port, auth_upstream, app_upstream), port)


# The app in-process (request shapes that need no proxy binary) --------------------------------


@contextlib.asynccontextmanager
async def running_app(mongo_port: int, root: Path, **overrides: str) -> AsyncIterator[InProcessApp]:
    """The auth app on its own database with its lifespan running (store, revocation poller)."""
    base = auth_env(mongo_port)
    base.pop("AUTH_HOST")
    root.mkdir(parents=True, exist_ok=True)
    settings = load_settings(Env([overrides, base]), root=root)
    async with harness_running_app(settings, base_url="http://authgate-auth:3080") as running:
        yield running

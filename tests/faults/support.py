"""Helpers for the fault tests: a moderation stand-in that can hang, hold or answer, and small waits.

The stand-in is a real HTTP server on a loopback socket (threads, so it keeps
answering while the test's event loop is busy). It only speaks the four calls
auth's moderation client makes; everything it answers is "allowed".
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from harness import AUTH_EVENT_SCOPES, GENEROUS_LIMITS, free_port

T = TypeVar("T")

ALLOWED = {"allowed": True, "retry_after": 0, "limit": 1_000_000, "remaining": 999_999, "score": 0}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (auth's timeout) leaves a broken pipe behind: expected here."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeModeration:
    """`mode` decides each answer: "ok", "silent" (read nothing, say nothing), "slow" (answer after
    `slow_s`), "hold" (events wait for `release`). Events received are counted in `events`."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.mode = "ok"
        self.slow_s = 10.0
        self.events = 0
        self.release = threading.Event()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle(self) -> None:
                if fake.mode == "silent":
                    # Accept the connection, read nothing, never answer: the hung dependency.
                    fake.stopping.wait(30)
                    return
                super().handle()

            def _answer(self, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stalled(self) -> bool:
                """On a kept-alive connection too: a silent moderation never answers."""
                if fake.mode != "silent":
                    return False
                fake.stopping.wait(30)
                self.close_connection = True
                return True

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        chunk = self.rfile.read(size) if size else b""
                        self.rfile.readline()
                        if not size:
                            return b"".join(chunks)
                        chunks.append(chunk)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                self._read_body()
                if self._stalled():
                    return
                if fake.mode == "slow":
                    fake.stopping.wait(fake.slow_s)
                path = self.path.split("?", 1)[0]
                if path == "/v1/bans":
                    self._answer({"bans": [], "next": None, "feed_cursor": "fake-0"})
                else:
                    self._answer({"cursor": "fake-0", "reset": False, "changes": []})

            def do_POST(self) -> None:
                self._read_body()
                if self._stalled():
                    return
                if self.path.startswith("/v1/events"):
                    with fake._lock:
                        fake.events += 1
                    if fake.mode == "slow":
                        fake.stopping.wait(fake.slow_s)
                    elif fake.mode == "hold":
                        fake.release.wait(30)
                    self._answer(ALLOWED)
                else:
                    self._answer({"recorded": True, "score": 0})

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = _QuietServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fake-moderation", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop listening and let every hanging handler return, so the port can be reused."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@dataclass(frozen=True)
class Keys:
    report: str  # what auth sends (MODERATION_API_KEY)
    admin: str

    @property
    def env_value(self) -> str:
        """MODERATION_API_KEYS for a real moderation that accepts both."""
        return f"auth:{AUTH_EVENT_SCOPES}:{self.report},cli:admin:{self.admin}"


def moderation_keys() -> Keys:
    return Keys(secrets.token_urlsafe(32), secrets.token_urlsafe(32))


def real_moderation_env(port: int, keys: Keys, **extra: str) -> dict[str, str]:
    return {
        "AUTHGATE_ENV": "test",
        "MODERATION_PORT": str(port),
        "MODERATION_API_KEYS": keys.env_value,
        **GENEROUS_LIMITS,
        **extra,
    }


def refuses_connections(port: int) -> bool:
    """True when nothing accepts on 127.0.0.1:port (connection refused)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        return True
    return False

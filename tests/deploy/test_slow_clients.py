"""Slow clients: the shipped proxies time out request reads, and the services bound idle connections."""

from __future__ import annotations

import re
import socket
import tempfile
import time
from pathlib import Path

import yaml

from harness import Server, free_port, start_service
from tests.auth.config_helpers import secrets_env
from tests.deploy.support import DEPLOY


def test_nginx_examples_time_out_slow_reads() -> None:
    for name in ("nginx.conf", "authgate.conf"):
        text = (DEPLOY / "nginx" / name).read_text()
        for directive in ("client_header_timeout", "client_body_timeout", "send_timeout"):
            match = re.search(rf"^\s*{directive}\s+(\d+)s;", text, re.MULTILINE)
            assert match is not None, f"{name}: {directive}"
            assert int(match.group(1)) <= 30


def test_traefik_entry_point_has_a_read_timeout() -> None:
    static = yaml.safe_load((DEPLOY / "traefik" / "traefik.yml").read_text())
    timeouts = static["entryPoints"]["web"]["transport"]["respondingTimeouts"]
    assert timeouts["readTimeout"] == "10s"


def test_envoy_times_out_request_headers() -> None:
    config = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text())
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["request_headers_timeout"] == "10s"
    assert manager["stream_idle_timeout"] == "30s"


def _auth_service(**extra: str) -> Server:
    """A real auth process (uvicorn) with the given HTTP limits; no store is needed for /healthz."""
    port = free_port()
    env = {
        **secrets_env(),
        "AUTHGATE_ENV": "test",
        "AUTH_PORT": str(port),
        "AUTH_MANAGEMENT_PORT": "0",
        **extra,
    }
    return start_service("services.auth", port, env, Path(tempfile.mkdtemp()) / f"auth-{port}.log")


def test_service_closes_idle_keep_alive_connections() -> None:
    """uvicorn runs with HTTP_KEEP_ALIVE_TIMEOUT: an idle connection does not stay open forever."""
    server = _auth_service(HTTP_KEEP_ALIVE_TIMEOUT="1")
    port = server.port
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: auth\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(2.5)  # idle past the keep-alive timeout, well before uvicorn's default 5 s
            sock.settimeout(1.0)
            assert sock.recv(4096) == b""  # the server closed it
    finally:
        server.stop()


def _status(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: auth\r\nConnection: close\r\n\r\n")
    answer = b""
    while b"\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_service_answers_503_past_its_concurrency_limit() -> None:
    """uvicorn runs with HTTP_LIMIT_CONCURRENCY: held connections cannot pile up without bound."""
    server = _auth_service(HTTP_LIMIT_CONCURRENCY="2")
    port = server.port
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as alone:
            assert _status(alone) == b"HTTP/1.1 200 OK"  # one connection is within the limit
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as _idle,  # a slow client holds one
            socket.create_connection(("127.0.0.1", port), timeout=10) as second,
        ):
            assert _status(second) == b"HTTP/1.1 503 Service Unavailable"
    finally:
        server.stop()

"""Proxy examples: nginx runs for real (against a stand-in /verify), Traefik and Envoy statically.

The stand-in /verify answers by token, like authgate would; it lets these tests prove
what the nginx configuration itself guarantees (identity headers overwritten, the
client's X-Forwarded-For replaced, roles only from the location, fail closed).
The end-to-end tests against the real auth service live with the service's tests.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from harness import free_port

from .support import DEPLOY, Tools

IDENTITY_HEADERS = ["X-Auth-User-Id", "X-Auth-Email", "X-Auth-Username", "X-Auth-Role", "X-Auth-Session-Id"]
PLACEHOLDERS = ("@LISTEN_PORT@", "@AUTH_UPSTREAM@", "@APP_UPSTREAM@", "@PREFIX@")


# ---- nginx -------------------------------------------------------------------------


def render_template(listen_port: int, auth: str, app: str, prefix: Path) -> str:
    text = (DEPLOY / "nginx" / "nginx.conf").read_text()
    for placeholder in PLACEHOLDERS:
        assert placeholder in text, f"template lacks {placeholder}"
    text = (
        text.replace("@LISTEN_PORT@", str(listen_port))
        .replace("@AUTH_UPSTREAM@", auth)
        .replace("@APP_UPSTREAM@", app)
        .replace("@PREFIX@", str(prefix))
    )
    assert not re.search(r"@[A-Z_]+@", text), "unreplaced placeholder"
    return text


@pytest.fixture
def nginx(tools: Tools) -> str:
    if tools.nginx is None:
        pytest.skip(
            "nginx is not installed and scripts/install_tools.sh could not install it "
            f"(needs root and apt-get):\n{tools.install_log[-1500:]}"
        )
    return tools.nginx


@pytest.fixture
def prefix() -> Iterator[Path]:
    # Not pytest's tmp_path: when the tests run as root, nginx's workers run as
    # `nobody` and must be able to traverse the directory.
    path = Path(tempfile.mkdtemp(prefix="authgate-nginx-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def nginx_test(nginx: str, conf: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_nginx_template_passes_nginx_t(nginx: str, prefix: Path) -> None:
    conf = prefix / "nginx.conf"
    conf.write_text(render_template(free_port(), "127.0.0.1:9", "127.0.0.1:9", prefix))
    proc = nginx_test(nginx, conf, prefix)
    assert proc.returncode == 0, proc.stderr
    assert "test is successful" in proc.stderr


def test_nginx_example_snippet_passes_nginx_t(nginx: str, prefix: Path) -> None:
    """deploy/nginx/authgate.conf, included in a minimal http {} as /etc/nginx/conf.d would."""
    snippet = (DEPLOY / "nginx" / "authgate.conf").read_text()
    # Its upstream host names only resolve in a cluster; the syntax is what is checked.
    snippet = snippet.replace("server authgate-auth:3080;", "server 127.0.0.1:9;")
    snippet = snippet.replace("server app:8080;", "server 127.0.0.1:9;")
    snippet = re.sub(r"listen 80;", f"listen 127.0.0.1:{free_port()};", snippet)
    (prefix / "authgate.conf").write_text(snippet)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"pid {prefix}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n"
        + "".join(
            f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"    access_log off;\n    include {prefix}/authgate.conf;\n}}\n"
    )
    proc = nginx_test(nginx, conf, prefix)
    assert proc.returncode == 0, proc.stderr


@dataclass
class Seen:
    """What the stand-in /verify and the stand-in app received."""

    verify: list[dict[str, Any]] = field(default_factory=list)
    app: list[dict[str, Any]] = field(default_factory=list)


TOKENS = {
    "Bearer user-token": (
        200,
        {"X-Auth-User-Id": "u-1", "X-Auth-Email": "u@example.com", "X-Auth-Role": "USER"},
    ),
    "Bearer admin-token": (
        200,
        {"X-Auth-User-Id": "a-1", "X-Auth-Role": "ADMIN", "X-Auth-Session-Id": "s-9"},
    ),
    "Bearer banned-token": (403, {"Retry-After": "120"}),
    "Bearer broken-token": (500, {}),
}


def make_handler(seen: Seen, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _record(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            record = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "raw_headers": [k.lower() for k in self.headers],
                "body": body.decode(),
            }
            (seen.verify if role == "verify" else seen.app).append(record)
            return record

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            record = self._record()
            if role == "app":
                self._send(200, {"Content-Type": "application/json"}, b'{"app": true}')
                return
            status, headers = TOKENS.get(record["headers"].get("authorization", ""), (401, {}))
            if status == 401:
                headers = {"WWW-Authenticate": "Bearer"}
            roles = parse_qs(urlsplit(self.path).query).get("roles")
            if status == 200 and roles and headers["X-Auth-Role"] not in roles[0].split(","):
                status, headers = 403, {}
            self._send(status, headers, json.dumps({"code": status}).encode())

        do_POST = do_GET

    return Handler


@pytest.fixture
def proxy(nginx: str, prefix: Path) -> Iterator[tuple[int, Seen]]:
    """nginx from the template, in front of a stand-in /verify and a stand-in app."""
    seen = Seen()
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), make_handler(seen, role)) for role in ("verify", "app")]
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    verify_port, app_port = (s.server_address[1] for s in servers)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render_template(port, f"127.0.0.1:{verify_port}", f"127.0.0.1:{app_port}", prefix))
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, f"nginx exited: {proc.stdout.read() if proc.stdout else ''}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.05)
        yield port, seen
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful stop; SIGKILL below if it hangs
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        for server in servers:
            server.shutdown()
            server.server_close()


def request(
    port: int, path: str, headers: list[tuple[str, str]], method: str = "GET", body: str | None = None
) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path)
        for key, value in headers:  # putheader allows repeated and odd header names
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body.encode() if body is not None else None)
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


FORGED = [
    ("X-Auth-User-Id", "forged-admin"),
    ("X-Auth-Role", "ADMIN"),
    ("X-Auth-Username", "forged"),
    ("x-auth-email", "forged@example.com"),
    ("X_Auth_User_Id", "forged-underscore"),
    ("X-Auth-Required-Roles", "USER"),
    ("X-Forwarded-For", "203.0.113.66"),
]


def test_nginx_passes_identity_from_verify_only(proxy: tuple[int, Seen]) -> None:
    port, seen = proxy
    status, _ = request(
        port,
        "/docs?x=1",
        [("Authorization", "Bearer user-token"), *FORGED],
        method="POST",
        body="secret-body",
    )
    assert status == 200
    (app,) = seen.app
    headers = app["headers"]
    assert headers["x-auth-user-id"] == "u-1"
    assert headers["x-auth-role"] == "USER"
    assert headers["x-auth-email"] == "u@example.com"
    # Not returned by /verify: a client's value must not survive either.
    assert "x-auth-username" not in headers
    assert "x-auth-session-id" not in headers
    assert "x-auth-required-roles" not in headers
    assert "x_auth_user_id" not in headers and "x-auth-user-id" in app["raw_headers"]
    assert app["raw_headers"].count("x-auth-user-id") == 1
    assert headers["x-forwarded-for"] == "127.0.0.1", "the client's X-Forwarded-For is replaced"
    assert app["body"] == "secret-body"

    (verify,) = seen.verify
    assert verify["method"] == "GET"
    assert verify["path"] == "/verify", "no query from the client reaches /verify"
    assert verify["body"] == "", "the body never goes to /verify"
    assert verify["headers"]["x-original-url"] == f"http://127.0.0.1:{port}/docs?x=1"
    assert verify["headers"]["x-original-method"] == "POST"
    assert verify["headers"]["x-forwarded-for"] == "127.0.0.1", "set in the auth location"
    assert verify["headers"]["authorization"] == "Bearer user-token"
    assert "x-auth-required-roles" not in verify["headers"]


def test_nginx_refusals(proxy: tuple[int, Seen]) -> None:
    port, seen = proxy
    status, headers = request(port, "/", [])
    assert (status, headers.get("www-authenticate")) == (401, "Bearer")
    status, headers = request(port, "/", [("Authorization", "Bearer banned-token")])
    assert (status, headers.get("retry-after")) == (403, "120")
    # An internal error in /verify is never a pass.
    status, _ = request(port, "/", [("Authorization", "Bearer broken-token")])
    assert status >= 500
    assert seen.app == [], "no refused request reached the app"


def test_nginx_admin_location_sets_roles_itself(proxy: tuple[int, Seen]) -> None:
    port, seen = proxy
    status, _ = request(port, "/admin/users?roles=USER", [("Authorization", "Bearer user-token")])
    assert status == 403
    status, _ = request(port, "/admin/users?roles=USER", [("Authorization", "Bearer admin-token")])
    assert status == 200
    assert [v["path"] for v in seen.verify] == ["/verify?roles=ADMIN"] * 2
    (app,) = seen.app
    assert app["headers"]["x-auth-role"] == "ADMIN"
    assert app["headers"]["x-auth-session-id"] == "s-9"


# ---- Traefik -----------------------------------------------------------------------


def test_traefik_forward_auth() -> None:
    config = yaml.safe_load((DEPLOY / "traefik" / "dynamic.yml").read_text())["http"]
    middlewares = config["middlewares"]
    addresses = {}
    for name, middleware in middlewares.items():
        forward = middleware["forwardAuth"]
        addresses[name] = forward["address"]
        assert forward["trustForwardHeader"] is False
        assert forward["authResponseHeaders"] == IDENTITY_HEADERS
        pattern = re.compile(forward["authResponseHeadersRegex"])
        for header in [*IDENTITY_HEADERS, "X-Auth-Whatever", "x-auth-user-id"]:
            assert pattern.search(header), f"{header} would not be cleared"
        assert not pattern.search("Authorization")
        assert "Authorization" in forward["authRequestHeaders"]
    assert sorted(addresses.values()) == [
        "http://authgate-auth:3080/verify",
        "http://authgate-auth:3080/verify?roles=ADMIN",
    ]
    for router in config["routers"].values():
        assert set(router["middlewares"]) <= set(middlewares)
        assert router["service"] in config["services"]


# ---- Envoy -------------------------------------------------------------------------


def envoy_http_filters() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    config = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text())
    (listener,) = config["static_resources"]["listeners"]
    (chain,) = listener["filter_chains"]
    (hcm,) = chain["filters"]
    typed = hcm["typed_config"]
    clusters = {c["name"] for c in config["static_resources"]["clusters"]}
    return typed["http_filters"], typed["route_config"]["virtual_hosts"][0]["routes"], {"clusters": clusters}


def test_envoy_ext_authz() -> None:
    filters, routes, extra = envoy_http_filters()
    types = [f["typed_config"]["@type"].rsplit(".", 1)[-1] for f in filters]
    assert types == ["HeaderMutation", "ExtAuthz", "ExtAuthz", "Router"]
    # 1. client X-Auth-* headers are removed before anything else.
    (mutation,) = filters[0]["typed_config"]["mutations"]["request_mutations"]
    assert mutation["remove_on_match"]["key_matcher"] == {"prefix": "x-auth-"}
    generic, admin = filters[1], filters[2]
    assert generic["name"] == "envoy.filters.http.ext_authz"
    assert admin.get("disabled") is True and "disabled" not in generic
    for ext in (generic, admin):
        cfg = ext["typed_config"]
        assert cfg["@type"] == "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
        assert cfg["failure_mode_allow"] is False
        service = cfg["http_service"]
        assert service["path_prefix"] == "/verify"
        assert service["server_uri"]["cluster"] in extra["clusters"]
        assert {"exact": "authorization"} in cfg["allowed_headers"]["patterns"]
        upstream = service["authorization_response"]["allowed_upstream_headers"]["patterns"]
        assert sorted(p["exact"] for p in upstream) == sorted(h.lower() for h in IDENTITY_HEADERS)
        client = {p["exact"] for p in service["authorization_response"]["allowed_client_headers"]["patterns"]}
        assert {"www-authenticate", "retry-after"} <= client
    assert "authorization_request" not in generic["typed_config"]["http_service"]
    added = admin["typed_config"]["http_service"]["authorization_request"]["headers_to_add"]
    assert added == [{"key": "X-Auth-Required-Roles", "value": "ADMIN"}]
    # /admin/ swaps the generic check for the admin one; every other route keeps the generic one.
    admin_route, *others = routes
    assert admin_route["match"] == {"prefix": "/admin/"}
    per_filter = admin_route["typed_per_filter_config"]
    assert per_filter[generic["name"]]["disabled"] is True
    assert admin["name"] in per_filter
    for route in others:
        assert "typed_per_filter_config" not in route
        assert route["route"]["cluster"] in extra["clusters"]


def test_no_proxy_example_trusts_client_forwarded_headers() -> None:
    """A cheap guard against the classic mistake in all three files."""
    assert "trustForwardHeader: true" not in (DEPLOY / "traefik" / "dynamic.yml").read_text()
    assert "failure_mode_allow: true" not in (DEPLOY / "envoy" / "envoy.yaml").read_text()
    for name in ("nginx.conf", "authgate.conf"):
        text = (DEPLOY / "nginx" / name).read_text()
        verify_blocks = re.findall(r"location = /_authgate_verify\w*\s*\{(.*?)\n\s*\}", text, re.S)
        assert len(verify_blocks) == 2
        for block in verify_blocks:
            assert "internal;" in block
            assert "proxy_pass_request_body off;" in block
            assert "proxy_set_header X-Forwarded-For $remote_addr;" in block


@pytest.mark.skipif(os.name != "posix", reason="POSIX only")
def test_install_script_is_idempotent_and_fast(tools: Tools) -> None:
    """With everything present (the `tools` fixture saw to it), the script is a no-op."""
    if tools.nginx is None:
        pytest.skip("nginx could not be installed here; the script would try again")
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(DEPLOY.parent / "scripts" / "install_tools.sh")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pip install" not in proc.stdout and "apt-get" not in proc.stdout
    assert time.monotonic() - started < 20

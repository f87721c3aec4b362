"""deploy/caddy/Caddyfile as shipped: formatted as `caddy fmt` wants, and what Caddy makes of it
with its defaults (no environment): the check, the headers it copies, the cookie it strips.

The file also runs for real (Debian's caddy) in tests/integration/test_caddy_portal.py and the
browser tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import find_caddy

from .support import DEPLOY

CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
IDENTITY = [
    "X-Auth-Amr",
    "X-Auth-Email",
    "X-Auth-Role",
    "X-Auth-Session-Id",
    "X-Auth-User-Id",
    "X-Auth-Username",
]


def _caddy() -> str:
    found = find_caddy()
    if found is None:
        pytest.fail("caddy is not installed: run `make tools` (scripts/install_tools.sh)", pytrace=False)
    return found


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    return subprocess.run([_caddy(), *args], capture_output=True, text=True, timeout=30, check=False, env=env)


def _handlers(node: Any) -> list[dict[str, Any]]:
    """Every handler object anywhere in the adapted JSON."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "handler" in node:
            found.append(node)
        for value in node.values():
            found += _handlers(value)
    elif isinstance(node, list):
        for value in node:
            found += _handlers(value)
    return found


def test_the_caddyfile_is_formatted(tmp_path: Path) -> None:
    proc = _run(tmp_path, "fmt", str(CADDYFILE))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == CADDYFILE.read_text()


def test_the_defaults_describe_the_documented_setup(tmp_path: Path) -> None:
    proc = _run(tmp_path, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile")
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    handlers = _handlers(config)
    proxies = [h for h in handlers if h["handler"] == "reverse_proxy"]
    check = [h for h in proxies if h.get("rewrite", {}).get("uri") == "/forward-auth?"]
    assert len(check) == 1, "one forward_auth, to /forward-auth without the client's query"
    assert check[0]["rewrite"]["method"] == "GET"
    assert check[0]["upstreams"] == [{"dial": "authgate-auth:3080"}]
    copied = [h for h in _handlers(check[0]["handle_response"]) if h["handler"] == "headers"]
    assert sorted(copied[0]["request"]["set"]) == IDENTITY
    stepped = [h for h in proxies if h.get("rewrite", {}).get("uri") == "/forward-auth?mfa=required"]
    assert len(stepped) == 1, "one forward_auth asking for a second factor (the MFA sites)"
    copied = [h for h in _handlers(stepped[0]["handle_response"]) if h["handler"] == "headers"]
    assert sorted(copied[0]["request"]["set"]) == IDENTITY
    app = [h for h in proxies if h["upstreams"] == [{"dial": "wiki:8080"}]]
    assert len(app) == 2, "the apps and the MFA apps"
    assert app[0]["headers"] == app[1]["headers"], "both strip the session cookie"
    replacements = app[0]["headers"]["request"]["replace"]["Cookie"]
    strip = [re.compile(r["search_regexp"]) for r in replacements]
    for header, kept in (
        ("authgate_session=x", ""),
        ("__Host-authgate_session=x; a=1", "a=1"),
        ("a=1; authgate_session=x; b=2", "a=1; b=2"),
        ("a=1; my_authgate_session=y", "a=1; my_authgate_session=y"),
    ):
        for pattern, replacement in zip(strip, replacements, strict=True):
            header = pattern.sub(replacement["replace"].replace("$", "\\"), header)
        assert header == kept
    hosts = [
        m["host"] for route in config["apps"]["http"]["servers"]["srv0"]["routes"] for m in route["match"]
    ]
    assert ["wiki.example.com", "app.example.com"] in hosts and ["auth.example.com"] in hosts
    assert ["admin.example.com"] in hosts
    assert config["admin"] == {"listen": "localhost:2019"}

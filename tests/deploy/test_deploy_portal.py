"""deploy/traefik/portal.yml: the browser middleware calls /forward-auth with what it needs."""

from __future__ import annotations

import re

import yaml

from harness import ROOT

PORTAL = ROOT / "deploy" / "traefik" / "portal.yml"
IDENTITY = [
    "X-Auth-User-Id",
    "X-Auth-Email",
    "X-Auth-Username",
    "X-Auth-Role",
    "X-Auth-Session-Id",
    "X-Auth-Amr",
]


def test_traefik_browser_middlewares() -> None:
    config = yaml.safe_load(PORTAL.read_text())["http"]
    addresses = []
    for middleware in config["middlewares"].values():
        forward = middleware["forwardAuth"]
        addresses.append(forward["address"])
        assert forward["trustForwardHeader"] is False
        assert {"Authorization", "Cookie", "Accept"} <= set(forward["authRequestHeaders"])
        # Cookie: authgate answers with the request's cookies minus its session cookie, which
        # replaces the Cookie header the app receives (Traefik cannot strip one cookie itself).
        assert forward["authResponseHeaders"] == [*IDENTITY, "Cookie"]
        pattern = re.compile(forward["authResponseHeadersRegex"])
        assert all(pattern.search(name) for name in [*IDENTITY, "X-Auth-Forged"])
        assert not pattern.search("Cookie")
    assert sorted(addresses) == [
        "http://authgate-auth:3080/forward-auth",
        "http://authgate-auth:3080/forward-auth?mfa=required",
    ]
    for router in config["routers"].values():
        assert set(router.get("middlewares", [])) <= set(config["middlewares"])
        assert router["service"] in config["services"]

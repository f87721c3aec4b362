"""Through a real nginx (deploy/nginx/nginx.conf): a banned user is refused at the proxy.

nginx -> the auth service (a subprocess talking to this module's moderation
service) for /verify, and an echo upstream that records what reaches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness import ModerationHandle, Server
from tests.e2e.conftest import BAN_DEADLINE_S, LIMITS, fresh_email
from tests.integration.support import (
    AuthClient,
    EchoServer,
    auth_env,
    eventually_sync,
    find_nginx,
    start_auth,
    start_echo,
    start_nginx,
    stopping,
)

NGINX = find_nginx()
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (`make tools` installs it)")


@dataclass
class Proxied:
    auth: Server
    upstream: EchoServer
    client: httpx.Client  # to nginx

    def get(self, token: str) -> httpx.Response:
        return self.client.get("/api/things", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def proxied(mongo: Server, moderation: ModerationHandle, tmp_path: Path) -> Iterator[Proxied]:
    assert NGINX is not None
    env = auth_env(mongo.port, moderation, **LIMITS, TRUST_PROXY="1")
    env["TRUSTED_PROXIES"] = "127.0.0.1/32"  # nginx, on loopback
    upstream = start_echo()
    try:
        auth = start_auth(env, tmp_path)
        with stopping(auth):
            nginx = start_nginx(NGINX, tmp_path / "nginx", f"127.0.0.1:{auth.port}", upstream.address)
            with stopping(nginx), httpx.Client(base_url=nginx.url, timeout=30) as client:
                yield Proxied(auth, upstream, client)
    finally:
        upstream.stop()


def test_banned_user_is_refused_at_nginx_and_never_reaches_the_upstream(
    proxied: Proxied, moderation: ModerationHandle
) -> None:
    api = AuthClient(proxied.auth.url)
    try:
        banned = api.user(fresh_email("banned"))
        bystander = api.user(fresh_email("bystander"))
    finally:
        api.close()
    assert proxied.get(banned["token"]).status_code == 200
    assert len(proxied.upstream.requests) == 1

    admin = {"Authorization": f"Bearer {moderation.admin_key}"}
    ban = {"subject": f"user:{banned['user']['id']}", "reason": "spam", "duration_seconds": 600}
    response = httpx.post(f"{moderation.server.url}/v1/bans", json=ban, headers=admin, timeout=10)
    assert response.status_code == 201, response.text

    def refused() -> httpx.Response | None:
        response = proxied.get(banned["token"])
        return response if response.status_code == 403 else None

    first = eventually_sync(refused, "nginx refusing the banned user", timeout=BAN_DEADLINE_S)
    assert 1 <= int(first.headers["Retry-After"]) <= 600
    # From then on (whether or not the ban's session revocation has landed), never a pass.
    proxied.upstream.clear()
    for _ in range(5):
        response = proxied.get(banned["token"])
        assert response.status_code == 403, response.text
        assert 1 <= int(response.headers["Retry-After"]) <= 600
    assert proxied.upstream.requests == []
    # Other users pass.
    assert proxied.get(bystander["token"]).status_code == 200
    assert len(proxied.upstream.requests) == 1

"""Every answer to the configured browser origin carries CORS headers, refusals included,
so the app on DOMAIN_CLIENT can read why it was refused."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness import ModerationHandle, start_moderation

ORIGIN = "https://chat.example"


@pytest.fixture(scope="module")
def moderation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModerationHandle]:
    handle = start_moderation(tmp_path_factory.mktemp("cors"), {})
    try:
        yield handle
    finally:
        handle.server.stop(sig_kill=True)


def assert_cors(response: httpx.Response) -> None:
    assert response.headers.get("access-control-allow-origin") == ORIGIN
    assert response.headers.get("access-control-allow-credentials") == "true"


async def test_ip_ban_refusal_carries_cors_headers(
    app_factory: Callable[..., Any], moderation: ModerationHandle
) -> None:
    banned_ip = f"198.51.100.{secrets.randbelow(200) + 20}"
    env = {
        **moderation.auth_env(),
        "DOMAIN_CLIENT": ORIGIN,
        "TRUST_PROXY": "1",
        "TRUSTED_PROXIES": "203.0.113.10/32",
    }
    async with app_factory(**env) as auth:
        admin = {"Authorization": f"Bearer {moderation.admin_key}"}
        async with httpx.AsyncClient(base_url=moderation.server.url, headers=admin) as client:
            ban = {"subject": f"ip:{banned_ip}", "reason": "cors test", "duration_seconds": 120}
            assert (await client.post("/v1/bans", json=ban)).status_code in (200, 201)
        headers = {"X-Forwarded-For": banned_ip, "Origin": ORIGIN}
        deadline = time.monotonic() + 10
        while (response := await auth.client.get("/api/config", headers=headers)).status_code != 403:
            assert time.monotonic() < deadline, "the ban never reached the auth service"
            await asyncio.sleep(0.05)
        assert response.json()["code"] == "banned"
        assert_cors(response)
        # A foreign origin still gets no CORS grant, refused or not.
        response = await auth.client.get("/api/config", headers={**headers, "Origin": "https://evil.test"})
        assert response.status_code == 403
        assert "access-control-allow-origin" not in response.headers


async def test_unexpected_error_carries_cors_headers(app_factory: Callable[..., Any]) -> None:
    async def boom(request: Request) -> Response:
        raise RuntimeError("unexpected")

    async with app_factory(DOMAIN_CLIENT=ORIGIN) as auth:
        auth.app.router.routes.append(Route("/boom", boom))
        response = await auth.client.get("/boom", headers={"Origin": ORIGIN, "X-Request-Id": "cors-500"})
        assert response.status_code == 500
        assert response.json() == {
            "code": "internal_error",
            "message": "Internal error.",
            "request_id": "cors-500",
        }
        assert "unexpected" not in response.text
        assert_cors(response)

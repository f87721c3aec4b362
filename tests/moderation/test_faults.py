"""Redis stopped mid-test: every /v1 call answers 503 store_unavailable quickly, then recovers by itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.harness import start_redis
from tests.moderation.conftest import ADMIN_SECRET, AUTH_SECRET, body_of, fresh_ip, launch


async def test_redis_outage_answers_503_then_recovers(work_dir: Path) -> None:
    redis = start_redis(work_dir / "moderation-fault-redis")  # private: only this test stops it
    service = launch(work_dir, "redis", redis)
    headers = {"authorization": f"Bearer {AUTH_SECRET}"}
    admin = {"authorization": f"Bearer {ADMIN_SECRET}"}
    try:
        async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=10) as client:
            ip = fresh_ip()
            ok = await client.post("/v1/events", json={"type": "login", "ip": ip})
            assert ok.status_code == 200
            redis.stop()

            started = time.monotonic()
            calls = [
                client.post("/v1/events", json={"type": "login", "ip": ip}),
                client.post("/v1/violations", json={"type": "login", "ip": ip}),
                client.get("/v1/bans/check", params={"ip": ip}),
                client.get("/v1/bans"),
                client.get("/v1/bans/changes"),
                client.post(
                    "/v1/bans",
                    json={"subject": f"ip:{ip}", "reason": "x", "duration_seconds": 5},
                    headers=admin,
                ),
                client.get("/v1/audit", headers=admin),
            ]
            for response in await asyncio.gather(*calls):
                assert response.status_code == 503, response.text
                assert body_of(response)["code"] == "store_unavailable"
                assert response.headers["retry-after"]
            assert time.monotonic() - started < 10  # generous: each call fails within its 0.5-1 s timeouts
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and body_of(ready)["code"] == "store_unavailable"
            assert (await client.get("/healthz")).status_code == 200

            redis = start_redis(
                work_dir / "moderation-fault-redis", port=redis.port
            )  # empty: scripts are gone
            deadline = time.monotonic() + 30
            while True:
                response = await client.post("/v1/events", json={"type": "login", "ip": fresh_ip()})
                if response.status_code == 200:
                    break
                assert time.monotonic() < deadline, response.text
                await asyncio.sleep(0.2)
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/v1/bans")).status_code == 200
    finally:
        service.server.stop()
        redis.stop()
    assert "Traceback" not in service.server.log()

"""`python -m bench.sizes`: what one session, one user and one ban cost in the stores.

Drives the real services over HTTP (auth in-process on the Mongo-wire stand-in, moderation as
a process on the local Redis under its own key prefix), then reads the stores directly: BSON
bytes per document in MongoDB (documents only: a real MongoDB adds its indexes and WiredTiger
compression on top) and `MEMORY USAGE` per key in Redis. The sizing guide (docs/scaling.md)
quotes these figures.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import tempfile
from pathlib import Path
from typing import Any

import bson
import httpx
import redis.asyncio as aioredis

from harness import mongo_uri, start_mongo
from harness.inprocess import running_app
from harness.moderation import start_moderation
from services.auth.settings import load_settings
from shared.config import Env

USERS = 200
BANS = 500
EVENTS = 500
REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "a long and memorable bench passphrase"


async def _mongo_sizes(db: Any) -> dict[str, float]:
    sizes: dict[str, float] = {}
    for name in ("users", "auth_sessions", "auth_user_state", "auth_audit", "auth_usernames"):
        docs = [len(bson.encode(doc)) async for doc in db[name].find({})]
        if docs:
            sizes[name] = statistics.mean(docs)
    return sizes


async def _redis_bytes(client: aioredis.Redis, prefix: str) -> tuple[int, int]:
    total = keys = 0
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        total += int(await client.memory_usage(key) or 0)
        keys += 1
    return total, keys


async def measure() -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="authgate-sizes-"))
    mongo = start_mongo(work / "mongo")
    prefix = f"sizes{secrets.token_hex(3)}"
    moderation = start_moderation(work, {"REDIS_URI": REDIS_URL, "MODERATION_REDIS_PREFIX": prefix})
    results: dict[str, float] = {}
    try:
        uri = mongo_uri(mongo.port, "sizes")
        env = {
            "AUTHGATE_ENV": "test",
            "JWT_SECRET": secrets.token_hex(32),
            "JWT_REFRESH_SECRET": secrets.token_hex(32),
            "MONGO_URI": uri,
            "ALLOW_REGISTRATION": "true",
            **moderation.auth_env(),
        }
        async with running_app(load_settings(Env([env]), root=work)) as auth:
            for n in range(USERS):
                address = f"user{n}@example.com"
                body = {
                    "name": f"User {n}",
                    "email": address,
                    "password": PASSWORD,
                    "confirm_password": PASSWORD,
                }
                assert (await auth.client.post("/api/auth/register", json=body)).status_code == 200
                await auth.login_body(address, PASSWORD)
            sizes = await _mongo_sizes(auth.ctx.store.db)
        results.update({f"mongo bytes per {name} document": value for name, value in sizes.items()})
        redis_client = aioredis.Redis.from_url(REDIS_URL)
        try:
            empty, _ = await _redis_bytes(redis_client, prefix)
            headers = {"Authorization": f"Bearer {moderation.report_key}"}
            admin = {"Authorization": f"Bearer {moderation.admin_key}"}
            async with httpx.AsyncClient(base_url=moderation.server.url, timeout=10) as client:
                for n in range(EVENTS):
                    ip = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
                    answer = await client.post(
                        "/v1/events", json={"type": "login", "ip": ip}, headers=headers
                    )
                    assert answer.status_code == 200, answer.text
                after_events, _ = await _redis_bytes(redis_client, prefix)
                for n in range(BANS):
                    ban = {
                        "subject": f"ip:192.0.{n // 256}.{n % 256}",
                        "reason": "bench",
                        "duration_seconds": 3600,
                    }
                    answer = await client.post("/v1/bans", json=ban, headers=admin)
                    assert answer.status_code in (200, 201), answer.text
                after_bans, _ = await _redis_bytes(redis_client, prefix)
            results["redis bytes per address with a login window"] = (after_events - empty) / EVENTS
            results["redis bytes per ban (ban key, index, feed and audit entries)"] = (
                after_bans - after_events
            ) / BANS
            async for key in redis_client.scan_iter(match=f"{prefix}:*", count=1000):
                await redis_client.delete(key)
        finally:
            await redis_client.aclose()
    finally:
        moderation.server.stop()
        mongo.stop()
    return results


def main() -> None:
    for name, value in asyncio.run(measure()).items():
        print(f"{name}: {value:,.0f}")


if __name__ == "__main__":
    main()

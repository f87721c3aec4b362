"""The service configured as LibreChat configures a cluster answers events and manual bans, never 500.

`USE_REDIS_CLUSTER=true REDIS_URI=redis://<node 1>,redis://<node 2>`: two of six nodes as seeds,
the client finds the rest. Subjects spread over all three masters, so a client that did not
follow the slot map would answer MOVED errors (500) for about two events in three.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import LocalCluster
from tests.moderation.conftest import (
    ADMIN_SECRET,
    AUTH_SECRET,
    Moderation,
    body_of,
    cluster_env,
    fresh_ip,
    fresh_user,
    launch,
)


@pytest.fixture
def service(redis_cluster: LocalCluster, work_dir: Path) -> Iterator[Moderation]:
    started = launch(work_dir, "cluster-service", None, **cluster_env(redis_cluster))
    try:
        yield started
    finally:
        started.server.stop()
    assert "Traceback" not in started.server.log(), started.server.log()[-3000:]


async def test_events_and_manual_bans_on_a_cluster(service: Moderation) -> None:
    async with service.client(AUTH_SECRET) as auth, service.client(ADMIN_SECRET) as admin:
        answers = [await auth.post("/v1/events", json={"type": "login", "ip": fresh_ip()}) for _ in range(10)]
        answers += [
            await auth.post("/v1/events", json={"type": kind, "ip": fresh_ip(), "user_id": fresh_user()})
            for kind in ("refresh", "message", "logout") * 5
        ]
        assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers]
        users = [fresh_user() for _ in range(6)]
        for user in users:
            created = await admin.post(
                "/v1/bans", json={"subject": f"user:{user}", "reason": "fraud", "duration_seconds": 600}
            )
            assert created.status_code == 201, created.text
        listed = {b["subject"] for b in body_of(await admin.get("/v1/bans", params={"limit": 100}))["bans"]}
        assert {f"user:{user}" for user in users} <= listed
        for user in users:
            check = body_of(await auth.get("/v1/bans/check", params={"user_id": user}))
            assert check["banned"], check
            assert (await admin.delete(f"/v1/bans/user:{user}")).status_code == 200
        ready = await auth.get("/readyz")
        assert ready.status_code == 200 and body_of(ready)["store"] == "redis-cluster"

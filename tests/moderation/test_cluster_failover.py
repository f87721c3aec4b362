"""kill -9 of a Redis Cluster master during a stream of events: 200 or 503, never 500; recovery alone.

The victim is the master that serves `{global}` (ban index and feed), the worst one to lose:
manual bans made meanwhile must still reach the ban list once the replica takes over. The
moderation process is never restarted. Measured: seconds from the kill until the cluster
promoted the replica, and until the service answered on the victim's slots again (printed;
run with -s to see it). Afterwards the killed node is restarted; it rejoins as a replica, so
the session's cluster is whole again for the tests that follow.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harness import LocalCluster, eventually
from harness.redis_cluster import cluster_nodes
from tests.moderation.conftest import ADMIN_SECRET, AUTH_SECRET, Moderation, cluster_env, launch

pytestmark = pytest.mark.e2e

WORKERS = 4
SETTLE_S = 1.0  # steady traffic before the kill, and after the recovery


@dataclass
class Log:
    answers: list[tuple[float, str, int, str]] = field(default_factory=list)  # (at, what, status, code)
    ready: list[tuple[float, float, int]] = field(default_factory=list)  # (sent, answered, status)
    banned: list[str] = field(default_factory=list)

    def add(self, what: str, response: httpx.Response) -> None:
        code = response.json().get("code", "") if response.status_code >= 400 else ""
        self.answers.append((time.monotonic(), what, response.status_code, code))


@pytest.fixture
def setup(redis_cluster: LocalCluster, work_dir: Path) -> Iterator[tuple[Moderation, str]]:
    env = cluster_env(redis_cluster)
    service = launch(work_dir, "cluster-failover", None, **env)
    try:
        yield service, env["MODERATION_REDIS_PREFIX"]
    finally:
        service.server.stop()
    assert "Traceback" not in service.server.log(), service.server.log()[-3000:]


def ip_on(cluster: LocalCluster, prefix: str, master: int) -> str:
    """An address whose keys the `master` serves (the probe of the victim's slots)."""
    while True:
        ip = f"100.96.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
        if cluster.master_of(f"{prefix}:{{ip:{ip}}}:ban") == master:
            return ip


def promoted(cluster: LocalCluster, victim: int) -> bool:
    """The cluster has handed the victim's slots to its replica."""
    live = [n for n in cluster_nodes(cluster.running()[0]) if n.master and not n.failed and n.slots]
    return len(live) == 3 and victim not in {n.port for n in live}


async def failover(cluster: LocalCluster, victim: int, timeout: float = 30) -> tuple[float, float]:
    """(last moment the victim's slots were seen without a new master, first moment seen with one)."""
    deadline = time.monotonic() + timeout
    down = time.monotonic()
    while time.monotonic() < deadline:
        asked = time.monotonic()
        if await asyncio.to_thread(promoted, cluster, victim):
            return down, time.monotonic()
        down = asked  # the answer was read after `asked`: no new master yet at that moment
        await asyncio.sleep(0.05)
    raise AssertionError(f"no failover within {timeout}s: {cluster.describe()}")


async def stream(client: httpx.AsyncClient, log: Log, until: asyncio.Event) -> None:
    while not until.is_set():
        ip = f"100.97.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
        log.add("event", await client.post("/v1/events", json={"type": "login", "ip": ip}))


async def manual_bans(client: httpx.AsyncClient, log: Log, until: asyncio.Event) -> None:
    while not until.is_set():
        subject = f"user:f{secrets.token_hex(4)}"
        body = {"subject": subject, "reason": "failover test", "duration_seconds": 600}
        response = await client.post("/v1/bans", json=body)
        log.add("ban", response)
        if response.status_code == 201:
            log.banned.append(subject)
        await asyncio.sleep(0.1)


async def readiness(client: httpx.AsyncClient, log: Log, until: asyncio.Event) -> None:
    while not until.is_set():
        sent = time.monotonic()
        status = (await client.get("/readyz")).status_code
        log.ready.append((sent, time.monotonic(), status))
        await asyncio.sleep(0.1)


async def test_kill_9_of_a_master_mid_stream(
    redis_cluster: LocalCluster, setup: tuple[Moderation, str]
) -> None:
    service, prefix = setup
    victim = redis_cluster.master_of(f"{prefix}:{{global}}:feed")
    probe = ip_on(redis_cluster, prefix, victim)
    log, stop = Log(), asyncio.Event()
    async with service.client(AUTH_SECRET) as auth, service.client(ADMIN_SECRET) as admin:
        tasks = [asyncio.create_task(stream(auth, log, stop)) for _ in range(WORKERS)]
        tasks += [
            asyncio.create_task(manual_bans(admin, log, stop)),
            asyncio.create_task(readiness(auth, log, stop)),
        ]
        try:
            await asyncio.sleep(SETTLE_S)
            killed = time.monotonic()
            redis_cluster.kill(victim)
            still_down, seen_up = await failover(redis_cluster, victim)
            failover_s = seen_up - killed

            async def answers_on_the_victims_slots() -> bool:
                return (await auth.get("/v1/bans/check", params={"ip": probe})).status_code == 200

            await eventually(answers_on_the_victims_slots, "recovery on the victim's slots", 30)
            recovered = time.monotonic()
            await asyncio.sleep(SETTLE_S)
        finally:
            stop.set()
            await asyncio.gather(*tasks)

        print(
            f"\nkill -9 of master :{victim}: replica promoted after {failover_s:.1f} s, service answering "
            f"on its slots after {recovered - killed:.1f} s; {len(log.answers)} answers, "
            f"{sum(1 for a in log.answers if a[2] == 503)} of them 503 store_unavailable"
        )
        statuses = {(status, code) for _, _, status, code in log.answers}
        assert statuses <= {(200, ""), (201, ""), (503, "store_unavailable")}, statuses
        assert any(at < killed and status == 200 for at, _, status, _ in log.answers)
        after = [status for at, _, status, _ in log.answers if at > recovered + 0.2]
        assert after and set(after) <= {200, 201}, after  # recovered by itself, nothing restarted
        # Readiness never claimed ready while the victim's slots had no master.
        blind = [status for sent, answered, status in log.ready if sent > killed and answered < still_down]
        assert blind and set(blind) == {503}, log.ready
        assert (await auth.get("/readyz")).status_code == 200

        async def every_ban_listed() -> bool:
            page = (await admin.get("/v1/bans", params={"limit": 1000})).json()
            return set(log.banned) <= {b["subject"] for b in page.get("bans", [])}

        await eventually(every_ban_listed, "every 201 ban on the ban list (feed retried)", 15)

    redis_cluster.start_node(victim)  # comes back as a replica of the promoted one
    await asyncio.to_thread(redis_cluster.wait_healthy, 30)

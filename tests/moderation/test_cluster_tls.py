"""Moderation on a Redis Cluster over TLS: `rediss://` seeds and `REDIS_CA`, as LibreChat configures it.

Six redis-server processes serve TLS only (client port, cluster bus, replication) with a
certificate signed by a CA made for this run; moderation trusts that CA through `REDIS_CA`.
Without it the system's CAs do not know the certificate: the service starts (startup never
blocks on Redis) but is not ready and answers 503, never 500.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import LocalCluster, start_redis_cluster
from harness.tls import TlsFiles, make_test_ca
from services.moderation.store_redis_cluster import RedisClusterStore
from shared.moderation.policy import BanPolicy
from shared.moderation.store import SubjectOp, WindowOp
from tests.moderation.conftest import ADMIN_SECRET, Moderation, fresh_ip, fresh_user, launch


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_test_ca(tmp_path_factory.mktemp("redis-tls"))


@pytest.fixture(scope="module")
def tls_cluster(tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster-tls"), tls=tls_files)
    try:
        yield cluster
    finally:
        cluster.stop()


def tls_env(cluster: LocalCluster, ca: Path | None) -> dict[str, str]:
    env = {
        "USE_REDIS_CLUSTER": "true",
        "REDIS_URI": cluster.seeds_uri(2),
        "MODERATION_REDIS_PREFIX": f"t{secrets.token_hex(4)}",
    }
    if ca is not None:
        env["REDIS_CA"] = str(ca)
    return env


async def test_the_service_runs_on_a_tls_cluster_with_redis_ca(
    tls_cluster: LocalCluster, tls_files: TlsFiles, work_dir: Path
) -> None:
    assert tls_cluster.seeds_uri().startswith("rediss://")
    service = launch(work_dir, "redis-cluster-tls", None, **tls_env(tls_cluster, tls_files.ca))
    try:
        async with service.client() as client, service.client(ADMIN_SECRET) as admin:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            ip = fresh_ip()
            answers = [
                (await client.post("/v1/events", json={"type": "login", "ip": ip})).json() for _ in range(4)
            ]
            assert [a["allowed"] for a in answers] == [True, True, True, False]  # LOGIN_MAX=3
            user = fresh_user()
            banned = await admin.post(
                "/v1/bans", json={"subject": f"user:{user}", "reason": "tls", "duration_seconds": 60}
            )
            assert banned.status_code == 201, banned.text
            check = await client.get("/v1/bans/check", params={"user_id": user})
            assert check.json()["banned"] is True
            listed = (await admin.get("/v1/bans")).json()
            assert f"user:{user}" in [b["subject"] for b in listed["bans"]]
    finally:
        service.server.stop()


async def test_without_the_ca_the_service_is_not_ready_and_answers_503(
    tls_cluster: LocalCluster, work_dir: Path
) -> None:
    service: Moderation = launch(work_dir, "redis-cluster-tls-noca", None, **tls_env(tls_cluster, None))
    try:
        async with service.client() as client:
            assert (await client.get("/readyz")).status_code == 503
            response = await client.post("/v1/events", json={"type": "login", "ip": fresh_ip()})
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "store_unavailable"
    finally:
        service.server.stop()


async def test_the_store_over_tls_counts_once_per_marker(
    tls_cluster: LocalCluster, tls_files: TlsFiles
) -> None:
    seeds = [("127.0.0.1", port) for port in tls_cluster.ports[:2]]
    store = RedisClusterStore(
        seeds,
        BanPolicy(interval=100),
        prefix=f"t{secrets.token_hex(6)}",
        options={"ssl_ca_certs": str(tls_files.ca)},
        tls=True,
    )
    await store.open()
    try:
        op = SubjectOp("ip:100.64.1.1", windows=(WindowOp("login", "hit", 5, 60_000),), once="m1")
        first, again = (await store.apply([op]))[0], (await store.apply([op]))[0]
        assert first.windows[0].count == 1 and again.replayed and again.windows == first.windows
    finally:
        await store.close()

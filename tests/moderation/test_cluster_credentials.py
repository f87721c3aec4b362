"""REDIS_USERNAME / REDIS_PASSWORD reach every cluster node: from the variables to a working store.

An ACL user is created on all six nodes (ACLs are per node); the default user stays as it is,
so the other tests are untouched. A wrong password is an outage (503, not ready), not a 500.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from harness import LocalCluster
from services.moderation.app import make_store
from services.moderation.settings import load_settings
from shared.config import Env
from shared.errors import StoreUnavailable
from shared.moderation.store import Store, SubjectOp
from tests.moderation.conftest import API_KEYS

USER = "moderation-test"


@pytest.fixture
def password(redis_cluster: LocalCluster) -> Iterator[str]:
    secret = secrets.token_hex(16)
    for port in redis_cluster.running():
        with redis.Redis(port=port) as node:
            node.acl_setuser(USER, enabled=True, passwords=[f"+{secret}"], keys=["*"], commands=["+@all"])
    try:
        yield secret
    finally:
        for port in redis_cluster.running():
            with redis.Redis(port=port) as node:
                node.acl_deluser(USER)


def store_for(redis_cluster: LocalCluster, password: str) -> Store:
    env = {
        "AUTHGATE_ENV": "test",
        "MODERATION_API_KEYS": API_KEYS,
        "REDIS_URI": redis_cluster.seeds_uri(2),  # two URIs: cluster mode without USE_REDIS_CLUSTER
        "REDIS_USERNAME": USER,
        "REDIS_PASSWORD": password,
        "REDIS_KEY_PREFIX": f"t{secrets.token_hex(4)}",
    }
    return make_store(load_settings(Env([env])))


async def test_the_acl_user_of_the_variables_is_used_on_every_node(
    redis_cluster: LocalCluster, password: str
) -> None:
    store = store_for(redis_cluster, password)
    assert store.kind == "redis-cluster"
    await store.open()
    try:
        assert await store.ping()
        subjects = [f"user:c{secrets.token_hex(4)}" for _ in range(12)]  # spread over the masters
        results = await store.apply([SubjectOp(s, score_always=1) for s in subjects])
        assert [r.score for r in results] == [1] * len(subjects)
    finally:
        await store.close()


async def test_a_wrong_password_is_an_outage_not_an_error(redis_cluster: LocalCluster, password: str) -> None:
    store = store_for(redis_cluster, password + "x")
    await store.open()
    try:
        assert not await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.apply([SubjectOp("user:nobody")])
    finally:
        await store.close()

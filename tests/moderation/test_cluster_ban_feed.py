"""A ban and its feed entry are two calls on two masters; the second failing must not lose the ban.

The second call is failed for real: the master serving `{global}` is paused for writes
(`CLIENT PAUSE ... WRITE`) while the subject's master is not, so the ban is written and the
append times out. A crash between the two calls is the first call alone; the reconcile
must then find the ban (and, for an unban, the lifted one) by itself.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from harness import LocalCluster, eventually
from services.moderation.store_redis_cluster import RedisClusterStore
from shared.moderation.engine import Engine
from shared.moderation.policy import BanPolicy, Policy
from shared.moderation.store import SubjectOp

PAUSE_MS = 3000  # longer than the store's inline attempts (3 x 0.5 s socket timeout + backoff)


@pytest.fixture
async def store(redis_cluster: LocalCluster) -> AsyncIterator[RedisClusterStore]:
    seeds = [("127.0.0.1", port) for port in redis_cluster.ports[:2]]
    made = RedisClusterStore(seeds, BanPolicy(), 100, prefix=f"t{secrets.token_hex(6)}")
    await made.open()
    yield made
    await made.close()


def subject_off(redis_cluster: LocalCluster, store: RedisClusterStore, master: int) -> str:
    """A user subject whose keys live on another master than `master`."""
    while True:
        subject = f"user:u{secrets.token_hex(4)}"
        if redis_cluster.master_of(store.key(subject, "ban")) != master:
            return subject


async def feed_actions(store: RedisClusterStore, subject: str) -> list[str]:
    return [change.action for change in await store.audit(subject, None, 100)]


async def listed(store: RedisClusterStore) -> set[str]:
    return {ban.subject for ban in (await store.list_bans(None, 100)).bans}


async def test_a_failed_feed_append_is_retried_and_keeps_its_order(
    redis_cluster: LocalCluster, store: RedisClusterStore
) -> None:
    engine = Engine(store, Policy())
    global_master = redis_cluster.master_of(store.global_key("feed"))
    subject = subject_off(redis_cluster, store, global_master)
    async with aioredis.Redis(port=global_master) as node:
        await node.client_pause(PAUSE_MS, all=False)  # writes (and scripts) wait on that master only
    ban = await engine.ban(subject, "spam", 60_000, "cli")  # the ban answers; its append waits
    assert store.pending == 1
    (result,) = await store.apply([SubjectOp(subject)])
    assert result.ban is not None and result.ban.created_at_ms == ban.created_at_ms  # in force already
    assert await engine.unban(subject, "appeal", "cli") is not None  # queued behind the ban
    assert store.pending == 2

    async def landed() -> bool:
        return store.pending == 0 and await feed_actions(store, subject) == ["ban", "unban"]

    await eventually(landed, "both appends, in order, once each", timeout=20)
    assert subject not in await listed(store)


async def test_reconcile_finds_what_a_crash_between_the_calls_lost(store: RedisClusterStore) -> None:
    subject = f"user:u{secrets.token_hex(4)}"
    ban = await store.set_ban(subject, "spam", 60_000, "cli")  # the feed append never happens
    assert subject not in await listed(store)
    assert await store.reconcile() == 0  # younger than the grace period: its own append may be on its way
    assert await store.reconcile(grace_ms=0) == 1
    assert subject in await listed(store)
    assert await feed_actions(store, subject) == ["ban"]
    (indexed,) = [b for b in (await store.list_bans(None, 100)).bans if b.subject == subject]
    assert indexed == ban
    assert await store.reconcile(grace_ms=0) == 0  # nothing twice

    await store.delete_ban(subject)  # lifted; the unban never reaches the feed
    assert subject in await listed(store)
    assert await store.reconcile(grace_ms=0) == 1
    assert subject not in await listed(store)
    assert await feed_actions(store, subject) == ["ban", "unban"]


async def test_the_background_reconcile_runs_by_itself(redis_cluster: LocalCluster) -> None:
    """With a short interval the store's own loop repairs the index; nothing calls reconcile()."""
    seeds = [("127.0.0.1", port) for port in redis_cluster.ports[:2]]
    prefix = f"t{secrets.token_hex(6)}"
    store = RedisClusterStore(seeds, BanPolicy(), 100, prefix, reconcile_every_s=0.5, reconcile_grace_ms=0)
    await store.open()
    try:
        subject = f"user:u{secrets.token_hex(4)}"
        await store.set_ban(subject, "spam", 60_000, "cli")

        async def repaired() -> bool:
            return subject in await listed(store)

        await eventually(repaired, "the background reconcile", timeout=15)
    finally:
        await store.close()

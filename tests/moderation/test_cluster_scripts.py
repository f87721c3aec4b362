"""Every Lua script touches one Cluster slot: run each on the master of its first key, no client help.

redis-py checks the keys of an EVAL before sending it; this test bypasses that and sends each
script straight to the master serving its first key, so the server itself judges every key
the script declares (CROSSSLOT, MOVED) and every key it touches (a script reaching into
another slot fails). A new script without a row here fails the coverage check.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError

from harness import LocalCluster
from services.moderation.store_redis_cluster import RedisClusterStore, is_outage
from shared.moderation.policy import BanPolicy
from shared.moderation.store import BanState, Change, SubjectOp, WindowOp

NOW = 1_800_000_000_000
SUBJECT = "ip:100.64.7.7"
Call = tuple[list[str], list[str | int | float]]


@pytest.fixture
async def store(redis_cluster: LocalCluster) -> AsyncIterator[RedisClusterStore]:
    seeds = [("127.0.0.1", port) for port in redis_cluster.ports[:2]]
    made = RedisClusterStore(seeds, BanPolicy(interval=3), 40, prefix=f"t{secrets.token_hex(6)}")
    await made.open()
    yield made
    await made.close()


def calls_of(store: RedisClusterStore) -> dict[str, list[Call]]:
    """Realistic calls of every script, each path exercised (windows of every mode, a ban, a trim)."""
    key, glob = store.key, store.global_key
    windows = ["hit", "record", "lease", "check", "release", "uncount"]
    subject_keys = [key(SUBJECT, "ban"), key(SUBJECT, "score"), key(SUBJECT, "hist")]
    subject_keys += [key(SUBJECT, f"w:{mode}") for mode in windows]
    subject_args: list[str | int | float] = [NOW, "1", 2, 1, "automatic", "auth", "login", len(windows)]
    for mode in windows:
        subject_args += [mode, 1, 60_000]
    ban = BanState(SUBJECT, "r", NOW, NOW + 60_000, "cli", False)
    change = Change("ban", SUBJECT, "r", NOW, "cli", NOW + 60_000)
    feed = [glob(part) for part in ("feed", "meta", "index", "bandata", "expiry")]
    record: list[str | int | float] = [NOW, "ban", SUBJECT, change.to_json(), ban.to_json(), NOW + 60_000, 1]
    return {
        # The second call crosses the ban threshold; the marked ones keep and replay an answer.
        "subject": [(subject_keys, subject_args)] * 2
        + [([*subject_keys, key(SUBJECT, "once:m")], [*subject_args, 60_000])] * 2,
        "set_ban": [(subject_keys[:3], [NOW, 60_000, "manual", "cli", 100_000])],
        "delete_ban": [(subject_keys[:2], [NOW])],
        "record_change": [(feed, [*record, "e1"]), (feed, [*record, "e1"])],  # max length 1: trims
        "append_change": [(feed, [*record, "e1"])] * 2,  # the second appends nothing (idempotent)
        "read_feed": [(feed[:2], ["e1", "0-0", 10])],
        "list_bans": [(feed[2:4], [NOW, "", 10])],
    }


async def test_every_script_runs_on_one_slot(redis_cluster: LocalCluster, store: RedisClusterStore) -> None:
    calls = calls_of(store)
    assert set(calls) == set(store.scripts), "every script needs a row here"
    for name, script_calls in calls.items():
        for keys, args in script_calls:
            assert len({key_slot(k.encode()) for k in keys}) == 1, (name, keys)
            port = redis_cluster.master_of(keys[0])
            async with aioredis.Redis(port=port, decode_responses=True) as node:
                try:
                    reply = await node.eval(store.scripts[name].source, len(keys), *keys, *args)
                except ResponseError as exc:
                    pytest.fail(f"{name} on the master of {keys[0]}: {exc}")
            assert reply is not None, name


async def test_the_store_runs_every_script_through_redis_py(
    redis_cluster: LocalCluster, store: RedisClusterStore
) -> None:
    """The same paths through the cluster client: routing, pipelining, and masters that lost the
    scripts (as a promoted replica has) answering NOSCRIPT, which the store resends as EVAL."""
    for port in redis_cluster.running():
        async with aioredis.Redis(port=port) as node:
            await node.script_flush()
    subject, other = f"ip:100.64.8.{secrets.randbelow(250)}", f"user:u{secrets.token_hex(4)}"
    window = WindowOp("login", "hit", 1, 60_000)
    ops = [SubjectOp(subject, windows=(window,), score_on_exceed=2), SubjectOp(other, score_always=1)]
    for _ in range(3):
        results = await store.apply(ops, NOW)
    assert results[0].ban is not None and results[0].ban.automatic
    ban = await store.set_ban(other, "manual", 60_000, "cli", NOW)
    cursor = await store.record_change(Change("ban", other, "manual", NOW, "cli", ban.expires_at_ms), ban)
    page = await store.list_bans(None, 10, NOW)
    assert [b.subject for b in page.bans] == [other]
    at, lifted = await store.delete_ban(other, NOW + 1)
    assert lifted is not None
    await store.record_change(Change("unban", other, "done", at, "cli"), None)
    feed = await store.feed(cursor, 10)
    assert [e.change.action for e in feed.entries] == ["unban"]
    assert [c.action for c in await store.audit(other, None, 10)] == ["ban", "unban"]


async def test_keys_in_two_slots_are_a_bug_never_an_outage(store: RedisClusterStore) -> None:
    """Were a script ever called with keys of two subjects, the caller sees the error (a 500),
    not a 503 that a client would retry forever."""
    keys = [store.key("user:a", "ban"), store.key("user:b", "score")]
    assert key_slot(keys[0].encode()) != key_slot(keys[1].encode())
    with pytest.raises(RedisClusterException, match="same key slot"):
        await store._eval("delete_ban", keys, [NOW])
    assert not is_outage(RedisClusterException("EVALSHA - all keys must map to the same key slot"))

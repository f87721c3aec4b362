"""One suite for auth's repositories, run against the Mongo-wire server over a real socket.

Written against the protocols in `services.auth.store.interfaces`: another implementation
joins by adding a factory to `IMPLEMENTATIONS` (as Ory Kratos runs one persister suite
against every database it supports).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from harness import Server, free_port, mongo_uri
from services.auth.store import DuplicateValue, Store, StoreFailure
from shared.errors import StoreUnavailable


def _mongo_store(port: int) -> Store:
    return Store(mongo_uri(port, f"repos_{secrets.token_hex(4)}"), timeout_ms=2000)


IMPLEMENTATIONS: dict[str, Callable[[int], Store]] = {"mongo": _mongo_store}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def store(request: pytest.FixtureRequest, mongo: Server) -> AsyncIterator[Store]:
    created = IMPLEMENTATIONS[request.param](mongo.port)
    await created.ensure_indexes(audit_retention_days=30)
    try:
        yield created
    finally:
        await created.db.client.drop_database(created.db.name)
        await created.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _user(email: str, username: str | None = None) -> dict[str, object]:
    doc: dict[str, object] = {"email": email, "password": "hash-1", "role": "USER", "createdAt": _now()}
    if username is not None:
        doc["username"] = username
    return doc


# Users -------------------------------------------------------------------------------


async def test_users_insert_then_find_by_email_forms_and_by_id(store: Store) -> None:
    inserted = await store.users.insert(_user("a@example.com", "alice"))
    user_id = str(inserted["_id"])
    found = await store.users.find_by_emails(["nobody@example.com", "a@example.com"])
    assert found is not None and str(found["_id"]) == user_id
    by_id = await store.users.find_by_id(user_id)
    assert by_id is not None and by_id["email"] == "a@example.com"
    assert await store.users.find_by_id("not-an-object-id") is None
    assert await store.users.find_by_emails(["nobody@example.com"]) is None


async def test_users_unique_email_names_the_field(store: Store) -> None:
    """Email is unique through LibreChat's {email, tenantId}; usernames are kept unique by claims."""
    await store.users.insert(_user("b@example.com", "bob"))
    with pytest.raises(DuplicateValue) as email:
        await store.users.insert(_user("b@example.com", "other"))
    assert email.value.field == "email"
    assert [doc["email"] async for doc in store.users.identities()] == ["b@example.com"]


async def test_users_username_exists_ignores_case_of_older_documents(store: Store) -> None:
    await store.db.get_collection("users").insert_one(_user("d@example.com", "MixedCase"))
    assert await store.users.username_exists("mixedcase")
    assert not await store.users.username_exists("mixed")
    assert not await store.users.username_exists("mixedcase.*")  # a pattern is matched as text


async def test_users_password_swap_is_conditional_on_the_expected_hash(store: Store) -> None:
    user = await store.users.insert(_user("e@example.com"))
    await store.users.set_password(user["_id"], "hash-2", expected="someone-elses")
    assert (await store.users.find_by_id(str(user["_id"])) or {})["password"] == "hash-1"
    await store.users.set_password(user["_id"], "hash-2", expected="hash-1")
    assert (await store.users.find_by_id(str(user["_id"])) or {})["password"] == "hash-2"
    await store.users.set_password(user["_id"], "hash-3")
    assert (await store.users.find_by_id(str(user["_id"])) or {})["password"] == "hash-3"


async def test_users_role_delete_and_list_without_hashes(store: Store) -> None:
    first = await store.users.insert(_user("f@example.com"))
    second = await store.users.insert(_user("g@example.com"))
    updated = await store.users.set_role(first["_id"], "ADMIN", "operator")
    assert updated is not None and updated["role"] == "ADMIN"
    listed = await store.users.list(limit=10)
    assert [doc["email"] for doc in listed] == ["f@example.com", "g@example.com"]
    assert all("password" not in doc for doc in listed)
    await store.users.delete(second["_id"])
    assert await store.users.set_role(second["_id"], "ADMIN", "operator") is None
    assert [doc["email"] for doc in await store.users.list(limit=10)] == ["f@example.com"]


async def test_a_query_value_must_be_a_string(store: Store) -> None:
    with pytest.raises(TypeError):
        await store.users.find_by_emails([{"$ne": ""}])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        await store.sessions.get({"$gt": ""})  # type: ignore[arg-type]


# User state ---------------------------------------------------------------------------


async def test_user_state_epochs_start_at_zero_and_only_grow(store: Store) -> None:
    state = await store.user_state.get("u1")
    assert (state.session_epoch, state.device_epoch) == (0, 0)
    assert await store.user_state.bump_session_epoch("u1") == 1
    assert await store.user_state.bump_session_epoch("u1") == 2
    await store.user_state.bump_device_epoch("u1")
    state = await store.user_state.get("u1")
    assert (state.session_epoch, state.device_epoch) == (2, 1)


async def test_user_state_session_list_is_bounded_and_reports_the_epoch(store: Store) -> None:
    seen = [await store.user_state.add_session("u2", f"s{n}", keep=3) for n in range(5)]
    assert [added.previous for added in seen] == [
        [],
        ["s0"],
        ["s0", "s1"],
        ["s0", "s1", "s2"],
        ["s1", "s2", "s3"],
    ]
    await store.user_state.bump_session_epoch("u2")
    added = await store.user_state.add_session("u2", "s5", keep=3)
    assert added.session_epoch == 1 and added.previous == ["s2", "s3", "s4"]
    await store.user_state.forget_sessions("u2")
    assert (await store.user_state.add_session("u2", "s6", keep=3)).previous == []
    assert (await store.user_state.get("u2")).session_epoch == 1  # the tombstone keeps its epoch


# Sessions ------------------------------------------------------------------------------


def _session(session_id: str, user_id: str, current: str) -> dict[str, object]:
    now = _now()
    return {
        "_id": session_id,
        "user_id": user_id,
        "current_hash": current,
        "parent_hash": None,
        "history": [current],
        "created_at": now,
        "last_used_at": now,
        "rotated_at": now,
        "expires_at": now + dt.timedelta(days=1),
        "revoked_at": None,
    }


async def test_sessions_advance_once_per_current_hash(store: Store) -> None:
    await store.sessions.insert(_session("s1", "u1", "h0"))
    before = await store.sessions.advance("h0", "h1", {"ip": "192.0.2.1"}, history=2)
    assert before is not None and before["current_hash"] == "h0"
    assert await store.sessions.advance("h0", "h1", {}, history=2) is None  # already moved on
    await store.sessions.advance("h1", "h2", {}, history=2)
    doc = await store.sessions.get("s1")
    assert doc is not None
    assert (doc["current_hash"], doc["parent_hash"], doc["history"], doc["ip"]) == (
        "h2",
        "h1",
        ["h1", "h2"],
        "192.0.2.1",
    )
    assert (await store.sessions.find_current("h2") or {}).get("_id") == "s1"
    assert await store.sessions.find_current("h0") is None


async def test_sessions_by_user_by_ids_and_revocation(store: Store) -> None:
    for sid, user in (("a", "u1"), ("b", "u1"), ("c", "u2")):
        await store.sessions.insert(_session(sid, user, f"h-{sid}"))
    assert sorted(doc["_id"] for doc in await store.sessions.of_user("u1")) == ["a", "b"]
    assert sorted(doc["_id"] for doc in await store.sessions.by_ids(["a", "c", "zz"])) == ["a", "c"]
    at = _now()
    await store.sessions.mark_revoked(["a", "c"], at, "logout")
    revoked = {doc["_id"]: doc for doc in await store.sessions.by_ids(["a", "b", "c"])}
    assert revoked["a"]["revoked_reason"] == "logout" and revoked["a"]["revoked_at"] == at
    assert revoked["b"]["revoked_at"] is None


# Revocations ---------------------------------------------------------------------------


async def test_revocations_take_consecutive_positions_and_read_back(store: Store) -> None:
    now = _now()
    live = now + dt.timedelta(minutes=20)
    await store.revocations.append(
        [
            {"sid": "a", "user_id": "u", "at": now, "expires_at": live},
            {"sid": "b", "user_id": "u", "at": now, "expires_at": live},
        ]
    )
    await store.revocations.append(
        [{"sid": "old", "user_id": "u", "at": now, "expires_at": now - dt.timedelta(seconds=1)}]
    )
    await store.revocations.append([{"user_id": "u", "epoch": 3, "at": now, "expires_at": live}])
    read = [doc async for doc in store.revocations.from_position(1)]
    assert [doc["pos"] for doc in sorted(read, key=lambda d: d["pos"])] == [1, 2, 3, 4]
    assert all("_id" not in doc for doc in read)
    assert sorted(str(doc.get("sid")) for doc in [d async for d in store.revocations.live(now)]) == [
        "None",
        "a",
        "b",
    ]
    assert [doc["pos"] async for doc in store.revocations.from_position(4)] == [4]
    assert list(await store.revocations.allocate_positions(2)) == [5, 6]
    await store.revocations.append([])  # nothing to write takes no position
    assert list(await store.revocations.allocate_positions(1)) == [7]


# Audit ---------------------------------------------------------------------------------


async def test_audit_query_newest_first_by_user_and_since(store: Store) -> None:
    base = _now()
    for n, user in enumerate(["u1", "u2", "u1", "u1"]):
        await store.audit.insert({"event": f"e{n}", "user_id": user, "at": base + dt.timedelta(seconds=n)})
    assert [doc["event"] for doc in await store.audit.query("u1", None, 10)] == ["e3", "e2", "e0"]
    assert [doc["event"] for doc in await store.audit.query("u1", base + dt.timedelta(seconds=2), 10)] == [
        "e3",
        "e2",
    ]
    assert [doc["event"] for doc in await store.audit.query(None, None, 2)] == ["e3", "e2"]


# Failures ------------------------------------------------------------------------------


async def test_an_unreachable_store_is_store_unavailable_from_every_repository() -> None:
    down = Store(mongo_uri(free_port(), "nowhere"), timeout_ms=200)
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: down.users.find_by_id("u"),
            lambda: down.user_state.get("u"),
            lambda: down.sessions.get("s"),
            lambda: down.revocations.allocate_positions(1),
            lambda: down.audit.insert({"event": "x"}),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable):
                await call()
    finally:
        await down.close()


async def test_a_refused_command_is_a_store_failure_not_a_driver_error(store: Store) -> None:
    await store.sessions.insert(_session("dup", "u1", "h"))
    with pytest.raises(StoreFailure):
        await store.sessions.insert(_session("dup", "u1", "h"))  # duplicate _id: not an outage


# Username claims -----------------------------------------------------------------------------


async def test_username_claims_let_one_win_and_take_over_by_compare_and_set(store: Store) -> None:
    first, second, third = store.users.new_key(), store.users.new_key(), store.users.new_key()
    at = _now()
    assert await store.usernames.claim("neo", first, at)
    assert not await store.usernames.claim("neo", second, at)
    held = await store.usernames.holder("neo")
    assert held is not None and held["user_id"] == first
    later = at + dt.timedelta(minutes=2)
    assert await store.usernames.take_over("neo", first, at, second, later)
    assert not await store.usernames.take_over("neo", first, at, third, later)  # read a stale claim
    await store.usernames.release("neo", first)  # not the holder any more: nothing happens
    assert (await store.usernames.holder("neo") or {}).get("user_id") == second
    await store.usernames.release("neo", second)
    assert await store.usernames.holder("neo") is None

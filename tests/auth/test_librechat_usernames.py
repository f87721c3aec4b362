"""Usernames unique case-insensitively with LibreChat's indexes (none on `username`).

Stored lower-cased and compared case-insensitively (tests/auth/test_canonical_identity.py);
here: concurrent registrations of one name, a deleted user's name, and `authgate doctor`
reporting mixed-case duplicates already in a LibreChat database without merging them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from pymongo import AsyncMongoClient

from harness import Server, run_authgate
from services.auth.usernames import IN_FLIGHT
from tests.auth.conftest import AuthApp, base_env


async def test_concurrent_registrations_of_one_name_create_one_user(auth: AuthApp) -> None:
    names = ["Racer", "racer", "RACER", "racer", "rAcEr", "racer"]
    responses = await asyncio.gather(
        *(auth.register(f"racer{i}@example.com", username=name) for i, name in enumerate(names))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(200) == 1, [r.text for r in responses]
    assert all(r.json()["code"] == "username_taken" for r in responses if r.status_code == 409)
    assert await auth.collection("users").count_documents({"username": "racer"}) == 1


async def test_a_deleted_users_name_becomes_free_again(auth: AuthApp) -> None:
    assert (await auth.register("first@example.com", username="reused")).status_code == 200
    await auth.collection("users").delete_one({"email": "first@example.com"})
    # Right after, the name is still held (its creation could be in flight)...
    assert (await auth.register("second@example.com", username="reused")).status_code == 409
    # ...and once the claim is older than any creation takes, it is taken over.
    old = dt.datetime.now(dt.UTC) - IN_FLIGHT - dt.timedelta(seconds=1)
    await auth.collection("auth_usernames").update_one({"_id": "reused"}, {"$set": {"at": old}})
    assert (await auth.register("second@example.com", username="reused")).status_code == 200
    user = await auth.find_user("second@example.com")
    assert user is not None and user["username"] == "reused"


async def test_a_live_users_old_claim_keeps_the_name(auth: AuthApp) -> None:
    assert (await auth.register("keeper@example.com", username="kept")).status_code == 200
    old = dt.datetime.now(dt.UTC) - IN_FLIGHT * 10
    await auth.collection("auth_usernames").update_one({"_id": "kept"}, {"$set": {"at": old}})
    assert (await auth.register("thief@example.com", username="KEPT")).status_code == 409


async def test_a_failed_creation_releases_its_claim(auth: AuthApp) -> None:
    assert (await auth.register("owner@example.com")).status_code == 200
    # The same address again (answered like a success) with a new name: no user is created,
    # and the name stays free for someone else at once.
    assert (await auth.register("owner@example.com", username="freebie")).status_code == 200
    assert await auth.collection("auth_usernames").count_documents({"_id": "freebie"}) == 0
    assert (await auth.register("other@example.com", username="freebie")).status_code == 200


async def test_doctor_reports_mixed_case_duplicates_from_librechat(mongo: Server, tmp_path: Path) -> None:
    """LibreChat wrote these before lower-casing names; authgate reports them, merges nothing."""
    env = base_env(mongo.port)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(env["MONGO_URI"])
    try:
        users = client.get_default_database().get_collection("users")
        await users.insert_many(
            [
                {"email": "alice1@example.com", "username": "Alice", "provider": "local"},
                {"email": "alice2@example.com", "username": "alice", "provider": "local"},
                {"email": "alice3@example.com", "username": "ALICE", "provider": "local"},
            ]
        )
        result = run_authgate(env, tmp_path, "doctor")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "username alice: 3 accounts share it" in result.stdout
        stored = sorted([str(doc["username"]) async for doc in users.find({}, {"username": 1})])
        assert stored == ["ALICE", "Alice", "alice"]  # nothing merged or renamed
    finally:
        await client.close()

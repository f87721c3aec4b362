"""The `users` indexes are LibreChat's own: a database authgate created first takes LibreChat's
index build without a conflict, and back; email stays unique; an older authgate database with a
unique `email_1` is moved over without a moment of non-uniqueness."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from harness import Server, mongo_uri
from services.auth.store import Store
from services.auth.store.indexes import librechat_user_indexes

# What Mongoose sends for LibreChat's user schema (createIndexes specs: its generated names, the
# schema's options, and the `background: true` Mongoose adds to every index).
_PROVIDERS = ("googleId", "facebookId", "samlId", "ldapId", "githubId", "discordId", "appleId")
_SCHEMA: list[dict[str, Any]] = [
    {"key": {"email": 1}, "name": "email_1"},
    {"key": {"tenantId": 1}, "name": "tenantId_1"},
    {"key": {"expiresAt": 1}, "name": "expiresAt_1", "expireAfterSeconds": 604800},
    {"key": {"idOnTheSource": 1}, "name": "idOnTheSource_1", "sparse": True},
    {"key": {"email": 1, "tenantId": 1}, "name": "email_1_tenantId_1", "unique": True},
    {"key": {"role": 1, "tenantId": 1}, "name": "role_1_tenantId_1"},
    {
        "key": {"idOnTheSource": 1, "openidIssuer": 1, "tenantId": 1},
        "name": "idOnTheSource_1_openidIssuer_1_tenantId_1",
    },
    {
        "key": {"openidId": 1, "openidIssuer": 1, "tenantId": 1},
        "name": "openidId_1_openidIssuer_1_tenantId_1",
        "unique": True,
        "partialFilterExpression": {"openidId": {"$exists": True}},
    },
    *[
        {
            "key": {field: 1, "tenantId": 1},
            "name": f"{field}_1_tenantId_1",
            "unique": True,
            "partialFilterExpression": {field: {"$exists": True}},
        }
        for field in _PROVIDERS
    ],
]
LIBRECHAT_SPECS = [{**spec, "background": True} for spec in _SCHEMA]


@pytest.fixture
async def store(mongo: Server) -> AsyncIterator[Store]:
    created = Store(mongo_uri(mongo.port, f"indexes_{secrets.token_hex(4)}"))
    try:
        yield created
    finally:
        await created.db.client.drop_database(created.db.name)
        await created.close()


async def librechat_builds_its_indexes(store: Store) -> None:
    await store.db.command({"createIndexes": "users", "indexes": LIBRECHAT_SPECS})


async def user_indexes(store: Store) -> dict[str, Any]:
    return {index["name"]: index async for index in await store.db.get_collection("users").list_indexes()}


def test_authgate_declares_exactly_librechats_user_indexes() -> None:
    ours = {options["name"]: (dict(keys), options) for _, keys, options in librechat_user_indexes()}
    theirs = {spec["name"]: spec for spec in LIBRECHAT_SPECS}
    assert all(collection == "users" for collection, _, _ in librechat_user_indexes())
    assert set(ours) == set(theirs)
    for name, (keys, options) in ours.items():
        spec = theirs[name]
        assert keys == spec["key"], name
        assert {k: v for k, v in options.items() if k != "name"} == {
            k: v for k, v in spec.items() if k not in ("key", "name")
        }, name


async def test_authgate_then_librechat_then_authgate_without_conflict(store: Store) -> None:
    await store.ensure_indexes(audit_retention_days=30)
    await librechat_builds_its_indexes(store)  # raised IndexKeySpecsConflict before
    await store.ensure_indexes(audit_retention_days=30)
    indexes = await user_indexes(store)
    assert not indexes["email_1"].get("unique")
    assert indexes["email_1_tenantId_1"]["unique"] is True
    users = store.db.get_collection("users")
    await users.insert_one({"email": "dup@example.com", "provider": "local"})
    with pytest.raises(DuplicateKeyError):
        await users.insert_one({"email": "dup@example.com", "provider": "local"})  # no tenantId: null


async def test_librechat_first_then_authgate(store: Store) -> None:
    await librechat_builds_its_indexes(store)
    await store.ensure_indexes(audit_retention_days=30)
    await librechat_builds_its_indexes(store)


async def test_an_older_unique_email_index_is_moved_to_the_compound_one(store: Store) -> None:
    users = store.db.get_collection("users")
    await users.create_index("email", name="email_1", unique=True)  # what authgate created before
    await users.insert_one({"email": "kept@example.com"})
    await store.ensure_indexes(audit_retention_days=30)
    indexes = await user_indexes(store)
    assert not indexes["email_1"].get("unique")
    with pytest.raises(DuplicateKeyError):
        await users.insert_one({"email": "kept@example.com"})
    await librechat_builds_its_indexes(store)


async def test_users_carry_no_index_of_authgate_s_own(store: Store) -> None:
    """An older authgate's username index goes too: `users` holds LibreChat's set and nothing else."""
    users = store.db.get_collection("users")
    await users.create_index(
        "username",
        name="authgate_username_unique",
        unique=True,
        partialFilterExpression={"username": {"$type": "string", "$gt": ""}},
    )
    await store.ensure_indexes(audit_retention_days=30)
    assert set(await user_indexes(store)) == {"_id_"} | {spec["name"] for spec in LIBRECHAT_SPECS}

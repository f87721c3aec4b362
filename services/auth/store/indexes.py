"""The indexes the queries and TTLs rely on, created at start-up; LibreChat's own are tolerated."""

from __future__ import annotations

from typing import Any

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from services.auth.store.errors import store_errors
from services.auth.store.interfaces import Document

log = structlog.get_logger("authgate.store")

IndexSpec = tuple[str, list[tuple[str, int]], dict[str, Any]]


# LibreChat's `users` indexes exactly as its Mongoose schema declares them (name, keys, options:
# packages/data-schemas/src/schema/user.ts), so LibreChat's own index build on a database authgate
# created first finds nothing in conflict. Email uniqueness is the compound {email, tenantId}
# (a missing tenantId counts as null), as in LibreChat.
_PROVIDER_IDS = ("googleId", "facebookId", "samlId", "ldapId", "githubId", "discordId", "appleId")


def librechat_user_indexes() -> list[IndexSpec]:
    specs: list[IndexSpec] = [
        ("users", [("email", ASCENDING)], {"name": "email_1"}),
        ("users", [("tenantId", ASCENDING)], {"name": "tenantId_1"}),
        ("users", [("expiresAt", ASCENDING)], {"name": "expiresAt_1", "expireAfterSeconds": 604800}),
        ("users", [("idOnTheSource", ASCENDING)], {"name": "idOnTheSource_1", "sparse": True}),
        (
            "users",
            [("email", ASCENDING), ("tenantId", ASCENDING)],
            {"name": "email_1_tenantId_1", "unique": True},
        ),
        ("users", [("role", ASCENDING), ("tenantId", ASCENDING)], {"name": "role_1_tenantId_1"}),
        (
            "users",
            [("idOnTheSource", ASCENDING), ("openidIssuer", ASCENDING), ("tenantId", ASCENDING)],
            {"name": "idOnTheSource_1_openidIssuer_1_tenantId_1"},
        ),
        (
            "users",
            [("openidId", ASCENDING), ("openidIssuer", ASCENDING), ("tenantId", ASCENDING)],
            {
                "name": "openidId_1_openidIssuer_1_tenantId_1",
                "unique": True,
                "partialFilterExpression": {"openidId": {"$exists": True}},
            },
        ),
    ]
    for field in _PROVIDER_IDS:
        specs.append(
            (
                "users",
                [(field, ASCENDING), ("tenantId", ASCENDING)],
                {
                    "name": f"{field}_1_tenantId_1",
                    "unique": True,
                    "partialFilterExpression": {field: {"$exists": True}},
                },
            )
        )
    return specs


def index_specs(audit_retention_days: int) -> list[IndexSpec]:
    """(collection, keys, options) for every index authgate needs."""
    return [
        *librechat_user_indexes(),
        # authgate's own addition: usernames are unique (stored lower-cased, as LibreChat stores them).
        (
            "users",
            [("username", ASCENDING)],
            {
                "unique": True,
                "name": "authgate_username_unique",
                "partialFilterExpression": {"username": {"$type": "string", "$gt": ""}},
            },
        ),
        ("auth_sessions", [("current_hash", ASCENDING)], {"name": "current_hash_1"}),
        ("auth_sessions", [("user_id", ASCENDING)], {"name": "user_id_1"}),
        ("auth_sessions", [("expires_at", ASCENDING)], {"name": "expires_ttl", "expireAfterSeconds": 0}),
        ("auth_revocations", [("at", ASCENDING)], {"name": "at_1"}),
        ("auth_revocations", [("pos", ASCENDING)], {"name": "pos_1"}),
        ("auth_revocations", [("expires_at", ASCENDING)], {"name": "expires_ttl", "expireAfterSeconds": 0}),
        (
            "auth_audit",
            [("at", ASCENDING)],
            {"name": "at_ttl", "expireAfterSeconds": audit_retention_days * 86400},
        ),
        ("auth_audit", [("user_id", ASCENDING), ("at", ASCENDING)], {"name": "user_at"}),
    ]


async def _retire_unique_email(db: AsyncDatabase[Document]) -> None:
    """Earlier authgate made `email_1` unique, which LibreChat's build refuses: the compound unique
    index takes over first (so uniqueness never lapses), then `email_1` is rebuilt plain."""
    users = db.get_collection("users")
    existing = {index["name"]: index async for index in await users.list_indexes()}
    if not existing.get("email_1", {}).get("unique"):
        return
    await users.create_index(
        [("email", ASCENDING), ("tenantId", ASCENDING)], name="email_1_tenantId_1", unique=True
    )
    await users.drop_index("email_1")
    log.info("index_replaced", collection="users", index="email_1", unique_now="email_1_tenantId_1")


async def ensure_indexes(db: AsyncDatabase[Document], audit_retention_days: int) -> None:
    async with store_errors():
        await _retire_unique_email(db)
        for name, keys, options in index_specs(audit_retention_days):
            try:
                await db.get_collection(name).create_index(keys, **options)
            except OperationFailure as exc:
                # An existing LibreChat index with other options keeps working for us.
                log.warning("index_not_created", collection=name, index=options["name"], error=str(exc))

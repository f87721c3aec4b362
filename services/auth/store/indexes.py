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


# LibreChat's `users` indexes exactly as Mongoose builds them from its schema
# (packages/data-schemas/src/schema/user.ts): its generated names, the schema's options, then
# `background: true`, which Mongoose adds to every index. MongoDB ignores `background` since 4.2;
# a stricter server (the tests' Mongo-wire stand-in) compares it, and the options' order, too.
# So LibreChat's own index build on a database authgate created first finds nothing in conflict.
# Email uniqueness is the compound {email, tenantId} (a missing tenantId counts as null), as in
# LibreChat; LibreChat declares no index on `username` (authgate keeps names unique itself).
_PROVIDER_IDS = ("googleId", "facebookId", "samlId", "ldapId", "githubId", "discordId", "appleId")
EMAIL_TENANT_INDEX = "email_1_tenantId_1"
LEGACY_USERNAME_INDEX = "authgate_username_unique"


def _mongoose(fields: list[str], **options: Any) -> IndexSpec:
    keys = [(field, ASCENDING) for field in fields]
    return "users", keys, {"name": "_".join(f"{field}_1" for field in fields), **options, "background": True}


def librechat_user_indexes() -> list[IndexSpec]:
    return [
        _mongoose(["email"]),
        _mongoose(["expiresAt"], expireAfterSeconds=604800),
        _mongoose(["idOnTheSource"], sparse=True),
        _mongoose(["tenantId"]),
        _mongoose(["email", "tenantId"], unique=True),
        _mongoose(["role", "tenantId"]),
        _mongoose(["idOnTheSource", "openidIssuer", "tenantId"]),
        _mongoose(
            ["openidId", "openidIssuer", "tenantId"],
            unique=True,
            partialFilterExpression={"openidId": {"$exists": True}},
        ),
        *(
            _mongoose([field, "tenantId"], unique=True, partialFilterExpression={field: {"$exists": True}})
            for field in _PROVIDER_IDS
        ),
    ]


def index_specs(audit_retention_days: int) -> list[IndexSpec]:
    """(collection, keys, options) for every index authgate needs."""
    return [
        *librechat_user_indexes(),
        ("auth_usernames", [("user_id", ASCENDING)], {"name": "user_id_1"}),
        ("auth_outbox", [("next_attempt_at", ASCENDING)], {"name": "next_attempt_at_1"}),
        (
            "auth_outbox",
            [("to", ASCENDING), ("kind", ASCENDING), ("created_at", ASCENDING)],
            {"name": "to_1_kind_1_created_at_1"},
        ),
        ("auth_tokens", [("kind", ASCENDING), ("user_id", ASCENDING)], {"name": "kind_1_user_id_1"}),
        # Housekeeping only: expiry is checked in code when a token is used.
        ("auth_tokens", [("expires_at", ASCENDING)], {"name": "expires_ttl", "expireAfterSeconds": 0}),
        # An entry goes with its token; a day's margin keeps dead letters visible to mail-queue.
        ("auth_outbox", [("expires_at", ASCENDING)], {"name": "expires_ttl", "expireAfterSeconds": 86400}),
        ("auth_sessions", [("current_hash", ASCENDING)], {"name": "current_hash_1"}),
        ("auth_sessions", [("user_id", ASCENDING)], {"name": "user_id_1"}),
        ("auth_sessions", [("expires_at", ASCENDING)], {"name": "expires_ttl", "expireAfterSeconds": 0}),
        # Housekeeping only: a temp token's expiry is in its signed claims and in the query.
        ("auth_2fa_temp", [("expires_at", ASCENDING)], {"name": "expires_ttl", "expireAfterSeconds": 0}),
        ("auth_passkeys", [("credential_id", ASCENDING)], {"name": "credential_id_1", "unique": True}),
        ("auth_passkeys", [("user_id", ASCENDING)], {"name": "user_id_1"}),
        # Housekeeping only: a challenge's expiry is checked in code when it is taken.
        (
            "auth_webauthn_challenges",
            [("expires_at", ASCENDING)],
            {"name": "expires_ttl", "expireAfterSeconds": 0},
        ),
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


async def _retire_older_user_indexes(db: AsyncDatabase[Document]) -> None:
    """An older authgate made `email_1` unique and added `authgate_username_unique`, which
    LibreChat's build refuses or does not know: the compound unique index takes over first (so
    uniqueness never lapses), then `email_1` is rebuilt plain; the username index goes."""
    users = db.get_collection("users")
    existing = {index["name"]: index async for index in await users.list_indexes()}
    if existing.get("email_1", {}).get("unique"):
        _, keys, options = next(
            spec for spec in librechat_user_indexes() if spec[2]["name"] == EMAIL_TENANT_INDEX
        )
        if EMAIL_TENANT_INDEX not in existing:
            await users.create_index(keys, **options)
        await users.drop_index("email_1")
        log.info("index_replaced", collection="users", index="email_1", unique_now=EMAIL_TENANT_INDEX)
    if LEGACY_USERNAME_INDEX in existing:
        await users.drop_index(LEGACY_USERNAME_INDEX)
        log.info("index_dropped", collection="users", index=LEGACY_USERNAME_INDEX)


async def ensure_indexes(db: AsyncDatabase[Document], audit_retention_days: int) -> None:
    async with store_errors():
        await _retire_older_user_indexes(db)
        for name, keys, options in index_specs(audit_retention_days):
            try:
                await db.get_collection(name).create_index(keys, **options)
            except OperationFailure as exc:
                # An existing LibreChat index with other options keeps working for us.
                log.warning("index_not_created", collection=name, index=options["name"], error=str(exc))

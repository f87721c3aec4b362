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


def index_specs(audit_retention_days: int) -> list[IndexSpec]:
    """(collection, keys, options) for every index authgate needs."""
    return [
        ("users", [("email", ASCENDING)], {"unique": True, "name": "email_1"}),
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


async def ensure_indexes(db: AsyncDatabase[Document], audit_retention_days: int) -> None:
    async with store_errors():
        for name, keys, options in index_specs(audit_retention_days):
            try:
                await db.get_collection(name).create_index(keys, **options)
            except OperationFailure as exc:
                # An existing LibreChat index with other options keeps working for us.
                log.warning("index_not_created", collection=name, index=options["name"], error=str(exc))

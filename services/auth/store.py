"""MongoDB collections and indexes, and the one place store errors become `StoreUnavailable`.

`users` keeps LibreChat's field names so authgate can run on a LibreChat
database; everything the service adds lives in its own `auth_*` collections.
Writes that must survive a crash (users, sessions, revocations) are journaled.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pymongo
import structlog
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WTimeoutError,
)
from pymongo.write_concern import WriteConcern

from shared.errors import StoreUnavailable
from shared.metrics import STORE_ERRORS

log = structlog.get_logger("authgate.store")

Document = dict[str, Any]
JOURNALED = WriteConcern(w=1, j=True)
# A write concern error (WTimeoutError is one) means the write's durability is unknown, e.g. the
# node is shutting down: a retryable 503 like an outage, never a 500 after a half-done login.
_OUTAGE_ERRORS = (
    ConnectionFailure,
    ServerSelectionTimeoutError,
    ExecutionTimeout,
    WriteConcernError,
    WTimeoutError,
)


def text_value(value: object) -> str:
    """A query value from caller input must be a plain string: an operator object never becomes a filter."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string query value, got {type(value).__name__}")
    return value


@contextlib.asynccontextmanager
async def store_errors() -> AsyncIterator[None]:
    """Turn a driver outage into `StoreUnavailable` (503) and nothing else."""
    try:
        yield
    except _OUTAGE_ERRORS as exc:
        STORE_ERRORS.labels("auth").inc()
        raise StoreUnavailable(type(exc).__name__) from exc


@dataclass
class Collections:
    users: AsyncCollection[Document]
    sessions: AsyncCollection[Document]
    revocations: AsyncCollection[Document]
    audit: AsyncCollection[Document]
    user_state: AsyncCollection[Document]
    counters: AsyncCollection[Document]


class Store:
    """Owns the client; hands out collections with the right write concern."""

    def __init__(self, uri: str, timeout_ms: int = 2000, database: str | None = None) -> None:
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            # No `timeoutMS`: with it PyMongo ignores serverSelectionTimeoutMS and uses the
            # whole operation budget for server selection, so an outage took 5 s to surface.
            socketTimeoutMS=max(timeout_ms * 2, 5000),
            appname="authgate-auth",
            tz_aware=True,
        )
        self.db: AsyncDatabase[Document] = (
            self._client.get_database(database) if database else self._client.get_default_database("authgate")
        )
        self.c = Collections(
            users=self.db.get_collection("users", write_concern=JOURNALED),
            sessions=self.db.get_collection("auth_sessions", write_concern=JOURNALED),
            revocations=self.db.get_collection("auth_revocations", write_concern=JOURNALED),
            audit=self.db.get_collection("auth_audit"),
            user_state=self.db.get_collection("auth_user_state", write_concern=JOURNALED),
            counters=self.db.get_collection("auth_counters", write_concern=JOURNALED),
        )

    async def close(self) -> None:
        await self._client.close()

    async def ping(self, timeout_s: float = 0.5) -> bool:
        """A quick health probe; bounded well below a Kubernetes probe's 1 s timeout."""
        try:
            with pymongo.timeout(timeout_s):
                await self.db.command("ping")
        except PyMongoError:
            return False
        return True

    async def ensure_indexes(self, audit_retention_days: int) -> None:
        """Create the indexes the queries and TTLs rely on; tolerate LibreChat's own."""
        specs: list[tuple[AsyncCollection[Document], list[tuple[str, int]], dict[str, Any]]] = [
            (self.c.users, [("email", ASCENDING)], {"unique": True, "name": "email_1"}),
            (
                self.c.users,
                [("username", ASCENDING)],
                {
                    "unique": True,
                    "name": "authgate_username_unique",
                    "partialFilterExpression": {"username": {"$type": "string", "$gt": ""}},
                },
            ),
            (self.c.sessions, [("current_hash", ASCENDING)], {"name": "current_hash_1"}),
            (self.c.sessions, [("user_id", ASCENDING)], {"name": "user_id_1"}),
            (self.c.sessions, [("expires_at", ASCENDING)], {"name": "expires_ttl", "expireAfterSeconds": 0}),
            (self.c.revocations, [("at", ASCENDING)], {"name": "at_1"}),
            (self.c.revocations, [("pos", ASCENDING)], {"name": "pos_1"}),
            (
                self.c.revocations,
                [("expires_at", ASCENDING)],
                {"name": "expires_ttl", "expireAfterSeconds": 0},
            ),
            (
                self.c.audit,
                [("at", ASCENDING)],
                {"name": "at_ttl", "expireAfterSeconds": audit_retention_days * 86400},
            ),
            (self.c.audit, [("user_id", ASCENDING), ("at", ASCENDING)], {"name": "user_at"}),
        ]
        async with store_errors():
            for collection, keys, options in specs:
                try:
                    await collection.create_index(keys, **options)
                except OperationFailure as exc:
                    # An existing LibreChat index with other options keeps working for us.
                    log.warning(
                        "index_not_created", collection=collection.name, index=options["name"], error=str(exc)
                    )

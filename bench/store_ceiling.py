"""The store ceiling: the refresh path's journaled write, straight from the bench process, and its setup."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from pymongo.write_concern import WriteConcern

from bench.config import BenchConfig
from bench.load import closed_loop
from services.auth.sessions import TOKEN_HISTORY

SESSIONS = "auth_sessions"
STORE_WARMUP_MIN_S = 8.0
STORE_WARMUP_MAX_S = 30.0
INDEX_OPTIONS = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression")
Document = dict[str, Any]


# Store ceiling: the refresh path's write, straight from this process ---------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class StoreCeiling:
    """`concurrency` session-shaped documents, each rotated in a chain like a refresh does.

    The collection gets the same indexes as the service's `auth_sessions` (copied
    from it, so they follow the service) and every document a full token history,
    as a session has after TOKEN_HISTORY refreshes.
    """

    collection: AsyncCollection[Document]
    ids: list[str]
    current: list[str]

    @classmethod
    async def prepare(cls, db: AsyncDatabase[Document], chains: int) -> StoreCeiling:
        journaled = WriteConcern(w=1, j=True)
        collection = db.get_collection("bench_store_ceiling", write_concern=journaled)
        await copy_indexes(db.get_collection(SESSIONS), collection)
        now = dt.datetime.now(dt.UTC)
        current = [_hash(secrets.token_urlsafe(32)) for _ in range(chains)]
        docs = [_session_doc(hashed, now) for hashed in current]
        await collection.insert_many(docs)
        return cls(collection, [doc["_id"] for doc in docs], current)

    async def rotate(self, chain: int) -> bool:
        """The same update as SessionService.rotate (keyed on the current hash), with j=True."""
        now = dt.datetime.now(dt.UTC)
        parent = self.current[chain]
        child = _hash(secrets.token_urlsafe(32))
        try:
            doc = await self._rotate(parent, child, now)
        except PyMongoError:
            doc = None
        if doc is None:  # e.g. a timeout after the write committed: catch up with the document
            with contextlib.suppress(PyMongoError):
                found = await self.collection.find_one({"_id": self.ids[chain]}, {"current_hash": 1})
                if found is not None:
                    self.current[chain] = found["current_hash"]
            return False
        self.current[chain] = child
        return True

    async def _rotate(self, parent: str, child: str, now: dt.datetime) -> Document | None:
        return await self.collection.find_one_and_update(
            rotate_filter(parent, now),
            {
                "$set": {
                    "current_hash": child,
                    "parent_hash": parent,
                    "rotated_at": now,
                    "last_used_at": now,
                    "ip": "127.0.0.1",
                    "user_agent": "authgate-bench",
                },
                "$push": {"history": {"$each": [child], "$slice": -TOKEN_HISTORY}},
            },
            return_document=ReturnDocument.BEFORE,
        )


def rotate_filter(parent: str, now: dt.datetime) -> Document:
    """SessionService.rotate's filter: one indexed field (liveness is checked on the returned document)."""
    del now
    return {"current_hash": parent}


async def sessions_note(db: AsyncDatabase[Document]) -> str:
    """How the store plans the refresh's filter on auth_sessions, and how big that collection got."""
    sessions = db.get_collection(SESSIONS)
    count = await sessions.count_documents({})
    try:
        explained = await sessions.find(rotate_filter("0" * 64, dt.datetime.now(dt.UTC))).explain()
    except PyMongoError as exc:
        return f"auth_sessions: {count} documents at the end (explain failed: {type(exc).__name__})"
    plan = explained.get("queryPlanner", {}).get("winningPlan", {})
    stages = [
        plan.get("stage"),
        plan.get("inputStage", {}).get("stage"),
        plan.get("inputStage", {}).get("indexName"),
    ]
    shown = " > ".join(str(stage) for stage in stages if stage)
    note = f"auth_sessions: {count} documents at the end; the store plans the refresh's filter as {shown}"
    if plan.get("stage") == "COLLSCAN":
        note += (
            " (a scan of every session: refresh and the login's eviction query slow down as sessions pile up)"
        )
    return note


async def copy_indexes(source: AsyncCollection[Document], target: AsyncCollection[Document]) -> None:
    info = await source.index_information()
    if len(info) <= 1:
        raise RuntimeError(f"{source.name} has no indexes yet: did the auth service start?")
    for name, spec in info.items():
        if name == "_id_":
            continue
        options = {key: spec[key] for key in INDEX_OPTIONS if key in spec}
        await target.create_index(list(spec["key"]), name=name, **options)


def full_history(current: str) -> list[str]:
    """TOKEN_HISTORY hashes ending with the current one: the steady state of a long-lived session."""
    return [_hash(secrets.token_urlsafe(32)) for _ in range(TOKEN_HISTORY - 1)] + [current]


async def fill_histories(db: AsyncDatabase[Document], user_email: str) -> int:
    """Give the refresh user's sessions (made by logging in) a full token history, like the ceiling's."""
    users = db.get_collection("users")
    sessions = db.get_collection(SESSIONS, write_concern=WriteConcern(w=1, j=True))
    user = await users.find_one({"email": user_email}, {"_id": 1})
    if user is None:
        raise RuntimeError(f"no user {user_email}")
    filled = 0
    async for doc in sessions.find({"user_id": str(user["_id"])}, {"current_hash": 1}):
        history = full_history(doc["current_hash"])
        await sessions.update_one({"_id": doc["_id"]}, {"$set": {"history": history}})
        filled += 1
    return filled


def _session_doc(hashed: str, now: dt.datetime) -> Document:
    return {
        "_id": secrets.token_urlsafe(16),
        "user_id": "bench",
        "current_hash": hashed,
        "parent_hash": None,
        "history": full_history(hashed),
        "created_at": now,
        "last_used_at": now,
        "rotated_at": now,
        "expires_at": now + dt.timedelta(days=7),
        "revoked_at": None,
        "revoked_reason": None,
        "ip": "127.0.0.1",
        "user_agent": "authgate-bench",
    }


async def warm_store(ceiling: StoreCeiling, chains: int, config: BenchConfig) -> str:
    """Journaled writes in 1 s windows until the store's rate has settled; a note on what happened.

    secantusd stalls for ~15 s after its first few hundred journaled writes (measured here:
    ~5 writes/s, then ~180/s for good). Past STORE_WARMUP_MIN_S, three windows in a row at half
    the best rate or more end the warm-up; STORE_WARMUP_MAX_S bounds it.
    """
    if config.quick:
        return "store warm-up skipped (--quick): a store stall may land in a run"
    rates: list[float] = []
    started = time.monotonic()
    while time.monotonic() - started < STORE_WARMUP_MAX_S:
        rates.append((await closed_loop(ceiling.rotate, chains, 1.0, "warm-up")).rps)
        settled = len(rates) >= 3 and all(r >= 0.5 * max(rates) for r in rates[-3:])
        if settled and time.monotonic() - started >= STORE_WARMUP_MIN_S:
            break
    slowest = min(rates, default=math.nan)
    return (
        f"store warm-up: {time.monotonic() - started:.0f} s of journaled writes before the runs"
        f" (1 s windows from {slowest:,.0f} to {max(rates, default=math.nan):,.0f} writes/s)"
    )

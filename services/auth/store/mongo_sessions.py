"""`auth_sessions`: refresh-token families, found by session id, current hash or user."""

from __future__ import annotations

import datetime as dt

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from services.auth.store.errors import store_errors, text_value
from services.auth.store.interfaces import Document


class MongoSessions:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def insert(self, doc: Document) -> None:
        async with store_errors():
            await self._c.insert_one(doc)

    async def get(self, session_id: str) -> Document | None:
        async with store_errors():
            return await self._c.find_one({"_id": text_value(session_id)})

    async def find_current(self, token_hash: str) -> Document | None:
        async with store_errors():
            return await self._c.find_one({"current_hash": text_value(token_hash)})

    async def advance(
        self, current_hash: str, child_hash: str, changes: Document, history: int
    ) -> Document | None:
        async with store_errors():
            return await self._c.find_one_and_update(
                {"current_hash": text_value(current_hash)},
                {
                    "$set": {"current_hash": child_hash, "parent_hash": current_hash, **changes},
                    "$push": {"history": {"$each": [child_hash], "$slice": -history}},
                },
                return_document=ReturnDocument.BEFORE,
            )

    async def of_user(self, user_id: str) -> list[Document]:
        """By the indexed `user_id` alone: a compound filter makes some MongoDB-compatible
        stores (the embedded one) scan the whole collection, so callers filter liveness."""
        async with store_errors():
            return [doc async for doc in self._c.find({"user_id": text_value(user_id)})]

    async def by_ids(self, session_ids: list[str]) -> list[Document]:
        async with store_errors():
            return [doc async for doc in self._c.find({"_id": {"$in": [text_value(s) for s in session_ids]}})]

    async def mark_revoked(self, session_ids: list[str], at: dt.datetime, reason: str) -> None:
        async with store_errors():
            await self._c.update_many(
                {"_id": {"$in": session_ids}}, {"$set": {"revoked_at": at, "revoked_reason": reason}}
            )

    async def add_amr(self, session_id: str, method: str, at: dt.datetime) -> None:
        """A second factor proved during the session (step-up): recorded on the live session."""
        async with store_errors():
            await self._c.update_one(
                {"_id": text_value(session_id), "revoked_at": None},
                {"$addToSet": {"amr": method}, "$set": {"last_used_at": at}},
            )

    async def touch(self, session_id: str, at: dt.datetime) -> None:
        """The portal renewed the session cookie: the session was used (idle timeout)."""
        async with store_errors():
            await self._c.update_one(
                {"_id": text_value(session_id), "revoked_at": None}, {"$set": {"last_used_at": at}}
            )

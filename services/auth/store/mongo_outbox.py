"""`auth_outbox`: mails to send, their sealed bodies, leases and attempts."""

from __future__ import annotations

import datetime as dt

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from services.auth.store.errors import store_errors, text_value
from services.auth.store.interfaces import Document


class MongoOutbox:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def add(self, entry: Document) -> None:
        async with store_errors():
            await self._c.insert_one(entry)

    async def claim_due(self, now: dt.datetime, lease_until: dt.datetime) -> Document | None:
        async with store_errors():
            return await self._c.find_one_and_update(
                {"state": "pending", "next_attempt_at": {"$lte": now}, "lease_until": {"$lte": now}},
                {"$set": {"lease_until": lease_until}},
                sort=[("next_attempt_at", 1)],
                return_document=ReturnDocument.AFTER,
            )

    async def sent(self, entry_id: str, at: dt.datetime) -> None:
        async with store_errors():
            await self._c.update_one(
                {"_id": text_value(entry_id)},
                {"$set": {"state": "sent", "sent_at": at}, "$unset": {"body": ""}},
            )

    async def skipped(self, entry_id: str, at: dt.datetime) -> None:
        async with store_errors():
            await self._c.update_one(
                {"_id": text_value(entry_id)},
                {"$set": {"state": "skipped", "sent_at": at}, "$unset": {"body": ""}},
            )

    async def retry_later(self, entry_id: str, attempts: int, at: dt.datetime, error: str) -> None:
        async with store_errors():
            await self._c.update_one(
                {"_id": text_value(entry_id)},
                {
                    "$set": {
                        "attempts": attempts,
                        "next_attempt_at": at,
                        "lease_until": at,
                        "last_error": error,
                    }
                },
            )

    async def dead(self, entry_id: str, attempts: int, error: str, *, keep_body: bool = True) -> None:
        update: Document = {"$set": {"state": "dead", "attempts": attempts, "last_error": error}}
        if not keep_body:
            update["$unset"] = {"body": ""}
        async with store_errors():
            await self._c.update_one({"_id": text_value(entry_id)}, update)

    async def listing(self, limit: int) -> list[Document]:
        async with store_errors():
            cursor = self._c.find({}, {"body": 0}).sort("created_at", 1).limit(limit)
            return [doc async for doc in cursor]

    async def requeue(self, entry_id: str, at: dt.datetime) -> bool:
        async with store_errors():
            result = await self._c.update_one(
                {"_id": text_value(entry_id), "state": "dead", "body": {"$exists": True}},
                {"$set": {"state": "pending", "attempts": 0, "next_attempt_at": at, "lease_until": at}},
            )
        return result.modified_count == 1

    async def drop(self, entry_id: str) -> bool:
        async with store_errors():
            result = await self._c.delete_one({"_id": text_value(entry_id)})
        return result.deleted_count == 1

    async def count_for(self, to: str, kind: str, since: dt.datetime, *, mailed_only: bool) -> int:
        query: Document = {"to": text_value(to), "kind": text_value(kind), "created_at": {"$gte": since}}
        if mailed_only:
            query["suppress"] = {"$ne": True}
        async with store_errors():
            return await self._c.count_documents(query)

"""`auth_revocations` and its position counter: the feed every auth process polls."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from services.auth.store.errors import store_errors
from services.auth.store.interfaces import Document

FIELDS = {
    "pos": 1,
    "sid": 1,
    "user_id": 1,
    "epoch": 1,
    "expires_at": 1,
    "ban_reason": 1,
    "ban_expires_at": 1,
    "_id": 0,
}


class MongoRevocations:
    def __init__(self, records: AsyncCollection[Document], counters: AsyncCollection[Document]) -> None:
        self._records = records
        self._counters = counters

    async def append(self, records: list[Document]) -> None:
        """Readers follow the feed by position, never by a writer's clock; a position can still
        commit after a higher one, which the reader's gap tracking covers."""
        if not records:
            return
        for record, position in zip(records, await self.allocate_positions(len(records)), strict=True):
            record["pos"] = position
        async with store_errors():
            await self._records.insert_many(records)

    async def allocate_positions(self, count: int) -> range:
        """`count` consecutive feed positions from the one store-side counter."""
        async with store_errors():
            counter = await self._counters.find_one_and_update(
                {"_id": "revocations"},
                {"$inc": {"n": count}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        high = int((counter or {}).get("n", count))
        return range(high - count + 1, high + 1)

    async def live(self, now: dt.datetime) -> AsyncIterator[Document]:
        async with store_errors():
            async for doc in self._records.find({"expires_at": {"$gt": now}}, FIELDS):
                yield doc

    async def from_position(self, position: int) -> AsyncIterator[Document]:
        async with store_errors():
            async for doc in self._records.find({"pos": {"$gte": position}}, FIELDS):
                yield doc

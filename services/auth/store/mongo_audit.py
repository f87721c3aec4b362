"""`auth_audit`: security events, TTL-indexed; not journaled (the log line is the first copy)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from services.auth.store.errors import store_errors
from services.auth.store.interfaces import Document


class MongoAudit:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def insert(self, record: Document) -> None:
        async with store_errors():
            await self._c.insert_one(record)

    async def query(self, user_id: str | None, since: dt.datetime | None, limit: int) -> list[Document]:
        flt: dict[str, Any] = {}
        if user_id is not None:
            flt["user_id"] = user_id
        if since is not None:
            flt["at"] = {"$gte": since}
        async with store_errors():
            return [doc async for doc in self._c.find(flt, {"_id": 0}).sort("at", -1).limit(limit)]

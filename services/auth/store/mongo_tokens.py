"""`auth_tokens`: single-use token hashes, one live token per user and kind."""

from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.collection import AsyncCollection

from services.auth.store.errors import store_errors, text_value
from services.auth.store.interfaces import Document


class MongoOneTimeTokens:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def replace(
        self, kind: str, user_id: str, token_hash: str, expires_at: dt.datetime, created_at: dt.datetime
    ) -> None:
        async with store_errors():
            await self._c.delete_many({"kind": kind, "user_id": text_value(user_id)})
            await self._c.insert_one(
                {
                    "_id": token_hash,
                    "kind": kind,
                    "user_id": user_id,
                    "expires_at": expires_at,
                    "created_at": created_at,
                }
            )

    async def issued_since(self, kind: str, user_id: str, since: dt.datetime) -> bool:
        async with store_errors():
            found = await self._c.find_one({"kind": kind, "user_id": text_value(user_id)}, {"created_at": 1})
        created = (found or {}).get("created_at")
        return isinstance(created, dt.datetime) and created >= since

    async def consume(self, kind: str, token_hash: str, user_id: str | None) -> Document | None:
        match: Document = {"_id": text_value(token_hash), "kind": kind}
        if user_id is not None:
            match["user_id"] = text_value(user_id)
        async with store_errors():
            return await self._c.find_one_and_delete(match)

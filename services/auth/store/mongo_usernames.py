"""`auth_usernames`: a claim per canonical username, since LibreChat's `users` has no index on it."""

from __future__ import annotations

import datetime as dt

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.auth.store.errors import store_errors, text_value
from services.auth.store.interfaces import Document


class MongoUsernameClaims:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def claim(self, name: str, user_key: object, at: dt.datetime) -> bool:
        async with store_errors():
            try:
                await self._c.insert_one({"_id": text_value(name), "user_id": user_key, "at": at})
            except DuplicateKeyError:
                return False
        return True

    async def holder(self, name: str) -> Document | None:
        async with store_errors():
            return await self._c.find_one({"_id": text_value(name)})

    async def take_over(
        self, name: str, held_by: object, held_at: dt.datetime, user_key: object, at: dt.datetime
    ) -> bool:
        async with store_errors():
            taken = await self._c.update_one(
                {"_id": text_value(name), "user_id": held_by, "at": held_at},
                {"$set": {"user_id": user_key, "at": at}},
            )
        return taken.modified_count == 1

    async def release(self, name: str, user_key: object) -> None:
        async with store_errors():
            await self._c.delete_one({"_id": text_value(name), "user_id": user_key})

"""`auth_user_state`: one small document per user id, epochs and the bounded session list."""

from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from services.auth.store.errors import store_errors, text_value
from services.auth.store.interfaces import Document, SessionAdded, UserState


class MongoUserState:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def get(self, user_id: str) -> UserState:
        async with store_errors():
            doc = await self._c.find_one(
                {"_id": text_value(user_id)}, {"session_epoch": 1, "device_epoch": 1}
            )
        doc = doc or {}
        return UserState(int(doc.get("session_epoch", 0)), int(doc.get("device_epoch", 0)))

    async def bump_session_epoch(self, user_id: str) -> int:
        async with store_errors():
            state = await self._c.find_one_and_update(
                {"_id": text_value(user_id)},
                {"$inc": {"session_epoch": 1}},
                projection={"session_epoch": 1},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        return int((state or {}).get("session_epoch", 1))

    async def add_session(self, user_id: str, session_id: str, keep: int) -> SessionAdded:
        async with store_errors():
            before = await self._c.find_one_and_update(
                {"_id": text_value(user_id)},
                {"$push": {"sessions": {"$each": [session_id], "$slice": -keep}}},
                projection={"sessions": 1, "session_epoch": 1},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        before = before or {}
        return SessionAdded(list(before.get("sessions", [])), int(before.get("session_epoch", 0)))

    async def bump_device_epoch(self, user_id: str) -> None:
        async with store_errors():
            await self._c.update_one({"_id": text_value(user_id)}, {"$inc": {"device_epoch": 1}}, upsert=True)

    async def mark_ban_applied(self, user_id: str, ban_key: int) -> bool:
        """One atomic swap: setting the value it already holds is no write at all."""
        async with store_errors():
            before = await self._c.find_one_and_update(
                {"_id": text_value(user_id)},
                {"$set": {"applied_ban": ban_key}},
                projection={"applied_ban": 1},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        return (before or {}).get("applied_ban") != ban_key

    async def forget_sessions(self, user_id: str) -> None:
        async with store_errors():
            await self._c.update_one({"_id": text_value(user_id)}, {"$unset": {"sessions": ""}})

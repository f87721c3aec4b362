"""`auth_two_factor` (second factors, keyed by user id) and `auth_2fa_temp` (temp-token records)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.auth.store.errors import store_errors, text_value
from services.auth.store.interfaces import Document

CODE_FIELDS = ("codes", "legacy_codes")


def _hex(value: str) -> str:
    """A code hash becomes part of a field path: only hex digits may."""
    text = text_value(value)
    if not text or any(ch not in "0123456789abcdef" for ch in text):
        raise ValueError("not a hex digest")
    return text


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MongoTwoFactor:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def get(self, user_id: str) -> Document | None:
        async with store_errors():
            return await self._c.find_one({"_id": text_value(user_id)})

    async def set_pending(self, user_id: str, pending: Document) -> None:
        async with store_errors():
            await self._c.update_one(
                {"_id": text_value(user_id)},
                {"$set": {"pending": pending, "updated_at": _now()}, "$setOnInsert": {"enabled": False}},
                upsert=True,
            )

    async def promote(self, user_id: str, pending_id: str, active: Document) -> bool:
        async with store_errors():
            result = await self._c.update_one(
                {"_id": text_value(user_id), "pending.id": text_value(pending_id)},
                {
                    "$set": {**active, "enabled": True, "updated_at": _now()},
                    "$unset": {"pending": "", "legacy_codes": ""},
                },
            )
        return result.modified_count == 1

    async def import_active(self, user_id: str, active: Document) -> bool:
        """An upsert guarded by `enabled != true`: a pending enrolment is kept beside the import,
        and of two concurrent imports the second hits the unique `_id` and changes nothing."""
        async with store_errors():
            try:
                result = await self._c.update_one(
                    {"_id": text_value(user_id), "enabled": {"$ne": True}},
                    {"$set": {**active, "enabled": True, "updated_at": _now()}},
                    upsert=True,
                )
            except DuplicateKeyError:
                return False
        return result.modified_count == 1 or result.upserted_id is not None

    async def advance_step(self, user_id: str, step: int) -> bool:
        async with store_errors():
            result = await self._c.update_one(
                {
                    "_id": text_value(user_id),
                    "$or": [{"last_step": {"$lt": step}}, {"last_step": {"$exists": False}}],
                },
                {"$set": {"last_step": step}},
            )
        return result.modified_count == 1

    async def use_code(self, user_id: str, field: str, code_hash: str, at: dt.datetime) -> bool:
        if field not in CODE_FIELDS:
            raise ValueError(field)
        path = f"{field}.{_hex(code_hash)}"
        async with store_errors():
            result = await self._c.update_one(
                {"_id": text_value(user_id), "enabled": True, path: False}, {"$set": {path: at}}
            )
        return result.modified_count == 1

    async def replace_codes(self, user_id: str, salt: str, hashes: list[str]) -> bool:
        codes = {_hex(h): False for h in hashes}
        async with store_errors():
            result = await self._c.update_one(
                {"_id": text_value(user_id), "enabled": True},
                {
                    "$set": {"salt": salt, "codes": codes, "updated_at": _now()},
                    "$unset": {"legacy_codes": ""},
                },
            )
        return result.modified_count == 1

    async def reseal(self, user_id: str, field: str, old: str, new: str) -> bool:
        if field not in ("secret", "pending.secret"):
            raise ValueError(field)
        async with store_errors():
            result = await self._c.update_one(
                {"_id": text_value(user_id), field: text_value(old)}, {"$set": {field: new}}
            )
        return result.modified_count == 1

    async def delete(self, user_id: str) -> bool:
        async with store_errors():
            result = await self._c.delete_one({"_id": text_value(user_id)})
        return result.deleted_count == 1

    async def sealed(self) -> AsyncIterator[Document]:
        async with store_errors():
            async for doc in self._c.find({}, {"secret": 1, "pending.secret": 1}):
                yield doc


class MongoTempTokens:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def add(self, jti: str, user_id: str, expires_at: dt.datetime) -> None:
        async with store_errors():
            await self._c.insert_one(
                {"_id": jti, "user_id": user_id, "attempts": 0, "expires_at": expires_at}
            )

    async def attempt(self, jti: str, user_id: str, max_attempts: int) -> bool:
        match = {
            "_id": text_value(jti),
            "user_id": text_value(user_id),
            "attempts": {"$lt": max_attempts},
            "expires_at": {"$gt": _now()},
        }
        async with store_errors():
            result = await self._c.update_one(match, {"$inc": {"attempts": 1}})
        return result.modified_count == 1

    async def consume(self, jti: str, user_id: str) -> bool:
        match = {"_id": text_value(jti), "user_id": text_value(user_id), "expires_at": {"$gt": _now()}}
        async with store_errors():
            return await self._c.find_one_and_delete(match) is not None

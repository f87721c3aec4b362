"""`users` on MongoDB, in LibreChat's schema: its ids are ObjectIds, its emails lower-cased."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.auth.store.errors import DuplicateValue, store_errors, text_value
from services.auth.store.interfaces import Document


def object_id(user_id: object) -> object:
    """LibreChat's ids are ObjectIds; any other string is looked up as given (never a non-string)."""
    if isinstance(user_id, ObjectId):
        return user_id
    try:
        return ObjectId(text_value(user_id))
    except InvalidId:
        return user_id


class MongoUsers:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    def new_key(self) -> object:
        return ObjectId()

    async def find_by_emails(self, forms: list[str]) -> Document | None:
        async with store_errors():
            return await self._c.find_one({"email": {"$in": [text_value(form) for form in forms]}})

    async def find_by_id(self, user_id: str) -> Document | None:
        async with store_errors():
            return await self._c.find_one({"_id": object_id(user_id)})

    async def username_exists(self, canonical: str) -> bool:
        name = text_value(canonical)
        query = {
            "$or": [{"username": name}, {"username": {"$regex": f"^{re.escape(name)}$", "$options": "i"}}]
        }
        async with store_errors():
            return await self._c.find_one(query, {"_id": 1}) is not None

    async def insert(self, doc: Document) -> Document:
        async with store_errors():
            try:
                result = await self._c.insert_one(doc)
            except DuplicateKeyError as exc:
                pattern = (exc.details or {}).get("keyPattern") or {}
                field = "username" if "username" in pattern or "username" in str(exc) else "email"
                raise DuplicateValue(field) from None
        doc["_id"] = result.inserted_id
        return doc

    async def set_password(self, key: object, new_hash: str, *, expected: str | None = None) -> None:
        match: Document = {"_id": key} if expected is None else {"_id": key, "password": expected}
        async with store_errors():
            await self._c.update_one(match, {"$set": {"password": new_hash, "updatedAt": _now()}})

    async def set_role(self, key: object, role: str, source: str) -> Document | None:
        async with store_errors():
            return await self._c.find_one_and_update(
                {"_id": key},
                {"$set": {"role": role, "roleSource": source, "updatedAt": _now()}},
                return_document=ReturnDocument.AFTER,
            )

    async def set_email_verified(self, key: object, by: str) -> None:
        fields = {"emailVerified": True, "emailVerifiedBy": by, "updatedAt": _now()}
        async with store_errors():
            await self._c.update_one({"_id": key}, {"$set": fields})

    async def find_by_link(self, field: str, subject: str, issuer: str | None) -> Document | None:
        query: Document = {field: text_value(subject)}
        if issuer is not None:
            query["openidIssuer"] = text_value(issuer)
        async with store_errors():
            return await self._c.find_one(query)

    async def link(self, key: object, field: str, fields: Document) -> bool:
        """Set a provider id (and its issuer) unless the user already has one for that provider."""
        async with store_errors():
            try:
                result = await self._c.update_one(
                    {"_id": key, field: {"$exists": False}}, {"$set": {**fields, "updatedAt": _now()}}
                )
            except DuplicateKeyError:
                return False  # that identity is linked to another user already
        return result.modified_count == 1

    async def unlink(self, key: object, fields: list[str]) -> None:
        async with store_errors():
            await self._c.update_one(
                {"_id": key}, {"$unset": dict.fromkeys(fields, ""), "$set": {"updatedAt": _now()}}
            )

    async def set_two_factor(self, key: object, enabled: bool) -> None:
        librechat = {"totpSecret": "", "backupCodes": "", "pendingTotpSecret": "", "pendingBackupCodes": ""}
        async with store_errors():
            await self._c.update_one(
                {"_id": key},
                {"$set": {"twoFactorEnabled": enabled, "updatedAt": _now()}, "$unset": librechat},
            )

    async def delete(self, key: object) -> None:
        async with store_errors():
            await self._c.delete_one({"_id": key})

    async def identities(self) -> AsyncIterator[Document]:
        async with store_errors():
            async for doc in self._c.find({}, {"email": 1, "username": 1, "role": 1, "createdAt": 1}):
                yield doc

    async def list(self, limit: int) -> list[Document]:
        async with store_errors():
            cursor = self._c.find({}, {"password": 0}).sort("createdAt", 1).limit(limit)
            return [doc async for doc in cursor]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)

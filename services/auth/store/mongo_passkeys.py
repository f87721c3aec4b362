"""`auth_passkeys` (registered WebAuthn credentials) and `auth_webauthn_challenges` (pending ceremonies).

A passkey document: `_id` (an opaque id the API names it by), `user_id`, `credential_id`
(base64url, unique index), `public_key` (COSE bytes), `sign_count`, `transports`, `name`,
`backed_up`, `created_at`, `last_used_at`. A challenge document: `_id` = SHA-256 of the
challenge (hex), `kind` (`register` or `login`), `user_id` for a registration, `expires_at`.
"""

from __future__ import annotations

import contextlib
import datetime as dt

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.auth.store.errors import DuplicateValue, store_errors, text_value
from services.auth.store.interfaces import Document

MAX_PASSKEYS_LISTED = 100


class MongoPasskeys:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def insert(self, doc: Document) -> None:
        """Raises `DuplicateValue("credential_id")` when the credential is registered already."""
        async with store_errors():
            try:
                await self._c.insert_one(doc)
            except DuplicateKeyError:
                raise DuplicateValue("credential_id") from None

    async def by_credential_id(self, credential_id: str) -> Document | None:
        async with store_errors():
            return await self._c.find_one({"credential_id": text_value(credential_id)})

    async def list_for(self, user_id: str) -> list[Document]:
        async with store_errors():
            cursor = self._c.find({"user_id": text_value(user_id)}).sort("created_at", 1)
            return await cursor.to_list(MAX_PASSKEYS_LISTED)

    async def count_for(self, user_id: str) -> int:
        async with store_errors():
            return await self._c.count_documents({"user_id": text_value(user_id)})

    async def record_use(self, passkey_id: str, old_count: int, new_count: int, at: dt.datetime) -> bool:
        """Compare-and-set the sign counter: of two assertions with one counter value, one wins."""
        async with store_errors():
            result = await self._c.update_one(
                {"_id": text_value(passkey_id), "sign_count": old_count},
                {"$set": {"sign_count": new_count, "last_used_at": at}},
            )
        return result.matched_count == 1

    async def rename(self, user_id: str, passkey_id: str, name: str) -> bool:
        async with store_errors():
            result = await self._c.update_one(
                {"_id": text_value(passkey_id), "user_id": text_value(user_id)}, {"$set": {"name": name}}
            )
        return result.matched_count == 1

    async def delete(self, user_id: str, passkey_id: str) -> Document | None:
        """The removed document (so a refused removal can be put back), or None."""
        async with store_errors():
            return await self._c.find_one_and_delete(
                {"_id": text_value(passkey_id), "user_id": text_value(user_id)}
            )

    async def restore(self, doc: Document) -> None:
        async with store_errors():
            with contextlib.suppress(DuplicateKeyError):  # put back already
                await self._c.insert_one(doc)

    async def delete_all(self, user_id: str) -> int:
        async with store_errors():
            result = await self._c.delete_many({"user_id": text_value(user_id)})
        return result.deleted_count


class MongoWebAuthnChallenges:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def insert(self, doc: Document) -> None:
        async with store_errors():
            await self._c.insert_one(doc)

    async def take(self, challenge_hash: str) -> Document | None:
        """Remove and return the challenge: whatever follows, it is never accepted twice."""
        async with store_errors():
            return await self._c.find_one_and_delete({"_id": text_value(challenge_hash)})

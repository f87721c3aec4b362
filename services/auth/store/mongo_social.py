"""`auth_oauth_states` and `auth_oidc_sessions`: what a provider sign-in leaves in the store.

A flow's `state` is marked used when its callback arrives (a second callback with the same
cookie is a replay), as is each back-channel logout token's `jti` (a second delivery of the
same token is refused), and a session started through OpenID keeps the provider's `sid` and `sub`
so a back-channel logout can find it. Both expire on their own (TTL indexes).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from services.auth.store.errors import store_errors, text_value
from services.auth.store.interfaces import Document


class MongoOAuthStates:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def use(self, state_hash: str, expires_at: dt.datetime) -> bool:
        """True the first time a state is used; False when it was used before."""
        async with store_errors():
            try:
                await self._c.insert_one({"_id": text_value(state_hash), "expires_at": expires_at})
            except DuplicateKeyError:
                return False
        return True

    async def use_logout_token(self, issuer: str, jti: str, expires_at: dt.datetime) -> bool:
        """True the first time `issuer`'s logout token `jti` arrives; kept until `expires_at`."""
        digest = hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()
        return await self.use(f"logout:{digest}", expires_at)


class MongoOidcSessions:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._c = collection

    async def record(
        self, session_id: str, user_id: str, issuer: str, sub: str, sid: str | None, expires_at: dt.datetime
    ) -> None:
        doc: Document = {
            "_id": session_id,
            "user_id": user_id,
            "issuer": issuer,
            "sub": sub,
            "sid": sid,
            "expires_at": expires_at,
        }
        async with store_errors():
            await self._c.replace_one({"_id": session_id}, doc, upsert=True)

    async def find(self, issuer: str, *, sub: str | None, sid: str | None) -> list[Document]:
        """Sessions of `issuer` matching `sid` when given, else every session of `sub`."""
        query: Document = {"issuer": text_value(issuer)}
        if sid is not None:
            query["sid"] = text_value(sid)
        if sub is not None:
            query["sub"] = text_value(sub)
        async with store_errors():
            return [doc async for doc in self._c.find(query).limit(1000)]

    async def find_session(self, session_id: str) -> Document | None:
        async with store_errors():
            return await self._c.find_one({"_id": text_value(session_id)})

"""The MongoDB client and the repositories built on it, one per collection.

`users` keeps LibreChat's field names so authgate can run on a LibreChat database;
everything the service adds lives in its own `auth_*` collections. Writes that must
survive a crash or a failover (users, sessions, revocations, user state, tokens, mail) are
journaled and acknowledged by a majority of a replica set (`MONGO_WRITE_CONCERN`), and read
from the primary whatever the URI says: an authentication decision never reads a lagging copy.
"""

from __future__ import annotations

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from services.auth.store.indexes import ensure_indexes
from services.auth.store.interfaces import Document
from services.auth.store.mongo_audit import MongoAudit
from services.auth.store.mongo_outbox import MongoOutbox
from services.auth.store.mongo_passkeys import MongoPasskeys, MongoWebAuthnChallenges
from services.auth.store.mongo_revocations import MongoRevocations
from services.auth.store.mongo_sessions import MongoSessions
from services.auth.store.mongo_tokens import MongoOneTimeTokens
from services.auth.store.mongo_two_factor import MongoTempTokens, MongoTwoFactor
from services.auth.store.mongo_user_state import MongoUserState
from services.auth.store.mongo_usernames import MongoUsernameClaims
from services.auth.store.mongo_users import MongoUsers

DEFAULT_WRITE_CONCERN: str | int = "majority"


class Store:
    """Owns the client; hands each repository its collection with the right write concern."""

    def __init__(
        self,
        uri: str,
        timeout_ms: int = 2000,
        database: str | None = None,
        write_concern: str | int = DEFAULT_WRITE_CONCERN,
    ) -> None:
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            # No `timeoutMS`: with it PyMongo ignores serverSelectionTimeoutMS and uses the
            # whole operation budget for server selection, so an outage took 5 s to surface.
            socketTimeoutMS=max(timeout_ms * 2, 5000),
            appname="authgate-auth",
            tz_aware=True,
        )
        self.db: AsyncDatabase[Document] = (
            self._client.get_database(database) if database else self._client.get_default_database("authgate")
        )

        durable = WriteConcern(w=write_concern, j=True)

        def journaled(name: str) -> pymongo.asynchronous.collection.AsyncCollection[Document]:
            return self.db.get_collection(name, write_concern=durable, read_preference=ReadPreference.PRIMARY)

        self.users = MongoUsers(journaled("users"))
        self.sessions = MongoSessions(journaled("auth_sessions"))
        self.revocations = MongoRevocations(journaled("auth_revocations"), journaled("auth_counters"))
        self.user_state = MongoUserState(journaled("auth_user_state"))
        self.audit = MongoAudit(self.db.get_collection("auth_audit"))  # w=1: a record may be lost
        self.usernames = MongoUsernameClaims(journaled("auth_usernames"))
        self.outbox = MongoOutbox(journaled("auth_outbox"))
        self.tokens = MongoOneTimeTokens(journaled("auth_tokens"))
        self.two_factor = MongoTwoFactor(journaled("auth_two_factor"))
        self.temp_tokens = MongoTempTokens(journaled("auth_2fa_temp"))
        self.passkeys = MongoPasskeys(journaled("auth_passkeys"))
        self.webauthn_challenges = MongoWebAuthnChallenges(journaled("auth_webauthn_challenges"))

    async def close(self) -> None:
        await self._client.close()

    async def ping(self, timeout_s: float = 0.5) -> bool:
        """A quick health probe; bounded well below a Kubernetes probe's 1 s timeout."""
        try:
            with pymongo.timeout(timeout_s):
                await self.db.command("ping")
        except PyMongoError:
            return False
        return True

    async def ensure_indexes(self, audit_retention_days: int) -> None:
        await ensure_indexes(self.db, audit_retention_days)

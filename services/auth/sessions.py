"""Sessions as refresh-token families: creation, atomic rotation, reuse detection, revocation.

Refresh tokens are 256-bit random values; only their SHA-256 hashes are stored.
A child token is derived from its parent with a keyed hash, so every concurrent
refresh of the same parent (parallel tabs) computes the same child inside the
grace period and the family stays one chain. Presenting an older token, or the
parent after the grace period, revokes the whole session.

Every revocation, whatever its cause, goes through `SessionService.revoke`,
which also records it in `auth_revocations` for the forward-auth cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from pymongo import ReturnDocument

from services.auth.audit import AuditTrail
from services.auth.counters import REFRESHES, REVOCATIONS
from services.auth.store import Document, Store, store_errors, text_value
from shared.crypto import b64url_encode, derive_key

TOKEN_HISTORY = 64  # older tokens than this are simply unknown (401), not reuse


class StaleCredentials(Exception):
    """An all-sessions revocation landed while these credentials were being checked."""


class InvalidRefreshToken(Exception):
    """Missing, unknown, expired, idle, revoked or replayed; callers answer 401 either way.

    `user_id` is set when the token belonged to a known session, so a banned user's
    refresh can be answered with the ban instead.
    """

    def __init__(self, reason: str, user_id: str | None = None) -> None:
        super().__init__(reason)
        self.user_id = user_id


def token_hash(token: str) -> str:
    return hashlib.sha256(text_value(token).encode()).hexdigest()


def session_id_of(token: str) -> str | None:
    """Refresh tokens are `<session id>.<256 random bits>`; the id finds the family for reuse checks."""
    session_id, dot, secret = token.partition(".")
    if not dot or not session_id or not secret or len(session_id) > 32:
        return None
    return session_id


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Session:
    id: str
    user_id: str
    created_at: dt.datetime
    last_used_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None
    revoked_at: dt.datetime | None
    epoch: int = 0

    @classmethod
    def from_doc(cls, doc: Document) -> Session:
        return cls(
            id=doc["_id"],
            user_id=doc["user_id"],
            created_at=doc["created_at"],
            last_used_at=doc["last_used_at"],
            expires_at=doc["expires_at"],
            ip=doc.get("ip"),
            user_agent=doc.get("user_agent"),
            revoked_at=doc.get("revoked_at"),
            epoch=int(doc.get("epoch", 0)),
        )


@dataclass(frozen=True)
class RevokedByBan:
    """The ban behind a revocation: what /verify tells a client whose token it refuses."""

    reason: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class SessionPolicy:
    absolute_ms: int
    idle_ms: int
    grace_ms: int
    max_per_user: int
    access_lifetime_ms: int


class SessionService:
    def __init__(
        self,
        store: Store,
        audit: AuditTrail,
        refresh_secret: str,
        policy: SessionPolicy,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._clock = clock
        self._store = store
        self._audit = audit
        self._child_key = derive_key(refresh_secret, b"refresh-child")
        self.policy = policy
        self.revocation_listeners: list[Callable[[list[str], float], None]] = []
        self.epoch_listeners: list[Callable[[str, int, float], None]] = []

    # Tokens ---------------------------------------------------------------------

    def child_of(self, token: str) -> str:
        """The next token of the family: the session id, then HMAC(key, parent) (precision of issue 2)."""
        digest = hmac.new(self._child_key, token.encode(), hashlib.sha256).digest()
        return f"{session_id_of(token)}.{b64url_encode(digest)}"

    def is_live(self, doc: Document, now: dt.datetime | None = None) -> bool:
        now = now or self._clock()
        return (
            doc.get("revoked_at") is None
            and doc["expires_at"] > now
            and doc["last_used_at"] > now - dt.timedelta(milliseconds=self.policy.idle_ms)
        )

    # Lifecycle --------------------------------------------------------------------

    async def epoch(self, user_id: str) -> int:
        """The user's session epoch: every all-sessions revocation increments it."""
        async with store_errors():
            doc = await self._store.c.user_state.find_one({"_id": user_id}, {"session_epoch": 1})
        return int((doc or {}).get("session_epoch", 0))

    async def create(
        self, user_id: str, ip: str | None, user_agent: str | None, epoch: int = 0
    ) -> tuple[Session, str]:
        """A fresh family for each login; client-supplied identifiers are never reused.

        `epoch` is the user's session epoch read before the credentials were checked. If an
        all-sessions revocation bumped it since, the new session is ended at once: the
        credentials were checked before that revocation and must not outlive it. (A bump
        after the re-read below finds this session in its sweep.)
        """
        session_id = secrets.token_urlsafe(16)
        token = f"{session_id}.{secrets.token_urlsafe(32)}"
        hashed = token_hash(token)
        now = self._clock()
        doc: Document = {
            "_id": session_id,
            "user_id": user_id,
            "current_hash": hashed,
            "parent_hash": None,
            "history": [hashed],
            "created_at": now,
            "last_used_at": now,
            "rotated_at": now,
            "expires_at": now + dt.timedelta(milliseconds=self.policy.absolute_ms),
            "revoked_at": None,
            "revoked_reason": None,
            "ip": ip,
            "user_agent": (user_agent or "")[:512] or None,
            "epoch": epoch,
        }
        async with store_errors():
            await self._store.c.sessions.insert_one(doc)
        if await self.epoch(user_id) > epoch:
            await self.revoke(
                user_id=user_id, session_ids=[session_id], reason="stale_credentials", actor="system"
            )
            raise StaleCredentials(user_id)
        await self._evict_beyond_limit(user_id, session_id)
        return Session.from_doc(doc), token

    async def _user_sessions(self, user_id: str, projection: dict[str, int] | None = None) -> list[Document]:
        """All of a user's session documents by the indexed `user_id` alone.

        Liveness is filtered here rather than in the query: a compound filter makes
        some MongoDB-compatible stores (the embedded one) scan the whole collection.
        """
        async with store_errors():
            return [doc async for doc in self._store.c.sessions.find({"user_id": user_id}, projection)]

    async def _evict_beyond_limit(self, user_id: str, session_id: str) -> None:
        """Keep the user's newest MAX_SESSIONS_PER_USER sessions; revoke what falls off the end.

        One bounded list per user (in `auth_user_state`) replaces a scan of every session
        the user ever had: a session that falls off it is older than the newest N, so
        revoking it keeps at most N live (revoking one already ended changes nothing).
        """
        limit = self.policy.max_per_user
        async with store_errors():
            before = await self._store.c.user_state.find_one_and_update(
                {"_id": user_id},
                {"$push": {"sessions": {"$each": [session_id], "$slice": -limit}}},
                projection={"sessions": 1},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
            )
        previous: list[str] = list((before or {}).get("sessions", []))
        overflow = len(previous) + 1 - limit
        if overflow > 0:
            await self.revoke(
                user_id=user_id, session_ids=previous[:overflow], reason="max_sessions", actor="system"
            )

    async def rotate(self, token: str, ip: str | None, user_agent: str | None) -> tuple[Session, str]:
        """One atomic update keyed on the current token's hash rotates; racing presenters of the
        same parent get the same child within the grace period."""
        if not text_value(token) or len(token) > 128 or session_id_of(token) is None:
            raise InvalidRefreshToken("malformed")
        hashed = token_hash(token)
        child = self.child_of(token)
        child_hash = token_hash(child)
        now = self._clock()
        user_agent = (user_agent or "")[:512] or None
        async with store_errors():
            before = await self._store.c.sessions.find_one_and_update(
                {"current_hash": hashed},
                {
                    "$set": {
                        "current_hash": child_hash,
                        "parent_hash": hashed,
                        "rotated_at": now,
                        "last_used_at": now,
                        "ip": ip,
                        "user_agent": user_agent,
                    },
                    "$push": {"history": {"$each": [child_hash], "$slice": -TOKEN_HISTORY}},
                },
                return_document=ReturnDocument.BEFORE,
            )
        if before is not None:
            if int(before.get("epoch", 0)) < await self.epoch(before["user_id"]):
                # Created from credentials checked before an all-sessions revocation.
                await self.revoke(
                    user_id=before["user_id"],
                    session_ids=[before["_id"]],
                    reason="stale_epoch",
                    actor="system",
                )
                raise InvalidRefreshToken("stale epoch", before["user_id"])
            if not self.is_live(before, now):
                # Liveness is judged on the document as it was; an ended session is closed for good.
                if before.get("revoked_at") is None:
                    await self.revoke(
                        user_id=before["user_id"], session_ids=[before["_id"]], reason="ended", actor="system"
                    )
                raise InvalidRefreshToken("ended", before["user_id"])
            session = replace(Session.from_doc(before), last_used_at=now, ip=ip, user_agent=user_agent)
            return session, child
        async with store_errors():
            doc = await self._store.c.sessions.find_one({"_id": session_id_of(token)})
        if doc is None or hashed not in doc.get("history", ()):
            raise InvalidRefreshToken("unknown")
        if not self.is_live(doc, now):
            raise InvalidRefreshToken("ended", doc["user_id"])
        within_grace = now - doc["rotated_at"] <= dt.timedelta(milliseconds=self.policy.grace_ms)
        if doc.get("parent_hash") == hashed and doc.get("current_hash") == child_hash and within_grace:
            REFRESHES.labels("grace").inc()
            return Session.from_doc(doc), child
        REFRESHES.labels("reuse_detected").inc()
        await self.revoke(
            user_id=doc["user_id"], session_ids=[doc["_id"]], reason="refresh_token_reuse", actor="system"
        )
        await self._audit.record(
            "refresh_token_reuse", user_id=doc["user_id"], ip=ip, outcome="revoked", session_id=doc["_id"]
        )
        raise InvalidRefreshToken("reuse", doc["user_id"])

    async def find_live(self, session_id: str) -> Session | None:
        async with store_errors():
            doc = await self._store.c.sessions.find_one({"_id": text_value(session_id)})
        if doc is None or not self.is_live(doc):
            return None
        return Session.from_doc(doc)

    async def find_by_token(self, token: str) -> Session | None:
        if not text_value(token) or len(token) > 128:
            return None
        async with store_errors():
            doc = await self._store.c.sessions.find_one({"current_hash": token_hash(token)})
        if doc is None or not self.is_live(doc):
            return None
        return Session.from_doc(doc)

    async def list_live(self, user_id: str) -> list[Session]:
        now = self._clock()
        live = [doc for doc in await self._user_sessions(user_id) if self.is_live(doc, now)]
        live.sort(key=lambda doc: doc["last_used_at"], reverse=True)
        return [Session.from_doc(doc) for doc in live]

    async def allocate_positions(self, count: int) -> range:
        """Feed positions for `count` revocation records, from one store-side counter.

        Readers follow the feed by position, never by a writer's clock; a position can still
        commit after a higher one, which the reader's gap tracking covers.
        """
        async with store_errors():
            counter = await self._store.c.counters.find_one_and_update(
                {"_id": "revocations"},
                {"$inc": {"n": count}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        high = int((counter or {}).get("n", count))
        return range(high - count + 1, high + 1)

    async def revoke(
        self,
        *,
        user_id: str,
        reason: str,
        actor: str,
        session_ids: list[str] | None = None,
        keep: str | None = None,
        ban: RevokedByBan | None = None,
    ) -> int:
        """The one revocation path: mark sessions revoked and record them for /verify.

        A revocation caused by a ban carries the ban, so a /verify that learns of the
        revocation before the ban itself still answers 403 `banned`, not 401.
        """
        now = self._clock()
        epoch: int | None = None
        if session_ids is None and keep is None:
            # First the epoch, then the sweep: a login whose credentials were checked before this
            # point either sees the new epoch when it re-reads it, or is found by the sweep.
            async with store_errors():
                state = await self._store.c.user_state.find_one_and_update(
                    {"_id": user_id},
                    {"$inc": {"session_epoch": 1}},
                    projection={"session_epoch": 1},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            epoch = int((state or {}).get("session_epoch", 1))
        if session_ids is not None:  # by id: a small indexed lookup, not every session of the user
            async with store_errors():
                candidates = [
                    doc
                    async for doc in self._store.c.sessions.find(
                        {"_id": {"$in": [text_value(sid) for sid in session_ids]}},
                        {"revoked_at": 1, "user_id": 1},
                    )
                    if doc.get("user_id") == user_id
                ]
        else:
            candidates = await self._user_sessions(user_id, {"revoked_at": 1})
        ids = [doc["_id"] for doc in candidates if doc.get("revoked_at") is None and doc["_id"] != keep]
        expires = now + dt.timedelta(milliseconds=self.policy.access_lifetime_ms + 120_000)
        async with store_errors():
            extra: Document = (
                {} if ban is None else {"ban_reason": ban.reason, "ban_expires_at": ban.expires_at}
            )
            records: list[Document] = [
                {"sid": sid, "user_id": user_id, "reason": reason, "at": now, "expires_at": expires, **extra}
                for sid in ids
            ]
            if epoch is not None:  # /verify refuses this user's tokens from older epochs
                records.append(
                    {"user_id": user_id, "epoch": epoch, "reason": reason, "at": now, "expires_at": expires}
                )
            if records:
                for record, position in zip(
                    records, await self.allocate_positions(len(records)), strict=True
                ):
                    record["pos"] = position
                await self._store.c.revocations.insert_many(records)
            if ids:
                await self._store.c.sessions.update_many(
                    {"_id": {"$in": ids}}, {"$set": {"revoked_at": now, "revoked_reason": reason}}
                )
        if ids:
            REVOCATIONS.labels(reason).inc(len(ids))
        for listener in self.revocation_listeners:
            listener(ids, expires.timestamp())
        if epoch is not None:
            for epoch_listener in self.epoch_listeners:
                epoch_listener(user_id, epoch, expires.timestamp())
        if ids:
            await self._audit.record(
                "session_revoked", user_id=user_id, actor=actor, reason=reason, sessions=len(ids)
            )
        return len(ids)
